"""Headless Chromium (Debian's, driven by Playwright) against pages served from loopback.

Nothing may leave the machine: every request to a host other than 127.0.0.1/localhost is aborted
and recorded, and the tests assert there were none.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


@contextlib.contextmanager
def serve(tilesets: dict[str, Path]):
    """The viewer server (gis.viewer) on a free loopback port; yields its base URL."""
    require_cesium()
    from gis.viewer import serving

    with serving(tilesets) as base:
        yield base


def require_cesium() -> None:
    """Skip (or fail in CI) when CesiumJS is not installed."""
    if not (ROOT / "node_modules" / "cesium" / "Build" / "Cesium").is_dir():
        _skip("CesiumJS not installed (make install runs npm ci)")


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
            s.frames > 10 && s.tilesets.length > 0 &&
            s.tilesets.every(t => !t.show || t.tilesLoaded); }""")
        stable = stable + 1 if done else 0
        if stable >= 3:
            return
        time.sleep(0.5)
    raise AssertionError("tilesets did not finish loading in time: "
                         + str(page.evaluate("() => window.ngis && window.ngis.errors")))
