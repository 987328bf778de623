"""Emerging hot spots: space-time Gi* per lixel and time bin, Mann-Kendall trend of the z-scores,
and ArcGIS's categories.

**Space-time Gi*.** As in ArcGIS's Emerging Hot Spot Analysis, the bins of a location over time
form a space-time cube; the neighbourhood of bin ``(i, t)`` is every bin ``(j, t')`` with ``j``
within the spatial band of ``i`` (or ``j = i``) and ``t - k <= t' <= t`` (``k`` = the
neighbourhood time step, 1 by default). Gi* (Ord & Getis 1995) is computed on the whole cube, so
the global mean and variance are those of all bins. Bin p-values are two-sided and, as in
ArcGIS Pro, corrected for the false discovery rate (Benjamini-Hochberg) over the cube.

**Trend.** The Mann-Kendall test (Mann 1945; Kendall 1975) on each location's series of Gi*
z-scores: ``S = sum_{i<j} sign(x_j - x_i)``, ``Var S = [n(n-1)(2n+5) - sum_g t_g(t_g-1)(2t_g+5)]
/ 18`` over tie groups ``g``, ``Z = (S - sign S) / sqrt(Var S)`` (continuity corrected).

**Categories** (ArcGIS Pro, "How Emerging Hot Spot Analysis works"), for ``n`` bins, "hot" =
significant with z > 0, "cold" = significant with z < 0, at level ``alpha``:

* new: hot in the final bin and never significant before;
* consecutive: a single uninterrupted run of >= 2 hot bins ending with the final bin, never
  significant before the run, and hot in < 90% of bins;
* intensifying / diminishing: hot in >= 90% of bins including the final one, with a significant
  increasing / decreasing Mann-Kendall trend of z;
* persistent: hot in >= 90% of bins including the final one, without a significant trend;
* sporadic: hot in the final bin, hot in < 90% of bins, hot before the final run (on and off),
  never cold;
* oscillating: hot in the final bin, hot in < 90% of bins, cold in some earlier bin;
* historical: not hot in the final bin, but hot in >= 90% of bins;

and the same for cold spots with hot and cold exchanged. ArcGIS's text leaves two overlaps open;
they are resolved as in sfdep (Parry's R implementation of the same rules): a location that was
ever significant with the opposite sign is *oscillating* (not new, consecutive or sporadic), and
"90% of bins" is ``count / n >= 0.9`` (so historical needs at least 10 bins).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import sparse, stats

from models.hotspots.fdr import q_values

CATEGORIES = ["no pattern detected",
              "new hot spot", "consecutive hot spot", "intensifying hot spot",
              "persistent hot spot", "diminishing hot spot", "sporadic hot spot",
              "oscillating hot spot", "historical hot spot",
              "new cold spot", "consecutive cold spot", "intensifying cold spot",
              "persistent cold spot", "diminishing cold spot", "sporadic cold spot",
              "oscillating cold spot", "historical cold spot"]


def space_time_gi_star(cube: np.ndarray, w, time_window: int = 1
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Gi* z-scores and two-sided p-values of a (T, n) cube of counts.

    Args:
        cube: Values per time bin (rows) and location (columns).
        w: Spatial weights (n x n, no diagonal; self-weight 1 is added).
        time_window: Earlier bins of the same and neighbouring locations in the neighbourhood.
    """
    cube = np.asarray(cube, dtype=np.float64)
    t_bins, n = cube.shape
    ws = sparse.csr_matrix(w, dtype=np.float64) + sparse.identity(n, format="csr")
    rsum = np.asarray(ws.sum(axis=1)).ravel()
    rsq = np.asarray(ws.multiply(ws).sum(axis=1)).ravel()
    spatial_lag = (ws @ cube.T).T  # (T, n)
    big_n = float(cube.size)
    mean = cube.mean()
    s = np.sqrt((cube ** 2).mean() - mean ** 2)
    z = np.zeros_like(cube)
    csum = np.cumsum(np.vstack([np.zeros((1, n)), spatial_lag]), axis=0)
    for t in range(t_bins):
        lo = max(0, t - time_window)
        m = t - lo + 1
        lag = csum[t + 1] - csum[lo]
        wi = m * rsum
        s1 = m * rsq
        with np.errstate(divide="ignore", invalid="ignore"):
            z[t] = (lag - mean * wi) / (s * np.sqrt((big_n * s1 - wi * wi) / (big_n - 1)))
    z = np.nan_to_num(z)
    return z, 2 * stats.norm.sf(np.abs(z))


def mann_kendall(series: np.ndarray, continuity: bool = True) -> tuple[np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """Mann-Kendall S, Z and two-sided p of each column of a (T, n) array."""
    x = np.ascontiguousarray(np.asarray(series, dtype=np.float64).T)
    s, var = _mk(x)
    sign = np.sign(s)
    num = s - sign if continuity else s
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, num / np.sqrt(var), 0.0)
    return s, z, 2 * stats.norm.sf(np.abs(z))


@njit(cache=True)
def _mk(x):
    n_loc, t = x.shape
    s = np.zeros(n_loc)
    var = np.zeros(n_loc)
    base = t * (t - 1) * (2 * t + 5)
    for i in range(n_loc):
        acc = 0.0
        for a in range(t - 1):
            for b in range(a + 1, t):
                d = x[i, b] - x[i, a]
                if d > 0:
                    acc += 1.0
                elif d < 0:
                    acc -= 1.0
        s[i] = acc
        srt = np.sort(x[i])
        ties = 0.0
        run = 1
        for k in range(1, t + 1):
            if k < t and srt[k] == srt[k - 1]:
                run += 1
            else:
                if run > 1:
                    ties += run * (run - 1) * (2 * run + 5)
                run = 1
        var[i] = (base - ties) / 18.0
    return s, var


def classify_series(z: np.ndarray, significant: np.ndarray, trend_z: float, trend_p: float,
                    alpha: float = 0.05) -> str:
    """ArcGIS category of one location from its bins' z-scores and significance (see module)."""
    z = np.asarray(z, dtype=float)
    sig = np.asarray(significant, dtype=bool)
    n = len(z)
    hot = sig & (z > 0)
    cold = sig & (z < 0)
    for kind, this, other, trend_sign in (("hot", hot, cold, 1), ("cold", cold, hot, -1)):
        share = this.sum() / n
        if this[-1]:
            if share >= 0.9:
                if trend_p < alpha and np.sign(trend_z) == trend_sign:
                    return f"intensifying {kind} spot"
                if trend_p < alpha and np.sign(trend_z) == -trend_sign:
                    return f"diminishing {kind} spot"
                return f"persistent {kind} spot"
            if other.any():
                return f"oscillating {kind} spot"
            run = n - (np.flatnonzero(~this)[-1] + 1) if (~this).any() else n
            before = this[:n - run]
            if run == 1 and not before.any():
                return f"new {kind} spot"
            if run >= 2 and not before.any():
                return f"consecutive {kind} spot"
            return f"sporadic {kind} spot"
    for kind, this in (("hot", hot), ("cold", cold)):
        if this.sum() / n >= 0.9:
            return f"historical {kind} spot"
    return "no pattern detected"


def emerging_hot_spots(cube: np.ndarray, w, time_window: int = 1, alpha: float = 0.05,
                       fdr: str = "bh") -> dict[str, np.ndarray]:
    """Categories of each location of a (T, n) cube.

    Returns:
        dict with ``category`` (names), ``trend_z``, ``trend_p`` (Mann-Kendall of the Gi*
        z-scores), ``z`` and ``q`` (T, n) of the bins, ``hot_bins`` and ``cold_bins`` counts.
    """
    z, p = space_time_gi_star(cube, w, time_window)
    q = q_values(p.ravel(), fdr).reshape(p.shape)
    sig = q < alpha
    _, tz, tp = mann_kendall(z)
    n = z.shape[1]
    cats = np.empty(n, dtype=object)
    for i in range(n):
        cats[i] = classify_series(z[:, i], sig[:, i], tz[i], tp[i], alpha)
    return {"category": cats, "trend_z": tz, "trend_p": tp, "z": z, "q": q,
            "hot_bins": (sig & (z > 0)).sum(axis=0), "cold_bins": (sig & (z < 0)).sum(axis=0)}
