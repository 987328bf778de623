"""Static files for 3D Tiles, the viewer and CesiumJS, as small ASGI apps.

3D Tiles contents may be stored gzipped (``tiles build`` gzips at rest): those are sent as they are
with ``Content-Encoding: gzip`` to clients that accept it, and inflated for the rare ones that do
not. Every response carries a strong ETag (size and modification time), answers ``If-None-Match``
with 304, and allows any origin (CesiumJS on another port may read it).
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
from pathlib import Path
from typing import Callable

TYPES = {".glb": "model/gltf-binary", ".gltf": "model/gltf+json", ".b3dm": "application/octet-stream",
         ".i3dm": "application/octet-stream", ".pnts": "application/octet-stream",
         ".cmpt": "application/octet-stream", ".subtree": "application/octet-stream",
         ".json": "application/json", ".js": "text/javascript", ".mjs": "text/javascript",
         ".css": "text/css", ".html": "text/html; charset=utf-8", ".png": "image/png",
         ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".wasm": "application/wasm",
         ".svg": "image/svg+xml", ".xml": "application/xml", ".ktx2": "image/ktx2",
         ".pbf": "application/vnd.mapbox-vector-tile", ".tif": "image/tiff",
         # Cesium quantized-mesh terrain (ngis terrain build: gzip at rest, sent as it is).
         ".terrain": "application/vnd.quantized-mesh;extensions=octvertexnormals-watermask"}
GZIP_MAGIC = b"\x1f\x8b"
COMPRESSIBLE = {".js", ".mjs", ".css", ".json", ".html", ".svg", ".xml", ".gltf", ".glsl"}
_gzipped: dict[tuple[str, str], bytes] = {}  # (path, etag) -> gzip body: Cesium.js is 6 MB


def content_type(path: Path) -> str:
    return TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or \
        "application/octet-stream"


def resolve(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is a file inside ``root`` (no ``..`` escapes), else None."""
    if "\x00" in relative:
        return None
    target = (root / relative.lstrip("/")).resolve()
    root = root.resolve()
    if target != root and root not in target.parents:
        return None
    return target if target.is_file() else None


def etag(stat: os.stat_result) -> str:
    return '"' + hashlib.blake2s(f"{stat.st_size}:{stat.st_mtime_ns}".encode(),
                                 digest_size=10).hexdigest() + '"'


async def send_file(scope, send, path: Path, cache_control: str) -> None:
    """Send ``path`` (GET or HEAD) with content type, ETag, CORS and gzip handling."""
    stat = path.stat()
    tag = etag(stat)
    headers = _headers(scope)
    base = [(b"etag", tag.encode()), (b"cache-control", cache_control.encode()),
            (b"access-control-allow-origin", b"*"), (b"vary", b"Accept-Encoding"),
            (b"access-control-expose-headers", b"ETag, Content-Encoding")]
    if tag in [t.strip() for t in headers.get("if-none-match", "").split(",")]:
        await send({"type": "http.response.start", "status": 304, "headers": base})
        await send({"type": "http.response.body", "body": b""})
        return
    body = path.read_bytes()
    accepts_gzip = "gzip" in headers.get("accept-encoding", "")
    if body[:2] == GZIP_MAGIC and path.suffix.lower() != ".gz":  # gzipped at rest
        if accepts_gzip:
            base.append((b"content-encoding", b"gzip"))
        else:
            body = gzip.decompress(body)
    elif accepts_gzip and len(body) > 1024 and path.suffix.lower() in COMPRESSIBLE:
        key = (str(path), tag)
        if key not in _gzipped:
            _gzipped[key] = gzip.compress(body, compresslevel=6, mtime=0)
        body = _gzipped[key]
        base.append((b"content-encoding", b"gzip"))
    base += [(b"content-type", content_type(path).encode()),
             (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": base})
    await send({"type": "http.response.body",
                "body": b"" if scope["method"] == "HEAD" else body})


async def send_bytes(send, status: int, body: bytes, ctype: str,
                     extra: list[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype.encode()),
                            (b"content-length", str(len(body)).encode()),
                            (b"access-control-allow-origin", b"*"), *extra]})
    await send({"type": "http.response.body", "body": body})


async def not_found(send, what: str = "not found") -> None:
    body = ('{"code": "NotFound", "description": "%s"}' % what).encode()
    await send_bytes(send, 404, body, "application/json")


def folder_app(root: Path, cache_control: str | Callable[[Path], str]):
    """An ASGI app serving files under ``root``; the path is the scope's path after the mount."""

    async def app(scope, receive, send):
        if scope["method"] not in ("GET", "HEAD"):
            await send_bytes(send, 405, b'{"code": "MethodNotAllowed"}', "application/json",
                             [(b"allow", b"GET, HEAD")])
            return
        path = resolve(root, scope["path"])
        if path is None:
            await not_found(send)
            return
        cc = cache_control(path) if callable(cache_control) else cache_control
        await send_file(scope, send, path, cc)

    return app


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
