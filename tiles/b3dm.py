"""3D Tiles 1.0 Batched 3D Model (b3dm) content, for clients that predate glTF content.

Layout (3D Tiles 1.0 / 1.1 "Batched 3D Model", "Feature Table", "Batch Table"):

* 28-byte header: ``b3dm``, version 1, byteLength, featureTableJSONByteLength,
  featureTableBinaryByteLength, batchTableJSONByteLength, batchTableBinaryByteLength.
* Feature table JSON ``{"BATCH_LENGTH": n}`` (no RTC_CENTER: the glb's root node places the tile
  frame in ECEF, exactly as in our glTF content), no binary body.
* Batch table JSON (per-feature arrays; numeric columns without nulls are references into the
  binary body, each 8-byte aligned), see :func:`tiles.metadata.batch_table`.
* Each JSON is padded with spaces and each binary with zeros so that every section, and therefore
  the embedded GLB, starts on an 8-byte boundary; the GLB's own length is a multiple of 8, so the
  tile's byteLength is too and no bytes trail the GLB.
* The GLB uses ``_BATCHID`` (SCALAR; UNSIGNED_SHORT below 65536 features, else FLOAT: glTF 2.0
  forbids UNSIGNED_INT for custom attributes) and carries no EXT_mesh_features /
  EXT_structural_metadata.
"""

from __future__ import annotations

import struct

import pandas as pd

from gis.mesh.base import Mesh
from tiles.glb import Compress, Geometry, GltfBuilder, _defaults, encode_geometry, \
    layer_material
from tiles.metadata import batch_table, json_bytes, metadata_class
from tiles.placement import LocalFrame

HEADER = 28


def _padded_json(obj: dict, start: int) -> bytes:
    """JSON padded with spaces so that ``start + len`` is a multiple of 8."""
    raw = json_bytes(obj)
    return raw + b" " * (-(start + len(raw)) % 8)


def write_b3dm(mesh: Mesh, features: pd.DataFrame, standard: str | None, *,
               class_name: str | None = None, crs: str | None = None,
               compress: Compress = "none", frame: LocalFrame | None = None) -> bytes:
    """Encode one tile as b3dm.

    Args:
        mesh: Triangles in the store CRS; ``feature_ids`` are the batch ids (rows of
            ``features``).
        features: Attribute table, one row per batch id.
        standard: NGIS standard for the columns and types, or None (infer from dtypes).
        class_name: Layer name (material); default the standard's name.
        crs: Store CRS; default the standard's national CRS.
        compress: ``none`` or ``quantize`` (KHR_mesh_quantization, which 1.0 clients such as
            CesiumJS accept inside b3dm); ``meshopt`` also works in CesiumJS.
        frame: Tile frame; default the centre of the mesh's geodetic bounds.

    Returns:
        The b3dm bytes (byteLength a multiple of 8).

    Raises:
        ValueError: Empty mesh, feature ids outside the table, attribute problems.
    """
    class_name, crs = _defaults(standard, class_name, crs)
    n = len(features)
    if len(mesh.feature_ids) and int(mesh.feature_ids.max()) >= n:
        raise ValueError(f"batch id {int(mesh.feature_ids.max())} but only {n} feature rows")
    mc = metadata_class(standard, features, class_name)
    bt_json, bt_bin = batch_table(mc, features.reset_index(drop=True))
    b = GltfBuilder()
    encode_geometry(b, Geometry(mesh, crs, frame), compress=compress, id_attribute="_BATCHID",
                    material=layer_material(class_name), name=class_name)
    b.gltf["extras"] = {"layer": class_name, "standard": standard, "crs": crs}
    glb = b.to_glb()
    ft = _padded_json({"BATCH_LENGTH": n}, HEADER)
    bt = _padded_json(bt_json, HEADER + len(ft)) if bt_json else b""
    bt_bin = bt_bin + b"\0" * (-len(bt_bin) % 8) if bt_json else b""
    total = HEADER + len(ft) + len(bt) + len(bt_bin) + len(glb)
    assert total % 8 == 0 and len(glb) % 8 == 0
    header = struct.pack("<4s6I", b"b3dm", 1, total, len(ft), 0, len(bt), len(bt_bin))
    return b"".join([header, ft, bt, bt_bin, glb])

