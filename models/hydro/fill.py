"""Depression filling: Priority-Flood (Barnes, Lehman & Mulla 2014) with the Zhou, Sun & Fu
(2016) short-cut, and Priority-Flood+epsilon.

Method
------
Priority-Flood grows inwards from the outlets: a priority queue holds the cells on the boundary
of the region already known to drain; the lowest is taken, and each unvisited neighbour is
either raised to its level (it lies in a depression) or kept (it drains through it). The filled
surface is unique: each cell ends at the lowest level at which a path from it reaches an outlet
without climbing above that level (the minimax path elevation). Any correct variant therefore
gives the same numbers, which is why the result can be compared bit for bit with RichDEM.

Zhou et al. (2016) observed that most cells need not pass through the queue: after a cell is
taken, a neighbour lower than or equal to it starts a *depression* fill (a plain stack floods
every connected cell not above that level, raising it), and a higher neighbour starts a *trace*
that climbs the slope (every unvisited neighbour higher than the traced cell drains through it
and keeps its elevation). Only a traced cell that still has an unvisited neighbour not above it
goes into the priority queue. Here both the fill and the trace share one int32 stack.

Priority-Flood+epsilon (``epsilon=True``, Barnes et al. 2014, Algorithm 3) raises each filled
cell to the next representable value above the cell it was reached from (``nextafter``), so
every cell has a strictly lower neighbour and flats disappear. Unlike plain filling its output
depends on the processing order, so this module replays RichDEM's
``PriorityFloodEpsilon_Barnes2014`` exactly: perimeter cells pushed row 0/last row by column,
then first/last column by row; neighbours in RichDEM's order (W, NW, N, NE, E, SE, S, SW);
a FIFO "pit" queue served before the priority queue unless the queue's top has the same
elevation; and the libstdc++ binary-heap sift rules (:mod:`._grid`), so ties leave in the same
order.

Outlets and nodata
------------------
Cells on the grid edge are outlets (kept at their elevation). NaN cells (with
``nodata_is_outlet``), cells at or below ``sea_level`` and cells of the ``outlets`` mask are
*sinks*: they keep their value and every neighbour drains into them. Internally a sink is
flooded at -inf, which is exactly how RichDEM treats its ``no_data`` value (a number below every
elevation; its Priority-Flood has no special nodata test), so for nodata regions connected to
the grid edge (the sea west of Taiwan) the results agree bit for bit. Sinks that do not touch
the edge through other sinks (an inland nodata hole, a fish pond below sea level) are seeded as
outlets from the start; RichDEM instead fills such holes (non-epsilon) or reaches them only when
the flood arrives (epsilon). With ``nodata_is_outlet=False`` NaN cells are walls; land cut off
from every outlet by them drains into the walls as a last resort.

Implementation: the kernels work on a copy padded with one ring of closed NaN cells, so that a
neighbour is ``i + offset`` with no bounds test and no division. Memory beyond input and output:
the padded working copy (4 or 8 bytes/cell), a uint8 visited mask (1 byte/cell), the priority
queue (key + int32 index per entry) and int32 FIFOs, whose sizes depend on the terrain
(measured in ``bench/hydro.py``).

References: Barnes, R., Lehman, C., Mulla, D. (2014) Priority-Flood: An optimal
depression-filling and watershed-labeling algorithm for digital elevation models. Computers &
Geosciences 62, 117-127. Zhou, G., Sun, Z., Fu, S. (2016) An efficient variant of the
Priority-Flood algorithm for filling depressions in raster digital elevation models. Computers &
Geosciences 90, 87-96.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from models.hydro._grid import (
    grow,
    heap_pop,
    heap_push,
    lheap_pop,
    lheap_push,
    pheap_pop,
    pheap_push,
)

CLOSED = np.uint8(1)
WALL = np.int32(0x7FFFFFFF)  # key of NaN walls (larger than every elevation's key)
SINK = np.int32(-0x80000000)  # key of sinks (smaller than every elevation's key)


def fill_depressions(dem: np.ndarray, *, epsilon: bool = False,
                     outlets: np.ndarray | None = None, nodata_is_outlet: bool = True,
                     sea_level: float | None = None) -> np.ndarray:
    """Fill every depression so that each cell drains to an outlet.

    Args:
        dem: 2-D elevations (metres); NaN = nodata. Integer input is filled as float32.
        epsilon: Priority-Flood+epsilon: raise filled cells by one ulp per step so that
            every cell has a strictly lower neighbour (RichDEM's ``epsilon=True``).
        outlets: Optional boolean mask of extra outlet cells (kept, drained into).
        nodata_is_outlet: NaN cells are outlets (the sea); else they are walls.
        sea_level: Cells at or below this elevation are outlets (coasts).

    Returns:
        The filled DEM, C-contiguous, float32 (or float64 for float64 input); NaN where the
        input was NaN.
    """
    dem = np.asarray(dem)
    zp, inner, sink = padded_grid(dem, outlets, nodata_is_outlet, sea_level)
    if dem.size == 0:
        return inner.copy()
    nrows, ncols = dem.shape
    if sink is not None:
        interior = _interior_sinks(zp.reshape(-1), nrows, ncols)
    else:
        interior = np.empty(0, np.int32)
    walls = (not nodata_is_outlet) and bool(np.isnan(inner).any())
    flat = zp.reshape(-1)
    if epsilon:
        if flat.dtype == np.float32:
            _pf_epsilon32(flat, nrows, ncols, interior, walls)
        else:
            _pf_epsilon(flat, nrows, ncols, interior, walls, flat.dtype.type(np.inf))
        out = inner.copy()
    else:
        keys, values = _to_keys(flat)
        _pf_zhou(keys, nrows, ncols, interior, walls)
        out = _from_keys(keys, values).reshape(nrows + 2, ncols + 2)[1:-1, 1:-1].copy()
    del zp, inner
    if sink is not None:
        out[sink] = dem[sink]
    return out


def padded_grid(dem: np.ndarray, outlets, nodata_is_outlet: bool, sea_level
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The DEM in a NaN frame one cell wide, as fill and breach walk it: (padded grid, its
    inner view, the outlet mask or None), outlet cells set to -inf in the grid. The grid is
    float32, or float64 for float64 input."""
    if dem.ndim != 2:
        raise ValueError(f"dem must be 2-D, got shape {dem.shape}")
    dtype = dem.dtype if dem.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    nrows, ncols = dem.shape
    zp = np.full((nrows + 2, ncols + 2), np.nan, dtype)
    inner = zp[1:-1, 1:-1]
    inner[...] = dem
    if dem.size == 0:
        return zp, inner, None
    sink = _sink_mask(inner, outlets, nodata_is_outlet, sea_level)
    if sink is not None:
        inner[sink] = -np.inf
    return zp, inner, sink


def _sink_mask(z: np.ndarray, outlets: np.ndarray | None, nodata_is_outlet: bool,
               sea_level: float | None) -> np.ndarray | None:
    """Cells that are outlets in their own right (nodata, sea, mask), or None when there are
    none."""
    sink = None
    if nodata_is_outlet:
        sink = ~np.isfinite(z)
    if sea_level is not None:
        with np.errstate(invalid="ignore"):
            sea = z <= sea_level
        sink = sea if sink is None else (sink | sea)
    if outlets is not None:
        mask = np.asarray(outlets, dtype=bool)
        if mask.shape != z.shape:
            raise ValueError(f"outlets mask has shape {mask.shape}, DEM has {z.shape}")
        sink = mask if sink is None else (sink | mask)
    if sink is None or not sink.any():
        return None
    return sink


def _to_keys(z: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """int32 keys ordered like ``z`` (padded, flat): NaN -> WALL, -inf -> SINK.

    float32: the bit pattern made monotone (negative values have their magnitude bits
    flipped), in place on a view (no extra memory). float64: ranks of the distinct values (the
    filled surface depends only on the order of the elevations), mapped back by
    :func:`_from_keys`.
    """
    if z.dtype == np.float32:
        k = z.view(np.int32)
        _bits_to_keys(k)
        return k, None
    finite = np.isfinite(z)
    values, ranks = np.unique(z[finite], return_inverse=True)
    k = np.full(z.shape, WALL, np.int32)
    k[z == -np.inf] = SINK
    k[finite] = ranks.astype(np.int32)
    return k, values


def _from_keys(k: np.ndarray, values: np.ndarray | None) -> np.ndarray:
    """Inverse of :func:`_to_keys` (walls back to NaN, sinks to -inf)."""
    if values is None:
        _keys_to_bits(k)
        return k.view(np.float32)
    z = np.full(k.shape, np.nan, values.dtype)
    ok = (k != WALL) & (k != SINK)
    z[ok] = values[k[ok]]
    z[k == SINK] = -np.inf
    return z


NEG_INF_BITS = np.int32(-0x800000)  # 0xFF800000, float32 -inf
NAN_BITS = np.int32(0x7FC00000)


@njit(cache=True)
def _bits_to_keys(k):
    for i in range(k.shape[0]):
        v = k[i]
        if (v & 0x7F800000) == 0x7F800000 and (v & 0x007FFFFF) != 0:
            k[i] = WALL
        elif v == NEG_INF_BITS:
            k[i] = SINK
        else:
            k[i] = v ^ ((v >> 31) & 0x7FFFFFFF)


@njit(cache=True)
def _keys_to_bits(k):
    for i in range(k.shape[0]):
        v = k[i]
        if v == WALL:
            k[i] = NAN_BITS
        elif v == SINK:
            k[i] = NEG_INF_BITS
        else:
            k[i] = v ^ ((v >> 31) & 0x7FFFFFFF)


@njit(cache=True, inline="always")
def _offsets(width):
    """Flat offsets of the 8 neighbours on a padded grid of ``width`` columns, in RichDEM's
    order (W, NW, N, NE, E, SE, S, SW)."""
    off = np.empty(8, np.int64)
    off[0] = -1
    off[1] = -width - 1
    off[2] = -width
    off[3] = -width + 1
    off[4] = 1
    off[5] = width + 1
    off[6] = width
    off[7] = width - 1
    return off


@njit(cache=True)
def _closed_mask(z, nrows, ncols, walls):
    """uint8 visited mask of the padded grid: the padding ring (and NaN walls) closed."""
    width = ncols + 2
    closed = np.zeros((nrows + 2) * width, np.uint8)
    for c in range(width):
        closed[c] = CLOSED
        closed[(nrows + 1) * width + c] = CLOSED
    for r in range(1, nrows + 1):
        closed[r * width] = CLOSED
        closed[r * width + ncols + 1] = CLOSED
        if walls:
            for c in range(1, ncols + 1):
                if np.isnan(z[r * width + c]):
                    closed[r * width + c] = CLOSED
    return closed


@njit(cache=True)
def _interior_sinks(z, nrows, ncols):
    """Padded indices of sink cells (-inf) not connected to the grid edge through other sinks."""
    width = ncols + 2
    off = _offsets(width)
    seen = _closed_mask(z, nrows, ncols, False)
    stack = np.empty(1024, np.int32)
    size = 0
    for r in range(1, nrows + 1):
        step = 1 if (r == 1 or r == nrows) else max(ncols - 1, 1)
        for c in range(1, ncols + 1, step):
            i = r * width + c
            if z[i] == -np.inf and seen[i] == 0:
                seen[i] = 1
                if size == stack.shape[0]:
                    stack = grow(stack, size)
                stack[size] = i
                size += 1
    while size > 0:
        size -= 1
        i = stack[size]
        for k in range(8):
            j = i + off[k]
            if seen[j] == 0 and z[j] == -np.inf:
                seen[j] = 1
                if size == stack.shape[0]:
                    stack = grow(stack, size)
                stack[size] = j
                size += 1
    count = 0
    for i in range(z.shape[0]):
        if z[i] == -np.inf and seen[i] == 0:
            count += 1
    out = np.empty(count, np.int32)
    count = 0
    for i in range(z.shape[0]):
        if z[i] == -np.inf and seen[i] == 0:
            out[count] = i
            count += 1
    return out


@njit(cache=True)
def _seed_perimeter(z, nrows, ncols, closed, hk, hi, size):
    """Push the perimeter in RichDEM's order: the top and bottom rows column by column, then
    the first and last columns row by row (NaN walls are already closed)."""
    width = ncols + 2
    for c in range(1, ncols + 1):
        for r in (1, nrows):
            i = r * width + c
            if closed[i] == 0:
                closed[i] = CLOSED
                if size == hk.shape[0]:
                    hk = grow(hk, size)
                    hi = grow(hi, size)
                size = heap_push(hk, hi, size, z[i], i)
    for r in range(2, nrows):
        for c in (1, ncols):
            i = r * width + c
            if closed[i] == 0:
                closed[i] = CLOSED
                if size == hk.shape[0]:
                    hk = grow(hk, size)
                    hi = grow(hi, size)
                size = heap_push(hk, hi, size, z[i], i)
    return hk, hi, size


@njit(cache=True)
def _seed_list(z, cells, closed, hk, hi, size):
    for t in range(cells.shape[0]):
        i = cells[t]
        if closed[i] == 0:
            closed[i] = CLOSED
            if size == hk.shape[0]:
                hk = grow(hk, size)
                hi = grow(hi, size)
            size = heap_push(hk, hi, size, z[i], i)
    return hk, hi, size


@njit(cache=True)
def _seed_walls(z, nrows, ncols, closed, hk, hi, size):
    """Land that no outlet reached (cut off by NaN walls) drains into the walls: push its
    cells next to a NaN."""
    width = ncols + 2
    off = _offsets(width)
    for r in range(1, nrows + 1):
        for c in range(1, ncols + 1):
            i = r * width + c
            if closed[i] != 0:
                continue
            for k in range(8):
                j = i + off[k]
                if np.isnan(z[j]) and 0 < j // width < nrows + 1 and 0 < j % width < ncols + 1:
                    closed[i] = CLOSED
                    if size == hk.shape[0]:
                        hk = grow(hk, size)
                        hi = grow(hi, size)
                    size = heap_push(hk, hi, size, z[i], i)
                    break
    return hk, hi, size


@njit(cache=True, inline="always")
def _fifo_put(buf, head, count, item):
    """Append to a ring buffer whose capacity is a power of two; returns (buf, head)."""
    if count == buf.shape[0]:
        grown = np.empty(buf.shape[0] * 2, np.int32)
        mask = buf.shape[0] - 1
        for q in range(count):
            grown[q] = buf[(head + q) & mask]
        buf = grown
        head = 0
    buf[(head + count) & (buf.shape[0] - 1)] = item
    return buf, head


@njit(cache=True)
def _pf_zhou(z, nrows, ncols, interior, walls):
    """Priority-Flood with Zhou's depression/trace short-cut, in place on the padded ``z``
    (int32 keys that order like the elevations; see :func:`fill_depressions`).

    A popped cell hands each unvisited neighbour to the depression FIFO (not above its level:
    raised to it) or the trace FIFO (above it). Depression cells flood on at the same level;
    traced cells climb to every unvisited neighbour not below them (these drain through the
    traced cell and keep their elevation). A traced cell goes into the priority queue only when
    it has an unvisited lower neighbour that no visited lower cell will reach first (Zhou's
    "true border" test). The queue is a 4-ary heap of ``key << 32 | index``.
    """
    off = _offsets(ncols + 2)
    closed = _closed_mask_keys(z, nrows, ncols, walls)
    heap = np.empty(max(64, 2 * (nrows + ncols)), np.int64)
    size = 0
    width = ncols + 2
    for r in range(1, nrows + 1):
        step = 1 if (r == 1 or r == nrows) else max(ncols - 1, 1)
        for c in range(1, ncols + 1, step):
            i = r * width + c
            if closed[i] == 0:
                closed[i] = CLOSED
                if size == heap.shape[0]:
                    heap = grow(heap, size)
                size = pheap_push(heap, size, (np.int64(z[i]) << 32) | i)
    for t in range(interior.shape[0]):
        i = interior[t]
        if closed[i] == 0:
            closed[i] = CLOSED
            if size == heap.shape[0]:
                heap = grow(heap, size)
            size = pheap_push(heap, size, (np.int64(z[i]) << 32) | i)
    dq = np.empty(1024, np.int32)  # depression FIFO
    dh = 0
    dn = 0
    tq = np.empty(1024, np.int32)  # trace FIFO
    th = 0
    tn = 0
    for attempt in range(2):
        while size > 0:
            item, size = pheap_pop(heap, size)
            c = item & 0xFFFFFFFF
            level = z[c]
            for k in range(8):
                nb = c + off[k]
                if closed[nb] != 0:
                    continue
                closed[nb] = CLOSED
                if z[nb] <= level:
                    z[nb] = level
                    dq, dh = _fifo_put(dq, dh, dn, nb)
                    dn += 1
                else:
                    tq, th = _fifo_put(tq, th, tn, nb)
                    tn += 1
                # flood the depression at this level
                while dn > 0:
                    d = dq[dh]
                    dh = (dh + 1) & (dq.shape[0] - 1)
                    dn -= 1
                    for kk in range(8):
                        m = d + off[kk]
                        if closed[m] != 0:
                            continue
                        closed[m] = CLOSED
                        if z[m] <= level:
                            z[m] = level
                            dq, dh = _fifo_put(dq, dh, dn, m)
                            dn += 1
                        else:
                            tq, th = _fifo_put(tq, th, tn, m)
                            tn += 1
                # climb the slopes
                while tn > 0:
                    t = tq[th]
                    th = (th + 1) & (tq.shape[0] - 1)
                    tn -= 1
                    zt = z[t]
                    queued = False
                    for kk in range(8):
                        m = t + off[kk]
                        if closed[m] != 0:
                            continue
                        zm = z[m]
                        if zm >= zt:
                            closed[m] = CLOSED
                            tq, th = _fifo_put(tq, th, tn, m)
                            tn += 1
                        elif not queued:
                            lower_seen = False
                            for q in range(8):
                                j = m + off[q]
                                if closed[j] != 0 and z[j] < zm:
                                    lower_seen = True
                                    break
                            if not lower_seen:
                                queued = True
                                if size == heap.shape[0]:
                                    heap = grow(heap, size)
                                size = pheap_push(heap, size, (np.int64(zt) << 32) | t)
        if not walls:
            break
        # land cut off by NaN walls drains into them
        for r in range(1, nrows + 1):
            for c in range(1, ncols + 1):
                i = r * width + c
                if closed[i] != 0:
                    continue
                for k in range(8):
                    j = i + off[k]
                    rj = j // width
                    cj = j - rj * width
                    if z[j] == WALL and 0 < rj <= nrows and 0 < cj <= ncols:
                        closed[i] = CLOSED
                        if size == heap.shape[0]:
                            heap = grow(heap, size)
                        size = pheap_push(heap, size, (np.int64(z[i]) << 32) | i)
                        break


@njit(cache=True)
def _closed_mask_keys(z, nrows, ncols, walls):
    """uint8 visited mask of the padded key grid: padding ring and walls closed."""
    width = ncols + 2
    closed = np.zeros((nrows + 2) * width, np.uint8)
    for c in range(width):
        closed[c] = CLOSED
        closed[(nrows + 1) * width + c] = CLOSED
    for r in range(1, nrows + 1):
        closed[r * width] = CLOSED
        closed[r * width + ncols + 1] = CLOSED
        if walls:
            for c in range(1, ncols + 1):
                if z[r * width + c] == WALL:
                    closed[r * width + c] = CLOSED
    return closed


@njit(cache=True)
def _pf_epsilon(z, nrows, ncols, interior, walls, inf):
    """Priority-Flood+epsilon, replaying RichDEM's PriorityFloodEpsilon_Barnes2014 (D8) on the
    padded ``z``."""
    off = _offsets(ncols + 2)
    closed = _closed_mask(z, nrows, ncols, walls)
    hk = np.empty(max(64, 2 * (nrows + ncols)), z.dtype)
    hi = np.empty(hk.shape[0], np.int32)
    hk, hi, size = _seed_perimeter(z, nrows, ncols, closed, hk, hi, 0)
    hk, hi, size = _seed_list(z, interior, closed, hk, hi, size)
    pit = np.empty(1024, np.int32)  # FIFO of pit cells
    head = 0
    count = 0
    for attempt in range(2):
        while size > 0 or count > 0:
            if count > 0 and size > 0 and hk[0] == z[pit[head]]:
                c, size = heap_pop(hk, hi, size)
            elif count > 0:
                c = pit[head]
                head = (head + 1) & (pit.shape[0] - 1)
                count -= 1
            else:
                c, size = heap_pop(hk, hi, size)
            up = np.nextafter(z[c], inf)
            for k in range(8):
                nb = c + off[k]
                if closed[nb] != 0:
                    continue
                closed[nb] = CLOSED
                zn = z[nb]
                if zn == -inf or zn <= up:
                    if zn != -inf:
                        z[nb] = up
                    pit, head = _fifo_put(pit, head, count, nb)
                    count += 1
                else:
                    if size == hk.shape[0]:
                        hk = grow(hk, size)
                        hi = grow(hi, size)
                    size = heap_push(hk, hi, size, zn, nb)
        if not walls:
            break
        hk, hi, size = _seed_walls(z, nrows, ncols, closed, hk, hi, size)


@njit(cache=True, inline="always")
def _fkey(bits):
    """Monotone key of float32 bits (int32 in an int64): -0.0 -> 0 like +0.0."""
    if bits == -2147483648:  # -0.0
        return np.int64(0)
    return np.int64(bits ^ ((bits >> 31) & 0x7FFFFFFF))


@njit(cache=True)
def _pf_epsilon32(z, nrows, ncols, interior, walls):
    """:func:`_pf_epsilon` for float32, the queue packed as ``key << 32 | index`` (same order)."""
    off = _offsets(ncols + 2)
    closed = _closed_mask(z, nrows, ncols, walls)
    bits = z.view(np.int32)
    inf = np.float32(np.inf)
    heap = np.empty(max(64, 2 * (nrows + ncols)), np.int64)
    size = 0
    width = ncols + 2
    for c in range(1, ncols + 1):
        for r in (1, nrows):
            i = r * width + c
            if closed[i] == 0:
                closed[i] = CLOSED
                if size == heap.shape[0]:
                    heap = grow(heap, size)
                size = lheap_push(heap, size, (_fkey(bits[i]) << 32) | i)
    for r in range(2, nrows):
        for c in (1, ncols):
            i = r * width + c
            if closed[i] == 0:
                closed[i] = CLOSED
                if size == heap.shape[0]:
                    heap = grow(heap, size)
                size = lheap_push(heap, size, (_fkey(bits[i]) << 32) | i)
    for t in range(interior.shape[0]):
        i = interior[t]
        if closed[i] == 0:
            closed[i] = CLOSED
            if size == heap.shape[0]:
                heap = grow(heap, size)
            size = lheap_push(heap, size, (_fkey(bits[i]) << 32) | i)
    pit = np.empty(1024, np.int32)
    head = 0
    count = 0
    for attempt in range(2):
        while size > 0 or count > 0:
            if count > 0 and size > 0 and (heap[0] >> 32) == _fkey(bits[pit[head]]):
                item, size = lheap_pop(heap, size)
                c = item & 0xFFFFFFFF
            elif count > 0:
                c = pit[head]
                head = (head + 1) & (pit.shape[0] - 1)
                count -= 1
            else:
                item, size = lheap_pop(heap, size)
                c = item & 0xFFFFFFFF
            up = np.nextafter(z[c], inf)
            for k in range(8):
                nb = c + off[k]
                if closed[nb] != 0:
                    continue
                closed[nb] = CLOSED
                zn = z[nb]
                if zn == -inf or zn <= up:
                    if zn != -inf:
                        z[nb] = up
                    pit, head = _fifo_put(pit, head, count, nb)
                    count += 1
                else:
                    if size == heap.shape[0]:
                        heap = grow(heap, size)
                    size = lheap_push(heap, size, (_fkey(bits[nb]) << 32) | nb)
        if not walls:
            break
        # land cut off by NaN walls drains into them (as _seed_walls)
        for r in range(1, nrows + 1):
            for c in range(1, ncols + 1):
                i = r * width + c
                if closed[i] != 0:
                    continue
                for k in range(8):
                    j = i + off[k]
                    rj = j // width
                    cj = j - rj * width
                    if np.isnan(z[j]) and 0 < rj <= nrows and 0 < cj <= ncols:
                        closed[i] = CLOSED
                        if size == heap.shape[0]:
                            heap = grow(heap, size)
                        size = lheap_push(heap, size, (_fkey(bits[i]) << 32) | i)
                        break
