"""A small loopback server for the CesiumJS viewer and tilesets (until the OGC API server serves
them): CesiumJS from node_modules, the viewer page, and each tileset folder, with the right
content types, CORS, and ``Content-Encoding: gzip`` for contents stored gzipped."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
CESIUM = ROOT / "node_modules" / "cesium" / "Build" / "Cesium"
VIEWER = ROOT / "viewer"
TYPES = {".glb": "model/gltf-binary", ".b3dm": "application/octet-stream",
         ".subtree": "application/octet-stream", ".json": "application/json",
         ".js": "text/javascript", ".css": "text/css", ".html": "text/html",
         ".png": "image/png", ".jpg": "image/jpeg", ".wasm": "application/wasm"}


class _Handler(http.server.SimpleHTTPRequestHandler):
    mounts: dict[str, Path] = {}
    tilesets: list[dict[str, str]] = []

    def translate_path(self, path: str) -> str:
        path = urlsplit(path).path
        for prefix, folder in sorted(self.mounts.items(), key=lambda kv: -len(kv[0])):
            if path.startswith(prefix):
                target = (folder / path[len(prefix):]).resolve()
                if target == folder.resolve() or folder.resolve() in target.parents:
                    return str(target)
        return str(ROOT / ".nonexistent")

    def do_GET(self):
        path = urlsplit(self.path).path
        if path in ("/viewer/tilesets.json", "/processes"):
            # No OGC API here: the viewer's hazard buttons find no process to run.
            body = json.dumps(self.tilesets if path != "/processes" else {"processes": []}
                              ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if urlsplit(self.path).path in ("/", "/viewer"):
            self.send_response(302)
            self.send_header("Location", "/viewer/index.html")
            self.end_headers()
            return
        super().do_GET()

    def guess_type(self, path):
        return TYPES.get(Path(str(path)).suffix, super().guess_type(path))

    def end_headers(self):
        path = urlsplit(self.path).path
        if path.startswith("/tiles/"):
            local = Path(self.translate_path(path))
            if local.is_file():
                with open(local, "rb") as fh:
                    if fh.read(2) == b"\x1f\x8b":  # gzip at rest
                        self.send_header("Content-Encoding", "gzip")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, *args):
        pass


def make_server(tilesets: dict[str, Path], host: str = "127.0.0.1", port: int = 0):
    """A threaded HTTP server for the viewer and the given tilesets (name -> folder)."""
    if not CESIUM.is_dir():
        raise FileNotFoundError("CesiumJS is not installed: run `make install` (npm ci)")
    mounts = {"/cesium/": CESIUM, "/viewer/": VIEWER}
    mounts.update({f"/tiles/{name}/": Path(folder) for name, folder in tilesets.items()})
    listing = [{"name": name, "url": f"/tiles/{name}/tileset.json"} for name in tilesets]
    handler = type("Handler", (_Handler,), {"mounts": mounts, "tilesets": listing})
    return http.server.ThreadingHTTPServer((host, port), handler)


@contextlib.contextmanager
def serving(tilesets: dict[str, Path], host: str = "127.0.0.1", port: int = 0):
    """Serve in a background thread; yields the base URL."""
    server = make_server(tilesets, host, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
