"""`ngis validate`: planted errors come out one line each, bad files one line, right exit codes."""

from __future__ import annotations

import geopandas as gpd
import pytest
import shapely
from click.testing import CliRunner

from gis.cli.main import cli


def _run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _square(x, y, d=10.0):
    return shapely.box(x, y, x + d, y + d)


@pytest.fixture
def planted(tmp_path):
    """A building layer in EPSG:3826 with one planted error per record, except the first."""
    rows = [
        dict(id="ok-1", height=12.0, roof_type="flat", source="s", geometry=_square(250000, 2742000)),
        dict(id="neg", height=-3.0, roof_type="flat", source="s", geometry=_square(250100, 2742000)),
        dict(id="roof", height=9.0, roof_type="onion", source="s", geometry=_square(250200, 2742000)),
        dict(id="bow", height=9.0, roof_type="flat", source="s",
             geometry=shapely.Polygon([(250300, 2742000), (250310, 2742010), (250310, 2742000),
                                       (250300, 2742010)])),
        dict(id="nohgt", height=None, roof_type="gable", source="s", geometry=_square(250400, 2742000)),
        dict(id="far", height=5.0, roof_type="flat", source="s", geometry=_square(9e6, 9e6)),
        dict(id="line", height=5.0, roof_type="flat", source="s",
             geometry=shapely.LineString([(250500, 2742000), (250510, 2742000)])),
        dict(id="ok-1", height=5.0, roof_type="flat", source="s", geometry=_square(250600, 2742000)),
        dict(id="nosrc", height=5.0, roof_type="flat", source=None, geometry=_square(250700, 2742000)),
    ]
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:3826")
    path = tmp_path / "unseen.gpkg"
    frame.to_file(path, layer="bldg", driver="GPKG")
    return path


def test_planted_errors_one_line_each(planted):
    result = _run("validate", "--standard", "building", str(planted))
    assert result.exit_code == 1
    p = f"{planted}:bldg"
    lines = result.stdout.strip().splitlines()
    assert lines == [
        f"{p}:neg: height: out of range: -3 (must be > 0)",
        f"{p}:roof: roof_type: 'onion' not one of: flat, shed, gable, hip, pyramid, mansard, dome",
        f"{p}:bow: geometry: invalid geometry: Self-intersection[250305 2742005]",
        f"{p}:nohgt: needs height or storeys",
        f"{p}:far: geometry: coordinates outside the area of EPSG:3826 (bounds 9000000, 9000000, "
        "9000010, 9000010): wrong CRS or swapped axes?",
        f"{p}:line: geometry: wrong geometry type LineString (expected Polygon, MultiPolygon, Point)",
        f"{p}:ok-1: id: duplicate id (first at record #1)",
        f"{p}:nosrc: source: missing (required)",
    ]
    assert "FAILED: 1 file(s), 9 record(s), 8 with problems, 8 problem(s)" in result.stderr


def test_clean_file_exits_zero(tmp_path):
    frame = gpd.GeoDataFrame({"id": ["a"], "storeys": [3], "source": ["s"]},
                             geometry=[_square(250000, 2742000)], crs="EPSG:3826")
    frame.to_file(tmp_path / "b.geojson")
    result = _run("validate", "--standard", "building", str(tmp_path / "b.geojson"))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "OK: 1 file(s), 1 record(s)" in result.stderr


def test_swapped_axes_are_caught(tmp_path):
    frame = gpd.GeoDataFrame({"id": ["a"], "height": [3.0], "source": ["s"]},
                             geometry=[shapely.box(24.79, 120.99, 24.7902, 120.9902)],
                             crs="EPSG:4326")
    frame.to_file(tmp_path / "swapped.geojson")
    result = _run("validate", "--standard", "building", str(tmp_path / "swapped.geojson"))
    assert result.exit_code == 1
    assert "swapped axes" in result.stdout


def test_csv_with_lonlat_columns(tmp_path):
    csv = tmp_path / "crashes.csv"
    csv.write_text("id,lon,lat,time,severity,deaths,source\n"
                   "c1,120.99,24.79,2020-01-01T08:00:00+08:00,fatal,1,npa\n"
                   "c2,120.99,24.79,2020-13-01T08:00:00+08:00,fatal,x,npa\n")
    result = _run("validate", "--standard", "crash", str(csv))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{csv}:crashes:c2: time: not an ISO 8601 date-time with offset: '2020-13-01T08:00:00+08:00'",
        f"{csv}:crashes:c2: deaths: wrong type: expected integer, got 'x'",
    ]


def test_csv_without_crs_says_so(tmp_path):
    csv = tmp_path / "pts.csv"
    csv.write_text("id,x,y,time,severity,source\nc1,250000,2742000,2020-01-01T08:00:00Z,fatal,s\n")
    result = _run("validate", "--standard", "crash", str(csv))
    assert result.exit_code == 1
    assert "geometry: no CRS (pass --crs, or fix the file)" in result.stdout
    ok = _run("validate", "--standard", "crash", "--crs", "EPSG:3826", str(csv))
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("content, suffix, expected", [
    (b"\x00\x01garbage" * 50, ".xyz", "unknown format"),
    (b'{"type": "FeatureCollection", "features": [', ".geojson", "cannot read"),
    (b"II*\x00" + b"\x00" * 20, ".tif", "is a raster"),
])
def test_malformed_files_get_one_line(tmp_path, content, suffix, expected):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    result = _run("validate", "--standard", "building", str(path))
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(str(path)) and expected in lines[0]
    assert "Traceback" not in result.output


def test_missing_file_and_usage_errors(tmp_path):
    result = _run("validate", "--standard", "building", str(tmp_path / "nope.gpkg"))
    assert result.exit_code == 1
    assert "no such file" in result.stdout
    assert _run("validate").exit_code == 2
    assert _run("validate", "--standard", "bridge", "x").exit_code == 2


def test_real_data_validates_clean(shared_data):
    paths = [shared_data("hsinchu-nycu-buildings", "guangfu_buildings_3d.geojson"),
             shared_data("hsinchu-nycu-buildings", "nlsc_buildings_hsinchu_city_points.json")]
    result = _run("validate", "--standard", "building", *map(str, paths))
    assert result.exit_code == 0, result.stdout[:2000]
    freeway = shared_data("tw-transport-network", "Freeway_Nat.gmt")
    assert _run("validate", str(freeway)).exit_code == 0
