"""Tilesets from 5,000 synthetic boxes: structure, schemas, validator, implicit = explicit,
3d-tiles-tools, gzip, atomic and incremental writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiles_testdata import ecef_to_geodetic, in_region, inspect, node_available, random_boxes, \
    tiles_cli

from tiles.content import MeshContent
from tiles.info import load_tiles, tileset_info
from tiles.placement import to_ecef
from tiles.read import B3dm, Glb, read_subtree
from tiles.schemas import schema_errors
from tiles.tileset import MANIFEST, build_tileset, write_tileset
from tiles.tiling import check_tree

CRS = "EPSG:3826"
N = 5000


@pytest.fixture(scope="module")
def boxes():
    return random_boxes(N, seed=11, extent=4000.0)


@pytest.fixture(scope="module")
def tree(boxes):
    _, _, cent, bounds = boxes
    return build_tileset(cent, bounds, CRS, max_features_per_tile=400)


@pytest.fixture(scope="module")
def written(boxes, tree, tmp_path_factory):
    mesh, frame, _, _ = boxes
    base = tmp_path_factory.mktemp("tilesets")
    plain = MeshContent(mesh, frame, "building")
    out = {
        "explicit": write_tileset(tree, base / "explicit", plain),
        "implicit": write_tileset(tree, base / "implicit", plain, implicit=True,
                                  subtree_levels=2),
        "v10": write_tileset(tree, base / "v10", MeshContent(mesh, frame, "building",
                                                             format="b3dm"), version="1.0"),
        "gzip": write_tileset(tree, base / "gzip", MeshContent(mesh, frame, "building",
                                                               compress="meshopt"),
                              implicit=True, gzip=True, subtree_levels=3),
    }
    return {k: v.path for k, v in out.items()} | {"reports": out}


def test_tree(tree):
    assert check_tree(tree) == []
    assert tree.depth >= 2 and len(tree.tiles()) > 10
    placed = np.concatenate([t.features for t in tree.tiles()])
    assert sorted(placed.tolist()) == list(range(N))


@pytest.mark.parametrize("name", ["explicit", "implicit", "v10", "gzip"])
def test_tileset_checks(written, tree, name):
    info = tileset_info(written[name], validate=True)
    assert info["problems"] == [] and info["ok"]
    assert info["validator"] == {"files": info["contents"], "errors": 0, "warnings": 0}
    assert info["features"] == N
    assert info["tiles"] == len(tree.tiles())
    assert info["contents"] == sum(t.has_content for t in tree.tiles())
    assert info["version"] == ("1.0" if name == "v10" else "1.1")
    assert info["implicit"] == (name in ("implicit", "gzip"))
    assert info["geometric_error"]["root"] > 0
    ts = json.loads((written[name] / "tileset.json").read_text())
    assert schema_errors(ts, "tileset") == []
    assert "transform" not in json.dumps(ts)  # contents place themselves (root glTF node)
    assert ts["root"]["refine"] == "ADD"
    report = written["reports"][name]
    assert (report.written, report.reused, report.features) == (info["contents"], 0, N)


def test_explicit_structure_and_content_positions(written, tree, boxes):
    mesh, frame, _, _ = boxes
    tileset, tiles = load_tiles(written["explicit"])
    by_key = {t.key: t for t in tiles}
    writer = MeshContent(mesh, frame, "building")
    for info, t in zip(tiles, tree.tiles(), strict=True):  # both pre-order
        assert info.region == pytest.approx(list(t.region), abs=0)
        assert info.geometric_error == t.geometric_error
        if info.parent is not None:
            parent = by_key[info.parent]
            w, s, e, n, lo, hi = parent.region
            assert w <= info.region[0] and e >= info.region[2] and s <= info.region[1]
            assert n >= info.region[3] and lo <= info.region[4] and hi >= info.region[5]
            assert info.geometric_error < parent.geometric_error
        if not t.has_content:
            continue
        g = Glb.parse((written["explicit"] / info.content).read_bytes())
        sub = writer.submesh(t.features)
        p = sub.positions
        ref = np.stack(to_ecef(p[:, 0], p[:, 1], p[:, 2], CRS), 1)
        out = g.positions_ecef()
        assert np.linalg.norm(out - ref, axis=1).max() < 0.001  # float32 local frame: < 1 mm
        geo = ecef_to_geodetic(out)
        assert in_region(geo, info.content_region) and in_region(geo, info.region)
        table = g.property_table(0)
        assert table["id"] == frame["id"].iloc[t.features].tolist()
        assert (g.attribute("_FEATURE_ID_0") == sub.feature_ids).all()


def test_implicit_equals_explicit(written, tree):
    _, explicit = load_tiles(written["explicit"])
    tileset, implicit = load_tiles(written["implicit"])
    assert tileset["root"]["implicitTiling"] == {
        "subdivisionScheme": "QUADTREE", "availableLevels": tree.depth + 1, "subtreeLevels": 2,
        "subtrees": {"uri": "subtrees/{level}/{x}/{y}.subtree"}}
    assert tileset["root"]["content"] == {"uri": "content/{level}/{x}/{y}.glb"}
    want = {t.key: t for t in tree.tiles()}
    got = {t.key: t for t in implicit}
    assert set(got) == set(want)
    for key, t in want.items():
        g = got[key]
        assert g.region == list(t.region) and g.geometric_error == t.geometric_error
        assert (g.content is not None) == t.has_content
        if t.has_content:
            assert g.content == f"content/{key[0]}/{key[1]}/{key[2]}.glb"
            assert g.content_region == list(t.content_region)
            # Identical content files in both tilesets.
            assert (written["implicit"] / g.content).read_bytes() == \
                (written["explicit"] / g.content).read_bytes()
        assert sorted(g.children) == sorted(c.key for c in t.children)
    assert len(explicit) == len(implicit)
    for path in (written["implicit"] / "subtrees").rglob("*.subtree"):
        js, _ = read_subtree(path.read_bytes())
        assert schema_errors(js, "subtree") == []
    assert schema_errors(tileset["schema"], "metadata_schema") == []


@pytest.mark.skipif(not node_available(), reason="node / npm tools not installed")
def test_3d_tiles_tools_traversal_agrees(written, tree):
    """3d-tiles-tools expands the implicit tileset (availability + TILE_* semantics) to the same
    tiles, volumes and errors; its explicit traversal sees the same tree. (3d-tiles-tools 0.5.4
    drops subtree content metadata, SubtreeMetadataModels.create never fills
    contentMetadataModels, so content regions are compared through our own reader above.)"""
    want = {t.key: t for t in tree.tiles()}
    implicit = inspect("traverse", written["implicit"])
    tiles = [t for t in implicit if t["coord"] is not None]
    assert {tuple(t["coord"]) for t in tiles} == set(want)
    for t in tiles:
        w = want[tuple(t["coord"])]
        assert t["region"] == list(w.region)
        assert t["geometricError"] == w.geometric_error
        assert t["refine"] == "ADD"
        uris = [c["uri"] for c in t["contents"]]
        assert uris == ([f"content/{w.level}/{w.x}/{w.y}.glb"] if w.has_content else [])
    explicit = inspect("traverse", written["explicit"])
    seen = sorted((t["level"], t["region"], t["geometricError"],
                   [c["region"] for c in t["contents"]]) for t in explicit)
    expect = sorted((w.level, list(w.region), w.geometric_error,
                     [list(w.content_region)] if w.has_content else []) for w in tree.tiles())
    assert seen == expect


@pytest.mark.skipif(not node_available(), reason="node / npm tools not installed")
def test_1_0_tileset_upgrades_with_3d_tiles_tools(written, tree, boxes, tmp_path):
    _, frame, _, _ = boxes
    ts = json.loads((written["v10"] / "tileset.json").read_text())
    assert ts["asset"]["version"] == "1.0"
    assert ts["root"]["content"]["uri"].endswith(".b3dm")
    for target in ("1.0", "1.1"):
        out = tmp_path / f"up{target.replace('.', '_')}"  # no dot: the CLI reads it as a file type
        proc = tiles_cli("upgrade", "-i", str(written["v10"]), "-o", str(out),
                         "--targetVersion", target, timeout=300)
        assert proc.returncode == 0, proc.stderr
        up = json.loads((out / "tileset.json").read_text())
        assert up["asset"]["version"] == target
    # 1.1: b3dm converted to glb with EXT_structural_metadata built from our batch tables.
    for t in [t for t in tree.tiles() if t.has_content][:4]:
        g = Glb.parse((tmp_path / "up1_1" / f"content/{t.level}/{t.x}/{t.y}.glb").read_bytes())
        table = g.property_table(0)
        rows = frame.iloc[t.features]
        assert table["id"] == rows["id"].tolist()
        assert table["storey_height"] == rows["storey_height"].tolist()  # binary DOUBLE column
        b = B3dm.parse((written["v10"] / f"content/{t.level}/{t.x}/{t.y}.b3dm").read_bytes())
        assert b.batch_columns()["roof_type"] == [None if pd.isna(v) else v
                                                  for v in rows["roof_type"]]


def test_gzip_at_rest(written):
    d = written["gzip"]
    manifest = json.loads((d / MANIFEST).read_text())
    assert manifest["content_encoding"] == "gzip"
    files = sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()
                   and p.suffix in (".glb", ".subtree"))
    assert manifest["gzip_paths"] == files
    for rel in files:
        assert (d / rel).read_bytes()[:2] == b"\x1f\x8b"
    assert (d / "tileset.json").read_bytes()[:1] == b"{"  # the tileset JSON stays plain
    info = tileset_info(d)
    assert info["gzip"] and info["bytes_stored"] < info["bytes_raw"]


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


class Boom(RuntimeError):
    pass


class FailingWriter:
    """Delegates to a real writer and fails after ``after`` contents."""

    def __init__(self, inner: MeshContent, after: int) -> None:
        self.inner, self.after, self.extension = inner, after, inner.extension
        self.settings = inner.settings

    def digest(self, features):
        return self.inner.digest(features) + "x"  # never reuse: force encoding

    def write(self, features):
        self.after -= 1
        if self.after < 0:
            raise Boom("interrupted")
        return self.inner.write(features)


def test_interrupted_write_keeps_previous_tileset(boxes, tree, tmp_path):
    mesh, frame, _, _ = boxes
    out = tmp_path / "ts"
    writer = MeshContent(mesh, frame, "building")
    write_tileset(tree, out, writer)
    before = _snapshot(out)
    with pytest.raises(Boom):
        write_tileset(tree, out, FailingWriter(writer, after=5))
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ts"]  # no temporary directory left
    assert tileset_info(out, validate=True)["ok"]
    with pytest.raises(Boom):  # also when there was no tileset before
        write_tileset(tree, tmp_path / "new", FailingWriter(writer, after=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ts"]


def test_incremental_rebuild_rewrites_only_changed_tiles(boxes, tree, tmp_path):
    mesh, frame, _, _ = boxes
    out = tmp_path / "ts"
    first = write_tileset(tree, out, MeshContent(mesh, frame, "building"))
    before = _snapshot(out)
    holder = {int(f): t for t in tree.tiles() for f in t.features}
    # Attribute change of one feature: only its tile is encoded again.
    changed = frame.copy()
    changed.loc[1234, "height"] = 99.5
    r = write_tileset(tree, out, MeshContent(mesh, changed, "building"))
    assert (r.written, r.reused) == (1, first.contents - 1)
    after = _snapshot(out)
    t = holder[1234]
    uri = f"content/{t.level}/{t.x}/{t.y}.glb"
    diff = {k for k in after if after[k] != before.get(k)}
    assert diff == {uri, MANIFEST}
    assert Glb.parse(after[uri]).property_table(0)["height"][
        list(t.features).index(1234)] == 99.5
    # Geometry change of another feature (moved 0.5 m up): only its tile again.
    moved = mesh.positions.copy()
    moved[mesh.feature_ids == 42, 2] += 0.5
    from gis.mesh.base import Mesh

    mesh2 = Mesh(moved, mesh.indices, mesh.feature_ids)
    r = write_tileset(tree, out, MeshContent(mesh2, changed, "building"))
    assert (r.written, r.reused) == (1, first.contents - 1)
    # Different encoder settings: nothing reused.
    r = write_tileset(tree, out, MeshContent(mesh2, changed, "building", compress="meshopt"))
    assert r.reused == 0
    info = tileset_info(out, validate=True)
    assert info["ok"] and info["validator"]["errors"] == 0


def test_refuses_to_replace_foreign_directories(boxes, tree, tmp_path):
    mesh, frame, _, _ = boxes
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        write_tileset(tree, foreign, MeshContent(mesh, frame, "building"))
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["mine"]


def test_version_and_format_rules(boxes, tree, tmp_path):
    mesh, frame, _, _ = boxes
    glb = MeshContent(mesh, frame, "building")
    with pytest.raises(ValueError, match="1.0"):
        write_tileset(tree, tmp_path / "a", glb, version="1.0")
    b3dm = MeshContent(mesh, frame, "building", format="b3dm")
    with pytest.raises(ValueError, match="1.0"):
        write_tileset(tree, tmp_path / "b", b3dm, version="1.0", implicit=True)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_morton_order_and_subtree_bits(boxes):
    """Availability indexing as in the spec's Appendix A examples, and the bits of a small tree:
    root with children (1,0,0) and (1,1,1), the latter with child (2,3,2)."""
    from tiles.implicit import level_offset, morton, subtree_bytes
    from tiles.read import availability_bits
    from tiles.tiling import Tile, TileTree

    assert morton(0b11, 0b00) == 0b0101
    assert morton(0b1010, 0b0011) == 0b01001110
    assert morton(0b0110, 0b0101) == 0b00110110
    assert [level_offset(k) for k in range(4)] == [0, 1, 5, 21]
    r = np.array([2.1, 0.4, 2.2, 0.5, 0.0, 10.0])
    leaf = Tile(2, 3, 2, np.array([3]), r, r, 0.0)
    a = Tile(1, 0, 0, np.array([1]), r, r, 0.0)
    b = Tile(1, 1, 1, np.zeros(0, np.int64), r, None, 1.0, [leaf])
    root = Tile(0, 0, 0, np.array([0]), r, r, 4.0, [a, b])
    data, kids = subtree_bytes(root, 2, True)
    js, binary = read_subtree(data)
    assert [k.key for k in kids] == [(2, 3, 2)]
    tiles = availability_bits(js["tileAvailability"], js, binary, 5)
    content = availability_bits(js["contentAvailability"][0], js, binary, 5)
    child = availability_bits(js["childSubtreeAvailability"], js, binary, 16)
    assert tiles.tolist() == [True, True, False, False, True]  # root, (1,0,0), (1,1,1)=morton 3
    assert content.tolist() == [True, True, False, False, False]
    assert np.nonzero(child)[0].tolist() == [morton(3, 2)]  # (2,3,2) relative to (0,0,0)
    assert js["propertyTables"][0]["count"] == 3 and js["propertyTables"][1]["count"] == 2
    assert schema_errors(js, "subtree") == []
    assert len(data) % 8 == 0 and all(bv["byteOffset"] % 8 == 0 for bv in js["bufferViews"])
    tree = TileTree(root, CRS, 8.0, 4)
    assert tree.depth == 2
