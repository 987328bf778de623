"""Spatial weights as sparse CSR matrices: network distance bands on lixels, regular grids, and
Euclidean distance bands.

Network weights: lixel ``j`` is a neighbour of lixel ``i`` when the shortest path along the road
network between their midpoints is at most the bandwidth. Distances come from a Dijkstra search
from every lixel on the lixel graph (:meth:`LixelNetwork.adjacency`), stopped at the bandwidth
(a numba kernel; the cost is about ``n * k log k`` for ``k`` neighbours, against ``n^2`` for a
full distance matrix). The weight is 1 (binary, the usual choice for Gi* and the one esda's
analytic Gi* moments assume) or a kernel of the distance.

Matrices never hold the diagonal: the statistics add the self-weight for Gi* (``star``).
Rows of lixels without neighbours are empty (islands).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import sparse


def network_weights(net, bandwidth: float, kind: str = "binary") -> sparse.csr_matrix:
    """Neighbours within ``bandwidth`` metres along the network.

    Args:
        net: A :class:`models.hotspots.lixels.LixelNetwork`.
        bandwidth: Network distance, metres (midpoint to midpoint).
        kind: ``binary`` (1 within the band), ``linear`` (1 - d/h) or ``gaussian``
            (exp(-(d/h)^2 / 2) within the band).
    """
    dist = network_distances(net.adjacency(), bandwidth)
    return distance_kernel(dist, bandwidth, kind)


def network_distances(adjacency: sparse.csr_matrix, limit: float) -> sparse.csr_matrix:
    """Shortest-path distances up to ``limit`` between all pairs of a graph (CSR, no diagonal)."""
    adj = sparse.csr_matrix(adjacency)
    n = adj.shape[0]
    ptr, idx, d = _bounded_dijkstra(adj.indptr.astype(np.int64), adj.indices.astype(np.int64),
                                    adj.data.astype(np.float64), float(limit))
    m = sparse.csr_matrix((d, idx, ptr), shape=(n, n))
    m.sort_indices()
    return m


def distance_kernel(dist: sparse.csr_matrix, bandwidth: float, kind: str) -> sparse.csr_matrix:
    """Weights from a CSR of distances (entries = neighbours)."""
    out = dist.copy()
    if kind == "binary":
        out.data = np.ones_like(out.data)
    elif kind == "linear":
        out.data = 1.0 - out.data / bandwidth
    elif kind == "gaussian":
        out.data = np.exp(-0.5 * (out.data / bandwidth) ** 2)
    else:
        raise ValueError(f"unknown weights kind {kind!r} (binary, linear, gaussian)")
    return out


def distance_band_weights(xy: np.ndarray, threshold: float) -> sparse.csr_matrix:
    """Binary weights of points within ``threshold`` (Euclidean; libpysal's DistanceBand)."""
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, dtype=float)
    n = len(xy)
    pairs = cKDTree(xy).query_pairs(threshold, output_type="ndarray")
    a = np.r_[pairs[:, 0], pairs[:, 1]]
    b = np.r_[pairs[:, 1], pairs[:, 0]]
    m = sparse.csr_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    m.sort_indices()
    return m


def grid_weights(rows: int, cols: int, contiguity: str = "queen") -> sparse.csr_matrix:
    """Binary rook or queen contiguity of a ``rows x cols`` grid (cells numbered row-major)."""
    if contiguity not in ("rook", "queen"):
        raise ValueError("contiguity must be 'rook' or 'queen'")
    offsets = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if contiguity == "queen":
        offsets += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    r, c = np.divmod(np.arange(rows * cols), cols)
    a_list, b_list = [], []
    for dr, dc in offsets:
        rr, cc = r + dr, c + dc
        ok = (rr >= 0) & (rr < rows) & (cc >= 0) & (cc < cols)
        a_list.append(np.flatnonzero(ok))
        b_list.append(rr[ok] * cols + cc[ok])
    a = np.concatenate(a_list)
    b = np.concatenate(b_list)
    n = rows * cols
    m = sparse.csr_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    m.sort_indices()
    return m


def to_libpysal(w: sparse.csr_matrix):
    """The same weights as a ``libpysal.weights.W`` (ids 0..n-1), for comparisons with esda."""
    from libpysal.weights import WSP

    return WSP(sparse.csr_matrix(w)).to_W(silence_warnings=True)


@njit(cache=True)
def _heap_push(hk, hv, size, key, val):
    i = size
    hk[i] = key
    hv[i] = val
    while i > 0:
        p = (i - 1) >> 1
        if hk[p] <= hk[i]:
            break
        hk[p], hk[i] = hk[i], hk[p]
        hv[p], hv[i] = hv[i], hv[p]
        i = p
    return size + 1


@njit(cache=True)
def _heap_pop(hk, hv, size):
    key = hk[0]
    val = hv[0]
    size -= 1
    hk[0] = hk[size]
    hv[0] = hv[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        c = left
        if left + 1 < size and hk[left + 1] < hk[left]:
            c = left + 1
        if hk[i] <= hk[c]:
            break
        hk[c], hk[i] = hk[i], hk[c]
        hv[c], hv[i] = hv[i], hv[c]
        i = c
    return key, val, size


@njit(cache=True)
def _bounded_dijkstra(indptr, indices, weights, limit):
    n = len(indptr) - 1
    dist = np.full(n, np.inf)
    touched = np.empty(n, np.int64)
    hk = np.empty(len(indices) + 1, np.float64)
    hv = np.empty(len(indices) + 1, np.int64)
    out_ptr = np.zeros(n + 1, np.int64)
    cap = max(16, 8 * n)
    out_idx = np.empty(cap, np.int64)
    out_d = np.empty(cap, np.float64)
    count = 0
    for s in range(n):
        nt = 0
        dist[s] = 0.0
        touched[nt] = s
        nt += 1
        size = _heap_push(hk, hv, 0, 0.0, s)
        while size > 0:
            d, u, size = _heap_pop(hk, hv, size)
            if d > dist[u]:
                continue
            if u != s:
                if count == cap:
                    cap *= 2
                    ni = np.empty(cap, np.int64)
                    nd = np.empty(cap, np.float64)
                    ni[:count] = out_idx[:count]
                    nd[:count] = out_d[:count]
                    out_idx = ni
                    out_d = nd
                out_idx[count] = u
                out_d[count] = d
                count += 1
            for e in range(indptr[u], indptr[u + 1]):
                v = indices[e]
                nd_ = d + weights[e]
                if nd_ <= limit and nd_ < dist[v]:
                    if dist[v] == np.inf:
                        touched[nt] = v
                        nt += 1
                    dist[v] = nd_
                    if size == len(hk):
                        hk2 = np.empty(2 * len(hk), np.float64)
                        hv2 = np.empty(2 * len(hv), np.int64)
                        hk2[:size] = hk[:size]
                        hv2[:size] = hv[:size]
                        hk = hk2
                        hv = hv2
                    size = _heap_push(hk, hv, size, nd_, v)
        for t in range(nt):
            dist[touched[t]] = np.inf
        out_ptr[s + 1] = count
    return out_ptr, out_idx[:count].copy(), out_d[:count].copy()
