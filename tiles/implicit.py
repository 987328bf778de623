"""Implicit tiling (3D Tiles 1.1, "Implicit Tiling"): a tile tree as QUADTREE availability in
binary subtree files.

Our quadtree lives in the store CRS, whereas implicit subdivision halves the root *region* in
longitude / latitude; the two cell grids differ. So every available tile carries its real
bounding region and geometric error as tile metadata (semantics ``TILE_BOUNDING_REGION`` and
``TILE_GEOMETRIC_ERROR``) and every content its ``CONTENT_BOUNDING_REGION`` (3D Metadata Semantic
Reference), stored in property tables inside the subtrees and typed by the tileset ``schema``.
The implicit tileset then describes exactly the same tiles, volumes and errors as the explicit
one (CesiumJS and 3d-tiles-tools apply these overrides). Tile coordinates are the quadtree's
(level, x, y): x eastwards, y northwards, children (l + 1, 2x + i, 2y + j) as the spec requires.

Bitstreams: per subtree, tile and content availability list every node of the subtree's levels,
level by level, in Morton order (x bits at even positions), least significant bit first; child
subtree availability lists the nodes one level below. Buffer views are 8-byte aligned; the
binary subtree is a 24-byte header (``subt``, version 1, JSON and binary lengths as uint64), JSON
padded with spaces and binary with zeros to 8 bytes.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from tiles.metadata import json_bytes, pack_bits
from tiles.tiling import Tile, TileTree

SUBTREE_URI = "subtrees/{level}/{x}/{y}.subtree"
_REGION = {"type": "SCALAR", "componentType": "FLOAT64", "array": True, "count": 6}

#: Tileset-level metadata schema for the implicit tile / content overrides.
TILES_SCHEMA: dict[str, Any] = {
    "id": "ngis_tiles",
    "classes": {
        "tile": {"properties": {
            "boundingRegion": {**_REGION, "semantic": "TILE_BOUNDING_REGION"},
            "geometricError": {"type": "SCALAR", "componentType": "FLOAT64",
                               "semantic": "TILE_GEOMETRIC_ERROR"}}},
        "content": {"properties": {
            "boundingRegion": {**_REGION, "semantic": "CONTENT_BOUNDING_REGION"}}},
    },
}


def morton(x: int, y: int) -> int:
    """Quadtree Morton index: bits of x at even, of y at odd positions."""
    m = 0
    for i in range(32):
        m |= ((x >> i) & 1) << (2 * i) | ((y >> i) & 1) << (2 * i + 1)
    return m


def level_offset(level: int) -> int:
    """Index of the first node of ``level`` in a quadtree availability bitstream."""
    return (4**level - 1) // 3


def implicit_root(tree: TileTree, content_template: str | None, subtree_levels: int) -> dict:
    """The implicit root tile JSON (tileset ``root``).

    Args:
        tree: The tile tree.
        content_template: Template URI of contents (None when no tile has content).
        subtree_levels: Levels per subtree.

    Returns:
        Tile JSON with ``implicitTiling``.
    """
    root: dict[str, Any] = {
        "boundingVolume": {"region": [float(v) for v in tree.root.region]},
        "geometricError": tree.root.geometric_error, "refine": "ADD",
        "implicitTiling": {"subdivisionScheme": "QUADTREE", "availableLevels": tree.depth + 1,
                           "subtreeLevels": subtree_levels, "subtrees": {"uri": SUBTREE_URI}}}
    if content_template:
        root["content"] = {"uri": content_template}
    return root


class _Bin:
    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict[str, int]] = []

    def view(self, raw: bytes) -> int:
        self.data += b"\0" * (-len(self.data) % 8)
        self.views.append({"buffer": 0, "byteOffset": len(self.data), "byteLength": len(raw)})
        self.data += raw
        return len(self.views) - 1


def _availability(bits: np.ndarray, b: _Bin) -> dict[str, int]:
    n = int(bits.sum())
    if n == 0:
        return {"constant": 0}
    if n == len(bits):
        return {"constant": 1}
    return {"bitstream": b.view(pack_bits(bits)), "availableCount": n}


def subtree_bytes(root: Tile, subtree_levels: int, has_contents: bool) -> tuple[bytes,
                                                                                list[Tile]]:
    """One binary subtree.

    Args:
        root: The subtree's root tile.
        subtree_levels: Levels per subtree.
        has_contents: Whether the implicit root declares content (then content availability is
            always written).

    Returns:
        (subtree file bytes, root tiles of the child subtrees).
    """
    n_nodes = level_offset(subtree_levels)
    tile_bits = np.zeros(n_nodes, bool)
    content_bits = np.zeros(n_nodes, bool)
    child_bits = np.zeros(4**subtree_levels, bool)
    by_bit: dict[int, Tile] = {}
    children: list[Tile] = []

    def visit(t: Tile, local: int) -> None:
        if local == subtree_levels:
            children.append(t)
            child_bits[morton(t.x - (root.x << local), t.y - (root.y << local))] = True
            return
        bit = level_offset(local) + morton(t.x - (root.x << local), t.y - (root.y << local))
        tile_bits[bit] = True
        content_bits[bit] = t.has_content
        by_bit[bit] = t
        for ch in t.children:
            visit(ch, local + 1)

    visit(root, 0)
    b = _Bin()
    js: dict[str, Any] = {"tileAvailability": _availability(tile_bits, b)}
    if has_contents:
        js["contentAvailability"] = [_availability(content_bits, b)]
    js["childSubtreeAvailability"] = _availability(child_bits, b)
    tiles = [by_bit[i] for i in sorted(by_bit)]  # availability order
    contents = [t for t in tiles if t.has_content]
    tables = [{"class": "tile", "count": len(tiles), "properties": {
        "boundingRegion": {"values": b.view(np.array([t.region for t in tiles]).tobytes())},
        "geometricError": {"values": b.view(np.array([t.geometric_error for t in tiles],
                                                     np.float64).tobytes())}}}]
    js["tileMetadata"] = 0
    if contents:
        tables.append({"class": "content", "count": len(contents), "properties": {
            "boundingRegion": {"values": b.view(np.array(
                [t.content_region for t in contents]).tobytes())}}})
        js["contentMetadata"] = [1]
    js["propertyTables"] = tables
    b.data += b"\0" * (-len(b.data) % 8)
    js["buffers"] = [{"byteLength": len(b.data)}]
    js["bufferViews"] = b.views
    raw = json_bytes(js)
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<4sIQQ", b"subt", 1, len(raw), len(b.data)) + raw + bytes(b.data), children


def subtrees(tree: TileTree, subtree_levels: int) -> dict[str, bytes]:
    """All subtree files of a tree, by relative path.

    Args:
        tree: The tile tree.
        subtree_levels: Levels per subtree (>= 1).

    Returns:
        Path (``subtrees/{level}/{x}/{y}.subtree``) -> bytes.
    """
    if subtree_levels < 1:
        raise ValueError("subtree_levels must be >= 1")
    has_contents = any(t.has_content for t in tree.root.walk())
    out: dict[str, bytes] = {}
    todo = [tree.root]
    while todo:
        t = todo.pop()
        data, kids = subtree_bytes(t, subtree_levels, has_contents)
        out[SUBTREE_URI.format(level=t.level, x=t.x, y=t.y)] = data
        todo.extend(kids)
    return out
