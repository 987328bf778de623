"""Statistical susceptibility: spatial cross-validation on the Ecuador inventory (Muenchow et
al. 2012, spDataLarge ``lsl``), quantile classes, refusal of small inventories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio

from gis.errors import DataError
from models.landslide.susceptibility import (quantile_classes, sample_stack, spatial_cv,
                                             spatial_folds, susceptibility)

FACTORS = ["slope", "cplan", "cprof", "elev", "log10_carea"]


@pytest.fixture(scope="module")
def ecuador(shared_data):
    d = "ecuador-landslides-lsl"
    lsl = pd.read_csv(shared_data(d, "lsl.csv"))
    with rasterio.open(shared_data(d, "ta.tif")) as ds:
        stack = ds.read().astype("float64")
        names = list(ds.descriptions)
        transform = ds.transform
    return lsl, stack, names, transform


@pytest.mark.shared_data
def test_factor_stack_sampled_at_the_points_matches_the_inventory(ecuador):
    lsl, stack, names, transform = ecuador
    assert names == FACTORS
    cols, rows = (~transform) @ (lsl.x.to_numpy(), lsl.y.to_numpy())
    X = sample_stack(stack, np.floor(rows).astype(int), np.floor(cols).astype(int))
    np.testing.assert_allclose(X[:, 3], lsl.elev, atol=1e-3)           # SOURCE.md: <= 1e-4 m
    np.testing.assert_allclose(X[:, 0], lsl.slope, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.shared_data
def test_spatial_cv_auc_on_ecuador(ecuador):
    lsl, stack, names, _ = ecuador
    X = lsl[FACTORS].to_numpy()
    y = lsl.lslpts.astype(int).to_numpy()
    xy = lsl[["x", "y"]].to_numpy()
    res = susceptibility(stack, names, X, y, xy, model="logistic", k=5, repeats=5,
                         compare=("logistic",), seed=0)
    cv = res.cv["logistic"]
    print(f"\nEcuador logistic regression, spatial 5-fold CV x 5: AUC {cv.auc_mean:.3f} "
          f"+- {cv.auc_std:.3f} (min {min(cv.auc):.3f}, max {max(cv.auc):.3f})")
    assert len(cv.auc) == 25
    assert cv.auc_mean >= 0.75
    assert 0.0 < cv.auc_std < 0.15
    # the map: probabilities on the valid cells, classes at the 50/75/90 % quantiles
    valid = np.isfinite(stack).all(axis=0)
    assert np.array_equal(np.isfinite(res.probability), valid)
    share = np.bincount(res.classes[valid], minlength=5)[1:] / valid.sum()
    np.testing.assert_allclose(share, [0.5, 0.25, 0.15, 0.10], atol=0.01)
    # steeper slopes raise the odds in this inventory (Muenchow et al. 2012)
    assert res.coefficients["slope"] > 0
    # the tree ensemble, one partition
    rf = spatial_cv(X, y, xy, model="forest", k=5, repeats=1, seed=0)
    print(f"random forest, spatial 5-fold CV: AUC {rf.auc_mean:.3f} +- {rf.auc_std:.3f}")
    assert rf.auc_mean > 0.65


@pytest.mark.shared_data
def test_spatial_folds_are_areas_not_random_points(ecuador):
    lsl = ecuador[0]
    xy = lsl[["x", "y"]].to_numpy()
    from scipy.spatial import cKDTree

    def mean_gap(folds):
        gaps = []
        for f in np.unique(folds):
            tree = cKDTree(xy[folds != f])
            gaps.append(tree.query(xy[folds == f])[0].mean())
        return np.mean(gaps)

    random = np.random.default_rng(0).integers(0, 5, len(xy))
    for method in ("kmeans", "blocks"):
        folds = spatial_folds(xy, 5, method=method, seed=0)
        assert set(np.unique(folds)) == set(range(5))
        # a test point lies much farther from the training points than with random folds
        assert mean_gap(folds) > 1.5 * mean_gap(random)


def test_small_inventory_is_refused():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = np.r_[np.ones(12), np.zeros(18)]
    with pytest.raises(DataError, match="inventory too small.*12 landslides"):
        spatial_cv(X, y, rng.uniform(0, 100, (30, 2)))


def test_quantile_classes():
    p = np.r_[np.linspace(0, 1, 1000), np.nan]
    cls, th = quantile_classes(p)
    assert th == pytest.approx([0.5, 0.75, 0.9], abs=1e-3)
    assert np.bincount(cls).tolist() == [1, 500, 250, 150, 100]
