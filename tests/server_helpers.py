"""Start and stop real NGIS 3D servers (``ngis serve`` subprocesses) for the server tests, and
talk to them. A module of its own (not conftest) so test modules can import it by name."""

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


# -- pygeoapi's API code without HTTP (provider tests) --
def pygeoapi_api(resources):
    from pygeoapi.api import API

    cfg = {
        "server": {"url": "http://localhost:5000", "mimetype": "application/json; charset=UTF-8",
                   "encoding": "utf-8", "languages": ["en-US"],
                   "limits": {"default_items": 10, "max_items": 100},
                   "map": {"url": "http://localhost/blank.png", "attribution": ""}},
        "logging": {"level": "CRITICAL"},
        "metadata": {"identification": {"title": "t", "description": "d", "keywords": [],
                                        "terms_of_service": "", "url": ""},
                     "license": {"name": "x"}, "provider": {"name": "x"},
                     "contact": {"name": "x"}},
        "resources": resources,
    }
    return API(cfg, {})


def api_request(api, **params):
    from pygeoapi.api import APIRequest
    from werkzeug.test import create_environ
    from werkzeug.wrappers import Request

    return APIRequest(Request(create_environ("/", query_string=params)), api.locales)
