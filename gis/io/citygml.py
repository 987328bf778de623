"""CityGML 2.0 / 3.0 buildings and PLATEAU i-UR UtilityNetwork pipes.

Both readers stream the file (:class:`gis.io._gml.GmlStream`, ``lxml.etree.iterparse``) and free
each city object once read.

Axis order and CRS: the CRS is the first ``srsName`` in the file (the ``gml:Envelope`` of the
CityModel, else any geometry); pyproj tells its axis order, and when the first axis points north
(EPSG:6697 JGD2011 is lat, lon, h) x and y are swapped so that x = lon/easting, y = lat/northing.
The frame CRS is the *whole* CRS the srsName names, so EPSG:6697 stays the compound
"JGD2011 + JGD2011 (vertical) height": geopandas handles it (``to_crs`` to a 2D CRS keeps z) and
the z of the surfaces keeps its vertical datum. The compound URN of the SIG3D samples
(``urn:ogc:def:crs,crs:EPSG::25832,crs:EPSG::5783``) becomes EPSG:5555 the same way.

Building footprint, by priority for the building and each BuildingPart (then unioned):
an explicit footprint (2.0 ``lod0FootPrint``, 3.0 GroundSurface ``lod0MultiSurface``), the xy
projection of the GroundSurfaces, a LOD0 outline (2.0 ``lod0RoofEdge``, 3.0 Building
``lod0MultiSurface`` or RoofSurface LOD0), the LOD1 solid, any other polygons. Roof edges come after
the ground surfaces because they outline the roof, eaves included, not the ground footprint.
``ground_elevation`` is the lowest z of the GroundSurfaces, else of the LOD1 solid, else of the
explicit footprint, else of any surface (never of a roof edge, which lies at roof height).

A Building with no attributes of its own (PLATEAU puts them on its BuildingParts) takes them from
its parts: the highest height and storeys, the earliest year, usage/roof type when all parts agree.
Values that are not numbers (or in an unknown unit) are left empty, counted in ``skipped`` and kept
as raw text in ``attributes``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from lxml import etree
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Polygon

from gis.errors import DataError
from gis.io import _gml
from gis.io._gml import GeometryParser, GmlStream, local_name, namespace, qualified_name
from gis.io.model import SourceLayer

CITYGML_PREFIX = "http://www.opengis.net/citygml/"
ROOF_TYPES = {"1000": "flat", "1010": "shed", "1030": "gable", "1040": "hip",
              "1060": "mansard", "1070": "pyramid", "1090": "dome"}
BOUNDARY_SURFACES = frozenset({"RoofSurface", "WallSurface", "GroundSurface", "ClosureSurface",
                               "OuterCeilingSurface", "OuterFloorSurface", "InteriorWallSurface",
                               "CeilingSurface", "FloorSurface"})
_NOT_READ = frozenset({"outerBuildingInstallation", "interiorBuildingInstallation", "interiorRoom",
                       "buildingInstallation", "buildingRoom", "buildingConstructiveElement",
                       "buildingFurniture", "buildingSubdivision", "opening", "fillingSurface"})
METRES = {"m": 1.0, "#m": 1.0, "urn:adv:uom:m": 1.0, "metre": 1.0, "meter": 1.0, "cm": 0.01,
          "mm": 0.001, "km": 1000.0, "ft": 0.3048}
MILLIMETRES = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "#m": 1000.0, "in": 25.4}
_HEAD_BYTES = 65536
_CORE_NS = re.compile(rb"""["']http://www\.opengis\.net/citygml/(\d\.\d)["']""")
_MODULE_NS = re.compile(rb"""["']http://www\.opengis\.net/citygml/[a-z]+/(\d\.\d)["']""")


def sniff_citygml(path: str | os.PathLike) -> str | None:
    """The CityGML version of a file from the namespaces in its first 64 KB.

    Args:
        path: The file.

    Returns:
        ``"2.0"`` or ``"3.0"``, or None when the head declares no CityGML 2.0/3.0 namespace
        (or the file cannot be read).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError:
        return None
    if b"<" not in head:
        return None
    for pattern in (_CORE_NS, _MODULE_NS):
        versions = {m.group(1).decode() for m in pattern.finditer(head)}
        for version in ("3.0", "2.0"):
            if version in versions:
                return version
    return None


def _open_citygml(path: str | os.PathLike) -> tuple[GmlStream, str]:
    """A stream over a CityGML file and its version; DataError when it is not one."""
    version = sniff_citygml(path)
    if version is None:
        if not os.path.isfile(path):
            raise DataError("no such file", path=str(path))
        raise DataError("not a CityGML file (no CityGML 2.0/3.0 namespace)", path=str(path))
    return GmlStream(str(path)), version


def _module(el: etree._Element) -> str:
    """CityGML module of an element: ``core``, ``building``, ``construction``... or ``''``."""
    ns = namespace(el)
    if not ns.startswith(CITYGML_PREFIX):
        return ""
    rest = ns[len(CITYGML_PREFIX):]
    return rest.partition("/")[0] if "/" in rest else "core"


def _text(el: etree._Element | None) -> str:
    return "" if el is None else (el.text or "").strip()


# --------------------------------------------------------------------------- buildings


@dataclass
class _Surface:
    surface_type: str
    lod: int
    surface_id: str | None
    polygons: list[Polygon]


@dataclass
class _Component:
    """A Building or BuildingPart: its values, attributes and geometry, before merging.

    ``geometry`` groups: ``footprint`` (explicit), ``ground`` (GroundSurface LOD1+), ``outline``
    (roof edge / generic LOD0), ``solid1`` (LOD1 solid), ``other`` (LOD2+), plus pending
    ``lodNSolid``/``lodNMultiSurface`` rows and ``thematicN`` markers.
    """

    gid: str
    part_id: str | None
    name: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    geometry: dict[str, list[Polygon]] = field(default_factory=dict)
    surfaces: list[_Surface] = field(default_factory=list)
    lods: set[int] = field(default_factory=set)
    parts: list[_Component] = field(default_factory=list)

    def add(self, group: str, polygons: list[Polygon]) -> None:
        """Add polygons to one geometry group."""
        self.geometry.setdefault(group, []).extend(polygons)


class _BuildingParser:
    """Reads one ``bldg:Building`` element into a :class:`_Component` tree."""

    def __init__(self, stream: GmlStream, parser: GeometryParser):
        self.stream = stream
        self.geom = parser

    def component(self, el: etree._Element, part_id: str | None) -> _Component:
        """Read a Building/BuildingPart element and its parts."""
        comp = _Component(_gml.gml_id(el) or "", part_id)
        for child in el:
            if isinstance(child.tag, str):
                self._child(comp, child)
        for key in [k for k in comp.geometry if k.startswith("lod")]:
            lod, polygons = int(key[3]), comp.geometry.pop(key)
            if f"thematic{lod}" not in comp.geometry:  # solid rows only without thematic ones
                comp.surfaces.append(_Surface(key, lod, None, polygons))
        return comp

    def _child(self, comp: _Component, child: etree._Element) -> None:
        name, module = local_name(child), _module(child)
        if _gml.is_gml(child):
            if name == "name" and comp.name is None:
                comp.name = _text(child) or None
            elif name in ("description", "identifier"):
                _gml.flatten_element(child, qualified_name(child), comp.attrs)
        elif module == "appearance" or name == "appearance":
            return
        elif _gml.lod_property(child) and module in ("building", "core", "construction"):
            self._lod_geometry(comp, child)
        elif name in ("boundedBy", "boundary"):
            for surface in child:
                if local_name(surface) in BOUNDARY_SURFACES:
                    self._boundary(comp, surface)
        elif name in ("consistsOfBuildingPart", "buildingPart"):
            for part in child:
                if local_name(part) == "BuildingPart":
                    comp.parts.append(self.component(part, _gml.gml_id(part)))
        elif name in _NOT_READ:
            self.stream.skipped[f"{qualified_name(child)} (not read)"] += 1
        elif not self._mapped(comp, child, name, module):
            _attribute(comp.attrs, child, name, module)

    def _mapped(self, comp: _Component, child: etree._Element, name: str, module: str) -> bool:
        """Read a standard field; False when the element is not one."""
        key = (module, name)
        try:
            if key == ("building", "measuredHeight"):
                comp.values["height"] = _gml.measure(child.text, child.get("uom"), METRES, None)
            elif key == ("construction", "height"):
                self._height3(comp, child)
            elif key == ("building", "storeysAboveGround"):
                comp.values["storeys"] = int(float(_text(child))) if _text(child) else None
            elif key in (("building", "yearOfConstruction"),
                         ("construction", "dateOfConstruction")):
                comp.values["year_built"] = _year(_text(child))
            elif key in (("building", "usage"), ("building", "roofType")) \
                    and name not in comp.values:
                comp.values[name] = _text(child) or None
                if child.get("codeSpace"):
                    comp.attrs[f"{qualified_name(child)}@codeSpace"] = child.get("codeSpace")
            else:
                return False
        except ValueError:
            self.stream.skipped[f"{qualified_name(child)} values not understood (left empty, "
                                "raw text in attributes)"] += 1
            _gml.flatten_element(child, qualified_name(child), comp.attrs)
        return True

    def _height3(self, comp: _Component, prop: etree._Element) -> None:
        """CityGML 3.0 ``con:height/con:Height``: the measured value, else the first."""
        for height in prop:
            parts = {local_name(c): c for c in height if isinstance(c.tag, str)}
            value, status = parts.get("value"), _text(parts.get("status"))
            if value is None or ("height" in comp.values and status != "measured"):
                continue
            comp.values["height"] = _gml.measure(value.text, value.get("uom"), METRES, None)

    def _lod_geometry(self, comp: _Component, prop: etree._Element) -> None:
        lod, kind = _gml.lod_property(prop)
        if kind not in ("FootPrint", "RoofEdge", "Solid", "MultiSurface", "Geometry"):
            return  # curves, terrain intersections, implicit representations
        polygons = self.geom.polygons(prop)
        if not polygons:
            return
        comp.lods.add(lod)
        if kind == "FootPrint":
            comp.add("footprint", polygons)
        elif lod == 0:
            comp.add("outline", polygons)
        elif lod == 1 and kind == "Solid":
            comp.add("solid1", polygons)
            first = next((c for c in prop if isinstance(c.tag, str)), None)
            sid = None if first is None else _gml.gml_id(first)
            comp.surfaces.append(_Surface("lod1Solid", 1, sid, polygons))
        else:
            comp.add("other", polygons)
            comp.add(f"lod{lod}{kind}", polygons)

    def _boundary(self, comp: _Component, surface: etree._Element) -> None:
        stype = local_name(surface)
        for prop in surface:
            found = _gml.lod_property(prop)
            if local_name(prop) in _NOT_READ:
                self.stream.skipped[f"{qualified_name(prop)} (not read)"] += 1
            if not found or found[1] != "MultiSurface":
                continue
            polygons = self.geom.polygons(prop)
            if not polygons:
                continue
            lod = found[0]
            comp.lods.add(lod)
            if lod == 0:
                comp.add("footprint" if stype == "GroundSurface" else "outline", polygons)
                continue
            comp.add("other", polygons)
            if stype == "GroundSurface":
                comp.add("ground", polygons)
            comp.surfaces.append(_Surface(stype, lod, _gml.gml_id(surface), polygons))
            comp.geometry.setdefault(f"thematic{lod}", [])


def _attribute(out: dict[str, Any], child: etree._Element, name: str, module: str) -> None:
    """Any other property: generic attributes, ADE properties, address... flattened."""
    if module == "generics":
        _generic_attribute(child, "", out)
    elif name == "genericAttribute":
        for attr in child:
            _generic_attribute(attr, "", out)
    elif name.startswith("adeOf"):
        for wrapper in child:  # 3.0 ADE hook: bldg:adeOfX/uro:XProperties/uro:prop -> uro:prop
            for prop in wrapper:
                if isinstance(prop.tag, str):
                    _gml.flatten_element(prop, qualified_name(prop), out)
    else:
        _gml.flatten_element(child, qualified_name(child), out)


def _generic_attribute(el: etree._Element, prefix: str, out: dict[str, Any]) -> None:
    """A gen:*Attribute (2.0: ``name=`` attribute; 3.0: ``gen:name`` child) into ``out``."""
    if not isinstance(el.tag, str):
        return
    kind = local_name(el).lower()
    children = {local_name(c): c for c in el if isinstance(c.tag, str)}
    key = prefix + (el.get("name") or _text(children.get("name")) or kind)
    if kind == "genericattributeset":
        for child in el:
            members = list(child) if local_name(child) == "value" else [child]  # 3.0 wraps them
            for member in members:
                if local_name(member) != "name":
                    _generic_attribute(member, f"{key}/", out)
        return
    value_el = children.get("value")
    if value_el is None:
        return
    value: Any = _text(value_el)
    try:
        if kind.startswith("int"):
            value = int(value)
        elif kind.startswith(("double", "measure")):
            value = float(value)
    except ValueError:
        pass
    out[key] = value
    if value_el.get("uom"):
        out[f"{key}@uom"] = value_el.get("uom")


def _year(text: str) -> int | None:
    if not text:
        return None
    match = re.match(r"^(-?\d{4})", text)
    if match is None:
        raise ValueError(f"not a year or date: {text!r}")
    return int(match.group(1))


_FOOTPRINT_ORDER = ("footprint", "ground", "outline", "solid1", "other")
_ELEVATION_ORDER = ("ground", "solid1", "footprint", "other")
_FOOTPRINT_LABELS = {"footprint": "LOD0 footprint", "ground": "GroundSurface projection",
                     "outline": "LOD0 roof edge/outline", "solid1": "LOD1 solid projection",
                     "other": "LOD2+ surface projection"}


def _footprint(comps: list[_Component]) -> tuple[Polygon | MultiPolygon | None, list[str]]:
    """Union of each component's best footprint source, and the sources used."""
    pieces, used = [], []
    for comp in comps:
        group = next((k for k in _FOOTPRINT_ORDER if comp.geometry.get(k)), None)
        if group is None:
            continue
        flat = shapely.make_valid(shapely.force_2d(np.asarray(comp.geometry[group], dtype=object)))
        polys = [p for g in flat for p in _polygonal(g)]
        if polys:
            pieces.append(shapely.union_all(polys))
            used.append(_FOOTPRINT_LABELS[group])
    merged = _polygonal(shapely.union_all(pieces)) if pieces else []
    if not merged:
        return None, used
    return (merged[0] if len(merged) == 1 else MultiPolygon(merged)), used


def _polygonal(geom) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [] if geom.is_empty else [geom]
    return [p for g in getattr(geom, "geoms", ()) for p in _polygonal(g)]


def _ground_elevation(comps: list[_Component]) -> float | None:
    for group in _ELEVATION_ORDER:
        polys = [p for c in comps for p in c.geometry.get(group, ())]
        if polys and all(p.has_z for p in polys):
            return float(shapely.get_coordinates(polys, include_z=True)[:, 2].min())
    return None


def _merge_values(root: _Component) -> tuple[dict[str, Any], list[str]]:
    """The building's own values, filled from its parts where missing."""
    values, notes = dict(root.values), []
    rules = {"height": max, "storeys": max, "year_built": min}
    for key in ("height", "storeys", "year_built", "usage", "roofType"):
        found = [p.values[key] for p in root.parts if p.values.get(key) is not None]
        if values.get(key) is not None or not found:
            continue
        if key in rules:
            values[key] = rules[key](found)
        elif len(set(found)) == 1:
            values[key] = found[0]
        else:
            continue
        notes.append(f"{key} from BuildingParts")
    return values, notes


def _building_record(root: _Component, stream: GmlStream,
                     version: str) -> tuple[dict[str, Any] | None, list]:
    """One frame row (None without geometry) and its surface rows."""
    comps = [root, *root.parts]
    footprint, used = _footprint(comps)
    surfaces = [(root.gid, c.part_id, s) for c in comps for s in c.surfaces]
    if footprint is None:
        return None, surfaces
    values, notes = _merge_values(root)
    ground = _ground_elevation(comps)
    if values.get("height") is None and ground is not None and surfaces:
        top = max(float(np.nanmax(shapely.get_coordinates(s.polygons, include_z=True)[:, 2]))
                  for _, _, s in surfaces)
        if top > ground:
            values["height"] = round(top - ground, 3)
            notes.append("height: highest surface point minus ground elevation (no measuredHeight)")
    attrs = dict(root.attrs)
    for part in root.parts:
        own = {**{k: v for k, v in part.values.items() if v is not None}, **part.attrs}
        attrs.update({f"BuildingPart[{part.gid}]/{k}": v for k, v in own.items()})
    roof_code = values.get("roofType")
    file_name = os.path.basename(stream.path)
    lineage = (f"CityGML {version} {file_name}, bldg:Building {root.gid}"
               + (f" with {len(root.parts)} BuildingPart(s)" if root.parts else "")
               + f"; footprint: {', '.join(dict.fromkeys(used))}"
               + "".join(f"; {n}" for n in notes) + f"; CRS {stream.srs_name}")
    return {
        "id": root.gid, "name": root.name or next((p.name for p in root.parts if p.name), None),
        "height": values.get("height"), "storeys": values.get("storeys"),
        "year_built": values.get("year_built"), "usage": values.get("usage"),
        "roof_type": ROOF_TYPES.get(roof_code or ""), "roof_type_code": roof_code,
        "ground_elevation": ground,
        "lod": max((lod for c in comps for lod in c.lods), default=None),
        "source": f"CityGML {version}: {file_name}", "lineage": lineage,
        "attributes": json.dumps(attrs, ensure_ascii=False), "geometry": footprint,
    }, surfaces


BUILDING_COLUMNS = ["id", "name", "height", "storeys", "year_built", "usage", "roof_type",
                    "roof_type_code", "ground_elevation", "lod", "source", "lineage", "attributes"]
SURFACE_COLUMNS = ["building_id", "part_id", "surface_type", "lod", "surface_id"]


def read_citygml_buildings(path: str | os.PathLike) -> SourceLayer:
    """Read the ``bldg:Building`` features of a CityGML 2.0 or 3.0 file.

    Args:
        path: The .gml file.

    Returns:
        A ``building`` layer: one row per Building (parts merged) with its 2D footprint, and
        ``extras["surfaces"]``: one row per boundary surface / LOD1 solid, as 3D MultiPolygons.

    Raises:
        MalformedFileError: The XML is not well formed.
        DataError: Not a CityGML file.
        CRSError: No srsName, an unknown one, or two different ones.
    """
    stream, version = _open_citygml(path)
    records, surfaces, no_geometry = [], [], 0
    tag = f"{{{CITYGML_PREFIX}building/{version}}}Building"
    for el in stream.features():
        if el.tag != tag:
            stream.skipped[f"{qualified_name(el)} (not a building)"] += 1
            continue
        gid = _gml.gml_id(el) or f"Building#{len(records) + no_geometry + 1}"
        with stream.locate_errors(gid):
            stream.note_srs(el, gid)
            parser = stream.parser(el)
            root = _BuildingParser(stream, parser).component(el, None)
            root.gid = gid
            stream.absorb(parser)
            record, rows = _building_record(root, stream, version)
        no_geometry += record is None
        records.extend([record] if record else [])
        surfaces.extend(rows)
    crs, swap = stream.final_crs()
    frame = _gml.records_frame(records, BUILDING_COLUMNS, crs, swap,
                               ("height", "ground_elevation"), ("storeys", "year_built", "lod"))
    rows = [{"building_id": b, "part_id": p, "surface_type": s.surface_type, "lod": s.lod,
             "surface_id": s.surface_id, "geometry": MultiPolygon(s.polygons)}
            for b, p, s in surfaces]
    surface_frame = _gml.records_frame(rows, SURFACE_COLUMNS, crs, swap, (), ())
    surface_frame["lod"] = surface_frame["lod"].astype("int64")
    skipped = stream.notes()
    if no_geometry:
        skipped.insert(0, f"{no_geometry} bldg:Building without any polygon geometry")
    return SourceLayer(path=str(path), name="Building", frame=frame, standard="building",
                       field_sources=dict(_BUILDING_SOURCES[version]),
                       extras={"surfaces": surface_frame}, skipped=skipped)


_COMMON_SOURCES = {
    "id": "gml:id", "name": "gml:name", "storeys": "bldg:storeysAboveGround",
    "usage": "bldg:usage", "roof_type": "bldg:roofType", "roof_type_code": "bldg:roofType",
    "ground_elevation": "lowest z of GroundSurface, else lod1Solid, else LOD0 footprint",
    "lod": "highest lodN geometry property",
    "geometry": "LOD0 footprint, else GroundSurface, LOD0 roof edge, LOD1 solid (xy projection)",
}
_BUILDING_SOURCES = {
    "2.0": {**_COMMON_SOURCES, "height": "bldg:measuredHeight",
            "year_built": "bldg:yearOfConstruction"},
    "3.0": {**_COMMON_SOURCES, "height": "con:height/con:Height/con:value",
            "year_built": "con:dateOfConstruction"},
}


# --------------------------------------------------------------------------- pipes

#: i-UR UtilityNetwork feature -> pipeline standard utility. ThermalPipe (district heating and
#: cooling) has no utility in the standard, so it is skipped with a note rather than mislabelled.
PIPE_UTILITIES = {"WaterPipe": "water", "SewerPipe": "sewer", "OilGasChemicalsPipe": "gas",
                  "ElectricityCable": "power", "Duct": "power",
                  "TelecommunicationsCable": "telecom"}
#: Standard field -> i-UR elements read for it, first found wins (``Diamiter`` sic in PLATEAU).
PIPE_ELEMENTS = {"diameter": ("outerDiameter", "outerDiamiter"),
                 "inner_diameter": ("innerDiameter", "innerDiamiter"),
                 "depth": ("depth", "minDepth"), "install_year": ("year",),
                 "owner": ("occupierName", "administrator")}


def _pipe_kind(el: etree._Element) -> str | None:
    """Why a city object is not read as a pipe, or None when it is one."""
    name = local_name(el)
    if "/uro/" not in namespace(el):
        return "not a utility network feature"
    if name in PIPE_UTILITIES:
        return None
    if name == "ThermalPipe":
        return "district heating/cooling: no utility in the pipeline standard"
    return "utility unknown" if name.endswith(("Pipe", "Cable")) else "not pipes"


def _centreline(el: etree._Element,
                parser: GeometryParser) -> tuple[LineString | MultiLineString | None, str]:
    """The lod0Geometry line, else the long axis of the LOD1 solid (z at mid height)."""
    for node in el.iter("{*}lod0Geometry"):
        line = parser.line(node)
        if line is not None:
            return line, "uro:lod0Geometry"
    for node in el.iter():
        if isinstance(node.tag, str) and _gml.lod_property(node) == (1, "Geometry"):
            polygons = parser.polygons(node)
            line = _gml.solid_axis(polygons) if polygons else None
            if line is not None:
                return line, f"long axis of {qualified_name(node)} (no lod0Geometry)"
    return None, ""


def _pipe_values(el: etree._Element,
                 stream: GmlStream) -> tuple[dict[str, Any], list[etree._Element], list[str]]:
    """The standard fields of a pipe, the elements they came from, and lineage notes."""
    uro = {}
    for child in el:
        if isinstance(child.tag, str) and "/uro/" in namespace(child):
            uro.setdefault(local_name(child), child)
    found = {f: next((uro[n] for n in names if n in uro), None)
             for f, names in PIPE_ELEMENTS.items()}
    values: dict[str, Any] = {"owner": _text(found["owner"]) or None}
    units = {"diameter": (MILLIMETRES, "mm"), "inner_diameter": (MILLIMETRES, "mm"),
             "depth": (METRES, "m"), "install_year": ({}, None)}
    for fld, (table, default) in units.items():
        src = found[fld]
        try:
            value = None if src is None else _gml.measure(src.text, src.get("uom"), table, default)
        except ValueError:
            stream.skipped[f"{qualified_name(src)} values not understood (left empty, "
                           "raw text in attributes)"] += 1
            found[fld] = value = None
        values[fld] = int(value) if fld == "install_year" and value is not None else value
    notes = []
    if values["diameter"] is None and values["inner_diameter"] is not None:
        values["diameter"] = values["inner_diameter"]
        notes.append("diameter: the inner diameter (the source has no outer diameter)")
    elif values["diameter"] is None:
        notes.append("no diameter in the source")
    if found["depth"] is not None:
        notes.append(f"depth: uro:{local_name(found['depth'])}, read as the cover to the pipe top")
    return values, [e for e in found.values() if e is not None], notes


def _diameter_from_surfaces(el: etree._Element,
                            stream: GmlStream) -> tuple[float, str] | None:
    """Outer diameter (mm) of a pipe without the attribute: the vertical extent of its most
    detailed (LOD4, 3 or 2) surface model, which PLATEAU models as the pipe barrel itself
    (LOD1 is a bounding box that may include the trench)."""
    parser = stream.parser(el)
    try:
        for lod in (4, 3, 2):
            for node in el.iter():
                if isinstance(node.tag, str) and _gml.lod_property(node) == (lod, "Geometry"):
                    polygons = parser.polygons(node)
                    if not polygons:
                        continue
                    z = shapely.get_coordinates(polygons, include_z=True)[:, 2]
                    z = z[np.isfinite(z)]
                    if z.size and z.max() > z.min():
                        return round(float(z.max() - z.min()) * 1000.0, 1), qualified_name(node)
    finally:
        stream.absorb(parser)
    return None


def _pipe_record(el: etree._Element, stream: GmlStream, utility: str) -> dict[str, Any] | None:
    """One pipeline row, or None when the feature has no centreline."""
    gid = _gml.gml_id(el) or ""
    parser = stream.parser(el)
    line, line_source = _centreline(el, parser)
    stream.absorb(parser)
    if line is None:
        return None
    values, used, notes = _pipe_values(el, stream)
    if values["diameter"] is None:
        derived = _diameter_from_surfaces(el, stream)
        if derived is not None:
            values["diameter"], source = derived
            notes = [n for n in notes if n != "no diameter in the source"]
            notes.append(f"diameter: vertical extent of the {source} pipe surface (no attribute)")
    attrs: dict[str, Any] = {}
    for child in el:
        if isinstance(child.tag, str) and child not in used and not _gml.lod_property(child):
            _gml.flatten_element(child, qualified_name(child), attrs)
    file_name = os.path.basename(stream.path)
    return {"id": gid, "utility": utility, **values, "material": None,
            "source": f"PLATEAU i-UR UtilityNetwork: {file_name}",
            "lineage": f"{qualified_name(el)} {gid} in {file_name}; centreline: {line_source}; "
                       + "; ".join(notes) + f"; CRS {stream.srs_name}",
            "attributes": json.dumps(attrs, ensure_ascii=False), "geometry": line}


PIPE_COLUMNS = ["id", "utility", "diameter", "inner_diameter", "depth", "install_year", "owner",
                "material", "source", "lineage", "attributes"]


def read_plateau_pipes(path: str | os.PathLike) -> SourceLayer:
    """Read PLATEAU i-UR UtilityNetwork pipes, cables and ducts as pipeline centrelines.

    Diameters are converted to millimetres from their ``uom``; ``depth`` is ``uro:depth``, else
    ``uro:minDepth`` (the shallowest cover along the pipe), in metres, read as the depth to the top
    of the pipe. Handholes, manholes and appurtenances are skipped and counted.

    Args:
        path: A PLATEAU ``unf`` .gml file.

    Returns:
        A ``pipeline`` layer with 3D LineStrings (x = lon/easting, y = lat/northing, z).

    Raises:
        MalformedFileError: The XML is not well formed.
        DataError: Not a CityGML file.
        CRSError: No srsName, an unknown one, or two different ones.
    """
    stream, _version = _open_citygml(path)
    records = []
    for el in stream.features():
        why = _pipe_kind(el)
        if why is None:
            with stream.locate_errors(_gml.gml_id(el)):
                stream.note_srs(el, _gml.gml_id(el))
                record = _pipe_record(el, stream, PIPE_UTILITIES[local_name(el)])
            why = None if record else "no centreline"
            records.extend([record] if record else [])
        if why:
            stream.skipped[f"{qualified_name(el)} ({why})"] += 1
    crs, swap = stream.final_crs()
    frame = _gml.records_frame(records, PIPE_COLUMNS, crs, swap,
                               ("diameter", "inner_diameter", "depth"), ("install_year",))
    return SourceLayer(path=str(path), name="UtilityNetwork", frame=frame, standard="pipeline",
                       field_sources=dict(_PIPE_SOURCES), skipped=stream.notes())


_PIPE_SOURCES = {
    "id": "gml:id", "utility": "feature type (uro:WaterPipe -> water...)",
    "diameter": "uro:outerDiameter (uro:outerDiamiter), else the inner diameter; mm",
    "inner_diameter": "uro:innerDiameter (uro:innerDiamiter); mm",
    "depth": "uro:depth, else uro:minDepth; m", "install_year": "uro:year",
    "owner": "uro:occupierName, else uro:administrator",
    "geometry": "uro:lod0Geometry LineString, else the long axis of the LOD1 solid",
}
