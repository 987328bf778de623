"""Depression breaching: complete breaching after Lindsay (2016), an alternative to filling that
carves a channel out of each pit instead of raising the depression to its spill level.

Method
------
1. Single-cell pits (lower than all their neighbours) are raised to just below their lowest
   neighbour (one ulp), as Lindsay does, which keeps the channels shallow.
2. A Priority-Flood from the outlets (the grid edge, cells next to nodata, the sea or a mask)
   visits every cell once, lowest first, and records for each cell the cell it was reached from
   (a back-link tree that leads every cell to an outlet over the lowest possible ridges).
3. When the flood reaches a *pit* (a cell with no strictly lower neighbour, including the
   inside of flats), the back-links are followed from it, lowering each cell on the way to one
   ulp below the previous one, until a cell is already lower (or an outlet is reached; an outlet
   in the way is lowered too). The pit then drains by strict descent through the channel.

Every cell ends with a strictly lower neighbour or is an outlet, so steepest descent from any
cell reaches an outlet; apart from step 1 cells are only lowered. The channels follow the flood's
least-ridge paths (the spill points of the depressions), not a least-cost search (Lindsay's
selective/constrained variants are not implemented).

Reference: Lindsay, J. B. (2016) Efficient hybrid breaching-filling sink removal methods for flow
path enforcement in digital elevation models. Hydrological Processes 30(6), 846-857.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from models.hydro._grid import grow, heap_pop, heap_push
from models.hydro.fill import _closed_mask, _offsets, padded_grid


def breach_depressions(dem: np.ndarray, *, outlets: np.ndarray | None = None,
                       nodata_is_outlet: bool = True, sea_level: float | None = None
                       ) -> np.ndarray:
    """Remove depressions by breaching (see the module docstring).

    Args:
        dem: 2-D elevations (metres); NaN = nodata. Integer input is processed as float32.
        outlets, nodata_is_outlet, sea_level: As :func:`models.hydro.fill_depressions`.

    Returns:
        The breached DEM (float32 or float64 as the input), NaN where the input was NaN.
    """
    dem = np.asarray(dem)
    zp, inner, sink = padded_grid(dem, outlets, nodata_is_outlet, sea_level)
    if dem.size == 0:
        return inner.copy()
    nrows, ncols = dem.shape
    _breach(zp.reshape(-1), nrows, ncols, zp.dtype.type(np.inf))
    out = inner.copy()
    if sink is not None:
        out[sink] = dem[sink]
    return out


@njit(cache=True, inline="always")
def _has_lower(z, i, off):
    zi = z[i]
    for k in range(8):
        if z[i + off[k]] < zi:
            return True
    return False


@njit(cache=True)
def _breach(z, nrows, ncols, inf):
    width = ncols + 2
    off = _offsets(width)
    n = z.shape[0]
    closed = _closed_mask(z, nrows, ncols, True)  # padding and NaN walls closed
    for i in range(n):  # sinks (-inf) are not part of the flood either
        if z[i] == -inf:
            closed[i] = 1
    outlet = np.zeros(n, np.uint8)
    for r in range(1, nrows + 1):
        for c in range(1, ncols + 1):
            i = r * width + c
            if closed[i] != 0:
                continue
            if r == 1 or r == nrows or c == 1 or c == ncols:
                outlet[i] = 1
                continue
            for k in range(8):
                zj = z[i + off[k]]
                if zj == -inf or np.isnan(zj):
                    outlet[i] = 1
                    break
    # 1. raise single-cell pits to one ulp below their lowest neighbour; mark pits
    pit = np.zeros(n, np.uint8)
    for i in range(n):
        if closed[i] != 0 or outlet[i] != 0:
            continue
        low = inf
        for k in range(8):
            zj = z[i + off[k]]
            if zj < low:
                low = zj
        if z[i] < low:
            z[i] = np.nextafter(low, -inf)
        if z[i] <= low:
            pit[i] = 1
    # 2. Priority-Flood from the outlets with back-links
    back = np.full(n, -1, np.int32)
    hk = np.empty(max(64, 2 * (nrows + ncols)), z.dtype)
    hi = np.empty(hk.shape[0], np.int32)
    size = 0
    for i in range(n):
        if outlet[i] != 0:
            closed[i] = 1
            if size == hk.shape[0]:
                hk = grow(hk, size)
                hi = grow(hi, size)
            size = heap_push(hk, hi, size, z[i], i)
    while size > 0:
        c, size = heap_pop(hk, hi, size)
        for k in range(8):
            nb = c + off[k]
            if closed[nb] != 0:
                continue
            closed[nb] = 1
            back[nb] = c
            if pit[nb] != 0 and not _has_lower(z, nb, off):
                # 3. carve: one ulp lower per step along the back-links until lower ground
                prev = z[nb]
                cc = back[nb]
                while cc >= 0:
                    if z[cc] < prev:
                        break
                    prev = np.nextafter(prev, -inf)
                    z[cc] = prev
                    if outlet[cc] != 0:
                        break
                    cc = back[cc]
            if size == hk.shape[0]:
                hk = grow(hk, size)
                hi = grow(hi, size)
            size = heap_push(hk, hi, size, z[nb], nb)
