"""End to end: ``ngis model hotspots`` on the synthetic town (known hot-spot centres) and on the
real NPA crashes with the national freeway network; the OGC API process on the demo store."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner

from gis.cli.main import cli


def _run(*args):
    result = CliRunner().invoke(cli, ["-q", "model", "hotspots", *map(str, args)])
    return result


@pytest.fixture(scope="module")
def demo_run(demo_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("hs") / "gi"
    res = _run("--store", demo_store, "--out", out, "--permutations", 9999, "--seed", 3,
               "--null", "total")
    assert res.exit_code == 0, res.output
    return out


def test_demo_gi_finds_the_known_hot_spots(demo_store, demo_run):
    out = demo_run
    assert {p.name for p in out.iterdir()} == {"hotspots.gpkg", "summary.json", "map.png"}
    s = json.loads((out / "summary.json").read_text())
    cells = gpd.read_file(out / "hotspots.gpkg", layer="hotspots")
    crashes = gpd.read_file(out / "hotspots.gpkg", layer="crashes")
    assert {"count", "z", "p", "q", "class", "class_name"} <= set(cells.columns)
    assert s["crashes"]["snapped"] + s["crashes"]["unsnapped"] == s["crashes"]["read"]
    assert cells["count"].sum() == s["crashes"]["snapped"] == (crashes["cell"] >= 0).sum()
    assert sum(s["classes"].values()) == len(cells) == s["network"]["lixels"]
    # lixel lengths add up to the store's road length
    from gis.store import open_store

    roads = open_store(str(demo_store)).read("roads")
    assert cells.length.sum() == pytest.approx(roads.length.sum(), rel=1e-6)
    # every hot lixel is near a hot-spot centre the generator planted, most centres are found
    manifest = json.loads((demo_store.parent / "source" / "manifest.json").read_text())
    centres = shapely.points(manifest["hotspots"])
    hot = np.asarray(cells[cells["class"] > 0].geometry.values)
    assert len(hot) >= 3
    d = shapely.distance(hot[:, None], centres[None, :])
    assert (d.min(axis=1) < 400).all()
    assert (d.min(axis=0) < 400).sum() >= len(centres) - 1
    top = cells.geometry.values[int(np.argmax(cells["z"]))]
    assert shapely.distance(top, centres).min() < 400


@pytest.mark.parametrize("method", ["moran", "nkde", "emerging"])
def test_demo_other_methods(demo_store, tmp_path, method):
    out = tmp_path / method
    res = _run("--store", demo_store, "--out", out, "--method", method, "--permutations", 199,
               "--weights", "severity", "--severity-weights", "fatal=5,injury=2,property=1")
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    cells = gpd.read_file(out / "hotspots.gpkg", layer="hotspots")
    by = s["crashes"]["by_severity"]
    assert cells["value"].sum() == pytest.approx(5 * by.get("fatal", 0) + 2 * by["injury"]
                                                 + by["property"])
    if method == "moran":
        assert set(cells["quadrant"]) <= {1, 2, 3, 4}
        assert set(cells["class"]) <= {0, 1, 2, 3, 4}
    if method == "nkde":  # conservation through the whole pipeline
        assert s["nkde"]["mass"] == pytest.approx(s["nkde"]["weight"], rel=1e-9)
        assert (cells["nkde_mass"].sum() == pytest.approx(cells["value"].sum(), rel=1e-9))
    if method == "emerging":
        assert s["emerging"]["bins"] == 16  # 2021-Q1 .. 2024-Q4
        assert sum(s["emerging"]["categories"].values()) == len(cells)


def test_hexagon_variant_without_roads(demo_store, tmp_path):
    from gis.store import open_store

    src = tmp_path / "crashes.gpkg"
    open_store(str(demo_store)).read("crashes").to_file(src, driver="GPKG")
    res = _run("--crashes", src, "--out", tmp_path / "hex", "--hex-size", 250,
               "--permutations", 99)
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "hex" / "summary.json").read_text())
    cells = gpd.read_file(tmp_path / "hex" / "hotspots.gpkg", layer="hotspots")
    assert s["grid"]["hexagons"] == len(cells) and cells["count"].sum() == s["crashes"]["read"]


def test_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    res = _run("--crashes", bad, "--out", tmp_path / "o")
    assert res.exit_code == 1
    assert "longitude" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_npa_crashes_on_freeways(shared_data, tmp_path):
    files = [shared_data("tw-a1-accidents", f"A1_{y}.csv")
             for y in ("2018_roc107", "2019_roc108", "2020_roc109")]
    roads = shared_data("tw-transport-network", "Freeway_Nat.gmt")
    out = tmp_path / "tw"
    args = [a for f in files for a in ("--crashes", f)]
    res = _run(*args, "--roads", roads, "--out", out, "--lixel", 200, "--bandwidth", 1000,
               "--permutations", 999, "--method", "gi")
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    c = s["crashes"]
    assert c["rows"] == 1459 + 1816 + 1808 - 6 and c["footer_rows"] == 6
    assert c["read"] == 5077 and c["swapped_lon_lat"] == 1 and c["skipped_total"] == 0
    assert c["snapped"] + c["unsnapped"] == 5077 and 200 < c["snapped"] < 400
    cells = gpd.read_file(out / "hotspots.gpkg", layer="hotspots")
    assert cells["count"].sum() == c["snapped"] and cells.crs.to_epsg() == 3826
    assert (out / "map.png").stat().st_size > 10_000


def test_process_on_demo_store(demo_store):
    from pygeoapi.process.base import ProcessorExecuteError

    from gis.server.processes.hotspots import HotspotsProcessor

    proc = HotspotsProcessor({"name": "hotspots", "store": str(demo_store)})
    mime, out = proc.execute({"method": "gi", "permutations": 999, "seed": 1,
                              "bbox": [120.0, 20.0, 123.0, 27.0]})
    assert mime == "application/json"
    fc = out["hotspots"]
    assert fc["type"] == "FeatureCollection"
    assert len(fc["features"]) == out["summary"]["network"]["lixels"]
    xy = np.array([c for f in fc["features"][:50] for c in f["geometry"]["coordinates"]])
    assert (xy[:, 0] > 119).all() and (xy[:, 0] < 123).all() and (xy[:, 1] > 21).all()
    props = fc["features"][0]["properties"]
    assert {"count", "z", "p", "q", "class"} <= set(props)
    # the same code as the CLI: identical statistics for identical parameters
    from gis.io.crashes import crashes_from_frame
    from gis.store import open_store
    from models.hotspots.model import HotspotParams, run_hotspots

    st = open_store(str(demo_store))
    rec = crashes_from_frame(st.read("crashes"))
    ref = run_hotspots(rec.frame, st.read("roads"), HotspotParams(permutations=999, seed=1))
    np.testing.assert_allclose([f["properties"]["z"] for f in fc["features"]], ref.cells["z"])
    np.testing.assert_array_equal([f["properties"]["class"] for f in fc["features"]],
                                  ref.cells["class"])
    with pytest.raises(ProcessorExecuteError):
        proc.execute({"method": "nope"})
    with pytest.raises(ProcessorExecuteError):
        proc.execute({"bbox": [1, 2]})
    small = HotspotsProcessor({"name": "hotspots", "store": str(demo_store), "max_lixels": 10})
    with pytest.raises(ProcessorExecuteError, match="lixels"):
        small.execute({})
    graded = HotspotsProcessor({"name": "hotspots", "store": str(demo_store),
                                "allowed_layers": ["roads", "buildings"]})
    with pytest.raises(ProcessorExecuteError, match="crashes"):
        graded.execute({})


def test_demo_with_speed_layer(demo_store, tmp_path):
    from gis.store import open_store

    roads = open_store(str(demo_store)).read("roads")
    lines = roads.geometry.values
    pts = shapely.line_interpolate_point(lines, 0.5, normalized=True)
    slow = (roads["class"] == "trunk").to_numpy()
    speed = gpd.GeoDataFrame({"speed": np.where(slow, 20.0, 70.0), "free_flow": 80.0},
                             geometry=pts, crs=roads.crs)
    src = tmp_path / "speed.gpkg"
    speed.to_file(src, driver="GPKG")
    res = _run("--store", demo_store, "--out", tmp_path / "o", "--speed", src,
               "--permutations", 99)
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    cells = gpd.read_file(tmp_path / "o" / "hotspots.gpkg", layer="hotspots")
    assert s["jams"]["observations"] == len(roads) and s["jams"]["corridors"] >= 1
    jam_roads = set(cells.loc[cells["jam_corridor"] >= 0, "road"])
    assert jam_roads <= set(np.flatnonzero(slow))
