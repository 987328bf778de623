"""Start the server: check the config, write its OpenAPI document, run uvicorn.

uvicorn runs pygeoapi's Starlette app (through :func:`gis.server.app.create_app`) with uvloop and
httptools, ``--workers`` processes sharing the port; never Flask's debug server.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gis.errors import NgisError
from gis.server.config import URL_VAR, load_config


class ServerConfigError(NgisError):
    """The server configuration is missing or does not match what it points at."""


def check_config(config_path: str | os.PathLike) -> dict:
    """Load ``config_path`` and check that the store and tilesets it names exist."""
    path = Path(config_path)
    if not path.is_file():
        raise ServerConfigError(f"no server config at {path}: write one with `ngis config "
                                "--store STORE --tiles DIR --out FILE` or `ngis serve --init`")
    try:
        config = load_config(path)
    except Exception as err:  # YAML syntax, missing ${VAR}
        raise ServerConfigError(f"{path}: cannot read the config: {err}") from err
    for key in ("server", "metadata", "resources"):
        if key not in config:
            raise ServerConfigError(f"{path}: not a pygeoapi config (no {key!r} section)")
    ngis = config.get("ngis") or {}
    store = ngis.get("store")
    if store and "://" not in str(store) and not Path(store).is_file():
        raise ServerConfigError(f"{path}: the store {store} does not exist (run `ngis ingest`, "
                                "or `make demo`)")
    for name, folder in (ngis.get("tilesets") or {}).items():
        if not (Path(folder) / "tileset.json").is_file():
            raise ServerConfigError(f"{path}: tileset {name!r}: {folder}/tileset.json does not "
                                    "exist (run `ngis tiles build`, then `ngis config` again)")
    return config


def prepare(config_path: str | os.PathLike, url: str) -> Path:
    """Set the environment pygeoapi reads and write the OpenAPI document for ``url``.

    Returns the OpenAPI document's path.
    """
    from pygeoapi.openapi import generate_openapi_document

    config_path = Path(config_path).resolve()
    config = check_config(config_path)
    os.environ[URL_VAR] = url.rstrip("/")
    os.environ["PYGEOAPI_CONFIG"] = str(config_path)
    cache = Path((config.get("ngis") or {}).get("cache") or "build/server-cache")
    cache.mkdir(parents=True, exist_ok=True)
    try:
        document = generate_openapi_document(config_path, "json")
    except Exception as err:
        raise ServerConfigError(f"{config_path}: pygeoapi cannot describe this config: "
                                f"{type(err).__name__}: {err}") from err
    out = (cache / "openapi.json").resolve()
    fd, tmp = tempfile.mkstemp(prefix=".openapi.", dir=cache)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(document)
    os.replace(tmp, out)
    os.environ["PYGEOAPI_OPENAPI"] = str(out)
    return out


def serve(config_path: str | os.PathLike, host: str = "127.0.0.1", port: int = 5000,
          workers: int = 1, url: str | None = None) -> None:
    """Run the server in the foreground until interrupted."""
    import uvicorn

    prepare(config_path, url or f"http://{host}:{port}")
    uvicorn.run("gis.server.app:create_app", factory=True, host=host, port=port,
                workers=workers if workers > 1 else None, loop="uvloop", http="httptools",
                log_level="warning", access_log=False, server_header=False)
