"""Hazard map pictures: drawn for projected and geographic grids, classes beyond the data, and
an output written whole or not at all."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from PIL import Image

from gis.maps import MapClass, hazard_map, hillshade


def test_hillshade_of_a_plane_facing_the_sun_is_uniform_and_bright():
    y, x = np.mgrid[0:50, 0:50].astype("float64")
    # Rising towards the south-east: the slope faces the north-west sun (azimuth 315 deg).
    z = (x + y) * 1.0
    shade = hillshade(z, 1.0)
    inner = shade[2:-2, 2:-2]
    assert np.ptp(inner) < 1e-9
    flat = hillshade(np.zeros((10, 10)), 1.0)
    assert inner.mean() > flat.mean()       # tilted towards the light: brighter than flat


@pytest.mark.parametrize("crs,transform", [
    ("EPSG:3826", Affine(10, 0, 250000, 0, -10, 2650000)),
    ("EPSG:4326", Affine(0.0004, 0, 120.5, 0, -0.0004, 23.2))])
def test_maps_draw_classes_beyond_the_data(tmp_path, crs, transform):
    y, x = np.mgrid[0:120, 0:200]
    dem = (np.sin(x / 15.0) * 20 + y * 0.3).astype("float32")
    layer = np.where(dem < 5, (5 - dem) / 10, np.nan)         # at most ~2.5: below "over 3"
    classes = [MapClass(0.3, 1.0, "#c6dbef", "0.3-1"), MapClass(1.0, 3.0, "#2171b5", "1-3"),
               MapClass(3.0, np.inf, "#54278f", "over 3")]
    out = hazard_map(tmp_path / "map.png", dem, transform, crs, layer, title="t",
                     label="depth", classes=classes, note="test")
    with Image.open(out) as img:
        assert img.size[0] > 400 and img.size[1] > 200
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]   # no temporary left behind
