"""GML helpers shared by the GML-based readers (CityGML, PLATEAU i-UR, ...).

Geometry: :class:`GeometryParser` turns GML 3.1/3.2 surfaces (``gml:Polygon``, ``MultiSurface``,
``CompositeSurface``, ``Shell``, ``Solid``, ``OrientableSurface``, ``Surface`` patches,
``xlink:href`` references) into lists of shapely polygons, and curves into LineStrings. Coordinates
stay in the file's axis order; :func:`swap_xy` puts them in GIS order afterwards, once the CRS is
known (:func:`crs_from_srs_name`, :func:`needs_axis_swap`).

Streaming: :class:`GmlStream` yields the features of a file one at a time and learns its CRS;
:func:`iter_end_events` wraps ``lxml.etree.iterparse`` so that a malformed file raises
:class:`~gis.errors.MalformedFileError` with the line number, and :func:`flatten_element` turns a
nested attribute element into ``path -> value`` pairs.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from lxml import etree
from pyproj import CRS
from pyproj.exceptions import CRSError as PyprojCRSError
from shapely.geometry import LineString, MultiLineString, Polygon

from gis.errors import CRSError, DataError, MalformedFileError
from gis.io.model import records_frame as typed_frame

GML_NAMESPACES = frozenset({"http://www.opengis.net/gml", "http://www.opengis.net/gml/3.2"})
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_GML_IDS = tuple(f"{{{ns}}}id" for ns in sorted(GML_NAMESPACES))

#: GML elements whose children are simply unwrapped when collecting polygons.
_SURFACE_CONTAINERS = frozenset({
    "MultiSurface", "CompositeSurface", "Shell", "Solid", "CompositeSolid", "MultiSolid",
    "Surface", "TriangulatedSurface", "Tin", "PolyhedralSurface",
    # property elements
    "surfaceMember", "surfaceMembers", "exterior", "interior", "solidMember", "solidMembers",
    "patches", "trianglePatches", "polygonPatches", "baseSurface",
})
_POLYGON_LIKE = frozenset({"Polygon", "PolygonPatch", "Triangle", "Rectangle"})
_NON_ATTRIBUTE_GML = frozenset({"name", "description", "identifier"})


def local_name(el: etree._Element) -> str:
    """The local part of an element's tag (``'Polygon'`` for ``{gml}Polygon``).

    Args:
        el: An lxml element (comments and processing instructions give ``''``).

    Returns:
        The tag without its namespace.
    """
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return tag.rpartition("}")[2]


def namespace(el: etree._Element) -> str:
    """The namespace URI of an element's tag, or ``''``."""
    tag = el.tag
    if not isinstance(tag, str) or not tag.startswith("{"):
        return ""
    return tag[1:].partition("}")[0]


def is_gml(el: etree._Element, *names: str) -> bool:
    """Whether ``el`` is a GML element (3.1 or 3.2), optionally one of ``names``."""
    return namespace(el) in GML_NAMESPACES and (not names or local_name(el) in names)


def gml_id(el: etree._Element) -> str | None:
    """The ``gml:id`` of an element (GML 3.1 or 3.2 namespace), or None."""
    for key in _GML_IDS:
        value = el.get(key)
        if value is not None:
            return value
    return None


def qualified_name(el: etree._Element) -> str:
    """``prefix:local`` as written in the file (just ``local`` for the default namespace)."""
    name = local_name(el)
    return f"{el.prefix}:{name}" if el.prefix else name


class GeometryParser:
    """Parses GML geometry elements into shapely geometries (file axis order).

    Args:
        index: ``gml:id`` -> element, used to resolve ``xlink:href="#id"`` references.
        default_dim: Coordinate dimension when neither the element nor an ancestor says
            (``srsDimension``); None guesses from the number of values.

    Attributes:
        degenerate: Polygons left out because they had fewer than 3 distinct points or bad rings.
        unresolved: ``xlink:href`` references that pointed to no element of the index.
    """

    def __init__(self, index: dict[str, etree._Element] | None = None,
                 default_dim: int | None = None):
        self.index = index or {}
        self.default_dim = default_dim
        self.degenerate = 0
        self.unresolved = 0

    def polygons(self, el: etree._Element) -> list[Polygon]:
        """All polygons under a geometry or geometry-property element.

        Args:
            el: A GML surface/solid element, a property element wrapping one (e.g.
                ``bldg:lod2MultiSurface``) or an element carrying ``xlink:href``.

        Returns:
            The polygons, 3D when the source has z; orientation ``-`` surfaces are reversed.
        """
        out: list[Polygon] = []
        self._collect(el, out, set(), reverse=False)
        return out

    def _collect(self, el: etree._Element, out: list[Polygon], seen: set[str],
                 reverse: bool) -> None:
        href = el.get(XLINK_HREF)
        if href is not None:
            target = self._resolve(href, seen)
            if target is not None:
                self._collect(target, out, seen, reverse)
            return
        name = local_name(el)
        if is_gml(el) and name in _POLYGON_LIKE:
            poly = self.polygon(el)
            if poly is not None:
                out.append(shapely.reverse(poly) if reverse else poly)
            return
        if is_gml(el, "OrientableSurface"):
            reverse = reverse != (el.get("orientation", "+") == "-")
        elif is_gml(el) and name not in _SURFACE_CONTAINERS and name != "OrientableSurface":
            return  # curves, points, envelopes, names...
        for child in el:
            if isinstance(child.tag, str):
                self._collect(child, out, seen, reverse)

    def _resolve(self, href: str, seen: set[str]) -> etree._Element | None:
        ref = href.rpartition("#")[2]
        target = self.index.get(ref)
        if target is None or ref in seen:
            self.unresolved += target is None
            return None
        seen.add(ref)
        return target

    def polygon(self, el: etree._Element) -> Polygon | None:
        """One ``gml:Polygon`` (or patch/Triangle) with its interior rings.

        Args:
            el: The polygon element.

        Returns:
            The polygon, or None (counted in :attr:`degenerate`) when a ring is unusable.
        """
        shell = None
        holes = []
        for prop in el:
            kind = local_name(prop)
            if kind not in ("exterior", "outerBoundaryIs", "interior", "innerBoundaryIs"):
                continue
            ring = next((c for c in prop if isinstance(c.tag, str)), None)
            coords = None if ring is None else self.ring_coords(ring)
            if kind in ("exterior", "outerBoundaryIs"):
                shell = coords
            elif coords is not None:
                holes.append(coords)
        if shell is None:
            self.degenerate += 1
            return None
        try:
            return Polygon(shell, holes)
        except (ValueError, shapely.errors.GEOSException):
            self.degenerate += 1
            return None

    def ring_coords(self, ring: etree._Element) -> np.ndarray | None:
        """Coordinates of a ``gml:LinearRing`` (closed), or None if it has < 3 distinct points."""
        coords = self.coords(ring, closed=True)
        if coords is None or len(set(map(tuple, coords.tolist()))) < 3:
            return None
        if not np.array_equal(coords[0], coords[-1]):
            coords = np.vstack([coords, coords[:1]])
        return coords

    def line(self, el: etree._Element) -> LineString | MultiLineString | None:
        """The curve under ``el``: ``gml:LineString``, ``gml:Curve`` segments, curve members.

        Pieces whose ends touch are joined; disjoint pieces give a MultiLineString.

        Args:
            el: A curve element or a property element wrapping one.

        Returns:
            The line, or None when there is no piece with at least 2 points.
        """
        runs: list[np.ndarray] = []
        for node in el.iter():
            if not is_gml(node, "LineString", "LineStringSegment"):
                continue
            coords = self.coords(node, closed=False)
            if coords is None or len(coords) < 2:
                continue
            if runs and np.array_equal(runs[-1][-1], coords[0]):
                runs[-1] = np.vstack([runs[-1], coords[1:]])
            else:
                runs.append(coords)
        lines = [LineString(r) for r in runs]
        if not lines:
            return None
        return lines[0] if len(lines) == 1 else MultiLineString(lines)

    def coords(self, el: etree._Element, closed: bool) -> np.ndarray | None:
        """The (n, dim) coordinates of a ring/line: ``posList``, ``pos`` list or ``coordinates``.

        Args:
            el: The LinearRing, LineString... element.
            closed: Whether the geometry should be closed (helps guess the dimension).

        Returns:
            A float array, or None when there are no coordinates.

        Raises:
            DataError: When the coordinate text is not numbers.
        """
        values: list[float] = []
        dim = None
        for child in el:
            kind = local_name(child) if is_gml(child) else ""
            if kind == "posList":
                values = _numbers(child.text)
                dim = _int_attr(child, "srsDimension") or _int_attr(child, "dimension")
            elif kind == "pos":
                point = _numbers(child.text)
                dim = len(point)
                values.extend(point)
            elif kind == "coordinates":
                return _gml_coordinates(child)
            elif kind in ("pointProperty", "pointRep"):
                for pos in child.iter():
                    if is_gml(pos, "pos"):
                        point = _numbers(pos.text)
                        dim = len(point)
                        values.extend(point)
        if not values:
            return None
        dim = dim or _inherited_dim(el) or self.default_dim or _guess_dim(values, closed)
        if len(values) % dim:
            raise DataError(f"{len(values)} coordinate values is not a multiple of dimension {dim}")
        return np.asarray(values, dtype=float).reshape(-1, dim)


def _numbers(text: str | None) -> list[float]:
    try:
        return [float(v) for v in (text or "").split()]
    except ValueError as exc:
        raise DataError(f"bad coordinate value: {exc}") from None


def _int_attr(el: etree._Element, name: str) -> int | None:
    value = el.get(name)
    return int(value) if value and value.isdigit() else None


def _inherited_dim(el: etree._Element) -> int | None:
    node = el
    while node is not None:
        dim = _int_attr(node, "srsDimension")
        if dim:
            return dim
        node = node.getparent()
    return None


def _guess_dim(values: list[float], closed: bool) -> int:
    """3 when the values split into 3D points (closed if they should be), else 2."""
    if len(values) % 3 == 0:
        if not closed or values[:3] == values[-3:]:
            return 3
    return 2


def _gml_coordinates(el: etree._Element) -> np.ndarray | None:
    cs, ts = el.get("cs", ","), el.get("ts", " ")
    tuples = [t for t in (el.text or "").replace("\n", ts).split(ts) if t.strip()]
    try:
        rows = [[float(v) for v in t.split(cs)] for t in tuples]
    except ValueError as exc:
        raise DataError(f"bad gml:coordinates value: {exc}") from None
    if not rows or len({len(r) for r in rows}) != 1:
        return None
    return np.asarray(rows, dtype=float)


def build_id_index(root: etree._Element) -> dict[str, etree._Element]:
    """``gml:id`` -> element for every element under ``root`` (for xlink:href resolution)."""
    index = {}
    for el in root.iter():
        if isinstance(el.tag, str):
            gid = gml_id(el)
            if gid is not None:
                index[gid] = el
    return index


def swap_xy(geoms: np.ndarray) -> np.ndarray:
    """Swap the first two coordinates of every geometry (keeps z).

    Args:
        geoms: An array of shapely geometries.

    Returns:
        The geometries with x and y exchanged.
    """
    def _swap(coords: np.ndarray) -> np.ndarray:
        return coords[:, [1, 0, *range(2, coords.shape[1])]]

    return shapely.transform(geoms, _swap, include_z=None)


_CRS_CACHE: dict[str, CRS] = {}


def crs_from_srs_name(srs_name: str, path: str | os.PathLike | None = None) -> CRS:
    """The pyproj CRS of a GML ``srsName`` (EPSG URL, URN, compound URN or ``EPSG:n``).

    Args:
        srs_name: The attribute value.
        path: The file, for the error message.

    Returns:
        The CRS as defined by the authority (compound CRSs stay compound).

    Raises:
        CRSError: When pyproj does not know it.
    """
    key = srs_name.strip()
    if key not in _CRS_CACHE:
        try:
            _CRS_CACHE[key] = CRS.from_user_input(key)
        except PyprojCRSError as exc:
            raise CRSError(f"unknown srsName {srs_name!r}: {exc}",
                           path=str(path) if path else None) from None
    return _CRS_CACHE[key]


def needs_axis_swap(crs: CRS) -> bool:
    """Whether the CRS's first axis points north/south (lat,lon or northing,easting order)."""
    axes = crs.axis_info
    return bool(axes) and axes[0].direction.lower() in ("north", "south")


def iter_end_events(path: str | os.PathLike, tags: list[str]) -> Iterator[etree._Element]:
    """Stream the elements with the given tags as they end, converting parse errors.

    Comments are dropped; callers should :func:`release` the elements they are done with. The file
    is closed when the iteration ends or the generator is closed.

    Args:
        path: The XML file.
        tags: Tags to report (``{ns}local``, ``{*}local`` wildcards allowed).

    Yields:
        Each ended element.

    Raises:
        MalformedFileError: On an XML syntax error (with the line number).
        DataError: When the file cannot be read.
    """
    try:
        with open(path, "rb") as fh:
            for _event, el in etree.iterparse(fh, events=("end",), tag=tags,
                                              remove_comments=True, huge_tree=True):
                yield el
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno is not None else (exc.position or (0,))[0]
        raise MalformedFileError(f"malformed XML at line {line}: {exc.msg}",
                                 path=str(path)) from None
    except OSError as exc:
        raise DataError(f"cannot read file: {exc}", path=str(path)) from None


def release(el: etree._Element) -> None:
    """Free an ended element and the siblings before it (keeps iterparse memory flat)."""
    el.clear(keep_tail=False)
    parent = el.getparent()
    if parent is not None:
        while el.getprevious() is not None:
            del parent[0]


def flatten_element(el: etree._Element, path: str, out: dict[str, Any]) -> None:
    """Flatten a nested attribute element into ``path/child/... -> text`` entries.

    Leaves give their stripped text; their ``codeSpace`` and ``uom`` attributes are kept under
    ``path@codeSpace`` / ``path@uom``. Repeated paths collect a list. GML geometry is skipped.

    Args:
        el: The element (its own name is already in ``path``).
        path: Key of this element.
        out: Where the entries go.
    """
    children = [c for c in el if isinstance(c.tag, str)]
    if not children:
        text = (el.text or "").strip()
        if text or el.get("codeSpace") or el.get("uom"):
            _put(out, path, text)
        for attr in ("codeSpace", "uom"):
            if el.get(attr) is not None:
                _put(out, f"{path}@{attr}", el.get(attr))
        return
    for child in children:
        if is_gml(child) and local_name(child) not in _NON_ATTRIBUTE_GML:
            continue
        flatten_element(child, f"{path}/{qualified_name(child)}", out)


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if key not in out:
        out[key] = value
    elif isinstance(out[key], list):
        out[key].append(value)
    else:
        out[key] = [out[key], value]


_LOD_PROPERTY = re.compile(r"^lod([0-4])([A-Z]\w*)$")


def lod_property(el: etree._Element) -> tuple[int, str] | None:
    """``(lod, kind)`` for a CityGML geometry property like ``lod2MultiSurface``, else None."""
    match = _LOD_PROPERTY.match(local_name(el))
    return (int(match.group(1)), match.group(2)) if match else None


@dataclass
class GmlStream:
    """Streams the features of a GML file, learning its CRS and counting what was left out.

    The CRS is the first ``srsName`` met (usually the ``gml:Envelope`` of the collection); a
    feature naming a different CRS raises :class:`~gis.errors.CRSError`.

    Args:
        path: The file.
        member_tags: Tags of the member properties wrapping each feature
            (``{*}cityObjectMember`` for CityGML).
        discard_tags: Top-level properties freed unread (appearances).
    """

    path: str
    member_tags: tuple[str, ...] = ("{*}cityObjectMember",)
    discard_tags: tuple[str, ...] = ("{*}appearanceMember",)
    srs_name: str | None = None
    crs: CRS | None = None
    dim: int | None = None
    skipped: Counter = field(default_factory=Counter)
    degenerate: int = 0
    unresolved: int = 0

    def features(self) -> Iterator[etree._Element]:
        """Each feature (element child of a member property); freed after the caller's turn.

        Raises:
            MalformedFileError, DataError, CRSError: See :func:`iter_end_events`.
        """
        tags = ["{*}Envelope", *self.member_tags, *self.discard_tags]
        discard = {t.rpartition("}")[2] for t in self.discard_tags}
        for el in iter_end_events(self.path, tags):
            if local_name(el) == "Envelope":
                if self.crs is None and is_gml(el):
                    self.note_srs(el)
                continue
            if local_name(el) in discard:
                release(el)
                continue
            if self.crs is None:
                self.note_srs(el)
            for obj in el:
                if isinstance(obj.tag, str):
                    yield obj
            release(el)

    def note_srs(self, el: etree._Element, record: str | None = None) -> None:
        """Take the file CRS from the first srsName under ``el``; reject a different one."""
        for node in el.iter():
            name = node.get("srsName") if isinstance(node.tag, str) else None
            if not name or name == self.srs_name:
                continue
            crs = crs_from_srs_name(name, self.path)
            if self.crs is None:
                self.srs_name, self.crs = name, crs
                self.dim = _int_attr(node, "srsDimension") or self.dim
            elif crs != self.crs:
                raise CRSError(f"srsName {name!r} differs from the file's {self.srs_name!r}",
                               path=self.path, record=record)

    @contextmanager
    def locate_errors(self, record: str | None) -> Iterator[None]:
        """Turn errors inside one feature into DataErrors naming the file and the record."""
        try:
            yield
        except DataError as exc:
            if exc.path:
                raise
            raise DataError(exc.message, path=self.path, record=record) from None
        except (ValueError, shapely.errors.GEOSException) as exc:
            raise DataError(f"cannot read the feature: {exc}", path=self.path,
                            record=record) from None

    def parser(self, feature: etree._Element) -> GeometryParser:
        """A geometry parser resolving xlink:href inside one feature."""
        return GeometryParser(build_id_index(feature), self.dim)

    def absorb(self, parser: GeometryParser) -> None:
        """Count the polygons and references a parser had to leave out."""
        self.degenerate += parser.degenerate
        self.unresolved += parser.unresolved

    def notes(self) -> list[str]:
        """Human-readable notes with counts, for ``SourceLayer.skipped``."""
        out = [f"{n} {what}" for what, n in sorted(self.skipped.items())]
        if self.degenerate:
            out.append(f"{self.degenerate} degenerate polygons (fewer than 3 distinct points)")
        if self.unresolved:
            out.append(f"{self.unresolved} xlink:href references not found in their feature")
        return out

    def final_crs(self) -> tuple[CRS, bool]:
        """The CRS and whether x/y must be swapped to GIS order.

        Raises:
            CRSError: The file named no CRS.
        """
        if self.crs is None:
            raise CRSError("no srsName anywhere in the file: cannot tell its CRS", path=self.path)
        return self.crs, needs_axis_swap(self.crs)


def solid_axis(polygons: list[Polygon]) -> LineString | None:
    """Centreline of an elongated solid: joins the midpoints of the short sides of its xy box.

    Args:
        polygons: The solid's faces (3D).

    Returns:
        A 2-point LineString at the solid's mid height, or None for a degenerate solid.
    """
    coords = shapely.get_coordinates(polygons, include_z=True)
    box = shapely.minimum_rotated_rectangle(shapely.MultiPoint(coords[:, :2]))
    if not isinstance(box, Polygon) or box.is_empty:
        return None
    ring = np.asarray(box.exterior.coords)[:4, :2]
    i = int(np.argmin([np.linalg.norm(ring[0] - ring[1]), np.linalg.norm(ring[1] - ring[2])]))
    start, end = (ring[i] + ring[i + 1]) / 2, (ring[i + 2] + ring[(i + 3) % 4]) / 2
    z = float(np.nanmean([np.nanmin(coords[:, 2]), np.nanmax(coords[:, 2])]))
    return LineString([(*start, z), (*end, z)])


def records_frame(records: list[dict], columns: list[str], crs, swap: bool, floats: tuple[str, ...],
           ints: tuple[str, ...]) -> gpd.GeoDataFrame:
    """A GeoDataFrame from records (geometry under ``"geometry"``), typed and in GIS axis order.

    Args:
        records: One dict per row.
        columns: The attribute columns, in order.
        crs: The frame CRS.
        swap: Whether to swap x/y (see :func:`needs_axis_swap`).
        floats: Columns made float64 (NaN when missing).
        ints: Columns made nullable Int64.

    Returns:
        The frame; other columns hold Python objects with None (not NaN) when missing.
    """
    frame = typed_frame(records, columns, crs, floats, ints)
    if swap:
        frame = frame.set_geometry(gpd.GeoSeries(
            to_gis_order(frame.geometry.tolist(), True), index=frame.index, crs=crs))
    return frame


def to_gis_order(geoms: list, swap: bool) -> np.ndarray:
    """Geometries as an object array, x/y swapped when ``swap``."""
    arr = np.empty(len(geoms), dtype=object)
    arr[:] = geoms
    return swap_xy(arr) if swap and len(arr) else arr


def measure(text: str | None, uom: str | None, units: dict[str, float],
            default: str | None) -> float | None:
    """A GML measure in the unit ``units`` is built for.

    Args:
        text: The element text.
        uom: Its ``uom`` attribute.
        units: Lower-case unit name -> factor to the target unit.
        default: Unit assumed when there is no uom (None: take the number as it is).

    Returns:
        The converted value, or None for empty text.

    Raises:
        ValueError: Not a number, or a unit not in ``units``.
    """
    text = (text or "").strip()
    if not text:
        return None
    value = float(text)
    unit = (uom or default or "").strip().lower()
    if not unit:
        return value
    if unit not in units:
        raise ValueError(f"unknown unit of measure {uom!r}")
    return value * units[unit]
