"""Road and rail centrelines -> ribbons draped on the DEM, bridge decks, tunnel floors.

Lines are densified to about the DEM cell size so the ribbon follows the terrain, then offset by
half the width to the left and right with mitred joins (the miter is clamped to ``miter_limit``
half-widths at sharp turns, where the inner side may fold). Elevations:

* ``ground``: each edge vertex at the DEM (bilinear) under it plus ``offset`` (a few cm against
  z-fighting with the terrain); the ribbon tilts with the cross slope.
* ``bridge``: the deck is level across, at the DEM under the centreline plus ``deck_height``, and
  is a closed slab ``deck_thickness`` thick (top, bottom, sides, end caps) so that it is seen from
  below and from the side too. The deck follows the ground profile along the line, which is the
  standard's definition (height above the ground); a straight deck across a valley needs a deck
  profile in the data.
* ``tunnel``: a level ribbon at the DEM under the centreline minus ``depth`` (seen from above,
  i.e. with the terrain hidden or translucent).

Where the DEM is missing (NaN, nodata, outside) at some vertices, the elevation is interpolated
along the line from the vertices that have one; a part with no elevation at all is skipped and
reported. Ribbon surfaces share their vertices (smooth); bridge sides and caps have their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from affine import Affine

from gis.mesh._poly import as_geometry_array
from gis.mesh.base import SURFACE_CODES, Mesh
from gis.mesh.lod1 import per_feature
from gis.mesh.report import MeshReport, finish
from gis.mesh.terrain import sample_dem

__all__ = ["ribbons", "densified_parts", "dem_cell_size"]

_LEVELS = {None: 0, "": 0, "ground": 0, "bridge": 1, "tunnel": 2}


def dem_cell_size(transform: Affine) -> float:
    """The smaller side of a DEM cell, in CRS units."""
    return float(min(np.hypot(transform.a, transform.d), np.hypot(transform.b, transform.e)))


def densified_parts(lines: Sequence | np.ndarray, step: float, local: MeshReport,
                    keep: np.ndarray | None = None,
                    include_z: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices of every LineString part, densified to ``step``, without repeated vertices.

    Args:
        lines: LineString / MultiLineString per feature.
        step: Maximum segment length (``<= 0``: no densification).
        local: Report for non-line features (skipped) and degenerate parts (counted).
        keep: Optional mask of the features to use (the others are ignored, not reported).
        include_z: Keep z (NaN where the line has none).

    Returns:
        ``coords`` (n, 2 or 3), ``part`` (n,) part of each vertex (0.. consecutive),
        ``part_feature`` (parts,) feature of each part. Parts have >= 2 vertices.
    """
    geoms = as_geometry_array(lines)
    if keep is not None:
        geoms[~np.asarray(keep, bool)] = None
    tid = shapely.get_type_id(geoms)
    usable = (tid == 1) | (tid == 5)
    wanted = np.ones(len(geoms), bool) if keep is None else np.asarray(keep, bool)
    for i in np.flatnonzero((~usable | shapely.is_empty(geoms)) & wanted):
        local.skip(i, "empty or missing line" if tid[i] < 0 or shapely.is_empty(geoms[i])
                   else f"a {geoms[i].geom_type}, not a line")
    usable &= ~shapely.is_empty(geoms)
    parts, pfeat = shapely.get_parts(geoms[usable], return_index=True)
    pfeat = np.flatnonzero(usable)[pfeat]
    if step > 0 and len(parts):
        parts = shapely.segmentize(parts, step)
    coords, vpart = shapely.get_coordinates(parts, include_z=include_z, return_index=True)
    same = np.zeros(len(coords), bool)
    if len(coords) > 1:
        same[1:] = (vpart[1:] == vpart[:-1]) & (coords[1:, :2] == coords[:-1, :2]).all(axis=1)
    coords, vpart = coords[~same], vpart[~same]
    count = np.bincount(vpart, minlength=len(parts))
    good = count >= 2
    local.degenerate += int((~good).sum())
    keep = good[vpart]
    remap = np.cumsum(good) - 1
    return coords[keep], remap[vpart[keep]], pfeat[good]


def fill_along(values: np.ndarray, part: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """NaN values replaced by linear interpolation along each part (by distance ``dist``);
    parts without any value stay NaN."""
    out = values.copy()
    bad = np.isnan(out)
    for p in np.unique(part[bad]):
        sel = np.flatnonzero(part == p)
        ok = ~bad[sel]
        if ok.any():
            out[sel[~ok]] = np.interp(dist[sel[~ok]], dist[sel[ok]], out[sel[ok]])
    return out


def ribbons(lines: Sequence | np.ndarray, widths: Any, levels: Any, deck_heights: Any,
            depths: Any, dem: np.ndarray, transform: Affine, *, offset: float = 0.05,
            step: float | None = None, kind: str = "road", miter_limit: float = 3.0,
            deck_thickness: float = 1.0, default_deck_height: float = 6.0,
            default_depth: float = 10.0, nodata: float | None = None,
            report: MeshReport | None = None) -> Mesh:
    """Ribbons of road or rail centrelines on the DEM (see module doc).

    Args:
        lines: LineString / MultiLineString per feature, in the DEM's CRS (the store CRS).
        widths: Width per feature (m), or one value.
        levels: ``ground`` / ``bridge`` / ``tunnel`` per feature (None: ground), or one value.
        deck_heights: Bridge deck height above the ground (m) per feature (NaN: default).
        depths: Tunnel depth below the ground (m) per feature (NaN: default).
        dem: (rows, cols) ground elevations.
        transform: Affine of the DEM grid.
        offset: Lift of ground ribbons above the DEM (m).
        step: Densification step (m); default the DEM cell size.
        kind: ``road`` or ``rail``: the surface type of ground-level ribbons.
        miter_limit: Largest miter, in half-widths.
        deck_thickness: Thickness of bridge decks (m).
        default_deck_height: Deck height for bridges without one (noted in the report).
        default_depth: Depth for tunnels without one (noted).
        nodata: DEM value meaning missing.
        report: Collects skipped features and notes. Without it, skipped features raise.

    Returns:
        The ribbons; feature i's vertices have feature id i. Surface types ``road``/``rail``,
        ``bridge_deck``, ``tunnel``.
    """
    if kind not in ("road", "rail"):
        raise ValueError(f"kind must be road or rail, not {kind!r}")
    local = MeshReport()
    n = len(lines)
    width = per_feature(widths, n, "widths")
    level = _levels(levels, n)
    deck = per_feature(np.nan if deck_heights is None else deck_heights, n, "deck_heights")
    depth = per_feature(np.nan if depths is None else depths, n, "depths")
    for i in np.flatnonzero((level == 1) & ~np.isfinite(deck)):
        local.note(i, f"bridge without deck_height: {default_deck_height} m")
    for i in np.flatnonzero((level == 2) & ~np.isfinite(depth)):
        local.note(i, f"tunnel without depth: {default_depth} m")
    deck = np.where(np.isfinite(deck), deck, default_deck_height)
    depth = np.where(np.isfinite(depth), depth, default_depth)
    bad_w = ~(np.isfinite(width) & (width > 0))
    for i in np.flatnonzero(bad_w):
        local.skip(i, f"no usable width ({width[i]})")
    h = dem_cell_size(transform) if step is None else step
    xy, part, pfeat = densified_parts(lines, h, local, keep=~bad_w)
    if not len(xy):
        finish(report, local)
        return Mesh.empty()
    nv = len(xy)
    last = np.r_[part[1:] != part[:-1], True]
    first = np.r_[True, part[1:] != part[:-1]]
    seg = np.zeros((nv, 2))
    seg[:-1] = xy[1:] - xy[:-1]
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    seg[last] = 0.0
    seg_len[last] = 1.0
    d_out = seg / seg_len[:, None]
    d_in = np.zeros((nv, 2))
    d_in[1:] = d_out[:-1]
    d_in[first] = d_out[first]
    d_out[last] = d_in[last]
    n_in = np.column_stack([-d_in[:, 1], d_in[:, 0]])
    n_out = np.column_stack([-d_out[:, 1], d_out[:, 0]])
    den = 1.0 + (n_in * n_out).sum(axis=1)
    miter = np.where((den > 1e-9)[:, None], (n_in + n_out) / np.maximum(den, 1e-9)[:, None], n_in)
    mlen = np.hypot(miter[:, 0], miter[:, 1])
    miter *= (np.minimum(mlen, miter_limit) / mlen)[:, None]
    feat = pfeat[part]
    half = 0.5 * width[feat]
    left = xy + miter * half[:, None]
    right = xy - miter * half[:, None]
    dist = np.zeros(nv)
    dist[1:] = np.cumsum(np.where(last[:-1], 0.0, seg_len[:-1]))
    lev = level[feat]
    zc = fill_along(sample_dem(dem, transform, xy[:, 0], xy[:, 1], nodata), part, dist)
    zl = fill_along(sample_dem(dem, transform, left[:, 0], left[:, 1], nodata), part, dist)
    zr = fill_along(sample_dem(dem, transform, right[:, 0], right[:, 1], nodata), part, dist)
    zl = np.where(np.isnan(zl), zc, zl)
    zr = np.where(np.isnan(zr), zc, zr)
    nodem = np.isnan(zc) | np.isnan(zl) | np.isnan(zr)
    bad_parts = np.unique(part[nodem])
    for f in np.unique(pfeat[bad_parts]):
        local.skip(f, "no DEM elevation under the line")
    keep_v = ~np.isin(part, bad_parts)
    zl = np.where(lev == 0, zl + offset, np.where(lev == 1, zc + deck[feat], zc - depth[feat]))
    zr = np.where(lev == 0, zr + offset, zl)
    left, right, zl, zr, feat, lev, first, last = (
        a[keep_v] for a in (left, right, zl, zr, feat, lev, first, last))
    codes = np.array([SURFACE_CODES[kind], SURFACE_CODES["bridge_deck"], SURFACE_CODES["tunnel"]],
                     np.uint8)
    pos = np.empty((len(feat), 2, 3))
    pos[:, 0, :2], pos[:, 0, 2] = left, zl
    pos[:, 1, :2], pos[:, 1, 2] = right, zr
    i = np.flatnonzero(~last)
    li, ri = 2 * i, 2 * i + 1
    tri = np.stack([li, ri, ri + 2, li, ri + 2, li + 2], axis=1).reshape(-1, 3)
    parts = [Mesh(pos.reshape(-1, 3), tri, np.repeat(feat, 2), np.repeat(codes[lev], 2))]
    if (lev == 1).any():
        parts.append(_deck_underside(pos, feat, first, last, lev == 1, deck_thickness,
                                     codes[1]))
    finish(report, local)
    return Mesh.concat(parts)


def _levels(levels: Any, n: int) -> np.ndarray:
    """Level codes 0 ground, 1 bridge, 2 tunnel."""
    if levels is None or isinstance(levels, str):
        levels = [levels] * n
    values = list(getattr(levels, "values", levels))
    if len(values) != n:
        raise ValueError(f"levels: {len(values)} values for {n} features")
    out = np.zeros(n, np.int64)
    for i, v in enumerate(values):
        key = None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).lower()
        if key not in _LEVELS:
            raise ValueError(f"feature {i}: unknown level {v!r} (ground, bridge, tunnel)")
        out[i] = _LEVELS[key]
    return out


def _deck_underside(pos: np.ndarray, feat: np.ndarray, first: np.ndarray, last: np.ndarray,
                    sel: np.ndarray, thickness: float, code: int) -> Mesh:
    """Underside, sides and end caps closing bridge decks into slabs."""
    idx = np.flatnonzero(sel)
    remap = np.full(len(pos), -1)
    remap[idx] = np.arange(len(idx))
    top = pos[idx]
    bot = top.copy()
    bot[:, :, 2] -= thickness
    f = feat[idx]
    k = len(idx)
    seg = np.flatnonzero(sel & ~last)
    s = remap[seg]
    # underside: the top's triangles reversed, shared vertices
    li, ri = 2 * s, 2 * s + 1
    under = Mesh(bot.reshape(-1, 3), np.stack([li, ri + 2, ri, li, li + 2, ri + 2],
                                              axis=1).reshape(-1, 3),
                 np.repeat(f, 2), np.full(2 * k, code, np.uint8))
    out = [under]
    # sides: own vertices per face; order T_i, T_i+1, B_i+1, B_i
    for side, flip in ((0, False), (1, True)):
        quad = np.stack([top[s, side], top[s + 1, side], bot[s + 1, side], bot[s, side]], 1)
        out.append(_quads(quad, f[s], code, flip))
    for ends, flip in ((remap[np.flatnonzero(sel & first)], False),
                       (remap[np.flatnonzero(sel & last)], True)):
        quad = np.stack([top[ends, 0], bot[ends, 0], bot[ends, 1], top[ends, 1]], 1)
        out.append(_quads(quad, f[ends], code, flip))
    return Mesh.concat(out)


def _quads(quad: np.ndarray, features: np.ndarray, code: int, flip: bool) -> Mesh:
    """(k, 4, 3) quads as two triangles each, own vertices, winding reversed when ``flip``."""
    b = 4 * np.arange(len(quad))
    t = np.stack([b, b + 1, b + 2, b, b + 2, b + 3], axis=1).reshape(-1, 3)
    if flip:
        t = t[:, ::-1]
    return Mesh(quad.reshape(-1, 3), t, np.repeat(features, 4),
                np.full(4 * len(quad), code, np.uint8))
