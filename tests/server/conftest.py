"""A real NGIS 3D server (``ngis serve``: uvicorn + pygeoapi) on a free loopback port, serving the
generated demo store and its 3D tilesets; shared by the server tests of a session."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gis.cli.main import cli
from server_helpers import GradedServer, Server, create_key, set_access, start_server, stop_server


@pytest.fixture(params=["sqlite", "postgresql"])
def access_target(request, tmp_path):
    """An empty access database: an SQLite path, or a PostgreSQL URL with a fresh schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "access.db")
        return
    import re
    import uuid

    import psycopg2

    url = request.getfixturevalue("postgis_url")
    schema = "acc_" + re.sub(r"\W", "_", request.node.name)[:30].lower() + uuid.uuid4().hex[:6]
    yield f"{url}?schema={schema}"
    con = psycopg2.connect(url)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    con.close()


@pytest.fixture(scope="session")
def demo_tilesets(demo_store, tmp_path_factory) -> Path:
    """3D tilesets of the demo store: buildings (LOD2, meshopt, gzip at rest), buildings-lod1,
    roads, pipelines; and the terrain of its DEM (dem-terrain)."""
    out = tmp_path_factory.mktemp("server-tiles")
    for name, args in (("buildings", ["--layer", "buildings", "--lod", "2", "--compress",
                                      "meshopt", "--gzip"]),
                       ("buildings-lod1", ["--layer", "buildings", "--lod", "1"]),
                       ("roads", ["--layer", "roads"]),
                       ("pipelines", ["--layer", "pipelines"])):
        r = CliRunner().invoke(cli, ["-q", "tiles", "build", "--store", str(demo_store), *args,
                                     "--out", str(out / name)])
        assert r.exit_code == 0, r.output
    # Terrain from the store's DEM (named after the layer, so it takes the DEM's grade).
    import rasterio

    from gis.store import open_store

    dem = open_store(str(demo_store)).read_raster("dem")
    dem_file = out.parent / f"{out.name}-dem.tif"
    with rasterio.open(dem_file, "w", driver="GTiff", width=dem.shape[1], height=dem.shape[0],
                       count=1, dtype="float32", crs=dem.crs, transform=dem.transform) as dst:
        dst.write(dem.data, 1)
    r = CliRunner().invoke(cli, ["-q", "terrain", "build", "--dem", str(dem_file), "--out",
                                 str(out / "dem-terrain")])
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="session")
def server(demo_store, demo_tilesets, tmp_path_factory) -> Server:
    """``ngis serve`` on the demo store and tilesets (one worker process)."""
    d = tmp_path_factory.mktemp("server")
    config = d / "server_config.yml"
    r = CliRunner().invoke(cli, ["config", "--store", str(demo_store), "--tiles",
                                 str(demo_tilesets), "--out", str(config), "--cache",
                                 str(d / "cache")])
    assert r.exit_code == 0, r.output
    url, proc = start_server(config)  # anonymous sees everything (see graded_server)
    yield Server(url, config, demo_store, demo_tilesets, proc)
    stop_server(proc)


@pytest.fixture(scope="session")
def graded_server(demo_store, demo_tilesets, tmp_path_factory) -> GradedServer:
    """``ngis serve`` with graded access as generated (anonymous = public), two workers, and
    keys: ``public``, ``agency``, ``restricted``, ``revoked`` (agency, revoked), ``expired``
    (agency, expired in 2001) and ``malformed`` (not a key at all)."""
    d = tmp_path_factory.mktemp("graded")
    config = d / "server_config.yml"
    r = CliRunner().invoke(cli, ["config", "--store", str(demo_store), "--tiles",
                                 str(demo_tilesets), "--out", str(config), "--cache",
                                 str(d / "cache")])
    assert r.exit_code == 0, r.output
    # Rate limits high enough for the tests' bursts (limits have their own tests).
    set_access(config, anonymous_rate=1_000_000)
    keys = {grade: create_key(config, f"{grade}-client", grade, "--rate", "1000000")
            for grade in ("public", "agency", "restricted")}
    keys["revoked"] = create_key(config, "revoked-client", "agency")
    r = CliRunner().invoke(cli, ["keys", "revoke", "revoked-client", "--config", str(config)])
    assert r.exit_code == 0, r.output
    keys["expired"] = create_key(config, "expired-client", "agency", "--expires", "2001-12-31")
    keys["malformed"] = "ngis_" + "x" * 10
    url, proc = start_server(config, workers=2, graded=True)
    yield GradedServer(url, config, demo_store, demo_tilesets, proc, keys)
    stop_server(proc)
