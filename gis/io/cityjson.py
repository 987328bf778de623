"""CityJSON 1.0/1.1/2.0 and CityJSONSeq buildings (Building with its BuildingParts).

The format is the OGC Community Standard CityJSON (Ledoux et al. 2019, "CityJSON: a compact and
easy-to-use encoding of the CityGML data model", Open Geospatial Data, Software and Standards 4:4;
specification https://www.cityjson.org/specs/2.0.1/). A file is one JSON object; a CityJSONSeq
(``.city.jsonl``) is a ``CityJSON`` header line followed by one ``CityJSONFeature`` per line that
shares the header's ``transform``. Vertices are integers, real coordinates are
``v * transform.scale + transform.translate``.

What the reader yields is what :func:`gis.io.citygml.read_citygml_buildings` yields, so ingest,
validation and ``ngis tiles build --lod 2`` take CityJSON unchanged:

* the ``building`` frame: one row per top-level Building (its BuildingParts merged), with its 2D
  footprint; standard fields from the CityJSON/CityGML attribute names (``measuredHeight``,
  ``storeysAboveGround``, ``yearOfConstruction``, ``roofType``, ``function``) and from the 3DBAG
  names (``oorspronkelijkbouwjaar``, ``b3_bouwlagen``); every attribute kept in ``attributes``.
* ``extras["surfaces"]``: one row per *semantic surface object* (an entry of
  ``semantics.surfaces`` that some polygon refers to) of the chosen LOD geometry, as a 3D
  MultiPolygon with the surface's ``type`` (``RoofSurface``, ``WallSurface``, ``GroundSurface``...)
  as ``surface_type``; polygons without a semantic surface make one row per geometry of type
  ``lod{N}{GeometryType}`` (e.g. ``lod1Solid``), like the CityGML reader's solid rows.

LOD choice: the ``lod`` option names a LOD (``"2.2"`` exactly, or ``"2"`` for the highest 2.x);
by default the highest LOD up to 2.x that the Building's tree has (3DBAG: 2.2 over 1.3, 1.2 and
the LOD0 footprint), else the lowest above 2. One LOD is used for the whole tree, so a part
without that LOD contributes no surfaces (noted in ``skipped``).

Footprint, in order: the xy union of the GroundSurfaces of the chosen geometry, the LOD0
geometry, the xy union of the chosen geometry's polygons that are not vertical. Ground elevation:
the lowest z of the GroundSurfaces, else of the chosen geometry.

CRS: ``metadata.referenceSystem`` (``https://www.opengis.net/def/crs/EPSG/0/7415`` or
``urn:ogc:def:crs:EPSG::7415``), kept whole (7415 = RD New + NAP height, so z keeps its datum).
CityJSON axis order is always x = easting, y = northing. A file without one yields a frame
without CRS (``ngis validate`` reports it; ``--crs`` supplies it).

Ingest policy for invalid surfaces: by default **report and skip**: each polygon that is
invalid in its plane is one problem line; ``ngis ingest`` refuses the file, or with
``--skip-invalid`` leaves the whole Building out (its other surfaces too: a building with a hole
in its shell would mislead volumes and tiles). With ``repair=True`` they are **repaired** instead
(:func:`repair_surfaces`: ``make_valid`` in the polygon's own plane, parts lifted back; counted
in ``skipped`` and noted in the building's ``lineage``), and the Building is kept.

Validation (``layer.problems``, which :func:`gis.validate.validate_layer` reports one line
each): a reference system whose axes are not in metres ("unknown units"); a Building with no
geometry to make a footprint from ("empty geometry"; the record is left out); every surface
polygon checked in its own plane (:func:`planar_validity`: projected on the basis of its Newell
normal, then GEOS validity), each invalid one (self-intersecting ring, hole outside its shell,
no area) against its Building. A file without ``metadata.referenceSystem`` has no CRS, which
the geometry checks report ("no CRS").
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError as PyprojCRSError
from shapely.geometry import MultiPolygon, Polygon

from gis.errors import CRSError, DataError, MalformedFileError
from gis.io.citygml import BUILDING_COLUMNS, SURFACE_COLUMNS
from gis.io.model import SourceLayer, records_frame

__all__ = ["read_cityjson", "is_cityjson", "cityjson_crs", "iter_documents"]

_WHERE = re.compile(r"\[(\S+) (\S+)\]")
_EPSG = re.compile(r"EPSG(?:/\d+/|::?)(\d+)", re.IGNORECASE)
_ROOF_TYPES = {"1000": "flat", "1010": "shed", "1030": "gable", "1040": "hip",
               "1060": "mansard", "1070": "pyramid", "1090": "dome", "horizontal": "flat",
               "flat": "flat", "gable": "gable", "hip": "hip", "shed": "shed"}
#: Standard field -> attribute names read for it, first found wins.
ATTRIBUTE_FIELDS = {
    "height": ("measuredHeight",),
    "storeys": ("storeysAboveGround", "b3_bouwlagen"),
    "year_built": ("yearOfConstruction", "oorspronkelijkbouwjaar"),
    "roof_type_code": ("roofType", "b3_dak_type"),
    "usage": ("function", "usage"),
    "name": ("name",),
}
#: Geometry type -> nesting depth of its boundaries above the surface level.
_DEPTH = {"MultiSurface": 0, "CompositeSurface": 0, "Solid": 1, "MultiSolid": 2,
          "CompositeSolid": 2}


def is_cityjson(path: str | os.PathLike) -> bool:
    """Whether a file starts like CityJSON or a CityJSONSeq: a JSON object with
    ``"type": "CityJSON"`` or ``"CityObjects"`` in its first 64 KB (keys come in any order)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return False
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return head.startswith(b"{") and (b'"CityObjects"' in head or re.search(
        rb'"type"\s*:\s*"CityJSON"', head) is not None)


def cityjson_crs(metadata: dict | None, path: str) -> CRS | None:
    """The CRS named by ``metadata.referenceSystem``, or None without one.

    Raises:
        CRSError: A reference system pyproj does not know.
    """
    ref = (metadata or {}).get("referenceSystem")
    if not ref:
        return None
    m = _EPSG.search(str(ref))
    try:
        return CRS.from_epsg(int(m.group(1))) if m else CRS.from_user_input(str(ref))
    except PyprojCRSError as err:
        raise CRSError(f"unknown metadata.referenceSystem {ref!r}", path=path) from err


def iter_documents(path: str) -> Iterator[dict]:
    """The CityJSON objects of a file: the file itself, or for a CityJSONSeq the header and then
    each CityJSONFeature with the header's ``transform`` (and ``metadata``) attached.

    Raises:
        MalformedFileError: Not JSON / JSON Lines, or a feature before the header.
    """
    with open(path, "rb") as fh:
        text = fh.read()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as whole_err:
        header = None
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise MalformedFileError(f"line {lineno}: {err.msg} (column {err.colno})",
                                         path=path) from (err if lineno > 1 else whole_err)
            if not isinstance(obj, dict):
                raise MalformedFileError(f"line {lineno}: not a JSON object", path=path)
            if obj.get("type") == "CityJSON":
                header = obj
                yield obj
            elif obj.get("type") == "CityJSONFeature":
                if header is None:
                    raise MalformedFileError("CityJSONFeature before the CityJSON header line",
                                             path=path)
                obj.setdefault("transform", header.get("transform"))
                obj["version"] = header.get("version")
                obj["metadata"] = header.get("metadata")
                yield obj
            else:
                raise MalformedFileError(f"line {lineno}: type {obj.get('type')!r} is neither "
                                         "CityJSON nor CityJSONFeature", path=path)
        return
    if not isinstance(doc, dict) or doc.get("type") not in ("CityJSON", "CityJSONFeature"):
        raise DataError("not a CityJSON file (no \"type\": \"CityJSON\")", path=path)
    yield doc


def _vertices(doc: dict, path: str) -> np.ndarray:
    """The real coordinates of a document's vertices, (n, 3) float64."""
    raw = doc.get("vertices") or []
    v = np.asarray(raw, dtype=np.float64).reshape(-1, 3) if raw else np.zeros((0, 3))
    tr = doc.get("transform")
    if tr:
        try:
            v = v * np.asarray(tr["scale"], float) + np.asarray(tr["translate"], float)
        except (KeyError, ValueError, TypeError) as err:
            raise DataError(f"bad transform {tr!r}", path=path, field="transform") from err
    return v


def _lod_key(lod: Any) -> tuple[int, int]:
    """Sortable (major, minor) of a CityJSON lod (``2``, ``"2"``, ``"2.2"``)."""
    major, _, minor = str(lod).partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return (-1, 0)


def _choose_lod(available: set[str], wanted: str | None) -> str | None:
    """The LOD used for one building tree (see the module docstring)."""
    if not available:
        return None
    ordered = sorted(available, key=_lod_key)
    if wanted is not None:
        hits = [lod for lod in ordered if lod == wanted or lod.startswith(f"{wanted}.")
                or _lod_key(lod) == _lod_key(wanted) and "." in wanted]
        return hits[-1] if hits else None
    upto2 = [lod for lod in ordered if _lod_key(lod)[0] <= 2]
    return upto2[-1] if upto2 else ordered[0]


@dataclass
class _Surfaces:
    """Polygons of one geometry, grouped into surface rows: (type, id, polygons, MultiPolygon)."""

    rows: list[tuple[str, str | None, np.ndarray, MultiPolygon]] = field(default_factory=list)
    degenerate: int = 0


def _walk(boundaries: Any, values: Any, depth: int):
    """(surface, semantic value) pairs of a boundary array ``depth`` levels above surfaces."""
    if depth == 0:
        vals = values if isinstance(values, list) else [values] * len(boundaries)
        yield from zip(boundaries, vals, strict=False)
        return
    for i, sub in enumerate(boundaries):
        sub_values = values[i] if isinstance(values, list) and i < len(values) else None
        yield from _walk(sub, sub_values, depth - 1)


def geometry_surfaces(geom: dict, xyz: np.ndarray) -> _Surfaces:
    """Surface rows of one CityJSON geometry object: one per referenced semantic surface object,
    plus one ``lod{N}{type}`` row for the polygons without semantics.

    The shapely objects are made in three vectorised calls per geometry (rings, polygons,
    multipolygons) rather than one per polygon.

    Raises:
        IndexError: A vertex index out of range.
    """
    gtype = geom.get("type")
    out = _Surfaces()
    if gtype not in _DEPTH:
        return out
    sem = geom.get("semantics") or {}
    sem_surfaces = sem.get("surfaces") or []
    ring_vertices: list[int] = []
    ring_of_vertex: list[int] = []
    polygon_of_ring: list[int] = []
    keys: list[int] = []
    n_rings = 0
    for surface, value in _walk(geom.get("boundaries") or [], sem.get("values"), _DEPTH[gtype]):
        if not surface or len(surface[0]) < 3:
            out.degenerate += 1
            continue
        for ring in surface:
            if len(ring) < 3:
                continue
            ring_vertices.extend(ring)
            ring_vertices.append(ring[0])
            ring_of_vertex.extend([n_rings] * (len(ring) + 1))
            polygon_of_ring.append(len(keys))
            n_rings += 1
        keys.append(value if isinstance(value, int) and 0 <= value < len(sem_surfaces) else -1)
    if not keys:
        return out
    coords = xyz[np.asarray(ring_vertices, dtype=np.int64)]
    rings = shapely.linearrings(coords, indices=np.asarray(ring_of_vertex))
    polygons = shapely.polygons(rings, indices=np.asarray(polygon_of_ring))
    key_arr = np.asarray(keys)
    order = np.argsort(key_arr, kind="stable")
    groups, starts = np.unique(key_arr[order], return_index=True)
    group_index = np.repeat(np.arange(len(groups)), np.diff(np.append(starts, len(order))))
    multis = shapely.multipolygons(polygons[order], indices=group_index)
    major = _lod_key(geom.get("lod"))[0]
    for g, (key, start) in enumerate(zip(groups.tolist(), starts.tolist(), strict=True)):
        stop = starts[g + 1] if g + 1 < len(starts) else len(order)
        polys = polygons[order[start:stop]]
        if key < 0:
            out.rows.append((f"lod{max(major, 0)}{gtype}", None, polys, multis[g]))
        else:
            sf = sem_surfaces[key]
            out.rows.append((str(sf.get("type") or "unknown"), sf.get("id"), polys, multis[g]))
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def _standard_values(attrs: dict) -> dict[str, Any]:
    """Standard fields from attribute names (first found wins), None where absent or not usable."""
    found = {f: next((attrs[n] for n in names if attrs.get(n) is not None), None)
             for f, names in ATTRIBUTE_FIELDS.items()}
    height, storeys, year = (_number(found[k]) for k in ("height", "storeys", "year_built"))
    if year is None and isinstance(found["year_built"], str):
        m = re.match(r"\s*(\d{4})", found["year_built"])
        year = float(m.group(1)) if m else None
    code = found["roof_type_code"]
    return {"height": height, "storeys": int(storeys) if storeys and storeys >= 1 else None,
            "year_built": int(year) if year is not None else None,
            "roof_type_code": None if code is None else str(code),
            "usage": None if found["usage"] is None else str(found["usage"]),
            "name": None if found["name"] is None else str(found["name"])}


def _footprint(ground: list[Polygon], lod0: list[Polygon],
               others: list[Polygon]) -> tuple[Polygon | MultiPolygon | None, str]:
    """2D footprint and where it came from (see the module docstring)."""
    for polys, label in ((ground, "GroundSurface"), (lod0, "LOD0 geometry")):
        if polys:
            shape = _union_2d(polys)
            if shape is not None:
                return shape, label
    arr = np.asarray(others, dtype=object)
    flat = arr[shapely.area(shapely.force_2d(arr)) > 1e-6] if len(arr) else arr
    shape = _union_2d(list(flat)) if len(flat) else None
    return (shape, "xy projection of the surfaces") if shape is not None else (None, "")


def _union_2d(polys: list[Polygon]) -> Polygon | MultiPolygon | None:
    flat = shapely.make_valid(shapely.force_2d(np.asarray(polys, dtype=object)))
    merged = shapely.union_all(flat, grid_size=1e-4)
    parts = [g for g in shapely.get_parts(merged) if g.geom_type == "Polygon" and g.area > 1e-6]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _tree(objects: dict, root_id: str) -> list[tuple[str, dict]]:
    """The Building and its BuildingParts (children, recursively), root first."""
    out, todo, seen = [], [root_id], set()
    while todo:
        oid = todo.pop(0)
        if oid in seen or oid not in objects:
            continue
        seen.add(oid)
        obj = objects[oid]
        if oid == root_id or obj.get("type") == "BuildingPart":
            out.append((oid, obj))
            todo.extend(obj.get("children") or [])
    return out


def read_cityjson(path: str | os.PathLike, lod: str | None = None,
                  repair: bool = False) -> SourceLayer:
    """Read the Buildings (with their BuildingParts) of a CityJSON file or CityJSONSeq.

    Args:
        path: A ``.city.json``/``.json`` or ``.city.jsonl``/``.jsonl`` file.
        lod: The LOD to read (``"2.2"``, ``"2"``, ``"1"``...); default the highest up to 2.x.
        repair: Repair surface polygons that are invalid in their plane
            (:func:`repair_surfaces`; noted in ``skipped`` and in the buildings' lineage)
            instead of reporting them as problems.

    Returns:
        A ``building`` layer (2D footprints) with ``extras["surfaces"]`` (3D MultiPolygons, one
        row per semantic surface), the same shapes as the CityGML reader.

    Raises:
        MalformedFileError: Not JSON / JSON Lines.
        DataError: Not CityJSON, a bad transform or vertex index.
        CRSError: Two different reference systems, or one pyproj does not know.
    """
    p = str(path)
    file_name = os.path.basename(p)
    records, surface_rows = [], []
    skipped: Counter[str] = Counter()
    empty: list[tuple[str, str, str]] = []
    crs, crs_text, version = None, None, None
    for doc in iter_documents(p):
        objects = doc.get("CityObjects") or {}
        version = doc.get("version") or version
        ref = (doc.get("metadata") or {}).get("referenceSystem")
        if ref and crs_text is None:
            crs_text, crs = ref, cityjson_crs(doc.get("metadata"), p)
        elif ref and ref != crs_text:
            raise CRSError(f"two reference systems: {crs_text!r} and {ref!r}", path=p)
        if not objects:
            continue
        xyz = _vertices(doc, p)
        for oid, obj in objects.items():
            otype = obj.get("type")
            if otype == "BuildingPart" or (otype == "Building" and any(
                    objects.get(q, {}).get("type") == "Building" for q in obj.get("parents") or ())):
                continue
            if otype != "Building":
                skipped[f"{otype} (not a building)"] += 1
                continue
            try:
                rec, rows = _building(oid, objects, xyz, lod, version, file_name, crs_text,
                                      skipped)
            except IndexError as err:
                raise DataError("vertex index out of range", path=p, record=oid,
                                field="boundaries") from err
            if rec is None:
                empty.append((oid, "geometry", "empty geometry: the Building and its parts have "
                              f"no geometry{f' at LOD {lod}' if lod else ''} from which a "
                              "footprint can be made"))
                continue
            records.append(rec)
            surface_rows.extend(rows)
    if version is None:
        raise DataError("not a CityJSON file (no \"type\": \"CityJSON\")", path=p)
    frame = records_frame(records, BUILDING_COLUMNS, crs, ("height", "ground_elevation"),
                   ("storeys", "year_built", "lod"))
    surfaces = records_frame(surface_rows, SURFACE_COLUMNS, crs, (), ("lod",))
    surfaces["lod"] = surfaces["lod"].astype("int64")
    if repair:
        surfaces, repaired = repair_surfaces(surfaces)
        if repaired:
            skipped[f"surface polygon(s) invalid in their plane repaired with make_valid, in "
                    f"{len(repaired)} building(s)"] += sum(repaired.values())
            n = frame["id"].map(repaired)
            has = n.notna().to_numpy()
            frame.loc[has, "lineage"] = [
                f"{text}; repaired: {int(k)} surface polygon(s) invalid in their plane "
                "(make_valid in the plane)" for text, k in zip(frame.loc[has, "lineage"],
                                                                n[has], strict=True)]
    layer = SourceLayer(path=p, name="Building", frame=frame, standard="building",
                        field_sources=dict(FIELD_SOURCES), extras={"surfaces": surfaces},
                        skipped=[f"{n} {what}" for what, n in skipped.items()])
    layer.problems = [*unit_problems(crs, crs_text), *empty,  # type: ignore[attr-defined]
                      *surface_problems(surfaces)]  # read by gis.validate
    return layer


def unit_problems(crs: CRS | None, name: str | None) -> list[tuple[str, str, str]]:
    """One problem when the reference system's axes are not all in metres (CityJSON has no unit
    of its own: coordinates are in the CRS's units, and heights, volumes and tiles assume
    metres), or when pyproj does not know the unit."""
    if crs is None:
        return []
    units = {str(a.unit_name or "unknown") for a in crs.axis_info}
    if units <= {"metre"}:
        return []
    return [("*", "units", f"unknown units: the reference system {name} has axes in "
                           f"{', '.join(sorted(units))}, not metres (heights, volumes and 3D "
                           "tiles need metres)")]


@dataclass
class PlaneFrames:
    """3D polygons in their own planes: ``projected`` 2D polygons (u, v), and per polygon the
    plane's ``origin`` (3,), axes ``u``, ``v`` (3,) and whether it has no area (``flat``)."""

    projected: np.ndarray
    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    flat: np.ndarray

    def lift(self, i: int, geom) -> np.ndarray:
        """Polygons (2D, plane ``i``) back to 3D: an array of 3D Polygons."""
        parts = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon"
                 and g.area > 1e-9]
        if not parts:
            return np.zeros(0, object)
        arr = np.asarray(parts, dtype=object)
        uv = shapely.get_coordinates(arr)
        xyz = self.origin[i] + uv[:, :1] * self.u[i] + uv[:, 1:2] * self.v[i]
        return shapely.set_coordinates(shapely.force_3d(arr), xyz)


def plane_frames(polygons: np.ndarray) -> PlaneFrames:
    """Each 3D polygon projected onto its plane: the orthonormal basis of the Newell normal of
    its exterior ring (:func:`gis.mesh.surfaces.newell_normals`), all at once."""
    from gis.mesh.surfaces import newell_normals

    polys = np.asarray(polygons, dtype=object)
    n = len(polys)
    ext_xyz, ext_idx = shapely.get_coordinates(shapely.get_exterior_ring(polys), include_z=True,
                                               return_index=True)
    counts = np.bincount(ext_idx, minlength=n) - 1  # rings are closed: drop the repeat
    starts = np.concatenate([[0], np.cumsum(counts + 1)[:-1]])
    keep = np.ones(len(ext_xyz), bool)
    keep[starts + counts] = False
    normals = newell_normals(ext_xyz[keep], starts - np.arange(n), counts)
    length = np.linalg.norm(normals, axis=1)
    flat = length <= 1e-12
    normals = normals / np.where(flat, 1.0, length)[:, None]
    helper = np.where((np.abs(normals[:, 2]) < 0.9)[:, None], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0])
    u = np.cross(helper, normals)
    u /= np.maximum(np.linalg.norm(u, axis=1), 1e-300)[:, None]
    v = np.cross(normals, u)
    xyz, idx = shapely.get_coordinates(polys, include_z=True, return_index=True)
    origin = ext_xyz[starts]
    d = xyz - origin[idx]
    uv = np.c_[np.einsum("ij,ij->i", d, u[idx]), np.einsum("ij,ij->i", d, v[idx])]
    projected = shapely.set_coordinates(shapely.force_2d(polys), uv)
    return PlaneFrames(projected, origin, u, v, flat)


def planar_validity(polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each 3D polygon is valid in its own plane, and the reasons.

    Each polygon is projected onto its plane (:func:`plane_frames`) and checked by GEOS
    (self-intersecting rings, holes outside the shell...). Polygons with no area are invalid.

    Returns:
        ``(valid, reasons)``: (n,) bool and (n,) object (GEOS reason, "" when valid).
    """
    polys = np.asarray(polygons, dtype=object)
    n = len(polys)
    if not n:
        return np.zeros(0, bool), np.zeros(0, object)
    pf = plane_frames(polys)
    projected, origin, u, v, flat = pf.projected, pf.origin, pf.u, pf.v, pf.flat
    valid = shapely.is_valid(projected) & ~flat
    reasons = np.full(n, "", dtype=object)
    bad = np.flatnonzero(~valid)
    for i in bad:
        if flat[i]:
            reasons[i] = "no area"
            continue
        text = str(shapely.is_valid_reason(projected[i]))
        m = _WHERE.search(text)
        if m:  # the GEOS location is in plane coordinates: back to x, y, z
            a, b = float(m.group(1)), float(m.group(2))
            x, y, z = origin[i] + a * u[i] + b * v[i]
            text = f"{text[:m.start()].strip()} at ({x:.3f}, {y:.3f}, {z:.3f})"
        reasons[i] = text
    return valid, reasons


def repair_surfaces(surfaces: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, dict[str, int]]:
    """Surfaces with every polygon that is invalid in its plane repaired there: projected on its
    plane (:func:`plane_frames`), ``shapely.make_valid`` (a bow-tie becomes its two triangles, a
    hole outside its shell a polygon of its own), the polygonal parts lifted back onto the plane;
    polygons with no area are dropped, and so are rows left without any polygon.

    Returns:
        (the repaired surfaces, building id -> number of polygons repaired or dropped).
    """
    if not len(surfaces):
        return surfaces, {}
    geoms = surfaces.geometry.to_numpy()
    parts, row = shapely.get_parts(geoms, return_index=True)
    valid, _ = planar_validity(parts)
    bad = np.flatnonzero(~valid)
    if not len(bad):
        return surfaces, {}
    pf = plane_frames(parts[bad])
    fixed: dict[int, np.ndarray] = {}
    for k, i in enumerate(bad):
        fixed[int(i)] = np.zeros(0, object) if pf.flat[k] else \
            pf.lift(k, shapely.make_valid(pf.projected[k]))
    new_geoms = geoms.copy()
    counts: Counter[str] = Counter()
    for r in np.unique(row[bad]):
        polys = []
        for i in np.flatnonzero(row == r):
            polys.extend(fixed[int(i)] if int(i) in fixed else [parts[i]])
        new_geoms[r] = MultiPolygon(polys) if polys else None
        counts[str(surfaces["building_id"].iloc[r])] += int(np.isin(np.flatnonzero(row == r),
                                                                    bad).sum())
    out = surfaces.copy()
    out[out.geometry.name] = gpd.GeoSeries(new_geoms, index=out.index, crs=surfaces.crs)
    return out[~shapely.is_missing(new_geoms)], dict(counts)


def surface_problems(surfaces: gpd.GeoDataFrame) -> list[tuple[str, str, str]]:
    """One ``(building id, "surfaces", problem)`` per surface polygon that is not valid in its
    plane (self-intersection and the like); see :func:`planar_validity`."""
    if not len(surfaces):
        return []
    parts, row = shapely.get_parts(surfaces.geometry.to_numpy(), return_index=True)
    valid, reasons = planar_validity(parts)
    out = []
    for i in np.flatnonzero(~valid):
        rec = surfaces.iloc[row[i]]
        part = f" of BuildingPart {rec['part_id']}" if rec["part_id"] else ""
        out.append((str(rec["building_id"]), "surfaces",
                    f"{rec['surface_type']} polygon{part} is not valid in its plane: "
                    f"{reasons[i]}"))
    return out


def _building(oid: str, objects: dict, xyz: np.ndarray, wanted: str | None, version: str | None,
              file_name: str, crs_text: str | None,
              skipped: Counter) -> tuple[dict | None, list[dict]]:
    """One frame row (None without geometry) and its surface rows."""
    comps = _tree(objects, oid)
    available = {str(g.get("lod")) for _, o in comps for g in o.get("geometry") or []
                 if g.get("type") in _DEPTH and _lod_key(g.get("lod"))[0] >= 1}
    chosen = _choose_lod(available, wanted)
    rows, ground, lod0, others = [], [], [], []
    for cid, obj in comps:
        geoms = obj.get("geometry") or []
        for g in geoms:
            if g.get("type") == "GeometryInstance":
                skipped["GeometryInstance (templates not read)"] += 1
            elif g.get("type") in _DEPTH and _lod_key(g.get("lod"))[0] == 0:
                lod0.extend(p for _, _, ps, _ in geometry_surfaces(g, xyz).rows for p in ps)
        picked = [g for g in geoms if chosen is not None and str(g.get("lod")) == chosen
                  and g.get("type") in _DEPTH]
        if cid != oid and not picked and chosen is not None:
            skipped[f"BuildingPart without LOD {chosen} geometry"] += 1
        for g in picked[:1]:
            got = geometry_surfaces(g, xyz)
            if got.degenerate:
                skipped["polygons with fewer than 3 vertices"] += got.degenerate
            for stype, sid, polys, multi in got.rows:
                (ground if stype == "GroundSurface" else others).extend(polys)
                rows.append({"building_id": oid, "part_id": None if cid == oid else cid,
                             "surface_type": stype, "lod": _lod_key(chosen)[0],
                             "surface_id": sid, "geometry": multi})
    footprint, used = _footprint(ground, lod0, others)
    if footprint is None:
        return None, rows
    attrs = dict(objects[oid].get("attributes") or {})
    values = _standard_values(attrs)
    for cid, obj in comps[1:]:
        own = obj.get("attributes") or {}
        attrs.update({f"BuildingPart[{cid}]/{k}": v for k, v in own.items()})
        if values["height"] is None:
            values["height"] = _standard_values(own)["height"]
    z_ground = ground or others
    z_all = ground + others
    base = float(shapely.get_coordinates(z_ground, include_z=True)[:, 2].min()) \
        if z_ground else None
    notes = []
    if values["height"] is None and base is not None and z_all:
        top = float(np.nanmax(shapely.get_coordinates(z_all, include_z=True)[:, 2]))
        if top > base:
            values["height"] = round(top - base, 3)
            notes.append("height: highest surface point minus ground elevation")
    code = values["roof_type_code"]
    lineage = (f"CityJSON {version} {file_name}, Building {oid}"
               + (f" with {len(comps) - 1} BuildingPart(s)" if len(comps) > 1 else "")
               + f"; LOD {chosen if chosen is not None else 0}; footprint: {used}"
               + "".join(f"; {n}" for n in notes) + f"; CRS {crs_text}")
    return {
        "id": oid, "name": values["name"], "height": values["height"],
        "storeys": values["storeys"], "year_built": values["year_built"],
        "usage": values["usage"], "roof_type": _ROOF_TYPES.get(code or ""),
        "roof_type_code": code, "ground_elevation": base,
        "lod": _lod_key(chosen)[0] if chosen is not None else 0,
        "source": f"CityJSON {version}: {file_name}", "lineage": lineage,
        "attributes": json.dumps(attrs, ensure_ascii=False, default=str), "geometry": footprint,
    }, rows


FIELD_SOURCES = {
    "id": "CityObject id", "name": "attribute name",
    "height": "measuredHeight, else highest surface point minus ground elevation",
    "storeys": "storeysAboveGround (3DBAG b3_bouwlagen)",
    "year_built": "yearOfConstruction (3DBAG oorspronkelijkbouwjaar)",
    "usage": "function", "roof_type": "roofType (3DBAG b3_dak_type)",
    "roof_type_code": "roofType (3DBAG b3_dak_type)",
    "ground_elevation": "lowest z of the GroundSurfaces, else of the chosen LOD geometry",
    "lod": "integer part of the LOD read",
    "geometry": "GroundSurfaces, else LOD0 geometry, else non-vertical surfaces (xy projection)",
}
