"""Impacts on the base map, shared by the flood and landslide models.

:func:`warning_polygons` turns a classified hazard raster into dissolved, simplified polygons with
their area; :func:`assets_in_areas` lists the base-map features (buildings, roads, rail,
pipelines...) those polygons touch. Both work on plain arrays and GeoDataFrames (the CLI and the
process plugin read the inputs), in the raster's CRS, which must be projected (metres).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
        geom = shapely.union_all(parts)
        if simplify:
            geom = shapely.simplify(geom, simplify, preserve_topology=True)
        geom = shapely.make_valid(geom)
        polys = [g for g in shapely.get_parts(geom)
                 if shapely.get_type_id(g) == 3 and g.area >= min_area]
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
