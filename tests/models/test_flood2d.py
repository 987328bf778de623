"""2D flood model (models.flood.swe): conservation, positivity, boundaries and obstacles.

Analytic solutions and benchmarks are in test_flood2d_validation.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from gis.errors import DataError
from gis.io.hyetograph import Hyetograph
from models.flood import Inflow, simulate


def _bumpy(ny=40, nx=60, seed=3):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:ny, 0:nx]
    z = 0.02 * x + 0.3 * np.sin(x / 5.0) * np.cos(y / 7.0) + 0.05 * rng.random((ny, nx))
    return z.astype(np.float32)


def test_closed_box_stores_all_rain_and_inflow():
    z = _bumpy()
    rain = Hyetograph(np.array([0.0, 120.0, 300.0]), np.array([20.0, 10.0]))
    res = simulate(z, 2.0, 400.0, rain=rain, inflows=[Inflow(20.0, 40.0, 3.0, 0.5)],
                   boundary="closed", manning=0.03)
    v = res.volume
    area = 4.0 * z.size
    assert v.rain_excess == pytest.approx(0.030 * area, rel=1e-12)  # all rain routed (no loss)
    assert v.inflow == pytest.approx(0.5 * 400.0, rel=1e-12)
    assert v.boundary_out == 0.0
    stored = float(np.nansum(res.final_depth.astype(np.float64))) * 4.0
    assert stored == pytest.approx(v.rain_excess + v.inflow, rel=1e-6)
    assert abs(v.error) < 1e-6
    assert np.nanmin(res.final_depth) >= 0.0


def test_open_boundary_input_equals_stored_plus_outflow():
    z = _bumpy()
    z[10:14, 20:24] = np.nan  # a hole in the domain: also an outlet
    rain = Hyetograph.uniform(40.0, 200.0)
    res = simulate(z, 2.0, 600.0, rain=rain, inflows=[Inflow(100.0, 40.0, 4.0, [(0, 0.0),
                   (100, 2.0), (300, 0.0)])], boundary="open")
    v = res.volume
    assert v.inflow == pytest.approx(0.5 * 300 * 2.0, rel=1e-3)  # triangle hydrograph
    assert v.boundary_out > 0.3 * (v.rain_excess + v.inflow)  # a tilted plane drains
    assert abs(v.error) < 1e-6
    stored = float(np.nansum(res.final_depth.astype(np.float64))) * 4.0
    assert stored + v.boundary_out == pytest.approx(v.rain_excess + v.inflow, rel=1e-6)
    assert np.all(np.isnan(res.max_depth[10:14, 20:24]))


def test_depth_never_negative_on_steep_terrain_with_strong_drain():
    y, x = np.mgrid[0:30, 0:30]
    z = (2.0 * x + 3.0 * np.abs(y - 15)).astype(np.float32)  # 1:0.5 slopes into a V
    res = simulate(z, 1.0, 300.0, rain=Hyetograph.uniform(100.0, 100.0), manning=0.01,
                   snapshot_times=(50, 100, 150, 200), boundary="open")
    for d in res.snapshots.values():
        assert np.nanmin(d) >= 0.0
    assert np.nanmin(res.final_depth) >= 0.0
    assert abs(res.volume.error) < 1e-6


def test_blocked_cells_stay_dry_and_walls_hold_water():
    z = np.zeros((30, 30), np.float32)
    blocked = np.zeros(z.shape, bool)
    blocked[10:20, 10:20] = True
    res = simulate(z, 1.0, 300.0, inflows=[Inflow(3.5, 26.5, 1.0, 0.2)], blocked=blocked,
                   boundary="closed")
    assert np.all(res.max_depth[blocked] == 0.0)
    assert np.all(np.isnan(res.arrival_time[blocked]))
    # the water spreads around the block to a level pool: stored = inflow over 800 open cells
    level = 0.2 * 300.0 / 800.0
    assert np.nanmean(res.final_depth[~blocked]) == pytest.approx(level, rel=1e-6)
    assert abs(res.volume.error) < 1e-6


def test_arrival_time_and_maxima_consistent():
    z = np.zeros((5, 200), np.float32)
    res = simulate(z, 1.0, 60.0, inflows=[Inflow(0.5, 2.5, 0.0, [(0, 0.0), (1, 1.0)])],
                   boundary="closed", manning=0.02, snapshot_times=(30.0,))
    arr = res.arrival_time[2]
    reached = np.isfinite(arr)
    assert reached[0] and not reached[-1]  # the front has not crossed 200 m in 60 s
    np.testing.assert_array_equal(np.isfinite(res.arrival_time),
                                  res.max_depth > res.wet_threshold)
    assert np.all(np.diff(arr[reached]) >= 0)  # arrives later further away
    assert np.all(res.max_depth >= res.final_depth)
    assert np.all(res.max_depth >= res.snapshots[30.0])
    wet = res.max_depth > 0
    np.testing.assert_allclose(res.max_wse[wet], (z + res.max_depth)[wet], atol=1e-6)
    assert np.all(np.isnan(res.max_wse[~wet]))


def test_bad_input_raises_data_error():
    z = np.zeros((5, 5), np.float32)
    with pytest.raises(DataError):
        simulate(z, 0.0, 10.0)
    with pytest.raises(DataError):
        simulate(z, 1.0, 10.0, boundary="leaky")
    with pytest.raises(DataError):
        simulate(z, 1.0, 10.0, inflows=[Inflow(100.0, 100.0, 1.0, 1.0)])
    with pytest.raises(DataError):
        simulate(z, 1.0, 10.0, manning=np.zeros((3, 3)))


def test_progress_reports_simulated_time_and_snapshots_land_on_time():
    z = _bumpy(60, 80)
    seen = []
    res = simulate(z, 2.0, 900.0, rain=Hyetograph.uniform(30.0, 600.0),
                   snapshot_times=(0.0, 123.4, 600.0, 900.0), progress=seen.append)
    assert seen and seen[-1] == 900.0 and all(b >= a for a, b in zip(seen, seen[1:]))
    assert sorted(res.snapshots) == [0.0, 123.4, 600.0, 900.0]
    assert np.all(res.snapshots[0.0] == 0.0)
    np.testing.assert_array_equal(res.snapshots[900.0], res.final_depth)
    # rain stops at 600 s: storage can only fall afterwards on this draining plane
    assert np.nansum(res.snapshots[900.0]) < np.nansum(res.snapshots[600.0])
    st = res.stats
    assert st.steps > 0 and st.cell_steps > 0 and st.loop_s > 0 and st.wall_s >= st.loop_s
