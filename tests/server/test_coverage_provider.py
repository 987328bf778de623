"""The DEM coverage provider, against rasterio reading the GeoPackage gridded coverage directly
(and the store's own raster reader); CoverageJSON and GeoTIFF outputs; the cell limit; pygeoapi's
coverage API; PostGIS rasters; and why pygeoapi's stock rasterio provider is not used."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pyproj
import pytest
import rasterio
from affine import Affine
from pygeoapi.provider.base import ProviderConnectionError, ProviderInvalidQueryError
from pyproj import CRS
from rasterio.io import MemoryFile
from rasterio.windows import Window, from_bounds
from server_helpers import api_request, pygeoapi_api

from gis.server.providers import coverage as coverage_mod
from gis.server.providers.coverage import CoverageTooLargeError, StoreCoverageProvider

GTIFF = {"name": "GTiff", "mimetype": "image/tiff"}


def provider_def(data, table="dem", **options):
    return {"type": "coverage", "name": "gis.server.providers.coverage.StoreCoverageProvider",
            "data": str(data), "options": {"table": table, **options}, "format": dict(GTIFF)}


def reference(store, window: Window) -> np.ndarray:
    """rasterio straight on the GeoPackage gridded coverage."""
    with rasterio.open(f"GPKG:{store}:dem") as src:
        return src.read(1, window=window)


def values(cov) -> np.ndarray:
    r = cov["ranges"]["elevation"]
    return np.array([np.nan if v is None else v for v in r["values"]],
                    dtype="float64").reshape(r["shape"])


def check_domain(cov, transform: Affine, window: Window):
    """Axes are cell centres of the window's cells, y from north to south."""
    axes = cov["domain"]["axes"]
    c0, r0, w, h = (int(window.col_off), int(window.row_off), int(window.width),
                    int(window.height))
    x0, y0 = transform @ (c0 + 0.5, r0 + 0.5)
    x1, y1 = transform @ (c0 + w - 0.5, r0 + h - 0.5)
    assert axes["x"] == {"start": x0, "stop": x1, "num": w}
    assert axes["y"] == {"start": y0, "stop": y1, "num": h}


def test_aligned_subset_equals_a_direct_read(demo_store):
    p = StoreCoverageProvider(provider_def(demo_store))
    cov = p.query(subsets={"x": [211000, 211100], "y": [2662000, 2662050]}, format_="json")
    with rasterio.open(f"GPKG:{demo_store}:dem") as src:
        window = from_bounds(211000, 2662000, 211100, 2662050, src.transform)
        transform = src.transform
    window = Window(*(round(v) for v in (window.col_off, window.row_off, window.width,
                                         window.height)))
    assert (window.width, window.height) == (10, 5)
    ref = reference(demo_store, window)
    # nine significant digits in the JSON: the same float32 values, exactly
    assert np.array_equal(values(cov).astype("float32"), ref)
    check_domain(cov, transform, window)


def test_unaligned_and_point_subsets_take_every_cell_they_meet(demo_store):
    from gis.store.geopackage import GeoPackageStore

    dem = GeoPackageStore(demo_store).read_raster("dem")
    t = dem.transform
    p = StoreCoverageProvider(provider_def(demo_store))
    rows, cols = dem.shape
    lefts = t.c + np.arange(cols) * t.a
    tops = t.f + np.arange(rows) * t.e
    for (xa, xb), (ya, yb) in [((211003.0, 211017.0), (2662001.0, 2662039.5)),
                               ((209990.0, 210011.0), (2663985.0, 2664100.0)),
                               ((213999.0, 214500.0), (2659000.0, 2660000.5))]:
        cov = p.query(subsets={"x": [xa, xb], "y": [ya, yb]})
        cs = np.flatnonzero((lefts < xb) & (lefts + t.a > xa))
        rs = np.flatnonzero((tops > ya) & (tops + t.e < yb))
        want = dem.data[rs[0]:rs[-1] + 1, cs[0]:cs[-1] + 1]
        assert np.array_equal(values(cov).astype("float32"), want)
        check_domain(cov, t, Window(cs[0], rs[0], len(cs), len(rs)))
    # a point: the one cell holding it
    cov = p.query(subsets={"x": [211005.5], "y": [2662004.5]})
    col, row = int((211005.5 - t.c) // t.a), int((t.f - 2662004.5) // -t.e)
    assert values(cov).astype("float32").tolist() == [[dem.data[row, col]]]


def test_lonlat_subset_and_bbox(demo_store):
    p = StoreCoverageProvider(provider_def(demo_store))
    w, s, e, n = 120.61, 24.06, 120.612, 24.061
    by_subset = p.query(subsets={"Lon": [w, e], "Lat": [s, n]})
    by_bbox = p.query(bbox=[w, s, e, n])
    by_uri = p.query(bbox=[w, s, e, n], bbox_crs="http://www.opengis.net/def/crs/OGC/1.3/CRS84")
    assert by_subset == by_bbox == by_uri
    # the window is the cells meeting the lon/lat box projected to TWD97
    tr = pyproj.Transformer.from_crs("OGC:CRS84", 3826, always_xy=True)
    minx, miny, maxx, maxy = tr.transform_bounds(w, s, e, n, densify_pts=21)
    expected = p.query(subsets={"x": [minx, maxx], "y": [miny, maxy]})
    assert expected == by_bbox
    axes = by_bbox["domain"]["axes"]
    assert axes["x"]["start"] - 5 <= minx + 10 and axes["x"]["stop"] + 5 >= maxx - 10
    # a bbox in the store CRS, by EPSG URI, is the x/y subset
    a = p.query(bbox=[211000, 2662000, 211100, 2662050],
                bbox_crs="http://www.opengis.net/def/crs/EPSG/0/3826")
    b = p.query(subsets={"x": [211000, 211100], "y": [2662000, 2662050]})
    assert a == b


def test_geotiff_output(demo_store):
    p = StoreCoverageProvider(provider_def(demo_store))
    tif = p.query(subsets={"x": [211000, 211100], "y": [2662000, 2662050]}, format_="GTiff")
    assert p.filename == "dem.tif"
    with MemoryFile(tif) as mem, mem.open() as ds:
        assert ds.driver == "GTiff" and ds.count == 1 and ds.dtypes == ("float32",)
        assert ds.crs.to_epsg() == 3826
        assert ds.transform == Affine(10, 0, 211000, 0, -10, 2662050)
        assert np.isnan(ds.nodata)
        got = ds.read(1)
    with rasterio.open(f"GPKG:{demo_store}:dem") as src:
        win = from_bounds(211000, 2662000, 211100, 2662050, src.transform).round_offsets() \
            .round_lengths()
        assert np.array_equal(got, src.read(1, window=win))
    # no parameters: the whole DEM as a GeoTIFF (never the GeoPackage file itself)
    whole = p.query(format_="GTiff")
    assert whole[:4] == b"II*\x00"
    with MemoryFile(whole) as mem, mem.open() as ds, rasterio.open(f"GPKG:{demo_store}:dem") as src:
        assert (ds.width, ds.height, ds.transform) == (src.width, src.height, src.transform)
        assert np.array_equal(ds.read(1), src.read(1))


def test_covjson_structure_and_nodata(tmp_path):
    from gis.store.base import RasterLayer
    from gis.store.geopackage import GeoPackageStore

    data = np.linspace(0, 500, 300 * 520, dtype="float32").reshape(300, 520)
    data[:256, :256] = np.nan      # a whole GeoPackage tile of no data
    data[270:280, 300:310] = np.nan
    t = Affine(20, 0, 250000, 0, -20, 2742000)
    store = tmp_path / "s.gpkg"
    GeoPackageStore(store).write([], [RasterLayer("dem", CRS.from_epsg(3826), t, data.shape,
                                                  lambda: iter([((0, 0), data)]))],
                                 [{"id": "dem", "title": "DEM", "access_grade": "public"}])
    p = StoreCoverageProvider(provider_def(store, table=None))  # the only raster: found
    assert p.table == "dem"
    cov = p.query(subsets={"x": [250000 + 20 * 250, 250000 + 20 * 320],
                           "y": [2742000 - 20 * 290, 2742000 - 20 * 240]})
    assert cov["type"] == "Coverage"
    dom = cov["domain"]
    assert dom["type"] == "Domain" and dom["domainType"] == "Grid"
    assert set(dom["axes"]) == {"x", "y"}
    assert dom["referencing"] == [{"coordinates": ["x", "y"], "system": {
        "type": "ProjectedCRS", "id": "http://www.opengis.net/def/crs/EPSG/0/3826"}}]
    assert list(cov["parameters"]) == list(cov["ranges"]) == ["elevation"]
    param = cov["parameters"]["elevation"]
    assert param["type"] == "Parameter" and param["unit"]["symbol"]["value"] == "m"
    assert param["observedProperty"]["label"]["en"] == "Elevation"
    rng = cov["ranges"]["elevation"]
    assert rng["type"] == "NdArray" and rng["dataType"] == "float"
    assert rng["axisNames"] == ["y", "x"] and rng["shape"] == [50, 70]
    assert len(rng["values"]) == 50 * 70
    want = data[240:290, 250:320]
    got = values(cov)
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.isnan(want).sum() > 100
    assert np.array_equal(got.astype("float32"), want, equal_nan=True)
    json.dumps(cov, allow_nan=False)  # nulls, never NaN, in the JSON
    check_domain(cov, t, Window(250, 240, 70, 50))


def test_cell_limit_is_a_clear_400(demo_store):
    p = StoreCoverageProvider(provider_def(demo_store, max_cells=1000))
    with pytest.raises(CoverageTooLargeError) as err:
        p.query()
    assert err.value.http_status_code == 400
    assert "160000 cells" in err.value.message and "1000" in err.value.message
    with pytest.raises(CoverageTooLargeError):
        p.query(format_="GTiff")
    assert p.query(subsets={"x": [211000, 211300], "y": [2662000, 2662300]})  # 900 cells


@pytest.mark.parametrize("kwargs,match", [
    ({"subsets": {"x": [0, 10]}}, "does not meet"),
    ({"subsets": {"x": [211000, 211100], "Lat": [24.0, 24.1]}}, "not both"),
    ({"subsets": {"x": [211000, 211100]}, "bbox": [120.6, 24.0, 120.7, 24.1]}, "exclusive"),
    ({"subsets": {"time": [1, 2]}}, "axis"),
    ({"subsets": {"x": [211100, 211000]}}, "low <= high"),
    ({"properties": ["height"]}, "elevation"),
    ({"bbox": [120.6, 24.0, 120.7, 24.1], "bbox_crs": "EPSG:99999"}, "CRS"),
])
def test_bad_queries_are_400(demo_store, kwargs, match):
    p = StoreCoverageProvider(provider_def(demo_store))
    with pytest.raises(ProviderInvalidQueryError, match=match) as err:
        p.query(**kwargs)
    assert err.value.http_status_code == 400


def test_description(demo_store):
    p = StoreCoverageProvider(provider_def(demo_store))
    with rasterio.open(f"GPKG:{demo_store}:dem") as src:
        assert p._coverage_properties["width"] == src.width
        assert p._coverage_properties["height"] == src.height
        assert (p._coverage_properties["resx"], p._coverage_properties["resy"]) == src.res
        assert p._coverage_properties["bbox"] == list(src.bounds)
    assert p.fields["elevation"]["type"] == "number"
    assert p.axes == ["x", "y", "Lon", "Lat"]
    ds = p.get_coverage_domainset()
    assert ds["generalGrid"]["srsName"] == "http://www.opengis.net/def/crs/EPSG/0/3826"
    assert ds["generalGrid"]["gridLimits"]["axis"][0]["upperBound"] == 399
    assert p.get_coverage_rangetype()["field"][0]["uom"]["code"] == "m"
    for bad in (provider_def(demo_store, "buildings"), provider_def(demo_store, "nope"),
                provider_def(Path(demo_store).with_name("missing.gpkg"))):
        with pytest.raises(ProviderConnectionError):
            StoreCoverageProvider(bad)


def test_init_reads_the_grid_once(demo_store, monkeypatch):
    StoreCoverageProvider(provider_def(demo_store))

    def boom(*args):
        raise AssertionError("grid read again")

    monkeypatch.setattr(coverage_mod, "_load_gpkg_grid", boom)
    assert StoreCoverageProvider(provider_def(demo_store)).grid.width == 400


def test_why_not_the_stock_rasterio_provider(demo_store):
    """pygeoapi's rasterio provider opens the GeoPackage and reads the right cells, but asked for
    GeoTIFF without a subset it sends the whole GeoPackage (every layer, the catalogue)."""
    from pygeoapi.provider.rasterio_ import RasterioProvider

    stock = RasterioProvider({"name": "rasterio", "type": "coverage", "data": str(demo_store),
                              "format": dict(GTIFF)})
    ours = StoreCoverageProvider(provider_def(demo_store))
    sub = {"x": [211000, 211100], "y": [2662000, 2662050]}
    a, b = stock.query(subsets=sub, format_="json"), ours.query(subsets=sub, format_="json")
    assert np.array_equal(np.float32(list(a["ranges"].values())[0]["values"]),
                          np.float32(b["ranges"]["elevation"]["values"]))
    assert list(a["ranges"]) == [None]                     # its band has no name
    assert a["domain"]["axes"]["x"]["start"] == 211000     # a cell edge, not a centre
    assert stock.query(format_="GTiff")[:15] == b"SQLite format 3"
    stock._data.close()


# -- through pygeoapi -------------------------------------------------------------------------
def test_through_pygeoapi(demo_store):
    import pygeoapi.api as core
    import pygeoapi.api.coverages as cov_api

    api = pygeoapi_api({"dem": {
        "type": "collection", "title": "DEM", "description": "d", "keywords": [],
        "extents": {"spatial": {"bbox": [120.6, 24.04, 120.65, 24.09]}},
        "providers": [provider_def(demo_store, max_cells=50_000)]}})
    h, status, body = cov_api.get_collection_coverage(
        api, api_request(api, subset="x(211000:211100),y(2662000:2662050)"), "dem")
    assert status == 200 and h["Content-Type"] == "application/prs.coverage+json"
    assert json.loads(body)["ranges"]["elevation"]["shape"] == [5, 10]
    h, status, body = cov_api.get_collection_coverage(
        api, api_request(api, f="GTiff", subset="Lon(120.61:120.612),Lat(24.06:24.061)"), "dem")
    assert status == 200 and h["Content-Type"] == "image/tiff" and body[:4] == b"II*\x00"
    assert 'filename="dem.tif"' in h["Content-Disposition"]
    h, status, body = cov_api.get_collection_coverage(
        api, api_request(api, bbox="120.61,24.06,120.612,24.061",
                         **{"bbox-crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}), "dem")
    assert status == 200
    _, status, body = cov_api.get_collection_coverage(api, api_request(api), "dem")
    assert status == 400 and "limit of 50000" in json.loads(body)["description"]
    _, status, _ = cov_api.get_collection_coverage(api, api_request(api, subset="x(0:10)"), "dem")
    assert status == 400
    _, status, _ = cov_api.get_collection_coverage(api, api_request(api, subset="z(0:10)"), "dem")
    assert status == 400
    _, status, body = core.describe_collections(api, api_request(api, f="json"), "dem")
    assert status == 200
    assert json.loads(body)["extent"]["spatial"]["grid"] == [
        {"cellsCount": 400, "resolution": 10.0}, {"cellsCount": 400, "resolution": 10.0}]


# -- PostGIS ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg_demo(postgis_url, demo_store):
    """The demo region ingested into a PostGIS schema (once for this module)."""
    import psycopg2

    from gis.etl.ingest import ingest, load_manifest

    schema = f"t_coverage_provider_{os.getpid()}"  # one per xdist worker
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


def test_postgis_raster_agrees_with_the_geopackage(pg_demo, demo_store):
    pg = StoreCoverageProvider(provider_def(pg_demo))
    gp = StoreCoverageProvider(provider_def(demo_store))
    assert pg._coverage_properties == gp._coverage_properties
    t = gp.grid.transform
    # across the 256-cell raster tile seams in both directions, and one corner tile
    seam_x, seam_y = t.c + 256 * t.a, t.f + 256 * t.e
    for sub in ({"x": [seam_x - 75, seam_x + 42], "y": [seam_y - 33, seam_y + 61]},
                {"x": [213950, 214000], "y": [2660000, 2660040]},
                {"Lon": [120.61, 120.62], "Lat": [24.05, 24.07]}):
        a, b = pg.query(subsets=sub), gp.query(subsets=sub)
        assert a == b
        window = gp._window(sub, [], None)
        assert np.array_equal(values(a).astype("float32"), reference(demo_store, window))
    assert pg.query(format_="GTiff") == gp.query(format_="GTiff")
    with pytest.raises(ProviderInvalidQueryError):
        pg.query(subsets={"x": [0, 1]})
    assert math.isclose(pg.grid.res[0], 10.0)


def test_json_values_read_back_as_the_same_float32():
    from gis.server.providers.coverage import float32_digits

    rng = np.random.default_rng(7)
    data = np.concatenate([rng.uniform(-500, 4000, 20000), rng.uniform(8, 16, 20000),
                           rng.uniform(0, 1e-3, 2000), [0.0, -0.0, 1e-30, 3.4e38, np.nan]])
    data = data.astype("float32")
    out = float32_digits(data)
    back = np.array([json.loads(json.dumps(v)) for v in out.tolist()], dtype="float64")
    assert np.array_equal(back.astype("float32"), data, equal_nan=True)
    typical = out[np.isfinite(out) & (np.abs(out) >= 1e-3) & (np.abs(out) < 1e5)]
    assert max(len(repr(v)) for v in typical.tolist()) <= 12  # short, unlike float32 -> float64
