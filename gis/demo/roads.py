"""The road network of one district, noded at every junction.

Sources, before noding: the town's street grid (every segment between two grid nodes), the two
main axes continued by arterials to the district edges (to points shared with the neighbouring
district, so networks join), the valley trunk road (one global polyline per river, cut at the
district borders) and a few service spurs. Arterial and grid segments that cross the river are
cut where they enter and leave the river corridor (the middle piece is a bridge); the arterial
with the biggest hill on its way gets a tunnel where the ground stands high above a
grade-limited road profile. :func:`shapely.node` then splits every line at every crossing and
each noded piece takes the attributes of the source line it lies on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from gis.demo.spec import DISTRICT, RegionSpec, sub_rng
from gis.demo.terrain import River, TerrainModel
from gis.demo.town import STREET_NAMES, District, Town

TRUNK_OFFSET = 300.0  # metres between the river's meander belt and the valley road
RAIL_OFFSET = 430.0  # the main railway runs on the other side of the river
ROAD_COLUMNS = ["id", "name", "class", "width", "lanes", "level", "deck_height", "depth", "surface",
                "oneway", "source", "lineage"]


# --- polyline helpers -----------------------------------------------------------------------------


def cumulative_length(coords: np.ndarray) -> np.ndarray:
    """Distance along a polyline at each vertex."""
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(coords, axis=0).T))])


def cut_polyline(coords: np.ndarray, breaks: list[float] | np.ndarray) -> list[np.ndarray]:
    """Cut a polyline at distances along it; neighbouring pieces share the exact cut point.

    Args:
        coords: Vertices (n, 2).
        breaks: Distances along the line (any order; out-of-range values are ignored).

    Returns:
        The pieces, in order, as vertex arrays.
    """
    cum = cumulative_length(coords)
    total = cum[-1]
    cuts = np.unique(np.asarray([b for b in breaks if 1e-6 < b < total - 1e-6], dtype=float))
    if cuts.size == 0:
        return [coords]
    seg = np.diff(coords, axis=0)
    idx = np.clip(np.searchsorted(cum, cuts, side="right") - 1, 0, len(seg) - 1)
    seglen = np.maximum(cum[idx + 1] - cum[idx], 1e-12)
    pts = coords[idx] + ((cuts - cum[idx]) / seglen)[:, None] * seg[idx]
    ends = [coords[0], *pts, coords[-1]]
    stops = [0.0, *cuts, total]
    pieces = []
    for n in range(len(stops) - 1):
        inner = coords[(cum > stops[n] + 1e-9) & (cum < stops[n + 1] - 1e-9)]
        pieces.append(np.vstack([ends[n], inner, ends[n + 1]]))
    return pieces


def polygon_intervals(coords: np.ndarray,
                      polygon: shapely.Geometry | None) -> list[tuple[float, float]]:
    """Distance intervals along a polyline that lie inside a polygon (merged)."""
    if polygon is None:
        return []
    line = shapely.linestrings(coords)
    inter = shapely.intersection(line, polygon)
    spans = []
    for part in shapely.get_parts(inter):
        if shapely.get_type_id(part) != 1 or part.length <= 0:
            continue
        ends = shapely.get_coordinates(part)[[0, -1]]
        d = shapely.line_locate_point(line, shapely.points(ends))
        spans.append((float(d.min()), float(d.max())))
    spans.sort()
    merged: list[tuple[float, float]] = []
    for s0, s1 in spans:
        if merged and s0 <= merged[-1][1] + 1.0:
            merged[-1] = (merged[-1][0], max(merged[-1][1], s1))
        else:
            merged.append((s0, s1))
    return merged


def grid_split(coords: np.ndarray, origin: tuple[float, float],
               n: int) -> list[tuple[int, int, np.ndarray]]:
    """Cut a region-wide polyline at the district borders.

    Args:
        coords: Vertices (m, 2).
        origin: Region lower-left corner.
        n: Districts per side.

    Returns:
        (i, j, piece) for every piece, i/j the district holding the piece's middle.
    """
    cum = cumulative_length(coords)
    breaks = []
    for axis in (0, 1):
        a, b = coords[:-1, axis], coords[1:, axis]
        lo = np.floor((np.minimum(a, b) - origin[axis]) / DISTRICT)
        hi = np.floor((np.maximum(a, b) - origin[axis]) / DISTRICT)
        for s in np.flatnonzero(hi > lo):
            for k in range(int(lo[s]) + 1, int(hi[s]) + 1):
                border = origin[axis] + k * DISTRICT
                t = (border - a[s]) / (b[s] - a[s])
                breaks.append(cum[s] + t * (cum[s + 1] - cum[s]))
    out = []
    for piece in cut_polyline(coords, breaks):
        mid = piece.mean(axis=0) if len(piece) > 2 else (piece[0] + piece[-1]) / 2.0
        i = int(np.clip((mid[0] - origin[0]) // DISTRICT, 0, n - 1))
        j = int(np.clip((mid[1] - origin[1]) // DISTRICT, 0, n - 1))
        out.append((i, j, piece))
    return out


def valley_polyline(model: TerrainModel, river: River, offset: float,
                    step: float = 40.0) -> np.ndarray:
    """A region-wide line following a river's smooth course at a vertical offset (metres)."""
    minx, _, maxx, _ = model.bbox
    xs = minx + step * np.arange(int(round((maxx - minx) / step)) + 1)
    return np.column_stack([xs, river.smooth_y(xs) + offset])


def valley_side(model: TerrainModel, river: River) -> float:
    """Side of a river (+1 north, -1 south) of the trunk road; the railway takes the other."""
    return 1.0 if sub_rng(model.seed, 3, river.index).random() < 0.5 else -1.0


def river_zone(model: TerrainModel, district: District,
               margin: float = 12.0) -> shapely.Geometry | None:
    """The river corridor (channel plus banks) within reach of a district, or None."""
    x0, y0, x1, y1 = district.box
    xs = np.arange(x0 - 100.0, x1 + 100.0 + 1e-6, 10.0)
    zones = []
    for river in model.rivers:
        ys = river.centre_y(xs)
        if ys.max() < y0 - 300.0 or ys.min() > y1 + 300.0:
            continue
        half = float(model.channel_half_width(xs).max()) + margin
        zones.append(shapely.buffer(shapely.linestrings(np.column_stack([xs, ys])), half))
    return shapely.union_all(zones) if zones else None


# --- source lines ---------------------------------------------------------------------------------


@dataclass
class Sources:
    """Road source lines before noding, with their attributes (columnar)."""

    geoms: list = field(default_factory=list)
    rows: list = field(default_factory=list)

    def add(self, coords: np.ndarray, **attrs) -> None:
        """Add one line (vertex array) with its attributes."""
        self.geoms.append(shapely.linestrings(coords))
        self.rows.append(attrs)

    def add_cut(self, coords: np.ndarray, bridges: list[tuple[float, float]],
                tunnel: tuple[float, float, float] | None, rng: np.random.Generator,
                **attrs) -> None:
        """Add a line cut into ground, bridge and tunnel pieces.

        Args:
            coords: Vertices.
            bridges: Distance intervals over the river.
            tunnel: (start, end, depth) or None.
            rng: For deck heights.
            **attrs: Attributes of the ground pieces.
        """
        breaks = [d for span in bridges for d in span]
        if tunnel is not None:
            breaks += [tunnel[0], tunnel[1]]
        for piece in cut_polyline(coords, breaks):
            mid = _position_of(coords, piece)
            row = dict(attrs, level="ground", deck_height=None, depth=None)
            if any(s0 <= mid <= s1 for s0, s1 in bridges):
                row.update(level="bridge", deck_height=round(float(rng.uniform(5.0, 12.0)), 1))
            elif tunnel is not None and tunnel[0] <= mid <= tunnel[1]:
                row.update(level="tunnel", depth=round(tunnel[2], 1))
            self.add(piece, **row)


def _position_of(coords: np.ndarray, piece: np.ndarray) -> float:
    """Distance along ``coords`` of the middle of ``piece`` (a piece cut from it)."""
    line = shapely.linestrings(coords)
    mid = shapely.line_interpolate_point(shapely.linestrings(piece), 0.5, normalized=True)
    return float(shapely.line_locate_point(line, mid))


def grid_edges(town: Town, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Street segments of the town grid.

    Returns:
        (u-edges, v-edges): integer arrays (n, 2). A u-edge (m, k) runs along line v = m b from
        node k to k + 1; a v-edge (k, m) runs along u = k a from node m to m + 1. The main axes
        (m = 0, k = 0) and a few other lines run unbroken across the town (also over the river).
    """
    k, m = town.blocks[:, 0], town.blocks[:, 1]
    u_edges = np.unique(np.concatenate([np.column_stack([m, k]), np.column_stack([m + 1, k])]),
                        axis=0)
    v_edges = np.unique(np.concatenate([np.column_stack([k, m]), np.column_stack([k + 1, m])]),
                        axis=0)
    return _fill_lines(u_edges, rng), _fill_lines(v_edges, rng)


def _fill_lines(edges: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if edges.size == 0:
        return edges.reshape(0, 2)
    lines = np.unique(edges[:, 0])
    through = lines[(lines == 0) | (rng.random(lines.size) < 0.15)]
    extra = []
    for line in through:
        pos = edges[edges[:, 0] == line, 1]
        full = np.arange(pos.min(), pos.max() + 1)
        extra.append(np.column_stack([np.full(full.size, line), full]))
    return np.unique(np.concatenate([edges, *extra]), axis=0) if extra else edges


def add_grid(src: Sources, town: Town, zone: shapely.Geometry | None,
             rng: np.random.Generator) -> None:
    """Add the street grid of a town (bridge pieces where a street crosses the river)."""
    u_edges, v_edges = grid_edges(town, rng)
    for along_u, edges in ((True, u_edges), (False, v_edges)):
        if edges.size == 0:
            continue
        line, pos = edges[:, 0], edges[:, 1]
        if along_u:
            x, y = town.to_world(np.stack([pos, pos + 1], 1) * town.a,
                                 np.stack([line, line], 1) * town.b)
            width, lanes = town.u_width[line + town.off], town.u_lanes[line + town.off]
        else:
            x, y = town.to_world(np.stack([line, line], 1) * town.a,
                                 np.stack([pos, pos + 1], 1) * town.b)
            width, lanes = town.v_width[line + town.off], town.v_lanes[line + town.off]
        cls = town.line_class(along_u, line)
        coords = np.stack([x, y], axis=2)
        r = np.hypot(x.mean(1) - town.centre[0], y.mean(1) - town.centre[1]) / town.radius
        crossing = (shapely.intersects(shapely.linestrings(coords), zone) if zone is not None
                    else np.zeros(len(coords), bool))
        for n in range(len(coords)):
            attrs = _street_attrs(town, along_u, int(line[n]), str(cls[n]), float(width[n]),
                                  int(lanes[n]), float(r[n]), rng)
            if crossing[n]:
                src.add_cut(coords[n], polygon_intervals(coords[n], zone), None, rng, **attrs)
            else:
                src.add(coords[n], level="ground", deck_height=None, depth=None, **attrs)


def _street_attrs(town: Town, along_u: bool, line: int, cls: str, width: float, lanes: int,
                  r: float, rng: np.random.Generator) -> dict:
    base = STREET_NAMES[(abs(line) + (0 if along_u else 7) + len(town.name)) % len(STREET_NAMES)]
    if cls in ("primary", "secondary"):
        name = f"{base} Road"
    elif cls == "tertiary":
        name = f"{base} {'Street' if along_u else 'Road'}"
    else:
        name = f"Lane {abs(line) * 10 + (3 if along_u else 7)}" if rng.random() < 0.7 else None
    surface = "paving" if cls == "local" and r < 0.3 and rng.random() < 0.4 else "asphalt"
    oneway = bool(cls == "local" and lanes == 1 and rng.random() < 0.6)
    return {"class": cls, "width": width, "lanes": lanes, "surface": surface, "name": name,
            "oneway": oneway, "in_town": True, "r": r}


def edge_point(seed: int, spec: RegionSpec, vertical: bool, i: int, j: int) -> np.ndarray:
    """Where the arterial crosses a district border; shared by the two districts.

    Args:
        seed: Region seed.
        spec: Region spec.
        vertical: True for the border x = minx + i D (between rows j), False for y = miny + j D.
        i: Border column index.
        j: Border row index.

    Returns:
        (x, y).
    """
    minx, miny, _, _ = spec.bbox
    t = 0.35 + 0.3 * sub_rng(seed, 11 if vertical else 12, i, j).random()
    if vertical:
        return np.array([minx + i * DISTRICT, miny + (j + t) * DISTRICT])
    return np.array([minx + (i + t) * DISTRICT, miny + j * DISTRICT])


def _bezier(p0: np.ndarray, p1: np.ndarray, bend: float, step: float = 40.0) -> np.ndarray:
    d = p1 - p0
    length = float(np.hypot(*d))
    ctrl = (p0 + p1) / 2.0 + bend * length * np.array([-d[1], d[0]]) / max(length, 1e-9)
    t = np.linspace(0.0, 1.0, max(int(length / step), 2) + 1)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * ctrl + t ** 2 * p1


def _tunnel(model: TerrainModel, coords: np.ndarray,
            grade: float = 0.07) -> tuple[float, float, float, float]:
    """(excess, start, end, depth) of the biggest hill a road would rather tunnel through."""
    z = model.points(coords[:, 0], coords[:, 1])
    s = cumulative_length(coords)
    fwd = np.minimum.accumulate(z - grade * s) + grade * s
    bwd = (np.minimum.accumulate((z + grade * s)[::-1])[::-1]) - grade * s
    excess = z - np.minimum(fwd, bwd)
    top = int(np.argmax(excess))
    if excess[top] <= 0:
        return 0.0, 0.0, 0.0, 0.0
    inside = excess > max(0.4 * excess[top], 2.0)
    lo, hi = top, top
    while lo > 0 and inside[lo - 1]:
        lo -= 1
    while hi < len(z) - 1 and inside[hi + 1]:
        hi += 1
    start, end = s[lo], s[hi]
    if end - start < 120.0:
        mid = (start + end) / 2.0
        start, end = max(mid - 60.0, s[1]), min(mid + 60.0, s[-2])
    depth = max(float(excess[lo:hi + 1].mean()), 5.0)
    return float(excess[top]), float(start), float(end), depth


def add_arterials(src: Sources, model: TerrainModel, spec: RegionSpec, district: District,
                  town: Town, zone: shapely.Geometry | None, seed: int,
                  rng: np.random.Generator) -> None:
    """Connect the town's main axes to the four district borders (one tunnel at most)."""
    if town.blocks.size:
        kmin, kmax = town.blocks[:, 0].min(), town.blocks[:, 0].max() + 1
        mmin, mmax = town.blocks[:, 1].min(), town.blocks[:, 1].max() + 1
    else:
        kmin = kmax = mmin = mmax = 0
    i, j = district.i, district.j
    exits = [  # (start u, start v, border point, class, line index, edge key)
        (kmax * town.a, 0.0, edge_point(seed, spec, True, i + 1, j), "primary", (11, i + 1, j)),
        (kmin * town.a, 0.0, edge_point(seed, spec, True, i, j), "primary", (11, i, j)),
        (0.0, mmax * town.b, edge_point(seed, spec, False, i, j + 1), "secondary", (12, i, j + 1)),
        (0.0, mmin * town.b, edge_point(seed, spec, False, i, j), "secondary", (12, i, j)),
    ]
    paths = []
    for u, v, end, cls, key in exits:
        start = np.array(town.to_world(np.asarray(u), np.asarray(v)), dtype=float)
        paths.append((_bezier(start, end, float(rng.uniform(-0.12, 0.12))), cls, key))
    hills = [_tunnel(model, p[0]) for p in paths]
    best = int(np.argmax([h[0] for h in hills]))
    threshold = 3.0 if spec.size == "small" else 35.0
    for n, (coords, cls, key) in enumerate(paths):
        lanes = 4 if cls == "primary" else 2
        tunnel = hills[n][1:] if n == best and hills[n][0] >= threshold else None
        number = 100 + int(sub_rng(seed, *key).integers(0, 900))
        attrs = {"class": cls, "width": round(lanes * 3.3 + 2.5, 1), "lanes": lanes,
                 "surface": "asphalt", "name": f"County Road {number}", "oneway": False,
                 "in_town": False, "r": 2.0}
        src.add_cut(coords, polygon_intervals(coords, zone), tunnel, rng, **attrs)


def add_trunks(src: Sources, model: TerrainModel, spec: RegionSpec, district: District) -> None:
    """The district's pieces of the valley trunk roads (one per river, region-wide)."""
    for river in model.rivers:
        side = valley_side(model, river)
        coords = valley_polyline(model, river, side * (river.a2 + TRUNK_OFFSET))
        for i, j, piece in grid_split(coords, spec.bbox[:2], spec.districts):
            if (i, j) == (district.i, district.j):
                src.add(piece, **{"class": "trunk", "width": 18.5, "lanes": 4, "surface": "asphalt",
                                  "name": f"Provincial Highway {3 + 2 * river.index}",
                                  "oneway": False, "level": "ground", "deck_height": None,
                                  "depth": None, "in_town": False, "r": 2.0})


def add_service(src: Sources, district: District, town: Town, rng: np.random.Generator) -> None:
    """A few dead-end service roads leading out of the town's edge."""
    if len(town.blocks) < 4:
        return
    corners = town.block_corners(town.blocks).reshape(-1, 2)
    dist = np.hypot(corners[:, 0] - town.centre[0], corners[:, 1] - town.centre[1])
    outer = np.flatnonzero(dist >= np.quantile(dist, 0.9))
    x0, y0, x1, y1 = district.box
    for n in rng.choice(outer, size=min(len(outer), int(rng.integers(3, 7))), replace=False):
        start = corners[n]
        direction = (start - np.asarray(town.centre)) / max(dist[n], 1e-9)
        end = start + direction * rng.uniform(80.0, 220.0)
        if not (x0 + 30 < end[0] < x1 - 30 and y0 + 30 < end[1] < y1 - 30):
            continue
        surface = str(rng.choice(["concrete", "gravel", "unpaved", "asphalt"]))
        width = round(float(rng.uniform(3.5, 5.0)), 1)
        src.add(np.vstack([start, end]), **{"class": "service", "width": width, "lanes": 1,
                                            "surface": surface, "name": None, "oneway": False,
                                            "level": "ground", "deck_height": None,
                                            "depth": None, "in_town": False, "r": 2.0})


# --- the network ----------------------------------------------------------------------------------


def node_network(src: Sources) -> tuple[np.ndarray, np.ndarray]:
    """Node all source lines at their crossings.

    Returns:
        (pieces, source index of each piece).
    """
    geoms = np.asarray(src.geoms, dtype=object)
    parts = shapely.get_parts(shapely.node(shapely.multilinestrings(geoms)))
    parts = parts[shapely.length(parts) > 0]
    mids = shapely.line_interpolate_point(parts, 0.5, normalized=True)
    found = shapely.STRtree(geoms).query_nearest(mids, all_matches=False)
    order = np.argsort(found[0], kind="stable")
    return parts[found[0][order]], found[1][order]


def district_roads(model: TerrainModel, spec: RegionSpec, district: District, town: Town,
                   zone: shapely.Geometry | None, seed: int, source: str) -> pd.DataFrame:
    """All roads of a district, noded, with standard attributes plus ``in_town`` and ``r``
    (distance to the town centre over its radius) for the pipes and crashes built on them.

    Returns:
        A DataFrame with a ``geometry`` column of LineStrings.
    """
    rng = sub_rng(seed, 101, district.i, district.j)
    src = Sources()
    add_grid(src, town, zone, rng)
    add_arterials(src, model, spec, district, town, zone, seed, rng)
    add_trunks(src, model, spec, district)
    add_service(src, district, town, rng)
    pieces, which = node_network(src)
    frame = pd.DataFrame(src.rows).iloc[which].reset_index(drop=True)
    frame["geometry"] = pieces
    frame["id"] = [f"road-{district.tag}-{n:05d}" for n in range(len(frame))]
    frame["source"] = source
    frame["lineage"] = ("Synthetic: rotated street grid, arterials and valley trunk road laid on "
                        "the synthetic terrain, noded at every junction.")
    return frame


def road_footprints(roads: pd.DataFrame, pad: float = 0.0) -> np.ndarray:
    """Carriageway polygons (buffer by half the width plus ``pad``)."""
    return shapely.buffer(np.asarray(roads["geometry"]), roads["width"].to_numpy() / 2.0 + pad)


__all__ = ["ROAD_COLUMNS", "district_roads", "road_footprints", "river_zone",
           "valley_polyline", "valley_side", "grid_split", "cut_polyline", "RAIL_OFFSET"]
