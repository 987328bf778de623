"""Hexagon grid for points without a network: count crashes per hexagon, contiguity weights.

Where no road network is at hand, crashes are aggregated to a regular grid of pointy-top
hexagons (ArcGIS's Optimized Hot Spot Analysis does the same with a fishnet or hexagons);
hexagons have one kind of neighbour (six, sharing an edge), so rook and queen contiguity
coincide. Cells are addressed by axial coordinates ``(q, r)`` (Patel, "Hexagonal grids", Red
Blob Games): centre ``x = s sqrt(3) (q + r/2)``, ``y = 1.5 s r`` for circumradius ``s``; a point
goes to the hexagon whose centre is nearest, found by rounding its fractional cube coordinates.
The grid covers the points' bounding box plus one ring, so empty cells count as zeros.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from scipy import sparse

SQRT3 = np.sqrt(3.0)
MAX_CELLS = 5_000_000


def hex_index(xy: np.ndarray, size: float, origin: tuple[float, float] = (0.0, 0.0)
              ) -> tuple[np.ndarray, np.ndarray]:
    """Axial ``(q, r)`` of the hexagon (circumradius ``size``) containing each point."""
    x = (xy[:, 0] - origin[0]) / size
    y = (xy[:, 1] - origin[1]) / size
    qf = SQRT3 / 3 * x - y / 3
    rf = 2.0 / 3.0 * y
    sf = -qf - rf
    q, r, s = np.round(qf), np.round(rf), np.round(sf)
    dq, dr, ds = np.abs(q - qf), np.abs(r - rf), np.abs(s - sf)
    fix_q = (dq > dr) & (dq > ds)
    fix_r = ~fix_q & (dr > ds)
    q = np.where(fix_q, -r - s, q)
    r = np.where(fix_r, -q - s, r)
    return q.astype(np.int64), r.astype(np.int64)


def hex_centres(q: np.ndarray, r: np.ndarray, size: float,
                origin: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    return np.column_stack([origin[0] + size * SQRT3 * (q + r / 2.0),
                            origin[1] + size * 1.5 * r])


def hex_polygons(centres: np.ndarray, size: float) -> np.ndarray:
    ang = np.deg2rad(30 + 60 * np.arange(6))
    ring = np.column_stack([np.cos(ang), np.sin(ang)]) * size
    coords = centres[:, None, :] + ring[None, :, :]
    coords = np.concatenate([coords, coords[:, :1]], axis=1)
    return shapely.polygons(coords)


def hex_grid(points: gpd.GeoSeries | gpd.GeoDataFrame, size: float,
             weight: np.ndarray | None = None) -> tuple[gpd.GeoDataFrame, sparse.csr_matrix,
                                                       np.ndarray]:
    """Hexagons over the points' extent with their (weighted) counts, and contiguity weights.

    Returns:
        (cells GeoDataFrame with ``q``, ``r``, ``count``, ``value``, geometry; weights CSR
        (six edge neighbours, no diagonal); cell index of each point).
    """
    geoms = np.asarray(points.geometry.values if hasattr(points, "geometry") else points)
    xy = shapely.get_coordinates(geoms)
    if len(xy) == 0:
        raise ValueError("no points to grid")
    q, r = hex_index(xy, size)
    q0, q1 = q.min() - 1, q.max() + 1
    r0, r1 = r.min() - 1, r.max() + 1
    # a parallelogram of axial cells covers the box once rows are offset by -r/2
    rr = np.arange(r0, r1 + 1)
    span_q = (q0 - (r1 - r0 + 1) // 2 - 1, q1 + (r1 - r0 + 1) // 2 + 1)
    nq = span_q[1] - span_q[0] + 1
    if nq * len(rr) > MAX_CELLS:
        raise ValueError(f"hexagon size {size} gives too many cells ({nq * len(rr)}); use larger")
    qq, rg = np.meshgrid(np.arange(span_q[0], span_q[1] + 1), rr)
    qq, rg = qq.ravel(), rg.ravel()
    c = hex_centres(qq, rg, size)
    lo = xy.min(axis=0) - 2 * size
    hi = xy.max(axis=0) + 2 * size
    keep = np.all((c >= lo) & (c <= hi), axis=1)
    qq, rg, c = qq[keep], rg[keep], c[keep]
    key = {(a, b): i for i, (a, b) in enumerate(zip(qq.tolist(), rg.tolist()))}
    cell = np.array([key[(a, b)] for a, b in zip(q.tolist(), r.tolist())], dtype=np.int64)
    n = len(qq)
    wts = np.ones(len(cell)) if weight is None else np.asarray(weight, float)
    count = np.bincount(cell, minlength=n)
    value = np.bincount(cell, weights=wts, minlength=n)
    rows, cols = [], []
    for dq, dr in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1)):
        for i, (a, b) in enumerate(zip((qq + dq).tolist(), (rg + dr).tolist())):
            j = key.get((a, b))
            if j is not None:
                rows.append(i)
                cols.append(j)
    w = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    w.sort_indices()
    crs = getattr(points, "crs", None)
    cells = gpd.GeoDataFrame({"q": qq, "r": rg, "count": count, "value": value},
                             geometry=hex_polygons(c, size), crs=crs)
    return cells, w, cell
