"""LOD2 buildings from roof attributes: walls to the eaves and a roof of a standard type.

Every building comes out as a closed solid (floor + walls + roof meet edge to edge, bit for bit)
with outward normals; planar faces have their own vertices, the dome shares them (smooth).

Roof types (building standard ``roof_type``; ``ridge_direction`` is an azimuth, degrees clockwise
from grid north, default along the longest side of the minimum rotated rectangle):

* ``flat``: the roof at ``eave_z`` (``ridge_z`` ignored).
* ``shed``: one plane from ``eave_z`` on the left of the ridge direction up to ``ridge_z`` on its
  right (looking along the azimuth); the walls follow it.
* ``gable``: two planes meeting at a ridge along the ridge direction through the middle of the
  footprint's extent across it; the walls rise to the roof (gable ends). Works on any footprint.
* ``hip``: the straight skeleton roof (:mod:`gis.mesh.skeleton`), all sides at one slope, its
  highest point at ``ridge_z``. Polygons with holes are handled by the skeleton too.
* ``pyramid``: one triangle per footprint edge up to an apex over the centroid (else the pole of
  inaccessibility) at ``ridge_z``; needs a footprint without holes that is star-shaped from the
  apex, otherwise built as ``hip``.
* ``mansard``: the hip roof stopped at a horizontal inset of ``mansard_inset x roof height``:
  steep faces from the eaves up to ``ridge_z``, a flat top inside.
* ``dome``: a spherical-profile dome, smooth: each footprint vertex (edges subdivided) is pulled
  towards the centre c along ``p = c + cos(phi) (b - c)``, ``z = eave + roof_height sin(phi)``.
  On a circular footprint this is a spherical cap (a hemisphere when the roof height equals the
  radius); on other star-shaped footprints the same profile is scaled to the footprint in every
  direction, so the dome stays inside it and meets the walls at the eaves. Footprints with holes
  or not star-shaped from the centre are built as ``hip``.

When the straight skeleton fails its validation (rare, degenerate input), the roof falls back to
a pyramid where possible, else flat, and the report says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from shapely.ops import polylabel

from gis.mesh._poly import Rings, cap_triangles, earcut_rings, polygon_rings, \
    triangulate_simple_rings
from gis.mesh.base import Mesh
from gis.mesh.lod1 import GROUND, ROOF, WALL, cap, per_feature, prism, walls
from gis.mesh.report import MeshReport, finish
from gis.mesh.skeleton import STATUS_TEXT, TOP_OUTER, straight_skeleton

__all__ = ["lod2_from_attributes", "ROOF_TYPES", "ridge_axes"]

ROOF_TYPES = ("flat", "shed", "gable", "hip", "pyramid", "mansard", "dome")
FLAT, SHED, GABLE, HIP, PYRAMID, MANSARD, DOME = range(7)
#: Footprint vertices closer than this (m) are merged before building LOD2 roofs.
MIN_EDGE = 1e-3
#: Polygons with more vertices get no straight skeleton (O(n^3): about 1 s at 1,000).
MAX_SKELETON_VERTICES = 1000


def lod2_from_attributes(footprints: Sequence | np.ndarray, base_z: Any, eave_z: Any,
                         ridge_z: Any, roof_types: Any, ridge_directions: Any = None, *,
                         report: MeshReport | None = None, mansard_inset: float = 0.35,
                         dome_rings: int = 8, dome_segments: int = 32) -> Mesh:
    """LOD2 solids: walls up to the eaves and a roof of the given type.

    Args:
        footprints: Polygon / MultiPolygon per feature (store CRS).
        base_z: Ground elevation per feature (floor).
        eave_z: Elevation of the eaves (top of the walls), clamped to >= base_z.
        ridge_z: Elevation of the ridge / apex / top (clamped to >= eave_z; equal: flat roof).
        roof_types: Roof type per feature (see module doc; None or "" is flat).
        ridge_directions: Ridge azimuth per feature, degrees clockwise from grid north (NaN or
            None: along the longest side of the minimum rotated rectangle of each polygon).
        report: Collects skipped features and fallbacks. Without it, skipped features raise.
        mansard_inset: Horizontal inset of the mansard's steep part, as a fraction of the roof
            height (0.35: about 71 degrees).
        dome_rings: Rings of vertices from the eaves to the top of a dome.
        dome_segments: Dome edges are subdivided to at most 2 pi R / dome_segments.

    Returns:
        The solids; feature i's vertices have feature id i. ``WallSurface`` walls (gable ends
        included), ``RoofSurface`` roof, ``GroundSurface`` floor.

    Raises:
        DataError: ``report`` is None and a feature had to be skipped (empty or zero-area
            footprint, missing heights, ``ridge_z`` not above ``base_z``).
        ValueError: An unknown roof type.
    """
    local = MeshReport()
    n = len(footprints)
    base = per_feature(base_z, n, "base_z")
    eave = per_feature(eave_z, n, "eave_z")
    ridge = per_feature(ridge_z, n, "ridge_z")
    ok = np.isfinite(base) & np.isfinite(eave) & np.isfinite(ridge) & (ridge > base)
    for i in np.flatnonzero(~ok):
        local.skip(i, f"no usable heights (base {base[i]}, eave {eave[i]}, ridge {ridge[i]})")
    eave = np.where(eave < base, base, eave)
    ridge = np.maximum(ridge, eave)
    kinds = roof_kinds(roof_types, n)
    az = (np.full(n, np.nan) if ridge_directions is None
          else per_feature(ridge_directions, n, "ridge_directions"))
    rings = polygon_rings(footprints, local, keep=ok, min_edge=MIN_EDGE)
    pf = rings.poly_feature
    pk = kinds[pf]
    pk[ridge[pf] <= eave[pf]] = FLAT
    hb, he, hr = base[pf], eave[pf], ridge[pf]
    parts: list[Mesh] = []
    # pyramids and domes need a star-shaped footprint without holes
    cand = np.flatnonzero((pk == PYRAMID) | (pk == DOME))
    centre = np.full((rings.n_polys, 2), np.nan)
    centre[cand] = star_centres(rings, cand)
    for p in cand[np.isnan(centre[cand, 0])]:
        local.note(pf[p], f"{ROOF_TYPES[pk[p]]} roof on a footprint with holes or not "
                          "star-shaped from its centre: built as hip")
        pk[p] = HIP
    # hip and mansard: straight skeleton, one polygon at a time
    failed: list[tuple[int, str]] = []
    for kind in (HIP, MANSARD):
        polys = np.flatnonzero(pk == kind)
        if len(polys):
            mesh, bad = _skeleton_roofs(rings, polys, hb, he, hr, kind, mansard_inset)
            parts.append(mesh)
            failed.extend(bad)
    if failed:
        failed_a = np.asarray([p for p, _ in failed], np.int64)
        centre[failed_a] = star_centres(rings, failed_a)
        for p, why in failed:
            pk[p] = PYRAMID if np.isfinite(centre[p, 0]) else FLAT
            local.note(pf[p], f"straight skeleton failed ({why}): {ROOF_TYPES[pk[p]]} roof")
    polys = np.flatnonzero((pk == FLAT) | (pk == SHED))
    if len(polys):
        parts.append(_planar_roofs(rings, polys, pk, hb, he, hr, az))
    polys = np.flatnonzero(pk == GABLE)
    if len(polys):
        parts.append(_gable_roofs(rings, polys, hb, he, hr, az))
    polys = np.flatnonzero(pk == PYRAMID)
    if len(polys):
        parts.append(_pyramid_roofs(rings, polys, centre[polys], hb, he, hr))
    polys = np.flatnonzero(pk == DOME)
    if len(polys):
        parts.append(_dome_roofs(rings, polys, centre[polys], hb, he, hr, dome_rings,
                                 dome_segments))
    finish(report, local)
    return Mesh.concat(parts)


def roof_kinds(roof_types: Any, n: int) -> np.ndarray:
    """Roof type codes (index into :data:`ROOF_TYPES`) from strings; None/NaN/"" are flat."""
    if isinstance(roof_types, str) or roof_types is None:
        roof_types = [roof_types] * n
    values = list(getattr(roof_types, "values", roof_types))
    if len(values) != n:
        raise ValueError(f"roof_types: {len(values)} values for {n} features")
    out = np.zeros(n, np.int64)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v == "":
            continue
        key = str(v).strip().lower()
        if key not in ROOF_TYPES:
            raise ValueError(f"feature {i}: unknown roof type {v!r}; known: {ROOF_TYPES}")
        out[i] = ROOF_TYPES.index(key)
    return out


def ridge_axes(rings: Rings, polys: np.ndarray, azimuth: np.ndarray) -> np.ndarray:
    """Unit ridge direction (x, y) of each polygon.

    Args:
        rings: The rings.
        polys: Polygons wanted.
        azimuth: Per feature azimuth in degrees clockwise from grid north, NaN for the default
            (longest side of the minimum rotated rectangle).

    Returns:
        (len(polys), 2) unit vectors.
    """
    az = azimuth[rings.poly_feature[polys]]
    rad = np.radians(np.nan_to_num(az))
    d = np.column_stack([np.sin(rad), np.cos(rad)])
    default = np.flatnonzero(~np.isfinite(az))
    if len(default):
        d[default] = long_axes(rings.polys[polys[default]])
    return d


def long_axes(polys: np.ndarray) -> np.ndarray:
    """Direction of the long side of each polygon's minimum-area enclosing rectangle.

    Rotating calipers, vectorised: one side of the minimum rectangle lies on an edge of the
    convex hull (Freeman & Shapira 1975), so every hull edge direction is tried, in coordinates
    local to each polygon; the result is exactly parallel to that hull edge.

    Args:
        polys: Polygons with area.

    Returns:
        (n, 2) unit vectors.
    """
    hull = shapely.convex_hull(polys)
    coords, idx = shapely.get_coordinates(hull, return_index=True)
    count = np.bincount(idx, minlength=len(polys))
    start = np.cumsum(count) - count
    keep = np.ones(len(coords), bool)
    keep[start + count - 1] = False  # closing vertex
    coords, idx = coords[keep], idx[keep]
    h = count - 1
    start = np.cumsum(h) - h
    local = coords - coords[start][idx]
    pos = np.arange(len(coords)) - start[idx]
    nxt = start[idx] + (pos + 1) % h[idx]
    e = local[nxt] - local
    e /= np.maximum(np.hypot(e[:, 0], e[:, 1]), 1e-300)[:, None]
    # every (hull edge, hull vertex) pair of the same polygon
    edge = np.repeat(np.arange(len(coords)), h[idx])
    point = start[idx][edge] + (np.arange(len(edge)) - np.repeat(np.cumsum(h[idx]) - h[idx],
                                                                 h[idx]))
    along = (local[point] * e[edge]).sum(axis=1)
    across = local[point, 1] * e[edge, 0] - local[point, 0] * e[edge, 1]
    first = np.cumsum(h[idx]) - h[idx]
    ext_a = np.maximum.reduceat(along, first) - np.minimum.reduceat(along, first)
    ext_c = np.maximum.reduceat(across, first) - np.minimum.reduceat(across, first)
    area = ext_a * ext_c
    order = np.lexsort((area, idx))
    best = order[start]
    long_dir = np.where((ext_a[best] >= ext_c[best])[:, None], e[best],
                        np.column_stack([-e[best, 1], e[best, 0]]))
    return long_dir


def star_centres(rings: Rings, polys: np.ndarray) -> np.ndarray:
    """A point from which each polygon is strictly star-shaped: centroid, else the pole of
    inaccessibility; NaN for polygons with holes or when neither works."""
    out = np.full((len(polys), 2), np.nan)
    single = rings.poly_ring_count[polys] == 1
    if not single.any():
        return out
    idx = np.flatnonzero(single)
    cent = shapely.get_coordinates(shapely.centroid(rings.polys[polys[idx]]))
    good = _star_from(rings, polys[idx], cent)
    out[idx[good]] = cent[good]
    for k in idx[~good]:
        pole = shapely.get_coordinates(polylabel(rings.polys[polys[k]], 1e-3))[0]
        if _star_from(rings, polys[k:k + 1], pole[None, :])[0]:
            out[k] = pole
    return out


def _star_from(rings: Rings, polys: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """True where every exterior edge of the polygon turns left around its centre."""
    r0 = rings.poly_ring_start[polys]
    s, c = rings.ring_start[r0], rings.ring_count[r0]
    ring = np.repeat(np.arange(len(polys)), c)
    v = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
    i = s[ring] + v
    j = s[ring] + (v + 1) % c[ring]
    a = rings.xy[i] - centres[ring]
    b = rings.xy[j] - centres[ring]
    cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    ok = cross > 1e-9 * (np.abs(a).sum(axis=1) + np.abs(b).sum(axis=1)) ** 2
    return np.logical_and.reduceat(ok, np.cumsum(c) - c) & np.isfinite(centres[:, 0])


def _across(rings: Rings, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinate of each vertex across the ridge (to its right), with per-polygon min, max."""
    vp = rings.vertex_poly()
    ref = rings.xy[rings.ring_start[rings.poly_ring_start]]
    rel = rings.xy - ref[vp]
    s = rel[:, 0] * d[vp, 1] - rel[:, 1] * d[vp, 0]
    first = rings.ring_start[rings.poly_ring_start]
    return s, np.minimum.reduceat(s, first), np.maximum.reduceat(s, first)


def _planar_roofs(rings: Rings, polys: np.ndarray, pk: np.ndarray, hb: np.ndarray,
                  he: np.ndarray, hr: np.ndarray, az: np.ndarray) -> Mesh:
    """Flat and shed roofs: one plane over each polygon, walls up to it."""
    sub = rings.subset(polys)
    vp = sub.vertex_poly()
    zt = he[polys][vp].copy()
    shed = pk[polys] == SHED
    if shed.any():
        d = ridge_axes(rings, polys, az)
        s, smin, smax = _across(sub, d)
        rise = ((s - smin[vp]) / (smax - smin)[vp]) * (hr[polys] - he[polys])[vp]
        zt = np.where(shed[vp], zt + rise, zt)
    return prism(sub, hb[polys][vp], zt)


def _gable_roofs(rings: Rings, polys: np.ndarray, hb: np.ndarray, he: np.ndarray,
                 hr: np.ndarray, az: np.ndarray) -> Mesh:
    """Gable roofs: the footprint triangulation split along the ridge line, lifted."""
    sub = rings.subset(polys)
    vp = sub.vertex_poly()
    feat = sub.poly_feature[vp]
    d = ridge_axes(rings, polys, az)
    s, smin, smax = _across(sub, d)
    s0 = 0.5 * (smin + smax)
    half = 0.5 * (smax - smin)
    eave, ridge = he[polys], hr[polys]
    off = s - s0[vp]
    z = eave[vp] + (ridge - eave)[vp] * np.clip(1.0 - np.abs(off) / half[vp], 0.0, 1.0)
    # vertices within 1e-9 of the half width of the ridge line are on it (no sliver crossings)
    side = np.where(np.abs(off) <= 1e-9 * half[vp], 0, np.sign(off)).astype(np.int64)
    z[side == 0] = ridge[vp][side == 0]
    tris = cap_triangles(sub)
    # crossing points of the ridge line, one per crossed edge (computed once, shared)
    nxt = sub.next_vertex()
    crossing_edges = side * side[nxt] < 0
    ts = side[tris]
    mixed = (ts == 1).any(axis=1) & (ts == -1).any(axis=1)
    lone = np.where(ts[:, 1] == ts[:, 2], 0, np.where(ts[:, 0] == ts[:, 2], 1, 2))
    has0 = (ts == 0).any(axis=1)
    k = np.where(has0, np.argmax(ts == 0, axis=1), lone)
    rot = np.take_along_axis(tris, (k[:, None] + np.arange(3)) % 3, axis=1)
    m1 = mixed & has0
    m2 = mixed & ~has0
    a1, b1, c1 = rot[m1].T
    a2, b2, c2 = rot[m2].T
    pairs = np.concatenate([np.stack([b1, c1], 1), np.stack([a2, b2], 1), np.stack([c2, a2], 1),
                            np.stack([np.flatnonzero(crossing_edges),
                                      nxt[crossing_edges]], 1)])
    lo, hi = pairs.min(axis=1), pairs.max(axis=1)
    keys, inv = np.unique(lo * len(sub.xy) + hi, return_inverse=True)
    klo, khi = keys // len(sub.xy), keys % len(sub.xy)
    t = (s0[vp[klo]] - s[klo]) / (s[khi] - s[klo])
    cross_xy = sub.xy[klo] + (sub.xy[khi] - sub.xy[klo]) * t[:, None]
    nv = len(sub.xy)
    xy_all = np.concatenate([sub.xy, cross_xy])
    z_all = np.concatenate([z, ridge[vp[klo]]])
    feat_all = np.concatenate([feat, feat[klo]])
    cid = inv + nv
    n1, n2 = len(a1), len(a2)
    x1 = cid[:n1]
    x2a, x2b = cid[n1:n1 + n2], cid[n1 + n2:n1 + 2 * n2]
    xw = cid[n1 + 2 * n2:]
    keep = ~mixed
    tri_list = [tris[keep], np.stack([a1, b1, x1], 1), np.stack([a1, x1, c1], 1),
                np.stack([a2, x2a, x2b], 1), np.stack([x2a, b2, c2], 1),
                np.stack([x2a, c2, x2b], 1)]
    kept_side = np.where((ts[keep] > 0).any(axis=1), 1, -1)
    side_list = [kept_side, side[b1], side[c1], side[a2], side[b2], side[b2]]
    roof_t = np.concatenate(tri_list)
    roof_side = np.concatenate(side_list)
    # own vertices per roof plane
    key = (roof_side[:, None] > 0) * len(xy_all) + roof_t
    uniq, rinv = np.unique(key.reshape(-1), return_inverse=True)
    vid = uniq % len(xy_all)
    roof = Mesh(np.column_stack([xy_all[vid], z_all[vid]]), rinv.reshape(-1, 3), feat_all[vid],
                np.full(len(vid), ROOF, np.uint8))
    zb = hb[polys][vp]
    return Mesh.concat([roof, _walls_with_peaks(sub.xy, nxt, zb, z, feat, crossing_edges,
                                                xy_all[xw], z_all[xw]),
                        cap(sub.xy, tris, zb, feat, GROUND, reverse=True)])


def _walls_with_peaks(xy: np.ndarray, nxt: np.ndarray, zb: np.ndarray, zt: np.ndarray,
                      feat: np.ndarray, peaked: np.ndarray, peak_xy: np.ndarray,
                      peak_z: np.ndarray) -> Mesh:
    """Wall quads, and pentagons (a top vertex in between) on the edges marked ``peaked``.

    The pentagon (bottom a, bottom b, top b, peak, top a) is convex (the roof is concave along a
    wall), so it is fanned from the bottom of a.
    """
    i = np.flatnonzero(peaked)
    j = nxt[i]
    m = len(i)
    pos = np.empty((m, 5, 3))
    pos[:, 0, :2] = xy[i]
    pos[:, 1, :2] = xy[j]
    pos[:, 2, :2] = xy[j]
    pos[:, 3, :2] = peak_xy
    pos[:, 4, :2] = xy[i]
    pos[:, 0, 2] = zb[i]
    pos[:, 1, 2] = zb[j]
    pos[:, 2, 2] = zt[j]
    pos[:, 3, 2] = peak_z
    pos[:, 4, 2] = zt[i]
    b = 5 * np.arange(m, dtype=np.int64)
    tri = np.stack([b, b + 1, b + 2, b, b + 2, b + 3, b, b + 3, b + 4], axis=1).reshape(-1, 3)
    return Mesh.concat([walls(xy, nxt, zb, zt, feat, np.flatnonzero(~peaked)),
                        Mesh(pos.reshape(-1, 3), tri, np.repeat(feat[i], 5),
                             np.full(5 * m, WALL, np.uint8))])


def _pyramid_roofs(rings: Rings, polys: np.ndarray, centre: np.ndarray, hb: np.ndarray,
                   he: np.ndarray, hr: np.ndarray) -> Mesh:
    """Pyramids: a triangle from each exterior edge to the apex (own vertices per triangle)."""
    sub = rings.subset(polys)
    vp = sub.vertex_poly()
    feat = sub.poly_feature[vp]
    nxt = sub.next_vertex()
    zb, ze = hb[polys][vp], he[polys][vp]
    n = len(sub.xy)
    pos = np.empty((n, 3, 3))
    pos[:, 0, :2] = sub.xy
    pos[:, 1, :2] = sub.xy[nxt]
    pos[:, 2, :2] = centre[vp]
    pos[:, 0, 2] = ze
    pos[:, 1, 2] = ze
    pos[:, 2, 2] = hr[polys][vp]
    roof = Mesh(pos.reshape(-1, 3), np.arange(3 * n).reshape(-1, 3), np.repeat(feat, 3),
                np.full(3 * n, ROOF, np.uint8))
    return Mesh.concat([roof, prism(sub, zb, ze, roof=False)])


def _dome_roofs(rings: Rings, polys: np.ndarray, centre: np.ndarray, hb: np.ndarray,
                he: np.ndarray, hr: np.ndarray, n_rings: int, n_segments: int) -> Mesh:
    """Domes over star-shaped footprints (see module doc); smooth, shared vertices."""
    sub = rings.subset(polys)
    vp = sub.vertex_poly()
    nxt = sub.next_vertex()
    c = centre[vp]
    radius = np.hypot(*(sub.xy - c).T)
    rmax = np.maximum.reduceat(radius, sub.ring_start)
    seg = sub.xy[nxt] - sub.xy
    pieces = np.maximum(1, np.ceil(np.hypot(*seg.T) * n_segments / (2 * np.pi * rmax[vp]))
                        ).astype(np.int64)
    src = np.repeat(np.arange(len(sub.xy)), pieces)
    frac = (np.arange(int(pieces.sum())) - np.repeat(np.cumsum(pieces) - pieces, pieces)) \
        / pieces[src]
    bxy = sub.xy[src] + seg[src] * frac[:, None]
    bxy[frac == 0] = sub.xy[src[frac == 0]]
    bpoly = vp[src]
    counts = np.bincount(bpoly, minlength=len(polys))
    starts = np.cumsum(counts) - counts
    nb = len(bxy)
    bnext = np.arange(1, nb + 1)
    bnext[starts + counts - 1] = starts
    feat = sub.poly_feature[bpoly]
    cb = centre[bpoly]
    eave, top = he[polys][bpoly], hr[polys][bpoly]
    phi = 0.5 * np.pi * np.arange(n_rings) / n_rings
    # level k of vertex j at index k * nb + j; apexes after all levels
    lev_xy = cb[None] + np.cos(phi)[:, None, None] * (bxy - cb)[None]
    lev_xy[0] = bxy
    lev_z = eave[None] + (top - eave)[None] * np.sin(phi)[:, None]
    apex0 = n_rings * nb
    pos = np.concatenate([np.concatenate([lev_xy.reshape(-1, 2), lev_z.reshape(-1, 1)], 1),
                          np.column_stack([centre, hr[polys]])])
    fid = np.concatenate([np.tile(feat, n_rings), sub.poly_feature])
    k = np.arange(n_rings - 1)[:, None] * nb
    j = np.arange(nb)[None]
    a, b = (k + j).ravel(), (k + bnext[None]).ravel()
    quads = np.stack([a, b, b + nb, a, b + nb, a + nb], 1).reshape(-1, 3)
    top_ring = (n_rings - 1) * nb
    fan = np.stack([top_ring + np.arange(nb), top_ring + bnext, apex0 + bpoly], 1)
    roof = Mesh(pos, np.concatenate([quads, fan]), fid, np.full(len(pos), ROOF, np.uint8))
    zb = hb[polys][bpoly]
    wall = walls(bxy, bnext, zb, eave, feat)
    fpos = np.concatenate([np.column_stack([bxy, zb]), np.column_stack([centre, hb[polys]])])
    floor = Mesh(fpos, np.stack([np.full(nb, nb) + bpoly, bnext, np.arange(nb)], 1),
                 np.concatenate([feat, sub.poly_feature]), np.full(len(fpos), GROUND, np.uint8))
    return Mesh.concat([roof, wall, floor])


def _skeleton_roofs(rings: Rings, polys: np.ndarray, hb: np.ndarray, he: np.ndarray,
                    hr: np.ndarray, kind: int,
                    inset: float) -> tuple[Mesh, list[tuple[int, str]]]:
    """Hip and mansard roofs from the straight skeleton.

    Returns:
        The mesh, and ``(polygon, reason)`` of the polygons whose skeleton failed validation.
    """
    face_xy: list[np.ndarray] = []
    face_z: list[np.ndarray] = []
    face_feat: list[int] = []
    holed: list[tuple[list[np.ndarray], list[np.ndarray], int, float]] = []
    good: list[int] = []
    failed: list[tuple[int, str]] = []
    for p in polys.tolist():
        v0, v1 = rings.poly_vertex_range(p)
        r0 = rings.poly_ring_start[p]
        counts = rings.ring_count[r0:r0 + rings.poly_ring_count[p]]
        xy = rings.xy[v0:v1]
        if len(xy) > MAX_SKELETON_VERTICES:
            failed.append((p, f"{len(xy)} vertices, more than {MAX_SKELETON_VERTICES}"))
            continue
        rise = hr[p] - he[p]
        stop = inset * rise if kind == MANSARD else np.inf
        sk = straight_skeleton(xy, counts, stop)
        if kind == MANSARD and sk.ok and not (sk.face_edge == TOP_OUTER).any():
            # narrower than the inset: stop at 0.8 of the skeleton height instead
            stop = 0.8 * float(sk.times[sk.face_nodes].max())
            sk = straight_skeleton(xy, counts, stop)
        if not sk.ok:
            failed.append((p, STATUS_TEXT[sk.status]))
            continue
        good.append(p)
        tmax = float(sk.times[sk.face_nodes].max()) if kind == HIP else stop
        z = he[p] + rise * (sk.times / tmax)
        z[sk.times >= tmax] = hr[p]
        z[:len(xy)] = he[p]
        f = int(rings.poly_feature[p])
        outers, holes = [], []
        for ring, edge in zip(sk.faces(), sk.face_edge.tolist(), strict=True):
            if edge >= 0:
                face_xy.append(sk.nodes[ring])
                face_z.append(z[ring])
                face_feat.append(f)
            elif edge == TOP_OUTER:
                outers.append(ring)
            else:
                holes.append(ring)
        if outers and not holes:
            for ring in outers:
                face_xy.append(sk.nodes[ring])
                face_z.append(z[ring])
                face_feat.append(f)
        elif outers:
            holed.append(([sk.nodes[r] for r in outers], [sk.nodes[r] for r in holes], f,
                          float(hr[p])))
    parts = []
    if face_xy:
        counts = np.array([len(a) for a in face_xy], np.int64)
        xy = np.concatenate(face_xy)
        tri = triangulate_simple_rings(xy, np.cumsum(counts) - counts, counts)
        parts.append(Mesh(np.column_stack([xy, np.concatenate(face_z)]), tri,
                          np.repeat(face_feat, counts), np.full(len(xy), ROOF, np.uint8)))
    for outers, holes, f, ztop in holed:
        parts.append(_top_with_holes(outers, holes, f, ztop))
    if good:
        sub = rings.subset(np.asarray(good, np.int64))
        vp = sub.vertex_poly()
        parts.append(prism(sub, hb[good][vp], he[good][vp], roof=False))
    return Mesh.concat(parts), failed


def _top_with_holes(outers: list[np.ndarray], holes: list[np.ndarray], feature: int,
                    z: float) -> Mesh:
    """Flat top faces of a mansard whose wavefront left holes (courtyards)."""
    owner = [0] * len(holes)
    if len(outers) > 1:
        shells = [shapely.Polygon(o) for o in outers]
        for k, h in enumerate(holes):
            owner[k] = next((m for m, sh in enumerate(shells)
                             if sh.contains(shapely.Polygon(h).representative_point())), 0)
    parts = []
    for m, outer in enumerate(outers):
        rings = [outer] + [h for k, h in enumerate(holes) if owner[k] == m]
        xy = np.concatenate(rings)
        tri = earcut_rings(xy, [len(r) for r in rings])
        parts.append(Mesh(np.column_stack([xy, np.full(len(xy), z)]), tri,
                          np.full(len(xy), feature), np.full(len(xy), ROOF, np.uint8)))
    return Mesh.concat(parts)
