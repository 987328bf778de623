"""Tests of the synthetic demo-data generator (``gis.demo``) and ``ngis demo-data``."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from geopandas.testing import assert_geodataframe_equal
from jsonschema import Draft202012Validator

import gis.demo.region as region_mod
from gis.cli.main import cli
from gis.demo import TerrainModel, fill_depressions, generate_region, region_spec, terrain_window
from gis.demo.terrain import windows
from gis.errors import NgisError

SCHEMAS = Path(__file__).resolve().parents[2] / "standards" / "schemas"
LAYERS = {"buildings": "building", "roads": "road", "rail": "rail", "pipelines": "pipeline",
          "crashes": "crash"}


def read(directory: Path, layer: str):
    return pyogrio.read_dataframe(directory / f"{layer}.gpkg", layer=layer)


def read_dem(directory: Path) -> np.ndarray:
    with rasterio.open(directory / "dem.tif") as src:
        return src.read(1)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "region"
    generate_region(out, seed=42, size="small")
    return out


@pytest.fixture(scope="module")
def manifest(small) -> dict:
    return json.loads((small / "manifest.json").read_text())


# --- manifest and files ---------------------------------------------------------------------------


def test_manifest_lists_every_file_with_counts(small, manifest):
    assert manifest["generator"] == "ngis demo-data"
    assert manifest["seed"] == 42 and manifest["size"] == "small" and manifest["crs"] == "EPSG:3826"
    minx, miny, maxx, maxy = manifest["bbox"]
    assert (maxx - minx, maxy - miny) == (4000.0, 4000.0)
    by_layer = {s["layer"]: s for s in manifest["sources"]}
    assert set(by_layer) == {*LAYERS, "dem"}
    for layer, standard in LAYERS.items():
        entry = by_layer[layer]
        assert entry["standard"] == standard and entry["path"] == f"{layer}.gpkg"
        assert entry["count"] == len(read(small, layer)) > 0
        assert entry["title"] and entry["abstract"]
    assert by_layer["pipelines"]["access_grade"] == "restricted"
    assert by_layer["pipelines"]["charge_class"] == "premium"
    assert by_layer["crashes"]["access_grade"] == "agency"
    assert by_layer["buildings"]["access_grade"] == "public"
    assert by_layer["dem"]["kind"] == "dem" and by_layer["dem"]["path"] == "dem.tif"
    assert 2000 <= by_layer["buildings"]["count"] <= 3500
    assert (small / manifest["rain_gauge"]["path"]).exists()
    assert minx < manifest["rain_gauge"]["x"] < maxx and miny < manifest["rain_gauge"]["y"] < maxy
    assert 3 <= len(manifest["hotspots"]) <= 5
    assert len(manifest["shelters"]) >= 3
    assert not list(small.parent.glob("*.tmp-*"))
    assert not (small / "dem_work.npy").exists()


# --- determinism ----------------------------------------------------------------------------------


def test_same_seed_gives_identical_data_and_other_seed_differs(small, tmp_path):
    again = tmp_path / "again"
    other = tmp_path / "other"
    generate_region(again, seed=42, size="small")
    generate_region(other, seed=7, size="small")
    for layer in LAYERS:
        assert_geodataframe_equal(read(small, layer), read(again, layer), check_less_precise=False)
    assert np.array_equal(read_dem(small), read_dem(again))
    first = json.loads((small / "manifest.json").read_text())
    assert first == json.loads((again / "manifest.json").read_text())
    assert (small / "rain_gauge.csv").read_bytes() == (again / "rain_gauge.csv").read_bytes()
    assert not np.array_equal(read_dem(small), read_dem(other))
    a, b = read(small, "buildings"), read(other, "buildings")
    assert len(a) != len(b) or not a.geometry.geom_equals(b.geometry).all()


# --- every record follows its standard ------------------------------------------------------------


def _plain(value):
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


@pytest.mark.parametrize("layer", list(LAYERS))
def test_every_record_validates_against_its_standard(small, layer):
    schema = json.loads((SCHEMAS / f"{LAYERS[layer]}.json").read_text())
    validator = Draft202012Validator(schema)
    frame = read(small, layer)
    assert frame.crs.to_epsg() == 3826
    allowed = set(schema["properties"])
    assert set(frame.columns) - {"geometry"} <= allowed
    errors = []
    for record in frame.drop(columns="geometry").to_dict("records"):
        record = {k: _plain(v) for k, v in record.items()}
        record = {k: v for k, v in record.items() if v is not None}
        errors += [f"{record['id']}: {e.message}" for e in validator.iter_errors(record)]
    assert errors == []
    assert frame["id"].is_unique
    assert (frame["source"] == "NGIS synthetic demo (seed 42)").all()
    assert frame["lineage"].str.len().between(10, 300).all()
    kinds = set(shapely.get_type_id(frame.geometry.values))
    expected = {"buildings": {3}, "crashes": {0}}.get(layer, {1})
    assert kinds == expected
    assert shapely.is_valid(frame.geometry.values).all()


# --- terrain --------------------------------------------------------------------------------------


def test_dem_file_format(small, manifest):
    with rasterio.open(small / "dem.tif") as src:
        assert src.crs.to_epsg() == 3826
        assert src.dtypes[0] == "float32" and src.nodata == -9999
        assert src.shape == (400, 400) and src.res == (10.0, 10.0)
        assert src.block_shapes[0] == (256, 256) and src.profile["tiled"]
        assert src.compression.name.lower() == "deflate"
        assert tuple(src.bounds) == tuple(manifest["bbox"])
        z = src.read(1)
    assert not (z == -9999).any() and np.isfinite(z).all()
    assert 150.0 < float(z.max() - z.min()) < 800.0  # hills of a few hundred metres


def _receivers(z: np.ndarray) -> np.ndarray:
    """D8 steepest-descent receiver of every cell (flat index; -1 for cells without a lower one)."""
    rows, cols = z.shape
    pad = np.pad(z.astype(np.float64), 1, constant_values=np.inf)
    best_drop = np.zeros(z.shape)
    receiver = np.full(z.shape, -1, dtype=np.int64)
    rr, cc = np.indices(z.shape)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr == dc == 0:
                continue
            neighbour = pad[1 + dr:1 + dr + rows, 1 + dc:1 + dc + cols]
            drop = (z - neighbour) / math.hypot(dr, dc)
            better = drop > best_drop
            best_drop = np.where(better, drop, best_drop)
            receiver = np.where(better, (rr + dr) * cols + (cc + dc), receiver)
    return receiver.ravel()


def test_every_cell_drains_to_the_border(small):
    z = read_dem(small)
    receiver = _receivers(z)
    border = np.zeros(z.shape, dtype=bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    border = border.ravel()
    assert (receiver[~border] >= 0).all(), "interior cells without a lower neighbour"
    # Follow the flow: pointer doubling until every path has reached the border.
    node = np.where(border, np.arange(z.size), receiver)
    for _ in range(int(math.log2(z.size)) + 2):
        node = np.where(border[node], node, node[node])
    assert border[node].all()


def test_river_is_carved_below_the_terrain(small, manifest):
    z = read_dem(small)
    with rasterio.open(small / "dem.tif") as src:
        path = np.asarray(manifest["rivers"][0]["centreline"])
        values = np.array([v[0] for v in src.sample(path)])
    assert len(path) > 50
    assert values.mean() < z.mean() - 30.0
    assert (values < z.mean()).mean() > 0.95
    # and it runs downhill to its outlet on the west border
    assert values[-1] < values[0]
    assert manifest["rivers"][0]["outlet"][0] == manifest["bbox"][0]


def test_windowed_terrain_equals_whole_array():
    spec = region_spec("small")
    minx, _, _, maxy = spec.bbox
    whole = terrain_window(3, spec.bbox, minx, maxy, 400, 400, 10.0)
    stitched = np.empty_like(whole)
    for r0 in range(0, 400, 130):
        for c0 in range(0, 400, 150):
            h, w = min(130, 400 - r0), min(150, 400 - c0)
            stitched[r0:r0 + h, c0:c0 + w] = terrain_window(3, spec.bbox, minx + c0 * 10.0,
                                                            maxy - r0 * 10.0, w, h, 10.0)
    assert np.array_equal(whole, stitched)
    model = TerrainModel.create(3, spec.bbox)
    rows = np.array([0, 17, 399])
    cols = np.array([5, 250, 399])
    x = minx + (cols + 0.5) * 10.0
    y = maxy - (rows + 0.5) * 10.0
    assert np.array_equal(model.points(x, y).astype(np.float32), whole[rows, cols])


def test_fill_depressions_removes_pits_and_keeps_the_rest():
    yy, xx = np.mgrid[0:50, 0:60]
    z = 10.0 + 0.1 * xx + 5.0 * np.exp(-((xx - 30) ** 2 + (yy - 25) ** 2) / 50.0)
    z = z.astype(np.float32)
    z[20:25, 40:45] = 3.0  # a pit far below its rim
    before = z.copy()
    raised = fill_depressions(z)
    assert raised >= 25
    assert (z >= before).all()
    assert (_receivers(z).reshape(z.shape)[1:-1, 1:-1] >= 0).all()
    assert np.array_equal(z[:, :5], before[:, :5])  # the low western side drains as it is
    with pytest.raises(ValueError):
        fill_depressions(np.zeros((3, 3), dtype=np.float32))


# --- buildings ------------------------------------------------------------------------------------


def test_buildings_do_not_overlap_each_other_or_roads(small):
    buildings = read(small, "buildings")
    roads = read(small, "roads")
    geoms = buildings.geometry.values
    area = shapely.area(geoms)
    assert area.min() >= 20.0 and area.max() <= 5000.0
    pairs = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    assert (pairs[0] == pairs[1]).all(), "overlapping buildings"
    footprints = shapely.buffer(roads.geometry.values, roads["width"].to_numpy() / 2.0)
    hits = shapely.STRtree(geoms).query(footprints, predicate="intersects")
    assert hits.size == 0, "buildings on roads"
    assert (shapely.get_num_interior_rings(geoms) > 0).sum() >= 10  # courtyards
    assert (shapely.get_num_coordinates(geoms) == 7).sum() >= 50  # L-shapes


def test_building_ground_elevation_is_the_dem_at_the_centroid(small):
    buildings = read(small, "buildings")
    cent = shapely.centroid(buildings.geometry.values)
    with rasterio.open(small / "dem.tif") as src:
        points = zip(shapely.get_x(cent), shapely.get_y(cent))
        sampled = np.array([v[0] for v in src.sample(points)])
    assert np.abs(buildings["ground_elevation"].to_numpy() - sampled).max() <= 0.01


def test_building_attributes_are_realistic(small, manifest):
    b = read(small, "buildings")
    town = manifest["towns"][0]
    cent = shapely.centroid(b.geometry.values)
    r = np.hypot(shapely.get_x(cent) - town["x"], shapely.get_y(cent) - town["y"]) / town["radius"]
    has_height = b["height"].notna()
    assert 0.7 < has_height.mean() < 0.95  # most have a height ...
    only_storeys = ~has_height & b["storeys"].notna()
    assert only_storeys.sum() > 0.05 * len(b)  # ... some only storeys
    assert (b.loc[only_storeys, "storey_height"].notna()).all()
    effective = b["height"].fillna(b["storeys"] * b["storey_height"] + b["roof_height"])
    assert effective[r < 0.3].mean() > 2.0 * effective[r > 0.7].mean()
    flat = b["roof_type"] == "flat"
    assert flat[r < 0.3].mean() > 0.85 and flat[r > 0.7].mean() < 0.7
    assert set(b["roof_type"]) >= {"flat", "gable", "hip", "pyramid", "shed", "mansard"}
    assert (b.loc[flat, "roof_height"] == 0).all() and (b.loc[~flat, "roof_height"] > 0).all()
    assert b["ridge_direction"].notna().sum() > 10
    assert (b.loc[b["ridge_direction"].notna(), "roof_type"] != "flat").all()
    assert set(b["structure"]) <= {"RC", "SRC", "steel", "brick", "wood"}
    assert b["year_built"].between(1950, 2024).all() and (b["lod"] == 1).all()
    shelters = b[b["id"].isin(manifest["shelters"])]
    assert len(shelters) == len(manifest["shelters"])
    assert (shelters["usage"] == "public").all() and shelters["name"].str.contains("Shelter").all()
    names = " ".join(b["name"].dropna())
    assert "School" in names and "Hospital" in names


# --- roads and rail -------------------------------------------------------------------------------


def test_road_network_is_noded_with_bridges_and_a_tunnel(small, manifest):
    roads = read(small, "roads")
    geoms = roads.geometry.values
    tree = shapely.STRtree(geoms)
    assert tree.query(geoms, predicate="crosses").size == 0, "lines cross without a node"
    overlaps = tree.query(geoms, predicate="overlaps")
    assert overlaps.size == 0
    assert set(roads["class"]) >= {"trunk", "primary", "secondary", "tertiary", "local", "service"}
    widths = roads.groupby("class")["width"].median()
    assert widths["trunk"] > widths["secondary"] > widths["local"] > widths["service"]
    assert (roads["width"] >= roads["lanes"] * 2.5).all()
    bridges = roads[roads["level"] == "bridge"]
    assert len(bridges) >= 2 and bridges["deck_height"].between(3, 30).all()
    river = shapely.linestrings(manifest["rivers"][0]["centreline"])
    assert (shapely.distance(shapely.centroid(bridges.geometry.values), river) < 60.0).all()
    tunnels = roads[roads["level"] == "tunnel"]
    assert len(tunnels) >= 1 and (tunnels["depth"] >= 5).all()
    assert roads.loc[roads["level"] != "tunnel", "depth"].isna().all()
    assert roads.loc[roads["level"] != "bridge", "deck_height"].isna().all()
    # Endpoints meet: most pieces share both ends with another piece (a connected grid).
    ends = np.concatenate([shapely.get_point(geoms, 0), shapely.get_point(geoms, -1)])
    touching = shapely.STRtree(ends).query(ends, predicate="dwithin", distance=1e-6)
    degree = np.bincount(touching[0], minlength=len(ends))
    assert (degree >= 2).mean() > 0.9


def test_rail_has_a_main_line_and_a_metro_in_tunnel(small):
    rail = read(small, "rail")
    assert set(rail["class"]) == {"main", "metro"}
    metro = rail[rail["class"] == "metro"]
    assert (metro["level"] == "tunnel").all() and metro["depth"].between(5, 60).all()
    assert rail.loc[rail["class"] == "main", "geometry"].length.sum() > 3000.0


# --- pipelines ------------------------------------------------------------------------------------


def test_pipes_lie_under_roads_and_sewers_fall(small):
    pipes = read(small, "pipelines")
    roads = read(small, "roads")
    assert set(pipes["utility"]) == {"water", "sewer", "gas"}
    tree = shapely.STRtree(roads.geometry.values)
    near = tree.query_nearest(pipes.geometry.values, max_distance=10.0, all_matches=False)
    assert len(np.unique(near[0])) == len(pipes), "pipes more than 10 m from any road"
    assert pipes["depth"].between(0.6, 3.0).all()
    sewer = pipes[pipes["utility"] == "sewer"]
    assert (sewer["pressure_class"] == "gravity").all()
    assert (sewer["invert_start"] > sewer["invert_end"]).all()
    with rasterio.open(small / "dem.tif") as src:
        def ground(i):
            pts = shapely.get_point(sewer.geometry.values, i)
            return np.array([v[0] for v in src.sample(zip(shapely.get_x(pts), shapely.get_y(pts)))])
        g0, g1 = ground(0), ground(-1)
    assert (g0 >= g1).all()  # drawn in the direction of flow
    expected = g0 - sewer["depth"].to_numpy() - sewer["diameter"].to_numpy() / 1000.0
    assert np.abs(sewer["invert_start"].to_numpy() - expected).max() < 0.01
    depth_end = g1 - sewer["invert_end"].to_numpy() - sewer["diameter"].to_numpy() / 1000.0
    assert (depth_end <= 3.0).all()


# --- crashes and rain -----------------------------------------------------------------------------


def test_crash_hotspots_stand_out(small, manifest):
    crashes = read(small, "crashes")
    minx, miny, maxx, maxy = manifest["bbox"]
    background = len(crashes) / ((maxx - minx) * (maxy - miny))
    pts = crashes.geometry.values
    for hx, hy in manifest["hotspots"]:
        inside = shapely.dwithin(pts, shapely.Point(hx, hy), 200.0).sum()
        assert inside / (math.pi * 200.0 ** 2) > 5.0 * background
    times = [datetime.fromisoformat(t) for t in crashes["time"]]
    assert all(t.utcoffset().total_seconds() == 8 * 3600 for t in times)
    assert {t.year for t in times} == {2021, 2022, 2023, 2024}
    assert (crashes.loc[crashes["severity"] == "fatal", "deaths"] >= 1).all()
    assert (crashes.loc[crashes["severity"] != "fatal", "deaths"] == 0).all()
    roads = read(small, "roads")
    assert (shapely.distance(pts, shapely.union_all(roads.geometry.values)) < 0.01).all()


def test_rain_gauge_is_a_typhoon_hyetograph(small):
    rain = pd.read_csv(small / "rain_gauge.csv")
    assert list(rain.columns) == ["time_start", "rain_mm"] and len(rain) == 72
    times = [datetime.fromisoformat(t) for t in rain["time_start"]]
    assert all((b - a).total_seconds() == 3600 for a, b in zip(times, times[1:]))
    assert 500 <= rain["rain_mm"].sum() <= 800
    assert 24 <= int(rain["rain_mm"].idxmax()) <= 48
    assert (rain["rain_mm"] >= 0).all() and rain["rain_mm"].max() < 150


# --- streaming ------------------------------------------------------------------------------------


def test_scaled_national_streams_and_matches_a_whole_array_fill(tmp_path, monkeypatch):
    calls = []
    original = region_mod.write_layer

    def spy(gdf, path, layer, geometry_type, append):
        calls.append((layer, append, len(gdf)))
        original(gdf, path, layer, geometry_type, append)

    monkeypatch.setattr(region_mod, "write_layer", spy)
    out = tmp_path / "national"
    manifest = generate_region(out, seed=5, size="national", scale=0.08)
    spec = region_spec("national", 0.08)
    assert spec.districts == 2 and spec.shape == (800, 800) and spec.streamed
    assert len(list(windows(spec))) == 4
    assert len(manifest["towns"]) == 4
    building_calls = [c for c in calls if c[0] == "buildings"]
    assert [c[1] for c in building_calls] == [False, True]  # one chunk per row of districts
    assert sum(c[2] for c in building_calls) == len(read(out, "buildings")) > 1000
    assert read(out, "buildings")["id"].is_unique and read(out, "roads")["id"].is_unique
    # The streamed (windowed, memory-mapped) DEM equals a whole-array computation and fill.
    minx, _, _, maxy = spec.bbox
    whole = TerrainModel.create(5, spec.bbox).window(minx, maxy, 800, 800, 10.0)
    fill_depressions(whole)
    assert np.array_equal(read_dem(out), whole)
    assert not (out / "dem_work.npy").exists()
    # Roads of neighbouring districts meet at shared border points.
    roads = read(out, "roads")
    border_x = minx + 4000.0
    ends = np.concatenate([shapely.get_point(roads.geometry.values, 0),
                           shapely.get_point(roads.geometry.values, -1)])
    on_border = ends[np.abs(shapely.get_x(ends) - border_x) < 1e-6]
    assert len(on_border) >= 4
    xy = np.round(shapely.get_coordinates(on_border), 6)
    _, counts = np.unique(xy, axis=0, return_counts=True)
    assert (counts >= 2).all()
    # Every record of the streamed region meets its standard too (the national region's
    # mountain tunnels once broke the road standard's depth limit).
    for layer, standard in LAYERS.items():
        validator = Draft202012Validator(json.loads((SCHEMAS / f"{standard}.json").read_text()))
        frame = read(out, layer).drop(columns="geometry")
        errors = [f"{r['id']}: {e.message}" for r in frame.to_dict("records")
                  for e in validator.iter_errors({k: _plain(v) for k, v in r.items()
                                                  if _plain(v) is not None})]
        assert errors == [], (layer, errors[:5])


# --- atomic output --------------------------------------------------------------------------------


def test_failed_run_leaves_existing_directory_untouched(tmp_path, monkeypatch):
    out = tmp_path / "region"
    out.mkdir()
    (out / "marker.txt").write_text("old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(region_mod, "write_layer", boom)
    with pytest.raises(OSError, match="disk full"):
        generate_region(out, seed=1, size="small")
    assert sorted(p.name for p in out.iterdir()) == ["marker.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["region"]


def test_successful_run_replaces_existing_directory(tmp_path):
    out = tmp_path / "region"
    out.mkdir()
    (out / "marker.txt").write_text("old")
    generate_region(out, seed=1, size="small")
    assert not (out / "marker.txt").exists() and (out / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["region"]


def test_unknown_size_and_bad_scale_are_errors(tmp_path):
    with pytest.raises(NgisError):
        generate_region(tmp_path / "x", size="bogus")
    with pytest.raises(NgisError):
        generate_region(tmp_path / "x", size="national", scale=0.001)
    assert not (tmp_path / "x").exists()


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_writes_a_region(tmp_path):
    out = tmp_path / "d"
    result = CliRunner().invoke(cli, ["demo-data", "--out", str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 1 and manifest["size"] == "small"
    assert "buildings.gpkg" in result.output and "seed 1" in result.output


def test_cli_rejects_a_bogus_size_and_is_quiet_with_quiet(tmp_path):
    result = CliRunner().invoke(cli, ["demo-data", "--out", str(tmp_path / "d"), "--size", "bogus"])
    assert result.exit_code == 2
    assert not (tmp_path / "d").exists()
    args = ["--quiet", "demo-data", "--out", str(tmp_path / "q"), "--seed", "2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and result.output == ""
    assert (tmp_path / "q" / "manifest.json").exists()


def test_rain_gauge_reads_as_a_start_stamped_hyetograph(small):
    from gis.io.hyetograph import read_hyetograph

    rain = pd.read_csv(small / "rain_gauge.csv")
    hyeto = read_hyetograph(small / "rain_gauge.csv")
    # time_start: the first step begins at the first stamp and the series lasts 72 h.
    assert hyeto.start == pd.Timestamp(rain["time_start"].iloc[0])
    assert hyeto.duration_s == 72 * 3600
    assert hyeto.total_mm == pytest.approx(rain["rain_mm"].sum())
