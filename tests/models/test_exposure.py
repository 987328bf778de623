"""Exposure of the base map to an area, against an independent whole-layer computation with
geopandas (read everything, reproject the area, clip)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from shapely.geometry import box

from gis.errors import DataError
from gis.store import open_store
from models.exposure import exposure


def _area_lonlat(store):
    rec = store.record("buildings")
    x0, y0, x1, y1 = rec["extent"]["bbox"]
    # An irregular polygon over the middle of the town (not a box: the exact test matters).
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 3, (y1 - y0) / 3
    return shapely.Polygon([(cx - w, cy - h), (cx + w, cy - h * 0.5), (cx + w * 0.6, cy + h),
                            (cx - w * 0.8, cy + h * 0.7)])


def test_exposure_matches_geopandas_clip(demo_store):
    store = open_store(str(demo_store))
    area = _area_lonlat(store)
    got = {r.layer: r for r in exposure(store, area)}
    for layer in ("buildings", "roads", "rail", "pipelines"):
        frame = pyogrio.read_dataframe(demo_store, layer=layer, fid_as_index=True)
        local = gpd.GeoSeries([area], crs="OGC:CRS84").to_crs(frame.crs).iloc[0]
        hit = frame[frame.intersects(local)]
        assert got[layer].count == len(hit), layer
        assert sorted(got[layer].ids) == sorted(int(i) for i in hit.index), layer
        clipped = gpd.clip(hit, local)
        # exposure() densifies the area's lon/lat edges before projecting (geopandas does not):
        # the two areas differ by millimetres, so measures agree to 1e-4, ids exactly.
        if layer == "buildings":
            assert got[layer].area_m2 == pytest.approx(clipped.area.sum(), rel=1e-4)
            assert got[layer].count > 10
        else:
            assert got[layer].length_m == pytest.approx(clipped.length.sum(), rel=1e-4,
                                                         abs=1e-6)


def test_exposure_outside_everything_and_missing_layers(demo_store):
    store = open_store(str(demo_store))
    far = box(121.9, 25.2, 121.91, 25.21)
    result = {r.layer: r for r in exposure(store, far, layers=["buildings", "no_such_layer"])}
    assert result["buildings"].count == 0 and result["no_such_layer"].count == 0
    assert np.isfinite(result["buildings"].area_m2 or 0.0)


@pytest.mark.parametrize("bad", [shapely.Point(120.6, 24.0), shapely.Polygon(), None])
def test_exposure_needs_an_area(demo_store, bad):
    with pytest.raises(DataError, match="Polygon"):
        exposure(open_store(str(demo_store)), bad)
