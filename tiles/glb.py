"""One tile's content as binary glTF 2.0 (glTF 2.0 spec, "GLB File Format Specification").

Layout of what :func:`write_glb` writes (one mesh, one triangle primitive):

* ``POSITION``: local east-up-south coordinates of the tile frame (see :mod:`tiles.placement`);
  float32, or with ``compress="quantize"/"meshopt"`` unsigned 16-bit normalized over the content's
  bounding cube (KHR_mesh_quantization), error <= extent / 65535 / 2 per axis. The root node's
  ``matrix`` places the frame in ECEF (glTF y-up axes); a child node's ``translation``/``scale``
  undoes the quantization.
* ``NORMAL``: area-weighted vertex normals from the final positions (builders duplicate vertices
  of flat faces, so flat faces stay flat); float32, or normalized int8 (``meshopt``: octahedral
  filter).
* ``_FEATURE_ID_0``: row of the feature in the property table (EXT_mesh_features "feature ID by
  vertex"); UNSIGNED_SHORT (padded to 4 bytes: vertex attributes are 4-byte aligned) below 65536
  features, else FLOAT (exact below 2^24). glTF forbids UNSIGNED_INT for custom attributes.
* ``_FEATURE_ID_1`` (when the mesh has surface types): the surface code (UNSIGNED_BYTE), a second
  feature ID set labelled ``surface_type`` whose property table names the codes.
* ``COLOR_0`` (when the mesh has colours): linear RGBA as normalized UNSIGNED_SHORT; the input is
  sRGB 8-bit and glTF vertex colours are linear.
* ``EXT_structural_metadata``: schema generated from the standard (:mod:`tiles.metadata`) and
  binary property tables, every buffer view 8-byte aligned.
* ``compress="meshopt"``: every vertex and index buffer view is EXT_meshopt_compression encoded
  (bitstream version 0, as the extension requires) and points to a data-less fallback buffer, so
  ``EXT_meshopt_compression`` and ``KHR_mesh_quantization`` are in ``extensionsRequired``
  (EXT_meshopt_compression, "Fallback buffers"). Metadata buffer views stay uncompressed.
"""

from __future__ import annotations

import struct
from functools import cache
from typing import Any, Literal

import meshopt
import numpy as np
import pandas as pd

from gis.mesh.base import SURFACE_CODES, Mesh
from tiles.metadata import MetadataClass, PropertySpec, json_bytes, metadata_class, \
    property_table, schema_json
from tiles.placement import WGS84_A, WGS84_E2, LocalFrame, check_float32, column_major, \
    geodetic, geodetic_to_ecef

Compress = Literal["none", "quantize", "meshopt"]
GENERATOR = "ngis3d tiles"
BYTE, UNSIGNED_BYTE, SHORT, UNSIGNED_SHORT, UNSIGNED_INT, FLOAT = 5120, 5121, 5122, 5123, 5125, 5126
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
#: Base colours (sRGB) per layer when the mesh has no vertex colours.
LAYER_COLOURS = {"building": (0.87, 0.85, 0.80), "road": (0.36, 0.36, 0.38),
                 "rail": (0.45, 0.36, 0.30), "pipeline": (0.20, 0.50, 0.90),
                 "crash": (0.85, 0.10, 0.10)}


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB components in [0, 1] to linear (IEC 61966-2-1)."""
    c = np.asarray(c, np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


class GltfBuilder:
    """Accumulates glTF JSON and the GLB binary chunk (buffer 0)."""

    def __init__(self) -> None:
        self.gltf: dict[str, Any] = {"asset": {"version": "2.0", "generator": GENERATOR},
                                     "buffers": [], "bufferViews": [], "accessors": []}
        self.bin = bytearray()
        self.fallback_length = 0
        self.used: set[str] = set()
        self.required: set[str] = set()

    def _append(self, data: bytes) -> int:
        self.bin += b"\0" * (-len(self.bin) % 8)
        offset = len(self.bin)
        self.bin += data
        return offset

    def view(self, data: bytes, *, target: int | None = None, stride: int | None = None) -> int:
        """A buffer view on buffer 0 holding ``data``, its offset aligned to 8 bytes."""
        bv: dict[str, Any] = {"buffer": 0, "byteOffset": self._append(data),
                              "byteLength": len(data)}
        if stride:
            bv["byteStride"] = stride
        if target:
            bv["target"] = target
        self.gltf["bufferViews"].append(bv)
        return len(self.gltf["bufferViews"]) - 1

    def meshopt_view(self, rows: np.ndarray, *, mode: str, target: int, stride: int | None = None,
                     filter: str = "NONE") -> int:
        """A buffer view stored EXT_meshopt_compression encoded (mode ATTRIBUTES or TRIANGLES).

        Args:
            rows: ATTRIBUTES: (count, stride) uint8 rows as they decode (after the filter);
                TRIANGLES: flat uint16/uint32 indices.
            mode: ``ATTRIBUTES`` or ``TRIANGLES``.
            target: bufferView target.
            stride: Parent byteStride (vertex attributes only).
            filter: Post-decode filter name.
        """
        if mode == "TRIANGLES":
            size = rows.dtype.itemsize
            encoded = meshopt.encode_gltf_buffer(rows.astype(np.uint32), "TRIANGLES")
            count, ext_stride = len(rows), size
        else:
            rows = np.ascontiguousarray(rows, np.uint8)
            encoded = meshopt.encode_gltf_buffer(rows, "ATTRIBUTES", version=0)
            count, ext_stride = rows.shape
        length = count * ext_stride
        self.fallback_length += -self.fallback_length % 8
        bv: dict[str, Any] = {"buffer": 1, "byteOffset": self.fallback_length,
                              "byteLength": length, "target": target}
        self.fallback_length += length
        if stride:
            bv["byteStride"] = stride
        ext: dict[str, Any] = {"buffer": 0, "byteOffset": self._append(encoded),
                               "byteLength": len(encoded), "byteStride": ext_stride,
                               "count": count, "mode": mode}
        if filter != "NONE":
            ext["filter"] = filter
        bv["extensions"] = {"EXT_meshopt_compression": ext}
        self.used.add("EXT_meshopt_compression")
        self.required.add("EXT_meshopt_compression")
        self.gltf["bufferViews"].append(bv)
        return len(self.gltf["bufferViews"]) - 1

    def accessor(self, view: int, component_type: int, count: int, type_: str, *,
                 normalized: bool = False, amin: list | None = None,
                 amax: list | None = None) -> int:
        """An accessor on a buffer view; returns its index."""
        acc: dict[str, Any] = {"bufferView": view, "componentType": component_type,
                               "count": int(count), "type": type_}
        if normalized:
            acc["normalized"] = True
        if amin is not None:
            acc["min"], acc["max"] = amin, amax
        self.gltf["accessors"].append(acc)
        return len(self.gltf["accessors"]) - 1

    def to_glb(self) -> bytes:
        """The GLB: 12-byte header, JSON chunk, BIN chunk; total length a multiple of 8 (so a
        b3dm body stays 8-byte aligned) with no padding beyond what the chunks declare."""
        self.bin += b"\0" * (-len(self.bin) % 8)
        self.gltf["buffers"] = [{"byteLength": len(self.bin)}]
        if self.fallback_length:
            self.gltf["buffers"].append({"byteLength": self.fallback_length, "extensions": {
                "EXT_meshopt_compression": {"fallback": True}}})
        if self.used:
            self.gltf["extensionsUsed"] = sorted(self.used)
        if self.required:
            self.gltf["extensionsRequired"] = sorted(self.required)
        js = json_bytes(self.gltf)
        js += b" " * (-(20 + len(js)) % 8)
        total = 12 + 8 + len(js) + 8 + len(self.bin)
        return b"".join([struct.pack("<4sII", b"glTF", 2, total),
                         struct.pack("<I4s", len(js), b"JSON"), js,
                         struct.pack("<I4s", len(self.bin), b"BIN\0"), bytes(self.bin)])


def vertex_normals(positions: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals; vertices no triangle uses get +Y (up in glTF).

    Args:
        positions: (n, 3) float64.
        indices: (m, 3) triangles, counter-clockwise from outside.

    Returns:
        (n, 3) float64 unit vectors.
    """
    p = positions[indices]
    a, b = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    face = np.empty_like(a)  # a x b (as np.cross computes it), length = 2 x area
    face[:, 0] = a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1]
    face[:, 1] = a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]
    face[:, 2] = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    flat = indices.reshape(-1)
    acc = np.stack([np.bincount(flat, weights=np.repeat(face[:, c], 3), minlength=len(positions))
                    for c in range(3)], axis=1)
    length = np.linalg.norm(acc, axis=1, keepdims=True)
    out = np.divide(acc, length, out=np.zeros_like(acc), where=length > 0)
    out[length[:, 0] == 0] = (0.0, 1.0, 0.0)
    return out


def _rows(a: np.ndarray, stride: int) -> np.ndarray:
    """Per-vertex data as (n, stride) byte rows, zero padded."""
    a = np.ascontiguousarray(a)
    raw = a.view(np.uint8).reshape(len(a), -1)
    if raw.shape[1] == stride:
        return raw
    out = np.zeros((len(a), stride), np.uint8)
    out[:, :raw.shape[1]] = raw
    return out


def placed(p: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                              tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Geodetic lon, lat (degrees, of each distinct (x, y)), ellipsoidal h and ECEF X, Y, Z of
    mesh vertices: :func:`tiles.placement.geodetic` and :func:`~tiles.placement.geodetic_to_ecef`
    with the projection, the geoid and the trigonometry done once per distinct (x, y) (walls,
    roofs and floors repeat the footprint's corners). The same numbers: every point is projected
    on its own, and the per-vertex arithmetic is the same operations in the same order."""
    xy = np.empty(len(p), np.complex128)
    xy.real, xy.imag = p[:, 0], p[:, 1]
    codes, unique = pd.factorize(xy)
    if len(unique) > 0.75 * len(p):
        lon, lat, h = geodetic(p[:, 0], p[:, 1], p[:, 2], crs)
        return lon, lat, h, geodetic_to_ecef(lon, lat, h)
    lon, lat, n = geodetic(unique.real, unique.imag, np.zeros(len(unique)), crs)
    h = p[:, 2] + n[codes]
    lam, phi = np.radians(lon), np.radians(lat)
    sphi = np.sin(phi)
    rn = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sphi * sphi)
    cphi, clam, slam = np.cos(phi), np.cos(lam), np.sin(lam)
    rc, cc = rn[codes], cphi[codes]
    return lon, lat, h, ((rc + h) * cc * clam[codes], (rc + h) * cc * slam[codes],
                         (rc * (1.0 - WGS84_E2) + h) * sphi[codes])


class Geometry:
    """A mesh placed in a tile frame, ready to encode.

    Attributes:
        frame: The tile's local frame.
        local: (n, 3) float64 local glTF coordinates.
        indices: (m, 3) uint32 (index-degenerate triangles dropped).
        normals: (n, 3) float64.
        mesh: The input mesh (feature ids, colours, surface types).
    """

    def __init__(self, mesh: Mesh, crs: str, frame: LocalFrame | None = None) -> None:
        if mesh.n_triangles == 0:
            raise ValueError("cannot write an empty mesh")
        lon, lat, h, ecef = placed(mesh.positions, crs)
        self.frame = frame or LocalFrame.around(lon, lat, h)
        self.local = self.frame.from_ecef(*ecef)
        tri = mesh.indices
        keep = (tri[:, 0] != tri[:, 1]) & (tri[:, 1] != tri[:, 2]) & (tri[:, 0] != tri[:, 2])
        self.indices = tri[keep]
        if not len(self.indices):
            raise ValueError("the mesh has only degenerate triangles")
        self.normals = vertex_normals(self.local, self.indices)
        self.mesh = mesh


def encode_geometry(b: GltfBuilder, g: Geometry, *, compress: Compress, id_attribute: str,
                    material: dict[str, Any], name: str) -> dict[str, Any]:
    """Add the geometry (mesh, nodes, scene, material) to a builder.

    Args:
        b: The builder.
        g: The placed geometry.
        compress: ``none``, ``quantize`` (KHR_mesh_quantization only) or ``meshopt``.
        id_attribute: ``_FEATURE_ID_0`` (glTF + EXT_mesh_features) or ``_BATCHID`` (b3dm).
        material: glTF material.
        name: Mesh / node name.

    Returns:
        The primitive dict (callers add extensions to it).
    """
    if compress not in ("none", "quantize", "meshopt"):
        raise ValueError(f"compress must be none, quantize or meshopt, not {compress!r}")
    n = len(g.local)
    indices, local, normals = g.indices.astype(np.uint32), g.local, g.normals
    ids, colors, surf = g.mesh.feature_ids, g.mesh.colors, g.mesh.surface_types
    if compress == "meshopt":  # vertex cache / fetch order: better compression, unused dropped
        new_idx, remap, unique = meshopt.reorder_mesh(indices.reshape(-1), True, False)
        used = remap != np.uint32(0xFFFFFFFF)
        order = np.empty(unique, np.int64)
        order[remap[used]] = np.nonzero(used)[0]
        indices = new_idx.reshape(-1, 3).astype(np.uint32)
        local, normals, ids = local[order], normals[order], ids[order]
        colors = None if colors is None else colors[order]
        surf = None if surf is None else surf[order]
        n = int(unique)
    quant = compress != "none"
    mo = compress == "meshopt"

    def vattr(rows: np.ndarray, stride: int, filter: str = "NONE") -> int:
        if mo:
            return b.meshopt_view(rows, mode="ATTRIBUTES", target=ARRAY_BUFFER, stride=stride,
                                  filter=filter)
        return b.view(rows.tobytes(), target=ARRAY_BUFFER, stride=stride)

    attrs: dict[str, int] = {}
    child: dict[str, Any] = {"name": name, "mesh": 0}
    if quant:
        offset = local.min(axis=0)
        scale = float((local.max(axis=0) - offset).max()) or 1.0
        q = np.rint((local - offset) / scale * 65535.0).clip(0, 65535).astype(np.uint16)
        attrs["POSITION"] = b.accessor(vattr(_rows(q, 8), 8), UNSIGNED_SHORT, n, "VEC3",
                                       normalized=True, amin=q.min(0).tolist(),
                                       amax=q.max(0).tolist())
        child["translation"] = [float(v) for v in offset]
        child["scale"] = [scale] * 3
        b.used.add("KHR_mesh_quantization")
        b.required.add("KHR_mesh_quantization")
        if mo:
            oct_rows = meshopt.encode_filter_oct(np.c_[normals, np.zeros(n)], 4, 8)
            nrm = vattr(np.ascontiguousarray(oct_rows).view(np.uint8).reshape(n, 4), 4,
                        "OCTAHEDRAL")
        else:
            n8 = np.rint(normals * 127.0).astype(np.int8)
            nrm = vattr(_rows(n8, 4), 4)
        attrs["NORMAL"] = b.accessor(nrm, BYTE, n, "VEC3", normalized=True)
    else:
        check_float32(local)
        p32 = local.astype(np.float32)
        attrs["POSITION"] = b.accessor(vattr(_rows(p32, 12), 12), FLOAT, n, "VEC3",
                                       amin=p32.min(0).tolist(), amax=p32.max(0).tolist())
        attrs["NORMAL"] = b.accessor(vattr(_rows(normals.astype(np.float32), 12), 12), FLOAT, n,
                                     "VEC3")
    n_ids = int(ids.max()) + 1
    if n_ids <= 65536:
        id_rows, id_type = _rows(ids.astype(np.uint16), 4), UNSIGNED_SHORT
    elif n_ids <= 2**24:
        id_rows, id_type = _rows(ids.astype(np.float32), 4), FLOAT
    else:
        raise ValueError("more than 2^24 features in one tile")
    attrs[id_attribute] = b.accessor(vattr(id_rows, 4), id_type, n, "SCALAR")
    if colors is not None:
        lin = srgb_to_linear(colors.astype(np.float64) / 255.0)
        lin[:, 3] = colors[:, 3] / 255.0  # alpha is linear already
        c16 = np.rint(lin * 65535.0).astype(np.uint16)
        attrs["COLOR_0"] = b.accessor(vattr(_rows(c16, 8), 8), UNSIGNED_SHORT, n, "VEC4",
                                      normalized=True)
    if surf is not None and id_attribute == "_FEATURE_ID_0":
        attrs["_FEATURE_ID_1"] = b.accessor(vattr(_rows(surf.astype(np.uint8), 4), 4),
                                            UNSIGNED_BYTE, n, "SCALAR")
    flat = indices.reshape(-1)
    itype = np.uint16 if n < 65535 else np.uint32  # 65535 is primitive restart for uint16
    flat = flat.astype(itype)
    if mo:
        iview = b.meshopt_view(flat, mode="TRIANGLES", target=ELEMENT_ARRAY_BUFFER)
    else:
        iview = b.view(flat.tobytes(), target=ELEMENT_ARRAY_BUFFER)
    ind = b.accessor(iview, UNSIGNED_SHORT if itype is np.uint16 else UNSIGNED_INT, len(flat),
                     "SCALAR")
    if colors is not None:
        material = dict(material)
        material["pbrMetallicRoughness"] = dict(material["pbrMetallicRoughness"],
                                                baseColorFactor=[1.0, 1.0, 1.0, 1.0])
        if (colors[:, 3] < 255).any():
            material["alphaMode"] = "BLEND"
    prim: dict[str, Any] = {"attributes": attrs, "indices": ind, "material": 0, "mode": 4}
    b.gltf["materials"] = [material]
    b.gltf["meshes"] = [{"name": name, "primitives": [prim]}]
    root = {"name": f"{name} tile frame", "matrix": column_major(g.frame.node_matrix())}
    if quant:
        root["children"] = [1]
        b.gltf["nodes"] = [root, child]
    else:
        root["mesh"] = 0
        b.gltf["nodes"] = [root]
    b.gltf["scenes"] = [{"nodes": [0]}]
    b.gltf["scene"] = 0
    return prim


def layer_material(class_name: str) -> dict[str, Any]:
    """PBR metallic-roughness material with the layer's base colour (linear), single-sided."""
    rgb = srgb_to_linear(np.array(LAYER_COLOURS.get(class_name, (0.7, 0.7, 0.7))))
    return {"name": class_name, "doubleSided": False,
            "pbrMetallicRoughness": {"baseColorFactor": [*map(float, rgb), 1.0],
                                     "metallicFactor": 0.0, "roughnessFactor": 0.9}}


def surface_class() -> MetadataClass:
    """Class of the surface-type property table (feature ID set 1): the code and its name."""
    return MetadataClass("surface_type", [
        PropertySpec("code", "INT32", required=True, description="Surface code."),
        PropertySpec("name", "STRING", description="Surface kind (CityGML boundary surface or "
                                                   "network part).")], "Surface type")


@cache
def _surface_table() -> tuple[dict[str, Any], list[bytes], dict[str, Any]]:
    """The surface-type property table (the same in every content), encoded once: its JSON with
    buffer views numbered from 0, the views' bytes, and its schema class."""
    sc = surface_class()
    names = {v: k for k, v in SURFACE_CODES.items()}
    size = max(SURFACE_CODES.values()) + 1
    frame = pd.DataFrame({"code": np.arange(size), "name": [names.get(i) for i in range(size)]})
    views: list[bytes] = []

    def add(data: bytes) -> int:
        views.append(data)
        return len(views) - 1

    table = property_table(sc, frame, add)
    return table, views, schema_json(sc)["classes"]["surface_type"]


def write_glb(mesh: Mesh, features: pd.DataFrame, standard: str | None, *,
              compress: Compress = "none", class_name: str | None = None,
              crs: str | None = None, frame: LocalFrame | None = None,
              extras: dict[str, Any] | None = None) -> bytes:
    """Encode one tile: a mesh with per-vertex feature ids and its features' attributes.

    Args:
        mesh: Triangles in the store CRS (orthometric z); ``feature_ids`` index rows of
            ``features`` (0..len-1).
        features: Attribute table, one row per feature id (positional order).
        standard: NGIS standard naming the fields and types (``building``...), or None to infer
            types from the frame.
        compress: ``none`` (float32), ``quantize`` (KHR_mesh_quantization) or ``meshopt``
            (quantization + EXT_meshopt_compression).
        class_name: Metadata class / feature ID label; default the standard's name or ``feature``.
        crs: Store CRS; default the standard's ``national_crs``.
        frame: Tile frame; default the ENU frame at the centre of the mesh's geodetic bounds.
        extras: Extra fields for the glTF root ``extras``.

    Returns:
        The GLB bytes (length a multiple of 8).

    Raises:
        ValueError: Empty mesh, feature ids outside the table, attribute problems.
        tiles.placement.PrecisionError: Uncompressed content too large for float32 at 1 mm.
    """
    class_name, crs = _defaults(standard, class_name, crs)
    if len(mesh.feature_ids) and int(mesh.feature_ids.max()) >= len(features):
        raise ValueError(f"feature id {int(mesh.feature_ids.max())} but only {len(features)} "
                         "feature rows")
    mc = metadata_class(standard, features, class_name)
    g = Geometry(mesh, crs, frame)
    b = GltfBuilder()
    prim = encode_geometry(b, g, compress=compress, id_attribute="_FEATURE_ID_0",
                           material=layer_material(class_name), name=class_name)
    feature_sets: list[dict[str, Any]] = [{
        "featureCount": int(len(np.unique(mesh.feature_ids))), "attribute": 0,
        "propertyTable": 0, "label": class_name}]
    tables = [property_table(mc, features.reset_index(drop=True),
                             lambda data: b.view(data))]
    schema = schema_json(mc)
    if "_FEATURE_ID_1" in prim["attributes"]:
        table, views, cls = _surface_table()
        first = len(b.gltf["bufferViews"])
        for data in views:
            b.view(data)
        tables.append({**table, "properties": {
            k: {kk: (vv + first if kk in ("values", "stringOffsets") else vv)
                for kk, vv in v.items()} for k, v in table["properties"].items()}})
        schema["classes"]["surface_type"] = cls
        feature_sets.append({"featureCount": int(len(np.unique(mesh.surface_types))),
                             "attribute": 1, "propertyTable": 1, "label": "surface_type"})
    prim["extensions"] = {"EXT_mesh_features": {"featureIds": feature_sets}}
    b.gltf["extensions"] = {"EXT_structural_metadata": {"schema": schema,
                                                        "propertyTables": tables}}
    b.used.update({"EXT_mesh_features", "EXT_structural_metadata"})
    b.gltf["extras"] = {"layer": class_name, "standard": standard, "crs": crs,
                        "origin_lon_lat_h": [g.frame.lon, g.frame.lat, g.frame.h],
                        **(extras or {})}
    return b.to_glb()


def _defaults(standard: str | None, class_name: str | None,
              crs: str | None) -> tuple[str, str]:
    if standard is not None:
        import standards

        std = standards.load(standard)
        class_name = class_name or std.name
        crs = crs or std.meta.get("national_crs")
    if crs is None:
        raise ValueError("crs is required when the standard does not name one")
    return class_name or "feature", crs
