"""The NGIS 3D server: pygeoapi's Starlette application with our providers, plus the 3D Tiles, the
CesiumJS viewer and CesiumJS itself as static files, all on one port, behind graded access.

Graded access (issue 5, :mod:`gis.server.access`): ``ngis serve`` writes, per grade, the server
config projected to what that grade may see and its OpenAPI document
(:func:`gis.server.run.prepare`). pygeoapi's Starlette module reads its configuration from the
environment when it is imported and keeps it in module globals, so :func:`create_app` executes
one independent instance of that module per grade. Each request is then

1. authenticated: an API key as ``X-API-Key``, ``Authorization: Bearer`` or the query parameter
   ``key`` (removed from the query before anything else sees it: pygeoapi's links, the audit
   log), or a signed token (JWT) from the configured issuer in the same places
   (:mod:`gis.server.access.tokens`); no key means the anonymous grade
   (``ngis.access.anonymous``, default ``public``; ``none`` answers 401). A malformed, unknown,
   revoked or expired key answers 401 with one body for all four;
2. rate-limited, then dispatched to its grade's pygeoapi app (or 3D Tiles folder), metered and
   audited (see :meth:`NgisApp._hooks`);
3. marked: ``Vary: Authorization, X-API-Key`` always, ``Cache-Control: private`` when a key was
   used (what anyone may fetch without a key is public, whatever the anonymous grade).

What a grade may not see does not exist for it: the same status and body as a resource that
never existed, in every route. Only ``/cesium/`` and the viewer's own files (not its
``tilesets.json``) are served without a grade: they are code, not data.

Routes in front of pygeoapi:

- ``/3dtiles/`` lists the tilesets; ``/3dtiles/<name>/...`` serves a tileset folder;
- ``/viewer/`` the viewer page (``/viewer/tilesets.json`` lists what it shows);
- ``/cesium/`` CesiumJS from ``node_modules`` (no Cesium ion, nothing from outside);
- everything else is pygeoapi (landing page, collections, items, tiles, coverage, records,
  processes, OpenAPI).
"""

from __future__ import annotations

import gc
import gzip
import importlib.util
import json
import logging
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gis.server.access.grades import Grades, access_paths, access_settings, anonymous_grade
from gis.server.access.keys import USER_CLASSES, KeyStore, KeyVerifier
from gis.server.access.tokens import TokenVerifier, looks_like_jwt
from gis.server.jobs import ANONYMOUS as ANONYMOUS_OWNER
from gis.server.config import load_config
from gis.server.static import folder_app, not_found, send_bytes

log = logging.getLogger(__name__)

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


UNAUTHORIZED = (b'{"code": "Unauthorized", "description": "a valid API key is required: '
                b'X-API-Key header, Authorization: Bearer, or the key query parameter"}')
PREFLIGHT_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, HEAD, POST, PUT, DELETE, OPTIONS"),
    (b"access-control-allow-headers",
     b"Authorization, X-API-Key, Content-Type, Accept, Accept-Language, If-None-Match, Prefer"),
    (b"access-control-max-age", b"600"),
    (b"vary", b"Origin")]
VARY = (b"vary", b"Authorization, X-API-Key")
_NUMBER_RETURNED = re.compile(rb'"numberReturned"\s*:\s*(\d+)')
_TILE_PATH = re.compile(r"^/collections/[^/]+/tiles/[^/]+/\d+/\d+/\d+$")


class Client:
    """Who is asking: the key's name (``anonymous`` without a key), grade and limits."""

    __slots__ = ("key_id", "grade", "user_class", "rate", "keyed", "bucket")

    def __init__(self, key_id: str, grade: str, user_class: str, rate: int, keyed: bool,
                 bucket: str | None = None):
        self.key_id, self.grade, self.user_class = key_id, grade, user_class
        self.rate, self.keyed = rate, keyed
        self.bucket = bucket or key_id  # the rate-limit bucket: the key, or anonymous@address


class GradeView:
    """What one grade sees: its pygeoapi app and its 3D tilesets."""

    def __init__(self, name: str, api, config: dict[str, Any], tilesets: dict[str, Any]):
        self.name = name
        self.api = api
        visible = (config.get("ngis") or {}).get("tilesets") or {}
        self.tilesets = {t: app for t, app in tilesets.items() if t in visible}
        # A folder with layer.json is terrain (quantized-mesh): the viewer puts it under the
        # globe; the others are 3D tilesets.
        listing = [{"name": t, "kind": "terrain", "url": f"/3dtiles/{t}/"}
                   if (Path(visible[t]) / "layer.json").is_file() and
                   not (Path(visible[t]) / "tileset.json").is_file()
                   else {"name": t, "url": f"/3dtiles/{t}/tileset.json"} for t in self.tilesets]
        self.listing = json.dumps({"tilesets": listing}).encode()
        self.viewer_listing = json.dumps(listing).encode()


class NgisApp:
    """ASGI dispatcher: authentication, then our static routes or the grade's pygeoapi app."""

    def __init__(self, views: dict[str, tuple[Any, dict[str, Any]]], config: dict[str, Any],
                 *, grades: Grades | None = None):
        ngis = config.get("ngis") or {}
        settings = access_settings(config)
        self.enabled = settings.get("enabled", True) is not False
        tilesets = {name: folder_app(Path(folder), _tile_cache_control)
                    for name, folder in (ngis.get("tilesets") or {}).items()}
        self.views = {g: GradeView(g, api, cfg, tilesets) for g, (api, cfg) in views.items()}
        self.lifespan_app = next(iter(self.views.values())).api
        self.viewer = folder_app(VIEWER, "no-cache")
        self.cesium = folder_app(CESIUM, "public, max-age=86400")
        self.grades = grades or Grades.load()
        self.anonymous = anonymous_grade(config) if self.enabled else None
        self.lowest = self.grades.names[0]
        self.anonymous_rate = int(settings.get("anonymous_rate") or
                                  self.grades.rate_limits.get(self.anonymous or self.lowest))
        db, audit = access_paths(config)
        self.keys = KeyVerifier(KeyStore(db)) if self.enabled else None
        jwt_settings = settings.get("jwt")
        self.tokens = (TokenVerifier(jwt_settings, self.grades.names, USER_CLASSES)
                       if self.enabled and jwt_settings else None)
        self.limiter, self.meter, self.audit = (self._hooks(config, db, audit) if self.enabled
                                                else (None, None, None))

    @staticmethod
    def _hooks(config, db: Path | str, audit: Path):
        """The rate limiter (a local SQLite file: the access database itself unless that is
        PostgreSQL), the usage meter (in the access database) and the audit log (its own
        folder, ``ngis.access.audit``)."""
        from gis.server.access.audit import AuditLog
        from gis.server.access.metering import Meter, ratelimit_path
        from gis.server.access.ratelimit import RateLimiter

        return RateLimiter(ratelimit_path(config)), Meter(db), AuditLog(audit)

    def _on_shutdown(self, receive):
        """``receive`` that writes this worker's pending usage when the server shuts down (its
        background flush runs only every second)."""

        async def wrapped():
            message = await receive()
            if message.get("type") == "lifespan.shutdown" and self.meter is not None:
                flush = getattr(self.meter, "flush", None)
                if flush is not None:
                    try:
                        flush()
                    except Exception as err:  # the counts stay in memory for the exit hook
                        log.warning("usage meter: flush at shutdown failed: %s", err)
            return message

        return wrapped

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":  # pygeoapi's, and our meter's last flush at shutdown
            await self.lifespan_app(scope, self._on_shutdown(receive), send)
            return
        if scope["type"] != "http":
            await self.lifespan_app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/cesium/"):
            await self.cesium(dict(scope, path=path[len("/cesium"):]), receive, send)
            return
        if path.startswith("/viewer") and path != "/viewer/tilesets.json":
            await self._viewer(scope, receive, send, path[len("/viewer"):])
            return
        if scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method"):
            await send_bytes(send, 204, b"", "text/plain", PREFLIGHT_HEADERS[1:])
            return
        if not self.enabled:
            await self._dispatch(self.views["all"], scope, receive, send, path)
            return
        scope, client = self._authenticate(scope)
        if client is None:
            await send_bytes(send, 401, UNAUTHORIZED, "application/json",
                             [(b"www-authenticate", b'Bearer realm="ngis"'), VARY,
                              (b"cache-control", b"no-store")])
            self._after(scope, None, 401, len(UNAUTHORIZED), 0, time.perf_counter())
            return
        started = time.perf_counter()
        if self.limiter is not None:
            ok, retry_after = self.limiter.allow(client.bucket, client.rate)
            if not ok:
                body = b'{"code": "TooManyRequests", "description": "rate limit exceeded"}'
                await send_bytes(send, 429, body, "application/json",
                                 [(b"retry-after", str(max(1, round(retry_after + 0.5))).encode()),
                                  VARY, (b"cache-control", b"no-store")])
                self._after(scope, client, 429, len(body), 0, started)
                return
        private = client.keyed  # what anyone may fetch without a key is public
        state = {"status": 0, "bytes": 0, "features": 0}
        count_features = self.meter is not None and path.endswith("/items") \
            and scope["method"] in ("GET", "POST")
        chunks: list[bytes] = []

        async def marked_send(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                headers = _mark(message.get("headers") or [], private)
                state["gzip"] = (b"content-encoding", b"gzip") in headers
                message = dict(message, headers=headers)
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                state["bytes"] += len(body)
                if count_features:
                    chunks.append(body)
            await send(message)

        if path.startswith(("/jobs", "/processes")):
            scope = _with_owner(scope, client.key_id if client.keyed else ANONYMOUS_OWNER)
        await self._dispatch(self.views[client.grade], scope, receive, marked_send, path)
        if count_features and 200 <= state["status"] < 300:
            state["features"] = _features(b"".join(chunks), state.get("gzip", False))
        self._after(scope, client, state["status"], state["bytes"], state["features"], started)

    def _authenticate(self, scope) -> tuple[dict, Client | None]:
        """(scope without the key parameter, the client or None for 401)."""
        credentials = []
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                credentials.append(value.decode("latin-1").strip())
            elif name == b"authorization":
                scheme, _, token = value.decode("latin-1").strip().partition(" ")
                credentials.append(token.strip() if scheme.lower() == "bearer" else "")
        query = scope.get("query_string", b"")
        if b"key" in query:
            query, keys = _strip_key(query)
            if keys is not None:
                credentials += keys
                scope = dict(scope, query_string=query)
        if not credentials:
            if self.anonymous is None:
                return scope, None
            host = (scope.get("client") or ("?", 0))[0]
            return scope, Client("anonymous", self.anonymous, "public", self.anonymous_rate,
                                 False, f"anonymous@{host}")
        if len(set(credentials)) != 1:  # two different keys: refuse rather than pick
            return scope, None
        credential = credentials[0]
        if self.tokens is not None and looks_like_jwt(credential):
            token = self.tokens.verify(credential)
            if token is None:
                return scope, None
            return scope, Client(token.key_id, token.grade, token.user_class,
                                 token.rate or self.grades.rate_limits[token.grade], True)
        key = self.keys.verify(credential)
        if key is None:
            return scope, None
        return scope, Client(key.key_id, key.grade, key.user_class,
                             key.rate or self.grades.rate_limits[key.grade], True)

    def _after(self, scope, client: Client | None, status: int, size: int, features: int,
               started: float) -> None:
        if self.meter is None and self.audit is None:
            return
        path = scope["path"]
        if self.meter is not None and client is not None and 200 <= status < 300:
            resource, tiles, processes = _resource(path, scope["method"])
            self.meter.record(client.key_id, client.user_class, resource,
                              datetime.now(timezone.utc).date().isoformat(), requests=1,
                              features=features, bytes_=size, tiles=tiles, processes=processes)
        if self.audit is not None:
            query = scope.get("query_string", b"").decode("latin-1")
            self.audit.append({
                "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "key_id": client.key_id if client else None,
                "grade": client.grade if client else None,
                "method": scope["method"],
                "path": path + ("?" + query if query else ""),
                "status": status, "bytes": size,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3)})

    async def _dispatch(self, view: GradeView, scope, receive, send, path: str) -> None:
        if path.startswith("/3dtiles"):
            await self._tiles(view, scope, receive, send, path[len("/3dtiles"):])
        elif path == "/viewer/tilesets.json":
            await send_bytes(send, 200, view.viewer_listing, "application/json",
                             [(b"cache-control", b"no-cache")])
        else:
            await view.api(scope, receive, send)

    async def _tiles(self, view: GradeView, scope, receive, send, rest: str) -> None:
        if rest in ("", "/"):
            await send_bytes(send, 200, view.listing, "application/json")
            return
        name, _, inner = rest.lstrip("/").partition("/")
        app = view.tilesets.get(name)
        if app is None:  # hidden or absent: one answer for both
            await not_found(send)
            return
        await app(dict(scope, path="/" + inner), receive, send)

    async def _viewer(self, scope, receive, send, rest: str) -> None:
        if rest == "":
            await send_bytes(send, 308, b"", "text/plain", [(b"location", b"/viewer/")])
        elif rest == "/blank-tile.png":
            await send_bytes(send, 200, BLANK_PNG, "image/png",
                             [(b"cache-control", b"public, max-age=86400")])
        else:
            await self.viewer(dict(scope, path=rest if rest != "/" else "/index.html"),
                              receive, send)


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _with_owner(scope, owner: str) -> dict:
    """``scope`` with the job owner header set by us (any such header from the client dropped):
    :mod:`gis.server.jobs` shows each client only its own jobs."""
    headers = [(k, v) for k, v in scope["headers"] if k != b"x-ngis-client"]
    headers.append((b"x-ngis-client", owner.encode("utf-8", "replace")))
    return dict(scope, headers=headers)


def _strip_key(query: bytes) -> tuple[bytes, list[str] | None]:
    """The query without its ``key`` parameters, and their values (None: there were none)."""
    from urllib.parse import unquote_plus

    kept, keys = [], []
    for part in query.split(b"&"):
        name, eq, value = part.partition(b"=")
        if unquote_plus(name.decode("latin-1")) == "key":
            keys.append(unquote_plus(value.decode("latin-1")).strip())
        else:
            kept.append(part)
    return (b"&".join(kept), keys) if keys else (query, None)


def _mark(headers: list[tuple[bytes, bytes]], private: bool) -> list[tuple[bytes, bytes]]:
    """``Vary`` on the credentials; ``Cache-Control: private`` for graded responses."""
    out = []
    cache_control = None
    for name, value in headers:
        if name.lower() == b"cache-control":
            cache_control = value
            if private:
                continue
        out.append((name, value))
    out.append(VARY)
    if private:
        directives = [d.strip() for d in (cache_control or b"").split(b",")
                      if d.strip() and d.strip().lower() not in (b"public", b"private")]
        out.append((b"cache-control", b", ".join([b"private", *directives])))
    return out


def _resource(path: str, method: str) -> tuple[str, int, int]:
    """(metered resource, tiles, process runs) of a successful request."""
    parts = path.strip("/").split("/")
    if parts[0] == "collections" and len(parts) > 1:
        return parts[1], int(bool(_TILE_PATH.match(path))), 0
    if parts[0] == "3dtiles" and len(parts) > 2:
        return "3dtiles/" + parts[1], int(not path.endswith(".json")), 0
    if parts[0] == "processes" and len(parts) > 1:
        return "processes/" + parts[1], 0, int(method == "POST" and parts[-1] == "execution")
    return parts[0], 0, 0


def _features(body: bytes, gzipped: bool) -> int:
    """``numberReturned`` of an items page (0 when there is none)."""
    try:
        if gzipped:
            body = gzip.decompress(body)
    except OSError:
        return 0
    match = _NUMBER_RETURNED.search(body, max(0, len(body) - 4096)) or \
        _NUMBER_RETURNED.search(body)
    return int(match.group(1)) if match else 0


def _pygeoapi_app(config_path: str, openapi_path: str):
    """A fresh, independent instance of ``pygeoapi.starlette_app`` configured from the two files.

    The module keeps its config, OpenAPI document and API object in globals read at import, so
    each grade gets its own module object (not registered in ``sys.modules``).
    """
    os.environ["PYGEOAPI_CONFIG"] = config_path
    os.environ["PYGEOAPI_OPENAPI"] = openapi_path
    spec = importlib.util.find_spec("pygeoapi.starlette_app")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.APP


def _translation_cache_per_config() -> None:
    """pygeoapi caches the translated config of its HTML pages per locale in one module-wide
    dict (``l10n._cfg_cache``): with one API per grade, a page would render with whichever
    grade's config was translated first (a 500, or worse another grade's resources). Key that
    cache by config object as well."""
    import threading

    from pygeoapi import l10n

    if getattr(l10n.translate_struct, "ngis_per_config", False):
        return
    original = l10n.translate_struct
    cache: dict[tuple[int, Any], Any] = {}
    lock = threading.Lock()

    def translate_struct(struct, locale_, is_config: bool = False):
        if not is_config or not struct or not locale_:
            return original(struct, locale_, is_config)
        key = (id(struct), locale_)
        result = cache.get(key)
        if result is None:
            with lock:
                l10n._cfg_cache.pop(locale_, None)
                result = original(struct, locale_, True)
                l10n._cfg_cache.pop(locale_, None)
                cache[key] = result
        return result

    translate_struct.ngis_per_config = True
    l10n.translate_struct = translate_struct


def create_app() -> NgisApp:
    """The uvicorn factory: one pygeoapi app per grade, from ``NGIS_PROJECTIONS``."""
    config_path = os.environ.get("PYGEOAPI_CONFIG")
    projections = os.environ.get("NGIS_PROJECTIONS")
    if not config_path or not projections:
        raise RuntimeError("PYGEOAPI_CONFIG/NGIS_PROJECTIONS are not set (start the server with "
                           "`ngis serve`)")
    from gis.server import compat

    compat.apply()
    _translation_cache_per_config()
    config = load_config(config_path)
    views = {}
    try:
        for grade, (cfg, doc) in json.loads(projections).items():
            views[grade] = (_pygeoapi_app(cfg, doc), load_config(cfg))
    finally:
        os.environ["PYGEOAPI_CONFIG"] = config_path
    app = NgisApp(views, config)
    # Everything loaded so far lives as long as the process: keep it out of the collector's
    # full passes, which otherwise add 30-70 ms pauses to requests.
    gc.collect()
    gc.freeze()
    return app
