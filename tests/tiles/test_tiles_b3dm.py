"""3D Tiles 1.0 b3dm content: layout, batch table, embedded glb, 3d-tiles-tools."""

from __future__ import annotations

import json
import struct

import numpy as np
import pandas as pd
import pytest
from tiles_testdata import ORIGIN, node_available, random_boxes, tiles_cli

from gis.mesh.base import Mesh
from tiles.b3dm import write_b3dm
from tiles.placement import to_ecef
from tiles.read import B3dm, Glb
from tiles.schemas import schema_errors


def column(df: pd.DataFrame, name: str) -> list:
    return [None if pd.isna(v) else (int(v) if isinstance(v, np.integer) else v)
            for v in df[name].tolist()]


@pytest.fixture(scope="module")
def sample():
    mesh, frame, _, _ = random_boxes(25, seed=9, extent=500.0)
    return mesh, frame


def test_b3dm_layout_and_tables(sample, tmp_path, assert_valid):
    mesh, frame = sample
    data = write_b3dm(mesh, frame, "building")
    magic, version, length, ftj, ftb, btj, btb = struct.unpack_from("<4s6I", data, 0)
    assert (magic, version, length) == (b"b3dm", 1, len(data))
    assert length % 8 == 0 and ftb == 0
    glb_at = 28 + ftj + ftb + btj + btb
    assert (28 + ftj) % 8 == 0 and (28 + ftj + ftb + btj) % 8 == 0 and glb_at % 8 == 0
    glb_len = struct.unpack_from("<I", data, glb_at + 8)[0]
    assert data[glb_at:glb_at + 4] == b"glTF" and glb_at + glb_len == len(data)  # no trailing
    assert data[28:28 + ftj].rstrip(b" ").endswith(b"}")  # JSON padded with spaces
    b = B3dm.parse(data)
    assert b.feature_table == {"BATCH_LENGTH": 25}
    assert schema_errors(b.feature_table, "b3dm_feature_table") == []
    assert schema_errors(b.batch_table, "batch_table") == []
    # Numeric columns without nulls are binary references; the rest JSON arrays with nulls.
    assert b.batch_table["storey_height"] == {"byteOffset": b.batch_table["storey_height"][
        "byteOffset"], "componentType": "DOUBLE", "type": "SCALAR"}
    assert b.batch_table["lod"]["componentType"] == "INT"
    assert isinstance(b.batch_table["height"], list)
    assert all(v["byteOffset"] % 8 == 0 for v in b.batch_table.values() if isinstance(v, dict))
    assert btb == sum(8 * ((25 * (8 if v["componentType"] == "DOUBLE" else 4) + 7) // 8)
                      for v in b.batch_table.values() if isinstance(v, dict))
    cols = b.batch_columns()
    for name in frame.columns:
        assert cols[name] == column(frame, name), name
    # Embedded glb: _BATCHID (UNSIGNED_SHORT), no glTF metadata extensions, placed in ECEF.
    path = tmp_path / "t.b3dm"
    path.write_bytes(data)
    assert_valid([path])
    g = Glb.parse(b.glb)
    assert "extensionsUsed" not in g.gltf
    acc = g.gltf["accessors"][g.primitive["attributes"]["_BATCHID"]]
    assert (acc["componentType"], acc["type"]) == (5123, "SCALAR")
    assert (g.attribute("_BATCHID") == mesh.feature_ids).all()
    p = mesh.positions
    ref = np.stack(to_ecef(p[:, 0], p[:, 1], p[:, 2], "EPSG:3826"), 1)
    assert np.linalg.norm(g.positions_ecef() - ref, axis=1).max() < 0.001


def test_b3dm_many_features_float_batch_ids(tmp_path, assert_valid):
    n = 66000
    rng = np.random.default_rng(2)
    base = np.stack([ORIGIN[0] + rng.uniform(0, 1500, n), ORIGIN[1] + rng.uniform(0, 1500, n),
                     np.zeros(n)], 1)
    pos = np.repeat(base, 3, 0) + np.tile([[0, 0, 0], [1, 0, 0], [0, 1, 0]], (n, 1))
    mesh = Mesh(pos, np.arange(3 * n).reshape(-1, 3), np.repeat(np.arange(n), 3))
    frame = pd.DataFrame({"id": [f"f{i}" for i in range(n)], "source": "s"})
    path = tmp_path / "many.b3dm"
    path.write_bytes(write_b3dm(mesh, frame, "building"))
    assert_valid([path])
    b = B3dm.parse(path.read_bytes())
    g = Glb.parse(b.glb)
    assert g.gltf["accessors"][g.primitive["attributes"]["_BATCHID"]]["componentType"] == 5126
    assert (g.attribute("_BATCHID") == mesh.feature_ids).all()
    assert b.feature_table["BATCH_LENGTH"] == n


@pytest.mark.skipif(not node_available(), reason="node / npm tools not installed")
def test_3d_tiles_tools_reads_b3dm(sample, tmp_path, assert_valid):
    mesh, frame = sample
    path = tmp_path / "t.b3dm"
    path.write_bytes(write_b3dm(mesh, frame, "building"))
    assert_valid([path])
    out = tmp_path / "analyzed"
    proc = tiles_cli("analyze", "-i", str(path), "-o", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    layout = json.loads((out / "t.b3dm.layout.json").read_text())
    assert layout["byteLength"] == path.stat().st_size
    assert layout["payload"]["end"] == layout["byteLength"]
    bt = json.loads((out / "t.b3dm.batchTable.json").read_text())
    assert bt == B3dm.parse(path.read_bytes()).batch_table
    glb = tmp_path / "t.glb"
    proc = tiles_cli("b3dmToGlb", "-i", str(path), "-o", str(glb), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert glb.read_bytes() == B3dm.parse(path.read_bytes()).glb
