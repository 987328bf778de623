"""A small reader for what :mod:`tiles` writes: GLB (with KHR_mesh_quantization,
EXT_meshopt_compression, EXT_mesh_features, EXT_structural_metadata), b3dm (feature and batch
tables) and binary subtrees. It is the tests' oracle and backs ``ngis tiles info``; it reads any
conforming file of these kinds as far as the features we use go (no textures, sparse accessors,
external buffers or arrays in property tables).
"""

from __future__ import annotations

import gzip
import json
import struct
from dataclasses import dataclass
from typing import Any

import meshopt
import numpy as np

from tiles.placement import Y_UP_TO_Z_UP

_COMPONENT = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32,
              5126: np.float32}
_NCOMP = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_META = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "UINT16": np.uint16,
         "INT32": np.int32, "UINT32": np.uint32, "INT64": np.int64, "UINT64": np.uint64,
         "FLOAT32": np.float32, "FLOAT64": np.float64}
_BATCH = {"BYTE": np.int8, "UNSIGNED_BYTE": np.uint8, "SHORT": np.int16,
          "UNSIGNED_SHORT": np.uint16, "INT": np.int32, "UNSIGNED_INT": np.uint32,
          "FLOAT": np.float32, "DOUBLE": np.float64}


def maybe_gunzip(data: bytes) -> bytes:
    """The bytes, gunzipped when they start with the gzip magic."""
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def split_glb(data: bytes) -> tuple[dict[str, Any], bytes]:
    """GLB bytes as (JSON, BIN chunk).

    Raises:
        ValueError: Not a GLB, or inconsistent lengths.
    """
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF" or version != 2:
        raise ValueError("not a glTF 2.0 binary")
    if length > len(data):
        raise ValueError(f"GLB declares {length} bytes, has {len(data)}")
    jlen, jtype = struct.unpack_from("<I4s", data, 12)
    if jtype != b"JSON":
        raise ValueError("first GLB chunk is not JSON")
    gltf = json.loads(data[20:20 + jlen])
    off = 20 + jlen
    binary = b""
    if off < length:
        blen, btype = struct.unpack_from("<I4s", data, off)
        if btype == b"BIN\0":
            binary = bytes(data[off + 8:off + 8 + blen])
    return gltf, binary


def _trs(node: dict[str, Any]) -> np.ndarray:
    if "matrix" in node:
        return np.array(node["matrix"], np.float64).reshape(4, 4).T
    m = np.eye(4)
    x, y, z, w = node.get("rotation", [0.0, 0.0, 0.0, 1.0])
    m[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    m[:3, :3] *= np.array(node.get("scale", [1.0, 1.0, 1.0]))[None, :]
    m[:3, 3] = node.get("translation", [0.0, 0.0, 0.0])
    return m


@dataclass
class Glb:
    """A decoded GLB.

    Attributes:
        gltf: The JSON.
        binary: The BIN chunk.
    """

    gltf: dict[str, Any]
    binary: bytes

    @classmethod
    def parse(cls, data: bytes) -> Glb:
        """Parse GLB bytes (gzip-compressed accepted)."""
        return cls(*split_glb(maybe_gunzip(data)))

    def view_bytes(self, index: int) -> bytes:
        """A buffer view's bytes, meshopt-decoded when the view is compressed."""
        bv = self.gltf["bufferViews"][index]
        ext = bv.get("extensions", {}).get("EXT_meshopt_compression")
        if ext is not None:
            if ext["buffer"] != 0:
                raise ValueError("only GLB-stored meshopt data is supported")
            src = self.binary[ext.get("byteOffset", 0):ext.get("byteOffset", 0)
                              + ext["byteLength"]]
            out = meshopt.decode_gltf_buffer(src, ext["count"], ext["byteStride"], ext["mode"],
                                             ext.get("filter", "NONE"))
            return np.ascontiguousarray(out).tobytes()
        if bv["buffer"] != 0:
            raise ValueError("only the GLB binary buffer is supported")
        start = bv.get("byteOffset", 0)
        return self.binary[start:start + bv["byteLength"]]

    def accessor(self, index: int, normalize: bool = True) -> np.ndarray:
        """An accessor's values, (count, n) or (count,); normalized integers as floats."""
        acc = self.gltf["accessors"][index]
        dtype = np.dtype(_COMPONENT[acc["componentType"]])
        n = _NCOMP[acc["type"]]
        count = acc["count"]
        bv = self.gltf["bufferViews"][acc["bufferView"]]
        raw = self.view_bytes(acc["bufferView"])
        stride = bv.get("byteStride", dtype.itemsize * n)
        base = acc.get("byteOffset", 0)
        buf = np.frombuffer(raw, np.uint8)
        seg = buf[base:base + count * stride]
        if len(seg) < count * stride:  # the last element need not fill a whole stride
            seg = np.concatenate([seg, np.zeros(count * stride - len(seg), np.uint8)])
        rows = seg.reshape(count, stride)
        vals = np.ascontiguousarray(rows[:, :dtype.itemsize * n]).view(dtype).reshape(count, n)
        if acc.get("normalized") and normalize:
            info = np.iinfo(dtype)
            vals = (np.maximum(vals.astype(np.float64) / info.max, -1.0) if info.min < 0
                    else vals.astype(np.float64) / info.max)
        return vals[:, 0] if n == 1 else vals

    @property
    def primitive(self) -> dict[str, Any]:
        """The first primitive of the first mesh."""
        return self.gltf["meshes"][0]["primitives"][0]

    def attribute(self, name: str) -> np.ndarray:
        """A vertex attribute of the first primitive."""
        return self.accessor(self.primitive["attributes"][name])

    def indices(self) -> np.ndarray:
        """(m, 3) triangle indices of the first primitive."""
        return self.accessor(self.primitive["indices"]).astype(np.int64).reshape(-1, 3)

    def mesh_world_matrix(self) -> np.ndarray:
        """Product of node transforms from the scene root to the node holding mesh 0 (glTF
        y-up space)."""
        nodes = self.gltf["nodes"]

        def walk(i: int, m: np.ndarray) -> np.ndarray | None:
            m = m @ _trs(nodes[i])
            if nodes[i].get("mesh") == 0:
                return m
            for c in nodes[i].get("children", []):
                r = walk(c, m)
                if r is not None:
                    return r
            return None

        scene = self.gltf["scenes"][self.gltf.get("scene", 0)]
        for root in scene["nodes"]:
            r = walk(root, np.eye(4))
            if r is not None:
                return r
        raise ValueError("no node holds mesh 0")

    def positions_ecef(self, tile_transform: np.ndarray | None = None) -> np.ndarray:
        """POSITION as ECEF, the way a 3D Tiles client places glTF content: tile transform,
        then y-up -> z-up, then the node hierarchy (3D Tiles 1.1, "glTF transforms")."""
        m = (np.eye(4) if tile_transform is None else tile_transform) @ Y_UP_TO_Z_UP \
            @ self.mesh_world_matrix()
        p = self.attribute("POSITION").astype(np.float64)
        return p @ m[:3, :3].T + m[:3, 3]

    @property
    def metadata(self) -> dict[str, Any]:
        """The root EXT_structural_metadata object (empty when absent)."""
        return self.gltf.get("extensions", {}).get("EXT_structural_metadata", {})

    def feature_id_sets(self) -> list[dict[str, Any]]:
        """EXT_mesh_features feature ID sets of the first primitive."""
        return self.primitive.get("extensions", {}).get("EXT_mesh_features", {}).get(
            "featureIds", [])

    def property_table(self, index: int = 0, apply_nodata: bool = True) -> dict[str, list]:
        """A property table as columns of Python values (ENUM as names; noData as None)."""
        meta = self.metadata
        return decode_property_table(meta["schema"], meta["propertyTables"][index],
                                     self.view_bytes, apply_nodata)


def decode_property_table(schema: dict[str, Any], table: dict[str, Any], view_bytes,
                          apply_nodata: bool = True) -> dict[str, list]:
    """Decode a binary property table (3D Metadata, "Binary Table Format").

    Args:
        schema: The metadata schema.
        table: The property table JSON.
        view_bytes: Function buffer-view index -> bytes.
        apply_nodata: Turn noData values into None.

    Returns:
        Property id -> list of ``count`` values.
    """
    cls = schema["classes"][table["class"]]["properties"]
    count = table["count"]
    out: dict[str, list] = {}
    for name, tp in table["properties"].items():
        prop = cls[name]
        raw = view_bytes(tp["values"])
        kind = prop["type"]
        if kind == "STRING":
            odt = _META[tp.get("stringOffsetType", "UINT32")]
            offs = np.frombuffer(view_bytes(tp["stringOffsets"]), odt)[:count + 1]
            vals: list[Any] = [raw[int(offs[i]):int(offs[i + 1])].decode("utf-8")
                               for i in range(count)]
        elif kind == "BOOLEAN":
            bits = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")[:count]
            vals = [bool(v) for v in bits]
        elif kind == "ENUM":
            enum = schema["enums"][prop["enumType"]]
            codes = np.frombuffer(raw, _META[enum.get("valueType", "UINT16")])[:count]
            names = {v["value"]: v["name"] for v in enum["values"]}
            vals = [names[int(c)] for c in codes]
        elif kind == "SCALAR" and prop.get("array"):
            if "count" not in prop:
                raise ValueError("variable-length arrays are not supported by this reader")
            k = prop["count"]
            vals = np.frombuffer(raw, _META[prop["componentType"]])[:count * k] \
                .reshape(count, k).tolist()
        elif kind == "SCALAR":
            vals = np.frombuffer(raw, _META[prop["componentType"]])[:count].tolist()
        else:
            raise ValueError(f"property type {kind} not supported by this reader")
        if apply_nodata and "noData" in prop:
            vals = [None if v == prop["noData"] else v for v in vals]
        out[name] = vals
    return out


@dataclass
class B3dm:
    """A decoded b3dm.

    Attributes:
        header: The seven header fields by name.
        feature_table: Feature table JSON.
        batch_table: Batch table JSON (binary references as given).
        batch_binary: Batch table binary body.
        glb: The embedded GLB bytes (exactly the GLB's declared length).
    """

    header: dict[str, Any]
    feature_table: dict[str, Any]
    batch_table: dict[str, Any]
    batch_binary: bytes
    glb: bytes

    @classmethod
    def parse(cls, data: bytes) -> B3dm:
        """Parse b3dm bytes (gzip-compressed accepted).

        Raises:
            ValueError: Wrong magic or lengths.
        """
        data = maybe_gunzip(data)
        names = ("magic", "version", "byteLength", "featureTableJSONByteLength",
                 "featureTableBinaryByteLength", "batchTableJSONByteLength",
                 "batchTableBinaryByteLength")
        header = dict(zip(names, struct.unpack_from("<4s6I", data, 0), strict=True))
        if header["magic"] != b"b3dm" or header["version"] != 1:
            raise ValueError("not a b3dm version 1")
        if header["byteLength"] != len(data):
            raise ValueError(f"byteLength {header['byteLength']} but {len(data)} bytes")
        o = 28
        ftj = data[o:o + header["featureTableJSONByteLength"]]
        o += header["featureTableJSONByteLength"] + header["featureTableBinaryByteLength"]
        btj = data[o:o + header["batchTableJSONByteLength"]]
        o += header["batchTableJSONByteLength"]
        btb = data[o:o + header["batchTableBinaryByteLength"]]
        o += header["batchTableBinaryByteLength"]
        glb_len = struct.unpack_from("<I", data, o + 8)[0]
        return cls(header, json.loads(ftj), json.loads(btj) if btj.strip() else {}, btb,
                   data[o:o + glb_len])

    def batch_columns(self) -> dict[str, list]:
        """Batch table as columns: binary references decoded, JSON arrays as they are."""
        n = self.feature_table["BATCH_LENGTH"]
        out: dict[str, list] = {}
        for name, col in self.batch_table.items():
            if name in ("extensions", "extras"):
                continue
            if isinstance(col, dict):
                dt = np.dtype(_BATCH[col["componentType"]])
                k = _NCOMP[col["type"]]
                arr = np.frombuffer(self.batch_binary, dt, count=n * k,
                                    offset=col["byteOffset"])
                out[name] = arr.tolist() if k == 1 else arr.reshape(n, k).tolist()
            else:
                out[name] = list(col)
        return out


def read_subtree(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Binary subtree as (JSON, binary chunk) (3D Tiles 1.1, "Subtree Binary Format").

    Raises:
        ValueError: Wrong magic or version.
    """
    data = maybe_gunzip(data)
    magic, version, jlen, blen = struct.unpack_from("<4sIQQ", data, 0)
    if magic != b"subt" or version != 1:
        raise ValueError("not a binary subtree version 1")
    return json.loads(data[24:24 + jlen]), data[24 + jlen:24 + jlen + blen]


def availability_bits(spec: dict[str, Any], subtree: dict[str, Any], binary: bytes,
                      length: int) -> np.ndarray:
    """An availability (constant or bitstream) as ``length`` booleans."""
    if "constant" in spec:
        return np.full(length, bool(spec["constant"]))
    bv = subtree["bufferViews"][spec["bitstream"]]
    if subtree["buffers"][bv["buffer"]].get("uri") is not None:
        raise ValueError("external subtree buffers are not supported")
    raw = np.frombuffer(binary, np.uint8, count=bv["byteLength"], offset=bv.get("byteOffset", 0))
    return np.unpackbits(raw, bitorder="little")[:length].astype(bool)
