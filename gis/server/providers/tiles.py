"""OGC API - Tiles: Mapbox Vector Tiles of a store layer, made on demand and cached on disk.

A pygeoapi ``tile`` provider over any vector layer of the base-map store (a GeoPackage file or a
``postgresql://...?schema=NAME`` URL)::

    - type: tile
      name: gis.server.providers.tiles.StoreMVTProvider
      data: /srv/ngis/basemap.gpkg            # or postgresql://user:pw@host/db?schema=basemap
      options:
        table: buildings
        cache: /srv/ngis/cache/mvt           # optional; <cache>/<table>/<tms>/<z>/<y>/<x>.pbf
        zoom: {min: 12, max: 18}
        schemes: [WebMercatorQuad]           # and/or WorldCRS84Quad
      format: {name: mvt, mimetype: application/vnd.mapbox-vector-tile}

Other options: ``buffer`` (tile units around a tile, default 64), ``simplify`` (tolerance in tile
units below ``zoom.max``, default 1; 0 to keep every vertex), ``properties`` (the attribute
columns to write; default every column but ``exclude``, which defaults to the long provenance
columns ``lineage`` and ``source``).

pygeoapi 0.24 serves a tile only when the request names its format: ``?f=mvt`` (the links it
writes carry it) or ``Accept: application/vnd.mapbox-vector-tile``; otherwise it answers 400.

A tile is made from the features whose index box meets the tile envelope plus a buffer (the
GeoPackage R-tree, or the PostGIS GiST index), reprojected to the tile matrix set's CRS, simplified
below the maximum zoom, clipped to the buffered tile and encoded with ``mapbox_vector_tile`` (for
PostGIS the database does it with ``ST_AsMVTGeom``/``ST_AsMVT``). Tiles with no features are
``None`` (pygeoapi answers 204 No Content); tiles outside the matrix or the configured zoom range
raise ``ProviderTileNotFoundError`` (404).

pygeoapi builds a provider on every request, so ``__init__`` only reads module-level state: the
layer description (CRS, columns, extent, signature) is cached per (store, table) and refreshed when
the GeoPackage file changes (stat) or, for PostGIS, when the layer's catalogue record changes.
The tile cache carries a stamp of the layer signature and is dropped when the layer is re-ingested.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import shapely
from mapbox_vector_tile.encoder import VectorTile
from pyproj import CRS, Transformer
from pygeoapi.provider.base import ProviderConnectionError
from pygeoapi.provider.base_mvt import BaseMVTProvider
from pygeoapi.provider.tile import ProviderTileNotFoundError, ProviderTilesetIdNotFoundError

LOG = logging.getLogger(__name__)

EXTENT = 4096
"""Tile coordinate extent (MVT default)."""
BUFFER = 64
"""Default buffer around a tile, in tile units: features this close are drawn, clipped here."""
SIMPLIFY = 1.0
"""Default simplification tolerance below the maximum zoom, in tile units."""
HEAVY_COLUMNS = frozenset({"lineage", "source"})
"""Long, repetitive provenance columns left out of tiles unless asked for."""
MVT_MIMETYPE = "application/vnd.mapbox-vector-tile"
PG_TTL = 30.0
"""Seconds a PostGIS layer description is trusted before its catalogue record is checked again."""

_HALF = 20037508.342789244
CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_ENVELOPE_BYTES = (0, 32, 48, 48, 64, 0, 0, 0)


# -- tile matrix sets -------------------------------------------------------------------------
@dataclass(frozen=True)
class TileMatrix:
    """A quadtree tile matrix set: its CRS, top-left origin and tile span at zoom 0."""

    id: str
    crs: str
    crs_uri: str
    uri: str
    origin: tuple[float, float]
    span0: float
    width0: int
    height0: int
    max_zoom: int

    def span(self, z: int) -> float:
        """Tile width (= height) in CRS units at zoom ``z``."""
        return self.span0 / 2 ** z

    def size(self, z: int) -> tuple[int, int]:
        """(columns, rows) of the matrix at zoom ``z``."""
        return self.width0 * 2 ** z, self.height0 * 2 ** z

    def bounds(self, z: int, row: int, col: int) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) of a tile in the matrix CRS."""
        span = self.span(z)
        minx = self.origin[0] + col * span
        maxy = self.origin[1] - row * span
        return minx, maxy - span, minx + span, maxy

    def tile_range(self, z: int, bounds: tuple[float, float, float, float]
                   ) -> tuple[int, int, int, int]:
        """(min_row, max_row, min_col, max_col), inclusive, of the tiles meeting ``bounds``."""
        span = self.span(z)
        cols, rows = self.size(z)
        minx, miny, maxx, maxy = bounds
        c0 = int(math.floor((minx - self.origin[0]) / span))
        c1 = int(math.ceil((maxx - self.origin[0]) / span)) - 1
        r0 = int(math.floor((self.origin[1] - maxy) / span))
        r1 = int(math.ceil((self.origin[1] - miny) / span)) - 1
        return (max(0, r0), min(rows - 1, max(r0, r1)), max(0, c0), min(cols - 1, max(c0, c1)))


MATRICES: dict[str, TileMatrix] = {
    "WebMercatorQuad": TileMatrix(
        "WebMercatorQuad", "EPSG:3857", "http://www.opengis.net/def/crs/EPSG/0/3857",
        "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
        (-_HALF, _HALF), 2 * _HALF, 1, 1, 24),
    "WorldCRS84Quad": TileMatrix(
        "WorldCRS84Quad", "OGC:CRS84", CRS84_URI,
        "http://www.opengis.net/def/tilematrixset/OGC/1.0/WorldCRS84Quad",
        (-180.0, 90.0), 180.0, 2, 1, 23),
}
"""The matrix sets pygeoapi 0.24 ships definitions for (a TWD97 one would need a pygeoapi patch)."""


# -- layer descriptions -----------------------------------------------------------------------
@dataclass
class _Layer:
    table: str
    crs: CRS
    srid: int
    geom: str
    fid: str
    columns: dict[str, str]          # every attribute column -> JSON type
    geometry_type: str               # POINT, LINESTRING, POLYGON, MULTI..., GEOMETRY
    bounds: tuple[float, float, float, float] | None   # storage CRS
    signature: str
    rtree: str | None = None
    checked: float = field(default_factory=time.monotonic)
    _transformers: dict[str, tuple[Transformer, Transformer]] = field(default_factory=dict)

    @property
    def dimension(self) -> int | None:
        name = self.geometry_type.upper()
        for dim, words in ((0, ("POINT",)), (1, ("LINE", "CURVE")), (2, ("POLYGON", "SURFACE"))):
            if any(w in name for w in words):
                return dim
        return None

    def transformers(self, matrix: TileMatrix) -> tuple[Transformer, Transformer]:
        """(storage -> matrix CRS, matrix CRS -> storage), x/y order."""
        pair = self._transformers.get(matrix.id)
        if pair is None:
            pair = (Transformer.from_crs(self.crs, matrix.crs, always_xy=True),
                    Transformer.from_crs(matrix.crs, self.crs, always_xy=True))
            self._transformers[matrix.id] = pair
        return pair

    def bounds_in(self, matrix: TileMatrix) -> tuple[float, float, float, float] | None:
        """The layer extent in a matrix CRS (None when unknown or not representable)."""
        if self.bounds is None:
            return None
        key = f"bounds:{matrix.id}"
        if key not in self._transformers:
            fwd, _ = self.transformers(matrix)
            try:
                box = fwd.transform_bounds(*self.bounds, densify_pts=21)
            except Exception:  # noqa: BLE001 - any PROJ failure: just no quick rejection
                box = None
            if box is not None and not all(math.isfinite(v) for v in box):
                box = None
            self._transformers[key] = box  # type: ignore[assignment]
        return self._transformers[key]  # type: ignore[return-value]


_LAYERS: dict[tuple[str, str], tuple[Any, _Layer]] = {}
_LOCK = threading.Lock()
_STAMPED: set[tuple[str, str]] = set()


def is_postgres(uri: str) -> bool:
    """Whether a store URI is a PostGIS URL."""
    return str(uri).startswith(("postgresql://", "postgres://", "postgresql+psycopg2://"))


def redact(uri: str) -> str:
    """A store URI without its password."""
    parts = urlsplit(str(uri))
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@",
                                                                     ":***@")))
    return str(uri)


def pg_split(url: str) -> tuple[str, str]:
    """(libpq DSN, schema) of a store URL."""
    parts = urlsplit(url.replace("postgresql+psycopg2://", "postgresql://"))
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", "public")
    return urlunsplit(parts._replace(query=urlencode(query))), schema


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _json_type(declared: str) -> str:
    t = (declared or "").upper()
    if t in ("BOOLEAN", "BOOL"):
        return "boolean"
    if "INT" in t:
        return "integer"
    if any(w in t for w in ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")):
        return "number"
    if "BLOB" in t or "BYTEA" in t:
        return "binary"
    return "string"


def _file_key(path: str) -> tuple:
    try:
        st = os.stat(path)
    except OSError as err:
        raise ProviderConnectionError(user_msg=f"store not found: {path}") from err
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def gpkg_connect(path: str) -> sqlite3.Connection:
    """A read-only connection to a GeoPackage."""
    try:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.Error as err:
        raise ProviderConnectionError(user_msg=f"cannot open store: {err}") from err


def _load_gpkg_layer(path: str, table: str) -> _Layer:
    with contextlib.closing(gpkg_connect(path)) as con:
        try:
            row = con.execute(
                "SELECT c.data_type, c.srs_id, c.min_x, c.min_y, c.max_x, c.max_y, "
                "c.last_change, g.column_name, g.geometry_type_name FROM gpkg_contents c "
                "LEFT JOIN gpkg_geometry_columns g ON g.table_name = c.table_name "
                "WHERE c.table_name = ?", (table,)).fetchone()
        except sqlite3.DatabaseError as err:
            raise ProviderConnectionError(user_msg=f"not a GeoPackage store: {err}") from err
        if row is None:
            raise ProviderConnectionError(user_msg=f"no layer {table!r} in the store")
        kind, srs_id, x0, y0, x1, y1, last_change, geom, gtype = row
        if kind != "features" or geom is None:
            raise ProviderConnectionError(user_msg=f"{table!r} is not a vector layer")
        srs = con.execute("SELECT organization, organization_coordsys_id, definition FROM "
                          "gpkg_spatial_ref_sys WHERE srs_id = ?", (srs_id,)).fetchone()
        info = con.execute(f"PRAGMA table_info({_q(table)})").fetchall()
        fid = next((r[1] for r in info if r[5]), "fid")
        columns = {r[1]: _json_type(r[2]) for r in info if r[1] not in (fid, geom)}
        rtree = f"rtree_{table}_{geom}"
        has_rtree = con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (rtree,)).fetchone()
        if None in (x0, y0, x1, y1) and has_rtree:
            x0, y0, x1, y1 = con.execute(f"SELECT min(minx), min(miny), max(maxx), max(maxy) "
                                         f"FROM {_q(rtree)}").fetchone()
        count = con.execute(f"SELECT count(*) FROM {_q(table)}").fetchone()[0]
    if srs is None:
        raise ProviderConnectionError(user_msg=f"{table!r} has an unknown CRS (srs_id {srs_id})")
    org, code, definition = srs
    if org and org.upper() == "EPSG":
        crs = CRS.from_epsg(int(code))
    else:
        crs = CRS.from_user_input(definition)
    bounds = None if None in (x0, y0, x1, y1) else (float(x0), float(y0), float(x1), float(y1))
    return _Layer(table=table, crs=crs, srid=int(crs.to_epsg() or srs_id), geom=geom, fid=fid,
                  columns=columns, geometry_type=str(gtype or "GEOMETRY"), bounds=bounds,
                  signature=f"{last_change}|{count}|{bounds}", rtree=rtree if has_rtree else None)


# -- PostGIS ----------------------------------------------------------------------------------
_IDLE: dict[tuple[int, str], list[Any]] = {}
MAX_IDLE = 8


@contextlib.contextmanager
def pg_cursor(url: str) -> Iterator[Any]:
    """A cursor on an autocommit connection to the store's database, kept for reuse afterwards
    (up to ``MAX_IDLE`` idle connections per database and process)."""
    import psycopg2

    dsn, _ = pg_split(url)
    key = (os.getpid(), dsn)  # never reuse a connection a parent process opened
    with _LOCK:
        idle = _IDLE.setdefault(key, [])
        con = idle.pop() if idle else None
    if con is None or con.closed:
        try:
            con = psycopg2.connect(dsn, connect_timeout=10)
        except psycopg2.Error as err:
            message = str(err).strip().splitlines()[0] if str(err).strip() else \
                type(err).__name__
            raise ProviderConnectionError(user_msg=f"cannot connect to PostGIS: {message}") from err
        con.autocommit = True
    reuse = False
    try:
        with con.cursor() as cur:
            yield cur
        reuse = True
    finally:
        if reuse and not con.closed:
            with _LOCK:
                if len(idle) < MAX_IDLE:
                    idle.append(con)
                    con = None
        if con is not None:
            con.close()


def _pg_signature(cur, schema: str, table: str) -> str:
    from psycopg2 import sql

    cur.execute("SELECT to_regclass(%s)", (f'"{schema}"."ngis_catalog"',))
    if cur.fetchone()[0] is None:
        return ""
    cur.execute(sql.SQL("SELECT record->>'updated' FROM {}.ngis_catalog WHERE id = %s").format(
        sql.Identifier(schema)), (table,))
    row = cur.fetchone()
    return "" if row is None else str(row[0])


def _load_pg_layer(url: str, table: str) -> _Layer:
    from psycopg2 import sql

    _, schema = pg_split(url)
    with pg_cursor(url) as cur:
        cur.execute("SELECT f_geometry_column, srid, type FROM geometry_columns WHERE "
                    "f_table_schema = %s AND f_table_name = %s", (schema, table))
        row = cur.fetchone()
        if row is None:
            raise ProviderConnectionError(user_msg=f"no vector layer {table!r} in the store")
        geom, srid, gtype = row
        cur.execute("SELECT column_name, data_type FROM information_schema.columns WHERE "
                    "table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                    (schema, table))
        cols = cur.fetchall()
        fid = "fid" if any(c == "fid" for c, _ in cols) else None
        if fid is None:
            raise ProviderConnectionError(user_msg=f"{table!r} has no fid column")
        columns = {c: _json_type(t) for c, t in cols if c not in (fid, geom)}
        cur.execute(sql.SQL("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                            "(SELECT ST_Extent({}) AS e FROM {}.{}) s").format(
            sql.Identifier(geom), sql.Identifier(schema), sql.Identifier(table)))
        ext = cur.fetchone()
        signature = _pg_signature(cur, schema, table)
    bounds = None if ext is None or None in ext else tuple(float(v) for v in ext)
    return _Layer(table=table, crs=CRS.from_epsg(int(srid)), srid=int(srid), geom=geom, fid=fid,
                  columns=columns, geometry_type=str(gtype),
                  bounds=bounds,  # type: ignore[arg-type]
                  signature=signature or f"unversioned|{bounds}")


def cached_store_state(cache: dict, data: str, table: str, load_gpkg: Callable, load_pg: Callable):
    """What ``load_gpkg(path, table)`` / ``load_pg(url, table)`` describe of a store table, cached
    in ``cache`` and reloaded when the store changed: a GeoPackage when its file changed (size,
    mtime, inode), a PostGIS table when its signature changed (checked at most every
    ``PG_TTL`` seconds). The loaded object must carry ``signature`` and ``checked`` for PostGIS.
    """
    key = (str(data), table)
    cached = cache.get(key)
    if is_postgres(data):
        if cached is not None and time.monotonic() - cached[1].checked < PG_TTL:
            return cached[1]
        if cached is not None:
            _, schema = pg_split(data)
            with pg_cursor(data) as cur:
                signature = _pg_signature(cur, schema, table)
            if signature and signature == cached[1].signature:
                cached[1].checked = time.monotonic()
                return cached[1]
        state = load_pg(data, table)
        with _LOCK:
            cache[key] = (None, state)
        return state
    stat = _file_key(data)
    if cached is not None and cached[0] == stat:
        return cached[1]
    state = load_gpkg(data, table)
    with _LOCK:
        cache[key] = (stat, state)
    return state


def layer_info(data: str, table: str) -> _Layer:
    """The cached description of a store vector layer, reloaded when the store changed."""
    return cached_store_state(_LAYERS, data, table, _load_gpkg_layer, _load_pg_layer)


# -- reading and encoding ---------------------------------------------------------------------
def gpkg_geometries(blobs: Iterable[bytes | None]) -> np.ndarray:
    """Shapely geometries of GeoPackage geometry blobs (header stripped, WKB read by GEOS)."""
    wkbs: list[bytes | None] = []
    for blob in blobs:
        if blob is None or len(blob) < 8 or blob[0:2] != b"GP" or blob[3] & 0x10:
            wkbs.append(None)
            continue
        wkbs.append(bytes(blob[8 + _ENVELOPE_BYTES[(blob[3] >> 1) & 7]:]))
    return shapely.from_wkb(np.array(wkbs, dtype=object))


def _gpkg_features(path: str, layer: _Layer, columns: list[str],
                   box: tuple[float, float, float, float]):
    """(fids, geometries, attribute rows) of the features whose index box meets ``box``."""
    sel = "".join(f", {_q(c)}" for c in columns)
    head = f"SELECT {_q(layer.fid)}, {_q(layer.geom)}{sel} FROM {_q(layer.table)}"
    with contextlib.closing(gpkg_connect(path)) as con:
        if layer.rtree:
            rows = con.execute(f"{head} WHERE {_q(layer.fid)} IN (SELECT id FROM "
                               f"{_q(layer.rtree)} WHERE minx <= ? AND maxx >= ? AND "
                               f"miny <= ? AND maxy >= ?)",
                               (box[2], box[0], box[3], box[1])).fetchall()
        else:
            rows = con.execute(head).fetchall()
    fids = [r[0] for r in rows]
    geoms = gpkg_geometries(r[1] for r in rows)
    if not layer.rtree and len(rows):
        keep = shapely.intersects(geoms, shapely.box(*box))
        rows = [r for r, k in zip(rows, keep) if k]
        fids = [r[0] for r in rows]
        geoms = geoms[keep]
    return fids, geoms, [r[2:] for r in rows]


def to_tile_coords(geoms: np.ndarray, transformer: Transformer,
                   bounds: tuple[float, float, float, float], extent: int = EXTENT) -> np.ndarray:
    """Geometries reprojected and scaled to tile coordinates (0..extent, y down), 2D."""
    geoms = shapely.force_2d(geoms)
    coords = shapely.get_coordinates(geoms)
    if not len(coords):
        return geoms
    x, y = transformer.transform(coords[:, 0], coords[:, 1])
    minx, miny, maxx, maxy = bounds
    tx = (np.asarray(x) - minx) * (extent / (maxx - minx))
    ty = (maxy - np.asarray(y)) * (extent / (maxy - miny))
    return shapely.set_coordinates(geoms, np.column_stack([tx, ty]))


def _keep_dimension(geom, dim: int | None):
    """The parts of a geometry with the layer's dimension (clipping and repair can return lower
    dimensional leftovers or mixed collections); None when nothing is left."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type != "GeometryCollection":
        return geom if dim is None or shapely.get_dimensions(geom) == dim else None
    parts = [p for p in shapely.get_parts(geom) if not p.is_empty and
             (dim is None or shapely.get_dimensions(p) == dim)]
    if not parts:
        return None
    kind = parts[0].geom_type.replace("Multi", "")
    parts = [q for p in parts for q in shapely.get_parts(p) if q.geom_type == kind]
    if len(parts) == 1:
        return parts[0]
    return {"Polygon": shapely.MultiPolygon, "LineString": shapely.MultiLineString,
            "Point": shapely.MultiPoint}[kind](parts)


def _fix_collections(geoms: np.ndarray, dimension: int | None) -> None:
    """Replace, in place, geometry collections by their parts of the layer's dimension."""
    for i in np.flatnonzero(shapely.get_type_id(geoms) == 7):
        geoms[i] = _keep_dimension(geoms[i], dimension)


def encode_tile(name: str, fids: list[int], geoms: np.ndarray, rows: list[tuple],
                columns: dict[str, str], *, simplify: float = 0.0, buffer: int = BUFFER,
                dimension: int | None = None, extent: int = EXTENT) -> bytes | None:
    """Encode features already in tile coordinates; None when nothing is left in the tile."""
    if not len(geoms):
        return None
    if simplify > 0:
        geoms = shapely.simplify(geoms, simplify, preserve_topology=True)
    geoms = shapely.clip_by_rect(geoms, -buffer, -buffer, extent + buffer, extent + buffer)
    # Snap to the integer tile grid here, vectorised, and repair only what that broke (rings that
    # collapsed or touch themselves); then exteriors counter-clockwise in y-down tile coordinates
    # (positive surveyor's area, as the MVT spec wants), so the encoder need not check each ring.
    _fix_collections(geoms, dimension)
    geoms = shapely.set_coordinates(geoms, np.rint(shapely.get_coordinates(geoms)))
    bad = np.flatnonzero(~shapely.is_valid(geoms) & ~shapely.is_empty(geoms))
    for i in bad:
        try:
            geoms[i] = _keep_dimension(shapely.make_valid(geoms[i]), dimension)
        except shapely.errors.GEOSException:
            geoms[i] = None
    _fix_collections(geoms, dimension)
    geoms = shapely.orient_polygons(geoms, exterior_cw=False)
    names = list(columns)
    kinds = [columns[c] for c in names]
    features = []
    for fid, geom, row in zip(fids, geoms, rows):
        if geom is None or geom.is_empty:
            continue
        props = {}
        for key, kind, value in zip(names, kinds, row):
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                continue
            if kind == "boolean":
                value = bool(value)
            elif kind == "number":
                value = float(value)
            elif kind == "integer":
                value = int(value)
            elif not isinstance(value, (str, int, float)):
                value = str(value)
            props[key] = value
        feature: dict[str, Any] = {"geometry": geom, "properties": props}
        if isinstance(fid, int) and fid >= 0:
            feature["id"] = fid
        features.append(feature)
    if not features:
        return None
    tile = VectorTile(default_options={"extents": extent, "y_coord_down": True,
                                       "check_winding_order": False})
    tile.add_layer(name=name, features=features)
    if not len(tile.tile.layers[0].features):
        return None
    return tile.tile.SerializeToString()


# -- the provider -----------------------------------------------------------------------------
class StoreMVTProvider(BaseMVTProvider):
    """Vector tiles (MVT) of one store layer for OGC API - Tiles."""

    def __init__(self, provider_def: dict[str, Any]):
        provider_def = dict(provider_def)
        options = dict(provider_def.get("options") or {})
        zoom = dict(options.get("zoom") or {})
        zoom.setdefault("min", 0)
        zoom.setdefault("max", 22)
        options["zoom"] = {"min": int(zoom["min"]), "max": int(zoom["max"])}
        schemes = options.get("schemes") or ["WebMercatorQuad"]
        if isinstance(schemes, str):
            schemes = [schemes]
        unknown = [s for s in schemes if s not in MATRICES]
        if unknown:
            raise ProviderConnectionError(user_msg=f"unsupported tile matrix set(s) {unknown}; "
                                                   f"supported: {sorted(MATRICES)}")
        options["schemes"] = list(schemes)
        provider_def["options"] = options
        provider_def.setdefault("format", {"name": "mvt", "mimetype": MVT_MIMETYPE})
        super().__init__(provider_def)
        self.data = str(provider_def["data"])
        self.table = options.get("table")
        if not self.table:
            raise ProviderConnectionError(user_msg="tile provider needs options.table")
        self.cache = Path(options["cache"]) if options.get("cache") else None
        self.buffer = int(options.get("buffer", BUFFER))
        self.simplify = float(options.get("simplify", SIMPLIFY))
        self.properties = options.get("properties")
        self.exclude = set(options.get("exclude", HEAVY_COLUMNS))
        self._service_url = None
        self._service_metadata_url = None
        self._layer = layer_info(self.data, self.table)
        if self.cache is not None:
            try:
                self._stamp_cache(self._layer)
            except OSError as err:  # serve uncached rather than not at all
                LOG.warning("tile cache %s unusable, serving uncached: %s", self.cache, err)
                self.cache = None

    def __repr__(self) -> str:
        return f"<StoreMVTProvider> {redact(self.data)} {self.table}"

    # -- description ----------------------------------------------------------------------
    def get_layer(self) -> str:
        return self.table

    def tile_columns(self) -> dict[str, str]:
        """Attribute columns written into tiles, with their JSON types."""
        cols = self._layer.columns
        if self.properties:
            return {c: cols[c] for c in self.properties if c in cols}
        return {c: t for c, t in cols.items() if c not in self.exclude and t != "binary"}

    def get_fields(self) -> dict[str, dict[str, str]]:
        return {c: {"type": t} for c, t in self.tile_columns().items()}

    @property
    def fields(self) -> dict[str, dict[str, str]]:
        return self.get_fields()

    def get_tiling_schemes(self):
        enums = {m.tileMatrixSet: m for m in self._tms_enums()}
        return [enums[s] for s in self.schemes if s in enums]

    @staticmethod
    def _tms_enums():
        from pygeoapi.models.provider.base import TileMatrixSetEnum

        return [e.value for e in TileMatrixSetEnum]

    def get_tiles_service(self, baseurl=None, servicepath=None, dirpath=None, tile_type=None):
        self._service_url = servicepath or (
            f"{baseurl or ''}/tiles/{{tileMatrixSetId}}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"
            f"?f={self.format_type}")
        return self.get_tms_links()

    # -- tiles ----------------------------------------------------------------------------
    def _matrix(self, tileset: str | None) -> TileMatrix:
        if tileset not in self.schemes:
            raise ProviderTilesetIdNotFoundError(
                user_msg=f"tile matrix set {tileset!r} not offered (offered: "
                         f"{', '.join(self.schemes)})")
        return MATRICES[tileset]

    def _index(self, matrix: TileMatrix, z, y, x) -> tuple[int, int, int]:
        try:
            z, row, col = int(z), int(y), int(x)
        except (TypeError, ValueError) as err:
            raise ProviderTileNotFoundError(user_msg="tile indices must be integers") from err
        zoom = self.options["zoom"]
        if not (zoom["min"] <= z <= min(zoom["max"], matrix.max_zoom)):
            raise ProviderTileNotFoundError(
                user_msg=f"zoom {z} outside {zoom['min']}..{zoom['max']}")
        cols, rows = matrix.size(z)
        if not (0 <= row < rows and 0 <= col < cols):
            raise ProviderTileNotFoundError(user_msg=f"tile {z}/{row}/{col} outside the matrix")
        return z, row, col

    def tile_path(self, tileset: str, z: int, y: int, x: int) -> Path | None:
        """Where a tile is cached (None without a cache)."""
        if self.cache is None:
            return None
        return self.cache / self.table / tileset / str(z) / str(y) / f"{x}.pbf"

    def get_tiles(self, layer=None, tileset=None, z=None, y=None, x=None, format_=None):
        """The encoded tile, or None when the tile holds no feature (pygeoapi: 204)."""
        return self.tile(tileset, z, y, x)[0]

    def tile(self, tileset, z, y, x) -> tuple[bytes | None, str]:
        """(tile or None, how it was got: ``cached``, ``generated``, ``empty`` or ``outside``)."""
        matrix = self._matrix(tileset)
        z, row, col = self._index(matrix, z, y, x)
        path = self.tile_path(matrix.id, z, row, col)
        if path is not None:
            try:
                data = path.read_bytes()
            except OSError:  # not cached yet (or the cache is unusable): make it
                pass
            else:
                return (data or None), "cached"
        layer = self._layer
        bounds = matrix.bounds(z, row, col)
        pad = matrix.span(z) * self.buffer / EXTENT
        padded = (bounds[0] - pad, bounds[1] - pad, bounds[2] + pad, bounds[3] + pad)
        extent = layer.bounds_in(matrix)
        if layer.bounds is None or (extent is not None and (
                padded[0] > extent[2] or padded[2] < extent[0] or
                padded[1] > extent[3] or padded[3] < extent[1])):
            return None, "outside"
        simplify = self.simplify if z < self.options["zoom"]["max"] else 0.0
        if is_postgres(self.data):
            data = self._pg_tile(layer, matrix, bounds, padded, simplify)
        else:
            data = self._gpkg_tile(layer, matrix, bounds, padded, simplify)
        if path is not None:
            try:
                _write_atomic(path, data or b"")
            except OSError as err:  # a full or read-only disk costs speed, not the tile
                LOG.warning("cannot cache tile %s: %s", path, err)
        return data, ("generated" if data else "empty")

    def _query_box(self, layer: _Layer, matrix: TileMatrix, padded) -> tuple[float, ...]:
        _, inv = layer.transformers(matrix)
        if matrix.id == "WebMercatorQuad":
            padded = (max(padded[0], -_HALF), max(padded[1], -_HALF), min(padded[2], _HALF),
                      min(padded[3], _HALF))
        return inv.transform_bounds(*padded, densify_pts=21)

    def _gpkg_tile(self, layer, matrix, bounds, padded, simplify) -> bytes | None:
        columns = self.tile_columns()
        box = self._query_box(layer, matrix, padded)
        fids, geoms, rows = _gpkg_features(self.data, layer, list(columns), box)
        if not fids:
            return None
        fwd, _ = layer.transformers(matrix)
        geoms = to_tile_coords(geoms, fwd, bounds)
        return encode_tile(self.table, fids, geoms, rows, columns, simplify=simplify,
                           buffer=self.buffer, dimension=layer.dimension)

    def _pg_tile(self, layer, matrix, bounds, padded, simplify) -> bytes | None:
        from psycopg2 import sql

        _, schema = pg_split(self.data)
        columns = self.tile_columns()
        box = self._query_box(layer, matrix, padded)
        tsrid = 3857 if matrix.id == "WebMercatorQuad" else 4326
        geom = sql.SQL("ST_Transform(ST_Force2D({}), {})").format(sql.Identifier(layer.geom),
                                                                 sql.Literal(tsrid))
        if simplify > 0:
            tol = (bounds[2] - bounds[0]) * simplify / EXTENT
            geom = sql.SQL("ST_SimplifyPreserveTopology({}, {})").format(geom, sql.Literal(tol))
        cols = sql.SQL("").join(sql.SQL(", {}").format(sql.Identifier(c)) for c in columns)
        query = sql.SQL(
            "WITH rows AS (SELECT {fid} AS __fid, ST_AsMVTGeom({geom}, "
            "ST_MakeEnvelope(%s, %s, %s, %s, {tsrid})::box2d, {extent}, {buffer}, true) "
            "AS __mvtgeom{cols} FROM {schema}.{table} WHERE {gcol} && "
            "ST_MakeEnvelope(%s, %s, %s, %s, {srid})) "
            "SELECT ST_AsMVT(rows.*, %s, {extent}, '__mvtgeom', '__fid') FROM rows "
            "WHERE __mvtgeom IS NOT NULL").format(
            fid=sql.Identifier(layer.fid), geom=geom, tsrid=sql.Literal(tsrid),
            extent=sql.Literal(EXTENT), buffer=sql.Literal(self.buffer), cols=cols,
            schema=sql.Identifier(schema), table=sql.Identifier(layer.table),
            gcol=sql.Identifier(layer.geom), srid=sql.Literal(layer.srid))
        with pg_cursor(self.data) as cur:
            cur.execute(query, (*bounds, *box, self.table))
            row = cur.fetchone()
        data = bytes(row[0]) if row and row[0] is not None else b""
        return data or None

    # -- cache ----------------------------------------------------------------------------
    def _stamp_cache(self, layer: _Layer) -> None:
        """Drop the layer's cached tiles when the layer changed since they were made."""
        root = self.cache / self.table
        key = (str(root), layer.signature)
        if key in _STAMPED:
            return
        stamp = {"store": redact(self.data), "table": self.table, "signature": layer.signature,
                 "buffer": self.buffer, "simplify": self.simplify,
                 "columns": sorted(self.tile_columns())}
        stamp_path = root / ".stamp.json"
        try:
            old = json.loads(stamp_path.read_text())
        except (OSError, ValueError):
            old = None
        if old != stamp:
            if root.exists():
                stale = root.with_name(f".{root.name}.stale-{os.getpid()}-{time.time_ns()}")
                with contextlib.suppress(OSError):
                    os.replace(root, stale)
                    shutil.rmtree(stale, ignore_errors=True)
            root.mkdir(parents=True, exist_ok=True)
            _write_atomic(stamp_path, json.dumps(stamp, sort_keys=True).encode())
        with _LOCK:
            _STAMPED.add(key)

    # -- metadata -------------------------------------------------------------------------
    def _tile_url(self, server_url: str, dataset: str, tileset: str, xyz: bool = False) -> str:
        cells = "{z}/{y}/{x}" if xyz else "{tileMatrix}/{tileRow}/{tileCol}"
        return (f"{server_url.rstrip('/')}/collections/{dataset}/tiles/{tileset}/{cells}"
                f"?f={self.format_type}")

    def _bbox84(self) -> list[float] | None:
        bounds = self._layer.bounds_in(MATRICES["WorldCRS84Quad"])
        return None if bounds is None else [round(v, 7) for v in bounds]

    def _limits(self, matrix: TileMatrix) -> list[dict[str, Any]]:
        extent = self._layer.bounds_in(matrix)
        if extent is None:
            return []
        zoom = self.options["zoom"]
        out = []
        for z in range(zoom["min"], min(zoom["max"], matrix.max_zoom) + 1):
            r0, r1, c0, c1 = matrix.tile_range(z, extent)
            out.append({"tileMatrix": str(z), "minTileRow": r0, "maxTileRow": r1,
                        "minTileCol": c0, "maxTileCol": c1})
        return out

    def get_default_metadata(self, dataset, server_url, layer, tileset, title, description,
                             keywords, **kwargs) -> dict[str, Any]:
        """OGC API - Tiles tileset metadata (with the layer, its fields and tile limits)."""
        matrix = self._matrix(tileset)
        zoom = self.options["zoom"]
        bbox = self._bbox84()
        meta: dict[str, Any] = {
            "title": title,
            "description": description,
            "keywords": list(keywords or []),
            "dataType": "vector",
            "crs": matrix.crs_uri,
            "tileMatrixSetURI": matrix.uri,
            "mediaTypes": [self.mimetype],
            "tileMatrixSetLimits": self._limits(matrix),
            "layers": [{
                "id": layer or self.table,
                "title": title,
                "dataType": "vector",
                "geometryDimension": self._layer.dimension,
                "minTileMatrix": str(zoom["min"]),
                "maxTileMatrix": str(zoom["max"]),
                "propertiesSchema": {"type": "object", "properties": self.get_fields()},
            }],
            "links": [{
                "href": f"{server_url.rstrip('/')}/TileMatrixSets/{matrix.id}",
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                "type": "application/json",
                "title": f"{matrix.id} tile matrix set definition",
            }, {
                "href": self._tile_url(server_url, dataset, matrix.id),
                "rel": "item",
                "type": self.mimetype,
                "title": f"{matrix.id} vector tiles for {layer or self.table}",
                "templated": True,
            }],
        }
        if self._layer.dimension is None:
            del meta["layers"][0]["geometryDimension"]
        if bbox is not None:
            meta["boundingBox"] = {"lowerLeft": bbox[:2], "upperRight": bbox[2:],
                                   "crs": CRS84_URI}
            meta["layers"][0]["boundingBox"] = meta["boundingBox"]
        return meta

    def get_vendor_metadata(self, dataset, server_url, layer, tileset, title, description,
                            keywords, **kwargs) -> dict[str, Any]:
        """TileJSON 3.0.0."""
        matrix = self._matrix(tileset)
        zoom = self.options["zoom"]
        bbox = self._bbox84()
        meta: dict[str, Any] = {
            "tilejson": "3.0.0",
            "name": title or self.table,
            "description": description,
            "scheme": "xyz",
            "tiles": [self._tile_url(server_url, dataset, matrix.id, xyz=True)],
            "minzoom": zoom["min"],
            "maxzoom": zoom["max"],
            "vector_layers": [{
                "id": layer or self.table,
                "description": description or "",
                "minzoom": zoom["min"],
                "maxzoom": zoom["max"],
                "fields": {c: t.capitalize() for c, t in self.tile_columns().items()},
            }],
        }
        if bbox is not None:
            meta["bounds"] = bbox
            meta["center"] = [round((bbox[0] + bbox[2]) / 2, 7), round((bbox[1] + bbox[3]) / 2, 7),
                              max(zoom["min"], min(zoom["max"], 14))]
        return meta

    def get_html_metadata(self, dataset, server_url, layer, tileset, title, description,
                          keywords, **kwargs) -> dict[str, Any]:
        matrix = self._matrix(tileset)
        base = f"{server_url.rstrip('/')}/collections/{dataset}/tiles/{matrix.id}/metadata"
        return {
            "id": dataset, "title": title, "tileset": matrix.id,
            "collections_path": self._tile_url(server_url, dataset, matrix.id),
            "json_url": f"{base}?f=json", "tilejson_url": f"{base}?f=tilejson",
            "metadata": self.get_vendor_metadata(dataset, server_url, layer, tileset, title,
                                                 description, keywords),
        }

    def get_metadata(self, dataset, server_url, layer=None, tileset=None, metadata_format=None,
                     title=None, description=None, keywords=None, **kwargs):
        # pygeoapi passes the raw request format, None when the client sent neither f nor a
        # known Accept type: answer the OGC tileset metadata then.
        fmt = str(metadata_format or "json").upper()
        if fmt == "TILEJSON":
            return self.get_vendor_metadata(dataset, server_url, layer, tileset, title,
                                            description, keywords, **kwargs)
        if fmt == "HTML":
            return self.get_html_metadata(dataset, server_url, layer, tileset, title,
                                          description, keywords, **kwargs)
        return self.get_default_metadata(dataset, server_url, layer, tileset, title,
                                         description, keywords, **kwargs)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


# -- seeding ----------------------------------------------------------------------------------
def seed_tiles(provider_def: dict[str, Any], zooms: Iterable[int] | None = None, *,
               tileset: str = "WebMercatorQuad", max_tiles: int = 200_000,
               progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Make and cache every tile of a layer's extent for some zoom levels.

    Args:
        provider_def: The tile provider definition (as in the pygeoapi config); needs
            ``options.cache``.
        zooms: Zoom levels (default: the provider's whole min..max range).
        tileset: Tile matrix set id.
        max_tiles: Refuse (ValueError) to seed more tiles than this.
        progress: Called with (done, total) after each tile.

    Returns:
        Counts: ``total``, ``generated`` (non-empty, written), ``empty`` (written as empty),
        ``cached`` (already there), ``outside`` (beyond the layer extent).
    """
    provider = StoreMVTProvider(provider_def)
    if provider.cache is None:
        raise ValueError("seed_tiles needs options.cache in the provider definition")
    matrix = provider._matrix(tileset)
    zoom = provider.options["zoom"]
    levels = sorted(set(zooms)) if zooms is not None else list(range(zoom["min"],
                                                                      zoom["max"] + 1))
    extent = provider._layer.bounds_in(matrix)
    counts = {"total": 0, "generated": 0, "empty": 0, "cached": 0, "outside": 0}
    if extent is None:
        return counts
    ranges = []
    for z in levels:
        if not (zoom["min"] <= z <= min(zoom["max"], matrix.max_zoom)):
            raise ValueError(f"zoom {z} outside the provider's {zoom['min']}..{zoom['max']}")
        r0, r1, c0, c1 = matrix.tile_range(z, extent)
        ranges.append((z, r0, r1, c0, c1))
        counts["total"] += (r1 - r0 + 1) * (c1 - c0 + 1)
    if counts["total"] > max_tiles:
        raise ValueError(f"{counts['total']} tiles to seed, more than max_tiles={max_tiles}")
    done = 0
    for z, r0, r1, c0, c1 in ranges:
        for row in range(r0, r1 + 1):
            for col in range(c0, c1 + 1):
                _, how = provider.tile(matrix.id, z, row, col)
                counts[how] += 1
                done += 1
                if progress is not None:
                    progress(done, counts["total"])
    return counts


warm_cache = seed_tiles
"""Alias of :func:`seed_tiles`."""

__all__ = ["StoreMVTProvider", "seed_tiles", "warm_cache", "MATRICES", "TileMatrix", "EXTENT",
           "encode_tile", "to_tile_coords", "gpkg_geometries", "layer_info"]
