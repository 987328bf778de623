"""A fast pygeoapi feature provider over the base-map store (GeoPackage or PostGIS).

Configured per collection in pygeoapi's ``resources.<name>.providers``::

    - type: feature
      name: gis.server.providers.features.StoreFeatureProvider
      data: /path/basemap.gpkg          # or postgresql://user:pw@host/db?schema=NAME
      table: buildings
      id_field: fid                     # default: the table's primary key
      storage_crs: http://www.opengis.net/def/crs/EPSG/0/3826
      crs: [http://www.opengis.net/def/crs/OGC/1.3/CRS84,
            http://www.opengis.net/def/crs/EPSG/0/4326,
            http://www.opengis.net/def/crs/EPSG/0/3826]
      options: {pool_size: 8}           # PostGIS: connections per server process

pygeoapi builds a provider object on every request, so the constructor only looks up a shared
:class:`_Layer` (schema, CRS, spatial index, prepared transformers), cached per (store, table).
Queries never scan a table for a bbox and never create tables:

* GeoPackage: one read-only SQLite connection per thread. A bbox (or CQL2 spatial literal)
  becomes ``fid IN (SELECT id FROM rtree_<t>_<g> WHERE ...)``; features whose R-tree box lies
  inside the query area are hits outright, the few on its edge are tested exactly by a Python
  function registered in SQLite (GEOS through shapely), so counts, paging and CQL2 ``OR``/``NOT``
  all stay in one SQL statement.
* PostGIS: a thread-safe connection pool; ``geom && box AND ST_Intersects(geom, area)``.

Both return WKB; the page's geometries are decoded, reprojected (pyproj, one call for all the
page's coordinates) and written as GeoJSON coordinate lists in one vectorised pass.

Coordinates and axis order follow pygeoapi's CRS handling (OGC API Features Part 2): pygeoapi
passes ``crs_transform_spec`` (storage CRS to the requested CRS; ``None`` means the storage CRS)
and this provider does the transformation itself, so it is not decorated with pygeoapi's
``crs_transform`` (no double transformation). Output is in the CRS's authority axis order unless
the spec says ``always_xy``: CRS84 is lon/lat, EPSG:4326 lat/lon. Geographic coordinates are
rounded to 1e-7 degree, projected ones to the millimetre.

A ``bbox`` argument is, as pygeoapi passes it, already in the storage CRS (pygeoapi converts a
``bbox-crs`` bbox by its lower-left and upper-right corners before calling ``query``, which
moves the edges of a lon/lat box by ~2 m per 800 m in TWD97); callers that have the bbox in
another CRS pass ``bbox_crs`` and the box is converted exactly (edges densified) instead.

CQL2: pygeoapi 0.24 has no per-provider switch. It lists the ``cql2-text`` and ``basic-cql2``
conformance classes for every server with a feature collection, parses ``filter`` (CQL2 text) or
a POSTed CQL2-JSON body itself, moves geometry literals to the storage CRS (tagging them with
it), and hands the AST to every feature provider as ``filterq``. This provider translates it to
SQL (see :class:`_Where`); what it cannot translate, and unknown property names, raise
:class:`StoreQueryError`, which pygeoapi answers with HTTP 400. The queryables are
:meth:`StoreFeatureProvider.get_fields` plus ``geometry``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyproj
import shapely
import shapely.geometry
from pygeoapi.crs import DEFAULT_CRS, get_crs
from pygeoapi.provider.base import (BaseProvider, ProviderConnectionError,
                                    ProviderGenericError, ProviderInvalidQueryError,
                                    ProviderItemNotFoundError, ProviderQueryError, SchemaType)
from pygeofilter import ast, values
from shapely.errors import GEOSException

LOGGER = logging.getLogger(__name__)

DEFAULT_POOL_SIZE = 8
SCHEMA_TTL = 60.0  # seconds a PostGIS table schema is trusted before it is read again
DENSIFY = 32  # points per edge when a bbox is converted between CRSs


class StoreQueryError(ProviderInvalidQueryError, ProviderQueryError):
    """A query the provider cannot answer as asked (unknown property, bad value, unsupported CQL2):
    pygeoapi answers HTTP 400 with the message. It is both pygeoapi's ``ProviderQueryError`` and
    its ``ProviderInvalidQueryError`` (the one that maps to 400 in pygeoapi 0.24)."""

    def __init__(self, msg: str):
        super().__init__(msg, user_msg=msg)


# -- CRS and geometry helpers ---------------------------------------------------------------

_CRS_CACHE: dict[str, pyproj.CRS] = {}
_TRANSFORMERS: dict[tuple, pyproj.Transformer] = {}
_CACHE_LOCK = threading.Lock()


def _crs(value: str | pyproj.CRS) -> pyproj.CRS:
    """A CRS from a URI, URN or CRS (cached: parsing costs ~30 us)."""
    if isinstance(value, pyproj.CRS):
        return value
    crs = _CRS_CACHE.get(value)
    if crs is None:
        try:
            crs = get_crs(value)
        except Exception as err:  # pyproj.CRSError and pygeoapi's wrapping of it
            raise StoreQueryError(f"unknown CRS {value!r}") from err
        _CRS_CACHE[value] = crs
    return crs


def _transformer(source: pyproj.CRS, target: pyproj.CRS) -> pyproj.Transformer | None:
    """A cached x/y (easting, northing) order transformer (building one costs ~25 ms);
    ``None`` when the CRSs are equal. pyproj transformers are thread-safe (pyproj >= 3.1)."""
    key = (source.srs, target.srs)
    tr = _TRANSFORMERS.get(key, False)
    if tr is False:
        with _CACHE_LOCK:
            tr = _TRANSFORMERS.get(key, False)
            if tr is False:
                tr = None if source == target else pyproj.Transformer.from_crs(
                    source, target, always_xy=True)
                _TRANSFORMERS[key] = tr
    return tr


_SWAPPED: dict[str, bool] = {}


def _swapped(crs: pyproj.CRS) -> bool:
    """Whether the CRS's own axis order is northing/latitude first (EPSG:4326, EPSG:6677).

    Stored geometries are always x = easting/longitude (GeoPackage and PostGIS); coordinates
    in requests and responses follow the CRS's axis order (OGC API Features Part 2).
    """
    key = crs.srs
    out = _SWAPPED.get(key)
    if out is None:
        axes = crs.axis_info
        out = _SWAPPED[key] = len(axes) >= 2 and axes[0].direction.lower() in ("north", "south")
    return out


@dataclass(frozen=True)
class _Area:
    """A query area in the layer CRS: its geometry, bounds, and (for a box) an axis-aligned
    rectangle inside it, within which an R-tree box is a hit without an exact test."""

    geom: shapely.Geometry
    bounds: tuple[float, float, float, float]
    inner: tuple[float, float, float, float] | None
    is_box: bool = False


def _box_area(bbox: list[float], crs: pyproj.CRS, layer_crs: pyproj.CRS) -> _Area:
    """The area of a bbox given in ``crs`` (in that CRS's axis order), in the layer CRS.

    A box in another CRS is not a box in the layer's: its edges are densified and transformed
    point by point, so the area is exact up to the densification (~1/32 of an edge).
    """
    if len(bbox) == 6:
        bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
    if len(bbox) != 4:
        raise StoreQueryError("bbox needs 4 (or 6) numbers")
    try:
        x0, y0, x1, y1 = (float(v) for v in bbox)
    except (TypeError, ValueError) as err:
        raise StoreQueryError(f"bbox values must be numbers: {bbox!r}") from err
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise StoreQueryError("bbox values must be finite")
    if x0 > x1 or y0 > y1:
        raise StoreQueryError("bbox minimum above maximum (antimeridian boxes are not supported)")
    if _swapped(crs):
        x0, y0, x1, y1 = y0, x0, y1, x1
    tr = _transformer(crs, layer_crs)
    if tr is None:
        if x0 < x1 and y0 < y1:
            return _Area(shapely.box(x0, y0, x1, y1), (x0, y0, x1, y1), (x0, y0, x1, y1),
                         is_box=True)
        # a box without area is a line or a point
        geom = shapely.Point(x0, y0) if (x0, y0) == (x1, y1) else \
            shapely.LineString([(x0, y0), (x1, y1)])
        return _Area(geom, (x0, y0, x1, y1), None)
    t = np.linspace(0.0, 1.0, DENSIFY + 1)
    xs = x0 + (x1 - x0) * t
    ys = y0 + (y1 - y0) * t
    edges = [  # counter-clockwise: bottom, right, top, left (each without its last point)
        (xs[:-1], np.full(DENSIFY, y0)), (np.full(DENSIFY, x1), ys[:-1]),
        (xs[::-1][:-1], np.full(DENSIFY, y1)), (np.full(DENSIFY, x0), ys[::-1][:-1])]
    parts = []
    for ex, ey in edges:
        X, Y = tr.transform(ex, ey)
        parts.append(np.column_stack([X, Y]))
    if not all(np.isfinite(p).all() for p in parts):
        raise StoreQueryError("bbox lies outside the area of use of the layer CRS")
    ring = np.vstack(parts)
    geom = shapely.Polygon(ring)
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    bottom, right, top, left = parts  # each starts at a corner: LL, LR, UR, UL
    # The image of a box in a nearby projection is nearly a box: the rectangle between its
    # edges (corners included) lies inside it, which is checked, not assumed.
    inner = (max(left[:, 0].max(), bottom[0, 0]), max(bottom[:, 1].max(), right[0, 1]),
             min(right[:, 0].min(), top[0, 0]), min(top[:, 1].min(), left[0, 1]))
    if not (inner[0] < inner[2] and inner[1] < inner[3]
            and shapely.covers(geom, shapely.box(*inner))):
        inner = None
    return _Area(geom, tuple(float(v) for v in geom.bounds), inner)


def _geom_area(geom: shapely.Geometry, crs: pyproj.CRS, layer_crs: pyproj.CRS) -> _Area:
    """The area of a geometry literal (vertices transformed as they are) in the layer CRS."""
    if _swapped(crs):
        geom = shapely.transform(geom, lambda c: c[:, ::-1])
    tr = _transformer(crs, layer_crs)
    if tr is not None:
        geom = shapely.transform(geom, lambda x, y: tr.transform(x, y), interleaved=False)
        if not np.isfinite(shapely.get_coordinates(geom)).all():
            raise StoreQueryError("geometry lies outside the area of use of the layer CRS")
    if geom.is_empty:
        raise StoreQueryError("empty geometry in the filter")
    if not geom.is_valid:
        raise StoreQueryError(f"invalid geometry in the filter: {shapely.is_valid_reason(geom)}")
    return _Area(geom, tuple(float(v) for v in geom.bounds), None)


_ENVELOPE_BYTES = (0, 32, 48, 48, 64, 0, 0, 0)  # by the envelope indicator of the GPKG flags byte


def _gpkg_wkb(blob: bytes | None) -> bytes | None:
    """The WKB inside a GeoPackage geometry blob (header and optional envelope stripped)."""
    if blob is None:
        return None
    return blob[8 + _ENVELOPE_BYTES[(blob[3] >> 1) & 7]:]


class _Output:
    """How coordinates leave the provider: a transformer to the output CRS (or none) and the
    rounding (1e-7 for degrees, 1e-3 for metres; heights to the millimetre)."""

    def __init__(self, transformer: pyproj.Transformer | None, target: pyproj.CRS, swap: bool):
        self.transformer = transformer
        self.swap = swap
        self.decimals = 7 if target.is_geographic else 3

    def coords(self, a: np.ndarray) -> np.ndarray:
        """Transform and round an (N, 2) or (N, 3) array of layer-CRS coordinates."""
        if len(a) == 0:
            return a
        if self.transformer is not None:
            if a.shape[1] == 3:
                a = np.column_stack(self.transformer.transform(a[:, 0], a[:, 1], a[:, 2]))
            else:
                a = np.column_stack(self.transformer.transform(a[:, 0], a[:, 1]))
        out = np.round(a, self.decimals)
        if a.shape[1] == 3:
            out[:, 2] = np.round(a[:, 2], 3)
        if self.swap:
            out[:, [0, 1]] = out[:, [1, 0]]
        return out

    def geojson(self, geoms: np.ndarray) -> list[dict | None]:
        """GeoJSON geometry objects for an array of layer-CRS geometries (``None`` stays None).

        Points, lines, polygons and their multi forms go through one coordinate array (one
        pyproj call, one ``tolist``); anything else (collections, empties) through GEOS's
        GeoJSON writer.
        """
        out: list[dict | None] = [None] * len(geoms)
        if not len(geoms):
            return out
        types = shapely.get_type_id(geoms)
        present = types >= 0
        simple = present & (types != 2) & (types != 7) & ~shapely.is_empty(geoms)
        has_z = shapely.has_z(geoms)
        for z in (False, True):
            sel = np.flatnonzero(simple & (has_z == z))
            if len(sel) and not self._fill(out, geoms[sel], types[sel], sel, z):
                simple[sel] = False
        for i in np.flatnonzero(present & ~simple):
            g = shapely.transform(geoms[i], self.coords, include_z=bool(has_z[i]))
            out[i] = orjson.loads(shapely.to_geojson(g))
        return out

    def _fill(self, out, geoms, types, where, z) -> bool:
        coords = self.coords(shapely.get_coordinates(geoms, include_z=z)).tolist()
        parts, part_of = shapely.get_parts(geoms, return_index=True)
        part_types = shapely.get_type_id(parts)
        polys = parts[part_types == 3]
        holes = shapely.get_num_interior_rings(polys)
        if holes.any():
            ring_sizes = shapely.get_num_coordinates(shapely.get_rings(polys)).tolist()
        else:  # no holes (most footprints): a polygon's coordinates are its exterior ring's
            ring_sizes = shapely.get_num_coordinates(polys).tolist()
        ring_counts = (holes + 1).tolist()
        if sum(ring_counts) != len(ring_sizes):
            return False  # an empty polygon inside a multipolygon: let GEOS write it
        part_coords = []
        p = r = k = 0
        for t, n in zip(part_types.tolist(), shapely.get_num_coordinates(parts).tolist()):
            if t == 3:
                poly = []
                for _ in range(ring_counts[k]):
                    m = ring_sizes[r]
                    poly.append(coords[p:p + m])
                    p += m
                    r += 1
                k += 1
                part_coords.append(poly)
            elif t == 0:
                part_coords.append(coords[p])
                p += 1
            else:
                part_coords.append(coords[p:p + n])
                p += n
        if p != len(coords):
            return False
        counts = np.bincount(part_of, minlength=len(geoms)).tolist()
        q = 0
        for i, t, n in zip(where.tolist(), types.tolist(), counts):
            if t <= 3:
                out[i] = {"type": _GEOJSON_TYPES[t], "coordinates": part_coords[q]}
            else:
                out[i] = {"type": _GEOJSON_TYPES[t], "coordinates": part_coords[q:q + n]}
            q += n
        return True


_GEOJSON_TYPES = {0: "Point", 1: "LineString", 3: "Polygon", 4: "MultiPoint",
                  5: "MultiLineString", 6: "MultiPolygon"}


# -- exact spatial tests inside SQLite ------------------------------------------------------

# A spatial predicate of a running GeoPackage query: token -> (test, prepared query geometry,
# results by feature id, as the count and the page statements test the same features). The
# token is bound into the SQL, so statements stay cacheable and threads never share state.
_MATCHERS: dict[int, tuple[Callable, shapely.Geometry, dict]] = {}
_TOKENS = itertools.count(1)

# Each test takes (query geometry, feature geometry): the prepared geometry goes first.
_TESTS: dict[str, Callable] = {
    "intersects": shapely.intersects,
    "within": shapely.contains,      # feature within area == area contains feature
    "contains": shapely.within,      # feature contains area == area within feature
    "touches": shapely.touches,
    "crosses": shapely.crosses,
    "overlaps": shapely.overlaps,
    "equals": shapely.equals,
}


def _sqlite_match(token: int, fid: Any, blob: bytes | None) -> int | None:
    """SQLite function ``ngis_match(token, fid, geom)``: the exact test of a query's spatial
    predicate on one feature (called only for R-tree candidates not already decided by their
    box)."""
    entry = _MATCHERS.get(token)
    if entry is None or blob is None:
        return None
    test, area, done = entry
    hit = done.get(fid)
    if hit is None:
        geom = shapely.from_wkb(_gpkg_wkb(blob))
        try:
            hit = done[fid] = int(test(area, geom))
        except GEOSException:
            hit = done[fid] = int(test(area, shapely.make_valid(geom)))
    return hit


@contextlib.contextmanager
def _registered(matchers: list[int]) -> Iterator[None]:
    try:
        yield
    finally:
        for token in matchers:
            _MATCHERS.pop(token, None)


# -- SQL building -----------------------------------------------------------------------------

@dataclass
class _Field:
    """A property column: its JSON type, format, and how its values leave the database."""

    name: str
    type: str  # string, integer, number, boolean
    format: str | None = None
    sql_type: str = ""

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.format:
            out["format"] = self.format
        return out


class _Sql:
    """Bound parameters of one statement, in the dialect's placeholder style."""

    def __init__(self, placeholder: str):
        self.placeholder = placeholder
        self.params: list[Any] = []
        self.matchers: list[int] = []

    def bind(self, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool) and \
                not -_MAX_INT - 1 <= value <= _MAX_INT:
            value = float(value)  # beyond 64-bit integers: compares right, cannot overflow
        self.params.append(value)
        return self.placeholder


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Layer:
    """What every request on one table shares: schema, CRS, SQL pieces, connections."""

    placeholder = "?"
    kind = ""

    def __init__(self, data: str, table: str):
        self.data = data
        self.table = table
        self.pk = "fid"
        self.geom_col = "geom"
        self.crs: pyproj.CRS = pyproj.CRS.from_epsg(4326)
        self.fields: dict[str, _Field] = {}
        self.loaded_at = time.monotonic()

    # Backends fill these in.
    def connection(self):  # context manager yielding a DB-API connection
        raise NotImplementedError

    def table_sql(self) -> str:
        raise NotImplementedError

    def geom_select(self) -> str:
        raise NotImplementedError

    def spatial(self, op: str, area: _Area, sql: _Sql, negated: bool) -> str:
        raise NotImplementedError

    def like(self, lhs: str, tokens: list[tuple[str, str]], nocase: bool, sql: _Sql) -> str:
        raise NotImplementedError

    def contains_text(self, col: str, term: str, sql: _Sql) -> str:
        raise NotImplementedError

    def order_term(self, col: str, field: _Field | None, descending: bool) -> str:
        return f"{col} {'DESC' if descending else 'ASC'} NULLS LAST"

    def wkb(self, value) -> bytes | None:
        raise NotImplementedError

    def unfiltered_count(self, con) -> int | None:
        return None

    def converters(self, names: list[str]) -> list[tuple[int, Callable]]:
        """(index, function) for the columns whose database values are not JSON values yet."""
        return []

    def execute(self, sql_text: str, params: list[Any]) -> list[tuple]:
        with self.connection() as con:
            cur = con.cursor()
            try:
                cur.execute(sql_text, params)
                return cur.fetchall()
            finally:
                cur.close()


def _sqlite_field(name: str, decl: str) -> _Field | None:
    t = decl.upper().split("(")[0].strip()
    if t in ("INTEGER", "INT", "MEDIUMINT", "SMALLINT", "TINYINT", "BIGINT"):
        return _Field(name, "integer", sql_type=t)
    if t in ("REAL", "FLOAT", "DOUBLE", "NUMERIC"):
        return _Field(name, "number", sql_type=t)
    if t == "BOOLEAN":
        return _Field(name, "boolean", sql_type=t)
    if t == "DATE":
        return _Field(name, "string", "date", sql_type=t)
    if t == "DATETIME":
        return _Field(name, "string", "date-time", sql_type=t)
    if t in ("TEXT", "VARCHAR", ""):
        return _Field(name, "string", sql_type=t or "TEXT")
    return None  # BLOB and friends are not properties


_LOCAL = threading.local()


class _GpkgLayer(_Layer):
    """A GDAL-written GeoPackage feature table with its R-tree."""

    placeholder = "?"
    kind = "gpkg"

    def __init__(self, path: str, table: str, signature: tuple):
        super().__init__(path, table)
        self.path = path
        self.signature = signature
        self.uri = Path(path).absolute().as_uri() + "?mode=ro"
        with contextlib.closing(sqlite3.connect(self.uri, uri=True)) as con:
            try:
                row = con.execute("SELECT data_type FROM gpkg_contents WHERE table_name = ?",
                                  (table,)).fetchone()
            except sqlite3.DatabaseError as err:
                raise ProviderConnectionError(f"{path}: not a GeoPackage ({err})") from err
            if row is None:
                raise ProviderConnectionError(f"{path}: no layer {table!r}")
            if row[0] != "features":
                raise ProviderConnectionError(f"{path}: {table!r} is {row[0]}, not features")
            geom = con.execute("SELECT column_name, srs_id FROM gpkg_geometry_columns WHERE "
                               "table_name = ?", (table,)).fetchone()
            if geom is None:
                raise ProviderConnectionError(f"{path}: {table!r} has no geometry column")
            self.geom_col, srs_id = geom
            self.crs = _gpkg_crs(con, srs_id)
            columns = con.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
            pks = [c[1] for c in columns if c[5]]
            self.pk = pks[0] if len(pks) == 1 else "rowid"
            for _, name, decl, _, _, pk in columns:
                if name == self.geom_col:
                    continue
                field = _sqlite_field(name, decl)
                if field is not None:
                    self.fields[name] = field
            rtree = f"rtree_{table}_{self.geom_col}"
            self.rtree = _quote(rtree) if con.execute(
                "SELECT 1 FROM sqlite_master WHERE name = ?", (rtree,)).fetchone() else None
            self.has_ogr_count = bool(con.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'gpkg_ogr_contents'").fetchone())
        self.booleans = {n for n, f in self.fields.items() if f.type == "boolean"}

    @contextlib.contextmanager
    def connection(self):
        cons = getattr(_LOCAL, "sqlite", None)
        if cons is None:
            cons = _LOCAL.sqlite = {}
        entry = cons.get(self.path)
        if entry is None or entry[0] != self.signature:
            if entry is not None:
                entry[1].close()
            con = sqlite3.connect(self.uri, uri=True, check_same_thread=True,
                                  cached_statements=256)
            con.execute("PRAGMA mmap_size = 268435456")
            con.execute("PRAGMA cache_size = -16384")
            con.create_function("ngis_match", 3, _sqlite_match)
            entry = cons[self.path] = (self.signature, con)
        try:
            yield entry[1]
        except sqlite3.OperationalError as err:
            if "user-defined function" in str(err):
                raise ProviderGenericError(f"spatial test failed: {err}") from err
            raise ProviderGenericError(f"GeoPackage query failed: {err}") from err

    def table_sql(self) -> str:
        return _quote(self.table)

    def geom_select(self) -> str:
        return _quote(self.geom_col)

    def wkb(self, value):
        return _gpkg_wkb(value)

    def spatial(self, op, area, sql, negated):
        # Parameters are bound in the order they appear in the SQL text.
        pk, geom = _quote(self.pk), _quote(self.geom_col)
        token = next(_TOKENS)
        area_geom = area.geom
        shapely.prepare(area_geom)
        _MATCHERS[token] = (_TESTS[op], area_geom, {})
        sql.matchers.append(token)
        if self.rtree is None:  # no spatial index: every feature is tested (correct, slow)
            expr = f"ngis_match({sql.bind(token)}, {pk}, {geom})"
        else:
            x0, y0, x1, y1 = area.bounds
            if op == "contains":  # the feature's box must hold the area's box
                cand = (f"minx <= {sql.bind(x0)} AND maxx >= {sql.bind(x1)} AND "
                        f"miny <= {sql.bind(y0)} AND maxy >= {sql.bind(y1)}")
            else:
                cand = (f"minx <= {sql.bind(x1)} AND maxx >= {sql.bind(x0)} AND "
                        f"miny <= {sql.bind(y1)} AND maxy >= {sql.bind(y0)}")
            expr = f"{pk} IN (SELECT id FROM {self.rtree} WHERE {cand}) AND "
            if op == "intersects" and area.inner is not None:
                # R-tree boxes are float32 rounded outwards, so a stored box inside the inner
                # rectangle means the feature is inside it too: a hit without the exact test.
                a0, b0, a1, b1 = area.inner
                expr += (f"({pk} IN (SELECT id FROM {self.rtree} WHERE minx >= {sql.bind(a0)} "
                         f"AND maxx <= {sql.bind(a1)} AND miny >= {sql.bind(b0)} AND "
                         f"maxy <= {sql.bind(b1)}) OR ngis_match({sql.bind(token)}, {pk}, {geom}))")
            else:
                expr += f"ngis_match({sql.bind(token)}, {pk}, {geom})"
        if negated:  # keep SQL's NULL for a missing geometry, as PostGIS does
            return f"(CASE WHEN {geom} IS NULL THEN NULL ELSE ({expr}) END)"
        return f"({expr})"

    def like(self, lhs, tokens, nocase, sql):
        # GLOB is case-sensitive (LIKE is not, in SQLite); its metacharacters are escaped.
        out = []
        for kind, ch in tokens:
            if kind == "any":
                out.append("*")
            elif kind == "one":
                out.append("?")
            else:
                out.append({"*": "[*]", "?": "[?]", "[": "[[]"}.get(ch, ch))
        pattern = "".join(out)
        if nocase:
            return f"(lower({lhs}) GLOB {sql.bind(pattern.lower())})"
        return f"({lhs} GLOB {sql.bind(pattern)})"

    def contains_text(self, col, term, sql):
        return f"instr(lower({col}), {sql.bind(term.lower())}) > 0"

    def unfiltered_count(self, con):
        if not self.has_ogr_count:
            return None
        row = con.execute("SELECT feature_count FROM gpkg_ogr_contents WHERE "
                          "lower(table_name) = lower(?)", (self.table,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def converters(self, names):
        return [(i, _to_bool) for i, n in enumerate(names) if n in self.booleans]


def _gpkg_crs(con: sqlite3.Connection, srs_id: int) -> pyproj.CRS:
    row = con.execute("SELECT organization, organization_coordsys_id, definition FROM "
                      "gpkg_spatial_ref_sys WHERE srs_id = ?", (srs_id,)).fetchone()
    if row is None:
        raise ProviderConnectionError(f"srs_id {srs_id} is not in gpkg_spatial_ref_sys")
    org, code, definition = row
    try:
        if org and code and str(org).upper() != "NONE":
            return pyproj.CRS.from_authority(str(org).upper(), str(code))
        return pyproj.CRS.from_wkt(definition)
    except pyproj.exceptions.CRSError as err:
        raise ProviderConnectionError(f"unusable CRS for srs_id {srs_id}: {err}") from err


def _to_bool(v):
    return None if v is None else bool(v)


def _pg_field(name: str, data_type: str) -> _Field | None:
    t = data_type.lower()
    if t in ("bigint", "integer", "smallint"):
        return _Field(name, "integer", sql_type=t)
    if t in ("double precision", "real", "numeric"):
        return _Field(name, "number", sql_type=t)
    if t == "boolean":
        return _Field(name, "boolean", sql_type=t)
    if t in ("text", "character varying", "character"):
        return _Field(name, "string", sql_type=t)
    if t == "date":
        return _Field(name, "string", "date", sql_type=t)
    if t.startswith("timestamp"):
        return _Field(name, "string", "date-time", sql_type=t)
    return None


def _pg_number(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _pg_iso(v):
    return None if v is None else v.isoformat()


class _PgPool:
    """psycopg2's ThreadedConnectionPool behind a semaphore: callers wait for a free connection
    instead of failing when every one is busy. Connections are read-only and autocommit.

    psycopg2 keeps only ``minconn`` idle connections (it closes any other returned to it), so
    ``minconn`` is the pool size: connections are opened once and reused.
    """

    def __init__(self, dsn: str, size: int):
        from psycopg2.pool import ThreadedConnectionPool

        self.pool = ThreadedConnectionPool(size, size, dsn, connect_timeout=10)
        self.slots = threading.BoundedSemaphore(size)

    @contextlib.contextmanager
    def connection(self):
        import psycopg2

        self.slots.acquire()
        try:
            con = self.pool.getconn()
            broken = False
            try:
                if not con.autocommit:
                    con.set_session(readonly=True, autocommit=True)
                yield con
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                broken = True
                raise
            finally:
                self.pool.putconn(con, close=broken or bool(con.closed))
        finally:
            self.slots.release()


_POOLS: dict[str, _PgPool] = {}


class _PostgisLayer(_Layer):
    """A table of a PostGIS store (``fid`` primary key, ``geom`` with a GiST index)."""

    placeholder = "%s"
    kind = "postgis"

    def __init__(self, url: str, table: str, pool_size: int):
        from gis.store.postgis import _redact, _split_url

        super().__init__(url, table)
        dsn, self.schema = _split_url(url)
        self.label = _redact(url)
        with _CACHE_LOCK:
            pool = _POOLS.get(dsn)
            if pool is None:
                try:
                    pool = _POOLS[dsn] = _PgPool(dsn, pool_size)
                except Exception as err:
                    raise ProviderConnectionError(f"cannot connect to {self.label}: "
                                                  f"{str(err).strip().splitlines()[0]}") from err
        self.pool = pool
        rows = self._schema()
        self.booleans = set()
        self.numbers = set()
        self.isos = set()
        for name, data_type in rows:
            if name == self.geom_col:
                continue
            field = _pg_field(name, data_type)
            if field is None:
                continue
            self.fields[name] = field
            if field.sql_type == "numeric" or field.type == "number":
                self.numbers.add(name)
            if field.format:
                self.isos.add(name)

    def _schema(self) -> list[tuple[str, str]]:
        import psycopg2

        try:
            with self.connection() as con, con.cursor() as cur:
                cur.execute("SELECT f_geometry_column, srid FROM geometry_columns WHERE "
                            "f_table_schema = %s AND f_table_name = %s", (self.schema, self.table))
                geom = cur.fetchone()
                if geom is None:
                    raise ProviderConnectionError(f"{self.label}: no feature table "
                                                  f"{self.schema}.{self.table}")
                self.geom_col, srid = geom
                if not srid:
                    cur.execute(f"SELECT ST_SRID({_quote(self.geom_col)}) FROM "
                                f"{self.table_sql()} LIMIT 1")
                    srid = (cur.fetchone() or [0])[0]
                self.crs = pyproj.CRS.from_epsg(srid) if srid else pyproj.CRS.from_epsg(4326)
                self.srid = srid
                cur.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON "
                            "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE "
                            "i.indrelid = to_regclass(%s) AND i.indisprimary",
                            (f"{_quote(self.schema)}.{_quote(self.table)}",))
                pks = [r[0] for r in cur.fetchall()]
                self.pk = pks[0] if len(pks) == 1 else "ctid"
                cur.execute("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = %s AND table_name = %s ORDER BY "
                            "ordinal_position", (self.schema, self.table))
                return cur.fetchall()
        except psycopg2.Error as err:
            raise ProviderConnectionError(f"{self.label}: {str(err).strip().splitlines()[0]}"
                                          ) from err

    @contextlib.contextmanager
    def connection(self):
        import psycopg2

        try:
            with self.pool.connection() as con:
                yield con
        except psycopg2.DataError as err:  # e.g. division by zero in a filter expression
            raise StoreQueryError(str(err).strip().splitlines()[0]) from err
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as err:
            raise ProviderConnectionError(f"{self.label}: {str(err).strip().splitlines()[0]}"
                                          ) from err
        except psycopg2.Error as err:
            _LAYERS.pop((self.data, self.table), None)  # the table may have changed: re-read
            raise ProviderGenericError(f"PostGIS query failed: "
                                       f"{str(err).strip().splitlines()[0]}") from err

    def execute(self, sql_text, params):
        import psycopg2

        for attempt in range(3):  # pooled connections may have died with a server restart
            try:
                return super().execute(sql_text, params)
            except ProviderConnectionError as err:
                if attempt == 2 or not isinstance(err.__cause__, psycopg2.OperationalError):
                    raise
        raise AssertionError("unreachable")

    def table_sql(self):
        return f"{_quote(self.schema)}.{_quote(self.table)}"

    def geom_select(self):
        return f"ST_AsBinary({_quote(self.geom_col)})"

    def wkb(self, value):
        return None if value is None else bytes(value)

    def _area_sql(self, area: _Area, sql: _Sql) -> str:
        import psycopg2

        if area.is_box:
            x0, y0, x1, y1 = area.bounds
            return (f"ST_MakeEnvelope({sql.bind(x0)}, {sql.bind(y0)}, {sql.bind(x1)}, "
                    f"{sql.bind(y1)}, {sql.bind(self.srid)})")
        return (f"ST_GeomFromWKB({sql.bind(psycopg2.Binary(shapely.to_wkb(area.geom)))}, "
                f"{sql.bind(self.srid)})")

    def spatial(self, op, area, sql, negated):
        geom = _quote(self.geom_col)
        func = {"intersects": "ST_Intersects", "within": "ST_Within", "contains": "ST_Contains",
                "touches": "ST_Touches", "crosses": "ST_Crosses", "overlaps": "ST_Overlaps",
                "equals": "ST_Equals"}[op]
        if op == "intersects" and area.is_box:
            box = self._area_sql(area, sql)
            return f"({geom} && {box} AND ST_Intersects({geom}, {self._area_sql(area, sql)}))"
        return f"{func}({geom}, {self._area_sql(area, sql)})"

    def like(self, lhs, tokens, nocase, sql):
        out = []
        for kind, ch in tokens:
            if kind == "any":
                out.append("%")
            elif kind == "one":
                out.append("_")
            else:
                out.append("\\" + ch if ch in "%_\\" else ch)
        op = "ILIKE" if nocase else "LIKE"
        return f"({lhs} {op} {sql.bind(''.join(out))} ESCAPE '\\')"

    def contains_text(self, col, term, sql):
        return f"strpos(lower({col}), {sql.bind(term.lower())}) > 0"

    def order_term(self, col, field, descending):
        if field is not None and field.type == "string" and not field.format:
            col = f'{col} COLLATE "C"'  # code-point order, as SQLite and Python sort
        return f"{col} {'DESC' if descending else 'ASC'} NULLS LAST"

    def converters(self, names):
        out = []
        for i, n in enumerate(names):
            if n in self.numbers:
                out.append((i, _pg_number))
            elif n in self.isos:
                out.append((i, _pg_iso))
        return out


_LAYERS: dict[tuple[str, str], _Layer] = {}


def _layer(data: str, table: str, options: dict) -> _Layer:
    """The shared layer of (store, table), built on first use and when the store changed."""
    key = (data, table)
    if data.startswith(("postgresql://", "postgres://", "postgresql+psycopg2://")):
        layer = _LAYERS.get(key)
        if layer is None or time.monotonic() - layer.loaded_at > SCHEMA_TTL:
            pool_size = int(options.get("pool_size", DEFAULT_POOL_SIZE))
            layer = _LAYERS[key] = _PostgisLayer(data, table, pool_size)
        return layer
    try:
        st = os.stat(data)
    except OSError as err:
        raise ProviderConnectionError(f"no GeoPackage at {data}") from err
    signature = (st.st_ino, st.st_mtime_ns, st.st_size)
    layer = _LAYERS.get(key)
    if layer is None or layer.signature != signature:  # type: ignore[attr-defined]
        layer = _LAYERS[key] = _GpkgLayer(data, table, signature)
    return layer


# -- CQL2 -------------------------------------------------------------------------------------

def _json_bbox_scrambled() -> bool:
    """Whether pygeofilter's CQL2-JSON parser fills ``Envelope(x1, x2, y1, y2)`` with a bbox's
    ``[minx, miny, maxx, maxy]`` in order (geopython/pygeofilter#163, so in 0.4.0)."""
    from pygeofilter.parsers.cql2_json import parse

    node = parse('{"op": "s_intersects", "args": [{"property": "g"}, {"bbox": [0, 1, 2, 3]}]}')
    return node.rhs.x2 == 1


_ENVELOPE_SCRAMBLED = _json_bbox_scrambled()

_COMPARISONS = {ast.ComparisonOp.EQ: "=", ast.ComparisonOp.NE: "<>", ast.ComparisonOp.LT: "<",
                ast.ComparisonOp.LE: "<=", ast.ComparisonOp.GT: ">", ast.ComparisonOp.GE: ">="}
_FLIP = {"within": "contains", "contains": "within"}


class _Where:
    """Translates query arguments and a pygeofilter AST into one SQL condition with bound
    parameters. Property names are checked against the schema; every value is bound."""

    def __init__(self, provider: StoreFeatureProvider, sql: _Sql, filter_crs: str | None):
        self.p = provider
        self.layer = provider.layer
        self.sql = sql
        self.filter_crs = _crs(filter_crs or DEFAULT_CRS)
        self.geom_names = {"geometry", self.layer.geom_col}
        if provider.geom_field:
            self.geom_names.add(provider.geom_field)

    # names and values
    def column(self, name: str) -> tuple[str, _Field]:
        field = self.p.queryable.get(name)
        if field is None:
            raise StoreQueryError(f"unknown property {name!r}")
        return _quote(name), field

    def value(self, v: Any, field: _Field | None) -> Any:
        """Check a literal against the type of what it is compared with, and bind it."""
        if v is None:
            raise StoreQueryError("null is not a comparable value (use IS NULL)")
        if isinstance(v, (values.Geometry, values.Envelope, list, dict, values.Interval,
                          dt.timedelta)):
            raise StoreQueryError(f"unsupported value {v!r} in a comparison")
        t = field.type if field is not None else None
        if t in ("integer", "number"):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise StoreQueryError(f"{field.name!r} is a number; got {v!r}")
        elif t == "boolean":
            if not isinstance(v, bool):
                raise StoreQueryError(f"{field.name!r} is a boolean; got {v!r}")
        elif t == "string":
            if isinstance(v, (dt.date, dt.datetime)):
                v = v.isoformat() if self.layer.kind == "gpkg" or not field.format else v
            elif not isinstance(v, str):
                raise StoreQueryError(f"{field.name!r} is a string; got {v!r}")
        return self.sql.bind(v)

    def operand(self, node: Any) -> tuple[str | None, _Field | None]:
        """SQL of an attribute or expression (``None`` for a literal) and its field type."""
        if isinstance(node, ast.Attribute):
            if node.name in self.geom_names:
                raise StoreQueryError(f"{node.name!r} can only be used in spatial predicates")
            return self.column(node.name)
        if isinstance(node, ast.Function):
            if node.name.lower() in ("lower", "casei", "upper") and len(node.arguments) == 1:
                inner, field = self.operand(node.arguments[0])
                if inner is None:
                    return None, None
                if field.type != "string":
                    raise StoreQueryError(f"{node.name}() needs a string property")
                func = "upper" if node.name.lower() == "upper" else "lower"
                return f"{func}({inner})", _Field(field.name, "string")
            raise StoreQueryError(f"unsupported function {node.name!r}")
        if isinstance(node, ast.Arithmetic):
            lhs, lf = self.operand(node.lhs)
            rhs, rf = self.operand(node.rhs)
            number = _Field("expression", "number")
            for f in (lf, rf):
                if f is not None and f.type not in ("integer", "number"):
                    raise StoreQueryError(f"arithmetic on non-numeric property {f.name!r}")
            lhs = lhs if lhs is not None else self.value(node.lhs, number)
            rhs = rhs if rhs is not None else self.value(node.rhs, number)
            return f"({lhs} {node.op.value} {rhs})", number
        if isinstance(node, ast.Node):
            raise StoreQueryError(f"unsupported expression {type(node).__name__}")
        return None, None

    def pair(self, a: Any, b: Any) -> tuple[str, str]:
        sa, fa = self.operand(a)
        sb, fb = self.operand(b)
        if sa is None and sb is None:
            raise StoreQueryError("a comparison needs a property")
        if sa is None:
            sa = self.value(a, fb)
        if sb is None:
            sb = self.value(b, fa)
        return sa, sb

    # conditions
    def node(self, n: Any, negated: bool = False) -> str:
        if isinstance(n, ast.And):
            return f"({self.node(n.lhs, negated)} AND {self.node(n.rhs, negated)})"
        if isinstance(n, ast.Or):
            return f"({self.node(n.lhs, negated)} OR {self.node(n.rhs, negated)})"
        if isinstance(n, ast.Not):
            return f"(NOT {self.node(n.sub_node, not negated)})"
        if isinstance(n, ast.Comparison):
            lhs, rhs = self.pair(n.lhs, n.rhs)
            return f"({lhs} {_COMPARISONS[n.op]} {rhs})"
        if isinstance(n, ast.Between):
            lhs, field = self.operand(n.lhs)
            if lhs is None:
                raise StoreQueryError("BETWEEN needs a property")
            low, high = self.value(n.low, field), self.value(n.high, field)
            return f"({lhs} {'NOT ' if n.not_ else ''}BETWEEN {low} AND {high})"
        if isinstance(n, ast.In):
            lhs, field = self.operand(n.lhs)
            if lhs is None:
                raise StoreQueryError("IN needs a property")
            if not n.sub_nodes:
                raise StoreQueryError("IN needs at least one value")
            items = ", ".join(self.value(v, field) for v in n.sub_nodes)
            return f"({lhs} {'NOT ' if n.not_ else ''}IN ({items}))"
        if isinstance(n, ast.Like):
            lhs, field = self.operand(n.lhs)
            if lhs is None or field.type != "string":
                raise StoreQueryError("LIKE needs a string property")
            if not isinstance(n.pattern, str):
                raise StoreQueryError("LIKE needs a string pattern")
            cond = self.layer.like(lhs, _like_tokens(n), n.nocase, self.sql)
            return f"(NOT {cond})" if n.not_ else cond
        if isinstance(n, ast.IsNull):
            if isinstance(n.lhs, ast.Attribute) and n.lhs.name in self.geom_names:
                lhs = _quote(self.layer.geom_col)
            else:
                lhs, _ = self.operand(n.lhs)
                if lhs is None:
                    raise StoreQueryError("IS NULL needs a property")
            return f"({lhs} IS {'NOT ' if n.not_ else ''}NULL)"
        if isinstance(n, ast.Include):
            return "(1 = 0)" if n.not_ else "(1 = 1)"
        if isinstance(n, ast.SpatialComparisonPredicate):
            return self.spatial(n.op.name.lower(), n.lhs, n.rhs, negated)
        if isinstance(n, ast.BBox):
            self.geometry_attribute(n.lhs)
            crs = _crs(n.crs) if n.crs else self.filter_crs
            area = _box_area([n.minx, n.miny, n.maxx, n.maxy], crs, self.layer.crs)
            return self.layer.spatial("intersects", area, self.sql, negated)
        raise StoreQueryError(f"unsupported filter: {type(n).__name__}")

    def geometry_attribute(self, node: Any) -> bool:
        if isinstance(node, ast.Attribute):
            if node.name in self.geom_names:
                return True
            raise StoreQueryError(f"{node.name!r} is not the geometry property")
        return False

    def spatial(self, op: str, lhs: Any, rhs: Any, negated: bool) -> str:
        if not self.geometry_attribute(lhs):
            if not self.geometry_attribute(rhs):
                raise StoreQueryError("a spatial predicate needs the geometry property")
            lhs, rhs = rhs, lhs
            op = _FLIP.get(op, op)
        area = self.area(rhs)
        if op == "disjoint":
            return f"(NOT {self.layer.spatial('intersects', area, self.sql, not negated)})"
        return self.layer.spatial(op, area, self.sql, negated)

    def area(self, node: Any) -> _Area:
        if isinstance(node, values.Geometry):
            geojson = dict(node.geometry)
            crs_name = (geojson.pop("crs", None) or {}).get("properties", {}).get("name")
            crs = _crs(crs_name) if crs_name else self.filter_crs
            try:
                geom = shapely.geometry.shape(geojson)
            except Exception as err:
                raise StoreQueryError(f"bad geometry in the filter: {err}") from err
            return _geom_area(geom, crs, self.layer.crs)
        if isinstance(node, values.Envelope):
            return _box_area(_envelope_bbox(node), self.filter_crs, self.layer.crs)
        if isinstance(node, ast.Function) and node.name.lower() == "bbox":
            args = node.arguments
            if len(args) not in (4, 6) or not all(
                    isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
                raise StoreQueryError("BBOX() needs 4 or 6 numbers")
            return _box_area(list(args), self.filter_crs, self.layer.crs)
        raise StoreQueryError(f"unsupported spatial operand {node!r}")


def _envelope_bbox(env: values.Envelope) -> list[float]:
    """[minx, miny, maxx, maxy] of a pygeofilter Envelope.

    pygeofilter's own order is (x1=minx, x2=maxx, y1=miny, y2=maxy) (CQL2-text ``ENVELOPE``);
    its CQL2-JSON parser (0.4.0) stores ``{"bbox": [minx, miny, maxx, maxy]}`` in that order
    instead. A reading whose minimum exceeds its maximum is the wrong one; when both readings
    are boxes the CQL2-JSON one is taken, as ``{"bbox": ...}`` is the standard literal.
    """
    json_reading = [env.x1, env.x2, env.y1, env.y2]
    own_reading = [env.x1, env.y1, env.x2, env.y2]
    if _ENVELOPE_SCRAMBLED and json_reading[0] <= json_reading[2] and \
            json_reading[1] <= json_reading[3]:
        return json_reading
    return own_reading


def _like_tokens(node: ast.Like) -> list[tuple[str, str]]:
    """A LIKE pattern as ('any'|'one'|'lit', char) tokens. CQL2: ``%`` any run, ``_`` one
    character, ``\\`` escapes. (pygeofilter reports ``.`` as the single-character wildcard;
    CQL2 has ``_``, and a ``.`` is literal.)"""
    single = "_" if node.singlechar in (".", None) else node.singlechar
    wildcard = node.wildcard or "%"
    escape = node.escapechar or "\\"
    out = []
    chars = iter(node.pattern)
    for ch in chars:
        if ch == escape:
            out.append(("lit", next(chars, escape)))
        elif ch == wildcard:
            out.append(("any", ch))
        elif ch == single:
            out.append(("one", ch))
        else:
            out.append(("lit", ch))
    return out


def _text_value(value: str, field: _Field) -> Any:
    """A query-string value (always text) as a value of the property's type."""
    try:
        if field.type == "integer":
            return int(value)
        if field.type == "number":
            return float(value)
    except ValueError as err:
        raise StoreQueryError(f"{field.name!r} is a number; got {value!r}") from err
    if field.type == "boolean":
        low = str(value).strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise StoreQueryError(f"{field.name!r} is a boolean; got {value!r}")
    return value


# -- the provider -----------------------------------------------------------------------------

class StoreFeatureProvider(BaseProvider):
    """OGC API Features over one vector layer of a base-map store (GeoPackage or PostGIS).

    Supports bbox (R-tree / GiST, then exact), property equality, ``q`` (substring of any
    string property, case-insensitive, comma-separated terms OR'd), ``sortby``, ``properties``,
    ``skipGeometry``, ``resulttype=hits``, ``datetime`` on ``time_field``, CQL2 (comparisons,
    AND/OR/NOT, LIKE, IN, BETWEEN, IS NULL, arithmetic, CASEI, and the spatial predicates
    S_INTERSECTS, S_DISJOINT, S_WITHIN, S_CONTAINS, S_TOUCHES, S_CROSSES, S_OVERLAPS, S_EQUALS
    and BBOX on geometry/bbox literals) and output in any configured CRS.
    """

    def __init__(self, provider_def: dict):
        super().__init__(provider_def)
        self.table = provider_def.get("table")
        if not self.table:
            raise ProviderConnectionError("StoreFeatureProvider needs 'table'")
        self.data = str(self.data)
        self.layer = _layer(self.data, self.table, self.options or {})
        self.id_field = self.id_field or self.layer.pk
        if self.id_field not in self.layer.fields and self.id_field != self.layer.pk:
            raise ProviderConnectionError(f"id_field {self.id_field!r} is not a column of "
                                          f"{self.table!r}")
        self.geom_field = provider_def.get("geom_field")
        allowed = set(self.properties or ())
        self.queryable = {n: f for n, f in self.layer.fields.items()
                          if not allowed or n in allowed or n == self.id_field}
        if self.id_field not in self.queryable:  # e.g. GeoPackage's fid
            self.queryable[self.id_field] = _Field(self.id_field, "integer")
        self._fields = {n: f.schema() for n, f in self.queryable.items()}
        self.output_names = [n for n in self.queryable if n != self.id_field]

    def __repr__(self):
        return f"<StoreFeatureProvider> {self.layer.kind}:{self.table}"

    # -- schema ------------------------------------------------------------------------------
    def get_fields(self) -> dict:
        """Property names and JSON types (``string``, ``integer``, ``number``, ``boolean``,
        with ``format`` ``date``/``date-time`` where the column is one)."""
        return self._fields

    def get_schema(self, schema_type: SchemaType = SchemaType.item):
        """JSON Schema of a feature of the collection (GeoJSON media type)."""
        props = {n: dict(self._fields[n]) for n in self.output_names}
        return ("application/geo+json", {
            "$schema": "http://json-schema.org/draft/2019-09/schema",
            "type": "object",
            "required": ["type", "geometry", "properties"],
            "properties": {
                "type": {"type": "string", "enum": ["Feature"]},
                "id": dict(self._fields[self.id_field]),
                "geometry": {"$ref": "https://geojson.org/schema/Geometry.json"},
                "properties": {"type": "object", "properties": props},
            },
        })

    # -- queries -----------------------------------------------------------------------------
    def query(self, offset=0, limit=10, resulttype="results", bbox=None, datetime_=None,
              properties=None, sortby=None, select_properties=None, skip_geometry=False,
              q=None, filterq=None, crs_transform_spec=None, bbox_crs=None, filter_crs=None,
              **kwargs) -> dict:
        """Features matching all the given conditions, as a GeoJSON FeatureCollection.

        Args:
            offset, limit: Page (features ordered by ``sortby``, then by id).
            resulttype: ``results`` or ``hits`` (count only).
            bbox: [minx, miny, maxx, maxy] (or 6 numbers, heights ignored) in ``bbox_crs``.
            bbox_crs: CRS URI of ``bbox``; default the storage CRS, which is how pygeoapi
                passes it (already converted from the request's ``bbox-crs``).
            datetime_: Instant or ``start/end`` interval (``..`` open) on ``time_field``.
            properties: [(name, value)] equality conditions (values as text).
            sortby: [{"property": name, "order": "+"|"-"}].
            select_properties: Properties to return (default all).
            skip_geometry: Leave geometries out.
            q: Comma-separated terms, any of which a string property contains.
            filterq: pygeofilter AST (CQL2); literals in ``filter_crs`` (default CRS84) unless
                they carry their own CRS (as pygeoapi's conversion to the storage CRS sets).
            crs_transform_spec: pygeoapi's spec of the output CRS; ``None`` = storage CRS.

        Raises:
            StoreQueryError: A bad argument or unsupported filter (HTTP 400).
        """
        sql = _Sql(self.layer.placeholder)
        table = self.layer.table_sql()
        result: dict[str, Any] = {"type": "FeatureCollection", "features": []}
        # Clamped to SQL's 64-bit integers: an absurd offset is an empty page, not an overflow.
        offset = min(max(int(offset or 0), 0), _MAX_INT)
        limit = min(max(int(limit if limit is not None else 10), 0), _MAX_INT)
        with _registered(sql.matchers):  # the spatial tests registered while translating
            where = self._where(sql, bbox, bbox_crs, datetime_, properties, q, filterq,
                                filter_crs)
            where_sql = f" WHERE {' AND '.join(where)}" if where else ""
            if resulttype == "hits":
                result["numberMatched"] = self._count(table, where_sql, sql.params)
                result["numberReturned"] = 0
                return result
            names = self._select_names(select_properties)
            cols = ", ".join([_quote(self.id_field)] + [_quote(n) for n in names]
                             + ([] if skip_geometry else [self.layer.geom_select()]))
            page = (f"SELECT {cols} FROM {table}{where_sql} ORDER BY {self._order(sortby)} "
                    f"LIMIT {sql.placeholder} OFFSET {sql.placeholder}")
            LOGGER.debug("SQL: %s %s", page, sql.params)
            rows = self.layer.execute(page, [*sql.params, limit, offset])
            if self.count:
                if 0 < len(rows) < limit or (not rows and offset == 0 and limit > 0):
                    result["numberMatched"] = offset + len(rows)  # a short page ends the set
                else:
                    result["numberMatched"] = self._count(table, where_sql, sql.params)
        result["features"] = self._features(rows, names, skip_geometry, crs_transform_spec)
        result["numberReturned"] = len(result["features"])
        return result

    def get(self, identifier, crs_transform_spec=None, **kwargs) -> dict:
        """One feature by id (``ProviderItemNotFoundError`` if there is none)."""
        field = self.queryable[self.id_field]
        try:
            value = _text_value(str(identifier), field) if not isinstance(identifier, int) \
                else identifier
        except StoreQueryError as err:
            raise ProviderItemNotFoundError(f"no item {identifier!r}") from err
        sql = _Sql(self.layer.placeholder)
        names = self._select_names(None)
        cols = ", ".join([_quote(self.id_field)] + [_quote(n) for n in names]
                         + [self.layer.geom_select()])
        text = (f"SELECT {cols} FROM {self.layer.table_sql()} WHERE {_quote(self.id_field)} = "
                f"{sql.bind(value)} LIMIT 2")
        rows = self.layer.execute(text, sql.params)
        if not rows:
            raise ProviderItemNotFoundError(f"no item {identifier!r} in {self.table}")
        return self._features(rows[:1], names, False, crs_transform_spec)[0]

    # -- pieces ------------------------------------------------------------------------------
    def _where(self, sql, bbox, bbox_crs, datetime_, properties, q, filterq, filter_crs
               ) -> list[str]:
        where = []
        translate = _Where(self, sql, filter_crs)
        if bbox:
            if bbox_crs is None and isinstance(bbox, SourceBBox):
                # pygeoapi converted the box by its corners; use the box as the client sent it.
                bbox, bbox_crs = bbox.source, bbox.source_crs
            crs = _crs(bbox_crs) if bbox_crs else self.storage_crs
            area = _box_area(list(bbox), crs, self.layer.crs)
            where.append(self.layer.spatial("intersects", area, sql, False))
        for name, value in properties or ():
            col, field = translate.column(name)
            where.append(f"{col} = {sql.bind(_text_value(value, field))}")
        if datetime_ and self.time_field:
            where.append(self._datetime(translate, sql, datetime_))
        if q:
            terms = [t.strip() for t in str(q).split(",") if t.strip()]
            texts = [_quote(n) for n in self.output_names
                     if self.queryable[n].type == "string"]
            if terms and texts:
                where.append("(" + " OR ".join(self.layer.contains_text(c, t, sql)
                                               for t in terms for c in texts) + ")")
            elif terms:
                where.append("(1 = 0)")
        if filterq is not None:
            where.append(translate.node(filterq))
        return where

    def _datetime(self, translate: _Where, sql: _Sql, value: str) -> str:
        col, field = translate.column(self.time_field)
        if "/" in str(value):
            start, end = (s.strip() for s in str(value).split("/", 1))
            parts = []
            if start and start != "..":
                parts.append(f"{col} >= {sql.bind(start)}")
            if end and end != "..":
                parts.append(f"{col} <= {sql.bind(end)}")
            return f"({' AND '.join(parts) or '1 = 1'})"
        return f"({col} = {sql.bind(str(value))})"

    def _count(self, table: str, where_sql: str, params: list) -> int:
        if not where_sql:
            with self.layer.connection() as con:
                n = self.layer.unfiltered_count(con)
            if n is not None:
                return n
        return int(self.layer.execute(f"SELECT count(*) FROM {table}{where_sql}", params)[0][0])

    def _select_names(self, select_properties) -> list[str]:
        if not select_properties:
            return list(self.output_names)
        unknown = [n for n in select_properties if n not in self.queryable]
        if unknown:
            raise StoreQueryError(f"unknown properties: {', '.join(map(str, unknown))}")
        wanted = set(select_properties)
        return [n for n in self.output_names if n in wanted]

    def _order(self, sortby) -> str:
        terms = []
        for item in sortby or ():
            name = item.get("property")
            field = self.queryable.get(name)
            if field is None:
                raise StoreQueryError(f"unknown sortby property {name!r}")
            terms.append(self.layer.order_term(_quote(name), field, item.get("order") == "-"))
        terms.append(f"{_quote(self.id_field)} ASC")  # a total order, so pages never overlap
        return ", ".join(terms)

    def _features(self, rows, names, skip_geometry, crs_transform_spec) -> list[dict]:
        if not rows:
            return []
        n = len(names)
        if skip_geometry:
            geometries = [None] * len(rows)
        else:
            wkb = self.layer.wkb
            geoms = shapely.from_wkb([wkb(r[n + 1]) for r in rows])
            geometries = self._output(crs_transform_spec).geojson(geoms)
        convert = self.layer.converters(names)
        features = []
        for row, geometry in zip(rows, geometries):
            props = dict(zip(names, row[1:n + 1]))
            for i, f in convert:
                props[names[i]] = f(props[names[i]])
            features.append({"type": "Feature", "id": row[0], "geometry": geometry,
                             "properties": props})
        return features

    def _output(self, spec) -> _Output:
        """Coordinates in the CRS pygeoapi asks for: the spec's target, or (no spec) the
        configured storage CRS, from the layer's actual CRS."""
        if spec is None:
            target, always_xy = self.storage_crs, False
        else:
            target = _crs_from_wkt(spec.target_crs_wkt)
            always_xy = bool(spec.always_xy)
        return _Output(_transformer(self.layer.crs, target), target,
                       _swapped(target) and not always_xy)


_MAX_INT = 2**63 - 1


class SourceBBox(list):
    """A bbox converted by its corners (what pygeoapi's providers expect), that remembers the box
    and CRS the client sent, so this provider can test the exact area instead."""

    source: list
    source_crs: str


def transform_bbox_exact(bbox: list, from_crs, to_crs, always_xy: bool = False) -> list:
    """:func:`transform_bbox`, returning a :class:`SourceBBox` (installed by
    :mod:`gis.server.compat` as pygeoapi's ``transform_bbox`` for item queries)."""
    out = SourceBBox(transform_bbox(bbox, from_crs, to_crs, always_xy))
    out.source, out.source_crs = list(bbox), from_crs
    return out


def transform_bbox(bbox: list, from_crs, to_crs, always_xy: bool = False) -> list:
    """``pygeoapi.crs.transform_bbox`` with cached transformers.

    pygeoapi 0.24 builds a new pyproj transformer for every request with a ``bbox`` (~17 ms for
    CRS84 to TWD97, most of such a request's time). This function gives the same numbers (the
    two corners, in the CRSs' axis orders, Web Mercator clipped at 85.0511 degrees) from a cached
    transformer. Nothing installs it: a server may, as ``pygeoapi.api.itemtypes.transform_bbox``.
    """
    source, target = _crs(from_crs), _crs(to_crs)
    key = ("bbox", source.srs, target.srs, bool(always_xy))
    tr = _TRANSFORMERS.get(key)
    if tr is None:
        with _CACHE_LOCK:
            tr = _TRANSFORMERS.get(key) or pyproj.Transformer.from_crs(source, target,
                                                                        always_xy=always_xy)
            _TRANSFORMERS[key] = tr
    if target.to_epsg() == 3857:
        bbox = [bbox[0], max(-85.0511, bbox[1]), bbox[2], min(85.0511, bbox[3])]
    n = len(bbox) // 2
    return list(tr.transform(*bbox[:n]) + tr.transform(*bbox[n:]))


_WKT_CRS: dict[str, pyproj.CRS] = {}


def _crs_from_wkt(wkt: str) -> pyproj.CRS:
    crs = _WKT_CRS.get(wkt)
    if crs is None:
        crs = _WKT_CRS[wkt] = pyproj.CRS.from_wkt(wkt)
    return crs


__all__ = ["StoreFeatureProvider", "StoreQueryError", "transform_bbox"]
