"""Impacts on the base map, shared by the flood and landslide models.

:func:`warning_polygons` turns a classified hazard raster into dissolved, simplified polygons with
their area; :func:`assets_in_areas` lists the base-map features (buildings, roads, rail,
pipelines...) those polygons touch. Both work on plain arrays and GeoDataFrames (the CLI and the
process plugin read the inputs), in the raster's CRS, which must be projected (metres).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from rasterio.features import shapes


def warning_polygons(classes: np.ndarray, transform: Affine, crs, *,
                     labels: Mapping[int, str], keep: Sequence[int] | None = None,
                     simplify: float | None = None, min_area: float = 0.0) -> gpd.GeoDataFrame:
    """Polygons of the cells in each class of ``classes`` (integer raster, <0 = none).

    Args:
        classes: Class per cell (int); negative means no class.
        transform, crs: The grid's georeferencing.
        labels: Name of each class value (written as ``class_name``).
        keep: Class values to polygonise (default all in ``labels``).
        simplify: Douglas-Peucker tolerance in CRS units (default half a cell), topology kept.
        min_area: Drop polygon parts smaller than this (m^2), after dissolving.

    Returns:
        One row per class with columns ``class`` (int), ``class_name``, ``area_m2`` and a
        (Multi)Polygon geometry, classes in ascending order.
    """
    keep = list(labels) if keep is None else list(keep)
    cls = np.asarray(classes)
    if simplify is None:
        simplify = abs(transform.a) / 2
    rows = []
    for value in sorted(keep):
        mask = cls == value
        if not mask.any():
            continue
        parts = [shapely.geometry.shape(geom) for geom, _ in
                 shapes(mask.astype("uint8"), mask=mask, transform=transform, connectivity=4)]
        # The pieces of one class never overlap (they are a raster's regions), so the fast
        # coverage union is exact (union_all took minutes on national rasters).
        geom = shapely.coverage_union_all(parts)
        pieces = shapely.get_parts(geom)
        if simplify:   # piece by piece: one call on a multipolygon of 50k parts took 30 s
            pieces = shapely.simplify(pieces, simplify, preserve_topology=True)
        pieces = shapely.get_parts(shapely.make_valid(pieces))
        polys = [g for g in pieces if shapely.get_type_id(g) == 3 and g.area >= min_area]
        if not polys:
            continue
        geom = shapely.multipolygons(polys) if len(polys) > 1 else polys[0]
        rows.append({"class": int(value), "class_name": labels.get(value, str(value)),
                     "area_m2": float(geom.area), "geometry": geom})
    if not rows:
        return gpd.GeoDataFrame({"class": pd.Series([], dtype="int64"),
                                 "class_name": pd.Series([], dtype="str"),
                                 "area_m2": pd.Series([], dtype="float64")},
                                geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=crs)


def assets_in_areas(areas: gpd.GeoDataFrame, layers: Mapping[str, gpd.GeoDataFrame], *,
                    area_columns: Sequence[str] = ("class", "class_name")
                    ) -> dict[str, gpd.GeoDataFrame]:
    """Features of each layer that intersect any of ``areas``.

    Each returned frame keeps the layer's columns and geometry (in the areas' CRS) and adds the
    columns ``area_columns`` of the worst (highest ``class``) area it touches, plus
    ``length_in_m`` for lines and ``area_in_m2`` for polygons: how much of the feature lies
    inside the areas.
    """
    out: dict[str, gpd.GeoDataFrame] = {}
    if areas.empty:
        return {name: frame.iloc[:0].to_crs(areas.crs) if frame.crs else frame.iloc[:0]
                for name, frame in layers.items()}
    union = shapely.union_all(areas.geometry.values)
    for name, frame in layers.items():
        if frame is None or frame.empty:
            continue
        frame = frame.to_crs(areas.crs) if frame.crs is not None and frame.crs != areas.crs \
            else frame
        hits = frame.sindex.query(areas.geometry.values, predicate="intersects")
        if hits.size == 0:
            out[name] = frame.iloc[:0].copy()
            continue
        area_idx, feat_idx = hits
        order = np.lexsort((-areas["class"].to_numpy()[area_idx] if "class" in areas
                            else area_idx, feat_idx))
        area_idx, feat_idx = area_idx[order], feat_idx[order]
        first = np.r_[True, feat_idx[1:] != feat_idx[:-1]]
        picked = frame.iloc[feat_idx[first]].copy()
        for col in area_columns:
            if col in areas:
                picked[col] = areas[col].to_numpy()[area_idx[first]]
        inside = shapely.intersection(picked.geometry.values, union)
        kind = shapely.get_type_id(picked.geometry.values)
        if np.isin(kind, (1, 5)).any():
            picked["length_in_m"] = np.where(np.isin(kind, (1, 5)), shapely.length(inside), np.nan)
        if np.isin(kind, (3, 6)).any():
            picked["area_in_m2"] = np.where(np.isin(kind, (3, 6)), shapely.area(inside), np.nan)
        out[name] = picked
    return out


# --- flood impacts on the base map ----------------------------------------------------------

#: Building depth classes (m): the thresholds agencies report (ankle, knee, waist).
BUILDING_THRESHOLDS = (0.3, 0.5, 1.0)
#: Water deeper than this closes a road to ordinary vehicles (m).
ROAD_IMPASSABLE = 0.3
#: Ground counts as flooded above a pipe when water is deeper than this (m): the depth of a
#: warning area (thin sheet flow over a street is not a flooded pipe corridor).
PIPE_WET = 0.3
#: Road levels that water at the ground does not close.
RAISED_LEVELS = ("bridge", "elevated", "viaduct", "overpass")
#: Building usages whose occupants need a way to a shelter.
POPULATED_USAGES = ("residential", "mixed")


def _cells(x: np.ndarray, y: np.ndarray, transform: Affine, shape) -> tuple[np.ndarray, ...]:
    col, row = ~transform @ (np.asarray(x), np.asarray(y))
    row, col = np.floor(row).astype(np.int64), np.floor(col).astype(np.int64)
    inside = (row >= 0) & (row < shape[0]) & (col >= 0) & (col < shape[1])
    return row, col, inside


def sample_raster(values: np.ndarray, transform: Affine, x, y) -> np.ndarray:
    """``values`` at points (NaN outside the grid)."""
    row, col, inside = _cells(x, y, transform, values.shape)
    out = np.full(row.shape, np.nan, dtype="float64")
    out[inside] = values[row[inside], col[inside]]
    return out


def _line_samples(geoms: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points every ``spacing`` along each line (cell centres of the sampling): returns
    (line index, x, y), and each sample stands for ``length / n`` of its line."""
    lengths = shapely.length(geoms)
    n = np.maximum(1, np.ceil(lengths / spacing).astype(np.int64))
    index = np.repeat(np.arange(len(geoms)), n)
    starts = np.cumsum(n) - n
    k = np.arange(index.size) - np.repeat(starts, n)
    fraction = (k + 0.5) / np.repeat(n, n)
    points = shapely.line_interpolate_point(geoms[index], fraction, normalized=True)
    return index, shapely.get_x(points), shapely.get_y(points)


def line_flooding(lines: gpd.GeoDataFrame, depth: np.ndarray, transform: Affine,
                  threshold: float) -> gpd.GeoDataFrame:
    """Per line: ``max_depth`` (m) along it and ``flooded_length_m`` where depth > threshold."""
    geoms = lines.geometry.values
    out = lines.copy()
    if len(lines) == 0:
        out["max_depth"] = pd.Series([], dtype="float64")
        out["flooded_length_m"] = pd.Series([], dtype="float64")
        return out
    spacing = abs(transform.a) / 2
    index, x, y = _line_samples(geoms, spacing)
    d = np.nan_to_num(sample_raster(depth, transform, x, y), nan=0.0)
    counts = np.bincount(index, minlength=len(geoms))
    lengths = shapely.length(geoms)
    each = lengths / np.maximum(counts, 1)
    max_depth = np.zeros(len(geoms))
    np.maximum.at(max_depth, index, d)
    wet = np.bincount(index, weights=(d > threshold).astype("float64"), minlength=len(geoms))
    out["max_depth"] = np.round(max_depth, 3)
    out["flooded_length_m"] = np.round(wet * each, 2)
    return out


def building_depths(buildings: gpd.GeoDataFrame, depth: np.ndarray, transform: Affine, *,
                    thresholds: tuple[float, ...] = BUILDING_THRESHOLDS) -> gpd.GeoDataFrame:
    """Per building: the deepest water on its footprint and in a ring one cell wide around it
    (``max_depth``), and ``depth_class``: the highest threshold exceeded (``>1.0 m``...), or
    ``None``. The ring counts because buildings modelled as obstacles hold no water inside."""
    from rasterio.features import rasterize

    out = buildings.copy()
    n = len(buildings)
    max_depth = np.zeros(n)
    if n:
        cell = abs(transform.a)
        rings = shapely.buffer(buildings.geometry.values, cell, quad_segs=2)
        # Rings overlap between neighbours; drawn largest first, so a small building is not
        # hidden under a large one's ring.
        order = np.argsort(-shapely.area(rings), kind="stable")
        labels = rasterize(zip(rings[order], order + 1), out_shape=depth.shape,
                           transform=transform, fill=0, dtype="int32", all_touched=True)
        d = np.nan_to_num(depth, nan=0.0)
        hit = labels > 0
        np.maximum.at(max_depth, labels[hit] - 1, d[hit])
        # Buildings smaller than a cell that the raster missed: their centroid's cell.
        missing = np.bincount(labels[hit] - 1, minlength=n) == 0
        if missing.any():
            c = shapely.centroid(buildings.geometry.values[missing])
            max_depth[missing] = np.nan_to_num(
                sample_raster(depth, transform, shapely.get_x(c), shapely.get_y(c)), nan=0.0)
    out["max_depth"] = np.round(max_depth, 3)
    classes = np.full(n, None, dtype=object)
    for t in sorted(thresholds):
        classes[max_depth > t] = f">{t:g} m"
    out["depth_class"] = classes
    return out


def _road_graph(roads: gpd.GeoDataFrame, depth: np.ndarray, transform: Affine,
                threshold: float):
    """Noded road pieces, their end nodes, node coordinates and which pieces are passable."""
    level = roads["level"].astype("str").str.lower().to_numpy() if "level" in roads \
        else np.full(len(roads), "ground")
    noded = shapely.get_parts(shapely.node(shapely.multilinestrings(
        shapely.get_parts(roads.geometry.values))))
    if noded.size == 0:
        return noded, np.empty((0, 2), "int64"), np.empty((0, 2)), np.empty(0, bool)
    pieces = gpd.GeoDataFrame(geometry=noded, crs=roads.crs)
    flooded = line_flooding(pieces, depth, transform, threshold)["max_depth"].to_numpy()
    # Raised roads (bridges) stay open whatever the water below: find each piece's road.
    mid = shapely.line_interpolate_point(noded, 0.5, normalized=True)
    tree = shapely.STRtree(roads.geometry.values)
    src = tree.query_nearest(mid, return_distance=False, all_matches=False)[1]
    raised = np.isin(level[src], RAISED_LEVELS)
    passable = (flooded <= threshold) | raised
    ends = np.concatenate([shapely.get_coordinates(shapely.get_point(noded, 0)),
                           shapely.get_coordinates(shapely.get_point(noded, -1))])
    keys = np.round(ends, 2)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    edges = inverse.reshape(2, -1).T
    return noded, edges, uniq, passable


def shelter_access(shelters: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame,
                   roads: gpd.GeoDataFrame, depth: np.ndarray, transform: Affine, *,
                   threshold: float = ROAD_IMPASSABLE,
                   populated: tuple[str, ...] = POPULATED_USAGES
                   ) -> tuple[gpd.GeoDataFrame, dict[str, int]]:
    """Which shelters are flooded, and which are cut off from the people they serve.

    The road network is noded at every crossing; pieces whose water exceeds ``threshold`` are
    removed (raised roads stay). Each populated building (``usage`` in ``populated``) and each
    shelter joins the graph at its nearest node. A shelter is ``flooded`` when water around it
    exceeds ``threshold``; ``reachable_buildings`` counts the populated buildings in its
    connected component; it is ``cut_off`` when that is zero while populated buildings exist.

    Returns:
        (shelters with ``max_depth``, ``flooded``, ``reachable_buildings``, ``cut_off``;
        a summary with ``populated_buildings`` and ``populated_without_shelter``: those that can
        reach no dry shelter.)
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    out = building_depths(shelters, depth, transform)
    out["flooded"] = out["max_depth"] > threshold
    usage = buildings["usage"].astype("str").to_numpy() if "usage" in buildings else \
        np.array([], dtype=str)
    people = buildings[np.isin(usage, populated)] if len(usage) else buildings.iloc[:0]
    summary = {"populated_buildings": int(len(people)), "populated_without_shelter": 0}
    noded, edges, nodes, passable = _road_graph(roads, depth, transform, threshold)
    if len(nodes) == 0 or len(out) == 0:
        out["reachable_buildings"] = 0
        out["cut_off"] = len(people) > 0
        summary["populated_without_shelter"] = int(len(people))
        return out, summary
    e = edges[passable]
    graph = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(len(nodes), len(nodes)))
    _, component = connected_components(graph, directed=False)
    node_tree = shapely.STRtree(shapely.points(nodes))

    def component_of(frame):
        if len(frame) == 0:
            return np.empty(0, dtype=np.int64)
        pts = shapely.point_on_surface(frame.geometry.values)
        nearest = node_tree.query_nearest(pts, return_distance=False, all_matches=False)[1]
        return component[nearest]

    people_comp = component_of(people)
    shelter_comp = component_of(out)
    per_comp = np.bincount(people_comp, minlength=len(nodes)) if len(people_comp) else \
        np.zeros(len(nodes), dtype=np.int64)
    out["reachable_buildings"] = per_comp[shelter_comp].astype("int64")
    out["cut_off"] = (out["reachable_buildings"] == 0) & (len(people) > 0)
    dry = set(shelter_comp[~out["flooded"].to_numpy()].tolist())
    summary["populated_without_shelter"] = int(sum(c not in dry for c in people_comp))
    return out, summary


def default_shelters(buildings: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Buildings that serve as shelters when no shelter layer is given: those named a shelter
    (``Shelter``, ``避難``, ``收容``) and schools (``usage == "education"``), which Taiwan's
    townships designate as evacuation shelters."""
    name = buildings["name"].astype("str") if "name" in buildings else \
        pd.Series("", index=buildings.index)
    usage = buildings["usage"].astype("str") if "usage" in buildings else \
        pd.Series("", index=buildings.index)
    mask = name.str.contains("Shelter|避難|收容", regex=True, na=False) | (usage == "education")
    return buildings[mask.to_numpy()]


def flood_impacts(depth: np.ndarray, transform: Affine, crs, layers: Mapping[str, gpd.GeoDataFrame],
                  *, shelters: gpd.GeoDataFrame | None = None,
                  road_threshold: float = ROAD_IMPASSABLE, pipe_wet: float = PIPE_WET
                  ) -> tuple[dict[str, gpd.GeoDataFrame], dict]:
    """What a flood (maximum depth on the grid) does to the base map.

    Args:
        depth: Maximum depth (m), NaN or 0 where dry, on the grid of ``transform``/``crs``.
        layers: ``buildings``, ``roads``, ``pipelines`` (any may be missing), any CRS.
        shelters: Shelter buildings (default :func:`default_shelters` of the buildings).

    Returns:
        (frames: ``buildings`` flooded over the lowest threshold with ``max_depth`` and
        ``depth_class``; ``roads`` impassable (``max_depth``, ``flooded_length_m``);
        ``pipelines`` under flooded ground; ``shelters`` all of them with their status,
        summary counts.)
    """
    frames: dict[str, gpd.GeoDataFrame] = {}
    summary: dict[str, Any] = {}
    local = {k: (v.to_crs(crs) if v is not None and v.crs is not None and v.crs != crs else v)
             for k, v in layers.items()}
    buildings = local.get("buildings")
    if buildings is not None and len(buildings):
        b = building_depths(buildings, depth, transform)
        flooded = b[b["depth_class"].notna()]
        frames["buildings"] = flooded
        summary["buildings"] = {
            "total": int(len(b)),
            **{f"over_{t:g}m": int((b["max_depth"] > t).sum()) for t in BUILDING_THRESHOLDS}}
    roads = local.get("roads")
    if roads is not None and len(roads):
        r = line_flooding(roads, depth, transform, road_threshold)
        raised = r["level"].astype("str").str.lower().isin(RAISED_LEVELS) if "level" in r \
            else pd.Series(False, index=r.index)
        closed = r[(r["max_depth"] > road_threshold) & ~raised.to_numpy()]
        frames["roads"] = closed
        summary["roads"] = {"total": int(len(r)), "impassable": int(len(closed)),
                            "impassable_length_m": round(float(closed["flooded_length_m"].sum()),
                                                         1)}
    pipes = local.get("pipelines")
    if pipes is not None and len(pipes):
        p = line_flooding(pipes, depth, transform, pipe_wet)
        under = p[p["max_depth"] > pipe_wet]
        frames["pipelines"] = under
        by_utility = under.groupby("utility").size().to_dict() if "utility" in under else {}
        summary["pipelines"] = {"total": int(len(p)), "under_flood": int(len(under)),
                                "length_under_flood_m":
                                    round(float(under["flooded_length_m"].sum()), 1),
                                "by_utility": {str(k): int(v) for k, v in by_utility.items()}}
    if buildings is not None and len(buildings) and roads is not None and len(roads):
        shelters = default_shelters(buildings) if shelters is None else shelters.to_crs(crs)
        s, access = shelter_access(shelters, buildings, roads, depth, transform,
                                   threshold=road_threshold)
        frames["shelters"] = s
        summary["shelters"] = {"total": int(len(s)), "flooded": int(s["flooded"].sum()),
                               "cut_off": int(s["cut_off"].sum()), **access}
    return frames, summary
