"""Flow directions: D8 (steepest descent to one of 8 neighbours) and D-infinity (Tarboton 1997),
with flats drained by the gradients of Barnes, Lehman & Mulla (2014b).

D8 codes follow ESRI: 1=E, 2=SE, 4=S, 8=SW, 16=W, 32=NW, 64=N, 128=NE and 0 for no outflow
(an outlet, an unresolvable pit, or nodata). The drop to a neighbour is divided by its distance
(``dx`` east-west, ``dy`` north-south, the diagonal between); ties go to the first neighbour in
the code order. Outlets are cells on the grid edge, cells next to nodata (NaN) and cells of an
optional mask: water may leave the grid there, so they get 0 when no neighbour is lower.

Flats (Barnes et al. 2014b, "An efficient assignment of drainage direction over flat surfaces
in raster digital elevation models", Computers & Geosciences 62, 128-135): a *flat* cell has no
lower neighbour and is not an outlet. Each flat is labelled from its *low edges* (cells of the
same elevation that drain, or outlets). Two breadth-first passes build an integer mask: one
away from higher terrain (starting at flat cells next to higher ground), one towards lower
terrain (starting at the low edges); the mask is ``2 * towards + (max_away - away)``, so water
on a flat runs to the low edge and keeps off the high edge, which gives convergent, realistic
paths instead of parallel lines. A flat cell then points at the neighbour of the same flat with
the smallest mask value.

D-infinity (Tarboton, D. G. (1997) A new method for the determination of flow directions and
upslope areas in grid digital elevation models. Water Resources Research 33(2), 309-319): the
steepest downward slope over the 8 triangular facets around a cell, as an angle in radians
counter-clockwise from east in [0, 2 pi) and its slope (drop / distance). The facet table,
float32 arithmetic and first-maximum rule follow TauDEM's ``SET2``/``VSLOPE`` so angles and slopes
agree with TauDEM's ``DinfFlowdir`` away from flats. On flats the angle is that of the resolved
D8 direction and the slope 0 (TauDEM also writes slope 0 there). Facets that need a neighbour off
the grid or in nodata are skipped; cells with no downward facet that are outlets get angle -1.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from models.hydro._grid import ESRI_CODES, ESRI_DCOL, ESRI_DROW, grow

NOFLOW = np.uint8(0)


def _spacing(dx: float, dy: float | None) -> tuple[float, float]:
    dx = float(abs(dx))
    dy = dx if dy is None else float(abs(dy))
    if not (dx > 0 and dy > 0 and math.isfinite(dx) and math.isfinite(dy)):
        raise ValueError(f"cell sizes must be positive, got dx={dx}, dy={dy}")
    return dx, dy


def _outlet_mask(z: np.ndarray, outlets: np.ndarray | None) -> np.ndarray:
    if outlets is None:
        return np.zeros(z.shape, np.uint8)
    mask = np.asarray(outlets, dtype=bool)
    if mask.shape != z.shape:
        raise ValueError(f"outlets mask has shape {mask.shape}, DEM has {z.shape}")
    return mask.astype(np.uint8)


@njit(cache=True, inline="always")
def _is_outlet(z, extra, r, c, nrows, ncols):
    if r == 0 or c == 0 or r == nrows - 1 or c == ncols - 1 or extra[r, c] != 0:
        return True
    for k in range(8):
        if np.isnan(z[r + ESRI_DROW[k], c + ESRI_DCOL[k]]):
            return True
    return False


@njit(cache=True, parallel=True)
def _d8_steepest(z, dx, dy, extra):
    """Steepest-descent D8 index (0..7 in ESRI order), 254 = flat (no lower neighbour, not an
    outlet), 255 = outlet with no lower neighbour or nodata."""
    nrows, ncols = z.shape
    dist = np.empty(8, np.float64)
    diag = math.hypot(dx, dy)
    for k in range(8):
        dist[k] = diag if ESRI_DROW[k] != 0 and ESRI_DCOL[k] != 0 else (
            dx if ESRI_DROW[k] == 0 else dy)
    out = np.empty((nrows, ncols), np.uint8)
    for r in prange(nrows):
        for c in range(ncols):
            zc = z[r, c]
            if np.isnan(zc):
                out[r, c] = 255
                continue
            best = 0.0
            bk = -1
            for k in range(8):
                rr = r + ESRI_DROW[k]
                cc = c + ESRI_DCOL[k]
                if rr < 0 or rr >= nrows or cc < 0 or cc >= ncols:
                    continue
                zn = z[rr, cc]
                if np.isnan(zn) or zn >= zc:
                    continue
                s = (zc - zn) / dist[k]
                if s > best:
                    best = s
                    bk = k
            if bk >= 0:
                out[r, c] = bk
            elif _is_outlet(z, extra, r, c, nrows, ncols):
                out[r, c] = 255
            else:
                out[r, c] = 254
    return out


@njit(cache=True)
def _resolve_flats(z, steep):
    """Barnes et al. (2014b) flat mask (int32, 0 off flats) and flat labels (int32)."""
    nrows, ncols = z.shape
    n = nrows * ncols
    labels = np.zeros(n, np.int32)
    mask = np.zeros(n, np.int32)
    zf = z.reshape(-1)
    sf = steep.reshape(-1)
    low = np.empty(1024, np.int32)
    nlow = 0
    high = np.empty(1024, np.int32)
    nhigh = 0
    # edges of flats
    for r in range(nrows):
        for c in range(ncols):
            i = r * ncols + c
            s = sf[i]
            if s == 255 and np.isnan(zf[i]):
                continue
            zc = zf[i]
            for k in range(8):
                rr = r + ESRI_DROW[k]
                cc = c + ESRI_DCOL[k]
                if rr < 0 or rr >= nrows or cc < 0 or cc >= ncols:
                    continue
                j = rr * ncols + cc
                if s != 254:  # drains (or outlet): a low edge if next to a flat cell of its height
                    if sf[j] == 254 and zf[j] == zc:
                        if nlow == low.shape[0]:
                            low = grow(low, nlow)
                        low[nlow] = i
                        nlow += 1
                        break
                else:  # flat: a high edge if next to higher ground
                    if zf[j] > zc:
                        if nhigh == high.shape[0]:
                            high = grow(high, nhigh)
                        high[nhigh] = i
                        nhigh += 1
                        break
    # label each flat from its low edges (cells of the same elevation, connected)
    stack = np.empty(1024, np.int32)
    nlabels = 0
    for t in range(nlow):
        i0 = low[t]
        if labels[i0] != 0:
            continue
        nlabels += 1
        labels[i0] = nlabels
        zc = zf[i0]
        size = 0
        stack[size] = i0
        size += 1
        while size > 0:
            size -= 1
            i = stack[size]
            r = i // ncols
            c = i - r * ncols
            for k in range(8):
                rr = r + ESRI_DROW[k]
                cc = c + ESRI_DCOL[k]
                if rr < 0 or rr >= nrows or cc < 0 or cc >= ncols:
                    continue
                j = rr * ncols + cc
                if labels[j] == 0 and zf[j] == zc:
                    labels[j] = nlabels
                    if size == stack.shape[0]:
                        stack = grow(stack, size)
                    stack[size] = j
                    size += 1
    flat_height = np.zeros(nlabels + 1, np.int32)
    # away from higher terrain (breadth first, one ring per loop)
    cur = np.empty(max(nhigh, 16), np.int32)
    ncur = 0
    for t in range(nhigh):
        i = high[t]
        if labels[i] != 0:  # flats without a low edge cannot drain; skip them
            cur[ncur] = i
            ncur += 1
            mask[i] = 1
    nxt = np.empty(1024, np.int32)
    loops = 1
    while ncur > 0:
        nn = 0
        for t in range(ncur):
            i = cur[t]
            lab = labels[i]
            if flat_height[lab] < loops:
                flat_height[lab] = loops
            r = i // ncols
            c = i - r * ncols
            for k in range(8):
                rr = r + ESRI_DROW[k]
                cc = c + ESRI_DCOL[k]
                if rr < 0 or rr >= nrows or cc < 0 or cc >= ncols:
                    continue
                j = rr * ncols + cc
                if labels[j] == lab and mask[j] == 0 and sf[j] == 254:
                    mask[j] = loops + 1
                    if nn == nxt.shape[0]:
                        nxt = grow(nxt, nn)
                    nxt[nn] = j
                    nn += 1
        cur, nxt = nxt, cur
        ncur = nn
        loops += 1
    # invert the away gradient: max_away - away
    for i in range(n):
        if mask[i] > 0:
            mask[i] = flat_height[labels[i]] - mask[i]
    # towards lower terrain, doubled and added
    done = np.zeros(n, np.uint8)
    cur = np.empty(max(nlow, 16), np.int32)
    ncur = 0
    for t in range(nlow):
        i = low[t]
        if done[i] == 0:
            done[i] = 1
            cur[ncur] = i
            ncur += 1
    loops = 1
    while ncur > 0:
        nn = 0
        for t in range(ncur):
            i = cur[t]
            if sf[i] == 254:
                mask[i] += 2 * loops
            else:
                mask[i] = 2 * loops  # low edge
            lab = labels[i]
            r = i // ncols
            c = i - r * ncols
            for k in range(8):
                rr = r + ESRI_DROW[k]
                cc = c + ESRI_DCOL[k]
                if rr < 0 or rr >= nrows or cc < 0 or cc >= ncols:
                    continue
                j = rr * ncols + cc
                if labels[j] == lab and done[j] == 0 and sf[j] == 254:
                    done[j] = 1
                    if nn == nxt.shape[0]:
                        nxt = grow(nxt, nn)
                    nxt[nn] = j
                    nn += 1
        cur, nxt = nxt, cur
        ncur = nn
        loops += 1
    return mask.reshape(nrows, ncols), labels.reshape(nrows, ncols)


@njit(cache=True, parallel=True)
def _d8_codes(steep, mask, labels):
    """ESRI codes from the steepest index, flats pointing down the flat mask."""
    nrows, ncols = steep.shape
    out = np.zeros((nrows, ncols), np.uint8)
    for r in prange(nrows):
        for c in range(ncols):
            s = steep[r, c]
            if s < 8:
                out[r, c] = ESRI_CODES[s]
            elif s == 254 and labels[r, c] != 0:
                lab = labels[r, c]
                m = mask[r, c]
                bk = -1
                for k in range(8):
                    rr = r + ESRI_DROW[k]
                    cc = c + ESRI_DCOL[k]
                    if rr < 0 or rr >= nrows or cc < 0 or cc >= ncols:
                        continue
                    if labels[rr, cc] == lab and mask[rr, cc] < m:
                        m = mask[rr, cc]
                        bk = k
                if bk >= 0:
                    out[r, c] = ESRI_CODES[bk]
    return out


def resolve_flats(filled: np.ndarray, *, outlets: np.ndarray | None = None) -> np.ndarray:
    """Barnes et al. (2014b) gradient mask over the flats of a filled DEM.

    Args:
        filled: Depression-filled elevations (NaN = nodata).
        outlets: Optional extra outlet cells (besides the grid edge and cells next to nodata).

    Returns:
        int32 array: 0 off flats; on each flat (and its low edges) ``2 * towards + (max_away -
        away)`` where ``towards`` counts steps from the low edge and ``away`` steps from higher
        ground. Descending it leads across the flat to its outlet, away from higher terrain.
    """
    z = np.ascontiguousarray(filled, dtype=np.float64)
    steep = _d8_steepest(z, 1.0, 1.0, _outlet_mask(z, outlets))
    mask, _ = _resolve_flats(z, steep)
    return mask


def d8_directions(filled: np.ndarray, dx: float, dy: float | None = None, *,
                  outlets: np.ndarray | None = None) -> np.ndarray:
    """D8 flow directions (ESRI codes, uint8) with flats drained (see the module docstring).

    Args:
        filled: Depression-filled elevations (metres); NaN = nodata (code 0).
        dx, dy: Cell width and height in metres (``dy`` defaults to ``dx``).
        outlets: Optional extra outlet cells.
    """
    dx, dy = _spacing(dx, dy)
    z = np.ascontiguousarray(filled, dtype=np.float64)
    return d8_from_steepest(z, _d8_steepest(z, dx, dy, _outlet_mask(z, outlets)))


def d8_from_steepest(z: np.ndarray, steep: np.ndarray) -> np.ndarray:
    """ESRI codes from the steepest-descent indices of :func:`_d8_steepest` (float64 ``z``),
    flats drained (the second half of :func:`d8_directions`)."""
    if (steep == 254).any():
        mask, labels = _resolve_flats(z, steep)
    else:
        mask = labels = np.zeros(z.shape, np.int32)
    return _d8_codes(steep, mask, labels)


# --- D-infinity ----------------------------------------------------------------------------------
# TauDEM SET2 facet table, facets k = 1..8: e1 = first neighbour (cardinal), e2 = second
# (diagonal), as (row, col) offsets; ID1/ID2 pick dx (1) or dy (2) as the distances to them;
# the angle is ANGC * pi/2 + ANGF * r.
_F_R1 = np.array([0, -1, -1, 0, 0, 1, 1, 0], np.int64)
_F_C1 = np.array([1, 0, 0, -1, -1, 0, 0, 1], np.int64)
_F_R2 = np.array([-1, -1, -1, -1, 1, 1, 1, 1], np.int64)
_F_C2 = np.array([1, 1, -1, -1, -1, -1, 1, 1], np.int64)
_F_ID1 = np.array([1, 2, 2, 1, 1, 2, 2, 1], np.int64)
_F_ANGC = np.array([0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0], np.float64)
_F_ANGF = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0], np.float64)


@njit(cache=True, inline="always")
def _vslope(e0, e1, e2, d1, d2, dd, ad):
    """TauDEM VSLOPE in float32: (slope, angle within the facet); ``ad = atan2(d2, d1)``."""
    s1 = np.float32((e0 - e1) / d1)
    s2 = np.float32((e1 - e2) / d2)
    if s2 == 0 and s1 == 0:
        a = np.float32(0.0)
    else:
        a = np.float32(math.atan2(s2, s1))
    if a < 0.0:
        return s1, np.float32(0.0)
    if a > ad:
        return np.float32((e0 - e2) / dd), ad
    return np.float32(math.sqrt(s1 * s1 + s2 * s2)), a


@njit(cache=True, inline="always")
def _facet_slope(e0, e1, e2, d1, d2, dd):
    """The slope of :func:`_vslope` without the arctangent: ``atan2(s2, s1) < 0`` exactly when
    ``s2 < 0``, and it exceeds ``atan2(d2, d1)`` when ``s1 <= 0 < s2`` or ``s2 d1 > s1 d2``."""
    s1 = np.float32((e0 - e1) / d1)
    s2 = np.float32((e1 - e2) / d2)
    if s2 < 0.0:
        return s1
    if s2 > 0.0 and (s1 <= 0.0 or s2 * d1 > s1 * d2):
        return np.float32((e0 - e2) / dd)
    if s2 == 0.0 and s1 < 0.0:  # atan2(0, -x) = pi
        return np.float32((e0 - e2) / dd)
    return np.float32(math.sqrt(s1 * s1 + s2 * s2))


@njit(cache=True, parallel=True)
def _dinf(z, dx, dy, d8):
    nrows, ncols = z.shape
    angle = np.full((nrows, ncols), np.float32(-1.0), np.float32)
    slope = np.zeros((nrows, ncols), np.float32)
    dxf = np.float32(dx)
    dyf = np.float32(dy)
    dd = np.float32(math.sqrt(dxf * dxf + dyf * dyf))
    ad_x = np.float32(math.atan2(dyf, dxf))  # facets whose first neighbour is east/west
    ad_y = np.float32(math.atan2(dxf, dyf))
    half_pi = math.pi / 2
    two_pi = np.float32(2 * math.pi)
    for r in prange(nrows):
        for c in range(ncols):
            e0 = z[r, c]
            if np.isnan(e0):
                slope[r, c] = np.nan
                continue
            smax = np.float32(0.0)
            kd = -1
            for k in range(8):
                r1 = r + _F_R1[k]
                c1 = c + _F_C1[k]
                r2 = r + _F_R2[k]
                c2 = c + _F_C2[k]
                if (r1 < 0 or r1 >= nrows or c1 < 0 or c1 >= ncols or r2 < 0 or r2 >= nrows
                        or c2 < 0 or c2 >= ncols):
                    continue
                e1 = z[r1, c1]
                e2 = z[r2, c2]
                if np.isnan(e1) or np.isnan(e2):
                    continue
                if _F_ID1[k] == 1:
                    s = _facet_slope(e0, e1, e2, dxf, dyf, dd)
                else:
                    s = _facet_slope(e0, e1, e2, dyf, dxf, dd)
                if s > smax:
                    smax = s
                    kd = k
            if kd >= 0:
                e1 = z[r + _F_R1[kd], c + _F_C1[kd]]
                e2 = z[r + _F_R2[kd], c + _F_C2[kd]]
                if _F_ID1[kd] == 1:
                    s, a = _vslope(e0, e1, e2, dxf, dyf, dd, ad_x)
                else:
                    s, a = _vslope(e0, e1, e2, dyf, dxf, dd, ad_y)
                ang = np.float32(_F_ANGC[kd] * half_pi + _F_ANGF[kd] * a)
                if ang >= two_pi:
                    ang = np.float32(0.0)
                angle[r, c] = ang
                slope[r, c] = s
            else:
                code = d8[r, c]
                if code != 0:  # a resolved flat: the D8 direction's angle, slope 0
                    k = 0
                    while ESRI_CODES[k] != code:
                        k += 1
                    ang = math.atan2(-ESRI_DROW[k] * dy, ESRI_DCOL[k] * dx)
                    if ang < 0:
                        ang += 2 * math.pi
                    angle[r, c] = np.float32(ang)
    return angle, slope


def dinf_directions(filled: np.ndarray, dx: float, dy: float | None = None, *,
                    outlets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """D-infinity flow angle and slope (Tarboton 1997, TauDEM conventions).

    Args:
        filled: Depression-filled elevations (metres); NaN = nodata.
        dx, dy: Cell width and height in metres (``dy`` defaults to ``dx``).
        outlets: Optional extra outlet cells (for the flat resolution).

    Returns:
        ``(angle, slope)`` float32: angle in radians counter-clockwise from east in
        [0, 2 pi), -1 where undefined (outlets without a downward facet, nodata); slope as
        drop/distance (tan), 0 on flats, NaN on nodata.
    """
    dx, dy = _spacing(dx, dy)
    z32 = np.ascontiguousarray(filled, dtype=np.float32)
    d8 = d8_directions(z32, dx, dy, outlets=outlets)
    return _dinf(z32, dx, dy, d8)
