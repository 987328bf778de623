"""Inspect and check a tileset directory (backs ``ngis tiles info DIR``).

Checks: tileset.json (and every subtree JSON, glTF metadata schema, property table, b3dm feature
and batch table) against the 3D Tiles 1.1 JSON Schemas when they are installed; children's
regions inside their parents'; content regions inside their tiles'; geometric errors strictly
decreasing from parent to child; every referenced content present and readable; optionally every
content through the Khronos glTF validator. Implicit tilesets are expanded from their subtrees
(tile / content metadata semantics applied), so both kinds get the same checks.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tiles.implicit import level_offset
from tiles.read import B3dm, Glb, availability_bits, decode_property_table, maybe_gunzip, \
    read_subtree
from tiles.tiling import contains

TOL = 1e-12


@dataclass
class TileInfo:
    """A tile as a client sees it.

    Attributes:
        key: ``(level, x, y)`` for implicit tiles, the JSON path (``root/0/1``) for explicit ones.
        level: Depth.
        region: Bounding region.
        geometric_error: Metres.
        content: Content URI or None.
        content_region: Content region or None.
        parent: Parent key or None.
    """

    key: Any
    level: int
    region: list[float]
    geometric_error: float
    content: str | None = None
    content_region: list[float] | None = None
    parent: Any = None
    children: list[Any] = field(default_factory=list)


def _explicit(tile: dict[str, Any], key: str, level: int, parent: Any,
              out: list[TileInfo]) -> None:
    bv = tile["boundingVolume"]
    c = tile.get("content")
    out.append(TileInfo(key, level, bv.get("region"), float(tile["geometricError"]),
                        c["uri"] if c else None,
                        (c.get("boundingVolume") or {}).get("region") if c else None, parent,
                        [f"{key}/{i}" for i in range(len(tile.get("children", [])))]))
    for i, ch in enumerate(tile.get("children", [])):
        _explicit(ch, f"{key}/{i}", level + 1, key, out)


def _demorton(m: int) -> tuple[int, int]:
    x = y = 0
    for i in range(32):
        x |= ((m >> (2 * i)) & 1) << i
        y |= ((m >> (2 * i + 1)) & 1) << i
    return x, y


def _by_semantic(schema: dict[str, Any], table: dict[str, Any], cols: dict[str, list],
                 semantic: str) -> list | None:
    props = schema["classes"][table["class"]]["properties"]
    for name, p in props.items():
        if p.get("semantic") == semantic and name in cols:
            return cols[name]
    return None


def implicit_tiles(directory: Path, tileset: dict[str, Any],
                   problems: list[str] | None = None) -> list[TileInfo]:
    """Expand an implicit QUADTREE root (region volumes) into tiles.

    Args:
        directory: Tileset folder.
        tileset: Parsed tileset.json whose root has ``implicitTiling``.
        problems: List to append subtree schema problems to (optional).

    Returns:
        Tiles in subtree order.
    """
    root = tileset["root"]
    it = root["implicitTiling"]
    if it["subdivisionScheme"] != "QUADTREE" or "region" not in root["boundingVolume"]:
        raise ValueError("only QUADTREE implicit tiling with a region is supported")
    k = it["subtreeLevels"]
    schema = tileset.get("schema", {})
    template = root.get("content", {}).get("uri")
    w, s, e, n, h0, h1 = root["boundingVolume"]["region"]
    out: list[TileInfo] = []
    todo = [(0, 0, 0)]
    while todo:
        L0, x0, y0 = todo.pop(0)
        path = directory / it["subtrees"]["uri"].format(level=L0, x=x0, y=y0)
        js, binary = read_subtree(path.read_bytes())
        if problems is not None:
            problems.extend(f"{path.name}: {m}" for m in _schema_problems(js, "subtree"))
        view = _subtree_views(js, binary)
        n_nodes = level_offset(k)
        tiles = availability_bits(js["tileAvailability"], js, binary, n_nodes)
        contents = (availability_bits(js["contentAvailability"][0], js, binary, n_nodes)
                    if "contentAvailability" in js else np.zeros(n_nodes, bool))
        child = availability_bits(js["childSubtreeAvailability"], js, binary, 4**k)
        tables = js.get("propertyTables", [])
        tmeta = cmeta = None
        if "tileMetadata" in js:
            t = tables[js["tileMetadata"]]
            cols = decode_property_table(schema, t, view)
            tmeta = (_by_semantic(schema, t, cols, "TILE_BOUNDING_REGION"),
                     _by_semantic(schema, t, cols, "TILE_GEOMETRIC_ERROR"))
        if "contentMetadata" in js:
            t = tables[js["contentMetadata"][0]]
            cmeta = _by_semantic(schema, t, decode_property_table(schema, t, view),
                                 "CONTENT_BOUNDING_REGION")
        ti = ci = 0
        for bit in np.nonzero(tiles)[0]:
            level = max(lv for lv in range(k) if level_offset(lv) <= bit)
            lx, ly = _demorton(int(bit) - level_offset(level))
            L, x, y = L0 + level, (x0 << level) + lx, (y0 << level) + ly
            dl, db = (e - w) / 2**L, (n - s) / 2**L
            region = [w + dl * x, s + db * y, w + dl * (x + 1), s + db * (y + 1), h0, h1]
            err = root["geometricError"] / 2**L
            if tmeta is not None:
                region = tmeta[0][ti] if tmeta[0] is not None else region
                err = tmeta[1][ti] if tmeta[1] is not None else err
            ti += 1
            info = TileInfo((L, x, y), L, region, float(err),
                            parent=(L - 1, x >> 1, y >> 1) if L else None)
            if contents[bit]:
                info.content = template.format(level=L, x=x, y=y)
                info.content_region = cmeta[ci] if cmeta is not None else None
                ci += 1
            out.append(info)
        for m in np.nonzero(child)[0]:
            cx, cy = _demorton(int(m))
            todo.append((L0 + k, (x0 << k) + cx, (y0 << k) + cy))
    keys = {t.key: t for t in out}
    for t in out:
        if t.parent in keys:
            keys[t.parent].children.append(t.key)
    return out


def _subtree_views(js: dict[str, Any], binary: bytes):
    def view(i: int) -> bytes:
        bv = js["bufferViews"][i]
        return binary[bv.get("byteOffset", 0):bv.get("byteOffset", 0) + bv["byteLength"]]
    return view


def _schema_problems(instance: Any, name: str) -> list[str]:
    from tiles.schemas import SchemasUnavailable, schema_errors

    try:
        return schema_errors(instance, name)
    except SchemasUnavailable:
        return []


def load_tiles(directory: str | Path, problems: list[str] | None = None) -> tuple[dict,
                                                                                   list[TileInfo]]:
    """tileset.json and its tiles (implicit ones expanded).

    Returns:
        (tileset JSON, tiles).
    """
    d = Path(directory)
    tileset = json.loads(maybe_gunzip((d / "tileset.json").read_bytes()))
    if "implicitTiling" in tileset["root"]:
        return tileset, implicit_tiles(d, tileset, problems)
    out: list[TileInfo] = []
    _explicit(tileset["root"], "root", 0, None, out)
    return tileset, out


def _content_checks(data: bytes, name: str, problems: list[str]) -> int:
    """Schema-check a content's metadata; returns its feature count."""
    if data[:4] == b"b3dm":
        b = B3dm.parse(data)
        problems.extend(f"{name}: {m}" for m in _schema_problems(b.feature_table,
                                                                  "b3dm_feature_table"))
        if b.batch_table:
            problems.extend(f"{name}: {m}" for m in _schema_problems(b.batch_table,
                                                                      "batch_table"))
        return int(b.feature_table.get("BATCH_LENGTH", 0))
    g = Glb.parse(data)
    meta = g.metadata
    if meta:
        problems.extend(f"{name}: {m}" for m in _schema_problems(meta["schema"],
                                                                  "metadata_schema"))
        for t in meta.get("propertyTables", []):
            problems.extend(f"{name}: {m}" for m in _schema_problems(t, "property_table"))
    sets = g.feature_id_sets()
    if sets and "propertyTable" in sets[0]:
        return int(meta["propertyTables"][sets[0]["propertyTable"]]["count"])
    return int(sets[0]["featureCount"]) if sets else 0


def tileset_info(directory: str | Path, *, validate: bool = False) -> dict[str, Any]:
    """Summary and checks of a tileset directory.

    Args:
        directory: Folder with ``tileset.json``.
        validate: Also run every content through the Khronos glTF validator (needs node).

    Returns:
        Dict: ``version``, ``implicit``, ``tiles``, ``contents``, ``features``, ``depth``,
        ``bytes_stored`` (files as on disk), ``bytes_raw`` (gunzipped), ``gzip`` (contents
        stored gzip-compressed), ``geometric_error`` (tileset, root), ``problems`` (list of
        str), ``ok``, and with ``validate`` a ``validator`` dict (files, errors, warnings).
    """
    d = Path(directory)
    problems: list[str] = []
    tileset, tiles = load_tiles(d, problems)
    problems.extend(f"tileset.json: {m}" for m in _schema_problems(tileset, "tileset"))
    by_key = {t.key: t for t in tiles}
    for t in tiles:
        if t.region is None:
            problems.append(f"tile {t.key}: bounding volume is not a region")
            continue
        if t.content_region is not None and not contains(np.array(t.region),
                                                         np.array(t.content_region), TOL):
            problems.append(f"tile {t.key}: content region outside the tile region")
        p = by_key.get(t.parent)
        if p is not None:
            if p.region is not None and not contains(np.array(p.region), np.array(t.region),
                                                     TOL):
                problems.append(f"tile {t.key}: region outside its parent's")
            if not t.geometric_error < p.geometric_error:
                problems.append(f"tile {t.key}: geometric error {t.geometric_error} not below "
                                f"its parent's {p.geometric_error}")
    root_err = float(tileset["root"]["geometricError"])
    if root_err <= 0:
        problems.append("root geometric error must be > 0")
    stored = raw = features = gzipped = 0
    files: list[tuple[str, bytes]] = []
    for t in tiles:
        if t.content is None:
            continue
        path = d / t.content
        if not path.is_file():
            problems.append(f"tile {t.key}: content {t.content} missing")
            continue
        data = path.read_bytes()
        stored += len(data)
        gzipped += data[:2] == b"\x1f\x8b"
        plain = maybe_gunzip(data)
        raw += len(plain)
        try:
            features += _content_checks(plain, t.content, problems)
        except (ValueError, KeyError) as exc:
            problems.append(f"{t.content}: unreadable ({exc})")
        files.append((t.content, plain))
    for p in (d / "subtrees").rglob("*.subtree") if (d / "subtrees").is_dir() else []:
        data = p.read_bytes()
        stored += len(data)
        raw += len(maybe_gunzip(data))
    info: dict[str, Any] = {
        "path": str(d), "version": tileset["asset"]["version"],
        "implicit": "implicitTiling" in tileset["root"], "tiles": len(tiles),
        "contents": len(files), "features": features,
        "depth": max(t.level for t in tiles), "bytes_stored": stored, "bytes_raw": raw,
        "gzip": bool(files) and gzipped == len(files),
        "geometric_error": {"tileset": float(tileset["geometricError"]), "root": root_err},
    }
    if validate and files:
        from tiles.validate import validate_gltf

        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i, (name, data) in enumerate(files):
                p = Path(tmp) / f"{i}{Path(name).suffix}"
                p.write_bytes(data)
                paths.append(p)
            reports = validate_gltf(paths)
        errors = sum(r["errors"] for r in reports)
        info["validator"] = {"files": len(reports), "errors": errors,
                             "warnings": sum(r["warnings"] for r in reports)}
        for (name, _), r in zip(files, reports, strict=True):
            if r["errors"]:
                problems.append(f"{name}: {r['errors']} glTF validator error(s): "
                                f"{[m['code'] for m in r['messages'] if m['severity'] == 0]}")
    info["problems"] = problems
    info["ok"] = not problems
    return info
