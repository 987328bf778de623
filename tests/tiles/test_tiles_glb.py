"""glTF content: validator, round trip through our reader and through independent JS readers."""

from __future__ import annotations

import struct
from collections import Counter

import meshopt
import numpy as np
import pandas as pd
import pytest
from tiles_testdata import ORIGIN, box_mesh, canonical_ids, inspect, match_vertices, \
    node_available, random_boxes, triangle_set

from gis.mesh.base import SURFACE_CODES, Mesh
from tiles.glb import write_glb
from tiles.metadata import FLOAT64_NODATA, INT32_NODATA
from tiles.placement import PrecisionError, to_ecef
from tiles.read import Glb, split_glb
from tiles.schemas import schema_errors

CRS = "EPSG:3826"


def column(df: pd.DataFrame, name: str) -> list:
    """A frame column as Python values with every kind of null as None."""
    return [None if pd.isna(v) else (int(v) if isinstance(v, (np.integer,)) else v)
            for v in df[name].tolist()]


def ecef_of(mesh: Mesh) -> np.ndarray:
    p = mesh.positions
    return np.stack(to_ecef(p[:, 0], p[:, 1], p[:, 2], CRS), 1)


def check_table(glb: Glb, frame: pd.DataFrame) -> None:
    table = glb.property_table(0)
    assert glb.metadata["propertyTables"][0]["count"] == len(frame)
    for name in frame.columns:
        assert table[name] == column(frame, name), name


@pytest.fixture(scope="module")
def sample():
    mesh, frame, _, _ = random_boxes(40, seed=5, extent=600.0, colors=True, surfaces=True)
    return mesh, frame


@pytest.mark.parametrize("compress", ["none", "quantize", "meshopt"])
def test_glb_valid_and_round_trips(sample, compress, tmp_path, assert_valid):
    mesh, frame = sample
    data = write_glb(mesh, frame, "building", compress=compress)
    path = tmp_path / f"{compress}.glb"
    path.write_bytes(data)
    assert_valid([path])
    # GLB layout: total and BIN start 8-byte aligned; every buffer view of buffer 0 too.
    assert len(data) % 8 == 0 and struct.unpack_from("<I", data, 8)[0] == len(data)
    gltf, binary = split_glb(data)
    assert (28 + struct.unpack_from("<I", data, 12)[0]) % 8 == 0
    assert all(bv.get("byteOffset", 0) % 8 == 0 for bv in gltf["bufferViews"])
    assert gltf["buffers"][0]["byteLength"] == len(binary)
    assert gltf["materials"][0]["doubleSided"] is False
    assert gltf["extras"]["layer"] == "building"

    g = Glb.parse(data)
    out = g.positions_ecef()
    ref = ecef_of(mesh)
    fids = g.attribute("_FEATURE_ID_0").astype(np.int64)
    extent = float(np.ptp(g.attribute("POSITION") @ np.eye(3), axis=0).max())
    assert len(out) == len(ref)  # no vertex dropped (all are used)
    # float32: < 1 mm; quantized to 16 bits over the content's bounding cube: <= extent / 65535.
    bound = 0.001 if compress == "none" else g.gltf["nodes"][1]["scale"][0] / 65535.0
    if compress == "meshopt":  # vertices reordered for the codec: match by position
        idx, dist = match_vertices(ref, mesh.feature_ids.astype(np.int64), out, fids)
    else:
        idx = np.arange(len(ref))
        dist = np.linalg.norm(out - ref, axis=1)
        assert (fids == mesh.feature_ids).all()
    assert dist.max() <= bound, (dist.max(), bound)
    assert extent <= (1.0 if compress != "none" else 1000.0)
    # Same triangles (same winding) up to order and rotation.
    canon = canonical_ids(mesh.positions, mesh.feature_ids.astype(np.int64))
    assert triangle_set(g.indices(), canon[idx]) == triangle_set(mesh.indices, canon)
    check_table(g, frame)
    # Normals: unit, outward (boxes: away from the box centre).
    nrm = g.attribute("NORMAL")
    assert np.abs(np.linalg.norm(nrm, axis=1) - 1).max() < (1e-6 if compress == "none" else 0.02)
    world = g.attribute("POSITION")  # the normals' space (uniform quantization scale)
    centres = np.stack([world[fids == f].mean(0) for f in range(len(frame))])
    face_centre = world.reshape(-1, 4, 3).mean(1)  # box faces are quads of 4 vertices
    if compress != "meshopt":  # meshopt reorders vertices; quads are no longer contiguous
        outward = np.einsum("ij,ij->i", nrm.reshape(-1, 4, 3)[:, 0],
                            face_centre - centres[fids.reshape(-1, 4)[:, 0]])
        assert (outward > 0).all()
    # Vertex colours: linear in the file, the input sRGB after conversion back.
    lin = g.attribute("COLOR_0")
    srgb = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    assert np.abs(srgb * 255 - mesh.colors[idx]).max() < 0.51
    # Surface types: second feature ID set, names in property table 1.
    sets = g.feature_id_sets()
    assert sets[0] == {"featureCount": 40, "attribute": 0, "propertyTable": 0,
                       "label": "building"}
    assert sets[1]["label"] == "surface_type" and sets[1]["featureCount"] == 3
    st = g.attribute("_FEATURE_ID_1").astype(int)
    assert Counter(zip(fids.tolist(), st.tolist(), strict=True)) == Counter(
        zip(mesh.feature_ids.tolist(), mesh.surface_types.tolist(), strict=True))
    names = g.property_table(1)["name"]
    assert names[SURFACE_CODES["RoofSurface"]] == "RoofSurface"


def test_meshopt_streams_decode_directly(sample, tmp_path, assert_valid):
    mesh, frame = sample
    data = write_glb(mesh, frame, "building", compress="meshopt")
    (tmp_path / "m.glb").write_bytes(data)
    assert_valid([tmp_path / "m.glb"])
    gltf, binary = split_glb(data)
    assert set(gltf["extensionsRequired"]) == {"EXT_meshopt_compression",
                                               "KHR_mesh_quantization"}
    fallback = gltf["buffers"][1]
    assert "uri" not in fallback and fallback["extensions"]["EXT_meshopt_compression"] == {
        "fallback": True}
    prim = gltf["meshes"][0]["primitives"][0]
    acc = gltf["accessors"][prim["attributes"]["_FEATURE_ID_0"]]
    bv = gltf["bufferViews"][acc["bufferView"]]
    ext = bv["extensions"]["EXT_meshopt_compression"]
    assert bv["buffer"] == 1 and bv["byteLength"] == ext["count"] * ext["byteStride"]
    raw = binary[ext["byteOffset"]:ext["byteOffset"] + ext["byteLength"]]
    assert raw[0] == 0xA0  # vertex codec version 0, the only one EXT_meshopt_compression allows
    rows = meshopt.decode_vertex_buffer(raw, ext["count"], ext["byteStride"])
    ids = np.ascontiguousarray(rows).view(np.uint8).reshape(-1, 4)[:, :2].copy().view(np.uint16)
    assert sorted(np.bincount(ids.reshape(-1)).tolist()) == [24] * 40
    ind_ext = gltf["bufferViews"][gltf["accessors"][prim["indices"]]["bufferView"]][
        "extensions"]["EXT_meshopt_compression"]
    assert ind_ext["mode"] == "TRIANGLES"
    assert binary[ind_ext["byteOffset"]] == 0xE1
    # Feature ids of the vertices of each feature stay together and intact.
    g = Glb.parse(data)
    out = g.positions_ecef()
    idx, dist = match_vertices(ecef_of(mesh), mesh.feature_ids.astype(np.int64), out,
                               ids.reshape(-1).astype(np.int64))
    assert (dist < 0.05).all()


def test_metadata_schema_and_tables_are_valid(sample, tmp_path, assert_valid):
    mesh, frame = sample
    (tmp_path / "b.glb").write_bytes(write_glb(mesh, frame, "building"))
    assert_valid([tmp_path / "b.glb"])
    g = Glb.parse((tmp_path / "b.glb").read_bytes())
    schema = g.metadata["schema"]
    assert schema_errors(schema, "metadata_schema") == []
    for t in g.metadata["propertyTables"]:
        assert schema_errors(t, "property_table") == []
    props = schema["classes"]["building"]["properties"]
    assert props["id"] == {**props["id"], "type": "STRING", "required": True, "semantic": "ID"}
    assert "noData" not in props["id"]
    assert props["name"]["noData"] == "" and props["name"]["semantic"] == "NAME"
    assert props["height"]["componentType"] == "FLOAT64"
    assert props["height"]["noData"] == float(FLOAT64_NODATA)
    assert props["storeys"]["componentType"] == "INT32"
    assert props["storeys"]["noData"] == INT32_NODATA
    assert props["roof_type"]["type"] == "ENUM"
    enum = schema["enums"][props["roof_type"]["enumType"]]
    assert enum["valueType"] == "UINT8"
    assert [v["name"] for v in enum["values"]][:7] == ["flat", "shed", "gable", "hip", "pyramid",
                                                       "mansard", "dome"]
    assert props["roof_type"]["noData"] == "NO_DATA"
    assert {"name": "NO_DATA", "value": 255} in [{k: v[k] for k in ("name", "value")}
                                                 for v in enum["values"]]
    # Raw values of nulls are the declared noData sentinels.
    raw = g.property_table(0, apply_nodata=False)
    nulls = frame["height"].isna().to_numpy()
    assert set(np.asarray(raw["height"])[nulls]) == {float(FLOAT64_NODATA)}
    assert set(np.asarray(raw["storeys"])[frame["storeys"].isna().to_numpy()]) == {INT32_NODATA}
    assert set(np.asarray(raw["roof_type"])[frame["roof_type"].isna().to_numpy()]) == {"NO_DATA"}
    # Buffer views of the property tables are 8-byte aligned, string offsets UINT32.
    t = g.metadata["propertyTables"][0]["properties"]
    assert t["name"]["stringOffsetType"] == "UINT32"
    for p in t.values():
        for key in ("values", "stringOffsets"):
            if key in p:
                assert g.gltf["bufferViews"][p[key]]["byteOffset"] % 8 == 0


def test_road_enums_and_nullable_boolean(tmp_path, assert_valid):
    n = 6
    mesh = box_mesh(ORIGIN[0] + 20 * np.arange(n), ORIGIN[1], 0, 10, 3, 0.3)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "name": None,
                          "class": ["motorway", "local", "ramp", "trunk", "service", "local"],
                          "width": [3.0, 7.5, 12, 20, 4, 5], "lanes": [1, 2, None, 4, 1, 2],
                          "level": ["ground", "bridge", None, "tunnel", "ground", None],
                          "oneway": [True, False, None, True, None, False], "source": "osm"})
    path = tmp_path / "road.glb"
    path.write_bytes(write_glb(mesh, frame, "road"))
    assert_valid([path])
    g = Glb.parse(path.read_bytes())
    props = g.metadata["schema"]["classes"]["road"]["properties"]
    assert props["oneway"] == {**props["oneway"], "type": "SCALAR", "componentType": "UINT8",
                               "noData": 255}
    assert props["class"]["type"] == "ENUM" and props["class"]["required"] is True
    table = g.property_table(0)
    assert table["oneway"] == [1, 0, None, 1, None, 0]
    assert table["class"] == frame["class"].tolist()
    assert table["level"] == ["ground", "bridge", None, "tunnel", "ground", None]
    assert table["lanes"] == [1, 2, None, 4, 1, 2]
    assert table["name"] == [None] * n


def test_without_standard_types_follow_dtypes(tmp_path, assert_valid):
    mesh = box_mesh(ORIGIN[0] + 20 * np.arange(3), ORIGIN[1], 0, 10, 10, 10)
    frame = pd.DataFrame({"code": ["a", None, "c"], "count": np.array([1, 2, 3], np.int64),
                          "value": [0.5, np.nan, 2.25], "flag": [True, False, True],
                          "maybe": pd.array([True, None, False], "boolean")})
    path = tmp_path / "plain.glb"
    path.write_bytes(write_glb(mesh, frame, None, crs=CRS, class_name="thing"))
    assert_valid([path])
    g = Glb.parse(path.read_bytes())
    props = g.metadata["schema"]["classes"]["thing"]["properties"]
    assert {k: (v["type"], v.get("componentType")) for k, v in props.items()} == {
        "code": ("STRING", None), "count": ("SCALAR", "INT32"), "value": ("SCALAR", "FLOAT64"),
        "flag": ("BOOLEAN", None), "maybe": ("SCALAR", "UINT8")}
    assert g.property_table(0) == {"code": ["a", None, "c"], "count": [1, 2, 3],
                                   "value": [0.5, None, 2.25], "flag": [True, False, True],
                                   "maybe": [1, None, 0]}


def test_bad_input_is_refused(tmp_path, assert_valid):
    mesh = box_mesh(ORIGIN[0], ORIGIN[1], 0, 10, 10, 10)
    ok = pd.DataFrame({"id": ["a"], "source": ["s"], "roof_type": ["flat"]})
    (tmp_path / "ok.glb").write_bytes(write_glb(mesh, ok, "building"))
    assert_valid([tmp_path / "ok.glb"])
    with pytest.raises(ValueError, match="required"):
        write_glb(mesh, ok.assign(source=[None]), "building")
    with pytest.raises(ValueError, match="enum"):
        write_glb(mesh, ok.assign(roof_type=["onion"]), "building")
    with pytest.raises(ValueError, match="feature id"):
        write_glb(mesh, ok.iloc[:0], "building")
    with pytest.raises(ValueError, match="empty"):
        write_glb(Mesh.empty(), ok, "building")
    with pytest.raises(ValueError, match="compress"):
        write_glb(mesh, ok, "building", compress="draco")


def test_float32_precision_is_enforced(tmp_path, assert_valid):
    # Two features 200 km apart in one content: float32 at 100 km from the centre moves points by
    # up to 3.9 mm per axis, so uncompressed writing refuses; the tiler keeps contents small.
    mesh = box_mesh([ORIGIN[0], ORIGIN[0] + 200000.0], ORIGIN[1], 0, 10, 10, 10)
    frame = pd.DataFrame({"id": ["a", "b"], "source": "s"})
    with pytest.raises(PrecisionError):
        write_glb(mesh, frame, "building")
    # Quantized content states its own error (extent / 65535 = 3 m here): allowed, and valid.
    (tmp_path / "q.glb").write_bytes(write_glb(mesh, frame, "building", compress="quantize"))
    assert_valid([tmp_path / "q.glb"])


def test_many_features_use_float_ids(tmp_path, assert_valid):
    n = 70000
    rng = np.random.default_rng(1)
    base = np.stack([ORIGIN[0] + rng.uniform(0, 2000, n), ORIGIN[1] + rng.uniform(0, 2000, n),
                     rng.uniform(0, 50, n)], 1)
    pos = np.repeat(base, 3, 0) + np.tile([[0, 0, 0], [1, 0, 0], [0, 1, 0]], (n, 1))
    mesh = Mesh(pos, np.arange(3 * n).reshape(-1, 3), np.repeat(np.arange(n), 3))
    frame = pd.DataFrame({"id": [f"f{i}" for i in range(n)], "source": "s"})
    path = tmp_path / "many.glb"
    path.write_bytes(write_glb(mesh, frame, "building"))
    assert_valid([path])
    g = Glb.parse(path.read_bytes())
    acc = g.gltf["accessors"][g.primitive["attributes"]["_FEATURE_ID_0"]]
    assert acc["componentType"] == 5126  # FLOAT: glTF forbids UNSIGNED_INT custom attributes
    assert (g.attribute("_FEATURE_ID_0") == mesh.feature_ids).all()
    assert g.gltf["accessors"][g.primitive["indices"]]["componentType"] == 5125


@pytest.mark.skipif(not node_available(), reason="node / npm tools not installed")
def test_independent_js_readers_agree(sample, tmp_path):
    """glTF-Transform (with the meshoptimizer JS decoder CesiumJS uses) and 3d-tiles-tools'
    property-table reader see the same geometry, ids and attributes."""
    mesh, frame = sample
    path = tmp_path / "m.glb"
    path.write_bytes(write_glb(mesh, frame, "building", compress="meshopt"))
    js = inspect("glb", path)
    world = np.array(js["world"]).reshape(4, 4).T
    from tiles.placement import Y_UP_TO_Z_UP

    m = Y_UP_TO_Z_UP @ world
    pos = np.array(js["positions"]) @ m[:3, :3].T + m[:3, 3]
    fids = np.array(js["attributes"]["_FEATURE_ID_0"], np.int64)
    _, dist = match_vertices(ecef_of(mesh), mesh.feature_ids.astype(np.int64), pos, fids)
    scale = Glb.parse(path.read_bytes()).gltf["nodes"][1]["scale"][0]
    assert dist.max() <= scale / 65535.0
    table = js["tables"][0]
    for name in frame.columns:
        assert table[name] == column(frame, name), name
    assert js["tables"][1]["name"][SURFACE_CODES["WallSurface"]] == "WallSurface"
