"""Flow accumulation over D8 and D-infinity directions, in a cached topological order.

Order
-----
A cell can be finished once all its donors are. :func:`flow_order_d8` packs each cell's
receiver and donor count into one byte (one sequential pass), then walks: every cell without
donors starts a walk downstream that appends cells as they become complete and stops at the
first receiver that still waits for other donors (Kahn's algorithm without a queue; D-infinity,
with two receivers, keeps a small stack). The result lists every cell, upstream before
downstream; it serves accumulation, HAND and catchments (which read it backwards) alike, so the
ordering is paid once per direction grid.

Accumulation
------------
``acc = weight + sum of the donors' acc`` (a cell with no upstream has 1 x its weight). Given an
order, D8 accumulation is one pass pushing each cell's total to its receiver. Without an order
the walk above accumulates as it goes (one pass over the grid instead of two). D-infinity splits
a cell's total between the two neighbours bracketing its angle, in proportion to the angular
distance (Tarboton 1997): with ``a`` the angle and ``k = floor(a / (pi/4))``, neighbour ``k``
(counter-clockwise from east: E, NE, N, NW, W, SW, S, SE) gets ``1 - f`` and ``k + 1`` gets
``f = a / (pi/4) - k``; shares below 1e-5 go to the other neighbour (as TauDEM drops them).
Flow sent off the grid or into nodata leaves the system (reported by :func:`outflow_dinf`).

Codes pointing off the grid are outlets. Nothing here checks for cycles: directions from
:func:`models.hydro.d8_directions` have none; with foreign directions a cycle's cells are left
out of the order (and keep their own weight).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from models.hydro._grid import CODE_TO_K, ESRI_DCOL, ESRI_DROW

# D-infinity neighbours counter-clockwise from east, as (row, col) offsets.
DINF_DROW = np.array([0, -1, -1, -1, 0, 1, 1, 1], np.int64)
DINF_DCOL = np.array([1, 1, 0, -1, -1, -1, 0, 1], np.int64)
MIN_SHARE = 1e-5
DONE = np.uint8(255)  # donor count of a cell reached by a walk (no cell has 255 donors)


def _check_dirs(dirs: np.ndarray) -> np.ndarray:
    dirs = np.asarray(dirs)
    if dirs.ndim != 2:
        raise ValueError(f"directions must be 2-D, got shape {dirs.shape}")
    if dirs.dtype != np.uint8:
        if dirs.size and (dirs.min() < 0 or dirs.max() > 255):
            raise ValueError("D8 codes must be 0..255 (ESRI: 1, 2, 4, ..., 128; 0 = none)")
        dirs = dirs.astype(np.uint8)
    return np.ascontiguousarray(dirs)


@njit(cache=True, inline="always")
def _offsets_esri(ncols):
    off = np.empty(8, np.int64)
    for k in range(8):
        off[k] = ESRI_DROW[k] * ncols + ESRI_DCOL[k]
    return off


@njit(cache=True)
def _pack_d8(dirs):
    """One uint8 per cell: bit 7 = drains to a neighbour in the grid, bits 4-6 = which (ESRI
    order), bits 0-3 = how many neighbours drain into it. A single sequential pass (scatter)."""
    nrows, ncols = dirs.shape
    packed = np.zeros(nrows * ncols, np.uint8)
    i = 0
    for r in range(nrows):
        for c in range(ncols):
            k = CODE_TO_K[dirs[r, c]]
            if k != 255:
                rr = r + ESRI_DROW[k]
                cc = c + ESRI_DCOL[k]
                if 0 <= rr < nrows and 0 <= cc < ncols:
                    packed[i] |= np.uint8(0x80 | (k << 4))
                    packed[rr * ncols + cc] += np.uint8(1)
            i += 1
    return packed


@njit(cache=True)
def _walk(packed, ncols, acc, order, want_acc, want_order):
    """Kahn walk over packed D8 cells: appends to ``order`` and/or pushes ``acc`` downstream.
    Returns how many cells were ordered."""
    off = _offsets_esri(ncols)
    n = packed.shape[0]
    pos = 0
    for i in range(n):
        if packed[i] & 0x0F != 0:
            continue
        j = i
        while True:
            if want_order:
                order[pos] = j
            pos += 1
            p = packed[j]
            if p & 0x80 == 0:
                break
            r = j + off[(p >> 4) & 7]
            if want_acc:
                acc[r] += acc[j]
            q = packed[r] - np.uint8(1)
            if q & 0x0F != 0:
                packed[r] = q
                break
            packed[r] = q | np.uint8(0x0F)  # complete: never a walk start later
            j = r
    return pos


@njit(cache=True)
def _push_in_order(packed, ncols, order, acc):
    off = _offsets_esri(ncols)
    for t in range(order.shape[0]):
        j = order[t]
        p = packed[j]
        if p & 0x80 != 0:
            acc[j + off[(p >> 4) & 7]] += acc[j]


def flow_order_d8(dirs: np.ndarray) -> np.ndarray:
    """Topological order of a D8 direction grid: int32 flat indices, upstream first.

    Every cell appears once (cells caught in a cycle of foreign directions are left out).
    """
    dirs = _check_dirs(dirs)
    order = np.empty(dirs.size, np.int32)
    pos = _walk(_pack_d8(dirs), dirs.shape[1], np.empty(0), order, False, True)
    return order[:pos]


def _weights(shape: tuple[int, int], weights: np.ndarray | None) -> np.ndarray:
    if weights is None:
        return np.ones(shape, np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != shape:
        raise ValueError(f"weights have shape {w.shape}, directions {shape}")
    return np.array(w, dtype=np.float64, order="C", copy=True)


def accumulate_d8(dirs: np.ndarray, weights: np.ndarray | None = None,
                  order: np.ndarray | None = None) -> np.ndarray:
    """Weighted D8 flow accumulation (float64), counting each cell itself.

    Args:
        dirs: ESRI D8 codes (0 = no outflow).
        weights: Per-cell weights (default 1: the number of cells drained, itself included).
        order: A :func:`flow_order_d8` of ``dirs`` to reuse; without it the order is walked
            on the fly.
    """
    dirs = _check_dirs(dirs)
    acc = _weights(dirs.shape, weights)
    packed = _pack_d8(dirs)
    flat = acc.reshape(-1)
    if order is None:
        _walk(packed, dirs.shape[1], flat, np.empty(0, np.int32), True, False)
    else:
        _push_in_order(packed, dirs.shape[1], np.asarray(order, dtype=np.int32), flat)
    return acc


# --- D-infinity ----------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _dinf_split(a):
    """(k1, k2, share of k2) for angle ``a``; k = -1 when there is no direction."""
    if not (a >= 0.0) or a > 7.0:
        return -1, -1, 0.0
    q = a / (math.pi / 4)
    k = int(math.floor(q))
    f = q - k
    k = k % 8
    if f < MIN_SHARE:
        return k, -1, 0.0
    if f > 1.0 - MIN_SHARE:
        return (k + 1) % 8, -1, 0.0
    return k, (k + 1) % 8, f


@njit(cache=True, parallel=True)
def _dinf_targets(angle, valid, use_valid):
    """Per cell one byte: bits 0-2 + bit 3 = first receiver (0..7 counter-clockwise from east)
    and whether it exists, bits 4-6 + bit 7 = the second; and the second's share (float32).
    Receivers off the grid or outside ``valid`` are left out (their share leaves)."""
    nrows, ncols = angle.shape
    code = np.zeros((nrows, ncols), np.uint8)
    f2 = np.zeros((nrows, ncols), np.float32)
    for r in prange(nrows):
        for c in range(ncols):
            a, b, f = _dinf_split(angle[r, c])
            v = 0
            if a >= 0:
                rr = r + DINF_DROW[a]
                cc = c + DINF_DCOL[a]
                if 0 <= rr < nrows and 0 <= cc < ncols and (not use_valid or valid[rr, cc]):
                    v |= 0x08 | a
            if b >= 0:
                rr = r + DINF_DROW[b]
                cc = c + DINF_DCOL[b]
                if 0 <= rr < nrows and 0 <= cc < ncols and (not use_valid or valid[rr, cc]):
                    v |= 0x80 | (b << 4)
            code[r, c] = v
            f2[r, c] = f
    return code, f2


@njit(cache=True, parallel=True)
def _dinf_donor_counts(code):
    nrows, ncols = code.shape
    out = np.zeros((nrows, ncols), np.uint8)
    for r in prange(nrows):
        for c in range(ncols):
            n = 0
            for k in range(8):
                rr = r - DINF_DROW[k]
                cc = c - DINF_DCOL[k]
                if 0 <= rr < nrows and 0 <= cc < ncols:
                    v = code[rr, cc]
                    if ((v & 0x08) != 0 and (v & 0x07) == k) or (
                            (v & 0x80) != 0 and ((v >> 4) & 0x07) == k):
                        n += 1
            out[r, c] = n
    return out


@njit(cache=True)
def _dinf_walk(code, f2, indeg, acc, order, want_order, want_acc):
    """Kahn walk over D-infinity (up to two receivers): follows one ready receiver directly and
    stacks the other. Fills ``order`` and/or accumulates; returns how many cells were ordered."""
    nrows, ncols = code.shape
    n = nrows * ncols
    off = np.empty(8, np.int64)
    for k in range(8):
        off[k] = DINF_DROW[k] * ncols + DINF_DCOL[k]
    cf = code.reshape(-1)
    ff = f2.reshape(-1)
    deg = indeg.reshape(-1)
    a = acc.reshape(-1)
    stack = np.empty(256, np.int32)
    size = 0
    pos = 0
    for i in range(n):
        if deg[i] != 0:
            continue
        j = i
        while True:
            if want_order:
                order[pos] = j
            pos += 1
            v = cf[j]
            nxt = -1
            if v & 0x08:
                r = j + off[v & 0x07]
                if want_acc:
                    a[r] += a[j] * (1.0 - ff[j])
                d = deg[r] - 1
                if d == 0:
                    deg[r] = DONE
                    nxt = r
                else:
                    deg[r] = d
            if v & 0x80:
                r = j + off[(v >> 4) & 0x07]
                if want_acc:
                    a[r] += a[j] * ff[j]
                d = deg[r] - 1
                if d == 0:
                    deg[r] = DONE
                    if nxt < 0:
                        nxt = r
                    else:
                        if size == stack.shape[0]:
                            grown = np.empty(stack.shape[0] * 2, np.int32)
                            grown[:size] = stack[:size]
                            stack = grown
                        stack[size] = r
                        size += 1
                else:
                    deg[r] = d
            if nxt < 0:
                if size == 0:
                    break
                size -= 1
                nxt = stack[size]
            j = nxt
    return pos


@njit(cache=True)
def _dinf_push(code, f2, order, acc):
    ncols = code.shape[1]
    off = np.empty(8, np.int64)
    for k in range(8):
        off[k] = DINF_DROW[k] * ncols + DINF_DCOL[k]
    cf = code.reshape(-1)
    ff = f2.reshape(-1)
    a = acc.reshape(-1)
    for t in range(order.shape[0]):
        j = order[t]
        v = cf[j]
        if v & 0x08:
            a[j + off[v & 0x07]] += a[j] * (1.0 - ff[j])
        if v & 0x80:
            a[j + off[(v >> 4) & 0x07]] += a[j] * ff[j]


def _dinf_prepare(angle: np.ndarray, valid: np.ndarray | None):
    angle = np.ascontiguousarray(angle, dtype=np.float32)
    if angle.ndim != 2:
        raise ValueError(f"angles must be 2-D, got shape {angle.shape}")
    if valid is None:
        return _dinf_targets(angle, np.ones((1, 1), np.bool_), False)
    valid = np.ascontiguousarray(valid, dtype=np.bool_)
    if valid.shape != angle.shape:
        raise ValueError(f"valid mask has shape {valid.shape}, angles {angle.shape}")
    return _dinf_targets(angle, valid, True)


def flow_order_dinf(angle: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Topological order (int32 flat indices, upstream first) of a D-infinity angle grid.

    Args:
        angle: Radians counter-clockwise from east; negative or NaN = no direction.
        valid: Optional mask of cells that may receive flow (nodata cells may not).
    """
    code, f2 = _dinf_prepare(angle, valid)
    order = np.empty(code.size, np.int32)
    pos = _dinf_walk(code, f2, _dinf_donor_counts(code), np.empty(0), order, True, False)
    return order[:pos]


def accumulate_dinf(angle: np.ndarray, weights: np.ndarray | None = None,
                    order: np.ndarray | None = None, *,
                    valid: np.ndarray | None = None) -> np.ndarray:
    """Weighted D-infinity flow accumulation (float64), counting each cell itself.

    A cell's total is split between the two neighbours bracketing its angle in proportion to
    the angular distance. Shares aimed off the grid or at a cell outside ``valid`` leave.

    Args:
        angle: Radians counter-clockwise from east; negative or NaN = no direction.
        weights: Per-cell weights (default 1).
        order: A :func:`flow_order_dinf` of the same angles to reuse.
        valid: Optional mask of cells that may receive flow.
    """
    code, f2 = _dinf_prepare(angle, valid)
    acc = _weights(code.shape, weights)
    if order is None:
        _dinf_walk(code, f2, _dinf_donor_counts(code), acc, np.empty(0, np.int32), False, True)
    else:
        _dinf_push(code, f2, np.asarray(order, dtype=np.int32), acc)
    return acc


def outflow_dinf(angle: np.ndarray, acc: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Total that leaves the system: the accumulation of cells without a direction plus the
    shares sent off the grid or out of ``valid`` (for mass-balance checks)."""
    code, f2 = _dinf_prepare(angle, valid)
    kept = np.where(code & 0x08, 1.0 - f2, 0.0) + np.where(code & 0x80, f2, 0.0)
    return float(np.sum(np.asarray(acc, dtype=np.float64) * (1.0 - kept)))


def specific_catchment_area(dinf_accum: np.ndarray, dx: float) -> np.ndarray:
    """Specific catchment area (m^2 per metre of contour, TauDEM's ``sca``): the D-infinity
    accumulation of cell counts times the cell width."""
    return np.asarray(dinf_accum, dtype=np.float64) * float(dx)
