"""Every vector format the standard names reads into the same records and the same problems."""

from __future__ import annotations

import zipfile

import pytest
from click.testing import CliRunner

from gis.cli.main import cli
from gis.io import read_source
from gis.validate import validate_layer
from tests_helpers import buildings_frame


def _planted():
    frame = buildings_frame(6, crs="EPSG:4326")
    frame.loc[2, "height"] = 2000.0
    frame.loc[4, "roof_type"] = "onion"
    return frame


def _write(frame, path):
    suffix = path.suffix
    if suffix == ".parquet":
        frame.to_parquet(path)
    elif suffix == ".csv":
        out = frame.drop(columns="geometry").assign(wkt=frame.geometry.to_wkt())
        out.to_csv(path, index=False)
    elif suffix == ".shp":  # DBF names have at most 10 characters
        frame.rename(columns={c: c[:10] for c in frame.columns}).to_file(
            path, driver="ESRI Shapefile", encoding="utf-8")
    else:
        frame.to_file(path)


FORMATS = [".gpkg", ".geojson", ".fgb", ".shp", ".parquet", ".csv"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_same_problems_in_every_format(tmp_path, suffix):
    path = tmp_path / f"b{suffix}"
    _write(_planted(), path)
    layers = read_source(path, crs="EPSG:4326" if suffix == ".csv" else None)
    assert len(layers) == 1
    assert {"storey_height", "ground_elevation", "ridge_direction"} <= set(layers[0].frame.columns)
    report = validate_layer(layers[0], "building")
    got = sorted((i.record, i.field, i.problem) for i in report.issues)  # FlatGeobuf reorders
    assert got == [
        ("b2", "height", "out of range: 2000 (must be <= 1000)"),
        ("b4", "roof_type", "'onion' not one of: flat, shed, gable, hip, pyramid, mansard, dome"),
    ]


def test_zipped_shapefile(tmp_path):
    _write(_planted(), tmp_path / "b.shp")
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as zf:
        for f in tmp_path.glob("b.*"):
            if f.suffix != ".zip":
                zf.write(f, f.name)
    result = CliRunner().invoke(cli, ["validate", "--standard", "building", str(tmp_path / "b.zip")])
    assert result.exit_code == 1
    assert "b2: height: out of range: 2000 (must be <= 1000)" in result.stdout


def test_verbose_shows_traceback_quiet_hides_summary(tmp_path):
    bad = tmp_path / "x.geojson"
    bad.write_text("{ nope")
    store = str(tmp_path / "s.gpkg")
    plain = CliRunner().invoke(cli, ["ingest", "--store", store, str(bad)])
    assert plain.exit_code == 1 and "Traceback" not in plain.output
    verbose = CliRunner().invoke(cli, ["-v", "ingest", "--store", store, str(bad)])
    assert verbose.exit_code == 1 and "Traceback" in verbose.output
    _write(buildings_frame(2), tmp_path / "ok.gpkg")
    quiet = CliRunner().invoke(cli, ["-q", "validate", str(tmp_path / "ok.gpkg")])
    assert quiet.exit_code == 0 and quiet.output == ""
