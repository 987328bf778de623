"""CityJSON reader (issue 11) against independent references: plain ``json`` reads of the real
samples, cjio 0.10 (counts, EPSG, decompressed vertices), a signed-tetrahedron volume computed here
over the raw JSON geometry, 3DBAG's published ``b3_volume_lod22``, an analytic unit cube, and the
Khronos glTF validator on the tileset built from an ingested sample."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from gis.cli.main import cli
from gis.errors import MalformedFileError
from gis.io import read_source
from gis.io.cityjson import read_cityjson
from gis.mesh.surfaces import triangulate_surfaces

SAMPLES = "cityjson-samples"
BAG = "3dbag_v20240420_delft_subset.city.jsonl"
ZURICH = "zurich_subset_lod2.city.json"
DELFT = "delft_3dfier_lod1.city.json"
DEPTH = {"MultiSurface": 0, "CompositeSurface": 0, "Solid": 1, "MultiSolid": 2,
         "CompositeSolid": 2}


# --------------------------------------------------------------------------- raw JSON helpers


def raw_docs(path: Path) -> list[tuple[dict, np.ndarray]]:
    """(CityObjects, real vertices) per document, read here with json and numpy only."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        lines = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
        header, feats = lines[0], lines[1:]
    else:
        header = json.loads(text)
        feats = [header]
    scale = np.array(header["transform"]["scale"])
    translate = np.array(header["transform"]["translate"])
    return [(f["CityObjects"], np.array(f["vertices"], float).reshape(-1, 3) * scale + translate)
            for f in feats]


def raw_surfaces(geom: dict):
    """(rings, semantic value) per surface of a geometry."""
    def walk(b, v, d):
        if d == 0:
            for i, s in enumerate(b):
                yield s, (v[i] if isinstance(v, list) else v)
        else:
            for i, s in enumerate(b):
                yield from walk(s, v[i] if isinstance(v, list) else None, d - 1)
    sem = geom.get("semantics") or {}
    return list(walk(geom["boundaries"], sem.get("values"), DEPTH[geom["type"]]))


def raw_volume(geom: dict, xyz: np.ndarray) -> float:
    """Signed volume: sum over surface rings of fan tetrahedra from a point on the lowest level
    (holes are rings of the opposite orientation, so they subtract themselves). The 3dfier LOD1
    solids have no floor: with the apex on the floor plane the missing floor adds nothing, so this
    is the volume above it."""
    surfaces = raw_surfaces(geom)
    used = np.unique([i for rings, _ in surfaces for r in rings for i in r])
    o = xyz[used].mean(axis=0)
    o[2] = xyz[used, 2].min()
    total = 0.0
    for rings, _ in surfaces:
        for ring in rings:
            p = xyz[np.asarray(ring)] - o
            a, b, c = p[0], p[1:-1], p[2:]
            total += float(np.einsum("j,ij->", a, np.cross(b, c))) / 6.0
    return total


def mesh_volume(polygons) -> float:
    """Signed volume of our triangulation of the surfaces (divergence theorem), apex on the
    lowest level as in :func:`raw_volume`."""
    polys = np.asarray(list(polygons), dtype=object)
    mesh = triangulate_surfaces(polys, np.zeros(len(polys), int), "unknown")
    o = mesh.positions.mean(axis=0)
    o[2] = mesh.positions[:, 2].min()
    p = mesh.positions - o
    a, b, c = (p[mesh.indices[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->", a, np.cross(b, c))) / 6.0


def pick(geoms: list[dict], lod: str) -> dict | None:
    return next((g for g in geoms if str(g["lod"]) == lod), None)


# --------------------------------------------------------------------------- synthetic


CUBE = {
    "type": "CityJSON", "version": "2.0",
    "transform": {"scale": [0.5, 0.5, 0.5], "translate": [250000.0, 2700000.0, 10.0]},
    "metadata": {"referenceSystem": "urn:ogc:def:crs:EPSG::3826"},
    "CityObjects": {
        "b1": {"type": "Building", "attributes": {"measuredHeight": 2.0, "yearOfConstruction": 1990,
                                                   "roofType": "1000", "custom": "x"},
               "children": ["b1-p"],
               "geometry": [{"type": "MultiSurface", "lod": "0",
                             "boundaries": [[[0, 3, 2, 1]]]}]},
        "b1-p": {"type": "BuildingPart", "parents": ["b1"], "attributes": {"storeys": 1},
                 "geometry": [{"type": "Solid", "lod": "2",
                               "boundaries": [[[[0, 3, 2, 1]], [[4, 5, 6, 7]], [[0, 1, 5, 4]],
                                               [[1, 2, 6, 5]], [[2, 3, 7, 6]], [[3, 0, 4, 7]]]],
                               "semantics": {"surfaces": [{"type": "GroundSurface"},
                                                          {"type": "RoofSurface"},
                                                          {"type": "WallSurface"}],
                                             "values": [[0, 1, 2, 2, 2, None]]}}]},
        "t1": {"type": "SolitaryVegetationObject"},
    },
    # a 2 m cube: integer vertices * 0.5
    "vertices": [[0, 0, 0], [4, 0, 0], [4, 4, 0], [0, 4, 0],
                 [0, 0, 4], [4, 0, 4], [4, 4, 4], [0, 4, 4]],
}


def test_unit_cube_is_read_exactly(tmp_path):
    path = tmp_path / "cube.city.json"
    path.write_text(json.dumps(CUBE))
    (lyr,) = read_source(path)
    assert lyr.standard == "building" and lyr.crs.to_epsg() == 3826
    row = lyr.frame.iloc[0]
    assert row["id"] == "b1" and row["height"] == 2.0 and row["year_built"] == 1990
    assert row["roof_type"] == "flat" and row["lod"] == 2 and row["ground_elevation"] == 10.0
    assert lyr.frame.geometry.iloc[0].equals(shapely.box(250000, 2700000, 250002, 2700002))
    attrs = json.loads(row["attributes"])
    assert attrs["custom"] == "x" and attrs["BuildingPart[b1-p]/storeys"] == 1
    s = lyr.extras["surfaces"]
    # three semantic surface objects + one row for the polygon without semantics
    assert sorted(s["surface_type"]) == ["GroundSurface", "RoofSurface", "WallSurface",
                                         "lod2Solid"]
    assert (s["part_id"] == "b1-p").all() and (s["building_id"] == "b1").all()
    assert mesh_volume(shapely.get_parts(s.geometry.to_numpy())) == pytest.approx(8.0, abs=1e-9)
    assert any("SolitaryVegetationObject" in n for n in lyr.skipped)


def test_lod_option_and_missing_lod(tmp_path):
    path = tmp_path / "cube.city.json"
    path.write_text(json.dumps(CUBE))
    assert read_cityjson(path, lod="2").extras["surfaces"]["lod"].tolist() == [2] * 4
    lyr = read_cityjson(path, lod="3")  # no LOD3: the LOD0 footprint stays, no surfaces
    assert len(lyr.frame) == 1 and len(lyr.extras["surfaces"]) == 0 and lyr.frame["lod"][0] == 0


def test_seq_feature_before_header_is_malformed(tmp_path):
    path = tmp_path / "bad.city.jsonl"
    path.write_text('{"type":"CityJSONFeature","id":"a","CityObjects":{},"vertices":[]}\n'
                    '{"type":"CityJSON","version":"2.0"}\n')
    with pytest.raises(MalformedFileError):
        read_cityjson(path)
    path.write_text('{"type":"CityJSON","version":"2.0","transform":{"scale":[1,1,1],'
                    '"translate":[0,0,0]},"CityObjects":{},"vertices":[]}\n{"type": broken\n')
    with pytest.raises(MalformedFileError, match="line 2"):
        read_cityjson(path)


def test_no_reference_system_is_reported_by_validate(tmp_path):
    doc = json.loads(json.dumps(CUBE))
    del doc["metadata"]
    path = tmp_path / "nocrs.city.json"
    path.write_text(json.dumps(doc))
    r = CliRunner().invoke(cli, ["validate", "--standard", "building", str(path)])
    assert r.exit_code == 1
    assert [ln for ln in r.output.splitlines() if "no CRS" in ln] != []


def test_repair_policy_splits_a_bow_tie_in_its_plane(tmp_path):
    """The bow-tie of the test above, read with ``repair=True``: no problem, the Building kept
    (lineage and ``skipped`` say so), and the polygon replaced by the two triangles on either
    side of the crossing, by hand: the edges (0,0)-(4,4) and (4,0)-(0,2) (integer units of
    0.5 m) cross at (4/3, 4/3); the halves have xy areas 4/3 and 16/3, i.e. 5/3 m2 in all,
    times sqrt(2) on the 45-degree plane z = 10 + x."""
    doc = json.loads(json.dumps(CUBE))
    doc["vertices"] += [[0, 0, 10], [4, 4, 14], [4, 0, 14], [0, 2, 10]]
    geom = doc["CityObjects"]["b1-p"]["geometry"][0]
    geom["boundaries"][0].append([[8, 9, 10, 11]])
    geom["semantics"]["values"][0].append(1)
    path = tmp_path / "bowtie.city.json"
    path.write_text(json.dumps(doc))
    plain = read_cityjson(path)
    lyr = read_cityjson(path, repair=True)
    assert lyr.problems == [] and list(lyr.frame["id"]) == ["b1"]
    assert "repaired: 1 surface polygon" in lyr.frame["lineage"].iloc[0]
    assert any("repaired with make_valid" in note for note in lyr.skipped)
    before = shapely.get_parts(plain.extras["surfaces"].geometry.to_numpy())
    after = shapely.get_parts(lyr.extras["surfaces"].geometry.to_numpy())
    assert len(after) == len(before) + 1  # one polygon became two
    new = [g for g in after if not any(g.equals(b) for b in before)]
    assert len(new) == 2
    xyz = np.concatenate([np.asarray(g.exterior.coords) for g in new])
    np.testing.assert_allclose(xyz[:, 2] - 10.0 - 5.0, xyz[:, 0] - 250000.0, atol=1e-9)
    xy_area = sum(shapely.force_2d(g).area for g in new)
    assert xy_area == pytest.approx(5 / 3, rel=1e-9)
    from gis.io.cityjson import planar_validity

    assert planar_validity(np.asarray(new, dtype=object))[0].all()
    # the default policy: report (one line), and --skip-invalid leaves the Building out
    r = CliRunner().invoke(cli, ["-q", "ingest", "--skip-invalid", "--store",
                                 str(tmp_path / "s.gpkg"), str(path)])
    assert r.exit_code == 0, r.output
    from gis.store import open_store

    assert "buildings" not in open_store(str(tmp_path / "s.gpkg")).layers() or \
        len(read_source(tmp_path / "s.gpkg", layer="buildings")[0].frame) == 0


@pytest.mark.shared_data
def test_repair_policy_on_zurich(shared_data):
    """Zurich's one self-intersecting roof polygon: reported by default, repaired with
    ``repair=True`` in the same Building, every other surface unchanged."""
    path = shared_data(SAMPLES, ZURICH)
    plain = read_cityjson(path)
    fixed = read_cityjson(path, repair=True)
    ((bid, _, _),) = plain.problems
    assert fixed.problems == [] and len(fixed.frame) == len(plain.frame) == 49
    noted = fixed.frame.loc[fixed.frame["lineage"].str.contains("repaired"), "id"]
    assert list(noted) == [bid]
    a, b = plain.extras["surfaces"], fixed.extras["surfaces"]
    same = a.geometry.geom_equals_exact(b.geometry, 0.0)
    assert set(a.loc[~same, "building_id"]) == {bid}


def test_units_and_empty_geometry_one_line_each(tmp_path):
    """A CRS in US survey feet (EPSG:2263, NAD83 / New York Long Island (ftUS)) is "unknown
    units" (CityJSON has no unit of its own); a Building with no geometry at all is "empty
    geometry"; one line each, and the good Building is still read."""
    doc = json.loads(json.dumps(CUBE))
    doc["metadata"]["referenceSystem"] = "https://www.opengis.net/def/crs/EPSG/0/2263"
    doc["transform"]["translate"] = [1000000.0, 200000.0, 10.0]
    doc["CityObjects"]["b2"] = {"type": "Building", "attributes": {"measuredHeight": 3.0}}
    path = tmp_path / "feet.city.json"
    path.write_text(json.dumps(doc))
    lyr = read_cityjson(path)
    assert list(lyr.frame["id"]) == ["b1"]
    assert [(r, f) for r, f, _ in lyr.problems] == [("*", "units"), ("b2", "geometry")]
    r = CliRunner().invoke(cli, ["validate", "--standard", "building", str(path)])
    assert r.exit_code == 1
    lines = r.output.splitlines()
    assert len([ln for ln in lines if "unknown units" in ln and "US survey foot" in ln]) == 1
    assert len([ln for ln in lines if ":b2: geometry: empty geometry" in ln]) == 1


# --------------------------------------------------------------------------- real samples


@pytest.mark.shared_data
@pytest.mark.parametrize("name", [BAG, ZURICH, DELFT])
def test_counts_and_surfaces_equal_the_raw_json(shared_data, name):
    path = shared_data(SAMPLES, name)
    lyr = read_cityjson(path)
    docs = raw_docs(path)
    objs = {k: v for o, _ in docs for k, v in o.items()}
    top = [k for k, v in objs.items() if v["type"] == "Building" and not v.get("parents")]
    parts = [k for k, v in objs.items() if v["type"] == "BuildingPart"]
    assert sorted(lyr.frame["id"]) == sorted(top)
    s = lyr.extras["surfaces"]
    assert set(s["part_id"].dropna()) <= set(parts)
    # expected rows per building: the semantic surface objects the chosen-LOD polygons refer to
    # (plus one row for polygons without semantics), chosen LOD = highest LOD <= 2.x of the tree
    expected = {}
    for bid in top:
        tree = [bid, *objs[bid].get("children", [])]
        lods = {str(g["lod"]) for t in tree for g in objs[t].get("geometry", [])
                if not str(g["lod"]).startswith("0")}
        lod = max(lods, key=lambda x: tuple(map(int, x.split(".") + ["0"]))[:2])
        n = 0
        for t in tree:
            g = pick(objs[t].get("geometry", []), lod)
            if g is not None:
                vals = {v for _, v in raw_surfaces(g)}
                n += len({v for v in vals if v is not None}) + (None in vals)
        expected[bid] = n
    got = s.groupby("building_id").size().reindex(top, fill_value=0)
    assert got.to_dict() == expected
    assert all(json.loads(a) is not None for a in lyr.frame["attributes"])
    for bid, a in zip(lyr.frame["id"], lyr.frame["attributes"], strict=True):
        kept = json.loads(a)
        assert {k: kept[k] for k in objs[bid].get("attributes", {})} == \
            objs[bid].get("attributes", {})


CJIO_SCRIPT = """
import json, sys, warnings
warnings.simplefilter("ignore")
from cjio import cityjson
with open(sys.argv[1]) as fh:
    cm = cityjson.reader(fh)
epsg = cm.get_epsg()
cm.decompress()
cos = cm.j["CityObjects"]
v = cm.j["vertices"]
print(json.dumps({"epsg": epsg,
    "top": sum(1 for o in cos.values() if o["type"] == "Building" and cm.is_co_toplevel(o)),
    "parts": sum(1 for o in cos.values() if o["type"] == "BuildingPart"),
    "lo": [min(p[k] for p in v) for k in range(3)], "hi": [max(p[k] for p in v) for k in range(3)]}))
"""


@pytest.mark.shared_data
def test_zurich_crs_transform_and_counts_match_cjio(shared_data):
    """cjio runs in a subprocess: importing it replaces ``json.encoder.float`` process-wide (6
    decimals), which would corrupt the glTF JSON other tests write."""
    path = shared_data(SAMPLES, ZURICH)
    proc = subprocess.run([sys.executable, "-c", CJIO_SCRIPT, str(path)], capture_output=True,
                          text=True, check=True, timeout=120)
    cj = json.loads(proc.stdout.strip().splitlines()[-1])
    epsg, n_top, n_parts = cj["epsg"], cj["top"], cj["parts"]
    lyr = read_cityjson(path)
    s = lyr.extras["surfaces"]
    assert lyr.crs.to_epsg() == int(epsg) == 2056
    assert len(lyr.frame) == n_top == 49
    assert s["part_id"].nunique() == n_parts == 161
    # transform/scale applied: our surface bounds equal cjio's decompressed vertices' bounds
    xyz = shapely.get_coordinates(s.geometry.to_numpy(), include_z=True)
    np.testing.assert_allclose(xyz.min(axis=0), cj["lo"], atol=1e-6)
    np.testing.assert_allclose(xyz.max(axis=0), cj["hi"], atol=1e-6)
    assert set(s["surface_type"]) == {"RoofSurface", "WallSurface", "GroundSurface"}


@pytest.mark.shared_data
@pytest.mark.parametrize("name,lod", [(BAG, "2.2"), (BAG, "1.2"), (DELFT, "1")])
def test_volumes_match_the_raw_json(shared_data, name, lod):
    path = shared_data(SAMPLES, name)
    lyr = read_cityjson(path, lod=lod)
    s = lyr.extras["surfaces"]
    objs_xyz = {k: (v, xyz) for o, xyz in raw_docs(path) for k, v in o.items()}
    checked = 0
    for key, rows in s.groupby(s["part_id"].fillna(s["building_id"])):
        obj, xyz = objs_xyz[key]
        ref = raw_volume(pick(obj["geometry"], lod), xyz)
        ours = mesh_volume(shapely.get_parts(rows.geometry.to_numpy()))
        assert ref > 0
        assert ours == pytest.approx(ref, rel=0.01), key
        checked += 1
    assert checked == (10 if name == BAG else 160)


@pytest.mark.shared_data
def test_3dbag_lod22_volume_matches_its_published_attribute(shared_data):
    path = shared_data(SAMPLES, BAG)
    lyr = read_cityjson(path)
    s = lyr.extras["surfaces"]
    assert set(s["lod"]) == {2}
    for bid, a in zip(lyr.frame["id"], lyr.frame["attributes"], strict=True):
        rows = s[s["building_id"] == bid]
        ours = mesh_volume(shapely.get_parts(rows.geometry.to_numpy()))
        assert ours == pytest.approx(json.loads(a)["b3_volume_lod22"], rel=0.01), bid


def axis_plane_valid(rings: list[np.ndarray]) -> bool:
    """Planar validity by a second method: drop the coordinate the normal is largest along (an
    affine map of the plane, so it keeps self-intersections) and ask GEOS."""
    ext = rings[0]
    n = np.cross(ext - ext.mean(axis=0), np.roll(ext, -1, axis=0) - ext.mean(axis=0)).sum(axis=0)
    keep = [k for k in range(3) if k != int(np.argmax(np.abs(n)))]
    return shapely.Polygon(rings[0][:, keep], [r[:, keep] for r in rings[1:]]).is_valid


@pytest.mark.shared_data
def test_validate_cli_on_the_samples(shared_data):
    """3DBAG and the 3dfier LOD1 model pass; the Zürich model has exactly the self-intersecting
    surfaces a second check over the raw JSON finds, one line each."""
    paths = [str(shared_data(SAMPLES, n)) for n in (BAG, DELFT)]
    r = CliRunner().invoke(cli, ["validate", "--standard", "building", *paths])
    assert r.exit_code == 0, r.output
    assert "170 record(s)" in r.stderr  # 10 + 160 top-level Buildings
    path = shared_data(SAMPLES, ZURICH)
    (objs, xyz), = raw_docs(path)
    expected = []
    for bid, obj in objs.items():
        if obj["type"] != "Building":
            continue
        for kid in obj.get("children", []):
            for g in objs[kid].get("geometry", []):
                for rings, _ in raw_surfaces(g):
                    if not axis_plane_valid([xyz[np.asarray(r)] for r in rings]):
                        expected.append(bid)
    r = CliRunner().invoke(cli, ["validate", "--standard", "building", str(path)])
    lines = [ln for ln in r.output.splitlines() if "not valid in its plane" in ln]
    assert sorted(ln.split(":")[2] for ln in lines) == sorted(expected)
    assert len(expected) >= 1 and r.exit_code == 1


def test_bow_tie_surface_is_one_problem(tmp_path):
    doc = json.loads(json.dumps(CUBE))
    # a tilted bow-tie roof on the cube part: edges 0-1 and 2-3 cross in their plane
    doc["vertices"] += [[0, 0, 10], [4, 4, 14], [4, 0, 14], [0, 2, 10]]  # plane z = 10 + x
    geom = doc["CityObjects"]["b1-p"]["geometry"][0]
    geom["boundaries"][0].append([[8, 9, 10, 11]])
    geom["semantics"]["values"][0].append(1)
    path = tmp_path / "bowtie.city.json"
    path.write_text(json.dumps(doc))
    lyr = read_cityjson(path)
    assert len(lyr.problems) == 1 and "Self-intersection" in lyr.problems[0][2]
    assert lyr.problems[0][:2] == ("b1", "surfaces")
    r = CliRunner().invoke(cli, ["validate", "--standard", "building", str(path)])
    assert r.exit_code == 1 and "1 with problems, 1 problem(s)" in r.stderr


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("name,crs,extra", [(BAG, "EPSG:7415", []),
                                            (ZURICH, "EPSG:2056", ["--skip-invalid"]),
                                            (DELFT, "EPSG:7415", [])])
def test_ingest_and_lod2_tiles_pass_the_gltf_validator(shared_data, tmp_path, name, crs, extra):
    """The samples at their real places (Delft, Zurich: the worldwide geoid grid) through
    ``ngis ingest`` and ``ngis tiles build --lod 2``: every building is in the tiles, the
    contents pass the glTF validator, and the tiles sit at the right height (EGM96 N there)."""
    from tiles.geoid import undulation
    from tiles.info import tileset_info

    src = shared_data(SAMPLES, name)
    store = tmp_path / "s.gpkg"
    r = CliRunner().invoke(cli, ["-q", "ingest", "--store", str(store), "--target-crs", crs,
                                 *extra, str(src)])
    assert r.exit_code == 0, r.output
    buildings = read_source(store, layer="buildings")[0].frame
    stored = pd.DataFrame(read_source(store, layer="buildings_surfaces")[0].frame)
    if not extra:
        assert len(stored) == len(read_cityjson(src).extras["surfaces"])
    out = tmp_path / "tiles"
    r = CliRunner().invoke(cli, ["tiles", "build", "--store", str(store), "--layer", "buildings",
                                 "--lod", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    report = tileset_info(out, validate=True)
    assert report["ok"], report.get("problems")
    assert report["validator"]["errors"] == 0 and report["features"] == len(buildings)
    # the root region's heights: orthometric z of the data + the geoid there (Delft ~43 m,
    # Zurich ~47 m), within the region margins
    region = json.loads((out / "tileset.json").read_text())["root"]["boundingVolume"]["region"]
    lon, lat = np.degrees((region[0] + region[2]) / 2), np.degrees((region[1] + region[3]) / 2)
    z = np.concatenate([np.asarray(g.coords)[:, 2] for g in
                        shapely.get_exterior_ring(
                            shapely.get_parts(stored.geometry.values))])
    n = float(undulation(lat, lon))
    assert 40 < n < 50
    assert abs(region[4] - (z.min() + n)) < 1.0 and abs(region[5] - (z.max() + n)) < 1.0
