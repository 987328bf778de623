"""Network KDE (mass conservation, analytic 1-D kernel, equal split), emerging hot-spot categories
on constructed series, Mann-Kendall against scipy, space-time Gi* against the Kronecker cube
weights, hexagon grid against libpysal's Queen contiguity."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from scipy import integrate, sparse, stats

from models.hotspots.emerging import (
    classify_series,
    emerging_hot_spots,
    mann_kendall,
    space_time_gi_star,
)
from models.hotspots.hexgrid import hex_grid
from models.hotspots.lixels import build_lixels, snap_points
from models.hotspots.nkde import KERNELS, network_kde
from models.hotspots.stats import getis_ord
from models.hotspots.weights import grid_weights


def _roads(lines):
    return gpd.GeoDataFrame(geometry=[shapely.LineString(c) for c in lines], crs="EPSG:3826")


TOWN = [[(0, 0), (-1000, 0)], [(0, 0), (1000, 0)], [(0, 0), (0, 1000)], [(0, 0), (0, -1000)],
        [(500, 0), (500, -730)], [(0, 1000), (300, 1000), (300, 1300), (0, 1300), (0, 1000)],
        [(40, 100), (40, 900)], [(700, 700), (720, 700)]]  # the last is a 20 m stub alone


def _events(net, xy, tol=2000.0):
    s = snap_points(net, shapely.points(xy), tol)
    return net.lixels["segment"].to_numpy()[s.lixel], s.position


@pytest.mark.parametrize("kernel", sorted(KERNELS))
@pytest.mark.parametrize("bandwidth", [40.0, 300.0, 2500.0])
def test_nkde_conserves_mass(kernel, bandwidth):
    net = build_lixels(_roads(TOWN), 100.0)
    rng = np.random.default_rng(1)
    seg, pos = _events(net, rng.uniform(-1000, 1000, (200, 2)))
    seg = np.r_[seg, net.lixels["segment"].iloc[-1]]  # one crash on the isolated stub
    pos = np.r_[pos, 5.0]
    wt = rng.uniform(0.5, 3.0, len(seg))
    mass = network_kde(net, seg, pos, wt, bandwidth, kernel)
    assert mass.min() >= 0
    assert mass.sum() == pytest.approx(wt.sum(), rel=1e-12)
    # no mass crosses between unconnected roads
    iso = (net.lixels["road"] == 6).to_numpy()
    on_iso = np.isin(seg, net.lixels.loc[iso, "segment"].unique())
    m_iso = network_kde(net, seg[on_iso], pos[on_iso], wt[on_iso], bandwidth, kernel)
    assert m_iso[~iso].sum() == 0.0
    assert m_iso[iso].sum() == pytest.approx(wt[on_iso].sum(), rel=1e-12)


def test_nkde_straight_road_is_the_1d_kernel():
    """Far from nodes, the lixel mass is the integral of the 1-D quartic kernel over it."""
    net = build_lixels(_roads([[(0, 0), (10_000, 0)]]), 50.0)
    h = 400.0
    mass = network_kde(net, np.array([0]), np.array([5_020.0]), None, h, "quartic")

    def k(u):
        return 15 / 16 * (1 - (u / h) ** 2) ** 2 / h if abs(u) < h else 0.0

    for _, lx in net.lixels.iterrows():
        a, b = lx.start_m - 5_020.0, lx.end_m - 5_020.0
        pts = [p for p in (-h, 0.0, h) if a < p < b]
        ref = integrate.quad(k, a, b, points=pts or None, epsabs=1e-13)[0]
        assert mass[lx.lixel] == pytest.approx(ref, abs=1e-12)


def test_nkde_equal_split_at_junction():
    """A crash 100 m from a junction of degree 3: beyond it, each of the two other roads gets
    half of the kernel's tail (1/2 - F(100)), the Okabe equal split."""
    net = build_lixels(_roads([[(0, 0), (-3000, 0)], [(0, 0), (3000, 0)], [(0, 0), (0, 3000)]]),
                       100.0)
    h = 500.0
    seg0 = int(net.lixels.loc[net.lixels.road == 0, "segment"].iloc[0])
    mass = network_kde(net, np.array([seg0]), np.array([100.0]), None, h, "epanechnikov")
    u = 100.0 / h
    tail = 0.5 - 0.75 * (u - u ** 3 / 3)
    for road in (1, 2):
        assert mass[(net.lixels.road == road).to_numpy()].sum() == pytest.approx(tail / 2,
                                                                                  rel=1e-12)
    assert mass[(net.lixels.road == 0).to_numpy()].sum() == pytest.approx(1 - tail, rel=1e-12)


# --- emerging ------------------------------------------------------------------------------------

CASES = {
    # bins 0..9 (10 bins): h = significant hot, c = significant cold, . = not significant
    "new hot spot": ".........h",
    "consecutive hot spot": "......hhhh",
    "intensifying hot spot": ".hhhhhhhhh",
    "persistent hot spot": "hhhhhhhhhh",
    "diminishing hot spot": "hhhhhhhhh.h"[1:],
    "sporadic hot spot": "..h..h.h.h",
    "oscillating hot spot": "c...h...hh",
    "historical hot spot": "hhhhhhhhh.",
    "new cold spot": ".........c",
    "consecutive cold spot": ".......ccc",
    "intensifying cold spot": "cccccccccc",
    "persistent cold spot": "ccccc.cccc",
    "diminishing cold spot": ".ccccccccc",
    "sporadic cold spot": "c.c..cc..c",
    "oscillating cold spot": "..h.c....c",
    "historical cold spot": "ccccccccc.",
    "no pattern detected": "....h.c...",
}
TRENDS = {"intensifying hot spot": 1, "diminishing hot spot": -1, "intensifying cold spot": -1,
          "diminishing cold spot": 1}


@pytest.mark.parametrize("category", sorted(CASES))
def test_emerging_categories(category):
    pattern = CASES[category]
    z = np.array([{"h": 3.0, "c": -3.0, ".": 0.3}[ch] for ch in pattern])
    sig = np.array([ch != "." for ch in pattern])
    trend = TRENDS.get(category, 0)
    tz, tp = (2.5 * trend, 0.01) if trend else (0.4, 0.7)
    assert classify_series(z, sig, tz, tp) == category


def test_emerging_trend_decides_between_persistent_and_intensifying():
    z = np.full(10, 3.0)
    sig = np.ones(10, bool)
    assert classify_series(z, sig, 2.5, 0.01) == "intensifying hot spot"
    assert classify_series(z, sig, -2.5, 0.01) == "diminishing hot spot"
    assert classify_series(z, sig, 2.5, 0.2) == "persistent hot spot"


def test_mann_kendall_against_scipy_and_hand():
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=(15, 40)), 1)  # ties within columns
    s, z, p = mann_kendall(x, continuity=False)
    t = np.arange(15)
    for i in range(40):
        tau, pk = stats.kendalltau(t, x[:, i], method="asymptotic")
        assert p[i] == pytest.approx(pk, rel=1e-9)
    # hand: 1 3 2 4 -> pairs (+,+,+,-,+,+) S = 4, Var = 4*3*13/18
    s, z, p = mann_kendall(np.array([[1.0], [3.0], [2.0], [4.0]]))
    assert s[0] == 4 and z[0] == pytest.approx(3 / np.sqrt(4 * 3 * 13 / 18))


def test_space_time_gi_star_is_gi_star_on_the_cube():
    rng = np.random.default_rng(5)
    w = grid_weights(6, 7, "rook")
    cube = rng.poisson(2.0, (8, 42)).astype(float)
    k = 2
    lag = sparse.csr_matrix(np.tril(np.triu(np.ones((8, 8)), -k)))  # t - k <= t' <= t
    wst = sparse.kron(lag, w + sparse.identity(42)).tocsr()
    wst.setdiag(0)
    ref = getis_ord(cube.ravel(), wst, star=True).z.reshape(8, 42)
    z, p = space_time_gi_star(cube, w, time_window=k)
    np.testing.assert_allclose(z, ref, atol=1e-10)


def test_emerging_finds_a_growing_cluster():
    rng = np.random.default_rng(8)
    w = grid_weights(15, 15, "queen")
    cube = rng.poisson(1.0, (12, 225)).astype(float)
    centre = [7 * 15 + 7, 7 * 15 + 8, 8 * 15 + 7, 6 * 15 + 7]
    cube[:, centre] += np.arange(12)[:, None] * 1.5 + 6
    out = emerging_hot_spots(cube, w)
    assert set(out["category"][centre]) <= {"intensifying hot spot", "persistent hot spot"}
    assert out["category"][7 * 15 + 7] == "intensifying hot spot"
    assert (out["category"] != "no pattern detected").mean() < 0.3


# --- hexagons ------------------------------------------------------------------------------------


def test_hex_grid_cells_and_weights():
    libpysal = pytest.importorskip("libpysal")
    rng = np.random.default_rng(2)
    pts = gpd.GeoSeries(shapely.points(rng.uniform(0, 3000, (500, 2))), crs="EPSG:3826")
    cells, w, cell = hex_grid(pts, 150.0)
    assert cells["count"].sum() == 500
    # every point lies in its hexagon
    assert shapely.covers(cells.geometry.values[cell], pts.values).all()
    # hexagons tile: no overlap, area = 3 sqrt(3)/2 s^2
    np.testing.assert_allclose(cells.area, 1.5 * np.sqrt(3) * 150 ** 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapped = cells.set_geometry(shapely.set_precision(cells.geometry.values, 1e-3))
        queen = libpysal.weights.Queen.from_dataframe(snapped, use_index=False)
    ref = queen.sparse.tocsr()
    ref.sort_indices()
    assert (abs(ref - w) > 0).nnz == 0
    assert np.bincount(np.diff(w.indptr)).argmax() == 6


# --- jam-prone corridors -------------------------------------------------------------------------


def test_jam_corridors_from_speeds():
    from models.hotspots.jams import jam_corridors

    net = build_lixels(_roads([[(0, 0), (3000, 0)], [(3000, 0), (3000, 2000)]]), 100.0)
    x = np.arange(25.0, 3000, 50.0)
    speed = np.where((x > 1000) & (x < 1600), 30.0, 90.0)  # a 600 m slow stretch
    y = np.arange(25.0, 2000, 50.0)
    speed_b = np.where((y > 900) & (y < 1000), 20.0, 90.0)  # one slow lixel: not a corridor
    pts = shapely.points(np.r_[np.c_[x, np.zeros_like(x)], np.c_[np.full_like(y, 3000), y]])
    obs = gpd.GeoDataFrame({"speed": np.r_[speed, speed_b], "free_flow": 100.0},
                           geometry=pts, crs="EPSG:3826")
    out = jam_corridors(net, obs, threshold=0.5, min_length=300)
    assert out["corridors"] == 1
    assert out["corridor_km"] == pytest.approx(0.6)
    mids = net.lixels.geometry.interpolate(0.5, normalized=True)
    inside = (mids.x > 1000) & (mids.x < 1600) & (mids.y == 0)
    np.testing.assert_array_equal(out["corridor"] >= 0, inside.to_numpy())
    np.testing.assert_allclose(out["congestion"][inside.to_numpy()], 0.7)
    # without a free-flow column: the 85th percentile of each lixel's own observations
    t = np.tile(np.r_[np.full(9, 90.0), 20.0], len(x))  # mostly free, jams 1 time in 10
    many = gpd.GeoDataFrame({"speed": t}, geometry=np.repeat(pts[:len(x)], 10),
                            crs="EPSG:3826")
    out2 = jam_corridors(net, many)
    assert out2["corridors"] == 0
    np.testing.assert_allclose(np.nanmax(out2["congestion"]), 1 - 83.0 / 90.0)
