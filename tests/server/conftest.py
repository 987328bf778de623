"""A real NGIS 3D server (``ngis serve``: uvicorn + pygeoapi) on a free loopback port, serving the
generated demo store and its 3D tilesets; shared by the server tests of a session."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from gis.cli.main import cli


@dataclass
class Server:
    url: str
    config: Path
    store: Path
    tiles: Path
    process: subprocess.Popen

    def get(self, path: str, headers: dict[str, str] | None = None):
        """(status, headers, body) of a GET; HTTP errors are returned, not raised."""
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, dict(r.headers.items()), r.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers.items()), err.read()

    def json(self, path: str):
        status, _, body = self.get(path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(config: Path, *, workers: int = 1, timeout: float = 90,
                 graded: bool = False) -> tuple[str, subprocess.Popen]:
    """Start ``ngis serve`` and wait until it answers; returns (base URL, process).

    Tests about data, not grades, want to see everything: unless ``graded``, the config is
    changed so that anonymous clients have the highest grade and no rate limit.
    """
    if not graded:
        set_access(config, anonymous="restricted", anonymous_rate=10_000_000)
    port = free_port()
    log = config.parent / f"server-{port}.log"
    with open(log, "w") as fh:  # the child keeps its own descriptor
        proc = subprocess.Popen([sys.executable, "-m", "gis", "serve", "--config", str(config),
                                 "--port", str(port), "--workers", str(workers)],
                                stdout=fh, stderr=subprocess.STDOUT, cwd=config.parent,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ngis serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/conformance?f=json", timeout=5) as r:
                if r.status == 200:
                    return url, proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    pytest.fail(f"ngis serve did not answer within {timeout} s:\n{log.read_text()}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def demo_tilesets(demo_store, tmp_path_factory) -> Path:
    """3D tilesets of the demo store: buildings (LOD2, meshopt, gzip at rest), buildings-lod1,
    roads, pipelines."""
    out = tmp_path_factory.mktemp("server-tiles")
    for name, args in (("buildings", ["--layer", "buildings", "--lod", "2", "--compress",
                                      "meshopt", "--gzip"]),
                       ("buildings-lod1", ["--layer", "buildings", "--lod", "1"]),
                       ("roads", ["--layer", "roads"]),
                       ("pipelines", ["--layer", "pipelines"])):
        r = CliRunner().invoke(cli, ["-q", "tiles", "build", "--store", str(demo_store), *args,
                                     "--out", str(out / name)])
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


def set_access(config: Path, **settings) -> None:
    """Change ``ngis.access`` settings of a generated config (``${VAR}`` left as written)."""
    import yaml

    doc = yaml.safe_load(config.read_text())
    doc["ngis"]["access"].update(settings)
    config.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def create_key(config: Path, name: str, grade: str, *extra: str) -> str:
    """``ngis keys create``: the key it prints."""
    r = CliRunner().invoke(cli, ["keys", "create", "--name", name, "--grade", grade,
                                 "--user-class", "government", "--config", str(config), *extra])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[0]
    assert key.startswith("ngis_"), r.stdout
    return key


@dataclass
class GradedServer(Server):
    keys: dict[str, str] = None

    def fetch(self, path: str, client: str = "anonymous", method: str = "GET",
              body: bytes | None = None, headers: dict[str, str] | None = None):
        """(status, headers with lower-case names, body) as ``client``: ``anonymous`` or a key
        name of :attr:`keys` (sent as X-API-Key)."""
        h = dict(headers or {})
        if client != "anonymous":
            h["X-API-Key"] = self.keys[client]
        if body is not None:
            h.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=body, headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


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
