"""BIM elements in the 3D Tiles (issue 11): ``ngis ingest`` of the FZK-Haus IFC at its real place
(UTM 32N, the worldwide geoid), then ``ngis tiles build``. References: IfcOpenShell itself (the
element classes by ``is_a``, storeys by ``util.element.get_container``, each element's triangles
by its own geometry iterator), the counts published in the sample's SOURCE.md, the 3D Tiles
schemas and the Khronos glTF validator. The detail tiles hang in the tile tree itself
(``Tile.refine``, ``Tile.variant``), which :func:`tiles.tileset.write_tileset` writes: checked on
boxes too."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from gis.cli.main import cli

FZK = ("ifc-samples", "AC20-FZK-Haus.ifc")
#: SOURCE.md: IfcWall 13 (by_type, IfcWallStandardCase included), IfcSlab 4, IfcWindow 11,
#: IfcDoor 5, IfcBeam 4.
PUBLISHED = {"IfcWall": 13, "IfcSlab": 4, "IfcWindow": 11, "IfcDoor": 5, "IfcBeam": 4}

@pytest.fixture(scope="module")
def built(shared_data, tmp_path_factory):
    import ifcopenshell

    src = shared_data(*FZK)
    tmp = tmp_path_factory.mktemp("bim")
    store = tmp / "s.gpkg"
    r = CliRunner().invoke(cli, ["-q", "ingest", "--store", str(store), "--target-crs",
                                 "EPSG:32632", str(src)])
    assert r.exit_code == 0, r.output
    out = tmp / "tiles"
    r = CliRunner().invoke(cli, ["tiles", "build", "--store", str(store), "--layer", "buildings",
                                 "--lod", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return ifcopenshell.open(str(src)), out


def _contents(out: Path):
    """(tile JSON, content path) of every tile with content, pre-order."""
    tileset = json.loads((out / "tileset.json").read_text())

    def walk(t, parent):
        if "content" in t:
            yield t, parent, out / t["content"]["uri"]
        for ch in t.get("children", []):
            yield from walk(ch, t)

    return tileset, list(walk(tileset["root"], None))


def _elements(model):
    return [e for e in model.by_type("IfcElement")
            if not e.is_a("IfcFeatureElement") and e.Representation is not None]


def _element_rows(out: Path) -> list[dict]:
    from tiles.read import Glb

    rows = []
    for _, _, path in _contents(out)[1]:
        table = Glb.parse(path.read_bytes()).property_table(0)
        if "ifc_class" not in table:
            continue
        for i in range(len(table["ifc_class"])):
            if table["ifc_class"][i] is not None:
                rows.append({k: v[i] for k, v in table.items()})
    return rows


@pytest.mark.shared_data
@pytest.mark.slow
def test_element_counts_in_the_tiles_equal_ifcopenshell(built):
    model, out = built
    rows = _element_rows(out)
    got = Counter(r["ifc_class"] for r in rows)
    assert got == Counter(e.is_a() for e in _elements(model))
    assert len({r["global_id"] for r in rows}) == len(rows)  # each element once
    for cls, n in PUBLISHED.items():  # by_type counts subtypes (IfcWallStandardCase...)
        assert len(model.by_type(cls)) == n
        assert sum(1 for r in rows if model.by_guid(r["global_id"]).is_a(cls)) == n, cls


@pytest.mark.shared_data
@pytest.mark.slow
def test_picked_features_name_their_element_class_storey_and_triangles(built):
    """Pick triangles all over the detail tile: the feature id at the triangle leads to a
    property-table row whose GlobalId is an element of that IFC class and storey, and that
    element has as many triangles in the tile as IfcOpenShell tessellates for it."""
    import ifcopenshell.geom
    import ifcopenshell.util.element as element

    from tiles.read import Glb

    model, out = built
    (detail,) = [p for _, _, p in _contents(out)[1] if ".detail." in p.name]
    g = Glb.parse(detail.read_bytes())
    table = g.property_table(0)
    ids = g.attribute("_FEATURE_ID_0").astype(np.int64)
    tri_feature = ids[g.indices().reshape(-1, 3)[:, 0]]
    per_feature = np.bincount(tri_feature, minlength=len(table["global_id"]))
    picked = np.unique(tri_feature[:: max(1, len(tri_feature) // 40)])
    assert len(picked) >= 10
    gids = [table["global_id"][f] for f in picked]
    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    faces = {}
    it = ifcopenshell.geom.iterator(settings, model, 1, include=[model.by_guid(g) for g in gids])
    ok = it.initialize()
    while ok:
        shape = it.get()
        v = np.asarray(shape.geometry.verts).reshape(-1, 3)
        f = np.asarray(shape.geometry.faces).reshape(-1, 3)
        t = v[f]
        area2 = np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)
        faces[shape.guid] = int((area2 > 1e-10).sum())
        ok = it.next()
    for f, gid in zip(picked, gids, strict=True):
        e = model.by_guid(gid)
        assert table["ifc_class"][f] == e.is_a()
        assert (table["element_name"][f] or "") == (e.Name or "")  # "" reads back as null
        assert table["storey"][f] == element.get_container(e).Name
        assert table["building_id"][f] == model.by_type("IfcBuilding")[0].GlobalId
        assert per_feature[f] == faces[gid], (e.is_a(), e.Name)


@pytest.mark.shared_data
@pytest.mark.slow
def test_envelope_above_detail_and_the_validator_passes(built):
    from tiles.info import tileset_info
    from tiles.read import Glb

    model, out = built
    tileset, contents = _contents(out)
    (env_tile, _, env_path), (detail_tile, parent, _) = contents
    # the envelope (LOD1 footprint + height) at the coarse level, replaced when refined
    assert env_tile["refine"] == "REPLACE" and parent is env_tile
    assert detail_tile["geometricError"] < env_tile["geometricError"]
    env = Glb.parse(env_path.read_bytes()).property_table(0)
    assert env["id"] == [model.by_type("IfcBuilding")[0].GlobalId]
    assert env["height"][0] > 5.0  # FZK-Haus: two storeys and a roof
    report = tileset_info(out, validate=True)
    assert report["ok"], report["problems"]
    assert report["validator"]["errors"] == 0 and report["contents"] == 2


@pytest.mark.shared_data
@pytest.mark.slow
def test_bim_building_among_city_buildings_keeps_every_building(shared_data, tmp_path):
    """FZK-Haus placed by hand (``--origin``, EPSG:7415) among the ten 3DBAG buildings of Delft,
    in small tiles: every building is in the envelope tree exactly once, and the detail tile
    that replaces the FZK-Haus tile carries that tile's other buildings unchanged plus the
    elements (nothing disappears when a client refines)."""
    import ifcopenshell

    from gis.io import read_source
    from tiles.info import tileset_info
    from tiles.read import Glb

    store = tmp_path / "s.gpkg"
    r = CliRunner().invoke(cli, [
        "-q", "ingest", "--store", str(store), "--target-crs", "EPSG:7415", "--origin",
        "85000,446600,0", "--crs", "EPSG:7415",
        str(shared_data("cityjson-samples", "3dbag_v20240420_delft_subset.city.jsonl")),
        str(shared_data(*FZK))])
    assert r.exit_code == 0, r.output
    buildings = read_source(store, layer="buildings")[0].frame
    model = ifcopenshell.open(str(shared_data(*FZK)))
    fzk = model.by_type("IfcBuilding")[0].GlobalId
    assert len(buildings) == 11 and fzk in set(buildings["id"])
    out = tmp_path / "tiles"
    r = CliRunner().invoke(cli, ["tiles", "build", "--store", str(store), "--layer", "buildings",
                                 "--lod", "2", "--max-features", "4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    _, contents = _contents(out)
    tables = {p: Glb.parse(p.read_bytes()).property_table(0) for _, _, p in contents}
    envelope_ids = [i for _, _, p in contents if ".detail." not in p.name
                    for i in tables[p]["id"]]
    assert sorted(envelope_ids) == sorted(buildings["id"])
    replaced = [(t, p) for t, _, p in contents if t.get("refine") == "REPLACE"]
    assert len(replaced) == 1
    tile, path = replaced[0]
    (detail,) = tile["children"]
    d = tables[out / detail["content"]["uri"]]
    env = tables[path]
    others = [i for i, c in zip(d["id"], d["ifc_class"], strict=True) if c is None]
    assert sorted(others) == sorted(i for i in env["id"] if i != fzk) and fzk in env["id"]
    assert sum(c is not None for c in d["ifc_class"]) == len(_elements(model))
    report = tileset_info(out, validate=True)
    assert report["ok"], report["problems"]
    assert report["validator"]["errors"] == 0


@pytest.mark.shared_data
@pytest.mark.slow
def test_rebuild_reuses_the_detail_and_leaves_nothing_beside(built, tmp_path):
    """The detail tile has a fingerprint of its own: building the same store again over the
    tileset re-encodes nothing and gives the same bytes; no staging folder is left beside."""
    import shutil

    _, out = built
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []
    again = tmp_path / "tiles"
    shutil.copytree(out, again)
    r = CliRunner().invoke(cli, ["tiles", "build", "--store", str(out.parent / "s.gpkg"),
                                 "--layer", "buildings", "--lod", "2", "--out", str(again)])
    assert r.exit_code == 0, r.output
    assert "(0 written, 2 reused)" in r.output
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((out / f).read_bytes() == (again / f).read_bytes() for f in files)


class _Variants:
    """A content writer with a ``detail`` variant: MeshContent's content, the variant's
    fingerprint its own."""

    def __init__(self, plain):
        self.plain, self.extension, self.asked = plain, plain.extension, []

    def digest(self, features, variant=""):
        self.asked.append(variant)
        return self.plain.digest(features) + variant

    def write(self, features, variant=""):
        return self.plain.write(features)


def test_tile_refine_and_variant_are_written_as_set(tmp_path):
    """On 12 boxes in TWD97: a tree as built has no refinement of its own (the tileset says ADD
    once, on the root, as before); a REPLACE tile with a ``detail`` variant child (refine ADD,
    the old subtree below it) is written as such, its content named ``.detail.``, the writer
    asked for it by variant; the tileset passes the 3D Tiles schema and the glTF validator.
    check_tree refuses a variant away from its parent's place and an unknown refinement;
    implicit tiling refuses variants."""
    from gis.mesh import extrude
    from tiles.content import MeshContent
    from tiles.info import tileset_info
    from tiles.tileset import write_tileset
    from tiles.tiling import Tile, build_tileset, check_tree, place_regions

    n = 12
    x = 250000.0 + 40.0 * np.arange(n)
    w = 5.0 + np.arange(n)
    footprints = [shapely.box(a, 2700000.0, a + b, 2700010.0) for a, b in zip(x, w, strict=True)]
    mesh = extrude(footprints, np.full(n, 10.0), np.full(n, 20.0))
    frame = pd.DataFrame({"id": [f"b{i}" for i in range(n)], "height": np.full(n, 10.0)})
    bounds = np.c_[x, np.full(n, 2700000.0), x + w, np.full(n, 2700010.0), np.full(n, 10.0),
                   np.full(n, 20.0)]
    cent = np.c_[(bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2]
    crs = "EPSG:3826"

    tree = build_tileset(cent, bounds, crs, max_features_per_tile=3)
    writer = _Variants(MeshContent(mesh, frame, None, class_name="box", crs=crs))
    plain = json.loads((write_tileset(tree, tmp_path / "plain", writer).path
                        / "tileset.json").read_text())
    assert plain["root"]["refine"] == "ADD" and json.dumps(plain).count('"refine"') == 1
    assert set(writer.asked) == {""}

    tree = build_tileset(cent, bounds, crs, max_features_per_tile=3, regions=False)
    root = tree.root
    assert root.has_content and root.children
    old = root.geometric_error
    detail = Tile(0, 0, 0, root.features, geometric_error=old, children=root.children,
                  refine="ADD", variant="detail")
    root.refine, root.children, root.geometric_error = "REPLACE", [detail], 2.0 * old
    tree.geometric_error = max(tree.geometric_error, 4.0 * old)
    place_regions(tree, bounds)  # raises on an unsound tree
    writer.asked.clear()
    report = write_tileset(tree, tmp_path / "bim", writer)
    ts = json.loads((report.path / "tileset.json").read_text())
    assert ts["root"]["refine"] == "REPLACE"
    (d,) = ts["root"]["children"]
    assert d["refine"] == "ADD" and d["content"]["uri"] == "content/0/0/0.detail.glb"
    assert d["geometricError"] == old < ts["root"]["geometricError"]
    assert d["boundingVolume"] == ts["root"]["boundingVolume"]
    assert len(d["children"]) == len(plain["root"]["children"])
    assert json.dumps(ts).count('"refine"') == 2  # the old subtree inherits ADD
    assert writer.asked.count("detail") == 1 and (report.path / d["content"]["uri"]).is_file()
    assert report.features == n and report.contents == len(
        [t for t in tree.tiles() if t.has_content])
    info = tileset_info(report.path, validate=True)
    assert info["ok"], info["problems"]
    assert info["validator"]["errors"] == 0

    detail.x += 1
    assert any("variant not at its parent's place" in p for p in check_tree(tree))
    detail.x -= 1
    root.refine = "MERGE"
    assert any("neither ADD nor REPLACE" in p for p in check_tree(tree))
    root.refine = "REPLACE"
    with pytest.raises(ValueError, match="implicit"):
        write_tileset(tree, tmp_path / "imp", writer, implicit=True)
