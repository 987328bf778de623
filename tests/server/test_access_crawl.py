"""No leak by links: a crawler follows every link (JSON ``href``, HTML ``href``/``src``) from the
landing page as each grade, and no response mentions an id, title or keyword of a resource that
grade may not see (issue 5). Then the start-up checks: unknown grades, ``server.admin``, a
resource without a grade, and ``anonymous: none``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import deque
from urllib.parse import urljoin, urlsplit

import pytest
import yaml
from click.testing import CliRunner

from server_helpers import set_access, stop_server
from gis.cli.main import cli

MAX_PAGES = 260  # per grade; item pages are many and alike, the crawl keeps to the first few
HREF = re.compile(rb'(?:href|src)\s*=\s*"([^"]+)"')
TEXT_TYPES = ("json", "html", "text", "xml", "javascript")


def _links(body: bytes, ctype: str) -> list[str]:
    out: list[str] = []
    if "json" in ctype:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        stack = [doc]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "href" and isinstance(v, str):
                        out.append(v)
                    else:
                        stack.append(v)
            elif isinstance(node, list):
                stack.extend(node)
    if "html" in ctype:
        out += [m.decode("utf-8", "replace").replace("&amp;", "&") for m in HREF.findall(body)]
    return out


def _process_metadata(resource: dict) -> dict:
    import importlib

    module, _, _ = resource["processor"]["name"].rpartition(".")
    return importlib.import_module(module).PROCESS_METADATA


def _forbidden(s, grade: str) -> list[str]:
    """Ids, titles and keywords of the resources hidden from ``grade`` (keywords shared with a
    visible resource are not secrets)."""
    full = yaml.safe_load(s.config.read_text())["resources"]
    rank = {"public": 0, "agency": 1, "restricted": 2}
    visible_words = {k.lower() for name, r in full.items()
                     if rank.get(r.get("access_grade"), 2) <= rank[grade]
                     for k in [name, *(r.get("keywords") or [])]}
    words = []
    for name, r in full.items():
        if rank.get(r.get("access_grade"), 2) > rank[grade]:
            if r.get("type") == "process":   # title and keywords live in the processor
                meta = _process_metadata(r)
                r = {**r, "title": meta["title"]["en"], "keywords": meta.get("keywords")}
            words += [name, r["title"]]
            words += [k for k in r.get("keywords") or [] if k.lower() not in visible_words]
    return [w.lower() for w in words]


def _crawl(s, client: str) -> tuple[int, list[tuple[str, int]]]:
    base = urlsplit(s.url)
    seen, queue, errors = set(), deque(["/", "/?f=json", "/viewer/tilesets.json", "/3dtiles/"]), []
    items_pages: dict[str, int] = {}
    forbidden = _forbidden(s, {"anonymous": "public"}.get(client, client))
    fetched = 0
    while queue and fetched < MAX_PAGES:
        path = queue.popleft()
        if path in seen:
            continue
        seen.add(path)
        status, headers, body = s.fetch(path, client)
        fetched += 1
        if status >= 500 or status == 401:
            errors.append((path, status))
        ctype = headers.get("content-type", "")
        # A job's results echo the client's own inputs (test_exposure_process asks for the
        # hidden "pipelines" by name and gets what an absent layer gets); that jobs are seen by
        # their owner only is test_access_backends' subject.
        own_input = path.startswith("/jobs/") and "/results" in path
        if any(t in ctype for t in TEXT_TYPES) and not own_input:
            text = body.decode("utf-8", "replace").lower()
            leaks = [w for w in forbidden if w in text]
            assert not leaks, (client, path, leaks)
        for href in _links(body, ctype):
            if any(c in href for c in " '+<>\\"):  # script text, not a link
                continue
            u = urlsplit(urljoin(s.url + path, href))
            if (u.hostname, u.port) != (base.hostname, base.port) or "{" in u.path:
                continue
            if u.path.startswith(("/static", "/cesium")) or u.path.startswith("/viewer/") \
                    and u.path != "/viewer/tilesets.json":
                continue  # code, not data
            target = u.path + ("?" + u.query if u.query else "")
            if "/items" in u.path and ("offset=" in u.query or "/items/" in u.path):
                key = u.path.split("/items")[0] + ("/items/" if "/items/" in u.path else "")
                items_pages[key] = items_pages.get(key, 0) + 1
                if items_pages[key] > 6:  # a few pages and items per collection: alike
                    continue
            if target not in seen:
                queue.append(target)
    return fetched, errors


@pytest.mark.parametrize("client", ["anonymous", "public", "agency", "restricted"])
def test_crawl_finds_nothing_hidden(graded_server, client):
    fetched, errors = _crawl(graded_server, client)
    assert fetched > 60, fetched  # it did go places
    assert errors == []


def test_crawl_finds_everything_visible(graded_server):
    """The crawler is not blind: as restricted, the words the others must not see are there."""
    s = graded_server
    seen_text = []
    for path in ("/collections?f=json", "/collections/catalog/items?f=json&limit=50",
                 "/processes?f=json"):
        seen_text.append(s.fetch(path, "restricted")[2].decode().lower())
    text = "\n".join(seen_text)
    assert all(w in text for w in _forbidden(s, "public"))


# -- start-up checks -----------------------------------------------------------------------------

def _config(demo_store, tmp_path) -> tuple:
    config = tmp_path / "server_config.yml"
    r = CliRunner().invoke(cli, ["config", "--store", str(demo_store), "--out", str(config),
                                 "--cache", str(tmp_path / "cache")])
    assert r.exit_code == 0, r.output
    return config, yaml.safe_load(config.read_text())


def _serve_fails(config) -> str:
    out = subprocess.run([sys.executable, "-m", "gis", "serve", "--config", str(config),
                          "--port", "1"], capture_output=True, text=True, timeout=120,
                         cwd=config.parent)
    assert out.returncode == 1, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_unknown_grade_stops_the_server(demo_store, tmp_path):
    config, doc = _config(demo_store, tmp_path)
    doc["resources"]["roads"]["access_grade"] = "secret"
    config.write_text(yaml.safe_dump(doc))
    line = _serve_fails(config)
    assert "resource 'roads'" in line and "'secret'" in line and "public, agency, restricted" \
        in line


def test_unknown_anonymous_grade_and_admin_stop_the_server(demo_store, tmp_path):
    config, doc = _config(demo_store, tmp_path)
    doc["ngis"]["access"]["anonymous"] = "everyone"
    config.write_text(yaml.safe_dump(doc))
    assert "ngis.access.anonymous" in _serve_fails(config)
    doc["ngis"]["access"]["anonymous"] = "public"
    doc["server"]["admin"] = True
    config.write_text(yaml.safe_dump(doc))
    assert "server.admin" in _serve_fails(config)


def test_a_resource_without_grade_is_restricted(demo_store, tmp_path):
    from gis.server.access.grades import project

    _, doc = _config(demo_store, tmp_path)
    del doc["resources"]["roads"]["access_grade"]
    doc["ngis"]["tilesets"] = {"roads": "x"}
    doc["ngis"]["access"]["tilesets"] = {}
    for grade, sees in (("public", False), ("agency", False), ("restricted", True)):
        view = project(doc, grade)
        assert ("roads" in view["resources"]) is sees
        assert ("roads" in view["ngis"]["tilesets"]) is sees
        exposure = view["resources"]["exposure"]["processor"]["allowed_layers"]
        assert ("roads" in exposure) is sees


def test_anonymous_none_answers_401(demo_store, tmp_path):
    config, _ = _config(demo_store, tmp_path)
    set_access(config, anonymous="none")
    from gis.server.access.keys import KeyStore

    key, _ = KeyStore(tmp_path / "access.sqlite").create("k", "public", "public")
    port_url, proc = None, None
    try:
        # start_server polls /conformance without a key: poll it ourselves instead.
        import time
        import urllib.request

        from server_helpers import free_port

        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "gis", "serve", "--config", str(config),
                                 "--port", str(port), "--workers", "1"], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                req = urllib.request.Request(port_url + "/conformance",
                                             headers={"X-API-Key": key})
                with urllib.request.urlopen(req, timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.3)
        for path in ("/", "/collections", "/collections/buildings/items", "/openapi",
                     "/viewer/tilesets.json", "/3dtiles/"):
            try:
                urllib.request.urlopen(port_url + path, timeout=30)
                raise AssertionError(f"{path} answered without a key")
            except urllib.error.HTTPError as err:
                assert err.code == 401, path
        with urllib.request.urlopen(port_url + "/viewer/", timeout=30) as r:  # code, not data
            assert r.status == 200
    finally:
        if proc is not None:
            stop_server(proc)
