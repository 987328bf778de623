"""Graded access over real HTTP (issue 5): every client kind x every endpoint family x visible and
hidden resources, with the exact status, and for hidden resources the very bytes a resource that
never existed answers.

Demo grades: buildings, roads, rail, dem and the catalogue are public; crashes agency; pipelines
restricted (3D tilesets follow their layer).
"""

from __future__ import annotations

import json
import math
import time

import pytest
from click.testing import CliRunner

from gis.cli.main import cli
from server_helpers import create_key

RANK = {"anonymous": 0, "public": 0, "agency": 1, "restricted": 2}
GRADE_OF = {"buildings": 0, "crashes": 1, "pipelines": 2}
REFUSED = ("revoked", "expired", "malformed")
GOOD = tuple(RANK)
ABSENT = "nope"  # a collection (and tileset) that never existed
AREA = {"type": "Polygon", "coordinates": [[[120.60, 24.04], [120.65, 24.04], [120.65, 24.08],
                                           [120.60, 24.08], [120.60, 24.04]]]}


def _tile(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, y, x


Z, ROW, COL = _tile(120.616, 24.064, 14)

# Per collection: (path template, expected status when visible).
COLLECTION_PATHS = [
    ("/collections/{}?f=json", 200),
    ("/collections/{}?f=html", 200),
    ("/collections/{}?f=jsonld", 200),
    ("/collections/{}/items?f=json&limit=2", 200),
    ("/collections/{}/items?f=html&limit=2", 200),
    ("/collections/{}/items/1?f=json", 200),
    ("/collections/{}/queryables?f=json", 200),
    ("/collections/{}/schema?f=json", 200),
    ("/collections/{}/tiles?f=json", 200),
    ("/collections/{}/tiles/WebMercatorQuad?f=json", 200),
    (f"/collections/{{}}/tiles/WebMercatorQuad/{Z}/{ROW}/{COL}?f=mvt", (200, 204)),
    ("/collections/catalog/items/{}?f=json", 200),
    ("/collections/catalog/items/{}?f=html", 200),
]


def _content_file(tiles_dir, name: str) -> str:
    folder = tiles_dir / name
    path = next(p for p in sorted(folder.rglob("*"))
                if p.is_file() and p.suffix in (".glb", ".b3dm", ".subtree"))
    return path.relative_to(folder).as_posix()


@pytest.mark.parametrize("client", GOOD)
@pytest.mark.parametrize("layer", sorted(GRADE_OF))
def test_collection_families(graded_server, client, layer):
    s = graded_server
    visible = GRADE_OF[layer] <= RANK[client]
    for template, expected in COLLECTION_PATHS:
        path = template.format(layer)
        status, _, body = s.fetch(path, client)
        if visible:
            ok = expected if isinstance(expected, tuple) else (expected,)
            assert status in ok, (client, path, status, body[:300])
        else:
            absent = s.fetch(template.format(ABSENT), client)
            assert status == 404 and absent[0] == 404, (client, path, status)
            # What a never-existing LAYER would answer (the records provider repeats the id
            # asked for, as it does for any unknown id).
            assert body == absent[2].replace(ABSENT.encode(), layer.encode()), \
                (client, path, body[:300], absent[2][:300])


@pytest.mark.parametrize("client", GOOD)
def test_lists_openapi_conformance_and_landing(graded_server, client):
    s = graded_server
    rank = RANK[client]
    expected = {"buildings", "roads", "rail", "dem", "catalog"} | \
        ({"crashes"} if rank >= 1 else set()) | ({"pipelines"} if rank >= 2 else set())
    status, headers, body = s.fetch("/collections?f=json", client)
    assert status == 200
    assert {c["id"] for c in json.loads(body)["collections"]} == expected
    for path in ("/?f=json", "/?f=html", "/?f=jsonld", "/openapi?f=json", "/conformance?f=json",
                 "/conformance?f=html", "/collections?f=html", "/collections?f=jsonld",
                 "/processes?f=json", "/processes/exposure?f=json", "/jobs?f=json",
                 "/TileMatrixSets?f=json"):
        status, _, body = s.fetch(path, client)
        assert status == 200, (client, path, status, body[:300])
        text = body.decode().lower()
        for hidden in (name for name, g in GRADE_OF.items() if g > rank):
            assert hidden.rstrip("s") not in text, (client, path, hidden)
    openapi = json.loads(s.fetch("/openapi?f=json", client)[2])
    listed = {p.split("/")[2] for p in openapi["paths"] if p.startswith("/collections/")}
    assert listed == expected
    jobs = json.loads(s.fetch("/jobs?f=json", client)[2])
    assert jobs["jobs"] == []


@pytest.mark.parametrize("client", GOOD)
def test_catalogue_search(graded_server, client):
    s = graded_server
    rank = RANK[client]
    for term, layer in (("pipeline", "pipelines"), ("crash", "crashes"), ("building", "buildings")):
        status, _, body = s.fetch(f"/collections/catalog/items?f=json&q={term}", client)
        assert status == 200
        ids = {f["id"] for f in json.loads(body)["features"]}
        assert (layer in ids) == (GRADE_OF[layer] <= rank), (client, term, ids)
    status, _, body = s.fetch("/collections/catalog/items?f=json&limit=100", client)
    ids = {f["id"] for f in json.loads(body)["features"]}
    assert ids == {n for n in ("buildings", "roads", "rail", "dem", "crashes", "pipelines")
                   if GRADE_OF.get(n, 0) <= rank}


@pytest.mark.parametrize("client", GOOD)
def test_exposure_process(graded_server, client):
    s = graded_server
    rank = RANK[client]
    path = "/processes/exposure/execution"

    def run(layers=None):
        inputs = {"area": AREA} if layers is None else {"area": AREA, "layers": layers}
        status, _, body = s.fetch(path, client, "POST", json.dumps({"inputs": inputs}).encode())
        assert status == 200, (client, layers, body[:300])
        return json.loads(body)

    default = [r["layer"] for r in run()["value"]]
    assert default == ["buildings", "roads", "rail"] + (["pipelines"] if rank >= 2 else [])
    hidden = run(["pipelines"])["value"][0]
    absent = run([ABSENT])["value"][0]
    if rank >= 2:
        assert hidden["count"] > 0
    else:  # a hidden layer is a layer the store lacks
        assert hidden == {**absent, "layer": "pipelines"}
    description = s.fetch("/processes/exposure?f=json", client)[2]
    assert (b"pipelines" in description) == (rank >= 2)


@pytest.mark.parametrize("client", GOOD)
@pytest.mark.parametrize("tileset", ["buildings", "pipelines"])
def test_3d_tiles_and_viewer_listing(graded_server, client, tileset):
    s = graded_server
    visible = tileset == "buildings" or RANK[client] >= 2
    content = _content_file(s.tiles, tileset)
    for path in ("tileset.json", content):
        status, _, body = s.fetch(f"/3dtiles/{tileset}/{path}", client)
        absent = s.fetch(f"/3dtiles/{ABSENT}/{path}", client)
        if visible:
            assert status == 200, (client, tileset, path)
        else:
            assert (status, body) == (404, absent[2]) and absent[0] == 404
    names = {t["name"] for t in json.loads(s.fetch("/viewer/tilesets.json", client)[2])}
    listing = {t["name"] for t in json.loads(s.fetch("/3dtiles/", client)[2])["tilesets"]}
    assert names == listing == {"buildings", "buildings-lod1", "roads", "dem-terrain"} | (
        {"pipelines"} if RANK[client] >= 2 else set())


@pytest.mark.parametrize("client", REFUSED)
def test_refused_keys_get_401_everywhere(graded_server, client):
    s = graded_server
    paths = ["/", "/?f=json", "/collections", "/collections/buildings?f=json",
             "/collections/pipelines?f=json", "/collections/buildings/items?f=json",
             "/openapi?f=json", "/conformance", "/processes", "/jobs", "/3dtiles/",
             "/3dtiles/buildings/tileset.json", "/viewer/tilesets.json",
             "/collections/catalog/items?q=pipeline"]
    bodies = set()
    for path in paths:
        status, headers, body = s.fetch(path, client)
        assert status == 401, (client, path, status)
        assert headers["content-type"] == "application/json"
        assert "Bearer" in headers["www-authenticate"]
        bodies.add(body)
    status, _, body = s.fetch("/processes/exposure/execution", client, "POST",
                              json.dumps({"inputs": {"area": AREA}}).encode())
    assert status == 401
    bodies.add(body)
    assert len(bodies) == 1  # revoked, expired, malformed, unknown: one answer
    assert json.loads(bodies.pop())["code"] == "Unauthorized"


def test_unknown_key_and_conflicting_keys(graded_server):
    s = graded_server
    unknown = "ngis_" + "A" * 43
    refused = s.fetch("/collections", "malformed")[2]
    assert s.fetch("/collections", headers={"X-API-Key": unknown})[:3:2] == (401, refused)
    both = {"X-API-Key": s.keys["public"], "Authorization": f"Bearer {s.keys['restricted']}"}
    assert s.fetch("/collections", headers=both)[0] == 401
    assert s.fetch("/collections", headers={"Authorization": f"Basic {s.keys['public']}"})[0] \
        == 401


@pytest.mark.parametrize("via", ["x-api-key", "bearer", "query"])
def test_key_delivery(graded_server, via):
    s = graded_server
    key = s.keys["restricted"]
    path = "/collections/pipelines/items?f=json&limit=2"
    headers = {}
    if via == "x-api-key":
        headers["X-API-Key"] = key
    elif via == "bearer":
        headers["Authorization"] = f"Bearer {key}"
    else:
        path += f"&key={key}"
    status, h, body = s.fetch(path, headers=headers)
    assert status == 200
    assert key.encode() not in body and b"key=" not in body  # never in generated links
    assert h["cache-control"].startswith("private")
    assert "Authorization, X-API-Key" in h.get("vary", "")


def test_query_key_is_stripped_from_html_and_other_parameters_kept(graded_server):
    s = graded_server
    key = s.keys["agency"]
    for path in (f"/collections/crashes/items?key={key}&f=html&limit=3",
                 f"/collections/crashes?f=json&key={key}", f"/?key={key}&f=json"):
        status, _, body = s.fetch(path)
        assert status == 200, path
        assert key.encode() not in body and b"key=" not in body, path
    body = s.fetch(f"/collections/crashes/items?f=json&limit=3&key={key}")[2]
    links = {link["rel"]: link["href"] for link in json.loads(body)["links"]}
    assert links["next"].endswith("/collections/crashes/items?f=json&offset=3&limit=3")


def test_cesium_query_key_reaches_content(graded_server):
    """CesiumJS derives content URLs from the tileset URL's resource, query included
    (Resource.getDerivedResource): tileset.json?key=K makes it fetch CONTENT?key=K."""
    s = graded_server
    key = s.keys["restricted"]
    content = _content_file(s.tiles, "pipelines")
    assert s.fetch(f"/3dtiles/pipelines/tileset.json?key={key}")[0] == 200
    status, headers, _ = s.fetch(f"/3dtiles/pipelines/{content}?key={key}")
    assert status == 200 and headers["cache-control"].startswith("private")
    assert s.fetch(f"/3dtiles/pipelines/{content}")[0] == 404


def test_cache_headers(graded_server):
    s = graded_server
    status, h, _ = s.fetch("/collections/buildings?f=json")
    assert status == 200 and "private" not in h.get("cache-control", "")
    assert "Authorization, X-API-Key" in h["vary"]
    status, h, _ = s.fetch("/3dtiles/buildings/tileset.json")
    assert h["cache-control"] == "no-cache"
    for client in ("public", "agency", "restricted"):
        status, h, _ = s.fetch("/3dtiles/buildings/tileset.json", client)
        assert h["cache-control"] == "private, no-cache", client
        content = _content_file(s.tiles, "buildings")
        status, h, _ = s.fetch(f"/3dtiles/buildings/{content}", client)
        assert status == 200 and h["cache-control"] == "private, max-age=300"
        assert "Authorization, X-API-Key" in h["vary"]


def test_cors_preflight_without_a_key(graded_server):
    s = graded_server
    status, h, _ = s.fetch("/collections/pipelines/items", method="OPTIONS", headers={
        "Origin": "http://elsewhere.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-api-key"})
    assert status == 204
    assert "X-API-Key" in h["access-control-allow-headers"]
    assert h["access-control-allow-origin"] == "*"


TRICKS = ["/3dtiles/buildings/../pipelines/tileset.json",
          "/3dtiles/buildings/%2e%2e/pipelines/tileset.json",
          "/3dtiles/buildings/%2E%2E%2Fpipelines%2Ftileset.json",
          "/3dtiles/buildings/..%2fpipelines/tileset.json",
          "/3dtiles/buildings/....//pipelines/tileset.json",
          "/3dtiles//pipelines/tileset.json",
          "/3dtiles/./pipelines/tileset.json",
          "/3dtiles/pipe%6cines/tileset.json",
          "/3dtiles/%70ipelines/tileset.json",
          "/3dtiles/PIPELINES/tileset.json",
          "/3dtiles/pipelines%00/tileset.json",
          "/3dtiles/buildings/%00../../pipelines/tileset.json",
          "/3dtiles/buildings/..%5cpipelines%5ctileset.json",
          "/3dtiles/buildings/%252e%252e/pipelines/tileset.json",
          "/3dtiles/buildings/../../../../../../etc/passwd",
          "/3dtiles/buildings/%2e%2e/%2e%2e/%2e%2e/etc/passwd"]


@pytest.mark.parametrize("path", TRICKS)
def test_3d_tiles_path_tricks(graded_server, path):
    import http.client
    from urllib.parse import urlsplit

    s = graded_server
    u = urlsplit(s.url)
    for client in ("anonymous", "agency"):
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        headers = {} if client == "anonymous" else {"X-API-Key": s.keys[client]}
        conn.request("GET", path, headers=headers)  # sent as written, not normalised
        r = conn.getresponse()
        body = r.read()
        conn.close()
        assert r.status in (404, 400), (client, path, r.status)
        assert b"asset" not in body and b"root:" not in body, (client, path)
        if r.status == 404:
            assert body in (s.fetch(f"/3dtiles/{ABSENT}/tileset.json", client)[2], b""), body


def test_revocation_takes_effect_within_the_cache_ttl(graded_server):
    from gis.server.access.keys import CACHE_TTL

    s = graded_server
    key = create_key(s.config, "short-lived", "agency", "--rate", "1000000")
    s.keys["short-lived"] = key
    assert s.fetch("/collections/crashes?f=json", "short-lived")[0] == 200
    r = CliRunner().invoke(cli, ["keys", "revoke", "short-lived", "--config", str(s.config)])
    assert r.exit_code == 0, r.output
    time.sleep(CACHE_TTL + 0.5)
    for _ in range(4):  # every worker process
        assert s.fetch("/collections/crashes?f=json", "short-lived")[0] == 401
