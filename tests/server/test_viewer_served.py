"""The viewer as the server serves it, in real headless Chromium: every tileset loads from the
server, nothing is fetched beyond loopback, layers toggle, the underground view turns the globe
translucent, and a click shows a building's attributes. Heights line up: the terrain CesiumJS
samples is the DEM plus the EGM96 undulation, and a building's roof, sampled in the scene, is
that ground plus the building's height from the store. Without terrain the page says so. Saves
screenshots."""

from __future__ import annotations

from pathlib import Path

from browser import browser_page, require_cesium, wait_for_tiles

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"


def test_viewer_at_slash_viewer(server):
    require_cesium()
    with browser_page() as page:
        page.goto(f"{server.url}/viewer/?msaa=1")
        wait_for_tiles(page)
        shown = page.evaluate("() => window.ngis.tilesets.map(t => [t.ngisName, t.show])")
        assert dict(shown) == {"buildings": True, "buildings-lod1": False, "roads": True,
                               "pipelines": True}
        # The ground is our DEM: the terrain CesiumJS samples at a point is the DEM's height
        # there plus the EGM96 undulation (what the 3D Tiles use), within the finest level's
        # 0.5 m error and bilinear sampling.
        assert page.evaluate("() => window.ngis.terrain") == "dem-terrain"
        assert not page.is_visible("#notice")
        lon, lat, expected = _ground_truth(server)
        got = page.evaluate("""async ([lon, lat]) => {
            const points = [Cesium.Cartographic.fromDegrees(lon, lat)];
            const done = await Cesium.sampleTerrainMostDetailed(
                window.ngis.viewer.terrainProvider, points);
            return done[0].height; }""", [lon, lat])
        assert abs(got - expected) < 1.0, (got, expected)
        _check_roof(page, server)
        assert page.evaluate("() => window.ngis.tilesets.filter(t => t.show)"
                             ".every(t => t.statistics.selected > 0)")
        picked = None
        for dx, dy in [(0, 0), (20, 0), (-20, 0), (0, 20), (0, -20), (40, 40), (-40, -40)]:
            page.mouse.click(512 + dx, 384 + dy)
            page.wait_for_timeout(300)
            picked = page.evaluate("() => window.ngis.picked || null")
            if picked:
                break
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewer-served.png"))
        assert picked and picked.get("id"), picked
        # Swap LOD2 for LOD1, and look underground.
        page.click("input[data-layer='buildings']")
        page.click("input[data-layer='buildings-lod1']")
        page.click("#underground")
        wait_for_tiles(page)
        assert page.evaluate("() => window.ngis.viewer.scene.globe.translucency.enabled")
        shown = dict(page.evaluate("() => window.ngis.tilesets.map(t => [t.ngisName, t.show])"))
        assert shown["buildings-lod1"] and not shown["buildings"]
        page.screenshot(path=str(ARTIFACTS / "viewer-served-underground.png"))
        assert page.evaluate("() => window.ngis.errors") == []
        assert page.console_errors == []
        assert page.outside_requests == []


def test_viewer_shows_what_the_key_allows(graded_server):
    """Anonymous (public grade) sees no pipelines tileset at all; with a restricted key in the
    page URL the viewer lists and loads it, the key travelling with every tile request."""
    require_cesium()
    with browser_page() as page:
        page.goto(f"{graded_server.url}/viewer/?msaa=1")
        wait_for_tiles(page)
        names = page.evaluate("() => window.ngis.tilesets.map(t => t.ngisName)")
        assert "pipelines" not in names and "buildings" in names
        assert page.query_selector("#underground") is None
        assert page.evaluate("() => window.ngis.errors") == [] and page.console_errors == []
    with browser_page() as page:
        key = graded_server.keys["restricted"]
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"{graded_server.url}/viewer/?msaa=1&underground=1&key={key}")
        wait_for_tiles(page)
        names = page.evaluate("() => window.ngis.tilesets.map(t => t.ngisName)")
        assert "pipelines" in names
        assert page.evaluate("() => window.ngis.tilesets.find(t => t.ngisName === 'pipelines')"
                             ".statistics.selected > 0")
        tiles = [u for u in requests if "/3dtiles/pipelines/" in u]
        assert tiles and all(f"key={key}" in u for u in tiles)
        assert page.evaluate("() => window.ngis.errors") == [] and page.console_errors == []
        assert page.outside_requests == []


def _roof_building(server):
    """A flat-roofed building of the store with its height given, and a DEM cell centre inside
    it (at least 3 m from its outline) where the DEM agrees with its ground elevation within
    0.3 m; the largest such. Returns (id, lon, lat, DEM + geoid undulation there, height)."""
    import numpy as np
    import shapely
    from pyproj import Transformer

    from gis.store import open_store
    from tiles.geoid import undulation

    store = open_store(str(server.store))
    dem = store.read_raster("dem")
    b = store.read("buildings").to_crs(dem.crs)
    b = b[(b["roof_type"] == "flat") & (b["height"] > 0)]
    b = b.iloc[np.argsort(-b.geometry.area.to_numpy())]
    inv = ~dem.transform
    for _, row in b.iterrows():
        p = row.geometry.representative_point()
        col, r = inv @ (p.x, p.y)
        col, r = int(col), int(r)  # the cell holding the point; its centre:
        x, y = dem.transform @ (col + 0.5, r + 0.5)
        centre = shapely.Point(x, y)
        if not (0 <= r < dem.shape[0] and 0 <= col < dem.shape[1]):
            continue
        ground = float(dem.data[r, col])
        if row.geometry.buffer(-3.0).contains(centre) and \
                abs(ground - row["ground_elevation"]) < 0.3:
            lon, lat = Transformer.from_crs(dem.crs, 4326, always_xy=True).transform(x, y)
            n = float(np.asarray(undulation(lat, lon)))
            return row["id"], lon, lat, ground + n, float(row["height"])
    raise AssertionError("no flat-roofed building on even ground in the demo store")


def _check_roof(page, server):
    """The scene height over the LOD2 buildings at a building (roads and pipelines left out)
    is its roof: DEM + N + height within 1 m; the terrain there is DEM + N within 1 m."""
    bid, lon, lat, ground, height = _roof_building(server)
    roof, terrain = page.evaluate("""async ([lon, lat]) => {
        const v = window.ngis.viewer;
        const others = window.ngis.tilesets.filter(t => t.ngisName !== 'buildings');
        const at = () => [Cesium.Cartographic.fromDegrees(lon, lat)];
        const roof = await v.scene.sampleHeightMostDetailed(at(), others);
        const ground = await Cesium.sampleTerrainMostDetailed(v.terrainProvider, at());
        return [roof[0].height, ground[0].height]; }""", [lon, lat])
    assert abs(terrain - ground) < 1.0, (bid, terrain, ground)
    assert abs(roof - (ground + height)) < 1.0, (bid, roof, ground, height)


def test_notice_without_terrain(demo_tilesets):
    """Served without terrain (``ngis view`` of a tileset), the viewer keeps CesiumJS's ellipsoid
    and shows a notice saying the ground is missing."""
    from browser import serve

    with serve({"buildings": demo_tilesets / "buildings"}) as base, browser_page() as page:
        page.goto(f"{base}/viewer/index.html?msaa=1")
        wait_for_tiles(page)
        assert page.evaluate("() => window.ngis.terrain") is None
        assert page.evaluate("() => window.ngis.viewer.terrainProvider instanceof "
                             "Cesium.EllipsoidTerrainProvider")
        assert page.is_visible("#notice")
        text = page.inner_text("#notice")
        assert "No terrain" in text and "ellipsoid" in text
        assert page.evaluate("() => window.ngis.errors") == []
        assert page.console_errors == [] and page.outside_requests == []


def _ground_truth(server):
    """A point in the middle of the demo DEM: (lon, lat, DEM height + geoid undulation)."""
    import numpy as np
    from pyproj import Transformer

    from gis.store import open_store
    from tiles.geoid import undulation

    dem = open_store(str(server.store)).read_raster("dem")
    row, col = dem.shape[0] // 2 + 0.5, dem.shape[1] // 2 + 0.5     # a cell centre
    x, y = dem.transform @ (col, row)
    lon, lat = Transformer.from_crs(dem.crs, 4326, always_xy=True).transform(x, y)
    h = float(dem.data[int(row), int(col)]) + float(np.asarray(undulation(lat, lon)))
    return lon, lat, h


def test_hazard_models_drape_on_the_terrain(server):
    """Each hazard button runs its OGC API Process over the view and drapes the result, with a
    legend; the public grade has no crash hot-spot button (crashes are agency data)."""
    require_cesium()
    with browser_page() as page:
        page.goto(f"{server.url}/viewer/?msaa=1")
        wait_for_tiles(page)
        buttons = page.evaluate("() => [...document.querySelectorAll('#hazards button')]"
                                ".map(b => b.id)")
        assert buttons == ["hazard-flood", "hazard-landslide", "hazard-hotspots"]
        for hazard in ("flood", "landslide", "hotspots"):
            page.evaluate(f"() => document.getElementById('hazard-{hazard}').click()")
            page.wait_for_function(f"() => !!window.ngis.hazards['{hazard}'] || "
                                   "window.ngis.errors.length > 0", timeout=120_000)
            assert page.evaluate("() => window.ngis.errors") == []
            assert page.evaluate("() => window.ngis.hazardFeatures") > 0, hazard
            assert page.is_visible("#legend")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "viewer-hazards.png"))
        assert page.console_errors == [] and page.outside_requests == []


def test_hazard_buttons_follow_the_grade(graded_server):
    require_cesium()
    with browser_page() as page:
        page.goto(f"{graded_server.url}/viewer/?msaa=1")
        page.wait_for_function("() => document.querySelectorAll('#hazards button').length >= 2",
                               timeout=60_000)
        page.wait_for_timeout(500)
        buttons = page.evaluate("() => [...document.querySelectorAll('#hazards button')]"
                                ".map(b => b.id)")
        assert buttons == ["hazard-flood", "hazard-landslide"]
