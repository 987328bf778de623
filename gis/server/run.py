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
        if not ((Path(folder) / "tileset.json").is_file() or
                (Path(folder) / "layer.json").is_file()):   # 3D Tiles, or terrain
            raise ServerConfigError(f"{path}: tileset {name!r}: {folder}/tileset.json does not "
                                    "exist (run `ngis tiles build` or `ngis terrain build`, "
                                    "then `ngis config` again)")
    return config


def prepare(config_path: str | os.PathLike, url: str) -> dict[str, tuple[Path, Path]]:
    """Set the environment the workers read; write one config and OpenAPI document per grade.

    Each grade's config is the server config projected to what that grade may see
    (:func:`gis.server.access.grades.project`); with ``ngis.access.enabled: false`` there is one
    projection, ``all``, the config as it is. Returns {grade: (config path, OpenAPI path)}; the
    same mapping goes to the workers as JSON in ``NGIS_PROJECTIONS``.
    """
    import hashlib
    import json

    import yaml
    from pygeoapi.openapi import generate_openapi_document

    from gis.server.access.grades import GradeError, access_paths, access_settings, check_config as \
        check_grades, project

    config_path = Path(config_path).resolve()
    config = check_config(config_path)
    text = config_path.read_text(encoding="utf-8")
    raw = yaml.safe_load(text)  # ${VAR} left as written: pygeoapi expands them when it loads
    try:
        grades = check_grades(raw)
    except GradeError as err:
        raise ServerConfigError(f"{config_path}: {err}") from None
    os.environ[URL_VAR] = url.rstrip("/")
    os.environ["PYGEOAPI_CONFIG"] = str(config_path)
    cache = Path((config.get("ngis") or {}).get("cache") or "build/server-cache")
    out_dir = cache / "grades"
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = hashlib.sha256((text + "\0" + url).encode()).hexdigest()[:12]
    enabled = access_settings(raw).get("enabled", True) is not False
    views = ({g: project(raw, g, grades) for g in grades.names} if enabled else {"all": raw})
    projections: dict[str, tuple[Path, Path]] = {}
    for grade, view in views.items():
        cfg = (out_dir / f"{grade}-{tag}.yml").resolve()
        _write_atomic(cfg, yaml.safe_dump(view, sort_keys=False, allow_unicode=True))
        try:
            document = generate_openapi_document(cfg, "json")
        except Exception as err:
            raise ServerConfigError(f"{config_path}: pygeoapi cannot describe this config "
                                    f"({grade} grade): {type(err).__name__}: {err}") from err
        doc = (out_dir / f"{grade}-{tag}.openapi.json").resolve()
        _write_atomic(doc, document)
        projections[grade] = (cfg, doc)
    if enabled:  # the key database exists before the workers start (and is writable)
        from gis.server.access.keys import KeyStore

        db = access_paths(config)[0]
        try:
            KeyStore(db).pepper()
        except Exception as err:
            from gis.server.access.db import redact

            raise ServerConfigError(f"{config_path}: cannot open the key database "
                                    f"{redact(db)}: {str(err).strip()}") from err
        jwt_settings = access_settings(raw).get("jwt")
        if jwt_settings:  # a bad issuer/JWKS stops the start, not every request
            from gis.server.access.keys import USER_CLASSES
            from gis.server.access.tokens import TokenConfigError, TokenVerifier

            try:
                TokenVerifier(jwt_settings, grades.names, USER_CLASSES)
            except TokenConfigError as err:
                raise ServerConfigError(f"{config_path}: ngis.access.jwt: {err}") from None
    os.environ["NGIS_PROJECTIONS"] = json.dumps({g: [str(c), str(d)]
                                                 for g, (c, d) in projections.items()})
    os.environ["PYGEOAPI_OPENAPI"] = str(projections[next(reversed(projections))][1])
    return projections


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def serve(config_path: str | os.PathLike, host: str = "127.0.0.1", port: int = 5000,
          workers: int = 1, url: str | None = None) -> None:
    """Run the server in the foreground until interrupted."""
    import uvicorn

    prepare(config_path, url or f"http://{host}:{port}")
    # Model processes run numba kernels inside the workers. Parallel regions whose threads
    # outnumber the cores wait on each other (measured here: a 90 x 90 flood run took 30 s with
    # 2 threads per worker on a loaded 2-core machine, 0.9 s with 1), so the workers share the
    # cores instead of each taking all of them; an explicit NUMBA_NUM_THREADS wins.
    os.environ.setdefault("NUMBA_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    uvicorn.run("gis.server.app:create_app", factory=True, host=host, port=port,
                workers=workers if workers > 1 else None, loop="uvloop", http="httptools",
                log_level="warning", access_log=False, server_header=False)
