"""CityGML boundary surfaces (3D polygons with holes) -> triangles.

Each polygon is triangulated in its own plane: the plane normal is the Newell normal of its
exterior ring (M. E. Newell's method, as in Sutherland, Sproull & Schumacker 1974, "A
characterization of ten hidden-surface algorithms"), which is robust for nearly collinear and
slightly non-planar rings; the rings are projected onto a right-handed basis (u, v, n) of that
plane, triangulated in 2D (fan for convex rings without holes, earcut otherwise, holes kept) and
the triangles reuse the original 3D vertices. A ring counter-clockwise seen from the side its
normal points to stays counter-clockwise in (u, v), so the triangles keep the polygon's own
orientation (CityGML: counter-clockwise seen from outside = outward normals). Each polygon gets
its own vertices (flat shading).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely

from gis.mesh._poly import as_geometry_array, earcut_rings, triangulate_simple_rings
from gis.mesh.base import SURFACE_CODES, Mesh
from gis.mesh.report import MeshReport, finish

__all__ = ["triangulate_surfaces", "newell_normals"]


def newell_normals(xyz: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Newell normal of each ring (length = twice the area of its projection on its plane).

    Args:
        xyz: (n, 3) ring vertices, rings one after the other, not closed.
        starts, counts: First vertex and number of vertices of each ring.

    Returns:
        (r, 3) normals, pointing to the side the ring is counter-clockwise seen from.
    """
    if not len(starts):
        return np.zeros((0, 3))
    ring = np.repeat(np.arange(len(starts)), counts)
    pos = np.arange(len(xyz)) - starts[ring]
    nxt = starts[ring] + (pos + 1) % counts[ring]
    p = xyz - xyz[starts[ring]]
    q = p[nxt]
    terms = np.cross(p, q)
    return np.column_stack([np.bincount(ring, terms[:, k], len(starts)) for k in range(3)])


def _surface_codes(surface_types: Any, n: int) -> np.ndarray:
    """uint8 codes from names (SURFACE_CODES; others 0) or integer codes."""
    if isinstance(surface_types, str):
        surface_types = [surface_types] * n
    values = np.asarray(list(getattr(surface_types, "values", surface_types)), dtype=object)
    if len(values) != n:
        raise ValueError(f"surface_types: {len(values)} values for {n} polygons")
    return np.array([SURFACE_CODES.get(v, 0) if isinstance(v, str) else int(v) for v in values],
                    dtype=np.uint8)


def triangulate_surfaces(polygons_3d: Sequence | np.ndarray, feature_ids: Any,
                         surface_types: Any, *, report: MeshReport | None = None) -> Mesh:
    """Triangles of 3D polygons (CityGML boundary surfaces), each in its own plane.

    Args:
        polygons_3d: Polygon / MultiPolygon with z per row (holes allowed), e.g. the geometry of
            a ``*_surfaces`` table (:func:`gis.io.citygml.read_citygml_buildings` extras).
        feature_ids: Per row, the feature (row of the caller's attribute table) it belongs to,
            e.g. ``pandas.factorize(surfaces.building_id)[0]``; integers >= 0.
        surface_types: Per row, a :data:`SURFACE_CODES` name (``RoofSurface``...; other names
            become 0 "unknown") or code.
        report: Receives the number of degenerate polygons left out (``report.degenerate``):
            fewer than 3 distinct vertices or no area. Rows without geometry are ignored.

    Returns:
        The triangles, one copy of the vertices per polygon, with the polygons' orientation.
    """
    local = MeshReport()
    geoms = as_geometry_array(polygons_3d)
    n = len(geoms)
    fids = np.asarray(feature_ids, dtype=np.int64).reshape(-1)
    if len(fids) != n:
        raise ValueError(f"feature_ids: {len(fids)} values for {n} polygons")
    if (fids < 0).any():
        raise ValueError("feature_ids must be >= 0")
    codes = _surface_codes(surface_types, n)
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    parts, prow = shapely.get_parts(geoms[present], return_index=True)
    prow = np.flatnonzero(present)[prow]
    ispoly = shapely.get_type_id(parts) == 3
    local.degenerate += int((~ispoly).sum())
    parts, prow = parts[ispoly], prow[ispoly]
    rings, rpart = shapely.get_rings(parts, return_index=True)
    coords, cring = shapely.get_coordinates(rings, include_z=True, return_index=True)
    nr = len(rings)
    count = np.bincount(cring, minlength=nr)
    keep = np.ones(len(coords), bool)
    keep[np.cumsum(count)[count > 0] - 1] = False
    xyz, vring = coords[keep], cring[keep]
    xyz = np.where(np.isnan(xyz), 0.0, xyz)
    # drop consecutive repeated vertices (twice: runs)
    for _ in range(2):
        count = np.bincount(vring, minlength=nr)
        start = np.cumsum(count) - count
        pos = np.arange(len(xyz)) - start[vring]
        nxt = start[vring] + (pos + 1) % np.maximum(count[vring], 1)
        dup = (xyz[nxt] == xyz).all(axis=1) & (count[vring] > 1)
        xyz, vring = xyz[~dup], vring[~dup]
    count = np.bincount(vring, minlength=nr)
    start = np.cumsum(count) - count
    normal = newell_normals(xyz, start, count)
    is_ext = np.zeros(nr, bool)
    if nr:
        is_ext[np.concatenate([[0], np.flatnonzero(np.diff(rpart)) + 1])] = True
    # a ring is degenerate when its area is tiny against the square of its extent
    ext = np.zeros(nr)
    if len(xyz):
        span = np.abs(xyz - xyz[start[vring]])
        np.maximum.at(ext, vring, span.max(axis=1))
    nlen = np.linalg.norm(normal, axis=1)
    ring_ok = (count >= 3) & (nlen > 1e-12 * np.maximum(ext, 1e-300) ** 2)
    part_ok = np.zeros(len(parts), bool)
    part_ok[rpart[is_ext & ring_ok]] = True
    local.degenerate += int((~part_ok).sum())
    ring_ok &= part_ok[rpart]
    # basis of each polygon's plane from its exterior normal
    pn = np.zeros((len(parts), 3))
    pn[rpart[is_ext]] = normal[is_ext]
    pn /= np.maximum(np.linalg.norm(pn, axis=1, keepdims=True), 1e-300)
    axis = np.where((np.abs(pn[:, 2]) < 0.9)[:, None], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0])
    u = np.cross(axis, pn)
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-300)
    v = np.cross(pn, u)
    vk = ring_ok[vring]
    xyz, vring = xyz[vk], vring[vk]
    rings_kept = np.flatnonzero(ring_ok)
    remap = np.full(nr, -1)
    remap[rings_kept] = np.arange(len(rings_kept))
    vring = remap[vring]
    rpart = rpart[rings_kept]
    count = np.bincount(vring, minlength=len(rings_kept))
    start = np.cumsum(count) - count
    vpart = rpart[vring]
    nrings = np.bincount(rpart, minlength=len(parts))
    first_ring = np.cumsum(nrings) - nrings
    origin = xyz[start[np.minimum(first_ring, max(len(start) - 1, 0))]] if len(xyz) else pn
    rel = xyz - origin[vpart]
    uv = np.column_stack([(rel * u[vpart]).sum(axis=1), (rel * v[vpart]).sum(axis=1)])
    # holes clockwise in (u, v), whatever their orientation in the file
    area2 = _signed_areas(uv, start, count)
    holes_ccw = np.flatnonzero((area2 > 0) & ~is_ext[rings_kept])
    if len(holes_ccw):
        idx = np.arange(len(uv))
        for r in holes_ccw:
            idx[start[r]:start[r] + count[r]] = idx[start[r]:start[r] + count[r]][::-1]
        uv, xyz = uv[idx], xyz[idx]
    simple = nrings == 1
    tris = [triangulate_simple_rings(uv, start[first_ring[simple]], count[first_ring[simple]])]
    for p in np.flatnonzero(nrings > 1):
        rr = np.arange(first_ring[p], first_ring[p] + nrings[p])
        v0 = start[rr[0]]
        v1 = start[rr[-1]] + count[rr[-1]]
        tris.append(earcut_rings(uv[v0:v1], count[rr]) + v0)
    tri = np.concatenate(tris) if tris else np.zeros((0, 3), np.int64)
    row = prow[vpart]
    mesh = Mesh(xyz, tri, fids[row], codes[row])
    finish(report, local)
    return mesh


def _signed_areas(uv: np.ndarray, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Twice the signed area of each 2D ring."""
    if not len(start):
        return np.zeros(0)
    ring = np.repeat(np.arange(len(start)), count)
    pos = np.arange(len(uv)) - start[ring]
    nxt = start[ring] + (pos + 1) % count[ring]
    p = uv - uv[start[ring]]
    q = p[nxt]
    return np.bincount(ring, p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0], len(start))

