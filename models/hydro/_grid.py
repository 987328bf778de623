"""Shared numba helpers for the hydrology kernels: neighbour tables, a growable int32 stack,
and the libstdc++ binary heap (so that the Priority-Flood+epsilon replica pops equal elevations
in the same order as richdem's ``std::priority_queue``).

Grids are C-ordered (row-major) and addressed by flat index ``i = row * ncols + col``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# D8 neighbours in RichDEM's order (n = 1..8: W, NW, N, NE, E, SE, S, SW), as (drow, dcol).
# The Priority-Flood+epsilon replica visits neighbours in this order, which matters for ties.
RD_DROW = np.array([0, -1, -1, -1, 0, 1, 1, 1], np.int64)
RD_DCOL = np.array([-1, -1, 0, 1, 1, 1, 0, -1], np.int64)

# ESRI D8 codes and their offsets: 1=E, 2=SE, 4=S, 8=SW, 16=W, 32=NW, 64=N, 128=NE.
ESRI_CODES = np.array([1, 2, 4, 8, 16, 32, 64, 128], np.uint8)
ESRI_DROW = np.array([0, 1, 1, 1, 0, -1, -1, -1], np.int64)
ESRI_DCOL = np.array([1, 1, 0, -1, -1, -1, 0, 1], np.int64)

# code -> neighbour number k (0..7) in the ESRI order above, 255 for anything else (incl. 0)
CODE_TO_K = np.full(256, 255, np.uint8)
for _k, _c in enumerate(ESRI_CODES):
    CODE_TO_K[_c] = _k


@njit(cache=True)
def grow(buf, size):
    """A buffer twice as large holding ``buf[:size]`` (callers check capacity inline, so the
    hot path has no call and no array return)."""
    grown = np.empty(max(64, buf.shape[0] * 2), buf.dtype)
    grown[:size] = buf[:size]
    return grown


@njit(cache=True, inline="always")
def push_stack(stack, size, item):
    """Push ``item`` on an int32 stack, doubling its buffer when full; returns (stack, size)."""
    if size == stack.shape[0]:
        stack = grow(stack, size)
    stack[size] = item
    return stack, size + 1


# --- libstdc++ std::priority_queue<..., std::greater<...>> ---------------------------------------
# The heap is two parallel arrays: ``hk`` (priority, smaller first) and ``hi`` (int32 cell index),
# so that sifting never looks up the DEM (no cache misses). The sift rules copy libstdc++'s
# __push_heap / __adjust_heap exactly (comp = greater: an entry sinks below another when its key
# is larger), so that cells of equal elevation leave in the same order as in RichDEM's C++.

@njit(cache=True, inline="always")
def heap_push(hk, hi, size, key, idx):
    """Push (key, idx); the caller made room (``size < hk.shape[0]``). Returns the new size."""
    hole = size
    while hole > 0:
        parent = (hole - 1) >> 1
        if not (hk[parent] > key):
            break
        hk[hole] = hk[parent]
        hi[hole] = hi[parent]
        hole = parent
    hk[hole] = key
    hi[hole] = idx
    return size + 1


@njit(cache=True, inline="always")
def heap_pop(hk, hi, size):
    """Remove the top; returns (its index, new size)."""
    top = hi[0]
    size -= 1
    if size == 0:
        return top, 0
    vk = hk[size]
    vi = hi[size]
    length = size
    hole = 0
    child = 0
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if hk[child] > hk[child - 1]:
            child -= 1
        hk[hole] = hk[child]
        hi[hole] = hi[child]
        hole = child
    if (length & 1) == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        hk[hole] = hk[child - 1]
        hi[hole] = hi[child - 1]
        hole = child - 1
    while hole > 0:
        parent = (hole - 1) >> 1
        if not (hk[parent] > vk):
            break
        hk[hole] = hk[parent]
        hi[hole] = hi[parent]
        hole = parent
    hk[hole] = vk
    hi[hole] = vi
    return top, size


# --- a plain min-heap of packed int64 entries (key << 32 | index) --------------------------------
# Used where ties may leave in any order (plain filling): one array, one comparison per step.

@njit(cache=True, inline="always")
def pheap_push(h, size, item):
    """Push ``item``; the caller made room. Returns the new size."""
    hole = size
    while hole > 0:
        parent = (hole - 1) >> 2
        if h[parent] <= item:
            break
        h[hole] = h[parent]
        hole = parent
    h[hole] = item
    return size + 1


@njit(cache=True, inline="always")
def pheap_pop(h, size):
    """Remove the smallest entry of the 4-ary heap; returns (entry, new size)."""
    top = h[0]
    size -= 1
    item = h[size]
    hole = 0
    while True:
        first = 4 * hole + 1
        if first >= size:
            break
        best = first
        bv = h[first]
        last = min(first + 4, size)
        for ch in range(first + 1, last):
            if h[ch] < bv:
                bv = h[ch]
                best = ch
        if bv >= item:
            break
        h[hole] = bv
        hole = best
    h[hole] = item
    return top, size


# --- the libstdc++ heap again, on packed int64 entries compared by their high 32 bits only -----
# (key << 32 | index): one array, one load per comparison, and ties still leave in libstdc++'s
# order because the index bits never take part in a comparison.

@njit(cache=True, inline="always")
def lheap_push(h, size, item):
    """Push ``item``; the caller made room. Returns the new size."""
    hole = size
    kv = item >> 32
    while hole > 0:
        parent = (hole - 1) >> 1
        if not ((h[parent] >> 32) > kv):
            break
        h[hole] = h[parent]
        hole = parent
    h[hole] = item
    return size + 1


@njit(cache=True, inline="always")
def lheap_pop(h, size):
    """Remove the top (libstdc++ pop_heap); returns (entry, new size)."""
    top = h[0]
    size -= 1
    if size == 0:
        return top, 0
    value = h[size]
    kv = value >> 32
    length = size
    hole = 0
    child = 0
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if (h[child] >> 32) > (h[child - 1] >> 32):
            child -= 1
        h[hole] = h[child]
        hole = child
    if (length & 1) == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        h[hole] = h[child - 1]
        hole = child - 1
    while hole > 0:
        parent = (hole - 1) >> 1
        if not ((h[parent] >> 32) > kv):
            break
        h[hole] = h[parent]
        hole = parent
    h[hole] = value
    return top, size
