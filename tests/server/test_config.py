"""server_config.yml: generated from the store, in step with the demo, and checked before serving."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner

from gis.cli.main import cli
from gis.server.config import build_config, load_config

ROOT = Path(__file__).resolve().parents[2]
DEMO_TILESETS = ("buildings", "buildings-lod1", "roads", "rail", "pipelines")
DEMO_TERRAIN = "dem-terrain"


def test_committed_config_is_what_make_demo_writes(demo_store, tmp_path, monkeypatch):
    """`make demo` rewrites server_config.yml from build/demo; the committed one must match it
    (same seed, same layers), so a fresh clone serves what the README says."""
    monkeypatch.chdir(tmp_path)
    Path("build/demo").mkdir(parents=True)
    shutil.copy(demo_store, "build/demo/basemap.gpkg")
    for name in DEMO_TILESETS:
        Path(f"build/demo/tiles/{name}").mkdir(parents=True)
        Path(f"build/demo/tiles/{name}/tileset.json").write_text("{}")
    Path(f"build/demo/tiles/{DEMO_TERRAIN}").mkdir(parents=True)
    Path(f"build/demo/tiles/{DEMO_TERRAIN}/layer.json").write_text("{}")
    r = CliRunner().invoke(cli, ["config", "--store", "build/demo/basemap.gpkg", "--tiles",
                                 "build/demo/tiles", "--out", "server_config.yml"])
    assert r.exit_code == 0, r.output
    committed = (ROOT / "server_config.yml").read_text()
    assert Path("server_config.yml").read_text() == committed, \
        "server_config.yml is stale: run `make demo DEMO_SERVE=0` and commit it"


def test_every_layer_published_with_its_grade(demo_store):
    config = build_config(str(demo_store))
    catalog = {r["id"]: r for r in __import__("gis.store", fromlist=["open_store"])
               .open_store(str(demo_store)).catalog()}
    for name, rec in catalog.items():
        res = config["resources"][name]
        assert res["access_grade"] == rec["access_grade"]
        assert res["charge_class"] == rec["charge_class"]
        kinds = [p["type"] for p in res["providers"]]
        assert kinds == (["feature", "tile"] if rec.get("feature_count") is not None
                         else ["coverage"])
    assert config["resources"]["catalog"]["providers"][0]["type"] == "record"
    assert config["resources"]["exposure"]["type"] == "process"


def test_server_url_comes_from_the_environment(demo_store, tmp_path, monkeypatch):
    path = tmp_path / "c.yml"
    from gis.server.config import write_config

    write_config(build_config(str(demo_store)), path)
    monkeypatch.setenv("NGIS_SERVER_URL", "http://example.test:8080")
    assert load_config(path)["server"]["url"] == "http://example.test:8080"
    monkeypatch.delenv("NGIS_SERVER_URL")
    assert load_config(path)["server"]["url"] == "http://127.0.0.1:5000"
    assert yaml.safe_load(path.read_text())["ngis"]["store"] == str(demo_store)


def test_serve_refuses_missing_config_and_store(tmp_path, demo_store):
    r = CliRunner().invoke(cli, ["serve", "--config", str(tmp_path / "none.yml")])
    assert r.exit_code == 1 and "no server config" in r.output
    from gis.server.config import write_config

    config = build_config(str(demo_store))
    config["ngis"]["store"] = str(tmp_path / "gone.gpkg")
    write_config(config, tmp_path / "c.yml")
    r = CliRunner().invoke(cli, ["serve", "--config", str(tmp_path / "c.yml")])
    assert r.exit_code == 1 and "gone.gpkg does not exist" in r.output
    r = CliRunner().invoke(cli, ["serve", "--init"])
    assert r.exit_code == 2 and "--init needs --store" in r.output
