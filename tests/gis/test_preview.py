"""The store picture: right size, and features drawn where they are."""

from __future__ import annotations

import numpy as np
import rasterio
from click.testing import CliRunner

from gis.cli.main import cli
from gis.etl.ingest import SourceSpec, ingest
from gis.preview import STYLE, hillshade
from tests_helpers import buildings_frame


def test_preview_draws_buildings_where_they_are(tmp_path):
    frame = buildings_frame(5)
    frame.to_file(tmp_path / "b.gpkg")
    store = str(tmp_path / "s.gpkg")
    ingest(store, [SourceSpec(str(tmp_path / "b.gpkg"))])
    out = tmp_path / "p.png"
    r = CliRunner().invoke(cli, ["preview", "--store", store, "--out", str(out), "--width", "400"])
    assert r.exit_code == 0, r.output
    with rasterio.open(out) as png:
        assert png.width == 400 and png.count == 3
        rgb = png.read()
        inv = ~png.transform
        for geom in frame.geometry:
            col, row = inv @ (geom.centroid.x, geom.centroid.y)
            assert tuple(rgb[:, int(row), int(col)]) == STYLE["buildings"]
        # Between buildings: background.
        col, row = inv @ (250035.0, 2742007.5)
        assert tuple(rgb[:, int(row), int(col)]) != STYLE["buildings"]


def test_hillshade_of_a_plane_is_uniform_and_faces_the_light():
    x = np.arange(50, dtype=float)
    west_facing = np.tile(x, (50, 1))  # rises to the east: its slope faces the north-west light
    east_facing = np.tile(-x, (50, 1))
    lit, dark = hillshade(west_facing, 1.0), hillshade(east_facing, 1.0)
    assert np.ptp(lit) < 1e-9 and np.ptp(dark) < 1e-9
    # 45 degree slope, light at 45 degrees altitude, 45 degrees off the slope's facing:
    # sin(45)cos(45) + cos(45)sin(45)cos(45) = 0.5 + 0.3536
    assert abs(lit[0, 0] - (0.5 + 0.5 * np.cos(np.pi / 4))) < 1e-12
    assert abs(dark[0, 0] - (0.5 - 0.5 * np.cos(np.pi / 4))) < 1e-12
