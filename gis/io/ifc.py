"""IFC2x3 / IFC4 building models (BIM) into the building standard, with IfcOpenShell 0.9.

Geometry: IfcOpenShell's geometry iterator tessellates every IfcElement with a representation
(openings and other IfcFeatureElements excluded: they are subtracted from their hosts already), in
world coordinates and metres (the project length unit applied). Each element becomes one row of
``extras["surfaces"]`` (a 3D MultiPolygon of its triangles) with its IFC class, GlobalId, name,
storey and property sets flattened into ``properties`` (JSON). ``surface_type`` maps the class to
the CityGML surface the tiles colour by (IfcRoof -> RoofSurface, walls, windows, doors, curtain
walls -> WallSurface, slabs -> GroundSurface when ``BASESLAB`` else FloorSurface...), so
``ngis tiles build --lod 2`` meshes the elements unchanged.

The ``building`` frame has one row per IfcBuilding: an LOD1 envelope, i.e. the footprint (xy
union of the non-vertical triangles of its elements), ``ground_elevation`` (lowest element point)
and ``height`` (highest minus lowest point), so the building also appears at the coarse levels.
Footings and piles are left out of the envelope (they lie below ground).

Georeferencing, first found wins (buildingSMART "User Guide for Geo-referencing in IFC" v2.0,
2020; Clemen & Görne 2019, "Level of Georeferencing (LoGeoRef) using IFC for BIM", JGGS 10):

1. IFC4 ``IfcMapConversion`` with its ``IfcProjectedCRS`` (LoGeoRef 50):
   ``E = Eastings + s (a x - b y)``, ``N = Northings + s (b x + a y)``, ``H = OrthogonalHeight +
   s z`` with ``a, b`` = XAxisAbscissa/Ordinate normalised and ``s`` the Scale.
2. IFC2x3 property sets ``ePSet_MapConversion`` / ``ePSet_ProjectedCRS`` on the IfcSite (the same
   formula, the buildingSMART Australasia route).
3. IfcSite ``RefLatitude``/``RefLongitude``/``RefElevation`` (LoGeoRef 20) for the site origin,
   rotated by the context's ``TrueNorth`` (LoGeoRef 30), in the user's CRS or else the UTM zone
   of the site; the grid convergence is taken into account.
4. A placement the caller gives (``origin`` E, N, H of the model origin, ``rotation`` of the
   model x axis counter-clockwise from grid east in degrees, ``crs``).

Common exporter errors are repaired and each reported as one problem line (``layer.problems``,
which ``ngis validate`` prints): IfcMapConversion offsets written in project millimetres instead
of map units (detected when only the scaled-down offsets fall inside the CRS's area of use), a
missing Scale while the project unit is not the map unit, a MapUnit named METRE whose conversion
factor says otherwise. A model without any georeferencing keeps its local coordinates, no CRS, and
a "no georeferencing" problem; elements without geometry and unknown length units are problems
too, and so is a representation item whose triangles cross each other (a self-intersecting
solid or face set, :func:`gis.mesh.checks.self_intersections`; separate items of one element,
such as a window's frame and glazing, may overlap). When the IfcSite latitude/longitude and the map conversion disagree by more than 1 km, the map
conversion is used and the disagreement is noted in ``skipped`` (the Duplex sample).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError as PyprojCRSError

from gis.errors import CRSError, DataError, MalformedFileError
from gis.io.citygml import BUILDING_COLUMNS, SURFACE_COLUMNS
from gis.io.model import SourceLayer, records_frame

__all__ = ["read_ifc", "Placement", "placement_of", "dms_to_degrees", "ELEMENT_COLUMNS"]

#: IFC class -> CityGML boundary-surface name used by the tiles to colour elements.
SURFACE_OF_CLASS = {"IfcRoof": "RoofSurface", "IfcWall": "WallSurface",
                    "IfcWallStandardCase": "WallSurface", "IfcCurtainWall": "WallSurface",
                    "IfcWindow": "WallSurface", "IfcDoor": "WallSurface",
                    "IfcPlate": "WallSurface", "IfcMember": "WallSurface"}
#: Left out of the envelope (footprint, ground elevation, height): foundations below ground.
_BELOW_GROUND = frozenset({"IfcFooting", "IfcPile"})
ELEMENT_COLUMNS = [*SURFACE_COLUMNS, "ifc_class", "name", "storey", "properties"]
_FAR_M = 1000.0


def dms_to_degrees(dms: Any) -> float | None:
    """IfcCompoundPlaneAngleMeasure (degrees, minutes, seconds[, millionths]) -> degrees."""
    if not dms:
        return None
    parts = [float(v) for v in dms] + [0.0] * (4 - len(dms))
    return parts[0] + parts[1] / 60.0 + (parts[2] + parts[3] / 1e6) / 3600.0


@dataclass
class Placement:
    """Model (world coordinates, metres) -> map coordinates: a rotation about the anchor, a
    scale, and a translation to ``origin``.

    Attributes:
        crs: The map CRS (None when the model has no georeferencing).
        origin: Map E, N, H of ``anchor``.
        anchor: The model point placed at ``origin`` (metres).
        rotation_deg: Angle of the model x axis from grid east, counter-clockwise.
        scale: Metres of model -> map units.
        method: How the placement was found (for lineage).
    """

    crs: CRS | None
    origin: np.ndarray
    anchor: np.ndarray
    rotation_deg: float
    scale: float
    method: str
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_map(self, xyz: np.ndarray) -> np.ndarray:
        """(n, 3) model points -> (n, 3) map points."""
        d = np.asarray(xyz, dtype=np.float64).reshape(-1, 3) - self.anchor
        c, s = math.cos(math.radians(self.rotation_deg)), math.sin(math.radians(self.rotation_deg))
        out = np.empty_like(d)
        out[:, 0] = self.origin[0] + self.scale * (c * d[:, 0] - s * d[:, 1])
        out[:, 1] = self.origin[1] + self.scale * (s * d[:, 0] + c * d[:, 1])
        out[:, 2] = self.origin[2] + self.scale * d[:, 2]
        return out


def _length_unit_scale(model) -> tuple[float, str | None]:
    """Metres per project length unit, and a problem text when the unit is unknown."""
    import ifcopenshell.util.unit as unit

    assignments = model.by_type("IfcUnitAssignment")
    units = [u for a in assignments for u in a.Units or ()
             if getattr(u, "UnitType", None) == "LENGTHUNIT"]
    if not units:
        return 1.0, "unknown units: the project declares no length unit (taken as metres)"
    try:
        return float(unit.calculate_unit_scale(model)), None
    except Exception as err:  # noqa: BLE001 - ifcopenshell raises plain exceptions here
        return 1.0, f"unknown units: length unit {units[0]} not understood ({err})"


def _crs_from_name(name: str | None, path: str) -> CRS | None:
    if not name:
        return None
    text = str(name).strip()
    try:
        return CRS.from_user_input(text if ":" in text or not text.isdigit() else f"EPSG:{text}")
    except PyprojCRSError as err:
        raise CRSError(f"unknown IfcProjectedCRS name {text!r}", path=path) from err


def _inside(crs: CRS, e: float, n: float) -> bool:
    aou = crs.area_of_use
    if aou is None:
        return True
    lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(e, n)
    return (np.isfinite(lon) and aou.west - 1 <= lon <= aou.east + 1
            and aou.south - 1 <= lat <= aou.north + 1)


def _map_conversion(model, unit_scale: float, path: str) -> Placement | None:
    """Placement from IfcMapConversion (IFC4) or the ePSet_ property sets (IFC2x3)."""
    import ifcopenshell.util.element as element

    problems: list[tuple[str, str, str]] = []
    values: dict[str, Any] | None = None
    crs_name, map_unit = None, None
    if model.schema != "IFC2X3":
        for conv in model.by_type("IfcMapConversion"):
            values = {k: getattr(conv, k) for k in ("Eastings", "Northings", "OrthogonalHeight",
                                                    "XAxisAbscissa", "XAxisOrdinate", "Scale")}
            target = conv.TargetCRS
            crs_name = getattr(target, "Name", None)
            map_unit = getattr(target, "MapUnit", None)
            method = "IfcMapConversion + IfcProjectedCRS"
            break
    if values is None:
        for site in model.by_type("IfcSite"):
            psets = element.get_psets(site)
            if "ePSet_MapConversion" in psets:
                values = psets["ePSet_MapConversion"]
                crs_name = psets.get("ePSet_ProjectedCRS", {}).get("Name")
                method = "IfcSite ePSet_MapConversion + ePSet_ProjectedCRS (IFC2x3)"
                break
    if values is None:
        return None
    crs = _crs_from_name(crs_name, path)
    if crs is None:
        problems.append(("*", "georeferencing", "map conversion without a projected CRS name"))
    unit_m = 1.0
    if map_unit is not None:
        name = str(getattr(map_unit, "Name", "") or "").upper()
        factor = None
        if map_unit.is_a("IfcConversionBasedUnit"):
            factor = float(map_unit.ConversionFactor.ValueComponent.wrappedValue)
        if name in ("METRE", "METER") and factor not in (None, 1.0):
            problems.append(("*", "IfcProjectedCRS.MapUnit",
                             f"exporter error: map unit named {name} with conversion factor "
                             f"{factor:g} (taken as metre, the unit of the CRS)"))
        elif factor is not None:
            unit_m = factor
        elif getattr(map_unit, "Prefix", None) == "MILLI":
            unit_m = 0.001
    e0 = float(values.get("Eastings") or 0.0)
    n0 = float(values.get("Northings") or 0.0)
    h0 = float(values.get("OrthogonalHeight") or 0.0)
    a = float(values.get("XAxisAbscissa") if values.get("XAxisAbscissa") is not None else 1.0)
    b = float(values.get("XAxisOrdinate") or 0.0)
    if crs is not None and unit_scale != unit_m and not _inside(crs, e0 * unit_m, n0 * unit_m) \
            and _inside(crs, e0 * unit_scale, n0 * unit_scale):
        problems.append(("*", "IfcMapConversion.Eastings/Northings",
                         f"exporter error: offsets {e0:.3f}, {n0:.3f} are in project units "
                         f"({unit_scale:g} m), not map units (read as {e0 * unit_scale:.3f}, "
                         f"{n0 * unit_scale:.3f} m)"))
        e0, n0, h0 = e0 * unit_scale, n0 * unit_scale, h0 * unit_scale
    else:
        e0, n0, h0 = e0 * unit_m, n0 * unit_m, h0 * unit_m
    scale_value = values.get("Scale")
    if scale_value is None:
        scale = 1.0  # model coordinates are metres already
        if unit_scale != unit_m:
            problems.append(("*", "IfcMapConversion.Scale",
                             f"exporter error: Scale unset while the project unit "
                             f"({unit_scale:g} m) is not the map unit (coordinates converted to metres "
                             "first, then scale 1)"))
    else:
        scale = float(scale_value) / unit_scale * unit_m  # Scale applies to project units
    norm = math.hypot(a, b) or 1.0
    rotation = math.degrees(math.atan2(b / norm, a / norm))
    return Placement(crs, np.array([e0, n0, h0]), np.zeros(3), rotation, scale, method, problems)


def _north_angle(model) -> float | None:
    """Angle of TrueNorth from the model x axis (degrees, counter-clockwise), or None."""
    for ctx in model.by_type("IfcGeometricRepresentationContext"):
        if ctx.is_a("IfcGeometricRepresentationSubContext"):
            continue
        tn = getattr(ctx, "TrueNorth", None)
        if tn is not None:
            r = tn.DirectionRatios
            return math.degrees(math.atan2(r[1], r[0]))
    return None


def _site_latlon(model) -> tuple[Any, float, float, float] | None:
    for site in model.by_type("IfcSite"):
        lat, lon = dms_to_degrees(site.RefLatitude), dms_to_degrees(site.RefLongitude)
        if lat is not None and lon is not None:
            return site, lat, lon, float(site.RefElevation or 0.0)
    return None


def _site_origin(model, site) -> np.ndarray:
    """World coordinates (metres) of the IfcSite placement origin."""
    import ifcopenshell.util.placement as placement
    import ifcopenshell.util.unit as unit

    if site is None or site.ObjectPlacement is None:
        return np.zeros(3)
    m = placement.get_local_placement(site.ObjectPlacement)
    return np.asarray(m[:3, 3], dtype=np.float64) * float(unit.calculate_unit_scale(model))


def _latlon_placement(model, site, lat: float, lon: float, elev: float,
                      crs: CRS | None) -> Placement:
    notes = []
    if crs is None:
        from pyproj.aoi import AreaOfInterest
        from pyproj.database import query_utm_crs_info

        info = query_utm_crs_info(datum_name="WGS 84",
                                  area_of_interest=AreaOfInterest(lon, lat, lon, lat))
        crs = CRS.from_epsg(int(info[0].code))
        notes.append(f"CRS: UTM zone of the site ({crs.to_string()})")
    to_map = Transformer.from_crs(4326, crs, always_xy=True)
    e, n = to_map.transform(lon, lat)
    e2, n2 = to_map.transform(lon, lat + 1e-4)
    grid_north = math.degrees(math.atan2(n2 - n, e2 - e))  # true north seen in the grid
    north = _north_angle(model)
    if north is None:
        north = 90.0
        notes.append("no TrueNorth: model y taken as true north")
    return Placement(crs, np.array([e, n, elev]), _site_origin(model, site),
                     grid_north - north, 1.0,
                     "IfcSite RefLatitude/RefLongitude/RefElevation + TrueNorth", notes=notes)


def placement_of(model, path: str = "", origin: tuple[float, float, float] | None = None,
                 rotation: float = 0.0, crs: str | CRS | None = None) -> Placement:
    """The georeferencing of an opened model (see the module docstring for the order).

    Args:
        model: An ``ifcopenshell.file``.
        path: For messages.
        origin: Map E, N, H of the model origin; when given it overrides the model's own
            georeferencing (a user placement, the last resort of the order above).
        rotation: Model x axis from grid east, counter-clockwise, degrees (with ``origin``).
        crs: The map CRS for ``origin``, or the CRS to place a latitude/longitude site in.
    """
    user_crs = None if crs is None else (crs if isinstance(crs, CRS) else CRS.from_user_input(crs))
    if origin is not None:
        return Placement(user_crs, np.asarray(origin, dtype=np.float64), np.zeros(3),
                         float(rotation), 1.0, "origin given by the user")
    unit_scale, unit_problem = _length_unit_scale(model)
    found = _map_conversion(model, unit_scale, path)
    site = _site_latlon(model)
    if found is not None:
        if site is not None and found.crs is not None:
            e, n = Transformer.from_crs(4326, found.crs, always_xy=True).transform(site[2],
                                                                                   site[1])
            placed = found.to_map(_site_origin(model, site[0])[None])[0]
            gap = math.hypot(e - placed[0], n - placed[1])
            if gap > _FAR_M:
                found.notes.append(f"IfcSite RefLatitude/RefLongitude ({site[1]:.5f}, "
                                   f"{site[2]:.5f}) lies {gap / 1000:.1f} km from the map "
                                   f"conversion; the map conversion is used")
    elif site is not None:
        found = _latlon_placement(model, site[0], site[1], site[2], site[3], user_crs)
    else:
        found = Placement(None, np.zeros(3), np.zeros(3), 0.0, 1.0, "none")
        found.problems.append(("*", "georeferencing",
                               "no georeferencing: no IfcMapConversion, ePSet_MapConversion or "
                               "IfcSite RefLatitude/RefLongitude (give an origin, rotation and "
                               "CRS)"))
    if unit_problem:
        found.problems.append(("*", "units", unit_problem))
    return found


def _surface_type(el) -> str:
    cls = el.is_a()
    if cls in SURFACE_OF_CLASS:
        return SURFACE_OF_CLASS[cls]
    if el.is_a("IfcSlab"):
        kind = str(getattr(el, "PredefinedType", "") or "")
        return {"ROOF": "RoofSurface", "BASESLAB": "GroundSurface"}.get(kind, "OuterFloorSurface")
    if el.is_a("IfcCovering") and str(getattr(el, "PredefinedType", "")) == "ROOFING":
        return "RoofSurface"
    return cls


def _building_of(el, cache: dict) -> Any:
    """The IfcBuilding an element belongs to (through its container and aggregates), or None."""
    import ifcopenshell.util.element as element

    node = element.get_container(el) or element.get_aggregate(el)
    chain = []
    while node is not None and not node.is_a("IfcBuilding"):
        if node.id() in cache:
            node = cache[node.id()]
            break
        chain.append(node.id())
        node = element.get_aggregate(node)
    for i in chain:
        cache[i] = node
    return node


def _storey_of(el) -> str | None:
    """Name (else GlobalId) of the IfcBuildingStorey holding an element: through
    IfcRelContainedInSpatialStructure (directly, or in an IfcSpace or other spatial element that
    the storey aggregates), or through the element's parents (IfcRelAggregates: a slab of an
    IfcRoof; IfcRelNests: a flight of an IfcStair) when only the parent is contained."""
    import ifcopenshell.util.element as element

    node, seen = el, set()
    while node is not None and node.id() not in seen:
        seen.add(node.id())
        storey = element.get_container(node, ifc_class="IfcBuildingStorey")
        if storey is None:
            container = element.get_container(node)
            while container is not None and not container.is_a("IfcBuildingStorey"):
                container = element.get_aggregate(container)
            storey = container
        if storey is not None:
            return storey.Name or storey.GlobalId
        node = element.get_aggregate(node) or element.get_nest(node)
    return None


def _properties(el) -> str:
    import ifcopenshell.util.element as element

    flat = {}
    for pset, props in element.get_psets(el).items():
        for k, v in props.items():
            if k != "id":
                flat[f"{pset}.{k}"] = v
    return json.dumps(flat, ensure_ascii=False, default=str)


def _tessellate(model, elements: list
                ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """GlobalId -> (vertices (n, 3) metres, triangles (m, 3), representation item id of each
    triangle) in world coordinates."""
    import ifcopenshell.geom

    settings = ifcopenshell.geom.settings()
    settings.set("use-world-coords", True)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if not elements:
        return out
    it = ifcopenshell.geom.iterator(settings, model, 1, include=elements)
    ok = it.initialize()
    while ok:
        shape = it.get()
        verts = np.asarray(shape.geometry.verts, dtype=np.float64).reshape(-1, 3)
        faces = np.asarray(shape.geometry.faces, dtype=np.int64).reshape(-1, 3)
        items = np.asarray(shape.geometry.item_ids, dtype=np.int64)
        out[shape.guid] = (verts, faces, items if len(items) == len(faces) else
                           np.zeros(len(faces), np.int64))
        ok = it.next()
    return out


def _triangles(xyz: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Non-degenerate triangles as an array of 3D Polygons."""
    tri = xyz[faces]
    area2 = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    tri = tri[area2 > 1e-10]
    rings = np.concatenate([tri, tri[:, :1]], axis=1)
    return shapely.polygons(rings)


def _crossing_items(model, place: Placement, found: list[tuple[Any, np.ndarray, np.ndarray,
                                                               np.ndarray]]) -> list[tuple]:
    """Problems for representation items whose triangles cross each other
    (:func:`gis.mesh.checks.self_intersections`, in map coordinates). Items are tested one by
    one: separate items of an element (a window's frame and its glazing) may overlap, one item
    (a solid, a face set) must not cross itself."""
    from gis.mesh.base import Mesh
    from gis.mesh.checks import self_intersections

    positions, ids, owner = [], [], []
    for el, xyz, faces, items in found:
        uniq, inv = np.unique(items, return_inverse=True)
        positions.append(xyz[faces].reshape(-1, 3))
        ids.append(np.repeat(inv + len(owner), 3))
        owner.extend((el, int(i)) for i in uniq)
    if not positions:
        return []
    pos = np.concatenate(positions)
    mesh = Mesh(pos, np.arange(len(pos)).reshape(-1, 3), np.concatenate(ids))
    out = []
    for fid, point in sorted(self_intersections(mesh).items()):
        el, item = owner[fid]
        kind = model.by_id(item).is_a() if item > 0 else "item"
        out.append((el, "geometry", f"self-intersection: {el.is_a()} {el.Name!r} "
                                    f"({el.GlobalId}) representation item #{item} ({kind}) "
                                    f"crosses itself at ({point[0]:.3f}, {point[1]:.3f}, "
                                    f"{point[2]:.3f})"))
    return out


def _footprint(polys: np.ndarray):
    """xy union of the triangles that are not vertical."""
    flat = shapely.force_2d(polys)
    flat = flat[shapely.area(flat) > 1e-6]
    if not len(flat):
        return None
    merged = shapely.union_all(flat, grid_size=1e-3)
    parts = [g for g in shapely.get_parts(merged) if g.geom_type == "Polygon" and g.area > 1e-4]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def read_ifc(path: str | os.PathLike, origin: tuple[float, float, float] | None = None,
             rotation: float = 0.0, crs: str | CRS | None = None) -> list[SourceLayer]:
    """Read an IFC model as one ``building`` layer with its elements as surfaces.

    Args:
        path: An .ifc (STEP) file, IFC2X3 or IFC4.
        origin: Map E, N, H of the model origin; overrides the model's own georeferencing.
        rotation: With ``origin``: model x axis from grid east, counter-clockwise, degrees.
        crs: With ``origin``, its CRS; else the CRS to place an IfcSite latitude/longitude in.

    Returns:
        ``[layer]``: one row per IfcBuilding (LOD1 envelope) and ``extras["surfaces"]`` with one
        row per element (:data:`ELEMENT_COLUMNS`); ``layer.problems`` lists georeferencing, unit
        and geometry problems as ``(record, field, problem)``.

    Raises:
        MalformedFileError: IfcOpenShell cannot parse the file.
        CRSError: The model names a CRS pyproj does not know.
    """
    import ifcopenshell

    p = str(path)
    try:
        model = ifcopenshell.open(p)
    except Exception as err:  # noqa: BLE001 - ifcopenshell raises plain exceptions
        raise MalformedFileError(f"not a readable IFC file: {err}", path=p) from err
    if model.schema not in ("IFC2X3", "IFC4", "IFC4X3", "IFC4X3_ADD2"):
        raise DataError(f"IFC schema {model.schema} is not supported", path=p)
    place = placement_of(model, p, origin, rotation, crs)
    problems = list(place.problems)
    skipped: Counter[str] = Counter()
    elements = [e for e in model.by_type("IfcElement")
                if not e.is_a("IfcFeatureElement") and e.Representation is not None]
    no_rep = [e for e in model.by_type("IfcElement")
              if not e.is_a("IfcFeatureElement") and e.Representation is None]
    if no_rep:
        kinds = ", ".join(sorted({e.is_a() for e in no_rep}))
        skipped[f"IfcElement without a representation ({kinds})"] += len(no_rep)
    meshes = _tessellate(model, elements)
    cache: dict = {}
    rows, per_building, tessellated = [], {}, []
    for el in elements:
        gid = el.GlobalId
        got = meshes.get(gid)
        polys = None
        if got is not None and len(got[1]):
            xyz = place.to_map(got[0])
            polys = _triangles(xyz, got[1])
            tessellated.append((el, xyz, got[1], got[2]))
        if polys is None or not len(polys):
            problems.append((gid, "geometry", f"empty geometry: {el.is_a()} {el.Name!r} has a "
                                              "representation but no triangles"))
            continue
        building = _building_of(el, cache)
        bid = building.GlobalId if building is not None else "(no IfcBuilding)"
        slot = per_building.setdefault(bid, (building, [], []))
        slot[1].append(polys)
        if el.is_a() not in _BELOW_GROUND:
            slot[2].append(polys)
        rows.append({"building_id": bid, "part_id": gid, "surface_type": _surface_type(el),
                     "lod": 4, "surface_id": gid, "ifc_class": el.is_a(), "name": el.Name,
                     "storey": _storey_of(el), "properties": _properties(el),
                     "geometry": shapely.MultiPolygon(list(polys))})
    for el, fld, text in _crossing_items(model, place, tessellated):
        building = _building_of(el, cache)
        problems.append((building.GlobalId if building is not None else el.GlobalId, fld, text))
    records = []
    file_name = os.path.basename(p)
    for bid, (building, parts, above) in per_building.items():
        polys = np.concatenate(above or parts)
        z = shapely.get_coordinates(polys, include_z=True)[:, 2]
        footprint = _footprint(polys)
        if footprint is None:
            problems.append((bid, "geometry", "empty geometry: no footprint from the elements"))
            continue
        attrs = {}
        if building is not None:
            attrs = {f"{k}": v for k, v in json.loads(_properties(building)).items()}
            for key in ("LongName", "Description", "ObjectType"):
                if getattr(building, key, None):
                    attrs[key] = getattr(building, key)
        n_el = sum(len(x) for x in parts)
        lineage = (f"{model.schema} {file_name}, IfcBuilding {bid}: LOD1 envelope of "
                   f"{len([r for r in rows if r['building_id'] == bid])} elements ({n_el} "
                   f"triangles); placement: {place.method}"
                   + "".join(f"; {n}" for n in place.notes)
                   + f"; CRS {place.crs.to_string() if place.crs else 'none'}")
        records.append({
            "id": bid, "name": getattr(building, "Name", None) if building else None,
            "height": round(float(z.max() - z.min()), 3), "storeys": None, "year_built": None,
            "usage": None, "roof_type": None, "roof_type_code": None,
            "ground_elevation": float(z.min()), "lod": 4,
            "source": f"IFC {model.schema}: {file_name}", "lineage": lineage,
            "attributes": json.dumps(attrs, ensure_ascii=False, default=str),
            "geometry": footprint})
    frame = records_frame(records, BUILDING_COLUMNS, place.crs,
                          ("height", "ground_elevation"), ("storeys", "year_built", "lod"))
    surfaces = records_frame(rows, ELEMENT_COLUMNS, place.crs, (), ("lod",))
    surfaces["lod"] = surfaces["lod"].astype("int64")
    layer = SourceLayer(path=p, name="IfcBuilding", frame=frame, standard="building",
                        field_sources=dict(FIELD_SOURCES), extras={"surfaces": surfaces},
                        skipped=[*place.notes, *(f"{n} {w}" for w, n in skipped.items())])
    layer.problems = problems  # type: ignore[attr-defined]  # read by gis.validate
    return [layer]


FIELD_SOURCES = {
    "id": "IfcBuilding GlobalId", "name": "IfcBuilding Name",
    "height": "highest minus lowest point of the building's elements (footings, piles excluded)",
    "ground_elevation": "lowest point of the building's elements but footings/piles (map height)",
    "lod": "4 (element geometry)", "geometry": "xy union of the elements' non-vertical triangles",
}
