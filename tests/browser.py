"""Headless Chromium (Debian's, driven by Playwright) against pages served from loopback.

Nothing may leave the machine: every request to a host other than 127.0.0.1/localhost is aborted
and recorded, and the tests assert there were none.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
TYPES = {".glb": "model/gltf-binary", ".b3dm": "application/octet-stream",
         ".subtree": "application/octet-stream", ".json": "application/json",
         ".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves URL prefixes from folders: {"/cesium/": dir, "/viewer/": dir, "/tiles/x/": dir}."""

    mounts: dict[str, Path] = {}

    def translate_path(self, path: str) -> str:
        path = urlsplit(path).path
        for prefix, folder in sorted(self.mounts.items(), key=lambda kv: -len(kv[0])):
            if path.startswith(prefix):
                return str(folder / path[len(prefix):])
        return str(ROOT / "nonexistent")

    def guess_type(self, path):
        return TYPES.get(Path(str(path)).suffix, super().guess_type(path))

    def end_headers(self):
        path = urlsplit(self.path).path
        if path.startswith("/tiles/") and Path(self.translate_path(path)).is_file():
            with open(self.translate_path(path), "rb") as fh:
                if fh.read(2) == b"\x1f\x8b":  # gzip at rest: tell the browser
                    self.send_header("Content-Encoding", "gzip")
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(mounts: dict[str, Path]):
    """A threaded static server on 127.0.0.1 (free port); yields its base URL."""
    handler = type("Handler", (_Handler,), {"mounts": {k: Path(v) for k, v in mounts.items()}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def viewer_mounts(**tilesets: Path) -> dict[str, Path]:
    """Mounts for the viewer, CesiumJS and the given tilesets (name -> folder)."""
    cesium = ROOT / "node_modules" / "cesium" / "Build" / "Cesium"
    if not cesium.is_dir():
        _skip("CesiumJS not installed (make install runs npm ci)")
    mounts = {"/cesium/": cesium, "/viewer/": ROOT / "viewer"}
    mounts.update({f"/tiles/{name}/": folder for name, folder in tilesets.items()})
    return mounts


def _skip(reason: str) -> None:
    """Skip, unless CI requires the browser tests (NGIS_REQUIRE_BROWSER=1): then fail."""
    if os.environ.get("NGIS_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@functools.cache
def _playwright_available() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return shutil.which(CHROMIUM) is not None


@contextlib.contextmanager
def browser_page(width: int = 1024, height: int = 768):
    """A Playwright page in Debian's Chromium; records console errors and outside requests."""
    if not _playwright_available():
        _skip("needs Python playwright and Debian's chromium (.ci/run installs both)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.console_errors = []
            page.outside_requests = []
            page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
            page.on("pageerror", lambda e: page.console_errors.append(str(e)))

            def route(r):
                host = urlsplit(r.request.url).hostname
                if r.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
                    return r.continue_()
                page.outside_requests.append(r.request.url)
                return r.abort()

            page.route("**/*", route)
            yield page
        finally:
            browser.close()


def wait_for_tiles(page, timeout: float = 120.0) -> None:
    """Wait until the viewer is ready, has drawn > 10 frames and every tileset has loaded,
    stable over three polls (globe.tilesLoaded is true before anything is queued)."""
    deadline = time.time() + timeout
    stable = 0
    while time.time() < deadline:
        done = page.evaluate("""() => { const s = window.ngis; return !!s && s.ready &&
            s.frames > 10 && s.tilesets.length > 0 && s.tilesets.every(t => t.tilesLoaded); }""")
        stable = stable + 1 if done else 0
        if stable >= 3:
            return
        time.sleep(0.5)
    raise AssertionError("tilesets did not finish loading in time: "
                         + str(page.evaluate("() => window.ngis && window.ngis.errors")))
