"""StoreFeatureProvider against independent references.

The provider is built directly from provider definitions, as pygeoapi's ``load_plugin`` does, on
the generated demo store (GeoPackage) and on the same sources ingested into PostGIS. Every answer
is checked against geopandas on the whole layer (``pyogrio.read_dataframe`` + shapely predicates
+ pandas filtering and sorting), coordinates against pyproj, and the two backends against each
other. A last group runs requests through pygeoapi's own API code (no HTTP) to check how the
provider meets pygeoapi's bbox, CRS and filter handling.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import geopandas as gpd
import numpy as np
import psycopg2
import pyogrio
import pyproj
import pytest
import shapely
from pygeoapi.crs import create_crs_transform_spec
from pygeoapi.provider.base import ProviderItemNotFoundError, ProviderQueryError
from pygeofilter.parsers.cql2_json import parse as parse_json
from pygeofilter.parsers.cql2_text import parse as parse_text

from gis.server.providers.features import StoreFeatureProvider

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"
NAME = "gis.server.providers.features.StoreFeatureProvider"


def provider_def(data, table="buildings", srid=3826, **extra):
    crs = [CRS84, EPSG.format(4326), EPSG.format(srid)]
    return {"type": "feature", "name": NAME, "data": str(data), "table": table, "id_field": "fid",
            "storage_crs": EPSG.format(srid), "crs": crs, **extra}


def spec(pdef, crs=None):
    """What pygeoapi passes as ``crs_transform_spec`` for a request's ``crs`` parameter."""
    return create_crs_transform_spec(pdef, crs)


def ids(result):
    return [f["id"] for f in result["features"]]


@pytest.fixture(scope="module")
def gpkg(demo_store):
    return demo_store


@pytest.fixture(scope="module")
def pg(postgis_url, demo_store):
    """The demo sources ingested into a PostGIS schema of this module."""
    from gis.etl.ingest import ingest, load_manifest

    schema = f"t_features_provider_{os.getpid()}"  # one per pytest-xdist worker
    con = psycopg2.connect(postgis_url)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    url = f"{postgis_url}?schema={schema}"
    ingest(url, load_manifest(demo_store.parent / "source" / "manifest.json"))
    yield url
    with con.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    con.close()


@pytest.fixture(params=["gpkg", "postgis"])
def store(request):
    """Each test that takes ``store`` runs on both backends."""
    return request.getfixturevalue("gpkg" if request.param == "gpkg" else "pg")


_FRAMES: dict = {}


def frame(gpkg_path, layer="buildings") -> gpd.GeoDataFrame:
    """The reference: the whole layer read by GDAL, indexed by fid."""
    key = (str(gpkg_path), layer)
    if key not in _FRAMES:
        _FRAMES[key] = pyogrio.read_dataframe(gpkg_path, layer=layer, fid_as_index=True)
    return _FRAMES[key]


def random_boxes(gdf, n, half=(60.0, 400.0), seed=1):
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = gdf.total_bounds
    out = []
    for _ in range(n):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        h = rng.uniform(*half)
        out.append([cx - h, cy - h * rng.uniform(0.5, 1.5), cx + h, cy + h])
    return out


def query_all(p, **kw):
    return p.query(limit=100000, **kw)


# -- schema -------------------------------------------------------------------------------------

def test_fields_from_the_table_schema(store):
    p = StoreFeatureProvider(provider_def(store))
    f = p.get_fields()
    assert f["fid"] == {"type": "integer"}
    assert f["height"] == {"type": "number"} and f["storeys"] == {"type": "integer"}
    assert f["usage"] == {"type": "string"}
    assert "geom" not in f
    roads = StoreFeatureProvider(provider_def(store, "roads")).get_fields()
    assert roads["oneway"] == {"type": "boolean"} and roads["lanes"] == {"type": "integer"}
    media, schema = p.get_schema()
    assert media == "application/geo+json"
    assert schema["properties"]["properties"]["properties"]["height"] == {"type": "number"}
    assert "fid" not in schema["properties"]["properties"]["properties"]


def test_fields_are_copies_per_instance(gpkg):
    """pygeoapi's schema/queryables code writes into the field dicts it gets."""
    a = StoreFeatureProvider(provider_def(gpkg))
    a.fields["height"]["x-ogc-role"] = "id"
    assert StoreFeatureProvider(provider_def(gpkg)).fields["height"] == {"type": "number"}


def test_not_a_feature_table(gpkg):
    from pygeoapi.provider.base import ProviderConnectionError

    for table in ("dem", "ngis_catalog", "nope"):
        with pytest.raises(ProviderConnectionError):
            StoreFeatureProvider(provider_def(gpkg, table))


# -- bbox -----------------------------------------------------------------------------------------

def test_bbox_in_storage_crs_matches_geopandas(store, gpkg):
    gdf = frame(gpkg)
    p = StoreFeatureProvider(provider_def(store))
    for box in random_boxes(gdf, 25):
        want = sorted(gdf.index[gdf.intersects(shapely.box(*box))])
        got = query_all(p, bbox=box, skip_geometry=True)
        assert ids(got) == want
        assert got["numberMatched"] == len(want) == got["numberReturned"]
        hits = p.query(bbox=box, resulttype="hits")
        assert hits["numberMatched"] == len(want) and hits["features"] == []


def test_bbox_is_exact_not_envelope_hits(store, gpkg):
    """A box that meets the envelope of a diagonal road but not the road itself."""
    roads = frame(gpkg, "roads")
    p = StoreFeatureProvider(provider_def(store, "roads"))
    checked = 0
    for fid, geom in roads.geometry.items():
        x0, y0, x1, y1 = geom.bounds
        if x1 - x0 < 20 or y1 - y0 < 20:
            continue
        for cx, cy in ((x0 + 2, y0 + 2), (x1 - 2, y1 - 2), (x0 + 2, y1 - 2), (x1 - 2, y0 + 2)):
            box = shapely.box(cx - 1, cy - 1, cx + 1, cy + 1)
            if geom.intersects(box):
                continue
            got = ids(query_all(p, bbox=list(box.bounds), skip_geometry=True))
            assert fid not in got
            assert got == sorted(roads.index[roads.intersects(box)])
            checked += 1
        if checked > 10:
            break
    assert checked > 3


def test_bbox_without_area(store, gpkg):
    """A zero-width box is a line (or a point): what it touches, not nothing."""
    gdf = frame(gpkg)
    p = StoreFeatureProvider(provider_def(store))
    geom = gdf.geometry.iloc[40]
    x = geom.centroid.x
    for box, shape in (([x, 2661000.0, x, 2664000.0], shapely.LineString([(x, 2661000),
                                                                          (x, 2664000)])),
                       ([geom.centroid.x, geom.centroid.y] * 2, geom.centroid)):
        want = sorted(gdf.index[gdf.intersects(shape)])
        assert want and ids(query_all(p, bbox=box, skip_geometry=True)) == want


def test_paging_covers_the_set_once(store, gpkg):
    gdf = frame(gpkg)
    p = StoreFeatureProvider(provider_def(store))
    box = [210400, 2661600, 211300, 2662500]
    want = sorted(gdf.index[gdf.intersects(shapely.box(*box))])
    assert len(want) > 200
    seen = []
    for offset in range(0, len(want) + 50, 37):
        page = p.query(bbox=box, offset=offset, limit=37, skip_geometry=True)
        assert page["numberMatched"] == len(want)
        seen += ids(page)
    assert seen == want


def densified(box, src, dst, n=200):
    """A box of ``src`` as a polygon of ``dst`` (many points per edge)."""
    tr = pyproj.Transformer.from_crs(src, dst, always_xy=True)
    ring = shapely.box(*box).exterior
    ring = shapely.segmentize(ring, max((box[2] - box[0]), (box[3] - box[1])) / n)
    xy = np.array(ring.coords)
    return shapely.Polygon(np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def test_bbox_in_crs84_and_4326(store, gpkg):
    """``bbox_crs``: a lon/lat box is a curved area in TWD97; EPSG:4326 boxes are lat/lon."""
    gdf = frame(gpkg)
    p = StoreFeatureProvider(provider_def(store))
    to84 = pyproj.Transformer.from_crs(3826, "OGC:CRS84", always_xy=True)
    for box in random_boxes(gdf, 15, seed=3):
        b84 = list(to84.transform_bounds(*box))
        area = densified(b84, "OGC:CRS84", 3826)
        want = sorted(gdf.index[gdf.intersects(area)])
        got = ids(query_all(p, bbox=b84, bbox_crs=CRS84, skip_geometry=True))
        assert got == want
        latlon = [b84[1], b84[0], b84[3], b84[2]]
        got = query_all(p, bbox=latlon, bbox_crs=EPSG.format(4326), skip_geometry=True)
        assert ids(got) == want


# -- coordinates ---------------------------------------------------------------------------------

def test_output_crs_against_pyproj(store, gpkg):
    gdf = frame(gpkg)
    pdef = provider_def(store)
    p = StoreFeatureProvider(pdef)
    box = [210800, 2662000, 211000, 2662200]
    fc84 = p.query(bbox=box, limit=50, crs_transform_spec=spec(pdef))  # no crs: CRS84
    fc4326 = p.query(bbox=box, limit=50, crs_transform_spec=spec(pdef, EPSG.format(4326)))
    fc3826 = p.query(bbox=box, limit=50, crs_transform_spec=spec(pdef, EPSG.format(3826)))
    assert spec(pdef, EPSG.format(3826)) is None  # storage CRS: pygeoapi passes no spec
    to84 = pyproj.Transformer.from_crs(3826, "OGC:CRS84", always_xy=True)
    assert len(fc84["features"]) > 10
    for f84, f4326, f3826 in zip(fc84["features"], fc4326["features"], fc3826["features"]):
        geom = gdf.geometry[f84["id"]]
        xy = np.array(geom.exterior.coords)
        lon, lat = to84.transform(xy[:, 0], xy[:, 1])
        got84 = np.array(f84["geometry"]["coordinates"][0])
        np.testing.assert_allclose(got84, np.column_stack([lon, lat]), atol=1.01e-7, rtol=0)
        np.testing.assert_allclose(np.array(f4326["geometry"]["coordinates"][0]),
                                   np.column_stack([lat, lon]), atol=1.01e-7, rtol=0)
        np.testing.assert_allclose(np.array(f3826["geometry"]["coordinates"][0]), xy,
                                   atol=1.01e-3, rtol=0)
        # rounded: 7 decimals for degrees, 3 for metres
        assert all(round(v, 7) == v for v in got84.ravel())
        assert f84["geometry"]["type"] == "Polygon"


def test_lines_points_and_always_xy(store, gpkg):
    pdef = provider_def(store, "roads")
    p = StoreFeatureProvider(pdef)
    roads = frame(gpkg, "roads")
    fc = p.query(limit=5, crs_transform_spec=spec(pdef))
    to84 = pyproj.Transformer.from_crs(3826, "OGC:CRS84", always_xy=True)
    for f in fc["features"]:
        xy = np.array(roads.geometry[f["id"]].coords)
        assert f["geometry"]["type"] == "LineString"
        np.testing.assert_allclose(np.array(f["geometry"]["coordinates"]),
                                   np.column_stack(to84.transform(xy[:, 0], xy[:, 1])),
                                   atol=1.01e-7, rtol=0)
        assert isinstance(f["properties"]["oneway"], bool)
    pts = StoreFeatureProvider(provider_def(store, "crashes"))
    crashes = frame(gpkg, "crashes")
    xy_spec = spec(dict(pdef, always_xy=True), EPSG.format(4326))
    for f in pts.query(limit=5, crs_transform_spec=xy_spec)["features"]:
        pt = crashes.geometry[f["id"]]
        assert f["geometry"]["type"] == "Point"
        np.testing.assert_allclose(f["geometry"]["coordinates"], to84.transform(pt.x, pt.y),
                                   atol=1.01e-7, rtol=0)


def test_northing_first_layer(tmp_path):
    """A JGD2011 plane-rectangular layer (EPSG:6677: X north, Y east): stored x/y = east/north,
    requests and responses in the CRS's own axis order."""
    rng = np.random.default_rng(5)
    e = rng.uniform(-5000, 5000, 300)
    n = rng.uniform(-30000, -20000, 300)
    gdf = gpd.GeoDataFrame({"kind": rng.choice(["a", "b"], 300)},
                           geometry=shapely.buffer(shapely.points(e, n), 5, quad_segs=2),
                           crs="EPSG:6677")
    path = tmp_path / "jp.gpkg"
    pyogrio.write_dataframe(gdf, path, layer="buildings", layer_options={"SPATIAL_INDEX": "YES"})
    ref = pyogrio.read_dataframe(path, layer="buildings", fid_as_index=True)
    pdef = provider_def(path, srid=6677)
    p = StoreFeatureProvider(pdef)
    box_en = [-1000.0, -26000.0, 2000.0, -24000.0]  # east/north
    want = sorted(ref.index[ref.intersects(shapely.box(*box_en))])
    assert 5 < len(want) < 300
    box_ne = [box_en[1], box_en[0], box_en[3], box_en[2]]  # as pygeoapi passes it: north first
    got = query_all(p, bbox=box_ne, crs_transform_spec=spec(pdef, EPSG.format(6677)))
    assert ids(got) == want
    f = got["features"][0]
    ring = np.array(ref.geometry[f["id"]].exterior.coords)
    np.testing.assert_allclose(np.array(f["geometry"]["coordinates"][0]), ring[:, ::-1],
                               atol=1.01e-3)
    fc = p.query(bbox=box_ne, limit=1, crs_transform_spec=spec(pdef))
    lon, lat = pyproj.Transformer.from_crs(6677, "OGC:CRS84", always_xy=True).transform(
        ring[:, 0], ring[:, 1])
    np.testing.assert_allclose(np.array(fc["features"][0]["geometry"]["coordinates"][0]),
                               np.column_stack([lon, lat]), atol=1.01e-7)


# -- attributes ----------------------------------------------------------------------------------

def test_property_filters(store, gpkg):
    gdf = frame(gpkg)
    p = StoreFeatureProvider(provider_def(store))
    cases = [([("usage", "residential")], gdf.usage == "residential"),
             ([("usage", "commercial"), ("storeys", "2")],
              (gdf.usage == "commercial") & (gdf.storeys == 2)),
             ([("roof_type", "flat"), ("height", "6.5")],
              (gdf.roof_type == "flat") & (gdf.height == 6.5)),
             ([("usage", "no such use")], gdf.usage == "x")]
    for props, mask in cases:
        got = query_all(p, properties=props, skip_geometry=True)
        assert ids(got) == sorted(gdf.index[mask.fillna(False)])
        assert got["numberMatched"] == int(mask.fillna(False).sum())
    roads = frame(gpkg, "roads")
    r = StoreFeatureProvider(provider_def(store, "roads"))
    assert ids(query_all(r, properties=[("oneway", "true")])) == sorted(roads.index[roads.oneway])
    with pytest.raises(ProviderQueryError):
        p.query(properties=[("storeys", "two")])
    with pytest.raises(ProviderQueryError):
        p.query(properties=[("nope", "1")])


def reference_sort(gdf, keys):
    """pandas: each key ascending/descending with nulls last, then fid ascending."""
    out = gdf.copy()
    out["_fid"] = out.index
    for name, asc in reversed([*keys, ("_fid", True)]):
        out = out.sort_values(name, ascending=asc, na_position="last", kind="stable")
    return list(out.index)


def test_sortby(store, gpkg):
    gdf = frame(gpkg)
    p = StoreFeatureProvider(provider_def(store))
    for sortby, keys in [
            ([{"property": "height", "order": "-"}], [("height", False)]),
            ([{"property": "usage", "order": "+"}, {"property": "height", "order": "-"}],
             [("usage", True), ("height", False)]),
            ([{"property": "name", "order": "+"}], [("name", True)]),
            ([{"property": "storeys", "order": "-"}, {"property": "roof_type", "order": "+"}],
             [("storeys", False), ("roof_type", True)])]:
        want = reference_sort(gdf, keys)
        assert ids(p.query(limit=100000, sortby=sortby, skip_geometry=True)) == want
        page = p.query(offset=50, limit=25, sortby=sortby, skip_geometry=True)
        assert ids(page) == want[50:75]
    box = [210400, 2661600, 211300, 2662500]
    sub = gdf[gdf.intersects(shapely.box(*box))]
    got = p.query(bbox=box, limit=30, sortby=[{"property": "year_built", "order": "-"}])
    assert ids(got) == reference_sort(sub, [("year_built", False)])[:30]
    with pytest.raises(ProviderQueryError):
        p.query(sortby=[{"property": "nope", "order": "+"}])


def test_select_properties_and_skip_geometry(store):
    p = StoreFeatureProvider(provider_def(store))
    fc = p.query(limit=3, select_properties=["height", "usage"], skip_geometry=True)
    for f in fc["features"]:
        assert f["geometry"] is None
        assert set(f["properties"]) == {"height", "usage"}
    full = p.query(limit=1)["features"][0]
    assert "fid" not in full["properties"] and "id" in full["properties"]
    assert full["geometry"]["type"] == "Polygon"
    with pytest.raises(ProviderQueryError):
        p.query(select_properties=["nope"])


def test_q_search(store, gpkg):
    gdf = frame(gpkg)
    p = StoreFeatureProvider(provider_def(store))
    text = gdf.drop(columns="geometry").select_dtypes(exclude="number")
    text = text[[c for c in text.columns if c in ("id", "name", "roof_type", "usage", "structure",
                                                  "source", "lineage")]]

    def contains(term):
        return text.apply(lambda c: c.str.lower().str.contains(term, regex=False)).any(axis=1)

    got = ids(query_all(p, q="school", skip_geometry=True))
    assert got == sorted(gdf.index[contains("school")]) and got
    got = ids(query_all(p, q="SHELTER,religious", skip_geometry=True))
    assert got == sorted(gdf.index[contains("shelter") | contains("religious")])


def test_get(store, gpkg):
    gdf = frame(gpkg)
    pdef = provider_def(store)
    p = StoreFeatureProvider(pdef)
    fid = int(gdf.index[123])
    f = p.get(str(fid), crs_transform_spec=spec(pdef))
    assert f["id"] == fid and f["type"] == "Feature"
    assert f["properties"]["id"] == gdf.loc[fid, "id"]
    assert f == p.query(bbox=list(gdf.geometry[fid].bounds), limit=1000,
                        crs_transform_spec=spec(pdef))["features"][
        ids(p.query(bbox=list(gdf.geometry[fid].bounds), limit=1000)).index(fid)]
    for missing in ("999999", "abc", "1.5", "-1"):
        with pytest.raises(ProviderItemNotFoundError):
            p.get(missing)


# -- CQL2 ----------------------------------------------------------------------------------------

def to_3826(geom_84):
    tr = pyproj.Transformer.from_crs("OGC:CRS84", 3826, always_xy=True)
    return shapely.transform(geom_84, lambda x, y: tr.transform(x, y), interleaved=False)


# (CQL2 text, pandas/geopandas mask on the buildings frame)
CQL_CASES = [
    ("height > 10", lambda g: g.height > 10),
    ("height >= 10 AND usage = 'commercial'",
     lambda g: (g.height >= 10) & (g.usage == "commercial")),
    ("usage = 'industrial' OR storeys = 5", lambda g: (g.usage == "industrial") | (g.storeys == 5)),
    ("NOT (usage = 'residential')", lambda g: g.usage.notna() & (g.usage != "residential")),
    ("usage <> 'residential'", lambda g: g.usage.notna() & (g.usage != "residential")),
    ("height < 4.5 AND NOT (roof_type = 'flat') AND NOT (roof_type = 'gable')",
     lambda g: (g.height < 4.5) & ~g.roof_type.isin(["flat", "gable"])),
    ("name LIKE 'Dacun%'", lambda g: g.name.str.startswith("Dacun").fillna(False)),
    ("name LIKE '%Shelter _'", lambda g: g.name.str.fullmatch(r".*Shelter .").fillna(False)),
    ("name LIKE '%school'", lambda g: g.name.str.endswith("school").fillna(False)),  # case!
    ("name LIKE '%School'", lambda g: g.name.str.endswith("School").fillna(False)),
    ("name NOT LIKE 'Dacun C%'",
     lambda g: g.name.notna() & ~g.name.str.startswith("Dacun C").fillna(True)),
    ("CASEI(name) LIKE '%school%'",
     lambda g: g.name.str.lower().str.contains("school").fillna(False)),
    ("roof_type IN ('dome', 'pyramid')", lambda g: g.roof_type.isin(["dome", "pyramid"])),
    ("storeys NOT IN (1, 2, 3)", lambda g: g.storeys.notna() & ~g.storeys.isin([1, 2, 3])),
    ("height BETWEEN 5 AND 7.5", lambda g: g.height.between(5, 7.5)),
    ("year_built NOT BETWEEN 1980 AND 2010",
     lambda g: g.year_built.notna() & ~g.year_built.between(1980, 2010)),
    ("name IS NULL", lambda g: g.name.isna()),
    ("name IS NOT NULL", lambda g: g.name.notna()),
    ("ridge_direction IS NULL AND height > 8", lambda g: g.ridge_direction.isna() & (g.height > 8)),
    ("height / storeys > 4", lambda g: (g.height / g.storeys) > 4),
    ("storey_height * storeys + roof_height > 12",
     lambda g: g.storey_height * g.storeys + g.roof_height > 12),
    ("S_INTERSECTS(geometry, POLYGON((120.61 24.055, 120.625 24.056, 120.62 24.068, "
     "120.61 24.055)))",
     lambda g: g.intersects(to_3826(shapely.Polygon(
         [(120.61, 24.055), (120.625, 24.056), (120.62, 24.068)])))),
    ("S_WITHIN(geometry, POLYGON((120.61 24.055, 120.625 24.056, 120.62 24.068, 120.61 24.055)))",
     lambda g: g.within(to_3826(shapely.Polygon(
         [(120.61, 24.055), (120.625, 24.056), (120.62, 24.068)])))),
    ("S_INTERSECTS(geometry, BBOX(120.615, 24.06, 120.622, 24.066)) AND usage = 'residential'",
     lambda g: g.intersects(densified([120.615, 24.06, 120.622, 24.066], "OGC:CRS84", 3826))
     & (g.usage == "residential")),
    ("NOT S_INTERSECTS(geometry, BBOX(120.615, 24.06, 120.622, 24.066)) AND height > 12",
     lambda g: ~g.intersects(densified([120.615, 24.06, 120.622, 24.066], "OGC:CRS84", 3826))
     & (g.height > 12)),
    ("S_DISJOINT(geometry, BBOX(120.615, 24.06, 120.622, 24.066)) AND height > 12",
     lambda g: g.disjoint(densified([120.615, 24.06, 120.622, 24.066], "OGC:CRS84", 3826))
     & (g.height > 12)),
    ("S_INTERSECTS(geometry, POINT(120.6204755 24.0644777)) OR height > 30",
     lambda g: g.intersects(to_3826(shapely.Point(120.6204755, 24.0644777))) | (g.height > 30)),
    ("BBOX(geometry, 120.615, 24.06, 120.622, 24.066)",
     lambda g: g.intersects(densified([120.615, 24.06, 120.622, 24.066], "OGC:CRS84", 3826))),
]


@pytest.mark.parametrize("text,mask", CQL_CASES, ids=[c[0][:50] for c in CQL_CASES])
def test_cql2_text(store, gpkg, text, mask):
    gdf = frame(gpkg)
    p = StoreFeatureProvider(provider_def(store))
    want = sorted(gdf.index[mask(gdf).fillna(False).astype(bool)])
    got = query_all(p, filterq=parse_text(text), skip_geometry=True)
    assert ids(got) == want
    assert got["numberMatched"] == len(want)
    if len(want) > 10:
        page = p.query(filterq=parse_text(text), offset=3, limit=5)
        assert ids(page) == want[3:8] and page["numberMatched"] == len(want)


def test_cql2_json(store, gpkg):
    gdf = frame(gpkg)
    p = StoreFeatureProvider(provider_def(store))
    box84 = [120.615, 24.06, 120.622, 24.066]
    cases = [
        ({"op": "and", "args": [{"op": ">", "args": [{"property": "height"}, 9]},
                                {"op": "in", "args": [{"property": "usage"},
                                                      ["commercial", "mixed"]]}]},
         (gdf.height > 9) & gdf.usage.isin(["commercial", "mixed"])),
        ({"op": "like", "args": [{"property": "name"}, "%Shelter%"]},
         gdf.name.str.contains("Shelter").fillna(False)),
        ({"op": "isNull", "args": [{"property": "name"}]}, gdf.name.isna()),
        # NOT over OR (pygeofilter's CQL2-text grammar cannot say this one)
        ({"op": "and", "args": [
            {"op": "<", "args": [{"property": "height"}, 4.5]},
            {"op": "not", "args": [{"op": "or", "args": [
                {"op": "=", "args": [{"property": "roof_type"}, "flat"]},
                {"op": "=", "args": [{"property": "roof_type"}, "gable"]}]}]}]},
         (gdf.height < 4.5) & gdf.roof_type.notna() & ~gdf.roof_type.isin(["flat", "gable"])),
        # {"bbox": [...]} literal: pygeofilter 0.4.0 scrambles its axes (pygeofilter#163)
        ({"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": box84}]},
         gdf.intersects(densified(box84, "OGC:CRS84", 3826))),
        ({"op": "s_intersects", "args": [{"property": "geometry"}, {
            "type": "Polygon", "coordinates": [[[120.61, 24.055], [120.625, 24.056],
                                                [120.62, 24.068], [120.61, 24.055]]]}]},
         gdf.intersects(to_3826(shapely.Polygon([(120.61, 24.055), (120.625, 24.056),
                                                 (120.62, 24.068)])))),
    ]
    for doc, mask in cases:
        got = ids(query_all(p, filterq=parse_json(json.dumps(doc)), skip_geometry=True))
        assert got == sorted(gdf.index[mask.fillna(False)]), doc
        assert got


def test_cql2_filter_crs_and_tagged_literals(store, gpkg):
    """Literals in ``filter_crs``, or carrying their CRS (as pygeoapi tags the literals it has
    moved to the storage CRS) are not transformed twice."""
    gdf = frame(gpkg)
    p = StoreFeatureProvider(provider_def(store))
    poly = "POLYGON((210500 2661500, 211200 2661600, 211000 2662300, 210500 2661500))"
    want = sorted(gdf.index[gdf.intersects(shapely.from_wkt(poly))])
    assert want
    assert ids(query_all(p, filterq=parse_text(f"S_INTERSECTS(geometry, {poly})"),
                         filter_crs=EPSG.format(3826), skip_geometry=True)) == want
    assert ids(query_all(p, filterq=parse_text(f"S_INTERSECTS(geometry, SRID=3826;{poly})"),
                         skip_geometry=True)) == want


def test_cql2_values_are_bound_and_names_checked(store, gpkg):
    gdf = frame(gpkg)
    p = StoreFeatureProvider(provider_def(store))
    evil = "x' OR 1=1; DROP TABLE buildings; --"
    assert ids(query_all(p, filterq=parse_json(json.dumps(
        {"op": "=", "args": [{"property": "usage"}, evil]})))) == []
    with pytest.raises(ProviderQueryError):
        p.query(filterq=parse_json(json.dumps(
            {"op": "=", "args": [{"property": 'usage" OR 1=1 --'}, "x"]})))
    with pytest.raises(ProviderQueryError):
        p.query(properties=[('usage" OR 1=1 --', "x")])
    assert query_all(p, skip_geometry=True)["numberMatched"] == len(gdf)
    bad = [
        "nope = 1",                                     # unknown property
        '"height; DROP TABLE buildings" = 1',          # not a property either
        "height = 'tall'",                             # type mismatch
        "usage > 3",
        "DWITHIN(geometry, POINT(120.6 24.06), 10, meters)",   # unsupported predicate
        "usage = 'a' AND T_AFTER(year_built, TIMESTAMP('2020-01-01T00:00:00Z'))",
        "S_INTERSECTS(usage, POINT(120.6 24.06))",     # not the geometry
        "S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))",  # invalid literal
        "geometry = 3",
        "upper(height) = 'A'",
    ]
    for text in bad:
        try:
            node = parse_text(text)
        except Exception:
            continue  # pygeofilter itself refuses it: pygeoapi answers 400 before us
        with pytest.raises(ProviderQueryError):
            p.query(filterq=node)


# -- the two backends -----------------------------------------------------------------------------

def test_geopackage_and_postgis_agree(gpkg, pg):
    a = StoreFeatureProvider(provider_def(gpkg))
    b = StoreFeatureProvider(provider_def(pg))
    pdef = provider_def(gpkg)
    queries = [dict(bbox=box) for box in random_boxes(frame(gpkg), 8, seed=9)] + [
        dict(filterq=parse_text("height > 9 AND NOT (usage = 'residential')")),
        dict(filterq=parse_text("name LIKE '%o%' OR ridge_direction IS NULL AND storeys = 3")),
        dict(sortby=[{"property": "name", "order": "-"}, {"property": "height", "order": "+"}]),
        dict(properties=[("usage", "mixed")], sortby=[{"property": "year_built", "order": "+"}]),
        dict(q="dacun"),
    ]
    for kw in queries:
        for crs in (None, EPSG.format(4326)):
            ra = a.query(limit=60, offset=5, crs_transform_spec=spec(pdef, crs), **kw)
            rb = b.query(limit=60, offset=5, crs_transform_spec=spec(pdef, crs), **kw)
            assert ra["numberMatched"] == rb["numberMatched"]
            assert ra["features"] == rb["features"], kw


# -- concurrency and caching ------------------------------------------------------------------

def test_concurrent_queries_equal_serial_ones(store, gpkg):
    pdef = provider_def(store)
    boxes = random_boxes(frame(gpkg), 64, half=(50, 250), seed=11)
    crss = [None, EPSG.format(4326), EPSG.format(3826)]
    jobs = [(box, crss[i % 3]) for i, box in enumerate(boxes)]

    def run(job):
        box, crs = job
        return StoreFeatureProvider(pdef).query(bbox=box, limit=100,
                                                crs_transform_spec=spec(pdef, crs))

    serial = [run(j) for j in jobs]
    with ThreadPoolExecutor(16) as pool:
        for _ in range(3):
            assert list(pool.map(run, jobs)) == serial


def test_replaced_store_is_reread(tmp_path, gpkg):
    path = tmp_path / "store.gpkg"
    shutil.copyfile(gpkg, path)
    p = StoreFeatureProvider(provider_def(path))
    n = p.query(resulttype="hits")["numberMatched"]
    gdf = frame(gpkg).iloc[:10]
    tmp = tmp_path / "new.gpkg"
    pyogrio.write_dataframe(gdf, tmp, layer="buildings", layer_options={"SPATIAL_INDEX": "YES"})
    os.replace(tmp, path)
    assert StoreFeatureProvider(provider_def(path)).query(resulttype="hits")["numberMatched"] == 10
    assert n > 10


# -- through pygeoapi's API code ----------------------------------------------------------------

def pygeoapi_items(pdef, item=None, body=None, **params):
    """GET /collections/buildings/items (or one item, or a POST with a CQL2-JSON body) through
    pygeoapi's own request handling (no HTTP)."""
    from urllib.parse import urlencode

    from pygeoapi.api import API, APIRequest
    from pygeoapi.api.itemtypes import get_collection_item, get_collection_items
    from starlette.requests import Request

    config = {
        "server": {"url": "http://localhost", "mimetype": "application/json",
                   "encoding": "utf-8", "languages": ["en-US"], "limits": {"default_items": 10,
                                                                            "max_items": 1000},
                   "map": {"url": "x", "attribution": "x"}},
        "logging": {"level": "ERROR"},
        "metadata": {"identification": {"title": "t", "description": "d", "keywords": [],
                                        "terms_of_service": "", "url": "http://x"},
                     "license": {"name": "x"}, "provider": {"name": "x"},
                     "contact": {"name": "x"}},
        "resources": {"buildings": {
            "type": "collection", "title": "b", "description": "b", "keywords": [],
            "extents": {"spatial": {"bbox": [120, 23, 122, 25], "crs": CRS84}},
            "providers": [pdef]}},
    }
    api = API(config, {})
    scope = {"type": "http", "method": "GET", "path": "/collections/buildings/items",
             "query_string": urlencode({"f": "json", **params}).encode(), "headers": []}
    req = APIRequest(Request(scope), ["en-US"])
    if body is not None:
        req._data = json.dumps(body).encode()
    if item is not None:
        headers, status, out = get_collection_item(api, req, "buildings", item)
    else:
        headers, status, out = get_collection_items(api, req, "buildings")
    return status, headers, json.loads(out)


def test_through_pygeoapi(gpkg):
    gdf = frame(gpkg)
    pdef = provider_def(gpkg)
    to84 = pyproj.Transformer.from_crs(3826, "OGC:CRS84", always_xy=True)
    box = [210800, 2662000, 211000, 2662200]
    b84 = to84.transform_bounds(*box)
    status, headers, fc = pygeoapi_items(pdef, bbox=",".join(map(str, b84)), limit=500)
    assert status == 200 and headers["Content-Crs"] == f"<{CRS84}>"
    # pygeoapi moves the bbox to the storage CRS by two corners: a box of TWD97
    lower = to84.transform(b84[0], b84[1], direction="INVERSE")
    upper = to84.transform(b84[2], b84[3], direction="INVERSE")
    area = shapely.box(*lower, *upper)
    assert [f["id"] for f in fc["features"]] == sorted(gdf.index[gdf.intersects(area)])
    assert fc["numberMatched"] == len(fc["features"])
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0][0]
    assert 120 < lon < 122 and 23 < lat < 25

    status, _, fc2 = pygeoapi_items(pdef, bbox=",".join(map(str, b84)), limit=500,
                                    crs=EPSG.format(4326))
    assert status == 200
    lat2, lon2 = fc2["features"][0]["geometry"]["coordinates"][0][0]
    assert (lat2, lon2) == (lat, lon)

    status, _, fc3 = pygeoapi_items(pdef, filter="height > 10 AND usage = 'commercial'",
                                    sortby="-height", limit=1000)
    want = reference_sort(gdf[(gdf.height > 10) & (gdf.usage == "commercial")], [("height", False)])
    assert status == 200 and [f["id"] for f in fc3["features"]] == want

    status, _, fc4 = pygeoapi_items(
        pdef, filter="S_INTERSECTS(geometry, POLYGON((120.61 24.055, 120.625 24.056, "
                     "120.62 24.068, 120.61 24.055)))", limit=1000, skipGeometry="true")
    poly = to_3826(shapely.Polygon([(120.61, 24.055), (120.625, 24.056), (120.62, 24.068)]))
    assert status == 200 and [f["id"] for f in fc4["features"]] == sorted(
        gdf.index[gdf.intersects(poly)])

    box84 = [120.615, 24.06, 120.622, 24.066]
    status, _, fc5 = pygeoapi_items(pdef, body={
        "op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": box84}]}, limit=1000)
    assert status == 200 and [f["id"] for f in fc5["features"]] == sorted(
        gdf.index[gdf.intersects(densified(box84, "OGC:CRS84", 3826))])

    fid = fc["features"][0]["id"]
    status, _, one = pygeoapi_items(pdef, item=str(fid), crs=EPSG.format(4326))
    assert status == 200 and one["geometry"] == fc2["features"][0]["geometry"]
    status, _, _ = pygeoapi_items(pdef, item="123456789")
    assert status == 404

    status, _, err = pygeoapi_items(pdef, filter="nope = 3")
    assert status == 400 and "nope" in err["description"]
    status, _, err = pygeoapi_items(pdef, usage="residential", storeys="two")
    assert status == 400


def test_random_queries_fuzz(store, gpkg):
    """Random combinations of bbox, properties, CQL and sorting against geopandas."""
    gdf = frame(gpkg)
    p = StoreFeatureProvider(provider_def(store))
    rnd = random.Random(7)
    uses = sorted(gdf.usage.dropna().unique())
    for box in random_boxes(gdf, 12, half=(100, 600), seed=13):
        use = rnd.choice(uses)
        h = round(rnd.uniform(3, 15), 1)
        cql = f"usage = '{use}' OR height > {h}"
        mask = gdf.intersects(shapely.box(*box)) & ((gdf.usage == use) | (gdf.height > h))
        sortby = [{"property": rnd.choice(["height", "year_built", "usage"]),
                   "order": rnd.choice("+-")}]
        keys = [(sortby[0]["property"], sortby[0]["order"] == "+")]
        want = reference_sort(gdf[mask.fillna(False)], keys)
        got = p.query(bbox=box, filterq=parse_text(cql), sortby=sortby, limit=40, offset=2,
                      skip_geometry=True)
        assert ids(got) == want[2:42] and got["numberMatched"] == len(want)
        assert re.fullmatch(r"\d+", str(got["numberMatched"]))


def test_cached_transform_bbox_equals_pygeoapis():
    from pygeoapi.crs import transform_bbox as stock

    from gis.server.providers.features import transform_bbox

    for bbox, src, dst in [([120.6, 24.0, 120.7, 24.1], CRS84, EPSG.format(3826)),
                           ([24.0, 120.6, 24.1, 120.7], EPSG.format(4326), EPSG.format(3826)),
                           ([210000, 2660000, 212000, 2662000], EPSG.format(3826), CRS84),
                           ([-170, -89, 170, 89], CRS84, EPSG.format(3857)),
                           ([120.6, 24.0, 0, 120.7, 24.1, 10], CRS84, EPSG.format(3826))]:
        assert transform_bbox(bbox, src, dst) == stock(bbox, src, dst)
        assert transform_bbox(bbox, src, dst) == stock(bbox, src, dst)  # cached
