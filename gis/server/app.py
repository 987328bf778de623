"""The NGIS 3D server: pygeoapi's Starlette application with our providers, plus the 3D Tiles, the
CesiumJS viewer and CesiumJS itself as static files, all on one port.

pygeoapi reads its configuration when its module is imported, from ``PYGEOAPI_CONFIG`` and
``PYGEOAPI_OPENAPI``; :func:`create_app` is the uvicorn factory (``ngis serve`` sets both variables
and prepares the OpenAPI document first, see :mod:`gis.server.run`).

Routes in front of pygeoapi:

- ``/3dtiles/`` lists the tilesets; ``/3dtiles/<name>/...`` serves a tileset folder;
- ``/viewer/`` the viewer page (``/viewer/tilesets.json`` lists what it shows);
- ``/cesium/`` CesiumJS from ``node_modules`` (no Cesium ion, nothing from outside);
- everything else is pygeoapi (landing page, collections, items, tiles, coverage, records,
  processes, OpenAPI).
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path
from typing import Any

from gis.server.config import load_config
from gis.server.static import folder_app, not_found, send_bytes

ROOT = Path(__file__).resolve().parents[2]
CESIUM = ROOT / "node_modules" / "cesium" / "Build" / "Cesium"
VIEWER = ROOT / "viewer"
# A 1x1 transparent PNG: the "base map" of pygeoapi's HTML item pages, so they fetch no
# third-party tiles.
BLANK_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082")


def _tile_cache_control(path: Path) -> str:
    # tileset.json changes on every rebuild: always revalidate (cheap with the ETag). Contents
    # are rewritten only when their features change; a few minutes' caching is safe.
    return "no-cache" if path.suffix == ".json" else "public, max-age=300"


class NgisApp:
    """ASGI dispatcher: our static routes first, pygeoapi for the rest."""

    def __init__(self, api, config: dict[str, Any]):
        self.api = api
        ngis = config.get("ngis") or {}
        self.tilesets = {name: folder_app(Path(folder), _tile_cache_control)
                         for name, folder in (ngis.get("tilesets") or {}).items()}
        self.listing = [{"name": name, "url": f"/3dtiles/{name}/tileset.json"}
                        for name in self.tilesets]
        self.viewer = folder_app(VIEWER, "no-cache")
        self.cesium = folder_app(CESIUM, "public, max-age=86400")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":  # lifespan (and websockets): pygeoapi's
            await self.api(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/3dtiles"):
            await self._tiles(scope, receive, send, path[len("/3dtiles"):])
        elif path.startswith("/viewer"):
            await self._viewer(scope, receive, send, path[len("/viewer"):])
        elif path.startswith("/cesium/"):
            await self.cesium(dict(scope, path=path[len("/cesium"):]), receive, send)
        else:
            await self.api(scope, receive, send)

    async def _tiles(self, scope, receive, send, rest: str) -> None:
        if rest in ("", "/"):
            body = json.dumps({"tilesets": self.listing}).encode()
            await send_bytes(send, 200, body, "application/json")
            return
        name, _, inner = rest.lstrip("/").partition("/")
        app = self.tilesets.get(name)
        if app is None:
            await not_found(send, f"no tileset {name!r}")
            return
        await app(dict(scope, path="/" + inner), receive, send)

    async def _viewer(self, scope, receive, send, rest: str) -> None:
        if rest == "":
            await send_bytes(send, 308, b"", "text/plain", [(b"location", b"/viewer/")])
        elif rest == "/tilesets.json":
            await send_bytes(send, 200, json.dumps(self.listing).encode(), "application/json",
                             [(b"cache-control", b"no-cache")])
        elif rest == "/blank-tile.png":
            await send_bytes(send, 200, BLANK_PNG, "image/png",
                             [(b"cache-control", b"public, max-age=86400")])
        else:
            await self.viewer(dict(scope, path=rest if rest != "/" else "/index.html"),
                              receive, send)


def create_app() -> NgisApp:
    """The uvicorn factory: pygeoapi configured from ``PYGEOAPI_CONFIG``/``PYGEOAPI_OPENAPI``."""
    config_path = os.environ.get("PYGEOAPI_CONFIG")
    if not config_path:
        raise RuntimeError("PYGEOAPI_CONFIG is not set (start the server with `ngis serve`)")
    import pygeoapi.starlette_app as pygeoapi_app  # reads the environment on import

    from gis.server import compat

    compat.apply()
    app = NgisApp(pygeoapi_app.APP, load_config(config_path))
    # Everything loaded so far lives as long as the process: keep it out of the collector's
    # full passes, which otherwise add 30-70 ms pauses to requests.
    gc.collect()
    gc.freeze()
    return app
