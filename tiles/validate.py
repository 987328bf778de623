"""Validation helpers: the Khronos glTF validator (npm ``gltf-validator``, run with node) on the
content we write. Used by the tests and by ``ngis tiles info --validate``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "validate-gltf.mjs"


class ValidatorUnavailable(RuntimeError):
    """node or the npm packages are missing (run ``make install``)."""


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise ValidatorUnavailable("node is not installed (apt-get install nodejs)")
    if not (ROOT / "node_modules" / "gltf-validator").is_dir():
        raise ValidatorUnavailable("npm packages missing: run `make install` (npm ci)")
    return node


def validate_gltf(paths: list[str | os.PathLike], batch: int = 200) -> list[dict]:
    """Validate glb/b3dm files; one report dict per file (``errors``, ``warnings``, ``messages``).

    Raises:
        ValidatorUnavailable: node or gltf-validator is not installed.
    """
    node = _node()
    reports: list[dict] = []
    paths = [str(p) for p in paths]
    for i in range(0, len(paths), batch):
        chunk = paths[i:i + batch]
        proc = subprocess.run([node, str(SCRIPT), *chunk], capture_output=True, text=True,
                              cwd=ROOT, check=False, timeout=600)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if len(lines) != len(chunk):
            raise RuntimeError(f"gltf-validator failed: {proc.stderr.strip()[:2000]}")
        reports.extend(json.loads(ln) for ln in lines)
    return reports
