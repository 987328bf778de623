"""The scale path: the same store schema in PostgreSQL/PostGIS.

``postgresql://user:password@host:port/database?schema=NAME`` (schema ``public`` by default).
Each vector layer is a table with a ``geom geometry(Geometry, SRID)`` column and a GiST index;
each DEM is a table of 256 x 256 PostGIS raster tiles (``rast raster``, 32-bit float, NaN for no
data); the catalogue is ``ngis_catalog`` with the record as ``jsonb``. A whole batch is one
transaction (PostgreSQL DDL is transactional), so a failed ingest leaves the previous store.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg2
import shapely
from affine import Affine
from psycopg2 import sql
from pyproj import CRS

from gis.errors import LayerNotFoundError, StoreError
from gis.io.raster import DemSource
from gis.store.base import CATALOG_TABLE, RasterLayer, Store, VectorLayer

TILE = 256


def _split_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url.replace("postgresql+psycopg2://", "postgresql://"))
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", "public")
    return urlunsplit(parts._replace(query=urlencode(query))), schema


def _pg_type(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "bigint"
    if pd.api.types.is_float_dtype(dtype):
        return "double precision"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamptz"
    return "text"


def _copy_text(value: Any) -> str:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):  # NaN, NA, NaT
        return r"\N"
    if isinstance(value, (bool, np.bool_)):
        return "t" if value else "f"
    text = str(value)
    return (text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


#: Rows encoded at a time for COPY: the text of a batch is built in memory, never the layer's.
COPY_BATCH = 20_000


def _copy_column(series: pd.Series) -> np.ndarray:
    """A column as COPY text fields (object array of str): what :func:`_copy_text` gives per
    value, vectorised for the common types (numbers, booleans, plain strings)."""
    null = series.isna().to_numpy()
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        out = np.where(series.fillna(False).to_numpy(dtype=bool), "t", "f").astype(object)
    elif pd.api.types.is_integer_dtype(dtype):
        out = np.empty(len(series), dtype=object)
        out[~null] = series[~null].to_numpy(dtype=np.int64).astype(str)
    elif pd.api.types.is_float_dtype(dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        out = values.astype(str).astype(object)  # shortest repr, as str() of each value
    elif isinstance(dtype, pd.StringDtype) or (
            dtype == object and all(type(v) is str for v in series[~null])):
        text = series[~null].astype("str")
        for char, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
            if text.str.contains(char, regex=False).any():
                text = text.str.replace(char, escaped, regex=False)
        out = np.empty(len(series), dtype=object)
        out[~null] = text.to_numpy(dtype=object)
    else:
        return np.array([_copy_text(v) for v in series], dtype=object)
    out[null] = r"\N"
    return out


class _CopyStream:
    """A read-only text file over an iterator of strings, for ``COPY ... FROM STDIN``."""

    def __init__(self, chunks: Iterator[str]):
        self._chunks = chunks
        self._buf = ""
        self._pos = 0

    def read(self, size: int = -1) -> str:
        parts = []
        want = size if size >= 0 else float("inf")
        while want > 0:
            if self._pos >= len(self._buf):
                nxt = next(self._chunks, None)
                if nxt is None:
                    break
                self._buf, self._pos = nxt, 0
            piece = self._buf[self._pos:self._pos + int(min(want, len(self._buf)))]
            self._pos += len(piece)
            want -= len(piece)
            parts.append(piece)
        return "".join(parts)


class PostGISStore(Store):
    """A base-map store in a PostGIS database."""

    def __init__(self, url: str):
        self.uri = url
        self.dsn, self.schema = _split_url(url)

    def _connect(self):
        try:
            return psycopg2.connect(self.dsn, connect_timeout=10)
        except psycopg2.OperationalError as err:
            message = str(err).strip().splitlines()[0]
            raise StoreError(f"cannot connect to PostGIS: {message}",
                             path=_redact(self.uri)) from err

    def _table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    def exists(self) -> bool:
        with self._connect() as con, con.cursor() as cur:
            cur.execute("SELECT to_regclass(%s)", (f'"{self.schema}"."{CATALOG_TABLE}"',))
            return cur.fetchone()[0] is not None

    # -- writing ---------------------------------------------------------------------------
    def write(self, vectors: list[VectorLayer], rasters: list[RasterLayer], records) -> None:
        con = self._connect()
        try:
            with con, con.cursor() as cur:  # one transaction: commit at the end or roll back
                cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
                if rasters:
                    cur.execute("CREATE EXTENSION IF NOT EXISTS postgis_raster")
                cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                    sql.Identifier(self.schema)))
                for layer in vectors:
                    self._write_vector(cur, layer)
                for raster in rasters:
                    self._write_raster(cur, raster)
                self._write_catalog(cur, records() if callable(records) else records)
        except psycopg2.Error as err:
            raise StoreError(f"PostGIS write failed, nothing changed: "
                             f"{str(err).strip().splitlines()[0]}", path=_redact(self.uri)) from err
        finally:
            con.close()

    def _write_vector(self, cur, layer: VectorLayer) -> None:
        frame = layer.frame
        srid = CRS.from_user_input(frame.crs).to_epsg() or 0
        geom_name = frame.geometry.name
        columns = [c for c in frame.columns if c != geom_name]
        table = self._table(layer.name)
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(table))
        defs = [sql.SQL("fid bigserial PRIMARY KEY")]
        defs += [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_pg_type(frame[c])))
                 for c in columns]
        defs.append(sql.SQL("geom geometry(Geometry, {})").format(sql.Literal(srid)))
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(defs)))
        target = sql.SQL("{} ({})").format(table, sql.SQL(", ").join(
            [sql.Identifier(c) for c in columns] + [sql.Identifier("geom")]))
        copy = sql.SQL("COPY {} FROM STDIN").format(target).as_string(cur)
        geoms = shapely.set_srid(frame.geometry.values, srid)

        def batches() -> Iterator[str]:  # encoded as COPY reads them: memory bounded by a batch
            for start in range(0, len(frame), COPY_BATCH):
                part = slice(start, start + COPY_BATCH)
                cols = [_copy_column(frame[c].iloc[part]) for c in columns]
                wkb = shapely.to_wkb(geoms[part], hex=True, include_srid=True)
                cols.append(np.where(pd.isna(wkb), r"\N", wkb).astype(object))
                yield "\n".join(map("\t".join, zip(*cols))) + "\n"

        # One COPY: the server parses a batch while this process encodes the next.
        cur.copy_expert(copy, _CopyStream(batches()), size=1 << 20)
        cur.execute(sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(
            sql.Identifier(f"{layer.name}_geom_gist"), table))
        cur.execute(sql.SQL("ANALYZE {}").format(table))  # planner statistics for bbox queries

    def _write_raster(self, cur, raster: RasterLayer) -> None:
        table = self._table(raster.name)
        srid = raster.crs.to_epsg() or 0
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(table))
        cur.execute(sql.SQL("CREATE TABLE {} (rid serial PRIMARY KEY, rast raster NOT NULL)")
                    .format(table))
        insert = sql.SQL("INSERT INTO {} (rast) VALUES (%s::raster)").format(table)
        t = raster.transform
        for (row_off, col_off), block in raster.blocks():
            for r in range(0, block.shape[0], TILE):
                for c in range(0, block.shape[1], TILE):
                    tile = block[r:r + TILE, c:c + TILE]
                    origin = t @ Affine.translation(col_off + c, row_off + r)
                    cur.execute(insert, (raster_wkb(tile, origin, srid).hex(),))
        cur.execute(sql.SQL("CREATE INDEX {} ON {} USING gist (ST_ConvexHull(rast))").format(
            sql.Identifier(f"{raster.name}_rast_gist"), table))

    def _write_catalog(self, cur, records: list[dict[str, Any]]) -> None:
        table = self._table(CATALOG_TABLE)
        cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (id text PRIMARY KEY, title text, "
                            "access_grade text NOT NULL, record jsonb NOT NULL)").format(table))
        for r in records:
            cur.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO "
                                "UPDATE SET title = EXCLUDED.title, access_grade = "
                                "EXCLUDED.access_grade, record = EXCLUDED.record").format(table),
                        (r["id"], r["title"], r["access_grade"], json.dumps(r, ensure_ascii=False)))

    # -- reading ---------------------------------------------------------------------------
    def layers(self) -> list[str]:
        with self._connect() as con, con.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                        "AND table_name != %s AND table_name IN (SELECT f_table_name FROM "
                        "geometry_columns WHERE f_table_schema = %s UNION SELECT r_table_name "
                        "FROM raster_columns WHERE r_table_schema = %s) ORDER BY table_name",
                        (self.schema, CATALOG_TABLE, self.schema, self.schema))
            return [r[0] for r in cur.fetchall()]

    def catalog(self) -> list[dict[str, Any]]:
        if not self.exists():
            return []
        with self._connect() as con, con.cursor() as cur:
            cur.execute(sql.SQL("SELECT record FROM {} ORDER BY id").format(
                self._table(CATALOG_TABLE)))
            return [r[0] for r in cur.fetchall()]

    def read(self, name, bbox=None) -> gpd.GeoDataFrame:
        if bbox is None:
            return self._select(name, sql.SQL(""), ())
        return self._select(name, sql.SQL(" WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, %s)"),
                            tuple(bbox), srid_param=True)

    def read_fids(self, name: str, fids) -> gpd.GeoDataFrame:
        """The features with the given ids (fid index, ascending): what a tiling job reads per
        tile, so it never holds a whole layer."""
        ids = [int(v) for v in np.unique(np.asarray(fids, np.int64))]
        return self._select(name, sql.SQL(" WHERE fid = ANY(%s)"), (ids,))

    def fid_extent(self, name: str) -> tuple[int, int] | None:
        """Smallest and largest fid of a feature layer (None when it is empty)."""
        if name not in self.layers():
            raise LayerNotFoundError(f"no layer {name!r}", path=_redact(self.uri))
        with self._connect() as con, con.cursor() as cur:
            cur.execute(sql.SQL("SELECT min(fid), max(fid) FROM {}").format(self._table(name)))
            lo, hi = cur.fetchone()
        return None if lo is None else (int(lo), int(hi))

    def read_envelopes(self, name: str, columns=(), fids=None) -> pd.DataFrame:
        """Every feature's id, envelope and geometry type, and the given columns, without
        transferring geometries: the light pass of a job that then reads the layer piece by piece
        (:meth:`read_fids`). Same frame as :meth:`GeoPackageStore.read_envelopes`."""
        if name not in self.layers():
            raise LayerNotFoundError(f"no layer {name!r}", path=_redact(self.uri))
        with self._connect() as con, con.cursor() as cur:
            cur.execute("SELECT Find_SRID(%s, %s, 'geom')", (self.schema, name))
            srid = cur.fetchone()[0]
            cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                        "%s AND table_name = %s", (self.schema, name))
            have = {r[0] for r in cur.fetchall()}
            cols = [c for c in columns if c in have and c not in ("fid", "geom")]
            extra = sql.SQL("").join(sql.SQL(", {}").format(sql.Identifier(c)) for c in cols)
            where = sql.SQL("") if fids is None else sql.SQL(" WHERE fid BETWEEN {} AND {}").format(
                sql.Literal(int(fids[0])), sql.Literal(int(fids[1])))
            cur.execute(sql.SQL(
                "SELECT fid, ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom), CASE WHEN "
                "geom IS NULL OR ST_IsEmpty(geom) THEN NULL ELSE GeometryType(geom) END{} "
                "FROM {}{} ORDER BY fid").format(extra, self._table(name), where))
            rows = cur.fetchall()
        names = ["fid", "minx", "miny", "maxx", "maxy", "geom_type", *cols]
        frame = pd.DataFrame(rows, columns=names).set_index("fid")
        frame.index = pd.Index(frame.index.to_numpy(np.int64))
        for c in ("minx", "miny", "maxx", "maxy"):
            frame[c] = frame[c].astype(np.float64)
        frame.loc[frame["geom_type"].isna(), ["minx", "miny", "maxx", "maxy"]] = np.nan
        frame.attrs["crs"] = CRS.from_epsg(srid).to_string() if srid else None
        return frame

    def _select(self, name: str, where: sql.Composable, params: tuple,
                srid_param: bool = False) -> gpd.GeoDataFrame:
        if name not in self.layers():
            raise LayerNotFoundError(f"no layer {name!r}", path=_redact(self.uri))
        table = self._table(name)
        with self._connect() as con, con.cursor() as cur:
            cur.execute("SELECT Find_SRID(%s, %s, 'geom')", (self.schema, name))
            srid = cur.fetchone()[0]
            query = sql.SQL("SELECT *, ST_AsBinary(geom) AS __wkb FROM {}").format(table)
            cur.execute(query + where + sql.SQL(" ORDER BY fid"),
                        (*params, srid) if srid_param else params)
            names = [d.name for d in cur.description]
            rows = cur.fetchall()
        frame = pd.DataFrame(rows, columns=names)
        geoms = shapely.from_wkb([bytes(b) if b is not None else None for b in frame["__wkb"]])
        frame = frame.drop(columns=["geom", "__wkb"]).set_index("fid")
        return gpd.GeoDataFrame(frame, geometry=geoms, crs=srid or None)

    def read_raster(self, name: str) -> DemSource:
        """Mosaic a raster layer's tiles back into one array."""
        with self._connect() as con, con.cursor() as cur:
            cur.execute(sql.SQL("SELECT ST_AsBinary(rast) FROM {}").format(self._table(name)))
            tiles = [parse_raster_wkb(bytes(r[0])) for r in cur.fetchall()]
        if not tiles:
            raise LayerNotFoundError(f"raster {name!r} is empty", path=_redact(self.uri))
        xs = [t[1].c for t in tiles]
        ys = [t[1].f for t in tiles]
        a, e = tiles[0][1].a, tiles[0][1].e
        x0, y0 = min(xs), max(ys)
        cols = round((max(t[1].c + t[0].shape[1] * a for t in tiles) - x0) / a)
        rows = round((min(t[1].f + t[0].shape[0] * e for t in tiles) - y0) / e)
        out = np.full((rows, cols), np.nan, dtype="float32")
        for data, origin, _ in tiles:
            c, r = round((origin.c - x0) / a), round((origin.f - y0) / e)
            out[r:r + data.shape[0], c:c + data.shape[1]] = data
        return DemSource(path=_redact(self.uri), data=out, transform=Affine(a, 0, x0, 0, e, y0),
                         crs=CRS.from_epsg(tiles[0][2]))


def raster_wkb(data: np.ndarray, origin: Affine, srid: int) -> bytes:
    """PostGIS raster WKB (little-endian, one 32BF band, NaN no-data) for one tile."""
    h, w = data.shape
    header = struct.pack("<BHHdddddd iHH".replace(" ", ""), 1, 0, 1, origin.a, origin.e,
                         origin.c, origin.f, origin.b, origin.d, srid, w, h)
    band = struct.pack("<Bf", 10 | 0x40, np.nan)  # pixel type 32BF, has no-data
    return header + band + np.ascontiguousarray(data, dtype="<f4").tobytes()


def parse_raster_wkb(blob: bytes) -> tuple[np.ndarray, Affine, int]:
    """Decode what :func:`raster_wkb` writes (and PostGIS returns for such tiles)."""
    fmt = "<BHHddddddiHH"
    head = struct.calcsize(fmt)
    (_, _, nbands, sx, sy, ipx, ipy, kx, ky, srid, w, h) = struct.unpack(fmt, blob[:head])
    pixtype = blob[head] & 0x0F
    if nbands != 1 or pixtype != 10:
        raise StoreError(f"unexpected raster tile: {nbands} bands, pixel type {pixtype}")
    start = head + 1 + 4
    data = np.frombuffer(blob[start:start + 4 * w * h], dtype="<f4").reshape(h, w).copy()
    return data, Affine(sx, kx, ipx, ky, sy, ipy), srid


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
