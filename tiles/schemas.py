"""Validation of the JSON we write against the official 3D Tiles 1.1 JSON Schemas.

The schemas (CesiumGS/3d-tiles ``specification/schema``, see ``../shared/schemas/SOURCE.md``) are
read from ``NGIS_3DTILES_SCHEMAS`` or ``../shared/schemas/3d-tiles`` beside the repository; every
file is registered under its path relative to that folder so that the relative ``$ref`` s resolve
(draft 2020-12, ``referencing`` registry). The 1.1 tileset schema also accepts 1.0 tilesets (1.1
only added optional properties), so both versions validate against it.

One patch is applied in memory: ``TileFormats/featureTable.schema.json`` validates every
feature-table property it does not declare itself (which, seen from that file, includes
``BATCH_LENGTH`` declared by ``b3dm.featureTable.schema.json``) with a ``oneOf`` whose branches
``globalPropertyInteger`` and ``globalPropertyNumber`` both accept any integer, so no integer
could ever pass. We make that ``oneOf`` an ``anyOf``; ``BATCH_LENGTH`` is still checked against its
own ``globalPropertyInteger`` definition.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASE_URI = "https://ngis3d.invalid/3d-tiles/"

#: Short names of the schemas we validate against.
NAMES = {"tileset": "tileset.schema.json", "subtree": "Subtree/subtree.schema.json",
         "metadata_schema": "Schema/schema.schema.json",
         "property_table": "PropertyTable/propertyTable.schema.json",
         "b3dm_feature_table": "TileFormats/b3dm.featureTable.schema.json",
         "batch_table": "TileFormats/batchTable.schema.json"}


class SchemasUnavailable(RuntimeError):
    """The 3D Tiles JSON Schemas are not where we look for them."""


def schema_dir() -> Path:
    """Folder of the 3D Tiles JSON Schemas.

    Raises:
        SchemasUnavailable: Not found.
    """
    env = os.environ.get("NGIS_3DTILES_SCHEMAS")
    path = Path(env) if env else (ROOT / ".." / "shared" / "schemas" / "3d-tiles").resolve()
    if not (path / "tileset.schema.json").is_file():
        raise SchemasUnavailable(f"3D Tiles JSON Schemas not found in {path} "
                                 "(set NGIS_3DTILES_SCHEMAS)")
    return path


@cache
def _validators() -> dict[str, Any]:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    base = schema_dir()
    resources = []
    for p in sorted(base.rglob("*.schema.json")):
        doc = json.loads(p.read_text("utf-8"))
        if p.name == "featureTable.schema.json":  # see the module docstring
            prop = doc["definitions"]["property"]
            prop["anyOf"] = prop.pop("oneOf")
        resources.append((BASE_URI + p.relative_to(base).as_posix(),
                          Resource.from_contents(doc, default_specification=DRAFT202012)))
    registry = Registry().with_resources(resources)
    return {k: Draft202012Validator({"$ref": BASE_URI + v}, registry=registry)
            for k, v in NAMES.items()}


def schema_errors(instance: Any, name: str) -> list[str]:
    """Messages of every violation of a 3D Tiles JSON Schema (empty when valid).

    Args:
        instance: Parsed JSON.
        name: One of :data:`NAMES` (``tileset``, ``subtree``, ``metadata_schema``,
            ``property_table``, ``b3dm_feature_table``, ``batch_table``).

    Raises:
        SchemasUnavailable: The schemas are not installed.
    """
    v = _validators()[name]
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in sorted(v.iter_errors(instance), key=lambda e: list(map(str, e.path)))]
