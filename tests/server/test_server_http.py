"""The server over real HTTP: pygeoapi's pages, and the 3D Tiles, viewer and CesiumJS beside them
with the headers clients rely on (content types, ETag/304, gzip, CORS)."""

from __future__ import annotations

import gzip
import http.client
import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest


def test_landing_conformance_and_collections(server):
    landing = server.json("/?f=json")
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels
    conf = set(server.json("/conformance?f=json")["conformsTo"])
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf
    ids = {c["id"] for c in server.json("/collections?f=json")["collections"]}
    assert {"buildings", "roads", "rail", "pipelines", "crashes", "dem", "catalog"} <= ids


def test_collection_links_its_3d_tilesets(server):
    links = server.json("/collections/buildings?f=json")["links"]
    hrefs = {link["href"] for link in links if link.get("title", "").startswith("3D Tiles")}
    assert hrefs == {f"{server.url}/3dtiles/buildings/tileset.json",
                     f"{server.url}/3dtiles/buildings-lod1/tileset.json"}
    for href in hrefs:  # the links resolve
        status, headers, body = server.get(urlsplit(href).path)
        assert status == 200 and json.loads(body)["asset"]["version"] == "1.1"


def _contents(tileset: dict) -> list[str]:
    out, stack = [], [tileset["root"]]
    while stack:
        tile = stack.pop()
        for c in ([tile["content"]] if "content" in tile else []) + tile.get("contents", []):
            out.append(c["uri"])
        stack.extend(tile.get("children", []))
    return out


@pytest.mark.parametrize("name", ["buildings", "buildings-lod1", "roads", "pipelines"])
def test_3d_tiles_served_as_on_disk(server, name):
    tileset = server.json(f"/3dtiles/{name}/tileset.json")
    uris = _contents(tileset)
    assert uris
    for uri in uris[:20]:
        on_disk = (server.tiles / name / uri).read_bytes()
        plain = gzip.decompress(on_disk) if on_disk[:2] == b"\x1f\x8b" else on_disk
        status, headers, body = server.get(f"/3dtiles/{name}/{uri}",
                                           {"Accept-Encoding": "gzip"})
        assert status == 200
        assert headers["content-type"] == "model/gltf-binary"
        assert headers["access-control-allow-origin"] == "*"
        assert "max-age" in headers["cache-control"]
        if on_disk[:2] == b"\x1f\x8b":  # gzip at rest goes out as it is, declared
            assert headers.get("content-encoding") == "gzip" and body == on_disk
        else:
            assert "content-encoding" not in headers and body == on_disk
        # A client that does not take gzip still gets the glb.
        status, headers, body = server.get(f"/3dtiles/{name}/{uri}")
        assert status == 200 and "content-encoding" not in headers and body == plain
        assert body[:4] == b"glTF"


def test_etag_revalidation(server):
    status, headers, _ = server.get("/3dtiles/roads/tileset.json")
    assert status == 200 and headers["cache-control"] == "no-cache"
    tag = headers["etag"]
    status, headers, body = server.get("/3dtiles/roads/tileset.json", {"If-None-Match": tag})
    assert status == 304 and body == b""
    status, _, _ = server.get("/3dtiles/roads/tileset.json", {"If-None-Match": '"other"'})
    assert status == 200


def test_no_escape_from_tileset_folders(server):
    host = urlsplit(server.url)
    for path in ("/3dtiles/roads/../buildings/tileset.json", "/3dtiles/roads/%2e%2e/x",
                 "/3dtiles/roads/../../../../etc/passwd", "/3dtiles/nothing/tileset.json",
                 "/viewer/../gis/server/app.py"):
        con = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        con.request("GET", path)  # sent as is: no client-side dot-segment removal
        r = con.getresponse()
        body = r.read()
        con.close()
        assert r.status == 404, (path, r.status, body[:200])


def test_tileset_listing_and_viewer(server):
    listing = server.json("/3dtiles/")["tilesets"]
    assert {t["name"] for t in listing} == {"buildings", "buildings-lod1", "roads", "pipelines",
                                            "dem-terrain"}
    assert server.json("/viewer/tilesets.json") == listing
    # The terrain is listed as such, and served as quantized-mesh, gzipped at rest.
    terrain = next(t for t in listing if t["name"] == "dem-terrain")
    assert terrain == {"name": "dem-terrain", "kind": "terrain", "url": "/3dtiles/dem-terrain/"}
    layer = server.json("/3dtiles/dem-terrain/layer.json")
    assert layer["format"] == "quantized-mesh-1.0"
    status, headers, body = server.get("/3dtiles/dem-terrain/0/0/0.terrain",
                                       {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-type"].startswith("application/vnd.quantized-mesh")
    assert headers["content-encoding"] == "gzip" and body[:2] == b"\x1f\x8b"
    status, headers, _ = server.get("/viewer/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    status, headers, body = server.get("/cesium/Cesium.js", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert len(gzip.decompress(body)) > len(body) * 2  # compressed, and whole


def test_openapi_document(server):
    doc = server.json("/openapi?f=json")
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for p in ("/collections/buildings/items", "/collections/buildings/items/{featureId}",
              "/collections/catalog/items", "/processes/exposure/execution"):
        assert p in paths, p


def test_client_mistakes_are_4xx_not_5xx(server):
    """Cases schemathesis found (see gis/server/compat.py), kept as plain regressions."""
    status, _, body = server.get("/collections/crashes/items?f=json&offset=" + "9" * 26)
    assert status == 200 and json.loads(body)["features"] == []
    status, _, _ = server.get("/collections/dem/coverage?bbox=1,5,2,3")
    assert status == 400
    for payload in (b"[]", b'"x"', b"3"):
        req = urllib.request.Request(
            server.url + "/processes/exposure/execution", data=payload, method="POST",
            headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=60)
            status = 200
        except urllib.error.HTTPError as err:
            status = err.code
        assert status == 400, payload
    # Integers beyond 64 bits in property filters compare (and match nothing), not overflow.
    status, _, body = server.get("/collections/roads/items?f=json&lanes=-9886845726706067456")
    assert status == 200 and json.loads(body)["features"] == []
    status, _, body = server.get("/collections/roads/items?f=json&filter=lanes%3D" + "9" * 25)
    assert status == 200 and json.loads(body)["features"] == []
    status, _, _ = server.get("/collections/catalog/items?f=csv")
    assert status == 400
    status, headers, body = server.get("/collections/roads/items?f=csv&limit=3")
    assert status == 200 and body.count(b"\n") >= 3
