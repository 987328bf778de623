"""The MVT tile provider on the demo store, against independent references: tile envelopes from
the slippy-map formulas, the features meeting them from geopandas + pyproj, tiles decoded with
mapbox_vector_tile; the disk cache; pygeoapi's tiles API; PostGIS."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import mapbox_vector_tile
import numpy as np
import pyogrio
import pyproj
import pytest
import shapely
from server_helpers import api_request, pygeoapi_api

from gis.server.providers import tiles as tiles_mod
from gis.server.providers.tiles import StoreMVTProvider, seed_tiles

MVT = {"name": "mvt", "mimetype": "application/vnd.mapbox-vector-tile"}
EXT = 4096
HEAVY = {"lineage", "source"}


def provider_def(data, table, **options):
    opts = {"table": table, "zoom": {"min": 10, "max": 18}, **options}
    return {"type": "tile", "name": "gis.server.providers.tiles.StoreMVTProvider",
            "data": str(data), "options": opts, "format": dict(MVT)}


# -- independent tile geometry ----------------------------------------------------------------
def merc_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    """(x, y) of the WebMercatorQuad tile holding a point (slippy-map formula)."""
    n = 2 ** z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def merc_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """EPSG:3857 bounds of a tile: its lon/lat corners (mercantile's formula) through PROJ."""
    n = 2 ** z
    west, east = x / n * 360.0 - 180.0, (x + 1) / n * 360.0 - 180.0
    north = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))
    south = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 1) / n))))
    to_merc = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)
    minx, miny = to_merc.transform(west, south)
    maxx, maxy = to_merc.transform(east, north)
    return minx, miny, maxx, maxy


def frame(store, layer, crs=3857):
    return pyogrio.read_dataframe(store, layer=layer, fid_as_index=True).to_crs(crs)


def centre_lonlat(store, layer):
    f = frame(store, layer, 4326)
    w, s, e, n = f.total_bounds
    return (w + e) / 2, (s + n) / 2


def decode(data: bytes) -> dict:
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})


def expected_ids(f, bounds, margin_units: float):
    """fids of features meeting a tile box grown (margin > 0) or shrunk (< 0) by tile units."""
    minx, miny, maxx, maxy = bounds
    m = (maxx - minx) * margin_units / EXT
    box = shapely.box(minx - m, miny - m, maxx + m, maxy + m)
    return set(int(i) for i in f.index[f.intersects(box)])


def expected_props(row) -> dict:
    out = {}
    for k, v in row.items():
        if k == "geometry" or k in HEAVY or v is None:
            continue
        if isinstance(v, float) and math.isnan(v):
            continue
        out[k] = v.item() if hasattr(v, "item") else v
    return out


def check_tile_against_store(store, layer, data, bounds, crs=3857, geom_type=None):
    f = frame(store, layer, crs)
    decoded = decode(data)
    assert list(decoded) == [layer]
    assert decoded[layer]["extent"] == EXT
    feats = decoded[layer]["features"]
    got = [ft["id"] for ft in feats]
    assert len(got) == len(set(got))
    # Everything meeting the tile (2 units in from its edge, so no sliver is in doubt) is there;
    # nothing is there that stays beyond the 64-unit buffer.
    # Features under a tile unit across (a zero-length road of the demo data, a 1.6 m road at
    # zoom 12) vanish on the tile grid, as they should: only those that cannot are required.
    unit = (bounds[2] - bounds[0]) / EXT
    geoms = f.geometry.values
    dims = shapely.get_dimensions(geoms)
    drawable = f[(dims == 0) | ((dims == 1) & (shapely.length(geoms) >= 2 * unit)) |
                 ((dims == 2) & ~shapely.is_empty(shapely.buffer(geoms, -unit)))]
    must = expected_ids(drawable, bounds, -2)
    may = expected_ids(f, bounds, 64 + 2)
    assert must, "test tile should hold features"
    assert must <= set(got), sorted(must - set(got))[:10]
    assert set(got) <= may, sorted(set(got) - may)[:10]
    for ft in feats:
        assert ft["properties"] == expected_props(f.loc[ft["id"]]), ft["id"]
        if geom_type:
            assert ft["geometry"]["type"].replace("Multi", "") == geom_type
    return feats


# -- GeoPackage -------------------------------------------------------------------------------
@pytest.mark.parametrize("layer,z,geom_type", [
    ("buildings", 14, "Polygon"), ("buildings", 15, "Polygon"), ("buildings", 16, "Polygon"),
    ("roads", 15, "LineString"), ("pipelines", 16, "LineString"), ("crashes", 14, "Point")])
def test_tile_holds_the_store_features_meeting_it(demo_store, layer, z, geom_type):
    lon, lat = centre_lonlat(demo_store, layer)
    x, y = merc_tile(lon, lat, z)
    p = StoreMVTProvider(provider_def(demo_store, layer))
    data = p.get_tiles(layer=p.get_layer(), tileset="WebMercatorQuad", z=z, y=y, x=x,
                       format_="mvt")
    assert isinstance(data, bytes) and data
    check_tile_against_store(demo_store, layer, data, merc_bounds(z, x, y), geom_type=geom_type)


def test_vertices_land_within_one_unit(demo_store):
    z = 16
    lon, lat = centre_lonlat(demo_store, "buildings")
    x, y = merc_tile(lon, lat, z)
    bounds = merc_bounds(z, x, y)
    f = frame(demo_store, "buildings")
    inside = f[f.within(shapely.box(*bounds))]
    assert len(inside) > 20
    p = StoreMVTProvider(provider_def(demo_store, "buildings", zoom={"min": 10, "max": z}))
    feats = {ft["id"]: ft for ft in decode(p.get_tiles(tileset="WebMercatorQuad", z=z, y=y,
                                                       x=x))["buildings"]["features"]}
    minx, miny, maxx, maxy = bounds
    checked = 0
    for fid, geom in inside.geometry.items():
        ring = np.asarray(geom.exterior.coords)[:-1]
        want = np.column_stack([(ring[:, 0] - minx) / (maxx - minx) * EXT,
                                (maxy - ring[:, 1]) / (maxy - miny) * EXT])
        got = np.asarray(feats[int(fid)]["geometry"]["coordinates"][0], dtype=float)
        # At the maximum zoom nothing is simplified: every vertex is there, rounded to the grid.
        dist = np.abs(want[:, None, :] - got[None, :, :]).max(axis=2).min(axis=1)
        assert dist.max() <= 1.0, (fid, dist.max())
        # Exterior rings have positive surveyor's area in y-down tile coordinates (MVT 4.3.4.4).
        xs, ys = got[:, 0], got[:, 1]
        assert (np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) > 0
        checked += 1
    assert checked == len(inside)


def test_low_zoom_is_simplified_but_keeps_features(demo_store):
    lon, lat = centre_lonlat(demo_store, "roads")
    x, y = merc_tile(lon, lat, 12)
    full = StoreMVTProvider(provider_def(demo_store, "roads", simplify=0))
    simple = StoreMVTProvider(provider_def(demo_store, "roads"))

    def vertices(data):
        return sum(len(shapely.get_coordinates(shapely.geometry.shape(ft["geometry"])))
                   for ft in decode(data)["roads"]["features"])

    a = full.get_tiles(tileset="WebMercatorQuad", z=12, y=y, x=x)
    b = simple.get_tiles(tileset="WebMercatorQuad", z=12, y=y, x=x)
    assert vertices(b) < vertices(a)
    assert len(b) < len(a)
    check_tile_against_store(demo_store, "roads", b, merc_bounds(12, x, y))


def test_world_crs84_quad(demo_store):
    z = 15
    lon, lat = centre_lonlat(demo_store, "buildings")
    span = 180.0 / 2 ** z
    col, row = int((lon + 180.0) / span), int((90.0 - lat) / span)
    bounds = (-180.0 + col * span, 90.0 - (row + 1) * span, -180.0 + (col + 1) * span,
              90.0 - row * span)
    p = StoreMVTProvider(provider_def(demo_store, "buildings",
                                      schemes=["WebMercatorQuad", "WorldCRS84Quad"]))
    assert [s.tileMatrixSet for s in p.get_tiling_schemes()] == ["WebMercatorQuad",
                                                                 "WorldCRS84Quad"]
    data = p.get_tiles(tileset="WorldCRS84Quad", z=z, y=row, x=col)
    check_tile_against_store(demo_store, "buildings", data, bounds, crs="OGC:CRS84")


def test_empty_and_outside_tiles(demo_store, tmp_path):
    p = StoreMVTProvider(provider_def(demo_store, "buildings", cache=str(tmp_path)))
    # far away: no query, nothing cached
    assert p.tile("WebMercatorQuad", 15, 0, 0) == (None, "outside")
    assert p.get_tiles(tileset="WebMercatorQuad", z=15, y=0, x=0) is None
    assert not (tmp_path / "buildings" / "WebMercatorQuad" / "15" / "0").exists()
    # inside the layer extent but between buildings: cached as an empty file
    f = frame(demo_store, "buildings")
    sindex = f.sindex
    z = 18
    w, s, e, n = frame(demo_store, "buildings", 4326).total_bounds
    x0, y0 = merc_tile(w, n, z)
    x1, y1 = merc_tile(e, s, z)
    empty = None
    for yy in range(y0, y1 + 1):
        for xx in range(x0, x1 + 1):
            minx, miny, maxx, maxy = merc_bounds(z, xx, yy)
            pad = (maxx - minx) * 80 / EXT
            if not len(sindex.query(shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad))):
                empty = (yy, xx)
                break
        if empty:
            break
    assert empty is not None
    assert p.tile("WebMercatorQuad", z, *empty) == (None, "empty")
    path = p.tile_path("WebMercatorQuad", z, *empty)
    assert path.is_file() and path.stat().st_size == 0
    assert p.tile("WebMercatorQuad", z, *empty) == (None, "cached")


def test_tiles_out_of_range_are_not_found(demo_store):
    from pygeoapi.provider.tile import ProviderTileNotFoundError, ProviderTilesetIdNotFoundError

    p = StoreMVTProvider(provider_def(demo_store, "buildings", zoom={"min": 12, "max": 16}))
    for z, y, x in [(11, 0, 0), (17, 0, 0), (12, 4096, 0), (12, 0, 4096), (12, -1, 0),
                    ("a", 0, 0), (30, 0, 0)]:
        with pytest.raises(ProviderTileNotFoundError):
            p.get_tiles(tileset="WebMercatorQuad", z=z, y=y, x=x)
    with pytest.raises(ProviderTilesetIdNotFoundError) as err:
        p.get_tiles(tileset="WorldCRS84Quad", z=12, y=0, x=0)
    assert err.value.http_status_code == 404


def test_cache_serves_the_same_bytes_without_regenerating(demo_store, tmp_path, monkeypatch):
    d = provider_def(demo_store, "buildings", cache=str(tmp_path / "mvt"))
    lon, lat = centre_lonlat(demo_store, "buildings")
    x, y = merc_tile(lon, lat, 15)
    p = StoreMVTProvider(d)
    first, how = p.tile("WebMercatorQuad", 15, y, x)
    assert how == "generated"
    path = tmp_path / "mvt" / "buildings" / "WebMercatorQuad" / "15" / str(y) / f"{x}.pbf"
    assert path.read_bytes() == first
    mtime = path.stat().st_mtime_ns
    assert not [q for q in path.parent.iterdir() if q.name != path.name]  # no temp files left

    def boom(*args, **kwargs):
        raise AssertionError("regenerated a cached tile")

    monkeypatch.setattr(StoreMVTProvider, "_gpkg_tile", boom)
    again = StoreMVTProvider(d)  # pygeoapi builds a provider per request
    assert again.tile("WebMercatorQuad", 15, y, x) == (first, "cached")
    assert again.get_tiles(tileset="WebMercatorQuad", z=15, y=y, x=x) == first
    assert path.stat().st_mtime_ns == mtime


def test_cache_is_dropped_when_the_layer_changes(demo_store, tmp_path):
    from gis.store.base import VectorLayer
    from gis.store.geopackage import GeoPackageStore

    store_path = tmp_path / "basemap.gpkg"
    shutil.copyfile(demo_store, store_path)
    d = provider_def(store_path, "buildings", cache=str(tmp_path / "mvt"))
    lon, lat = centre_lonlat(store_path, "buildings")
    x, y = merc_tile(lon, lat, 14)
    before, _ = StoreMVTProvider(d).tile("WebMercatorQuad", 14, y, x)
    store = GeoPackageStore(store_path)
    few = store.read("buildings")
    inside = few.to_crs(3857).intersects(shapely.box(*merc_bounds(14, x, y)))
    few = few[inside.values].iloc[:7]
    store.write([VectorLayer("buildings", few, "building")], [], [store.record("buildings")])
    after, how = StoreMVTProvider(d).tile("WebMercatorQuad", 14, y, x)
    assert how == "generated" and after != before
    assert sorted(ft["id"] for ft in decode(after)["buildings"]["features"]) == sorted(
        range(1, 8))


def test_init_reads_the_store_once(demo_store, monkeypatch):
    StoreMVTProvider(provider_def(demo_store, "rail"))

    def boom(*args):
        raise AssertionError("layer description read again")

    monkeypatch.setattr(tiles_mod, "_load_gpkg_layer", boom)
    for _ in range(3):
        assert StoreMVTProvider(provider_def(demo_store, "rail")).get_layer() == "rail"


def test_bad_definitions_fail_to_connect(demo_store):
    from pygeoapi.provider.base import ProviderConnectionError

    for d in (provider_def(demo_store, "dem"), provider_def(demo_store, "nope"),
              provider_def(demo_store, "roads", schemes=["NZTM2000Quad"]),
              provider_def(Path(demo_store).with_name("missing.gpkg"), "roads"),
              {**provider_def(demo_store, "roads"), "options": {"zoom": {"min": 1, "max": 2}}}):
        with pytest.raises(ProviderConnectionError):
            StoreMVTProvider(d)


def test_metadata(demo_store):
    p = StoreMVTProvider(provider_def(demo_store, "buildings", zoom={"min": 12, "max": 17}))
    lon, lat = centre_lonlat(demo_store, "buildings")
    fields = p.get_fields()
    columns = pyogrio.read_info(demo_store, layer="buildings")["fields"]
    assert set(fields) == set(columns) - HEAVY
    assert fields["height"] == {"type": "number"} and fields["lod"] == {"type": "integer"}
    meta = p.get_metadata("buildings", "http://h", "buildings", "WebMercatorQuad", "json",
                          "Buildings", "All of them", ["b"])
    assert meta["crs"] == "http://www.opengis.net/def/crs/EPSG/0/3857"
    assert meta["tileMatrixSetURI"].endswith("/WebMercatorQuad")
    assert meta["layers"][0]["propertiesSchema"]["properties"] == fields
    assert meta["layers"][0]["geometryDimension"] == 2
    assert [m["tileMatrix"] for m in meta["tileMatrixSetLimits"]] == [str(z) for z in
                                                                      range(12, 18)]
    for lim in meta["tileMatrixSetLimits"]:
        x, y = merc_tile(lon, lat, int(lim["tileMatrix"]))
        assert lim["minTileCol"] <= x <= lim["maxTileCol"]
        assert lim["minTileRow"] <= y <= lim["maxTileRow"]
    from gis.store.geopackage import GeoPackageStore

    record = GeoPackageStore(demo_store).record("buildings")["extent"]["bbox"]
    box = meta["boundingBox"]["lowerLeft"] + meta["boundingBox"]["upperRight"]
    np.testing.assert_allclose(box, record, atol=1e-6)
    assert meta["boundingBox"]["crs"] == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    item = [link for link in meta["links"] if link["rel"] == "item"][0]
    assert item["href"] == ("http://h/collections/buildings/tiles/WebMercatorQuad/"
                            "{tileMatrix}/{tileRow}/{tileCol}?f=mvt")
    tj = p.get_metadata("buildings", "http://h", "buildings", "WebMercatorQuad", "tilejson",
                        "Buildings", "All of them")
    assert tj["tilejson"] == "3.0.0" and (tj["minzoom"], tj["maxzoom"]) == (12, 17)
    assert tj["tiles"] == ["http://h/collections/buildings/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt"]
    assert tj["vector_layers"][0]["id"] == "buildings"
    assert set(tj["vector_layers"][0]["fields"]) == set(fields)
    assert p.get_metadata("buildings", "http://h", "buildings", "WebMercatorQuad", None,
                          "B", "d")["dataType"] == "vector"  # no format asked: JSON
    html = p.get_metadata("buildings", "http://h", "buildings", "WebMercatorQuad", "html", "B", "d")
    assert html["tilejson_url"].endswith("metadata?f=tilejson")


def test_seed_tiles(demo_store, tmp_path):
    d = provider_def(demo_store, "crashes", cache=str(tmp_path), zoom={"min": 12, "max": 18})
    w, s, e, n = frame(demo_store, "crashes", 4326).total_bounds
    expected = 0
    for z in (13, 14):
        x0, y0 = merc_tile(w, n, z)
        x1, y1 = merc_tile(e, s, z)
        expected += (x1 - x0 + 1) * (y1 - y0 + 1)
    seen = []
    counts = seed_tiles(d, [13, 14], progress=lambda done, total: seen.append((done, total)))
    assert counts["total"] == expected == seen[-1][0] == seen[-1][1]
    assert counts["generated"] + counts["empty"] + counts["outside"] == expected
    assert counts["generated"] > 0 and counts["cached"] == 0
    files = list((tmp_path / "crashes" / "WebMercatorQuad").rglob("*.pbf"))
    assert len(files) == counts["generated"] + counts["empty"]
    again = seed_tiles(d, [13, 14])
    assert again["cached"] == len(files) and again["generated"] == 0
    with pytest.raises(ValueError, match="max_tiles"):
        seed_tiles(d, [17, 18], max_tiles=10)
    with pytest.raises(ValueError, match="zoom"):
        seed_tiles(d, [5])
    with pytest.raises(ValueError, match="cache"):
        seed_tiles(provider_def(demo_store, "crashes"), [13])


# -- through pygeoapi -------------------------------------------------------------------------
def test_through_pygeoapi(demo_store, tmp_path):
    import json

    import pygeoapi.api.tiles as tiles_api

    d = provider_def(demo_store, "buildings", cache=str(tmp_path), zoom={"min": 12, "max": 18})
    api = pygeoapi_api({"buildings": {
        "type": "collection", "title": "Buildings", "description": "b", "keywords": [],
        "extents": {"spatial": {"bbox": [120.6, 24.05, 120.63, 24.08]}}, "providers": [d]}})
    lon, lat = centre_lonlat(demo_store, "buildings")
    x, y = merc_tile(lon, lat, 15)
    headers, status, body = tiles_api.get_collection_tiles_data(
        api, api_request(api, f="mvt"), "buildings", "WebMercatorQuad", "15", str(y), str(x))
    assert status == 200 and headers["Content-Type"] == MVT["mimetype"]
    check_tile_against_store(demo_store, "buildings", body, merc_bounds(15, x, y))
    # quirk: without f=mvt (or an Accept header naming the MVT type) pygeoapi answers 400
    _, status, _ = tiles_api.get_collection_tiles_data(
        api, api_request(api), "buildings", "WebMercatorQuad", "15", str(y), str(x))
    assert status == 400
    _, status, _ = tiles_api.get_collection_tiles_data(
        api, api_request(api, f="mvt"), "buildings", "WebMercatorQuad", "15", "0", "0")
    assert status == 204
    _, status, _ = tiles_api.get_collection_tiles_data(
        api, api_request(api, f="mvt"), "buildings", "WebMercatorQuad", "11", "0", "0")
    assert status == 404
    _, status, _ = tiles_api.get_collection_tiles_data(
        api, api_request(api, f="mvt"), "buildings", "WorldCRS84Quad", "15", "0", "0")
    assert status == 404
    _, status, body = tiles_api.get_collection_tiles(api, api_request(api, f="json"), "buildings")
    assert status == 200
    body = json.loads(body)
    assert [t["tileMatrixSetURI"].rsplit("/", 1)[1] for t in body["tilesets"]] == [
        "WebMercatorQuad"]
    _, status, body = tiles_api.get_collection_tiles_metadata(
        api, api_request(api, f="tilejson"), "buildings", "WebMercatorQuad")
    assert status == 200 and json.loads(body)["maxzoom"] == 18


# -- PostGIS ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg_demo(postgis_url, demo_store):
    """The demo region ingested into a PostGIS schema (once for this module)."""
    import psycopg2

    from gis.etl.ingest import ingest, load_manifest

    schema = f"t_tiles_provider_{os.getpid()}"  # one per xdist worker
    con = psycopg2.connect(postgis_url)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    url = f"{postgis_url}?schema={schema}"
    ingest(url, load_manifest(Path(demo_store).parent / "source" / "manifest.json"))
    yield url
    with con.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    con.close()


@pytest.mark.parametrize("layer,z", [("buildings", 15), ("roads", 14), ("crashes", 14)])
def test_postgis_tiles_hold_the_same_features(pg_demo, demo_store, layer, z, tmp_path):
    lon, lat = centre_lonlat(demo_store, layer)
    x, y = merc_tile(lon, lat, z)
    p = StoreMVTProvider(provider_def(pg_demo, layer, cache=str(tmp_path)))
    data, how = p.tile("WebMercatorQuad", z, y, x)
    assert how == "generated"
    # the PostGIS store numbers features in the same order (fid 1..n), so the same reference
    check_tile_against_store(demo_store, layer, data, merc_bounds(z, x, y))
    assert StoreMVTProvider(provider_def(pg_demo, layer, cache=str(tmp_path))).tile(
        "WebMercatorQuad", z, y, x) == (data, "cached")
    assert p.tile("WebMercatorQuad", z, 0, 0) == (None, "outside")


def test_postgis_empty_tile_and_metadata(pg_demo, demo_store):
    p = StoreMVTProvider(provider_def(pg_demo, "buildings"))
    g = StoreMVTProvider(provider_def(demo_store, "buildings"))
    assert p.get_fields() == g.get_fields()
    a = p.get_metadata("b", "http://h", "buildings", "WebMercatorQuad", "json", "B", "d")
    b = g.get_metadata("b", "http://h", "buildings", "WebMercatorQuad", "json", "B", "d")
    assert a["tileMatrixSetLimits"] == b["tileMatrixSetLimits"]
    # a tile inside the layer extent holding nothing: an empty MVT is None (pygeoapi: 204)
    f = frame(demo_store, "buildings")
    z = 18
    w, s, e, n = frame(demo_store, "buildings", 4326).total_bounds
    x, y = merc_tile(w, n, z)
    for dx in range(0, 40):
        bounds = merc_bounds(z, x + dx, y)
        pad = (bounds[2] - bounds[0]) * 80 / EXT
        if not f.intersects(shapely.box(bounds[0] - pad, bounds[1] - pad, bounds[2] + pad,
                                        bounds[3] + pad)).any():
            assert p.tile("WebMercatorQuad", z, y, x + dx)[0] is None
            return
    pytest.fail("no empty tile found")


def test_cache_files_are_private_to_the_layer(demo_store, tmp_path):
    a = StoreMVTProvider(provider_def(demo_store, "roads", cache=str(tmp_path)))
    b = StoreMVTProvider(provider_def(demo_store, "rail", cache=str(tmp_path)))
    lon, lat = centre_lonlat(demo_store, "rail")
    x, y = merc_tile(lon, lat, 13)
    ra, rb = a.tile("WebMercatorQuad", 13, y, x)[0], b.tile("WebMercatorQuad", 13, y, x)[0]
    assert ra != rb
    assert list(decode(ra)) == ["roads"] and list(decode(rb)) == ["rail"]
    assert sorted(os.listdir(tmp_path)) == ["rail", "roads"]


def test_unwritable_cache_still_serves_tiles(demo_store, tmp_path):
    blocker = tmp_path / "mvt"
    d = provider_def(demo_store, "rail", cache=str(blocker))
    p = StoreMVTProvider(d)
    lon, lat = centre_lonlat(demo_store, "rail")
    x, y = merc_tile(lon, lat, 13)
    shutil.rmtree(blocker / "rail")
    (blocker / "rail").write_text("a file where the cache folder should be")
    data, how = p.tile("WebMercatorQuad", 13, y, x)
    assert how == "generated" and decode(data)["rail"]["features"]
    # a cache that cannot even be set up: tiles are served uncached
    (tmp_path / "file").write_text("not a folder")
    q = StoreMVTProvider(provider_def(demo_store, "roads", cache=str(tmp_path / "file" / "mvt")))
    assert q.cache is None
    assert q.tile("WebMercatorQuad", 13, y, x)[1] == "generated"
