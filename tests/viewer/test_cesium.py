"""Our tilesets in real CesiumJS (headless Chromium, SwiftShader WebGL): they load, draw, and a
clicked building shows its standard attributes; nothing is fetched from beyond loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from browser import browser_page, serve, wait_for_tiles
from gis.cli.main import cli

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"


@pytest.fixture(scope="module")
def demo_tiles(demo_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiles")
    for layer, extra in (("buildings", ["--lod", "2", "--compress", "meshopt", "--gzip"]),
                         ("roads", []), ("pipelines", ["--implicit"])):
        r = CliRunner().invoke(cli, ["tiles", "build", "--store", str(demo_store), "--layer",
                                     layer, "--out", str(out / layer), *extra])
        assert r.exit_code == 0, r.output
    return out


def test_tilesets_load_and_pick_in_cesium(demo_tiles):
    names = ("buildings", "roads", "pipelines")
    with serve({n: demo_tiles / n for n in names}) as base, browser_page() as page:
        page.goto(f"{base}/viewer/index.html?msaa=1")  # tilesets.json lists the three
        wait_for_tiles(page)
        stats = page.evaluate("""() => window.ngis.tilesets.map(t => ({
            selected: t.statistics.selected, features: t.statistics.numberOfFeaturesLoaded ??
            t.statistics.numberOfFeaturesSelected, failed: 0}))""")
        assert all(s["selected"] > 0 for s in stats), stats
        # Click the middle of the screen: the camera looks at the town, so a feature is there.
        picked = None
        for dx, dy in [(0, 0), (20, 0), (-20, 0), (0, 20), (0, -20), (40, 40), (-40, -40)]:
            page.mouse.click(512 + dx, 384 + dy)
            page.wait_for_timeout(300)
            picked = page.evaluate("() => window.ngis.picked || null")
            if picked:
                break
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewer-demo.png"))
        assert picked, "no feature under the screen centre"
        assert picked.get("id") and picked.get("source", "").startswith("NGIS synthetic demo")
        assert page.evaluate("() => window.ngis.errors") == []
        assert page.console_errors == []
        assert page.outside_requests == []
