"""`ngis tiles build` end to end: store -> meshes -> tileset, validated, placed, parallel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gis.cli.main import cli
from gis.etl.tiles_job import TilesOptions, build_tiles
from gis.store import open_store
from tiles.info import load_tiles, tileset_info
from tiles.placement import to_ecef
from tiles.read import Glb, maybe_gunzip


def _build(store, layer, out, *extra):
    r = CliRunner().invoke(cli, ["tiles", "build", "--store", str(store), "--layer", layer,
                                 "--out", str(out), *extra])
    assert r.exit_code == 0, r.output
    return r


@pytest.mark.parametrize("layer, extra", [("buildings", []), ("buildings", ["--lod", "2"]),
                                          ("roads", []), ("rail", []), ("pipelines", []),
                                          ("buildings", ["--tiles-version", "1.0"]),
                                          ("buildings", ["--compress", "meshopt", "--implicit",
                                                         "--gzip"])])
def test_every_layer_builds_a_valid_tileset(demo_store, tmp_path, layer, extra):
    out = tmp_path / layer
    _build(demo_store, layer, out, "--max-features", "400", *extra)
    report = tileset_info(out, validate=True)
    assert report["ok"], report.get("problems")
    assert report["validator"]["errors"] == 0
    store_ids = set(open_store(str(demo_store)).read(layer)["id"])
    if "1.0" in extra:
        assert report["features"] == len(store_ids)
        return
    # every record is in the tileset (long lines are cut into pieces that share their record)
    ids = set()
    _, tiles = load_tiles(out)
    for t in tiles:
        if t.content:
            ids.update(Glb.parse(maybe_gunzip((out / t.content).read_bytes()))
                       .property_table()["id"])
    assert ids == store_ids


def test_buildings_sit_on_the_dem_and_reach_their_height(demo_store, tmp_path):
    """Decode the glb contents back to ECEF and compare with the source records: every building's
    lowest vertex is its ground (the DEM under it) and its highest is ground + height."""
    store = open_store(str(demo_store))
    frame = store.read("buildings").reset_index(drop=True)
    dem = store.read_raster("dem")
    out = tmp_path / "b"
    build_tiles(frame, "building", out, dem=dem, options=TilesOptions(max_features=500))
    _, tiles = load_tiles(out)
    checked = 0
    for t in tiles:
        if not t.content:
            continue
        glb = Glb.parse((out / t.content).read_bytes())
        ecef = glb.positions_ecef()
        fid = glb.attribute(f"_FEATURE_ID_{glb.feature_id_sets()[0]['attribute']}").astype(int)
        ids = glb.property_table()["id"]
        for k in range(0, len(ids), 97):
            row = frame.index[frame["id"] == ids[k]][0]
            rec = frame.loc[row]
            pts = ecef[fid == k]
            x, y = rec.geometry.exterior.coords[0]
            ground = rec["ground_elevation"]
            # the standard: height, else storeys x storey_height (+ roof_height when pitched)
            roof = rec["roof_height"] if rec["roof_type"] not in (None, "flat") and \
                np.isfinite(rec["roof_height"]) else 0.0
            top = ground + (rec["height"] if np.isfinite(rec["height"]) else
                            rec["storeys"] * rec["storey_height"] + roof)
            lo = np.array(to_ecef(x, y, ground, "EPSG:3826"))
            hi = np.array(to_ecef(x, y, top, "EPSG:3826"))
            d_lo = np.linalg.norm(pts - lo, axis=1).min()
            d_hi = np.linalg.norm(pts - hi, axis=1).min()
            assert d_lo < 0.01 and d_hi < 0.01, (ids[k], d_lo, d_hi)
            checked += 1
    assert checked > 10


def test_rebuild_rewrites_only_changed_tiles(demo_store, tmp_path):
    store = open_store(str(demo_store))
    frame = store.read("buildings").reset_index(drop=True)
    dem = store.read_raster("dem")
    out = tmp_path / "b"
    first = build_tiles(frame, "building", out, dem=dem, options=TilesOptions(max_features=300))
    assert first.written == first.contents and first.reused == 0
    frame.loc[0, "height"] = frame.loc[0, "height"] + 5 if np.isfinite(frame.loc[0, "height"]) \
        else 20.0
    second = build_tiles(frame, "building", out, dem=dem, options=TilesOptions(max_features=300))
    assert second.written == 1 and second.reused == first.contents - 1


@pytest.mark.parametrize("gzip", [False, True])
def test_dask_workers_give_the_same_bytes(demo_store, tmp_path, gzip):
    store = open_store(str(demo_store))
    frame = store.read("roads").reset_index(drop=True)
    dem = store.read_raster("dem")
    a = build_tiles(frame, "road", tmp_path / "a", dem=dem,
                    options=TilesOptions(max_features=100, gzip=gzip))
    b = build_tiles(frame, "road", tmp_path / "b", dem=dem,
                    options=TilesOptions(max_features=100, workers=2, gzip=gzip))
    assert a.contents == b.contents > 1
    for f in sorted((tmp_path / "a" / "content").rglob("*.glb")):
        assert f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes()
    # the workers' staging directory beside the output is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_clear_errors(demo_store, tmp_path):
    r = CliRunner().invoke(cli, ["tiles", "build", "--store", str(demo_store), "--layer",
                                 "crashes", "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "no 3D builder for 'crash'" in r.stderr
    r = CliRunner().invoke(cli, ["tiles", "build", "--store", str(demo_store), "--layer", "nope",
                                 "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "no layer 'nope'" in r.stderr
    r = CliRunner().invoke(cli, ["tiles", "build", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2
    r = CliRunner().invoke(cli, ["tiles", "build", "--store", str(demo_store), "--layer",
                                 "buildings", "--compress", "draco", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "use meshopt" in r.output
    r = CliRunner().invoke(cli, ["tiles", "build", "--store", str(demo_store), "--layer", "dem",
                                 "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "'dem' is a raster layer, not features" in r.stderr
    r = CliRunner().invoke(cli, ["tiles", "info", str(tmp_path)])
    assert r.exit_code == 1 and "no tileset.json here" in r.stderr
    assert not (tmp_path / "x").exists()


def test_input_file_straight_to_tiles(tmp_path):
    from tests_helpers import buildings_frame

    buildings_frame(30).to_file(tmp_path / "b.gpkg")
    out = tmp_path / "t"
    r = CliRunner().invoke(cli, ["tiles", "build", "--input", str(tmp_path / "b.gpkg"), "--out",
                                 str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "tileset.json").read_text())["asset"]["version"] == "1.1"
    assert tileset_info(out, validate=True)["ok"]


def test_root_is_not_a_stub(demo_store, tmp_path):
    out = tmp_path / "b"
    _build(demo_store, "buildings", out, "--max-features", "200")
    ts = json.loads(Path(out / "tileset.json").read_text())
    assert ts["geometricError"] > 0 and ts["root"]["refine"] == "ADD"
