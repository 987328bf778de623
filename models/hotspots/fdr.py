"""False discovery rate: Benjamini-Hochberg and Benjamini-Yekutieli q-values, and hot/cold classes.

With thousands of lixels tested at once, about 5% of them come out "significant at 95%" by chance
alone. The q-value of a test is the smallest false discovery rate at which it would be rejected:

* Benjamini & Hochberg (1995), J. R. Stat. Soc. B 57(1): sort the m p-values ascending,
  ``q_(k) = min_{j >= k} min(1, m p_(j) / j)``; valid for independent or positively dependent
  tests.
* Benjamini & Yekutieli (2001), Ann. Statist. 29(4): the same with ``m`` replaced by
  ``m * sum_{i=1..m} 1/i``; valid under any dependence (local statistics of overlapping
  neighbourhoods are dependent).

Classes follow ArcGIS's ``Gi_Bin``: +3/+2/+1 hot spot at 99/95/90% confidence, -3/-2/-1 cold,
0 not significant, with the sign taken from the z-score.
"""

from __future__ import annotations

import numpy as np

CONFIDENCE = ((3, 0.01), (2, 0.05), (1, 0.10))
CLASS_NAMES = {3: "hot spot 99%", 2: "hot spot 95%", 1: "hot spot 90%", 0: "not significant",
               -1: "cold spot 90%", -2: "cold spot 95%", -3: "cold spot 99%"}


def q_values(p: np.ndarray, method: str = "bh") -> np.ndarray:
    """Adjusted p-values (q-values) by ``bh`` (Benjamini-Hochberg), ``by``
    (Benjamini-Yekutieli) or ``none`` (p unchanged). NaN p-values are left out and stay NaN."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if method == "none":
        out[ok] = p[ok]
        return out
    if method not in ("bh", "by"):
        raise ValueError(f"unknown FDR method {method!r} (bh, by, none)")
    pv = p[ok]
    m = len(pv)
    if m == 0:
        return out
    order = np.argsort(pv, kind="stable")
    ranked = pv[order] * m / np.arange(1, m + 1)
    if method == "by":
        ranked *= np.sum(1.0 / np.arange(1, m + 1))
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(ranked, 1.0)
    out[ok] = q
    return out


def classify(z: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Hot (+) / cold (-) classes 3, 2, 1 at p <= 0.01, 0.05, 0.10; 0 otherwise (int8)."""
    z = np.asarray(z, dtype=float)
    p = np.asarray(p, dtype=float)
    level = np.zeros(z.shape, np.int8)
    for value, alpha in reversed(CONFIDENCE):
        level[np.isfinite(p) & (p <= alpha)] = value
    sign = np.sign(np.nan_to_num(z)).astype(np.int8)
    return (level * sign).astype(np.int8)
