"""Make a server's OpenAPI document self-contained without the network.

pygeoapi's document ``$ref``s OGC schemas on schemas.opengis.net (and a few on other hosts).
``../shared/schemas/ogcapi`` holds the OGC API Features Part 1 and CQL2 documents laid out as on
that host: those references are inlined from there. References to documents we do not hold
(Tiles, Processes, Coverages, Records fragments, geojson.org) become permissive placeholders:
a parameter we cannot describe is left out, a response keeps only a description, a schema
accepts anything. Cycles (GeoJSON geometry collections) end in a permissive schema.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import yaml

HOSTS = {"schemas.opengis.net": ""}
# CQL2's JSON Schema uses $dynamicRef, which schemathesis cannot generate from: bodies become
# arbitrary JSON instead (the server must then answer 400, never 5xx).
NOT_INLINED = {"https://schemas.opengis.net/cql2/1.0/cql2.json"}


def _local(url: str, root: Path) -> Path | None:
    parts = urlsplit(url)
    if parts.netloc not in HOSTS or url in NOT_INLINED:
        return None
    path = root / parts.path.lstrip("/")
    return path if path.is_file() else None


def _pointer(doc: Any, fragment: str) -> Any:
    node = doc
    for part in [p for p in fragment.lstrip("/").split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


class Inliner:
    def __init__(self, root: Path):
        self.root = root
        self.docs: dict[str, Any] = {}
        self.missing: set[str] = set()

    def _load(self, url: str) -> Any | None:
        if url not in self.docs:
            path = _local(url, self.root)
            if path is None:
                self.missing.add(url)
                self.docs[url] = None
            else:
                text = path.read_text(encoding="utf-8")
                self.docs[url] = json.loads(text) if path.suffix == ".json" else \
                    yaml.safe_load(text)
        return self.docs[url]

    def resolve(self, node: Any, base: str | None, context: str, stack: tuple = ()) -> Any:
        """``node`` with every non-local reference inlined (``base`` is the URL of the document
        the node sits in; None for the server's own document)."""
        if isinstance(node, list):
            out = []
            for item in node:
                value = self.resolve(item, base, context, stack)
                if value is not _DROP:
                    out.append(value)
            return out
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and (base is not None or not ref.startswith("#")):
            target = urljoin(base or "", ref)
            url, _, fragment = target.partition("#")
            if target in stack:  # a cycle
                return {}
            doc = self._load(url)
            if doc is None:
                return _placeholder(context, target)
            try:
                fragment_node = _pointer(doc, fragment)
            except (KeyError, IndexError, ValueError):
                return _placeholder(context, target)
            return self.resolve(copy.deepcopy(fragment_node), url, context, stack + (target,))
        out = {}
        for key, value in node.items():
            ctx = key if key in ("parameters", "responses", "schema", "schemas") else context
            out[key] = self.resolve(value, base, ctx, stack)
        return out


_DROP = object()
_STRINGS = {"type": "array", "items": {"type": "string"}}
# The parameters we reference but do not hold, as their standards define them (OGC API Tiles
# Part 1, Coverages Part 1, Records Part 1).
KNOWN_PARAMETERS = {
    "tileMatrixSetId": {"name": "tileMatrixSetId", "in": "path", "required": True,
                        "schema": {"type": "string"}},
    "tileMatrix": {"name": "tileMatrix", "in": "path", "required": True,
                   "schema": {"type": "string"}},
    "tileRow": {"name": "tileRow", "in": "path", "required": True,
                "schema": {"type": "integer", "minimum": 0}},
    "tileCol": {"name": "tileCol", "in": "path", "required": True,
                "schema": {"type": "integer", "minimum": 0}},
    "subset": {"name": "subset", "in": "query", "required": False, "style": "form",
               "explode": False, "schema": _STRINGS},
    "sortby.yaml": {"name": "sortby", "in": "query", "required": False, "style": "form",
                    "explode": False, "schema": _STRINGS},
    "q.yaml": {"name": "q", "in": "query", "required": False, "style": "form",
               "explode": False, "schema": _STRINGS},
}


def _placeholder(context: str, target: str) -> Any:
    if context == "parameters":
        name = target.rstrip("/").split("/")[-1]
        known = KNOWN_PARAMETERS.get(name)
        return copy.deepcopy(known) if known else _DROP
    if context == "responses":
        return {"description": "(schema not available offline)"}
    return {}


def inline(document: dict[str, Any], schemas_root: Path) -> tuple[dict[str, Any], set[str]]:
    """Return (self-contained document, URLs that could not be inlined)."""
    inliner = Inliner(schemas_root)
    return inliner.resolve(document, None, "document"), inliner.missing
