"""Statistical landslide susceptibility from an inventory and factor rasters.

Two classifiers (scikit-learn): a logistic regression on standardised factors (the classic GLM
of susceptibility mapping) and a random forest (a tree ensemble). Their skill is measured by
**spatial** cross-validation: the observations are split into k folds by k-means clusters of
their coordinates (Brenning 2012; mlr3spatiotempcv's ``spcv_coords``) or by square blocks, so
that a test fold is a separate area and the spatial autocorrelation between neighbouring
landslides does not inflate the score as random folds do. The ROC AUC of every test fold is
reported with its mean and spread, over several repetitions with different partitions.

The final model is fitted on all observations and predicts a probability on every valid cell of
the factor stack; classes are quantiles of that prediction (by default the 50th, 75th and 90th
percentiles: low, moderate, high, very high).

Inventories: points with a 0/1 (or true/false) label column (presences and absences, e.g. the
RSAGA/spDataLarge Ecuador set), or presences only (points or polygons), for which absences are
sampled at random (seeded) from valid cells outside the landslides. Too small an inventory is
refused with a clear error rather than a meaningless AUC.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gis.errors import DataError

MIN_PER_CLASS = 20
DEFAULT_QUANTILES = (0.5, 0.75, 0.9)
SUSCEPTIBILITY_CLASSES = {1: "low", 2: "moderate", 3: "high", 4: "very high"}


@dataclass
class CVResult:
    """Spatial cross-validation of one classifier."""

    model: str
    folds: str
    k: int
    repeats: int
    auc: list[float]

    @property
    def auc_mean(self) -> float:
        return float(np.mean(self.auc))

    @property
    def auc_std(self) -> float:
        return float(np.std(self.auc, ddof=1)) if len(self.auc) > 1 else 0.0

    def as_dict(self) -> dict:
        return {"model": self.model, "folds": self.folds, "k": self.k, "repeats": self.repeats,
                "auc_mean": round(self.auc_mean, 4), "auc_std": round(self.auc_std, 4),
                "auc_min": round(float(np.min(self.auc)), 4),
                "auc_max": round(float(np.max(self.auc)), 4), "n_folds": len(self.auc)}


@dataclass
class SusceptibilityResult:
    probability: np.ndarray                  # float32 on the grid, NaN = no data
    classes: np.ndarray                      # uint8 1-4, 0 = no data
    thresholds: list[float]
    cv: dict[str, CVResult]
    model: str
    n_presence: int
    n_absence: int
    factor_names: list[str]
    coefficients: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict:
        return {"model": self.model, "n_presence": self.n_presence,
                "n_absence": self.n_absence, "factors": self.factor_names,
                "class_thresholds": [round(t, 6) for t in self.thresholds],
                "cross_validation": {k: v.as_dict() for k, v in self.cv.items()},
                "coefficients": self.coefficients}


def make_model(name: str, seed: int = 0):
    """An unfitted scikit-learn classifier: ``logistic`` or ``forest``."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    if name == "forest":
        return RandomForestClassifier(n_estimators=300, min_samples_leaf=5, random_state=seed,
                                      n_jobs=1)
    raise ValueError(f"unknown model {name!r} (logistic or forest)")


def spatial_folds(xy: np.ndarray, k: int = 5, *, method: str = "kmeans", seed: int = 0,
                  block_size: float | None = None) -> np.ndarray:
    """Fold label (0..k-1) per observation from its coordinates: k-means clusters, or square
    blocks of ``block_size`` (default: the extent split into about 2k blocks) assigned to folds
    at random. Never random per observation."""
    xy = np.asarray(xy, dtype=np.float64)
    if method == "kmeans":
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits

        # one thread: a few hundred points, and OpenMP start-up costs 100x the work here
        with threadpool_limits(1):
            return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(xy)
    if method == "blocks":
        span = np.ptp(xy, axis=0)
        size = block_size or float(np.sqrt(span[0] * span[1] / (2 * k))) or 1.0
        ij = np.floor((xy - xy.min(axis=0)) / size).astype(np.int64)
        keys, block = np.unique(ij, axis=0, return_inverse=True)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(keys))
        return (order % k)[block.ravel()]
    raise ValueError(f"unknown fold method {method!r} (kmeans or blocks)")


def _check_size(y: np.ndarray, k: int) -> None:
    check_inventory(int((y == 1).sum()), int((y == 0).sum()), k)


def check_inventory(n1: int, n0: int, k: int = 5) -> None:
    """Refuse fewer than max(20, 2k) landslides or non-landslides: k spatial folds of a
    handful of events give an AUC that means nothing. Polygon inventories count landslides
    (polygons), not the cells they cover."""
    need = max(MIN_PER_CLASS, 2 * k)
    if n1 < need or n0 < need:
        raise DataError(f"inventory too small for {k}-fold spatial cross-validation: "
                        f"{n1} landslides and {n0} non-landslide points, need at least {need} "
                        "of each", field="inventory")


def spatial_cv(X: np.ndarray, y: np.ndarray, xy: np.ndarray, *, model: str = "logistic",
               k: int = 5, repeats: int = 5, method: str = "kmeans", seed: int = 0
               ) -> CVResult:
    """ROC AUC on each spatial test fold, ``repeats`` partitions with seeds seed..seed+r-1.

    A fold whose test set holds a single class has no AUC and is skipped; if no fold is
    usable the inventory is refused.
    """
    from sklearn.metrics import roc_auc_score

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(int)
    _check_size(y, k)
    from threadpoolctl import threadpool_limits

    aucs: list[float] = []
    with threadpool_limits(1):
        aucs = _cv_folds(X, y, xy, model, k, repeats, method, seed, roc_auc_score)
    if not aucs:
        raise DataError("no spatial fold holds both landslides and non-landslides: the "
                        "inventory is too clustered for spatial cross-validation",
                        field="inventory")
    return CVResult(model, method, k, repeats, aucs)


def _cv_folds(X, y, xy, model, k, repeats, method, seed, roc_auc_score) -> list[float]:
    aucs: list[float] = []
    for r in range(repeats):
        folds = spatial_folds(xy, k, method=method, seed=seed + r)
        for f in range(k):
            test = folds == f
            train = ~test
            if len(np.unique(y[test])) < 2 or len(np.unique(y[train])) < 2:
                continue
            clf = make_model(model, seed + r).fit(X[train], y[train])
            aucs.append(float(roc_auc_score(y[test], clf.predict_proba(X[test])[:, 1])))
    return aucs


def quantile_classes(prob: np.ndarray, quantiles: Sequence[float] = DEFAULT_QUANTILES
                     ) -> tuple[np.ndarray, list[float]]:
    """Classes 1..len(quantiles)+1 by quantiles of the valid cells' probabilities; 0 = NaN."""
    p = np.asarray(prob, dtype=np.float64)
    ok = np.isfinite(p)
    cls = np.zeros(p.shape, dtype=np.uint8)
    if not ok.any():
        return cls, []
    th = [float(v) for v in np.quantile(p[ok], quantiles)]
    cls[ok] = (1 + np.searchsorted(th, p[ok], side="right")).astype(np.uint8)
    return cls, th


def sample_stack(stack: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Factor values (n, n_factors) at cells (rows, cols) of a (n_factors, H, W) stack."""
    return np.asarray(stack)[:, rows, cols].T.astype(np.float64)


def sample_absences(valid: np.ndarray, exclude: np.ndarray, n: int, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random (row, col) cells where ``valid`` and not ``exclude`` (seeded)."""
    cand = np.flatnonzero(valid.ravel() & ~exclude.ravel())
    if cand.size < n:
        raise DataError(f"only {cand.size} cells outside the landslides to sample {n} "
                        "absences from", field="inventory")
    pick = np.random.default_rng(seed).choice(cand, size=n, replace=False)
    return np.unravel_index(pick, valid.shape)


def susceptibility(stack: np.ndarray, names: Sequence[str], X: np.ndarray, y: np.ndarray,
                   xy: np.ndarray, *, model: str = "logistic", k: int = 5, repeats: int = 5,
                   folds: str = "kmeans", seed: int = 0,
                   quantiles: Sequence[float] = DEFAULT_QUANTILES,
                   compare: Sequence[str] = ("logistic", "forest"),
                   progress: Callable[[str], None] | None = None) -> SusceptibilityResult:
    """Cross-validate, fit on all observations and map the probability.

    Args:
        stack: Factors (n_factors, H, W), NaN = nodata; ``names`` their names.
        X, y, xy: Observations (n, n_factors), labels 0/1 and coordinates (n, 2).
        model: The classifier that makes the map (``logistic`` or ``forest``).
        compare: Classifiers to cross-validate (the mapping one is always included).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(int)
    keep = np.isfinite(X).all(axis=1)
    X, y, xy = X[keep], y[keep], np.asarray(xy)[keep]
    _check_size(y, k)
    cv = {}
    for name in dict.fromkeys([model, *compare]):
        if progress:
            progress(f"spatial CV {name}")
        cv[name] = spatial_cv(X, y, xy, model=name, k=k, repeats=repeats, method=folds,
                              seed=seed)
    if progress:
        progress(f"fit {model}")
    clf = make_model(model, seed).fit(X, y)
    stack = np.asarray(stack, dtype=np.float64)
    flat = stack.reshape(stack.shape[0], -1).T
    ok = np.isfinite(flat).all(axis=1)
    prob = np.full(flat.shape[0], np.nan, dtype=np.float32)
    if ok.any():
        prob[ok] = clf.predict_proba(flat[ok])[:, 1]
    prob = prob.reshape(stack.shape[1:])
    cls, th = quantile_classes(prob, quantiles)
    coefs: dict[str, float] = {}
    if model == "logistic":
        lr = clf[-1]
        coefs = {n: round(float(c), 6) for n, c in zip(names, lr.coef_[0])}
        coefs["intercept"] = round(float(lr.intercept_[0]), 6)
    else:
        coefs = {n: round(float(c), 6) for n, c in zip(names, clf.feature_importances_)}
    return SusceptibilityResult(prob, cls, th, cv, model, int((y == 1).sum()),
                                int((y == 0).sum()), list(names), coefs)
