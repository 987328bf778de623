"""SHALSTAB, infinite-slope FS, Monte Carlo probability of failure, transient infiltration.

Expected values are computed here from the published formulas (Montgomery & Dietrich 1994,
Montgomery et al. 1998, Pack et al. 1998, Iverson 2000 / TRIGRS), in their own dimensional form,
not through the model code; the Monte Carlo is checked against TauDEM's SINMAP output.
"""

from __future__ import annotations

import glob
import math

import numpy as np
import pytest
import rasterio

from models.landslide.calibration import Region, parse_calibration
from models.landslide.fs import (factor_of_safety, fs_classes, pof_classes,
                                 probability_of_failure)
from models.landslide.shalstab import critical_rainfall, shalstab_classes
from models.landslide.transient import TransientParams, pressure_head, transient_fs

G = 9.81


def pd_timestamp(*args):
    import pandas as pd

    return pd.Timestamp(*args)


def _one(deg: float) -> np.ndarray:
    return np.array([[math.tan(math.radians(deg))]])


def _region(t, c, phi, dens=2000.0, rid=1):
    return [Region(rid, t, t, c, c, phi, phi, dens)]


# --- SHALSTAB ----------------------------------------------------------------------------------

def test_shalstab_cohesionless_montgomery_dietrich_1994():
    # MD94 eq. 6: q/T = (b/a) sin(theta) (rho_s/rho_w) (1 - tan(theta)/tan(phi))
    # theta 35, phi 40, rho_s/rho_w = 2, a/b = 100 m, T = 2 m^2/h:
    # q = 2 * 0.573576 / 100 * 2 * (1 - 0.700208/0.839100) = 0.00379765 m/h = 91.144 mm/day
    theta, phi = math.radians(35), math.radians(40)
    q_m_h = 2.0 * math.sin(theta) / 100.0 * 2.0 * (1 - math.tan(theta) / math.tan(phi))
    assert q_m_h * 24000 == pytest.approx(91.144, abs=1e-3)
    q, wc = critical_rainfall(_one(35), np.array([[100.0]]), _region(2.0, 0.0, 40.0))
    assert q[0, 0] == pytest.approx(q_m_h * 24000, rel=1e-6)
    assert shalstab_classes(q, wc)[0, 0] == 3                       # 50-100 mm/day


def test_shalstab_with_cohesion_montgomery_1998():
    # q/T = (b/a) sin(theta) [C'/(rho_w g z cos^2(theta) tan(phi))
    #                          + (rho_s/rho_w)(1 - tan(theta)/tan(phi))]
    # C' = 2 kPa, z = 1 m (vertical), theta 40, phi 35, rho_s 2000, a/b = 250 m, T = 3 m^2/h
    cp, z, rs, a, t = 2000.0, 1.0, 2000.0, 250.0, 3.0
    theta, phi = math.radians(40), math.radians(35)
    w_c = (cp / (1000 * G * z * math.cos(theta) ** 2 * math.tan(phi))
           + rs / 1000 * (1 - math.tan(theta) / math.tan(phi)))
    q_mm_day = t * math.sin(theta) / a * w_c * 24000
    # SINMAP's dimensionless cohesion: C = C' / (h rho_s g), h = z cos(theta) normal to the slope
    c_dimless = cp / (z * math.cos(theta) * rs * G)
    q, wc = critical_rainfall(_one(40), np.array([[a]]), _region(t, c_dimless, 35.0, rs))
    assert 0 < w_c < 1
    assert wc[0, 0] == pytest.approx(w_c, rel=1e-5)
    assert q[0, 0] == pytest.approx(q_mm_day, rel=1e-5)


def test_shalstab_unconditional_cases():
    # dry and unstable: theta 50 > phi 35 with no cohesion -> q = 0, class 1
    q, wc = critical_rainfall(_one(50), np.array([[10.0]]), _region(2.0, 0.0, 35.0))
    assert q[0, 0] == 0 and shalstab_classes(q, wc)[0, 0] == 1
    # saturated and stable: tan(10) = 0.176 <= (1 - 1/2) tan(35) = 0.350 -> no critical rain
    q, wc = critical_rainfall(_one(10), np.array([[10.0]]), _region(2.0, 0.0, 35.0))
    assert np.isnan(q[0, 0]) and shalstab_classes(q, wc)[0, 0] == 7


# --- deterministic infinite slope --------------------------------------------------------------

def test_infinite_slope_fs_hand_computed():
    # FS = [C' + (gamma_s z - gamma_w h_w) cos^2(theta) tan(phi)] / (gamma_s z sin cos)
    # (Montgomery & Dietrich 1994 eq. 3, vertical z), h_w/z = w = min(R a/(T sin(theta)), 1)
    # theta 32, phi 36, C' 3 kPa, z 1.5 m, rho_s 1900, R 0.002 m/h, a 300 m, T 2.5 m^2/h
    theta, phi = math.radians(32), math.radians(36)
    cp, z, rs, rr, a, t = 3000.0, 1.5, 1900.0, 0.002, 300.0, 2.5
    w = min(rr * a / (t * math.sin(theta)), 1.0)                    # 0.6 / 1.3249 = 0.45287
    gs, gw = rs * G, 1000.0 * G
    fs = (cp + (gs * z - gw * w * z) * math.cos(theta) ** 2 * math.tan(phi)) \
        / (gs * z * math.sin(theta) * math.cos(theta))
    c = cp / (z * math.cos(theta) * rs * G)
    got = factor_of_safety(_one(32), np.array([[a]]), _region(t, c, 36.0, rs), recharge=rr)
    assert got[0, 0] == pytest.approx(fs, rel=1e-5)
    assert fs_classes(np.array([1.6, 1.3, 1.1, 0.9, np.nan])).tolist() == [1, 2, 3, 4, 0]


# --- Monte Carlo -------------------------------------------------------------------------------

def _field(n=60, seed=5):
    rng = np.random.default_rng(seed)
    slope = np.tan(np.radians(rng.uniform(5, 55, (n, n))))
    sca = 10 ** rng.uniform(0.5, 3.5, (n, n))
    slope[0, 0] = np.nan
    return slope, sca


def test_monte_carlo_reproducible_bounded_and_consistent_with_bounds():
    slope, sca = _field()
    regs = [Region(1, 2.0, 3.5, 0.0, 0.3, 30.0, 45.0, 2000.0)]
    rec = (0.0009, 0.00135)
    p1 = probability_of_failure(slope, sca, regs, recharge=rec, n=200, seed=7)
    p2 = probability_of_failure(slope, sca, regs, recharge=rec, n=200, seed=7)
    p3 = probability_of_failure(slope, sca, regs, recharge=rec, n=200, seed=8)
    assert np.array_equal(p1, p2, equal_nan=True)                   # same seed, same raster
    import numba

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:                                                            # and whatever the threads
        p1t = probability_of_failure(slope, sca, regs, recharge=rec, n=200, seed=7)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(p1, p1t, equal_nan=True)
    assert not np.array_equal(p1, p3, equal_nan=True)
    assert np.isnan(p1[0, 0]) and np.nanmin(p1) >= 0 and np.nanmax(p1) <= 1
    # the deterministic FS at the bounds: least favourable = C, phi, T at their minimum with
    # R at its maximum; most favourable = the opposite
    worst = factor_of_safety(slope, sca, regs, recharge=rec[1], bound="low")
    best = factor_of_safety(slope, sca, regs, recharge=rec[0], bound="high")
    ok = np.isfinite(worst)
    assert (p1[ok & (worst >= 1)] == 0).all()
    assert (p1[ok & (best < 1)] == 1).all()
    between = ok & (worst < 1) & (best >= 1)
    assert between.sum() > 100 and (p1[between] > 0).any() and (p1[between] < 1).any()
    assert pof_classes(np.array([0.0, 0.1, 0.3, 0.7])).tolist() == [1, 2, 3, 4]


@pytest.mark.shared_data
def test_monte_carlo_estimates_taudem_sinmap_index(shared_data):
    """1 - P(failure) estimates TauDEM's SI (a probability where 0 < SI < 1), within the
    binomial error of the draws; P = 0 where SI >= 1 and 1 where SI = 0."""
    d = ("taudem-logan-sinmap", "sinmap")

    def read(name):
        with rasterio.open(shared_data(*d, name)) as ds:
            a = ds.read(1).astype("float64")
            a[a == ds.nodata] = np.nan
        return a

    slope, sca, ref = read("demslp.tif"), read("demsca.tif"), read("demsi1.tif")
    with rasterio.open(shared_data(*d, "demreg12.tif")) as ds:
        reg = ds.read(1)
    regions = parse_calibration(shared_data(*d, "dempar12.csv").read_text())
    n = 400
    pof = probability_of_failure(slope, sca, regions, region_raster=reg,
                                 recharge=(0.0009, 0.00135), n=n, seed=11)
    assert np.array_equal(np.isnan(pof), np.isnan(ref))
    assert (pof[ref >= 1] == 0).all() and (pof[ref == 0] == 1).all()
    m = (ref > 0.02) & (ref < 0.98)
    z = ((1 - pof[m]) - ref[m]) / np.sqrt(ref[m] * (1 - ref[m]) / n)
    assert m.sum() > 20000
    assert abs(z.mean()) < 0.05                      # unbiased (tens of thousands of cells)
    assert 0.9 < z.std() < 1.1                       # binomial spread
    assert (np.abs(z) > 4.5).mean() < 1e-3


# --- transient (Iverson 2000 / TRIGRS) ---------------------------------------------------------

def test_transient_before_rain_is_the_dry_infinite_slope():
    # with the water table at the base (d = Z) and no background flux, psi(Z, 0) = 0:
    # FS = tan(phi)/tan(delta) + c'/(gamma_s Z sin cos)
    p = TransientParams(cohesion_pa=5000, phi_deg=33, gamma_s=20000, depth=2.0)
    res = transient_fs(_one(38), np.array([0.0, 3600.0]), np.array([0.0]), p)
    d = math.radians(38)
    fs = math.tan(math.radians(33)) / math.tan(d) + 5000 / (20000 * 2.0 * math.sin(d) * math.cos(d))
    assert res.fs_initial[0, 0] == pytest.approx(fs, rel=1e-5)
    assert res.fs_min[0, 0] == pytest.approx(fs, rel=1e-5)          # no rain, nothing changes
    assert np.isnan(res.failure_time_s[0, 0])


def test_transient_single_step_matches_iverson_closed_form():
    # one rain step at I >= Ks for T = 10 h: psi(Z,t) = (Z - d) beta
    #   + 2 (I/Ks) [sqrt(D1 t) ierfc(Z/(2 sqrt(D1 t))) - sqrt(D1 (t-T)) ierfc(...)] (t > T)
    p = TransientParams(ks=2e-6, d0=1e-4, depth=1.5, water_table=1.0, izlt=0.0)
    delta = math.radians(30)
    d1 = p.d0 / math.cos(delta) ** 2
    beta = math.cos(delta) ** 2
    i_z = 2e-6                                          # 7.2 mm/h for 10 h = Ks

    def ierfc(x):
        return math.exp(-x * x) / math.sqrt(math.pi) - x * math.erfc(x)

    def r(tau):
        return math.sqrt(d1 * tau) * ierfc(1.5 / (2 * math.sqrt(d1 * tau))) if tau > 0 else 0.0

    res = transient_fs(_one(30), np.array([0.0, 36000.0]), np.array([72.0]), p, dt=1800.0,
                       drain_s=36000.0, report_times_s=[18000.0, 36000.0, 54000.0])
    for k, t in enumerate((18000.0, 36000.0, 54000.0)):
        psi = min((1.5 - 1.0) * beta + 2 * i_z / p.ks * (r(t) - r(t - 36000.0)), 1.5 * beta)
        tphi = math.tan(math.radians(p.phi_deg))
        fs = tphi / math.tan(delta) + (p.cohesion_pa - psi * 9810.0 * tphi) / (
            p.gamma_s * 1.5 * math.sin(delta) * math.cos(delta))
        assert res.fs_report[k, 0, 0] == pytest.approx(fs, rel=1e-6)
        assert pressure_head(1.5, t, [0.0, 36000.0], [72.0], p, 30.0) == pytest.approx(psi)


def test_transient_infiltration_is_capped_at_ks_and_fs_never_rises_during_rain():
    p = TransientParams(ks=1e-5)
    edges = np.arange(0, 11) * 3600.0
    depth = np.array([0, 10, 50, 90, 20, 0, 0, 5, 0, 0], float)     # mm per hour
    res = transient_fs(_one(35), edges, depth, p)
    assert res.infiltration_m_s.max() == pytest.approx(1e-5)         # 90 mm/h > 36 mm/h
    assert res.fs_min[0, 0] <= res.fs_initial[0, 0]


@pytest.mark.slow
@pytest.mark.shared_data
def test_transient_morakot_over_xiaolin(shared_data):
    """End to end: Jiaxian's hourly Morakot rain over the SW Taiwan DEM cropped around Xiaolin
    village (lon 120.647, lat 23.162; DEM 370-460 m there, the Qishan river valley)."""
    from pyproj import Transformer

    from gis.io.hyetograph import read_hyetograph
    from gis.io.raster import read_projected_dem
    from models.landslide.terrain import zevenbergen_thorne

    rain = read_hyetograph(glob.glob(str(shared_data("tw-morakot-rainfall-jiaxian")
                                         / "*hourly*.csv"))[0])
    assert rain.total_mm == pytest.approx(2090.0)
    dem = read_projected_dem(shared_data("tw-sw-dem40m", "tw_sw40_moi40m_wgs84.tif"))
    x, y = Transformer.from_crs(4326, dem.crs, always_xy=True).transform(120.647, 23.162)
    col, row = (~dem.transform) @ (x, y)
    r0, c0 = int(row), int(col)
    half = 55                                         # ~2 km each way at 36.6 m
    win = dem.data[r0 - half:r0 + half + 1, c0 - half:c0 + half + 1]
    assert 300 < win[half, half] < 600 and np.nanmax(win) > 1000   # valley floor, high slopes
    slope = zevenbergen_thorne(win, *dem.resolution)["slope"]
    res = transient_fs(slope, rain.edges_s, rain.depth_mm, TransientParams(), dt=3600.0)
    ft = res.failure_time_s
    during = np.isfinite(ft) & (ft > 0)               # stable before the rain, fails in it
    assert during.sum() > 50
    hours = ft[during] / 3600
    first_h, p10_h, p50_h = (float(v) for v in np.percentile(hours, [0, 10, 50]))
    cum = rain.cumulative_mm(np.array([first_h, p10_h, p50_h]) * 3600)

    def when(h):
        return rain.start + np.timedelta64(int(h * 3600), "s")

    print(f"\nXiaolin window: {during.sum()} of {np.isfinite(slope).sum()} cells fail during "
          f"the storm; first at {when(first_h)} (+{first_h:.0f} h, {cum[0]:.0f} mm), 10% by "
          f"{when(p10_h)} ({cum[1]:.0f} mm), half by {when(p50_h)} ({cum[2]:.0f} mm), local time")
    # marginal cells go first, with little rain; the bulk fails in the 7-8 Aug downpour, after
    # hundreds of mm and before the observed collapse of Xiaolin (about 06:00 on 9 Aug 2009)
    assert first_h <= p10_h <= p50_h
    assert cum[1] > 100 and cum[2] > 300
    assert pd_timestamp(2009, 8, 7) <= when(p50_h) <= pd_timestamp(2009, 8, 9, 6)
    assert (np.nan_to_num(res.fs_min, nan=9) <= np.nan_to_num(res.fs_initial, nan=9)).all()
