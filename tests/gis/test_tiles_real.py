"""The real data sets into validated tilesets that load in CesiumJS (issue 3's done-when):
Hsinchu buildings (LOD1 and LOD2), PLATEAU LOD2 buildings from their CityGML surfaces, the
freeways draped on the SW Taiwan DEM, PLATEAU pipes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from browser import browser_page, serve, wait_for_tiles
from gis.cli.main import cli
from tiles.info import load_tiles, tileset_info
from tiles.read import Glb, maybe_gunzip

ROOT = Path(__file__).resolve().parents[2]
BUILDS = {
    "hsinchu_lod1": ["--layer", "buildings", "--dem", "tw-island-relief15s/tw_relief_15s.nc"],
    "hsinchu_lod2": ["--layer", "buildings", "--lod", "2", "--dem",
                     "tw-island-relief15s/tw_relief_15s.nc"],
    "plateau_lod2": ["--layer", "plateau_buildings", "--lod", "2"],
    "freeways": ["--layer", "roads"],
    "plateau_pipes": ["--layer", "plateau_pipelines"],
}


@pytest.fixture(scope="module")
def real_tiles(tmp_path_factory, shared_data):
    shared_data("plateau-utility-network")
    d = tmp_path_factory.mktemp("real")
    store = d / "basemap.gpkg"
    r = CliRunner().invoke(cli, ["-q", "ingest", "--store", str(store), "--manifest",
                                 str(ROOT / "examples" / "shared-data.yml")])
    assert r.exit_code == 0, r.output
    for name, args in BUILDS.items():
        args = [str(shared_data(*a.split("/"))) if "/" in a else a for a in args]
        r = CliRunner().invoke(cli, ["tiles", "build", "--store", str(store), *args,
                                     "--out", str(d / name)])
        assert r.exit_code == 0, (name, r.output)
    return d


@pytest.mark.parametrize("name", list(BUILDS))
def test_real_tileset_is_valid(real_tiles, name):
    report = tileset_info(real_tiles / name, validate=True)
    assert report["ok"], report.get("problems")
    assert report["validator"]["errors"] == 0 and report["features"] > 0


def test_plateau_lod2_keeps_surface_types_and_attributes(real_tiles):
    _, tiles = load_tiles(real_tiles / "plateau_lod2")
    ids, heights = [], []
    for t in tiles:
        if not t.content:
            continue
        glb = Glb.parse(maybe_gunzip((real_tiles / "plateau_lod2" / t.content).read_bytes()))
        assert "surface_type" in [s.get("label") for s in glb.feature_id_sets()]
        table = glb.property_table()
        ids += table["id"]
        heights += table["height"]
    assert len(set(ids)) == 21 and all(h > 0 for h in heights)


def test_real_tilesets_load_in_cesium(real_tiles):
    names = ["hsinchu_lod2", "freeways"]
    with serve({n: real_tiles / n for n in names}) as base, browser_page() as page:
        page.goto(f"{base}/viewer/index.html?msaa=1")
        wait_for_tiles(page)
        selected = page.evaluate("() => window.ngis.tilesets.map(t => t.statistics.selected)")
        assert selected[0] > 0
        assert page.evaluate("() => window.ngis.errors") == []
        assert page.console_errors == [] and page.outside_requests == []
