"""Real OGC API clients against the running server: GDAL's OAPIF driver (``ogrinfo``, Debian
gdal-bin) and OWSLib (Features, Records, Processes). Answers are checked against the store read
directly with pyogrio, and the process against models.exposure run in-process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pyogrio
import pytest
import shapely
from pyproj import Transformer

from gis.store import open_store
from models.exposure import exposure


def _ogrinfo():
    exe = shutil.which("ogrinfo")
    if exe is None:
        if os.environ.get("NGIS_REQUIRE_BROWSER") == "1" or os.environ.get("CI"):
            pytest.fail("ogrinfo missing: .ci/run installs gdal-bin")
        pytest.skip("ogrinfo missing (apt-get install gdal-bin)")
    return exe


def _bbox_lonlat(store_path, frac=0.15):
    """A small bbox (CRS84) in the middle of the buildings."""
    info = pyogrio.read_info(store_path, layer="buildings")
    x0, y0, x1, y1 = info["total_bounds"]
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * frac, (y1 - y0) * frac
    tr = Transformer.from_crs(info["crs"], "OGC:CRS84", always_xy=True)
    (lon0, lon1), (lat0, lat1) = tr.transform([cx - w, cx + w], [cy - h, cy + h])
    return (lon0, lat0, lon1, lat1), (cx - w, cy - h, cx + w, cy + h)


def _store_ids_in(store_path, box_local):
    frame = pyogrio.read_dataframe(store_path, layer="buildings", fid_as_index=True)
    return {int(i) for i in frame.index[frame.intersects(shapely.box(*box_local))]}


def test_ogrinfo_lists_collections_and_reads_items(server):
    exe = _ogrinfo()
    env = {**os.environ, "GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "OFF"}
    out = subprocess.run([exe, "-ro", "-q", f"OAPIF:{server.url}"], capture_output=True,
                         text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    for layer in ("buildings", "roads", "rail", "pipelines", "crashes"):
        assert layer in out.stdout, out.stdout
    # Read a bbox of buildings as GDAL does (paging through items), and compare with the store.
    (lon0, lat0, lon1, lat1), box_local = _bbox_lonlat(server.store)
    out = subprocess.run(["ogr2ogr", "-f", "GeoJSON", "/vsistdout/", f"OAPIF:{server.url}",
                          "buildings", "-spat", str(lon0), str(lat0), str(lon1), str(lat1)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    features = json.loads(out.stdout)["features"]
    got = {f["properties"]["id"] for f in features}  # the standard's building id
    frame = pyogrio.read_dataframe(server.store, layer="buildings")
    expected = set(frame["id"][frame.intersects(shapely.box(*box_local))])
    # GDAL filters again on the client with the CRS84 envelope, which is not exactly the box in
    # TWD97 it came from: compare the bulk, and demand nothing the store does not hold there.
    assert len(expected) > 10
    assert got <= set(frame["id"][frame.intersects(shapely.box(*box_local).buffer(50))])
    assert len(got & expected) >= 0.9 * len(expected)
    assert {"id", "height", "storeys", "roof_type"} <= set(features[0]["properties"])


def test_owslib_features(server):
    from owslib.ogcapi.features import Features

    api = Features(server.url, timeout=120)
    assert {"buildings", "roads", "pipelines"} <= set(api.feature_collections())
    # A ~1.2 km box: big enough that its corners alone, reprojected, make a different rectangle.
    (lon0, lat0, lon1, lat1), box_local = _bbox_lonlat(server.store, frac=0.3)
    expected = _store_ids_in(server.store, box_local)
    # Page through a bbox with limit/offset until done; numberMatched is exact.
    got, offset = [], 0
    while True:
        page = api.collection_items("buildings", bbox=[lon0, lat0, lon1, lat1], limit=50,
                                    offset=offset)
        got += [f["id"] for f in page["features"]]
        if len(page["features"]) < 50:
            break
        offset += 50
    # The server's box is the CRS84 box; the store box is the TWD97 box it came from: equal up to
    # the curvature of the edges, so compare against both the exact reprojected box ...
    tr = Transformer.from_crs("OGC:CRS84", pyogrio.read_info(server.store,
                                                             layer="buildings")["crs"],
                              always_xy=True)
    ring = shapely.segmentize(shapely.box(lon0, lat0, lon1, lat1), 1e-4)
    xy = shapely.get_coordinates(ring)
    local = shapely.Polygon(list(zip(*tr.transform(xy[:, 0], xy[:, 1]))))
    frame = pyogrio.read_dataframe(server.store, layer="buildings", fid_as_index=True)
    exact = {int(i) for i in frame.index[frame.intersects(local)]}
    (a, b), (c, d) = (tr.transform(lon0, lat0), tr.transform(lon1, lat1))
    corners = {int(i) for i in frame.index[frame.intersects(shapely.box(a, b, c, d))]}
    assert corners != exact  # so the comparison below tells exact from approximate
    assert sorted(int(i) for i in got) == sorted(exact)
    assert page["numberMatched"] == len(exact)
    assert len(exact ^ expected) <= 0.05 * len(expected)  # ... and the original, loosely
    one = api.collection_item("buildings", str(got[0]))
    assert one["id"] == got[0] and one["geometry"]["type"] in ("Polygon", "MultiPolygon")
    # Property filter and sortby.
    tall = api.collection_items("buildings", limit=5, sortby=("height", "desc"))
    heights = [f["properties"]["height"] for f in tall["features"]]
    assert heights == sorted(frame["height"].dropna(), reverse=True)[:5]


def test_owslib_records(server):
    from owslib.ogcapi.records import Records

    api = Records(server.url, timeout=120)
    assert "catalog" in api.records()
    store = open_store(str(server.store))
    catalog = store.catalog()
    found = api.collection_items("catalog", q="pipelines")
    expected = {r["id"] for r in catalog
                if "pipelines" in " ".join([r["title"], r["abstract"], *r.get("keywords", [])])
                .lower()}
    assert {f["id"] for f in found["features"]} == expected and expected
    everything = api.collection_items("catalog", limit=100)
    assert {f["id"] for f in everything["features"]} == {r["id"] for r in catalog}


def test_owslib_executes_exposure(server):
    from owslib.ogcapi.processes import Processes

    api = Processes(server.url, timeout=300)
    assert "exposure" in [p["id"] for p in api.processes()]
    (lon0, lat0, lon1, lat1), _ = _bbox_lonlat(server.store, frac=0.2)
    area = shapely.box(lon0, lat0, lon1, lat1)
    result = api.execute("exposure", {"area": json.loads(shapely.to_geojson(area)),
                                      "layers": ["buildings", "roads", "pipelines"],
                                      "include_ids": True})
    outputs = result["outputs"]  # pygeoapi's "document" response
    value = (outputs[0] if isinstance(outputs, list) else outputs["exposure"])["value"]
    expected = {r.layer: r.as_dict() for r in exposure(open_store(str(server.store)), area,
                                                       layers=["buildings", "roads",
                                                               "pipelines"])}
    got = {r["layer"]: r for r in value}
    assert got == json.loads(json.dumps(expected))
    assert got["buildings"]["count"] > 0
