"""The catalogue records provider: each search compared with filtering ``store.catalog()`` in
plain Python; record shape; paging; pygeoapi's records API; PostGIS."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from pygeoapi.provider.base import (
    ProviderConnectionError,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
)
from server_helpers import api_request, pygeoapi_api

from gis.server.providers.records import CatalogRecordsProvider
from gis.store import open_store


def provider_def(data, **options):
    d = {"type": "record", "name": "gis.server.providers.records.CatalogRecordsProvider",
         "data": str(data), "id_field": "id", "time_field": "updated", "title_field": "title"}
    if options:
        d["options"] = options
    return d


def ids(result) -> list[str]:
    return [f["id"] for f in result["features"]]


def catalog(store) -> list[dict]:
    return open_store(str(store)).catalog()


def text_match(rec, q: str) -> bool:
    """Reference q: every term a case-insensitive substring of title, abstract or a keyword."""
    fields = [rec["title"], rec["abstract"], *rec["keywords"]]
    return all(any(term.lower() in f.lower() for f in fields)
               for term in q.replace(",", " ").split())


def test_every_catalogue_record_as_an_ogc_record(demo_store):
    p = CatalogRecordsProvider(provider_def(demo_store, base_url="http://srv"))
    recs = catalog(demo_store)
    result = p.query(limit=100)
    assert result["numberMatched"] == result["numberReturned"] == len(recs) == 6
    by_id = {f["id"]: f for f in result["features"]}
    for rec in recs:
        f = by_id[rec["id"]]
        assert f["type"] == "Feature"
        assert f["conformsTo"] == [
            "http://www.opengis.net/spec/ogcapi-records-1/1.0/req/record-core"]
        w, s, e, n = rec["extent"]["bbox"]
        assert f["geometry"] == {"type": "Polygon",
                                 "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
        props = f["properties"]
        assert props["type"] == "dataset"
        assert props["title"] == rec["title"] and props["description"] == rec["abstract"]
        assert props["keywords"] == rec["keywords"]
        assert props["themes"][0]["concepts"] == [{"id": rec["topic_category"]}]
        assert props["created"] == rec["created"] and props["updated"] == rec["updated"]
        assert props["ngis:access_grade"] == rec["access_grade"]
        assert props["ngis:charge_class"] == rec["charge_class"]
        assert props["ngis:crs"] == rec["crs"] and props["ngis:lineage"] == rec["lineage"]
        assert props["ngis:feature_count"] == rec["feature_count"]
        assert props["rights"] == rec["licence"]
        assert props["contacts"][0]["name"] == rec["custodian"]["name"]
        describes = [link for link in f["links"] if link["rel"] == "describes"]
        assert describes[0]["href"] == f"http://srv/collections/{rec['id']}"
        rels = {link["rel"] for link in f["links"]}
        if rec["feature_count"] is None:
            assert "http://www.opengis.net/def/rel/ogc/1.0/coverage" in rels
        else:
            assert "items" in rels
        assert p.get(rec["id"]) == f
    json.dumps(result, allow_nan=False)


@pytest.mark.parametrize("q", ["demo", "BUILDINGS", "synthetic road", "roads, demo",
                               "elevation DEM", "pipelines underground nothing-like-this",
                               "height", "crash 2021"])
def test_q_matches_a_plain_python_filter(demo_store, q):
    p = CatalogRecordsProvider(provider_def(demo_store))
    want = [r["id"] for r in catalog(demo_store) if text_match(r, q)]
    got = p.query(q=q, limit=100)
    assert ids(got) == want
    assert got["numberMatched"] == len(want)


def test_q_is_case_insensitive_and_needs_every_term(demo_store):
    p = CatalogRecordsProvider(provider_def(demo_store))
    assert ids(p.query(q="DEMO")) == ids(p.query(q="demo"))
    assert len(ids(p.query(q="demo"))) == 6
    assert ids(p.query(q="demo buildings")) == ["buildings"]
    assert ids(p.query(q="buildings roads")) == []


@pytest.mark.parametrize("bbox", [[120.60, 24.04, 120.61, 24.05], [120.62, 24.06, 120.63, 24.07],
                                  [121.0, 25.0, 121.1, 25.1], [120.635, 24.03, 120.7, 24.1],
                                  [120.60, 24.04, 120.61, 24.05, 0, 100]])
def test_bbox_matches_a_plain_python_filter(demo_store, bbox):
    b = bbox if len(bbox) == 4 else [bbox[0], bbox[1], bbox[3], bbox[4]]

    def meets(rec):
        w, s, e, n = rec["extent"]["bbox"]
        return not (w > b[2] or e < b[0] or s > b[3] or n < b[1])

    p = CatalogRecordsProvider(provider_def(demo_store))
    assert ids(p.query(bbox=bbox, limit=100)) == [r["id"] for r in catalog(demo_store) if meets(r)]


@pytest.mark.parametrize("props", [
    [("keywords", "demo")], [("keywords", "DEMO,building")], [("keywords", "elevation")],
    [("type", "dataset")], [("ngis:access_grade", "public")], [("ngis:charge_class", "premium")],
    [("ngis:access_grade", "agency"), ("ngis:charge_class", "standard")],
    [("ngis:topic_category", "transportation")], [("ngis:feature_count", "6")],
    [("title", "roads (synthetic demo)")], [("ngis:crs", "EPSG:3826")]])
def test_property_filters_match_a_plain_python_filter(demo_store, props):
    source = {"type": lambda r: "dataset", "title": lambda r: r["title"],
              "keywords": lambda r: r["keywords"],
              "ngis:access_grade": lambda r: r["access_grade"],
              "ngis:charge_class": lambda r: r["charge_class"],
              "ngis:topic_category": lambda r: r["topic_category"],
              "ngis:feature_count": lambda r: r["feature_count"],
              "ngis:crs": lambda r: r["crs"]}

    def ok(rec, name, value):
        have = source[name](rec)
        if isinstance(have, list):
            return all(v.lower() in [h.lower() for h in have] for v in value.split(","))
        return have is not None and str(have).lower() == value.lower()

    p = CatalogRecordsProvider(provider_def(demo_store))
    want = [r["id"] for r in catalog(demo_store) if all(ok(r, k, v) for k, v in props)]
    assert ids(p.query(properties=props, limit=100)) == want
    assert want or props == [("ngis:access_grade", "agency"), ("ngis:charge_class", "standard")]


def test_filters_combine(demo_store):
    p = CatalogRecordsProvider(provider_def(demo_store))
    recs = catalog(demo_store)
    want = [r["id"] for r in recs if r["access_grade"] == "public" and text_match(r, "demo")
            and r["extent"]["bbox"][0] <= 120.62]
    got = p.query(q="demo", properties=[("ngis:access_grade", "public")],
                  bbox=[120.60, 24.0, 120.62, 24.1], limit=100)
    assert ids(got) == want and len(want) >= 2


def test_paging_sorting_and_hits(demo_store):
    p = CatalogRecordsProvider(provider_def(demo_store))
    every = [r["id"] for r in catalog(demo_store)]
    page1 = p.query(limit=4, offset=0)
    page2 = p.query(limit=4, offset=4)
    assert ids(page1) + ids(page2) == every
    assert page1["numberMatched"] == page2["numberMatched"] == 6
    assert (page1["numberReturned"], page2["numberReturned"]) == (4, 2)
    hits = p.query(resulttype="hits")
    assert hits["numberMatched"] == 6 and hits["features"] == []
    by_title = sorted(catalog(demo_store), key=lambda r: r["title"].lower(), reverse=True)
    assert ids(p.query(sortby=[{"property": "title", "order": "-"}], limit=10)) == [
        r["id"] for r in by_title]
    by_count = sorted((r for r in catalog(demo_store) if r["feature_count"] is not None),
                      key=lambda r: r["feature_count"])
    got = ids(p.query(sortby=[{"property": "ngis:feature_count", "order": "+"}], limit=10))
    assert got[:5] == [r["id"] for r in by_count] and got[5] == "dem"  # no count: last


def test_select_properties_and_skip_geometry(demo_store):
    p = CatalogRecordsProvider(provider_def(demo_store))
    f = p.query(select_properties=["title", "ngis:access_grade"], skip_geometry=True)["features"][0]
    assert set(f["properties"]) == {"title", "ngis:access_grade"}
    assert f["geometry"] is None


def test_datetime_on_the_time_field(demo_store):
    p = CatalogRecordsProvider(provider_def(demo_store))
    updated = catalog(demo_store)[0]["updated"]
    assert len(ids(p.query(datetime_=f"{updated}/..", limit=100))) == 6
    assert ids(p.query(datetime_="../2000-01-01T00:00:00Z")) == []
    assert len(ids(p.query(datetime_=updated, limit=100))) == 6
    assert len(ids(p.query(datetime_=updated[:10], limit=100))) == 6
    with pytest.raises(ProviderInvalidQueryError):
        p.query(datetime_="yesterday")


def test_get_and_not_found(demo_store):
    p = CatalogRecordsProvider(provider_def(demo_store))
    assert p.get("dem")["properties"]["ngis:resolution"] == 10.0
    with pytest.raises(ProviderItemNotFoundError) as err:
        p.get("nothing")
    assert err.value.http_status_code == 404


def test_bad_queries(demo_store):
    p = CatalogRecordsProvider(provider_def(demo_store))
    with pytest.raises(ProviderInvalidQueryError):
        p.query(properties=[("colour", "red")])
    with pytest.raises(ProviderInvalidQueryError, match="CQL2"):
        p.query(filterq=object())
    with pytest.raises(ProviderConnectionError):
        CatalogRecordsProvider(provider_def(Path(demo_store).with_name("missing.gpkg")))


def test_grades_option_hides_records(demo_store):
    p = CatalogRecordsProvider(provider_def(demo_store, grades=["public"]))
    want = [r["id"] for r in catalog(demo_store) if r["access_grade"] == "public"]
    assert ids(p.query(limit=100)) == want and "pipelines" not in want
    with pytest.raises(ProviderItemNotFoundError):
        p.get("pipelines")


def test_catalogue_changes_are_seen(demo_store, tmp_path):
    from gis.store.geopackage import GeoPackageStore

    store = tmp_path / "basemap.gpkg"
    shutil.copyfile(demo_store, store)
    p = CatalogRecordsProvider(provider_def(store))
    assert "Renamed" not in json.dumps(p.query(limit=100))
    rec = dict(GeoPackageStore(store).record("rail"), title="Renamed railways")
    GeoPackageStore(store).write([], [], [rec])
    again = CatalogRecordsProvider(provider_def(store))
    assert again.get("rail")["properties"]["title"] == "Renamed railways"
    assert ids(again.query(q="renamed")) == ["rail"]


def test_fields_and_domains(demo_store):
    p = CatalogRecordsProvider(provider_def(demo_store))
    fields = p.fields
    assert fields["keywords"]["type"] == "array"
    assert fields["updated"] == {"type": "string", "format": "date-time", "title": "Last update"}
    fields["updated"].pop("format")  # pygeoapi's OpenAPI builder does this: no harm done
    assert p.fields["updated"]["format"] == "date-time"
    domains, current = p.get_domains(["ngis:access_grade", "keywords"])
    assert current and domains["ngis:access_grade"] == ["agency", "public", "restricted"]
    assert "demo" in domains["keywords"]


# -- through pygeoapi -------------------------------------------------------------------------
def test_through_pygeoapi(demo_store):
    import pygeoapi.api.itemtypes as it_api

    api = pygeoapi_api({"catalog": {
        "type": "collection", "title": "Catalogue", "description": "c", "keywords": [],
        "extents": {"spatial": {"bbox": [120.6, 24.04, 120.65, 24.09]}},
        "providers": [provider_def(demo_store)]}})

    def items(**params):
        _, status, body = it_api.get_collection_items(api, api_request(api, f="json", **params),
                                                      "catalog")
        assert status == 200, body
        return json.loads(body)

    recs = catalog(demo_store)
    assert ids(items(q="demo roads")) == [r["id"] for r in recs if text_match(r, "demo roads")]
    got = items(**{"ngis:access_grade": "public", "keywords": "demo"})
    assert ids(got) == [r["id"] for r in recs if r["access_grade"] == "public"]
    got = items(bbox="120.635,24.03,120.7,24.1")
    assert ids(got) == [r["id"] for r in recs if r["extent"]["bbox"][2] >= 120.635
                        and r["extent"]["bbox"][0] <= 120.7 and r["extent"]["bbox"][1] <= 24.1
                        and r["extent"]["bbox"][3] >= 24.03]
    assert 0 < len(ids(got)) < 6
    page = items(limit="2", offset="2")
    assert ids(page) == [r["id"] for r in recs][2:4] and page["numberMatched"] == 6
    assert {"next", "prev"} <= {link["rel"] for link in page["links"]}
    _, status, body = it_api.get_collection_item(api, api_request(api, f="json"), "catalog",
                                                 "buildings")
    assert status == 200 and json.loads(body)["properties"]["title"] == recs[0]["title"]
    _, status, _ = it_api.get_collection_item(api, api_request(api, f="json"), "catalog", "nope")
    assert status == 404
    _, status, body = it_api.get_collection_queryables(api, api_request(api, f="json"), "catalog")
    assert status == 200
    q = json.loads(body)["properties"]
    assert q["updated"]["x-ogc-role"] == "primary-instant" and "ngis:access_grade" in q
    _, status, _ = it_api.get_collection_items(api, api_request(api, f="html"), "catalog")
    assert status == 200


# -- PostGIS ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg_demo(postgis_url, demo_store):
    """The demo region ingested into a PostGIS schema (once for this module)."""
    import psycopg2

    from gis.etl.ingest import ingest, load_manifest

    schema = f"t_records_provider_{os.getpid()}"  # one per xdist worker
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


def test_postgis_catalogue(pg_demo):
    p = CatalogRecordsProvider(provider_def(pg_demo))
    recs = catalog(pg_demo)
    assert ids(p.query(limit=100)) == [r["id"] for r in recs]
    for q in ("demo", "buildings", "terrain elevation"):
        assert ids(p.query(q=q, limit=100)) == [r["id"] for r in recs if text_match(r, q)]
    assert ids(p.query(properties=[("ngis:access_grade", "restricted")])) == ["pipelines"]
    assert p.get("dem")["properties"]["ngis:resolution"] == 10.0
    with pytest.raises(ProviderItemNotFoundError):
        p.get("nope")
