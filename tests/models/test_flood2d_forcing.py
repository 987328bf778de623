"""Forcing arrays for the 2D flood model: Manning zones, buildings, point inflows."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import Point, box

from gis.errors import DataError
from models.flood import Inflow, building_mask, inflow_cells, manning_grid, raise_buildings, simulate

T = Affine(2.0, 0, 1000.0, 0, -2.0, 2040.0)  # 2 m cells, 20 x 20, lower-left (1000, 2000)


def test_manning_grid_from_polygons_field_and_value():
    zones = gpd.GeoDataFrame({"n": [0.02, 0.08]},
                             geometry=[box(1000, 2000, 1020, 2040), box(1030, 2030, 1040, 2040)])
    n = manning_grid(zones, T, (20, 20), default=0.04, field="n")
    assert n.dtype == np.float32
    assert np.all(n[:, :10] == np.float32(0.02))  # x < 1020: columns 0-9
    assert np.all(n[:5, 15:] == np.float32(0.08))  # y > 2030, x > 1030
    assert n[10, 12] == np.float32(0.04)
    assert np.all(manning_grid(zones, T, (20, 20), value=0.1)[:, :10] == np.float32(0.1))
    with pytest.raises(DataError):
        manning_grid(zones, T, (20, 20), field="missing")
    with pytest.raises(DataError):
        manning_grid(zones.assign(n=[0.02, -1.0]), T, (20, 20), field="n")


def test_building_mask_raise_and_block():
    b = gpd.GeoDataFrame(geometry=[box(1010, 2010, 1020, 2020)])
    m = building_mask(b, T, (20, 20))
    assert m.sum() == 25 and m[10:15, 5:10].all()
    z = np.zeros((20, 20), np.float32)
    zr = raise_buildings(z, m, 3.0)
    assert np.all(zr[m] == 3.0) and np.all(zr[~m] == 0.0) and np.all(z == 0)
    with pytest.raises(DataError):
        raise_buildings(z, m, 0.0)


def test_inflow_cells_radius_and_fallback():
    valid = np.ones((20, 20), bool)
    rr, cc, w = inflow_cells(Inflow(1020.0, 2020.0, 3.2, 1.0), T, valid)
    xs, ys = 1000 + 2 * (cc + 0.5), 2040 - 2 * (rr + 0.5)
    assert np.all(np.hypot(xs - 1020, ys - 2020) <= 3.2)
    assert rr.size == 4 * 3  # centres (+-1, +-1), (+-1, +-3), (+-3, +-1) m from a corner
    assert w.sum() == pytest.approx(1.0)
    valid[rr[0], cc[0]] = False
    rr2, _, _ = inflow_cells(Inflow(1020.0, 2020.0, 3.2, 1.0), T, valid)
    assert rr2.size == rr.size - 1  # blocked cells take no inflow
    rr3, cc3, _ = inflow_cells(Inflow(1003.0, 2037.0, 0.0, 1.0), T, valid)
    assert (rr3.tolist(), cc3.tolist()) == ([1], [1])
    with pytest.raises(DataError):
        inflow_cells(Inflow(0.0, 0.0, 1.0, 1.0), T, valid)


def test_inflow_hydrograph_volume_and_validation():
    inf = Inflow(0, 0, 1, [(0, 0.0), (100, 10.0), (200, 0.0)])
    assert inf.volume(0, 200) == pytest.approx(1000.0)
    assert inf.volume(50, 150) == pytest.approx(750.0)
    with pytest.raises(DataError):
        Inflow(0, 0, 1, [(0, 1.0), (0, 2.0)]).table()
    with pytest.raises(DataError):
        Inflow(0, 0, 1, -1.0).table()


def test_manning_zones_slow_the_flow():
    """A rough strip across a channel slows the front: arrival later than on a smooth bed."""
    z = np.tile(np.linspace(1.0, 0.0, 60, dtype=np.float32), (4, 1))
    tr = Affine(1.0, 0, 0, 0, -1.0, 4.0)
    zones = gpd.GeoDataFrame(geometry=[box(20, 0, 40, 4)])
    rough = manning_grid(zones, tr, z.shape, default=0.02, value=0.2)
    q = Inflow(0.5, 2.0, 2.5, 0.2)
    smooth = simulate(z, 1.0, 300.0, manning=0.02, inflows=[q], transform=tr, boundary="closed")
    slow = simulate(z, 1.0, 300.0, manning=rough, inflows=[q], transform=tr, boundary="closed")
    assert slow.arrival_time[2, 50] > smooth.arrival_time[2, 50] + 5.0
    assert slow.max_depth[2, 30] > smooth.max_depth[2, 30]  # deeper in the rough reach
    assert abs(slow.volume.error) < 1e-9


def test_point_geometry_helpers_do_not_need_polygons():
    frame = gpd.GeoDataFrame(geometry=[Point(1010, 2010).buffer(5)])
    assert building_mask(frame, T, (20, 20)).sum() > 0
