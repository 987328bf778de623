"""The data APIs over HTTP: DEM coverage subsets (CoverageJSON, GeoTIFF) against a direct read of
the store's raster, vector tiles decoded against the store, and the same collections served from
a real PostGIS store agreeing with the GeoPackage server."""

from __future__ import annotations

import json
import math

import mapbox_vector_tile
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from pyproj import Transformer

from server_helpers import start_server, stop_server
from gis.cli.main import cli
from gis.store import open_store




def test_coverage_subset_json_and_geotiff(server):
    dem = open_store(str(server.store)).read_raster("dem")
    data, transform = dem.data, dem.transform
    # A 20 x 10 cell window, aligned to the grid, given as x/y subsets in the store CRS.
    col0, row0 = 30, 40
    x0, y1 = transform @ (col0, row0)
    x1, y0 = transform @ (col0 + 20, row0 + 10)
    query = f"subset=x({x0}:{x1}),y({y0}:{y1})"
    cov = server.json(f"/collections/dem/coverage?{query}&f=json")
    # Values are the stored float32s, written as their shortest decimals: read back as float32.
    values = np.array(cov["ranges"]["elevation"]["values"], dtype=np.float32)
    expected = data[row0:row0 + 10, col0:col0 + 20].astype(np.float32)
    assert cov["ranges"]["elevation"]["shape"] == [10, 20]
    np.testing.assert_array_equal(values.reshape(10, 20), expected)
    status, headers, body = server.get(f"/collections/dem/coverage?{query}&f=GTiff")
    assert status == 200 and headers["content-type"].startswith("image/tiff")
    with rasterio.MemoryFile(body) as mem, mem.open() as tif:
        np.testing.assert_array_equal(tif.read(1), expected)
        assert tif.crs.to_epsg() == 3826
        assert tif.transform.c == pytest.approx(x0) and tif.transform.f == pytest.approx(y1)


def _tile_for(lon, lat, z):
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_vector_tiles_over_http(server):
    info = pyogrio.read_info(server.store, layer="buildings")
    x0, y0, x1, y1 = info["total_bounds"]
    lon, lat = Transformer.from_crs(info["crs"], "OGC:CRS84", always_xy=True).transform(
        (x0 + x1) / 2, (y0 + y1) / 2)
    z = 16
    tx, ty = _tile_for(lon, lat, z)
    path = f"/collections/buildings/tiles/WebMercatorQuad/{z}/{ty}/{tx}?f=mvt"
    status, headers, body = server.get(path)
    assert status == 200 and headers["content-type"].startswith(
        "application/vnd.mapbox-vector-tile")
    tile = mapbox_vector_tile.decode(body)
    layer = next(iter(tile.values()))
    ids = {f["properties"]["id"] for f in layer["features"]}
    # The store's buildings meeting the tile's envelope (from the slippy-map formula).
    n = 2 ** z
    w, e = tx / n * 360 - 180, (tx + 1) / n * 360 - 180
    nlat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * ty / n))))
    slat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (ty + 1) / n))))
    frame = pyogrio.read_dataframe(server.store, layer="buildings").to_crs("OGC:CRS84")
    inside = set(frame["id"][frame.intersects(shapely.box(w, slat, e, nlat))])
    assert inside and inside <= ids  # the tile may hold a buffer's worth more
    again = server.get(path)  # warm: the same bytes
    assert again[0] == 200 and again[2] == body


@pytest.fixture
def postgis_server(postgis_store_url, demo_store, tmp_path_factory, server):
    from gis.etl.ingest import ingest, load_manifest

    d = tmp_path_factory.mktemp("pg-server")
    ingest(postgis_store_url, load_manifest(demo_store.parent / "source" / "manifest.json"))
    config = d / "server_config.yml"
    r = CliRunner().invoke(cli, ["config", "--store", postgis_store_url, "--tiles",
                                 str(server.tiles), "--out", str(config), "--cache",
                                 str(d / "cache")])
    assert r.exit_code == 0, r.output
    url, proc = start_server(config)
    yield url
    stop_server(proc)


def test_postgis_store_serves_the_same_features(postgis_server, server):
    import urllib.request

    def get(base, path):
        with urllib.request.urlopen(base + path, timeout=120) as r:
            return json.load(r)

    info = pyogrio.read_info(server.store, layer="buildings")
    x0, y0, x1, y1 = info["total_bounds"]
    tr = Transformer.from_crs(info["crs"], "OGC:CRS84", always_xy=True)
    (lon0, lon1), (lat0, lat1) = tr.transform([x0, (x0 + x1) / 2], [y0, (y0 + y1) / 2])
    for path in (f"/collections/buildings/items?f=json&limit=200&bbox={lon0},{lat0},{lon1},{lat1}",
                 "/collections/roads/items?f=json&limit=50&sortby=-width",
                 "/collections/buildings/items?f=json&limit=20&filter=height%20%3E%2030",
                 "/collections/pipelines/items?f=json&limit=10&crs=http://www.opengis.net/def/"
                 "crs/EPSG/0/3826"):
        a, b = get(server.url, path), get(postgis_server, path)
        assert a["numberMatched"] == b["numberMatched"], path
        fa = [(f["properties"]["id"], f["geometry"]) for f in a["features"]]
        fb = [(f["properties"]["id"], f["geometry"]) for f in b["features"]]
        assert [i for i, _ in fa] == [i for i, _ in fb], path
        assert fa == fb, path  # geometries to the same rounding
    cov = get(postgis_server, "/collections/dem/coverage?f=json&subset=x(211000:211100),"
                              "y(2662000:2662050)")
    ref = get(server.url, "/collections/dem/coverage?f=json&subset=x(211000:211100),"
                          "y(2662000:2662050)")
    assert cov["ranges"] == ref["ranges"]
    recs = get(postgis_server, "/collections/catalog/items?f=json&q=roads")
    ref = get(server.url, "/collections/catalog/items?f=json&q=roads")
    assert [f["id"] for f in recs["features"]] == [f["id"] for f in ref["features"]]
    assert "roads" in [f["id"] for f in recs["features"]]
