"""Underground pipes -> closed tubes swept along their centrelines.

Vertical position of the centreline, per feature, first that applies:

1. ``inverts`` (invert_start, invert_end: orthometric elevations of the pipe bottom at the first
   and last vertex): linear in the distance along the line, centre = invert + radius;
2. ``depths`` (ground to the top of the pipe, the pipeline standard's definition): centre =
   DEM ground (bilinear) - depth - radius; the line is densified to the DEM cell size first so the
   pipe follows the ground;
3. the line's own z, taken as the centreline elevation (3D sources such as PLATEAU).

The cross-section is a regular ``segments``-gon of the outside diameter. Frames are carried from
segment to segment by the minimal rotation that turns one segment direction into the next -- two
reflections, the discrete form of the double reflection method of Wang, Juttler, Zheng & Liu
(2008), "Computation of rotation minimizing frames", ACM TOG 27(1) -- so the tube does not twist.
Each joint has one ring shared by both segments, placed in the bisector (mitre) plane where both
segments' prisms meet exactly (stretch clamped at sharp turns): bends have no gaps, and the tube
volume is exactly the polygon area times the centreline length. Both ends are capped, so each
tube is a closed solid. Lateral vertices are shared (smooth shading), caps have their own.
Vertex colours come from the pipeline standard's ``x-ngis.colours`` table by utility.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
from affine import Affine
from numba import njit

from gis.mesh.base import SURFACE_CODES, Mesh
from gis.mesh.lod1 import per_feature
from gis.mesh.report import MeshReport, finish
from gis.mesh.ribbons import dem_cell_size, densified_parts, fill_along
from gis.mesh.terrain import sample_dem

__all__ = ["tubes", "utility_colours", "UNKNOWN_COLOUR"]

#: RGBA of pipes whose utility is missing or not in the standard's table.
UNKNOWN_COLOUR = (136, 136, 136, 255)
#: Largest stretch of a joint ring (1 / cos of half the turn): turns above ~151 degrees.
MAX_STRETCH = 4.0


@cache
def utility_colours() -> dict[str, tuple[int, int, int, int]]:
    """RGBA per utility from the pipeline standard (``x-ngis.colours``)."""
    import standards

    out = {}
    for name, hexa in standards.load("pipeline").meta.get("colours", {}).items():
        h = hexa.lstrip("#")
        out[name] = (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 255)
    return out


@njit(cache=True)
def _transport(d, first):
    """Frame vector a (perpendicular to d) for each segment, carried by minimal rotations."""
    n = d.shape[0]
    a = np.zeros((n, 3))
    for j in range(n):
        if first[j]:
            # horizontal, to the left of the direction; x when the segment is vertical
            ax, ay, az = -d[j, 1], d[j, 0], 0.0
            ln = np.sqrt(ax * ax + ay * ay)
            if ln < 1e-9:
                ax, ay, az = 1.0, 0.0, 0.0
                ln = 1.0
            a[j, 0], a[j, 1], a[j, 2] = ax / ln, ay / ln, az / ln
        else:
            mx = d[j - 1, 0] + d[j, 0]
            my = d[j - 1, 1] + d[j, 1]
            mz = d[j - 1, 2] + d[j, 2]
            ln = np.sqrt(mx * mx + my * my + mz * mz)
            ax, ay, az = a[j - 1, 0], a[j - 1, 1], a[j - 1, 2]
            if ln > 1e-9:
                mx /= ln
                my /= ln
                mz /= ln
                dot = ax * mx + ay * my + az * mz
                ax -= 2.0 * dot * mx
                ay -= 2.0 * dot * my
                az -= 2.0 * dot * mz
            # re-orthogonalise against d (rounding drift only)
            dot = ax * d[j, 0] + ay * d[j, 1] + az * d[j, 2]
            ax -= dot * d[j, 0]
            ay -= dot * d[j, 1]
            az -= dot * d[j, 2]
            ln = np.sqrt(ax * ax + ay * ay + az * az)
            a[j, 0], a[j, 1], a[j, 2] = ax / ln, ay / ln, az / ln
    return a


def tubes(lines_3d_or_2d: Sequence | np.ndarray, diameters_mm: Any, depths: Any,
          dem: np.ndarray | None, transform: Affine | None, inverts: Any = None,
          segments: int = 12, *, utilities: Any = None, step: float | None = None,
          nodata: float | None = None, report: MeshReport | None = None) -> Mesh:
    """Closed tubes along pipe centrelines (see module doc).

    Args:
        lines_3d_or_2d: LineString / MultiLineString per feature (store CRS), with or without z.
        diameters_mm: Outside diameter per feature, millimetres (standard ``diameter``).
        depths: Ground to top of pipe (m) per feature, NaN where unknown (or None).
        dem, transform: Ground DEM and its affine (needed for features placed by depth).
        inverts: None, or (n, 2) / pair of sequences: invert_start, invert_end per feature
            (NaN where unknown).
        segments: Sides of the cross-section polygon (>= 3).
        utilities: Utility per feature (``water``, ``gas``...) for the vertex colours, or None.
        step: Densification step for depth-placed pipes (default the DEM cell size).
        nodata: DEM value meaning missing.
        report: Collects skipped features and notes. Without it, skipped features raise.

    Returns:
        The tubes: feature ids, surface type ``pipe``, RGBA colours.
    """
    if segments < 3:
        raise ValueError("segments must be >= 3")
    local = MeshReport()
    n = len(lines_3d_or_2d)
    radius = per_feature(diameters_mm, n, "diameters_mm") / 2000.0
    depth = per_feature(np.nan if depths is None else depths, n, "depths")
    inv = np.full((n, 2), np.nan)
    if inverts is not None:
        arr = np.asarray(inverts, dtype=np.float64)
        inv = arr.T if arr.shape == (2, n) and n != 2 else arr.reshape(n, 2)
    ok = np.isfinite(radius) & (radius > 0)
    by_invert = np.isfinite(inv).all(axis=1)
    by_depth = ~by_invert & np.isfinite(depth) & ok
    for i in np.flatnonzero(~ok):
        local.skip(i, f"no usable diameter ({radius[i] * 2000.0} mm)")
    if by_depth.any() and (dem is None or transform is None):
        raise ValueError("pipes placed by depth need a DEM and its transform")
    h = 0.0
    if by_depth.any():
        h = dem_cell_size(transform) if step is None else step
    coords, part, pfeat = densified_parts(lines_3d_or_2d, h, local, keep=ok, include_z=True)
    if not len(coords):
        finish(report, local)
        return Mesh.empty()
    feat = pfeat[part]
    xy = coords[:, :2]
    # distance along each feature (parts in order) for the inverts
    step_len = np.zeros(len(coords))
    step_len[1:] = np.linalg.norm(np.diff(coords[:, :2], axis=0), axis=1)
    step_len[np.r_[True, part[1:] != part[:-1]]] = 0.0
    csum = np.cumsum(step_len)
    fstart = np.r_[True, feat[1:] != feat[:-1]]
    along = csum - csum[np.flatnonzero(fstart)][np.cumsum(fstart) - 1]
    total = np.zeros(n)
    np.maximum.at(total, feat, along)
    r = radius[feat]
    z = coords[:, 2].copy()
    fi = by_invert[feat]
    frac = np.divide(along, total[feat], out=np.zeros(len(along)), where=total[feat] > 0)
    z[fi] = (inv[feat, 0] + (inv[feat, 1] - inv[feat, 0]) * frac + r)[fi]
    fd = by_depth[feat]
    if fd.any():
        ground = np.full(len(coords), np.nan)
        ground[fd] = sample_dem(dem, transform, xy[fd, 0], xy[fd, 1], nodata)
        ground = fill_along(ground, part, along)
        z[fd] = (ground - depth[feat] - r)[fd]
    bad = np.isnan(z)
    for f in np.unique(feat[bad]):
        why = ("no DEM elevation under the line" if by_depth[f] else
               "no depth, no inverts and no z on the line")
        local.skip(f, why)
    keep = ~np.isin(feat, np.unique(feat[bad]))
    pts = np.column_stack([xy, z])[keep]
    part, feat, r = part[keep], feat[keep], r[keep]
    mesh = _sweep(pts, part, feat, r, segments)
    colours = utility_colours()
    if utilities is not None:
        util = list(getattr(utilities, "values", utilities))
        if len(util) != n:
            raise ValueError(f"utilities: {len(util)} values for {n} features")
        rgba = np.array([colours.get(u, UNKNOWN_COLOUR) if isinstance(u, str) else UNKNOWN_COLOUR
                         for u in util], np.uint8).reshape(n, 4)
    else:
        rgba = np.tile(np.array(UNKNOWN_COLOUR, np.uint8), (n, 1))
    mesh = Mesh(mesh.positions, mesh.indices, mesh.feature_ids, mesh.surface_types,
                rgba[mesh.feature_ids] if mesh.n_vertices else np.zeros((0, 4), np.uint8))
    finish(report, local)
    return mesh


def _sweep(pts: np.ndarray, part: np.ndarray, feat: np.ndarray, r: np.ndarray,
           segments: int) -> Mesh:
    """Tube vertices, lateral triangles and caps for the centreline vertices of many parts."""
    nv = len(pts)
    if not nv:
        return Mesh.empty()
    first = np.r_[True, part[1:] != part[:-1]]
    last = np.r_[part[1:] != part[:-1], True]
    seg_idx = np.flatnonzero(~last)  # segment j runs from vertex j to j + 1
    d = pts[seg_idx + 1] - pts[seg_idx]
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    a = _transport(d, first[seg_idx])
    b = np.cross(d, a)
    # frame of each vertex: its incoming segment's (the first vertex: its outgoing one)
    idx = np.arange(nv)
    s_in = np.searchsorted(seg_idx, np.where(first, idx, idx - 1))
    s_out = np.searchsorted(seg_idx, np.where(last, idx - 1, idx))
    d_in, d_out = d[s_in], d[s_out]
    m = d_in + d_out
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    theta = 2.0 * np.pi * np.arange(segments) / segments
    radial = (np.cos(theta)[None, :, None] * a[s_in][:, None, :]
              + np.sin(theta)[None, :, None] * b[s_in][:, None, :])
    # project the incoming prism's edges onto the mitre plane (no change at the ends)
    cos_half = np.maximum((d_in * m).sum(axis=1), 1.0 / MAX_STRETCH)
    lam = -(radial @ m[:, :, None])[..., 0] / cos_half[:, None]
    ring = pts[:, None, :] + r[:, None, None] * (radial + lam[..., None] * d_in[:, None, :])
    pos = ring.reshape(-1, 3)
    k = np.arange(segments)
    k1 = (k + 1) % segments
    base = seg_idx[:, None] * segments
    nxt = base + segments
    lateral = np.stack([base + k, base + k1, nxt + k1, base + k, nxt + k1, nxt + k],
                       axis=2).reshape(-1, 3)
    fid = np.repeat(feat, segments)
    pipe = SURFACE_CODES["pipe"]
    parts = [Mesh(pos, lateral, fid, np.full(len(pos), pipe, np.uint8))]
    for ends, flip in ((np.flatnonzero(first), True), (np.flatnonzero(last), False)):
        ring_v = ring[ends]
        centre = pts[ends]
        e = len(ends)
        cpos = np.concatenate([ring_v.reshape(-1, 3), centre])
        rb = np.arange(e)[:, None] * segments
        c = (e * segments + np.arange(e))[:, None]
        tri = np.stack([np.broadcast_to(c, (e, segments)), rb + k, rb + k1], axis=2)
        if flip:
            tri = tri[..., ::-1]
        parts.append(Mesh(cpos, tri.reshape(-1, 3),
                          np.concatenate([np.repeat(feat[ends], segments), feat[ends]]),
                          np.full(len(cpos), pipe, np.uint8)))
    return Mesh.concat(parts)
