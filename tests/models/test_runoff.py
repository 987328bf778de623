"""Rainfall excess (models.flood.runoff) against the closed forms, and as a model source term."""

from __future__ import annotations

import numpy as np
import pytest

from gis.errors import DataError
from gis.io.hyetograph import Hyetograph
from models.flood import ConstantLoss, CurveNumber, simulate
from models.flood.runoff import excess_series, scs_excess_mm, scs_retention_mm


@pytest.mark.parametrize("cn", [55.0, 70.0, 85.0, 98.0])
def test_scs_curve_number_matches_textbook_formula(cn):
    s = 25400.0 / cn - 254.0
    for p in (0.0, 5.0, 20.0, 50.0, 120.0, 400.0):
        ref = (p - 0.2 * s) ** 2 / (p + 0.8 * s) if p > 0.2 * s else 0.0
        assert scs_excess_mm(p, cn) == pytest.approx(ref, rel=1e-12, abs=1e-12)


def test_scs_metric_form_equals_the_original_inch_form():
    # TR-55 in inches: S = 1000/CN - 10; CN 80, P = 5 in -> S = 2.5 in, Q = 4.5^2 / 7 in
    assert scs_retention_mm(80.0) == pytest.approx(2.5 * 25.4)
    assert scs_excess_mm(5 * 25.4, 80.0) == pytest.approx(4.5 ** 2 / 7.0 * 25.4)


def test_scs_stepwise_series_sums_to_cumulative_and_is_nonnegative():
    edges = np.arange(0, 13) * 3600.0
    depth = np.array([0, 2, 5, 12, 30, 18, 9, 4, 0, 1, 3, 0], float)
    ex = excess_series(edges, depth, CurveNumber(75))
    assert np.all(ex >= 0)
    assert ex.sum() == pytest.approx(scs_excess_mm(depth.sum(), 75.0), rel=1e-12)
    cum = np.cumsum(ex)
    np.testing.assert_allclose(cum, scs_excess_mm(np.cumsum(depth), 75.0), rtol=1e-12)


def test_scs_ia_ratio_005_uses_hawkins_conversion():
    s02 = scs_retention_mm(75.0)
    s005 = scs_retention_mm(75.0, ia_ratio=0.05)
    assert s005 == pytest.approx(1.33 * (s02 / 25.4) ** 1.15 * 25.4)
    p = 60.0
    ref = (p - 0.05 * s005) ** 2 / (p + 0.95 * s005)
    assert scs_excess_mm(p, 75.0, ia_ratio=0.05) == pytest.approx(ref)
    with pytest.raises(DataError):
        CurveNumber(75, ia_ratio=0.1)
    with pytest.raises(DataError):
        CurveNumber(np.array([50.0, 120.0]))


def test_constant_loss_initial_then_continuing():
    # 10 mm/h for 3 h; IL 5 mm fills in the first 30 min, then CL 4 mm/h -> 6 mm/h excess
    edges = np.array([0.0, 3600.0, 7200.0, 10800.0])
    ex = excess_series(edges, np.array([10.0, 10.0, 10.0]), ConstantLoss(4.0, 5.0))
    np.testing.assert_allclose(ex, [6.0 * 0.5, 6.0, 6.0])
    # rain below the continuing loss gives nothing
    assert excess_series(edges, np.array([3.0, 3.0, 3.0]), ConstantLoss(4.0)).sum() == 0.0


def test_per_cell_curve_numbers_feed_the_model_with_exact_volumes():
    z = np.zeros((20, 20), np.float32)
    cn = np.where(np.arange(20)[None, :] < 10, 60.0, 90.0) * np.ones((20, 1))
    rain = Hyetograph(np.array([0.0, 1800.0, 3600.0]), np.array([40.0, 40.0]))
    res = simulate(z, 2.0, 3600.0, rain=rain, loss=CurveNumber(cn), boundary="closed")
    expected = (scs_excess_mm(80.0, 60.0) * 200 + scs_excess_mm(80.0, 90.0) * 200) / 1000 * 4.0
    v = res.volume
    assert v.rain_gross == pytest.approx(0.080 * 400 * 4.0)
    assert v.rain_excess == pytest.approx(expected, rel=1e-9)
    assert v.losses == pytest.approx(v.rain_gross - expected, rel=1e-9)
    assert abs(v.error) < 1e-9
    assert float(np.sum(res.final_depth, dtype=np.float64)) * 4.0 == pytest.approx(expected,
                                                                                   rel=1e-6)


def test_constant_loss_in_the_model_matches_series():
    z = np.zeros((10, 10), np.float32)
    rain = Hyetograph(np.array([0.0, 600.0, 1200.0]), np.array([5.0, 15.0]))
    loss = ConstantLoss(rate_mm_h=20.0, initial_mm=3.0)
    res = simulate(z, 1.0, 1200.0, rain=rain, loss=loss, boundary="closed", forcing_dt=600.0)
    ref = excess_series(rain.edges_s, rain.depth_mm, loss).sum() / 1000 * 100
    assert res.volume.rain_excess == pytest.approx(ref, rel=1e-9)


def test_loss_grid_must_match_the_dem():
    z = np.zeros((4, 4), np.float32)
    rain = Hyetograph.uniform(50.0, 600.0)
    with pytest.raises(DataError):
        simulate(z, 1.0, 600.0, rain=rain, loss=CurveNumber(np.full((3, 3), 80.0)))
    cn = np.full((4, 4), 80.0)
    cn[1, 1] = np.nan
    with pytest.raises(DataError):
        simulate(z, 1.0, 600.0, rain=rain, loss=CurveNumber(cn))
