"""Feature attributes as 3D Tiles metadata: a class generated from an NGIS standard, encoded as an
``EXT_structural_metadata`` property table (glTF) or a legacy batch table (b3dm).

Type mapping from the standard's JSON Schema (3D Metadata Specification, "Types"):

==================  ==========================  ===============================================
JSON Schema         metadata type               noData (nullable fields only)
==================  ==========================  ===============================================
string              STRING                      ``""`` (an empty string reads back as null)
string + enum       ENUM (UINT8 / UINT16)       enum value ``NO_DATA`` (255 / 65535)
integer             SCALAR INT32                -2147483648 (INT32 minimum)
number              SCALAR FLOAT64              -1.7976931348623157e308 (lowest double)
boolean (required)  BOOLEAN                     - (required: no nulls)
boolean, nullable   SCALAR UINT8 (0 / 1)        255: the spec forbids noData on BOOLEAN
==================  ==========================  ===============================================

Numbers stay FLOAT64 so attribute values read back exactly (FLOAT32 would turn 3.3 into
3.2999999); integers are INT32 (all NGIS ranges fit). NaN cannot be a noData value (JSON has no
NaN), hence the lowest finite double. Required fields (the standard's ``required`` list) are
declared ``required: true`` and must not hold nulls. Field descriptions and units travel into the
class. Without a standard, types are inferred from the frame's dtypes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

INT32_NODATA = -(2**31)
FLOAT64_NODATA = -np.finfo(np.float64).max
UINT8_NODATA = 255
ENUM_NODATA_NAME = "NO_DATA"
_ID = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class PropertySpec:
    """How one attribute is typed and stored.

    Attributes:
        name: Property id (column name).
        kind: ``STRING``, ``ENUM``, ``INT32``, ``FLOAT64``, ``BOOLEAN`` or ``BOOL8`` (nullable
            boolean stored as UINT8 0/1 with noData 255).
        required: No nulls allowed.
        enum_values: Allowed names for ``ENUM`` (integer value = position).
        description: Field description (with unit).
        semantic: 3D Metadata semantic (``ID``, ``NAME``) or None.
    """

    name: str
    kind: str
    required: bool = False
    enum_values: tuple[str, ...] = ()
    description: str | None = None
    semantic: str | None = None

    @property
    def enum_value_type(self) -> str:
        """UINT8 when the values and the noData value fit, else UINT16."""
        return "UINT8" if len(self.enum_values) < 255 else "UINT16"

    @property
    def enum_nodata(self) -> int:
        """Integer of the NO_DATA enum value."""
        return 255 if self.enum_value_type == "UINT8" else 65535

    @property
    def enum_nodata_name(self) -> str:
        """Name of the NO_DATA enum value (kept distinct from the real names)."""
        name = ENUM_NODATA_NAME
        while name in self.enum_values:
            name += "_"
        return name


@dataclass
class MetadataClass:
    """A metadata class for one layer.

    Attributes:
        class_name: Class id (e.g. ``building``).
        properties: Property specs in order.
        title, version: For the schema's name and version.
    """

    class_name: str
    properties: list[PropertySpec]
    title: str
    version: str = "1.0.0"
    extra_enums: dict[str, Any] = field(default_factory=dict)

    def enum_id(self, spec: PropertySpec) -> str:
        """Enum id of an ENUM property."""
        return f"{self.class_name}_{spec.name}"


def _base_type(spec: dict[str, Any]) -> tuple[str, bool]:
    types = spec.get("type", "string")
    types = [types] if isinstance(types, str) else list(types)
    nullable = "null" in types
    base = [t for t in types if t != "null"]
    return (base[0] if base else "string"), nullable


def metadata_class(standard: str | None, frame: pd.DataFrame, class_name: str) -> MetadataClass:
    """The metadata class for a layer: from a standard's JSON Schema, or from the frame's dtypes.

    Args:
        standard: Standard name (``building``...) or None.
        frame: The attribute table (used when there is no standard).
        class_name: Class id, ``^[a-zA-Z_][a-zA-Z0-9_]*$``.

    Returns:
        The class.

    Raises:
        ValueError: Bad class or property ids.
    """
    if not _ID.match(class_name):
        raise ValueError(f"class name {class_name!r} must match {_ID.pattern}")
    props: list[PropertySpec] = []
    if standard is not None:
        import standards

        std = standards.load(standard)
        required = set(std.required)
        for name, spec in std.properties.items():
            base, nullable = _base_type(spec)
            desc = spec.get("description")
            if desc and spec.get("x-unit"):
                desc = f"{desc} Unit: {spec['x-unit']}."
            semantic = ("ID" if name == std.id_field and base == "string"
                        else "NAME" if name == "name" and base == "string" else None)
            req = name in required and not nullable
            if "enum" in spec and base == "string":
                kind, values = "ENUM", tuple(v for v in spec["enum"] if v is not None)
            else:
                values = ()
                kind = {"string": "STRING", "integer": "INT32", "number": "FLOAT64",
                        "boolean": "BOOLEAN" if req else "BOOL8"}.get(base, "STRING")
            props.append(PropertySpec(name, kind, req, values, desc, semantic))
        return MetadataClass(class_name, props, std.title, std.version)
    for name in frame.columns:
        col = frame[name]
        if name == "geometry" or str(col.dtype) == "geometry":
            continue
        has_null = bool(col.isna().any())
        if pd.api.types.is_bool_dtype(col):
            kind = "BOOL8" if has_null else "BOOLEAN"
        elif pd.api.types.is_integer_dtype(col):
            kind = "INT32"
        elif pd.api.types.is_float_dtype(col):
            kind = "FLOAT64"
        else:
            kind = "STRING"
        props.append(PropertySpec(str(name), kind, required=kind == "BOOLEAN"))
    return MetadataClass(class_name, props, class_name)


def schema_json(mc: MetadataClass) -> dict[str, Any]:
    """The ``EXT_structural_metadata`` schema object (3D Metadata "Schema") for a class.

    Args:
        mc: The class.

    Returns:
        JSON-ready dict with ``id``, ``classes`` and (when needed) ``enums``.
    """
    props: dict[str, Any] = {}
    enums: dict[str, Any] = dict(mc.extra_enums)
    for p in mc.properties:
        if not _ID.match(p.name):
            raise ValueError(f"property id {p.name!r} must match {_ID.pattern}")
        d: dict[str, Any] = {}
        if p.description:
            d["description"] = p.description
        if p.kind in ("STRING", "BOOLEAN"):
            d["type"] = p.kind
        elif p.kind == "ENUM":
            d["type"] = "ENUM"
            d["enumType"] = mc.enum_id(p)
            values = [{"name": v, "value": i} for i, v in enumerate(p.enum_values)]
            values.append({"name": p.enum_nodata_name, "value": p.enum_nodata,
                           "description": "No value (null in the source)."})
            enums[mc.enum_id(p)] = {"valueType": p.enum_value_type, "values": values}
        else:
            d["type"] = "SCALAR"
            d["componentType"] = {"INT32": "INT32", "FLOAT64": "FLOAT64", "BOOL8": "UINT8"}[p.kind]
        if p.required:
            d["required"] = True
        elif p.kind != "BOOLEAN":
            d["noData"] = nodata(p)
        if p.semantic:
            d["semantic"] = p.semantic
        props[p.name] = d
    schema: dict[str, Any] = {
        "id": re.sub(r"\W", "_", f"ngis_{mc.class_name}_{mc.version}"),
        "name": mc.title, "version": mc.version,
        "classes": {mc.class_name: {"name": mc.title, "properties": props}},
    }
    if enums:
        schema["enums"] = enums
    return schema


def nodata(p: PropertySpec) -> Any:
    """The noData value of a nullable property as written in the schema."""
    return {"STRING": "", "INT32": INT32_NODATA, "FLOAT64": float(FLOAT64_NODATA),
            "BOOL8": UINT8_NODATA, "ENUM": p.enum_nodata_name}[p.kind]


def _null_mask(col: pd.Series) -> np.ndarray:
    return np.asarray(col.isna().to_numpy(), dtype=bool)


def _check_required(p: PropertySpec, mask: np.ndarray) -> None:
    if p.required and mask.any():
        raise ValueError(f"required property {p.name!r} has {int(mask.sum())} null value(s)")


def _ints(p: PropertySpec, col: pd.Series, mask: np.ndarray) -> np.ndarray:
    vals = pd.to_numeric(col.where(~mask, 0)).to_numpy(dtype=np.float64, copy=True)
    if not np.all(np.isfinite(vals)) or np.any(vals != np.round(vals)):
        raise ValueError(f"property {p.name!r}: non-integer values")
    if vals.size and (vals.min() <= INT32_NODATA or vals.max() > 2**31 - 1):
        raise ValueError(f"property {p.name!r}: values outside INT32")
    out = vals.astype(np.int32)
    out[mask] = INT32_NODATA
    return out


def column_values(p: PropertySpec, col: pd.Series) -> tuple[np.ndarray | list, np.ndarray]:
    """Typed values of one column with nulls replaced by noData.

    Args:
        p: The property.
        col: The column.

    Returns:
        (values, null mask): an array (numbers, enum codes, booleans) or a list of str.

    Raises:
        ValueError: Nulls in a required field, wrong types, unknown enum names.
    """
    mask = _null_mask(col)
    _check_required(p, mask)
    if p.kind == "STRING":
        return ["" if m else str(v) for v, m in zip(col.tolist(), mask, strict=True)], mask
    if p.kind == "ENUM":
        lookup = {v: i for i, v in enumerate(p.enum_values)}
        bad = {str(v) for v, m in zip(col.tolist(), mask, strict=True) if not m and v not in lookup}
        if bad:
            raise ValueError(f"property {p.name!r}: values not in the enum: {sorted(bad)[:5]}")
        codes = [p.enum_nodata if m else lookup[v] for v, m in zip(col.tolist(), mask, strict=True)]
        return np.asarray(codes, np.uint8 if p.enum_value_type == "UINT8" else np.uint16), mask
    if p.kind == "INT32":
        return _ints(p, col, mask), mask
    if p.kind == "FLOAT64":
        vals = pd.to_numeric(col.where(~mask, 0.0)).to_numpy(dtype=np.float64, copy=True)
        if not np.all(np.isfinite(vals)):
            raise ValueError(f"property {p.name!r}: non-finite values")
        vals[mask] = FLOAT64_NODATA
        return vals, mask
    vals = np.array([False if m else bool(v) for v, m in zip(col.tolist(), mask, strict=True)])
    if p.kind == "BOOLEAN":
        return vals, mask
    out = vals.astype(np.uint8)
    out[mask] = UINT8_NODATA
    return out, mask


def pack_bits(values: np.ndarray) -> bytes:
    """Booleans as a bitstream, least significant bit first (3D Metadata, "Booleans")."""
    return np.packbits(np.asarray(values, bool), bitorder="little").tobytes()


def property_table(mc: MetadataClass, frame: pd.DataFrame,
                   add_view: Callable[[bytes], int]) -> dict[str, Any]:
    """Encode the frame as a binary property table (EXT_structural_metadata "Property Tables").

    Args:
        mc: The class.
        frame: One row per feature, in feature-id order; columns the class lacks are ignored and
            class properties the frame lacks are omitted (allowed when not required).
        add_view: Callback storing bytes as a new buffer view aligned to 8 bytes; returns its index.

    Returns:
        The property table JSON.

    Raises:
        ValueError: A required property is missing or null, or values do not fit their type.
    """
    props: dict[str, Any] = {}
    for p in mc.properties:
        if p.name not in frame.columns:
            if p.required:
                raise ValueError(f"required property {p.name!r} is missing from the attributes")
            continue
        values, _ = column_values(p, frame[p.name])
        if p.kind == "STRING":
            data = [s.encode("utf-8") for s in values]
            offsets = np.zeros(len(data) + 1, np.uint64)
            offsets[1:] = np.cumsum([len(b) for b in data])
            big = offsets[-1] > 0xFFFFFFFF
            blob = b"".join(data) or b"\0"  # buffer views need >= 1 byte; offsets ignore it
            props[p.name] = {"values": add_view(blob),
                             "stringOffsets": add_view(offsets.astype(
                                 np.uint64 if big else np.uint32).tobytes()),
                             "stringOffsetType": "UINT64" if big else "UINT32"}
        elif p.kind == "BOOLEAN":
            props[p.name] = {"values": add_view(pack_bits(values))}
        else:
            props[p.name] = {"values": add_view(np.ascontiguousarray(values).tobytes())}
    return {"class": mc.class_name, "count": len(frame), "properties": props}


def batch_table(mc: MetadataClass, frame: pd.DataFrame) -> tuple[dict[str, Any], bytes]:
    """Encode the frame as a 3D Tiles 1.0 batch table.

    Strings, enums and booleans are JSON arrays (null kept as JSON null); numeric columns without
    nulls go to the binary body ({byteOffset, componentType INT / DOUBLE, type SCALAR}, each
    aligned to 8 bytes), numeric columns with nulls stay JSON arrays so nulls survive.

    Args:
        mc: The class.
        frame: One row per feature (batch id order).

    Returns:
        (batch table JSON, binary body padded to 8 bytes).
    """
    table: dict[str, Any] = {}
    body = bytearray()
    for p in mc.properties:
        if p.name not in frame.columns:
            if p.required:
                raise ValueError(f"required property {p.name!r} is missing from the attributes")
            continue
        values, mask = column_values(p, frame[p.name])
        if p.kind in ("INT32", "FLOAT64") and not mask.any():
            arr = np.ascontiguousarray(values)
            table[p.name] = {"byteOffset": len(body), "type": "SCALAR",
                             "componentType": "INT" if p.kind == "INT32" else "DOUBLE"}
            body += arr.tobytes()
            body += b"\0" * (-len(body) % 8)
            continue
        if p.kind == "ENUM":
            out: list[Any] = [None if m else p.enum_values[int(v)]
                              for v, m in zip(values, mask, strict=True)]
        elif p.kind in ("BOOLEAN", "BOOL8"):
            out = [None if m else bool(v) for v, m in zip(values, mask, strict=True)]
        elif p.kind == "INT32":
            out = [None if m else int(v) for v, m in zip(values, mask, strict=True)]
        elif p.kind == "FLOAT64":
            out = [None if m else float(v) for v, m in zip(values, mask, strict=True)]
        else:
            out = [None if m else v for v, m in zip(values, mask, strict=True)]
        table[p.name] = out
    return table, bytes(body)


def json_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON (no NaN allowed)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
