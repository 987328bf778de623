"""A real server whose keys and usage live in PostgreSQL, which also accepts signed tokens (JWT)
from a configured issuer, and whose process jobs belong to the client that started them."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import rsa

from gis.cli.main import cli
from gis.server.access.metering import access_paths, read_usage
from gis.server.config import load_config
from server_helpers import GradedServer, create_key, set_access, start_server, stop_server

ISSUER = "https://sso.example.gov.tw/realms/ngis"


@pytest.fixture(scope="module")
def signing_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _token(private, sub: str, grade: str, exp_in: int = 300) -> str:
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "sub": sub, "iat": now, "exp": now + exp_in,
                       "ngis_grade": grade, "ngis_user_class": "academic"},
                      private, algorithm="RS256", headers={"kid": "sso-1"})


@pytest.fixture(scope="module")
def pg_server(demo_store, demo_tilesets, postgis_url, signing_key, tmp_path_factory):
    import psycopg2

    d = tmp_path_factory.mktemp("pg-access")
    schema = "access_" + uuid.uuid4().hex[:8]
    access_db = f"{postgis_url}?schema={schema}"
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    (d / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "sso-1", "alg": "RS256"}]}))
    config = d / "server_config.yml"
    r = CliRunner().invoke(cli, ["config", "--store", str(demo_store), "--tiles",
                                 str(demo_tilesets), "--out", str(config), "--cache",
                                 str(d / "cache"), "--access-db", access_db,
                                 "--jwt-issuer", ISSUER, "--jwks", str(d / "jwks.json")])
    assert r.exit_code == 0, r.output
    set_access(config, anonymous_rate=1_000_000)
    keys = {name: create_key(config, name, "agency", "--rate", "1000000")
            for name in ("alice", "bob")}
    url, proc = start_server(config, workers=2, graded=True)
    yield GradedServer(url, config, demo_store, demo_tilesets, proc, keys), access_db, schema
    stop_server(proc)
    with psycopg2.connect(postgis_url) as con, con.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _collections(server, client="anonymous", headers=None):
    status, _, body = server.fetch("/collections?f=json", client, headers=headers)
    assert status == 200, body[:300]
    return {c["id"] for c in json.loads(body)["collections"]}


def test_keys_and_usage_live_in_postgresql(pg_server, postgis_url):
    import psycopg2

    server, access_db, schema = pg_server
    assert access_paths(load_config(server.config))[0] == access_db
    with psycopg2.connect(postgis_url) as con, con.cursor() as cur:
        cur.execute(f'SELECT name, grade FROM "{schema}".api_keys ORDER BY name')
        assert cur.fetchall() == [("alice", "agency"), ("bob", "agency")]
    public, agency = _collections(server), _collections(server, "alice")
    assert public < agency
    hidden = sorted(agency - public)[0]
    assert server.fetch(f"/collections/{hidden}?f=json", "alice")[0] == 200
    assert server.fetch(f"/collections/{hidden}?f=json")[0] == 404
    month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    deadline = time.monotonic() + 20   # workers flush their meters every second
    rows = []
    while time.monotonic() < deadline:
        rows = [r for r in read_usage(access_db, month) if r["key_id"] == "alice"]
        if sum(r["requests"] for r in rows) >= 2:
            break
        time.sleep(0.3)
    assert {r["resource"] for r in rows} >= {hidden}
    r = CliRunner().invoke(cli, ["usage", "report", "--month", month, "--format", "json",
                                 "--config", str(server.config)])
    assert r.exit_code == 0 and "alice" in r.output, r.output
    assert postgis_url.split("@")[0].split(":")[-1] not in r.output  # no password printed


def test_signed_tokens_give_their_grade(pg_server, signing_key):
    server, _, _ = pg_server
    public = _collections(server)
    restricted = _collections(server, headers={
        "Authorization": "Bearer " + _token(signing_key, "carol@ntu.edu.tw", "restricted")})
    agency = _collections(server, "alice")
    assert public < agency < restricted
    # As an API key would: refused tokens get the one 401 body of every bad credential.
    bad_key = server.fetch("/collections?f=json", headers={"X-API-Key": "ngis_" + "x" * 43})
    for token in (_token(signing_key, "carol", "restricted", exp_in=-3600),
                  _token(rsa.generate_private_key(public_exponent=65537, key_size=2048),
                         "mallory", "restricted"),
                  _token(signing_key, "carol", "secret-grade")):
        got = server.fetch("/collections?f=json", headers={"Authorization": f"Bearer {token}"})
        assert (got[0], got[2]) == (bad_key[0], bad_key[2]) and got[0] == 401
    # A token in the query (CesiumJS, GDAL) works and is never written to the audit log.
    token = _token(signing_key, "dave@city.gov.tw", "restricted")
    status, _, body = server.fetch(f"/3dtiles/pipelines/tileset.json?key={token}")
    assert status == 200 and json.loads(body)["asset"]["version"]
    audit_dir = access_paths(load_config(server.config))[1]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = "".join(f.read_text() for f in audit_dir.glob("*.jsonl"))
        if "jwt:dave@city.gov.tw" in text:
            break
        time.sleep(0.2)
    assert "jwt:dave@city.gov.tw" in text and token not in text and token[:40] not in text


AREA = {"type": "Polygon", "coordinates": [[[120.5, 23.9], [121.0, 23.9], [121.0, 24.3],
                                            [120.5, 24.3], [120.5, 23.9]]]}


def _submit(server, client, **headers):
    return server.fetch("/processes/exposure/execution", client, method="POST",
                        body=json.dumps({"inputs": {"area": AREA}}).encode(), headers=headers)


def test_jobs_belong_to_the_client_that_started_them(pg_server):
    server, _, _ = pg_server
    status, headers, body = _submit(server, "alice", Prefer="respond-async")
    assert status == 201, body[:300]
    job_url = headers["location"]
    job_id = job_url.rstrip("/").rsplit("/", 1)[1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, _, body = server.fetch(f"/jobs/{job_id}?f=json", "alice")
        assert status == 200, body[:300]
        if json.loads(body)["status"] in ("successful", "failed"):
            break
        time.sleep(0.2)
    assert json.loads(body)["status"] == "successful", body
    status, _, body = server.fetch(f"/jobs/{job_id}/results?f=json", "alice")
    assert status == 200 and "buildings" in body.decode()

    def listed(client, **h):
        s, _, b = server.fetch("/jobs?f=json", client, headers=h)
        assert s == 200, b[:300]
        return {j["jobID"] for j in json.loads(b)["jobs"]}

    assert job_id in listed("alice")
    assert job_id not in listed("bob") and job_id not in listed("anonymous")
    # Bob (even claiming to be alice) gets what a job that never existed gets.
    never = str(uuid.uuid4())
    for path in ("/jobs/{}?f=json", "/jobs/{}/results?f=json"):
        s1, _, b1 = server.fetch(path.format(job_id), "bob", headers={"X-Ngis-Client": "alice"})
        s2, _, b2 = server.fetch(path.format(never), "bob")
        assert s1 == s2 == 404 and b1.replace(job_id.encode(), b"ID") == \
            b2.replace(never.encode(), b"ID")
    assert server.fetch(f"/jobs/{job_id}?f=json", "bob", method="DELETE")[0] == 404
    assert job_id in listed("alice")
    assert job_id not in listed("bob", **{"X-Ngis-Client": "alice"})
    # Synchronous runs are jobs too, and equally private.
    status, _, body = _submit(server, "bob")
    assert status == 200 and "buildings" in body.decode()
    assert len(listed("bob")) == 1 and listed("bob").isdisjoint(listed("alice"))
    assert server.fetch(f"/jobs/{job_id}?f=json", "alice", method="DELETE")[0] == 200
    assert job_id not in listed("alice")
    # Clients without a key share addresses: their runs wait for the result (no job to fetch
    # later) and are never listed, even to the next anonymous client.
    status, headers, body = _submit(server, "anonymous", Prefer="respond-async")
    assert status == 200 and "buildings" in body.decode()
    assert listed("anonymous") == set()
    if "location" in headers:   # pygeoapi names the job even for synchronous runs
        path = "/" + headers["location"].split("/", 3)[3]
        assert server.fetch(path + "?f=json")[0] == 404


def test_token_bytes_never_decode_as_keys():
    # A JWT is three base64url parts; an API key has no dot: the two never overlap.
    header = base64.urlsafe_b64encode(b'{"alg":"RS256"}').decode()
    assert "." not in "ngis_" + header
