"""Writing a tileset directory: ``tileset.json``, contents, subtrees, atomically and incrementally.

Layout::

    OUT/tileset.json                     asset.version "1.1" (glb) or "1.0" (b3dm)
    OUT/content/{level}/{x}/{y}.glb      (or .b3dm) one per tile with content
    OUT/subtrees/{level}/{x}/{y}.subtree implicit tilesets only
    OUT/.ngis-tiles.json                 manifest: settings, content encoding, per-tile hashes

Choices (see also :mod:`tiles.tiling`):

* **Placement**: no tile ``transform`` s. Each content's root glTF node places its local ENU
  frame in ECEF (:mod:`tiles.placement`), so the same content works in explicit and implicit
  tilesets (implicit tiles cannot have per-tile transforms) and in b3dm. ``region`` volumes are
  EPSG:4979 and unaffected by transforms anyway.
* **Refinement**: ``ADD`` on the root (inherited), largest features in coarse tiles; a tile
  whose :attr:`tiles.tiling.Tile.refine` is set says so (explicit tilesets only); explicit
  tiles also give ``content.boundingVolume`` (the content's own region). A variant tile
  (:attr:`tiles.tiling.Tile.variant`) has its content at ``content/L/X/Y.{variant}.{ext}``.
* **Metadata**: feature metadata lives in each glb (EXT_structural_metadata), so an explicit 1.1
  tileset needs no tileset ``schema``; an implicit one declares the ``tile``/``content`` classes
  used by its subtree property tables (:mod:`tiles.implicit`).
* **Atomic writes**: everything is written to ``.OUT.tmp-PID`` beside ``OUT`` and swapped in with
  one ``renameat2(RENAME_EXCHANGE)`` (Linux), else two renames; an exception removes the temporary
  directory and leaves the previous tileset untouched. A non-empty ``OUT`` without our manifest is
  never replaced (FileExistsError).
* **Incremental rebuild**: a tile whose content fingerprint (encoder settings + its features'
  geometry and attribute digests, :class:`tiles.content.MeshContent`) matches one in the previous
  manifest is hard-linked (or copied) from the previous tileset instead of encoded.
* **gzip at rest** (``gzip=True``): content and subtree files are gzip-compressed *under their
  usual names* (deterministic: mtime 0); ``tileset.json`` stays plain. The manifest records
  ``"content_encoding": "gzip"`` and the list of compressed paths. A static server must send those
  files unchanged with ``Content-Encoding: gzip`` (and ``Content-Type: model/gltf-binary`` for
  .glb, ``application/octet-stream`` for .b3dm / .subtree) and must not compress them again;
  browsers then inflate them transparently before CesiumJS sees them.
"""

from __future__ import annotations

import ctypes
import gzip as gzip_module
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tiles.content import ContentWriter
from tiles.geoid import MODEL as GEOID_MODEL
from tiles.glb import GENERATOR
from tiles.implicit import TILES_SCHEMA, implicit_root, subtrees
from tiles.tiling import Tile, TileTree, build_tileset, check_tree

__all__ = ["write_tileset", "build_tileset", "TileTree", "WriteReport", "MANIFEST",
           "content_uri"]

MANIFEST = ".ngis-tiles.json"
MANIFEST_FORMAT = 1
CONTENT_TEMPLATE = "content/{level}/{x}/{y}.{ext}"


@dataclass
class WriteReport:
    """What :func:`write_tileset` did.

    Attributes:
        path: The tileset directory.
        tiles: Tiles in the tree.
        contents: Tiles with content.
        written: Contents encoded this time.
        reused: Contents taken over from the previous tileset.
        features: Features placed (each once: variant tiles draw theirs again).
        bytes: Bytes of content and subtree files as stored.
    """

    path: Path
    tiles: int
    contents: int
    written: int
    reused: int
    features: int
    bytes: int


def content_uri(t: Tile, ext: str) -> str:
    """Relative URI of a tile's content (``content/L/X/Y.{variant}.{ext}`` for a variant)."""
    return CONTENT_TEMPLATE.format(level=t.level, x=t.x, y=t.y,
                                   ext=f"{t.variant}.{ext}" if t.variant else ext)


def _variant(t: Tile) -> dict[str, str]:
    """Keyword arguments of the content writer's calls for ``t``: none for a quadtree tile (so
    writers without variants, like :class:`tiles.content.MeshContent`, work as they are)."""
    return {"variant": t.variant} if t.variant else {}


def _region(r) -> dict[str, list[float]]:
    return {"region": [float(v) for v in r]}


def _tile_json(t: Tile, ext: str, root: bool) -> dict[str, Any]:
    d: dict[str, Any] = {"boundingVolume": _region(t.region),
                         "geometricError": float(t.geometric_error)}
    refine = t.refine if t.refine is not None else ("ADD" if root else None)
    if refine is not None:
        d["refine"] = refine
    if t.has_content:
        d["content"] = {"uri": content_uri(t, ext), "boundingVolume": _region(t.content_region)}
    if t.children:
        d["children"] = [_tile_json(c, ext, False) for c in t.children]
    return d


def _read_manifest(out: Path) -> dict[str, Any] | None:
    try:
        m = json.loads((out / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return m if m.get("format") == MANIFEST_FORMAT else None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _swap_in(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
    elif _exchange(tmp, out):
        shutil.rmtree(tmp)
    else:
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old)


def write_tileset(tree: TileTree, out_dir: str | os.PathLike, content_writer: ContentWriter,
                  *, version: Literal["1.0", "1.1"] = "1.1", implicit: bool = False,
                  gzip: bool = False, subtree_levels: int = 4) -> WriteReport:
    """Write a tileset directory atomically, reusing unchanged contents of the previous one.

    Args:
        tree: The tile tree (:func:`build_tileset`).
        out_dir: Target directory; replaced as a whole.
        content_writer: Source of content bytes and fingerprints (e.g.
            :class:`tiles.content.MeshContent`); its ``extension`` is ``glb`` or ``b3dm``. With
            ``gzipped = True`` it hands over content already gzip-compressed (``gzip`` runs
            the compression on its workers then); with a ``place(features, target)`` method
            returning True it has put the content file at ``target`` itself (moved from where
            its workers wrote it). For a variant tile (:attr:`tiles.tiling.Tile.variant`) its
            ``digest``, ``write`` and ``place`` are called with ``variant=`` too.
        version: ``1.1`` (glb or b3dm content) or ``1.0`` (b3dm content only).
        implicit: Write QUADTREE implicit tiling with binary subtrees (1.1 only).
        gzip: Store content and subtree files gzip-compressed (same names).
        subtree_levels: Levels per subtree for implicit tiling.

    Returns:
        A :class:`WriteReport`.

    Raises:
        ValueError: Bad version / format / implicit combination, or an unsound tree (or an
            implicit one with variant tiles or per-tile refinement, which it cannot express).
        FileExistsError: ``out_dir`` is a non-empty directory we did not write.
    """
    ext = content_writer.extension
    if version not in ("1.0", "1.1"):
        raise ValueError("version must be 1.0 or 1.1")
    if version == "1.0" and (ext != "b3dm" or implicit):
        raise ValueError("3D Tiles 1.0 needs b3dm content and explicit tiling")
    problems = check_tree(tree)
    if problems:
        raise ValueError("unsound tile tree: " + "; ".join(problems[:5]))
    if implicit and any(t.variant or t.refine not in (None, "ADD") for t in tree.root.walk()):
        raise ValueError("implicit tiling cannot hold variant tiles or REPLACE refinement")
    out = Path(out_dir)
    prev = _read_manifest(out) if out.is_dir() else None
    if out.exists() and (not out.is_dir() or (prev is None and any(out.iterdir()))):
        raise FileExistsError(f"{out} exists and is not a tileset written by {GENERATOR}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    encoding = "gzip" if gzip else "identity"
    old_by_hash: dict[str, str] = {}
    if prev is not None and prev.get("content_encoding") == encoding:
        old_by_hash = {v["hash"]: k for k, v in prev.get("tiles", {}).items()}
    try:
        entries: dict[str, Any] = {}
        written = reused = stored = features = 0
        for t in tree.root.walk():
            if not t.has_content:
                continue
            uri = content_uri(t, ext)
            target = tmp / uri
            target.parent.mkdir(parents=True, exist_ok=True)
            kw = _variant(t)
            h = content_writer.digest(t.features, **kw)
            old = old_by_hash.get(h)
            if old is not None and (out / old).is_file():
                try:
                    os.link(out / old, target)
                except OSError:
                    shutil.copy2(out / old, target)
                reused += 1
            else:
                place = getattr(content_writer, "place", None)
                if place is None or not place(t.features, target, **kw):
                    data = content_writer.write(t.features, **kw)
                    if gzip and not getattr(content_writer, "gzipped", False):
                        data = gzip_module.compress(data, compresslevel=9, mtime=0)
                    target.write_bytes(data)
                written += 1
            size = target.stat().st_size
            stored += size
            features += 0 if t.variant else len(t.features)  # a variant draws them again
            entries[uri] = {"hash": h, "features": int(len(t.features)), "bytes": size}
        tileset: dict[str, Any] = {"asset": {"version": version, "generator": GENERATOR},
                                   "geometricError": float(tree.geometric_error)}
        if implicit:
            if version != "1.1":
                raise ValueError("implicit tiling needs 3D Tiles 1.1")
            tileset["schema"] = TILES_SCHEMA
            template = CONTENT_TEMPLATE.format(level="{level}", x="{x}", y="{y}", ext=ext)
            tileset["root"] = implicit_root(tree, template if entries else None, subtree_levels)
            for rel, data in subtrees(tree, subtree_levels).items():
                path = tmp / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                if gzip:
                    data = gzip_module.compress(data, compresslevel=9, mtime=0)
                path.write_bytes(data)
                stored += len(data)
        else:
            tileset["root"] = _tile_json(tree.root, ext, True)
        tileset["extras"] = {"crs": tree.crs, "geoid": GEOID_MODEL, "contentEncoding": encoding}
        (tmp / "tileset.json").write_text(json.dumps(tileset, indent=1), "utf-8")
        gz = sorted([*entries, *(str(p.relative_to(tmp)) for p in (tmp / "subtrees").rglob(
            "*.subtree"))]) if gzip else []
        manifest = {"format": MANIFEST_FORMAT, "generator": GENERATOR, "version": version,
                    "implicit": implicit, "content_encoding": encoding, "gzip_paths": gz,
                    "settings": getattr(content_writer, "settings", {}), "tiles": entries}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), "utf-8")
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return WriteReport(out, len(tree.tiles()), len(entries), written, reused, features, stored)
