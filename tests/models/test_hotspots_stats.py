"""Hot-spot statistics against esda, statsmodels, exact enumeration and hand computation."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import sparse

from models.hotspots.fdr import classify, q_values
from models.hotspots.stats import getis_ord, local_moran, permutation_counts
from models.hotspots.weights import distance_band_weights, grid_weights, to_libpysal

# esda/tests/test_getisord.py (pysal/esda): points, distance band 15, y
POINTS = np.array([(10, 10), (20, 10), (40, 10), (15, 20), (30, 20), (30, 30)], float)
Y = np.array([2, 3, 3.2, 5, 8, 7])


def _esda():
    esda = pytest.importorskip("esda")
    return esda


def test_esda_published_vector():
    """esda's test_star_binary: Gi* z of the first point = -1.39727626; the docstring gives all
    six Gi* and Gi z-scores (transform 'B')."""
    w = distance_band_weights(POINTS, 15)
    gs = getis_ord(Y, w, star=True)
    assert gs.z[0] == pytest.approx(-1.39727626, abs=1e-8)
    np.testing.assert_allclose(gs.z, [-1.39727626, -0.28917762, 0.65064964, -0.28917762,
                                      1.23452088, 2.02424331], atol=1e-8)
    g = getis_ord(Y, w, star=False)
    np.testing.assert_allclose(g.z, [-1.0136729, -0.04361589, 1.31558703, -0.31412676,
                                     1.15373986, 1.77833941], atol=1e-7)


def test_gi_star_hand_formula_non_binary():
    """Ord & Getis (1995) eq. for general weights, computed densely by hand."""
    rng = np.random.default_rng(5)
    n = 40
    dense = rng.random((n, n)) * (rng.random((n, n)) < 0.2)
    np.fill_diagonal(dense, 0)
    y = rng.gamma(2.0, 1.0, n)
    g = getis_ord(y, sparse.csr_matrix(dense), star=0.5)
    wd = dense + 0.5 * np.eye(n)
    xbar, s = y.mean(), math.sqrt((y ** 2).mean() - y.mean() ** 2)
    wi, s1 = wd.sum(1), (wd ** 2).sum(1)
    z = (wd @ y - xbar * wi) / (s * np.sqrt((n * s1 - wi ** 2) / (n - 1)))
    np.testing.assert_allclose(g.z, z, rtol=1e-12)
    np.testing.assert_allclose(g.stat, wd @ y / y.sum(), rtol=1e-12)


def test_local_moran_and_gi_match_esda_on_grid():
    esda = _esda()
    w = grid_weights(12, 15, "queen")
    rng = np.random.default_rng(0)
    y = rng.poisson(3, 180).astype(float)
    W = to_libpysal(w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eg = esda.G_Local(y, W, star=True, transform="B", permutations=0)
        W = to_libpysal(w)
        em = esda.Moran_Local(y, W, transformation="r", permutations=0)
    g = getis_ord(y, w)
    np.testing.assert_allclose(g.z, eg.Zs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(g.stat, eg.Gs, rtol=0, atol=1e-12)
    m = local_moran(y, w)
    np.testing.assert_allclose(m.stat, em.Is, atol=1e-9)
    np.testing.assert_array_equal(m.quadrant, em.q)
    np.testing.assert_allclose(m.z, (em.Is - em.EI) / np.sqrt(em.VI), atol=1e-9)


def test_permutation_exact_enumeration():
    """A site with 3 neighbours among 9 others: the exact one-sided p is the share of the
    C(9, 3) = 84 neighbour sets whose sum reaches the observed one."""
    y = np.array([5.0, 4.0, 3.0, 9.0, 1.0, 2.0, 7.0, 0.5, 6.0, 8.0])
    n = len(y)
    w = sparse.lil_matrix((n, n))
    w[0, [1, 2, 3]] = 1.0
    w[1, [0, 2]] = 1.0
    obs = y[[1, 2, 3]].sum()
    others = np.delete(y, 0)
    sums = np.array([sum(c) for c in itertools.combinations(others, 3)])
    exact_ge = (sums >= obs).mean()
    exact_le = (sums <= obs).mean()
    perms = 40_000
    ge, le = permutation_counts(w.tocsr(), y, perms, seed=11)
    for count, p in ((ge[0], exact_ge), (le[0], exact_le)):
        sd = math.sqrt(p * (1 - p) / perms)
        assert abs(count / perms - p) < 5 * sd, (count / perms, p)
    # site 1: 2 of 9 -> 36 sets
    sums1 = np.array([sum(c) for c in itertools.combinations(np.delete(y, 1), 2)])
    p1 = (sums1 >= y[[0, 2]].sum()).mean()
    assert abs(ge[1] / perms - p1) < 5 * math.sqrt(p1 * (1 - p1) / perms)
    assert ge[2] == le[2] == perms  # no neighbours: never significant


def test_permutations_reproducible_and_thread_independent():
    import numba

    w = grid_weights(30, 30, "rook")
    y = np.random.default_rng(3).gamma(1.0, 2.0, 900)
    a = getis_ord(y, w, permutations=199, seed=7)
    b = getis_ord(y, w, permutations=199, seed=7)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        c = getis_ord(y, w, permutations=199, seed=7)
    finally:
        numba.set_num_threads(threads)
    d = getis_ord(y, w, permutations=199, seed=8)
    np.testing.assert_array_equal(a.p_sim, b.p_sim)
    np.testing.assert_array_equal(a.p_sim, c.p_sim)
    assert not np.array_equal(a.p_sim, d.p_sim)


@pytest.mark.slow
def test_permutation_p_values_follow_esda_distribution():
    """Same null distribution as esda's conditional randomisation: per-site pseudo p-values of
    Gi* agree within Monte Carlo error (continuous values, so no ties). Slow: esda's numba
    kernels compile in about 25 s. Local Moran's permutations are checked by exact
    enumeration below."""
    esda = _esda()
    rng = np.random.default_rng(2)
    xy = rng.random((400, 2)) * 1000
    y = rng.gamma(2.0, 1.0, 400)
    w = distance_band_weights(xy, 90)
    perms = 1999
    g = getis_ord(y, w, permutations=perms, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eg = esda.G_Local(y, to_libpysal(w), star=True, transform="B", permutations=perms,
                          seed=5, alternative="greater", n_jobs=1)
    p = (g.p_greater + eg.p_sim) / 2
    sd = np.sqrt(2 * p * (1 - p) / perms) + 1.0 / perms
    assert np.all(np.abs(g.p_greater - eg.p_sim) < 5 * sd)
    assert np.corrcoef(g.p_greater, eg.p_sim)[0, 1] > 0.98


def test_local_moran_permutations_exact_enumeration():
    """I_i of a site below the mean moves against its neighbours' sum: its one-sided p-values
    are those of the exact distribution of I_i over all C(7, 3) neighbour sets."""
    y = np.array([1.0, 4.0, 3.0, 9.0, 0.5, 2.0, 7.0, 6.0])
    n = len(y)
    w = sparse.lil_matrix((n, n))
    w[0, [1, 2, 3]] = 1.0
    for i in range(1, n):  # a ring for the others, so every row has neighbours
        w[i, [i % (n - 1) + 1]] = 1.0
    perms = 40_000
    m = local_moran(y, w.tocsr(), permutations=perms, seed=4)
    z = (y - y.mean()) / y.std()
    assert z[0] < 0
    ii = np.array([(n - 1) * z[0] * np.mean(c) / (z @ z)
                   for c in itertools.combinations(np.delete(z, 0), 3)])
    for ours, p in ((m.p_greater[0], ((ii >= m.stat[0] - 1e-12).sum() + 0.0) / len(ii)),
                    (m.p_lesser[0], ((ii <= m.stat[0] + 1e-12).sum() + 0.0) / len(ii))):
        expect = (perms * p + 1) / (perms + 1)
        assert abs(ours - expect) < 5 * math.sqrt(p * (1 - p) / perms) + 1e-4, (ours, expect)


def test_fdr_against_statsmodels_and_hand():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5, 0.2])
    # hand: sorted 0.005 0.01 0.03 0.04 0.2 0.5 -> m p / k = .03 .03 .06 .06 .24 .5
    np.testing.assert_allclose(q_values(p, "bh"), [0.03, 0.06, 0.06, 0.03, 0.5, 0.24])
    c = 1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5 + 1 / 6
    np.testing.assert_allclose(q_values(p, "by"), np.minimum(1, c * np.array(
        [0.03, 0.06, 0.06, 0.03, 0.5, 0.24])))
    rng = np.random.default_rng(9)
    p = np.concatenate([rng.random(500), rng.random(60) * 1e-3])
    for ours, theirs in (("bh", "fdr_bh"), ("by", "fdr_by")):
        np.testing.assert_allclose(q_values(p, ours), multipletests(p, method=theirs)[1],
                                   rtol=0, atol=1e-12)


def test_fdr_matches_esda_cutoff():
    esda = _esda()
    rng = np.random.default_rng(4)
    p = np.concatenate([rng.random(300), rng.random(40) * 2e-3])
    for alpha in (0.1, 0.05, 0.01):
        cut = esda.fdr(p, alpha)
        assert np.array_equal(q_values(p, "bh") <= alpha, p < cut)


def test_classes():
    z = np.array([3.0, 2.0, 1.7, -2.5, -3.5, 0.2, np.nan])
    p = np.array([0.005, 0.03, 0.09, 0.04, 0.001, 0.8, np.nan])
    assert classify(z, p).tolist() == [3, 2, 1, -2, -3, 0, 0]


def test_total_permutation_exact_enumeration():
    """Total null of Gi*: the site's own value is drawn too. Site 0 (self-weight 1) with 2
    neighbours among 8 values: the share of the C(8, 3) = 56 triples whose sum reaches the
    observed one."""
    y = np.array([6.0, 4.0, 1.0, 9.0, 0.5, 2.0, 7.0, 3.0])
    n = len(y)
    w = sparse.lil_matrix((n, n))
    w[0, [1, 2]] = 1.0
    obs = y[[0, 1, 2]].sum()
    sums = np.array([sum(c) for c in itertools.combinations(y, 3)])
    perms = 40_000
    ge, le = permutation_counts(w.tocsr(), y, perms, seed=5, null="total")
    for count, p in ((ge[0], (sums >= obs).mean()), (le[0], (sums <= obs).mean())):
        assert abs(count / perms - p) < 5 * math.sqrt(p * (1 - p) / perms)
    # an island under the total null is its own value against all values
    p_island = (y >= y[3]).mean()
    assert abs(ge[3] / perms - p_island) < 5 * math.sqrt(p_island * (1 - p_island) / perms)


@pytest.mark.parametrize("null", ["conditional", "total"])
def test_weighted_permutations_exact_enumeration(null):
    """Unequal weights take the general path: every ordered draw of values onto the weighted
    neighbours (and, under the total null, the site itself) is equally likely."""
    y = np.array([5.0, 4.0, 1.0, 9.0, 0.5, 2.0, 7.0])
    n = len(y)
    w = sparse.lil_matrix((n, n))
    w[0, [1, 2, 3]] = [1.0, 2.0, 0.5]
    weights = np.array([1.0, 2.0, 0.5])
    obs = weights @ y[[1, 2, 3]]
    if null == "total":
        obs += 0.7 * y[0]
        draws = np.array(list(itertools.permutations(y, 4)))
        sums = 0.7 * draws[:, 0] + draws[:, 1:] @ weights
    else:
        draws = np.array(list(itertools.permutations(np.delete(y, 0), 3)))
        sums = draws @ weights
    perms = 40_000
    ge, le = permutation_counts(w.tocsr(), y, perms, seed=2, null=null, self_weight=0.7)
    for count, p in ((ge[0], (sums >= obs - 1e-9).mean()), (le[0], (sums <= obs + 1e-9).mean())):
        assert abs(count / perms - p) < 5 * math.sqrt(p * (1 - p) / perms), (count / perms, p)
