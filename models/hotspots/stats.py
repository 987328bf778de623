"""Local spatial statistics on sparse weights: Getis-Ord Gi / Gi* and local Moran's I, with
analytic z-scores and conditional permutation pseudo p-values (numba, parallel, seeded).

**Getis-Ord.** Ord & Getis (1995), "Local spatial autocorrelation statistics: distributional
issues and an application", Geographical Analysis 27(4). With weights ``w_ij`` (``w_ii`` the
self-weight for Gi*, 0 for Gi), ``W_i = sum_j w_ij``, ``S1_i = sum_j w_ij^2``, and the mean ``x̄``
and standard deviation ``s`` of the values taken over the ``N`` sites that enter the sum (all
``n`` for Gi*, the ``n - 1`` others for Gi)::

    G_i = sum_j w_ij x_j / sum_j x_j
    z_i = (sum_j w_ij x_j - x̄ W_i) / (s sqrt((N S1_i - W_i^2) / (N - 1)))

For binary weights this is exactly esda's ``G_Local`` (transform ``"B"``) z.

**Local Moran.** Anselin (1995), "Local indicators of spatial association — LISA",
Geographical Analysis 27(2): ``z = (x - x̄)/s``, ``I_i = (n - 1) z_i sum_j w_ij z_j / sum z^2``
on row-standardised weights (esda's ``Moran_Local``), quadrants HH=1, LH=2, LL=3, HL=4, and the
total-randomisation moments of Sokal et al. (1998) for an analytic z.

**Conditional permutation** (Anselin 1995): site ``i`` keeps its value; its ``k_i`` neighbours'
values are replaced by a random draw of ``k_i`` of the other ``n - 1`` values without
replacement, ``permutations`` times. Both statistics are monotone in the neighbour sum
``sum_j w_ij x_j`` for fixed ``i`` (Moran's through the sign of ``z_i``), so the kernel counts the
random neighbour sums at or above and at or below the observed one. For Gi* a *total*
permutation null is offered too: the site's own value is drawn with its neighbours' from all
``n`` values, the null under which Ord & Getis derived the moments of the analytic z (under the
conditional null a lixel with many crashes but quiet neighbours is not significant: only its
neighbours are tested). Pseudo p-values are
``(count + 1) / (permutations + 1)`` one-sided; the two-sided value is twice the smaller one,
capped at 1. Every site has its own random stream (a counter-based splitmix64 generator keyed by
``seed`` and the site), so results do not depend on the number of threads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange
from scipy import sparse, stats


@dataclass
class LocalStats:
    """Per-site results of a local statistic.

    Attributes:
        stat: G_i (or G*_i) or I_i.
        z: Analytic z-score.
        p_norm: Two-sided p-value of ``z`` under the normal approximation.
        p_sim: Two-sided conditional-permutation pseudo p-value (None without permutations).
        p_greater, p_lesser: One-sided pseudo p-values (high / low statistic).
        quadrant: Moran scatterplot quadrant (1 HH, 2 LH, 3 LL, 4 HL; None for Gi).
        permutations, seed: What the pseudo p-values used.
    """

    stat: np.ndarray
    z: np.ndarray
    p_norm: np.ndarray
    p_sim: np.ndarray | None = None
    p_greater: np.ndarray | None = None
    p_lesser: np.ndarray | None = None
    quadrant: np.ndarray | None = None
    permutations: int = 0
    seed: int | None = None

    @property
    def p(self) -> np.ndarray:
        """The p-value to classify with: permutation if there were any, else analytic."""
        return self.p_sim if self.p_sim is not None else self.p_norm


def _csr(w) -> sparse.csr_matrix:
    m = sparse.csr_matrix(w, dtype=np.float64)
    if m.shape[0] != m.shape[1]:
        raise ValueError("weights must be square")
    if m.diagonal().any():
        m = m.tolil()
        m.setdiag(0)
        m = m.tocsr()
    m.eliminate_zeros()
    m.sort_indices()
    return m


def getis_ord(y: np.ndarray, w, star: bool | float = True, permutations: int = 0,
              seed: int | None = 0, null: str = "conditional") -> LocalStats:
    """Gi* (``star`` True: self-weight 1, or a float self-weight) or Gi (``star`` False).

    Args:
        y: Values per site (crash counts or severity-weighted sums), non-negative.
        w: Square sparse weights without the diagonal (a diagonal is dropped).
        permutations: Conditional permutations for pseudo p-values (0: analytic only).
        seed: Seed of the random streams (None: fresh entropy).
        null: ``conditional`` (esda: the site keeps its value) or ``total`` (Gi* only: the
            site's value is permuted too; see :func:`permutation_counts`).
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    m = _csr(w)
    n = len(y)
    if m.shape[0] != n:
        raise ValueError(f"{n} values but {m.shape[0]} weight rows")
    self_w = 0.0 if star is False else (1.0 if star is True else float(star))
    lag, wsum, w2sum = _row_sums(m.indptr, m.indices, m.data, y)
    lag += self_w * y
    wsum += self_w
    w2sum += self_w * self_w
    total = y.sum()
    sq = (y * y).sum()
    if self_w > 0:
        big_n = float(n)
        mean = total / n
        var = sq / n - mean * mean
        stat = lag / total
    else:
        big_n = float(n - 1)
        mean = (total - y) / big_n
        var = (sq - y * y) / big_n - mean * mean
        stat = lag / (total - y)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (lag - mean * wsum) / (np.sqrt(var) * np.sqrt((big_n * w2sum - wsum * wsum)
                                                          / (big_n - 1)))
    out = LocalStats(stat, z, 2 * stats.norm.sf(np.abs(z)))
    if permutations:
        if null == "total" and self_w == 0:
            raise ValueError("the total permutation null needs Gi* (a self-weight)")
        _permute(out, m, y, permutations, seed, sign=np.ones(n), null=null, self_w=self_w)
    return out


def local_moran(y: np.ndarray, w, transform: str = "r", permutations: int = 0,
                seed: int | None = 0) -> LocalStats:
    """Local Moran's I (esda ``Moran_Local``): row-standardised (``r``) or binary (``b``)."""
    y = np.ascontiguousarray(y, dtype=np.float64)
    m = _csr(w)
    n = len(y)
    if m.shape[0] != n:
        raise ValueError(f"{n} values but {m.shape[0]} weight rows")
    if transform.lower() == "r":
        rs = np.asarray(m.sum(axis=1)).ravel()
        m = sparse.diags(np.where(rs > 0, 1.0 / np.where(rs > 0, rs, 1.0), 0.0)) @ m
        m = sparse.csr_matrix(m)
        m.sort_indices()
    elif transform.lower() != "b":
        raise ValueError("transform must be 'r' or 'b'")
    z = y - y.mean()
    sd = y.std()
    z = z / sd if sd > 0 else z
    lag, wi, wi2 = _row_sums(m.indptr, m.indices, m.data, z)
    den = (z * z).sum()
    stat = (n - 1) * z * lag / den
    quadrant = np.where(z > 0, np.where(lag > 0, 1, 4), np.where(lag > 0, 2, 3)).astype(np.int8)
    # total randomisation moments (Sokal, Oden & Thomson 1998, eqs. A3-A4), as in esda
    m2 = den / n
    b2 = (z ** 4).sum() / n / m2 ** 2
    n1 = n - 1
    ei = -wi / n1
    vi = wi2 * (n - b2) / n1 + (wi ** 2 - wi2) * (2 * b2 - n) / (n1 * (n - 2)) - ei ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        zi = (stat - ei) / np.sqrt(vi)
    out = LocalStats(stat, zi, 2 * stats.norm.sf(np.abs(zi)), quadrant=quadrant)
    if permutations:
        # sum_j w_ij z_j = (sum_j w_ij y_j - ybar W_i) / s: for a fixed site the order of the
        # random neighbour sums is that of the raw values' (exact for integer counts)
        _permute(out, m, y, permutations, seed, sign=np.sign(z))
    return out


def _permute(out: LocalStats, m: sparse.csr_matrix, values: np.ndarray, permutations: int,
             seed: int | None, sign: np.ndarray, null: str = "conditional",
             self_w: float = 0.0) -> None:
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2 ** 63))
    ge, le = permutation_counts(m, values, permutations, seed, null, self_w)
    # Moran's I_i moves against the neighbour sum where z_i < 0, and is constant where z_i = 0
    hi = np.where(sign > 0, ge, np.where(sign < 0, le, permutations))
    lo = np.where(sign > 0, le, np.where(sign < 0, ge, permutations))
    out.p_greater = (hi + 1.0) / (permutations + 1.0)
    out.p_lesser = (lo + 1.0) / (permutations + 1.0)
    out.p_sim = np.minimum(1.0, 2.0 * np.minimum(out.p_greater, out.p_lesser))
    out.permutations = permutations
    out.seed = seed


def permutation_counts(w, values: np.ndarray, permutations: int, seed: int,
                       null: str = "conditional", self_weight: float = 1.0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """For each site, how many of ``permutations`` random draws give a neighbour sum
    ``sum_j w_ij x_perm(j)`` at or above (``ge``) and at or below (``le``) the observed one.

    ``null="conditional"``: the site keeps its value, its neighbours' values are drawn from the
    other ``n - 1`` (Anselin 1995; esda). ``null="total"``: the site's own value is drawn too
    (with ``self_weight``), from all ``n`` values: the null under which Ord & Getis derived the
    Gi* moments, so it tests the same thing as the analytic z.

    Method: ``permutations`` rows of ``width`` distinct random sites (a uniformly random ordered
    sample each, partial Fisher-Yates on a splitmix64 stream), shared by all sites as in esda;
    site ``i`` reads its own window of ``k_i + 1`` columns at a random offset, so different
    sites see different subsets, and a window of a uniformly random ordered sample is itself one.
    Conditional null: the window's first ``k_i`` sites are the draw; if site ``i`` is among
    them it is replaced by the window's last site (given that ``i`` is among the first ``k_i``,
    the other ``k_i`` of the ``k_i + 1`` are a uniform sample of the rest, so the draw stays
    exact). Where a site's weights are all equal (binary, row-standardised), the random sum is a
    difference of two prefix sums of the row: O(1) per permutation instead of O(k).
    """
    if null not in ("conditional", "total"):
        raise ValueError("null must be 'conditional' or 'total'")
    m = _csr(w)
    v = np.ascontiguousarray(values, dtype=np.float64)
    n = len(v)
    total = null == "total"
    if n < 2 or permutations <= 0:
        return np.zeros(n, np.int64), np.zeros(n, np.int64)
    kmax = int(np.diff(m.indptr).max())
    width = int(min(n, max(kmax + 1, 64 if permutations > 10_000 else 256)))
    seed64 = np.uint64(seed % (2 ** 64))
    table = _perm_table(n, width, int(permutations), seed64)
    prefix = np.zeros((permutations, width + 1))
    np.cumsum(v[table], axis=1, out=prefix[:, 1:])
    # where each site occurs in the table (row, column), by site then row
    flat = table.ravel()
    order = np.argsort(flat, kind="stable")
    occ_ptr = np.zeros(n + 1, np.int64)
    np.add.at(occ_ptr, flat.astype(np.int64) + 1, 1)
    occ_ptr = np.cumsum(occ_ptr)
    occ_row = (order // width).astype(np.int64)
    occ_col = (order % width).astype(np.int64)
    return _perm_kernel(m.indptr, m.indices, m.data, v,
                        table, prefix, occ_ptr, occ_row, occ_col,
                        seed64 ^ np.uint64(0x5851F42D4C957F2D), float(self_weight), total)


@njit(cache=True, parallel=True)
def _row_sums(indptr, indices, data, y):
    n = len(indptr) - 1
    lag = np.zeros(n)
    ws = np.zeros(n)
    w2 = np.zeros(n)
    for i in prange(n):
        a = 0.0
        b = 0.0
        c = 0.0
        for e in range(indptr[i], indptr[i + 1]):
            wv = data[e]
            a += wv * y[indices[e]]
            b += wv
            c += wv * wv
        lag[i] = a
        ws[i] = b
        w2[i] = c
    return lag, ws, w2


@njit(cache=True, inline="always")
def _splitmix(state):
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True)
def _perm_table(n_pool, width, permutations, seed):
    """``permutations`` rows of ``width`` distinct values of ``0..n_pool-1``, each row a uniform
    random ordered sample (partial Fisher-Yates on one splitmix64 stream)."""
    table = np.empty((permutations, width), np.int32)
    pool = np.arange(n_pool)
    swaps = np.empty(width, np.int64)
    state = seed
    for p in range(permutations):
        for t in range(width):
            state, r = _splitmix(state)
            j = t + np.int64((r >> np.uint64(11)) * (1.0 / 9007199254740992.0) * (n_pool - t))
            swaps[t] = j
            pool[t], pool[j] = pool[j], pool[t]
            table[p, t] = pool[t]
        for t in range(width - 1, -1, -1):
            j = swaps[t]
            pool[t], pool[j] = pool[j], pool[t]
    return table


@njit(cache=True, parallel=True)
def _perm_kernel(indptr, indices, data, y, table, prefix, occ_ptr, occ_row, occ_col, seed,
                 self_w, total):
    """Counts of random neighbour sums >= / <= the observed one (see permutation_counts).

    Sites go in blocks; each table row is used by the whole block while it is in cache.
    """
    n = len(indptr) - 1
    permutations, width = table.shape
    ge = np.zeros(n, np.int64)
    le = np.zeros(n, np.int64)
    block = 128
    nblocks = (n + block - 1) // block
    for b in prange(nblocks):
        i0 = b * block
        i1 = min(n, i0 + block)
        m = i1 - i0
        hi = np.empty(m)
        lo_ = np.empty(m)
        col = np.empty(m, np.int64)
        uni = np.empty(m, np.float64)  # the common weight, or NaN if the weights differ
        # rows in which site i falls inside its own window (conditional null), in row order
        hit_ptr = np.zeros(m + 1, np.int64)
        for a in range(m):
            i = i0 + a
            hit_ptr[a + 1] = hit_ptr[a] + occ_ptr[i + 1] - occ_ptr[i]
        hit_rows = np.empty(hit_ptr[m] + 1, np.int64)
        hit_end = np.empty(m, np.int64)
        h = np.empty(m, np.int64)
        cg = np.zeros(m, np.int64)
        cl = np.zeros(m, np.int64)
        for a in range(m):
            i = i0 + a
            st = indptr[i]
            k = indptr[i + 1] - st
            o = 0.0
            for e in range(st, st + k):
                o += data[e] * y[indices[e]]
            if total:
                o += self_w * y[i]
            tol = 1e-12 * max(1.0, abs(o))
            hi[a] = o + tol
            lo_[a] = o - tol
            state = seed ^ (np.uint64(i) * np.uint64(0xD1B54A32D192ED03))
            state, r = _splitmix(state)
            c = np.int64((r >> np.uint64(11)) * (1.0 / 9007199254740992.0) * (width - k))
            col[a] = c
            u = data[st] if k > 0 else 0.0
            for e in range(st, st + k):
                if data[e] != u:
                    u = np.nan
                    break
            uni[a] = u
            q = hit_ptr[a]
            if not total:
                for x in range(occ_ptr[i], occ_ptr[i + 1]):  # occ_row ascending
                    if c <= occ_col[x] and occ_col[x] < c + k:
                        hit_rows[q] = occ_row[x]
                        q += 1
            h[a] = hit_ptr[a]
            hit_end[a] = q
        for p in range(permutations):
            row = table[p]
            pre = prefix[p]
            for a in range(m):
                i = i0 + a
                st = indptr[i]
                k = indptr[i + 1] - st
                c = col[a]
                u = uni[a]
                if total:  # window [c, c+k]: self first, then the neighbours
                    if u == u:
                        s = self_w * (pre[c + 1] - pre[c]) + u * (pre[c + 1 + k] - pre[c + 1])
                    else:
                        s = self_w * y[row[c]]
                        for t in range(k):
                            s += data[st + t] * y[row[c + 1 + t]]
                else:  # window [c, c+k): the neighbours; column c+k replaces site i
                    hit = h[a] < hit_end[a] and hit_rows[h[a]] == p
                    if hit:
                        h[a] += 1
                    if u == u:
                        s = pre[c + k] - pre[c]
                        if hit:
                            s += y[row[c + k]] - y[i]
                        s *= u
                    else:
                        s = 0.0
                        for t in range(k):
                            v = row[c + t]
                            if v == i:
                                v = row[c + k]
                            s += data[st + t] * y[v]
                cg[a] += np.int64(s >= lo_[a])  # branch-free: the outcome is a coin toss
                cl[a] += np.int64(s <= hi[a])
        for a in range(m):
            i = i0 + a
            if indptr[i + 1] == indptr[i] and not total:
                ge[i] = permutations
                le[i] = permutations
            else:
                ge[i] = cg[a]
                le[i] = cl[a]
    return ge, le
