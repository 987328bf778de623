"""The embedded default store: one GeoPackage file.

Vector layers are feature tables with an R-tree spatial index (written by GDAL); DEMs are tiled
gridded-coverage tables (float32 TIFF tiles, NaN for no data); the catalogue is an attributes table
``ngis_catalog`` holding one JSON map-asset record per layer.

Writes are atomic: the batch goes into a copy beside the store, which replaces the store by
``os.replace`` only once everything is written and checked.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import rasterio
import shapely
from pyproj import CRS
from rasterio.windows import Window

from gis.errors import LayerNotFoundError, StoreError
from gis.io.raster import DemSource
from gis.store.base import CATALOG_TABLE, RasterLayer, Store

_GRIDDED = ("gpkg_2d_gridded_tile_ancillary", "gpkg_2d_gridded_coverage_ancillary")


class GeoPackageStore(Store):
    """A base-map store in one GeoPackage file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.uri = str(path)

    def exists(self) -> bool:
        return self.path.is_file()

    # -- reading ---------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if not self.exists():
            raise StoreError("no store here (run ngis ingest first)", path=self.uri)
        try:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            con.execute("SELECT 1 FROM gpkg_contents LIMIT 1")
        except sqlite3.DatabaseError as err:
            raise StoreError(f"not a GeoPackage: {err}", path=self.uri) from err
        return con

    def layers(self) -> list[str]:
        with contextlib.closing(self._connect()) as con:
            rows = con.execute("SELECT table_name FROM gpkg_contents WHERE table_name != ? "
                               "ORDER BY table_name", (CATALOG_TABLE,)).fetchall()
        return [r[0] for r in rows]

    def layer_kind(self, name: str) -> str:
        """``features`` or ``2d-gridded-coverage``."""
        with contextlib.closing(self._connect()) as con:
            row = con.execute("SELECT data_type FROM gpkg_contents WHERE table_name = ?",
                              (name,)).fetchone()
        if row is None:
            raise LayerNotFoundError(f"no layer {name!r}", path=self.uri)
        return row[0]

    def read(self, name, bbox=None) -> gpd.GeoDataFrame:
        self._check_features(name)
        return pyogrio.read_dataframe(self.path, layer=name, bbox=bbox, fid_as_index=True)

    def _check_features(self, name: str) -> None:
        if name not in self.layers():
            raise LayerNotFoundError(f"no layer {name!r} (has: {', '.join(self.layers())})",
                                     path=self.uri)
        if self.layer_kind(name) != "features":
            raise LayerNotFoundError(f"{name!r} is a raster layer, not features", path=self.uri)

    # -- reading a layer piece by piece (tiling jobs) ------------------------------------------
    def read_envelopes(self, name: str, columns: Sequence[str] = (),
                       fids: tuple[int, int] | None = None) -> pd.DataFrame:
        """Every feature's id, envelope and geometry type, and the given columns, without reading
        the geometries (the envelope comes from the GeoPackage geometry header): the light pass
        of a job that then reads the layer piece by piece with :meth:`read_fids`.

        Args:
            name: Feature layer.
            columns: Attribute columns to include (those the layer lacks are left out).
            fids: Only features whose fid lies in this (first, last) range (a national layer is
                read in slices; see :meth:`fid_extent`).

        Returns:
            Frame indexed by fid (ascending): ``minx, miny, maxx, maxy`` (NaN for a null or empty
            geometry), ``geom_type`` (upper-case OGC name such as ``POLYGON``, None for a null or
            empty geometry) and the columns; ``attrs["crs"]`` holds the layer CRS.
        """
        info = self._layout(name)
        g, fid = _quote(info["geometry"]), _quote(info["fid"])
        cols = [c for c in columns if c in info["fields"]]
        sql = (f"SELECT {fid}, ST_MinX({g}) AS minx, ST_MinY({g}) AS miny, "
               f"ST_MaxX({g}) AS maxx, ST_MaxY({g}) AS maxy, CASE WHEN {g} IS NULL OR "
               f"ST_IsEmpty({g}) THEN NULL ELSE ST_GeometryType({g}) END AS geom_type"
               + "".join(f", {_quote(c)}" for c in cols)
               + f" FROM {_quote(name)}"
               + ("" if fids is None else f" WHERE {fid} BETWEEN {int(fids[0])} AND {int(fids[1])}")
               + f" ORDER BY {fid}")
        # GDAL turns the primary key into the FID of the result
        frame = pd.DataFrame(pyogrio.read_dataframe(self.path, sql=sql, read_geometry=False,
                                                    fid_as_index=True, use_arrow=True))
        frame.index = pd.Index(frame.index.to_numpy(np.int64))
        frame.loc[frame["geom_type"].isna(), ["minx", "miny", "maxx", "maxy"]] = np.nan
        frame.attrs["crs"] = None if info["crs"] is None else info["crs"].to_string()
        return frame

    def fid_extent(self, name: str) -> tuple[int, int] | None:
        """Smallest and largest fid of a feature layer (None when it is empty)."""
        info = self._layout(name)
        fid = _quote(info["fid"])
        lo, hi = self._reader().execute(f"SELECT min({fid}), max({fid}) FROM {_quote(name)}"
                                        ).fetchone()
        return None if lo is None else (int(lo), int(hi))

    def read_fids(self, name: str, fids: Sequence[int]) -> gpd.GeoDataFrame:
        """The features with the given ids (fid index, ascending), read with SQLite straight from
        the table: what a tiling job reads per tile, so it never holds a whole layer.

        Columns come typed as :meth:`read` types them (REAL as float64, INTEGER as int64 or, with
        nulls, float64, BOOLEAN as bool or, with nulls, object, text as strings), except DATE and
        DATETIME, which stay ISO text.
        """
        index, data, geoms = self.read_fid_columns(name, fids)
        return gpd.GeoDataFrame(data, geometry=geoms, crs=self._layout(name)["crs"],
                                index=index)

    def read_fid_columns(self, name: str, fids: Sequence[int]
                         ) -> tuple[pd.Index, dict[str, Any], np.ndarray]:
        """:meth:`read_fids` without the frame: (fid index, column name -> values, shapely
        geometries), for callers that take the rows apart anyway."""
        info = self._layout(name)
        fids = np.unique(np.asarray(fids, np.int64))
        fid, g = _quote(info["fid"]), _quote(info["geometry"])
        names = list(info["fields"])
        head = f"SELECT {fid}, {g}" + "".join(f", {_quote(c)}" for c in names) + \
            f" FROM {_quote(name)} WHERE "
        rows: list[tuple] = []
        con = self._reader()
        for where in _fid_clauses(fid, fids):
            rows += con.execute(head + where + f" ORDER BY {fid}").fetchall()
        if len(fids) > _IN_TERMS:
            rows.sort(key=lambda r: r[0])
        cols = list(zip(*rows)) if rows else [()] * (2 + len(names))
        index = pd.Index(np.asarray(cols[0], np.int64))
        data = {c: _typed(v, info["fields"][c]) for c, v in zip(names, cols[2:], strict=True)}
        for v in data.values():
            if isinstance(v, pd.Series):
                v.index = index
        return index, data, gpkg_geometries(cols[1])

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection for :meth:`read_fids` (kept open: a job reads
        thousands of tiles; it sees the file as it was when the connection opened)."""
        local = self.__dict__.setdefault("_readers", threading.local())
        if getattr(local, "con", None) is None:
            local.con = self._connect()
        return local.con

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_readers", "_layouts")}

    def _layout(self, name: str) -> dict[str, Any]:
        """fid and geometry column names, field types and CRS of a feature layer (cached)."""
        cache = self.__dict__.setdefault("_layouts", {})
        if name not in cache:
            self._check_features(name)
            info = pyogrio.read_info(self.path, layer=name)
            with contextlib.closing(self._connect()) as con:
                decl = {r[1]: (r[2] or "").upper() for r in
                        con.execute(f"PRAGMA table_info({_quote(name)})").fetchall()}
            cache[name] = {"fid": info["fid_column"] or "fid",
                           "geometry": info["geometry_name"] or "geom",
                           "crs": None if info["crs"] is None else CRS.from_user_input(info["crs"]),
                           "fields": {f: decl.get(f, "TEXT") for f in info["fields"]}}
        return cache[name]

    def read_raster(self, name: str) -> DemSource:
        """Read a whole raster layer."""
        if self.layer_kind(name) != "2d-gridded-coverage":
            raise LayerNotFoundError(f"{name!r} is not a raster layer", path=self.uri)
        with rasterio.open(f"GPKG:{self.path}:{name}") as src:
            return DemSource(path=self.uri, data=src.read(1).astype("float32"),
                             transform=src.transform, crs=src.crs)

    def catalog(self) -> list[dict[str, Any]]:
        with contextlib.closing(self._connect()) as con:
            try:
                rows = con.execute(f"SELECT record FROM {CATALOG_TABLE} ORDER BY id").fetchall()
            except sqlite3.OperationalError:
                return []
        return [json.loads(r[0]) for r in rows]

    # -- writing ---------------------------------------------------------------------------
    def write(self, vectors, rasters, records) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.stem}.tmp-{os.getpid()}.gpkg")
        try:
            if self.exists():
                self._connect().close()  # refuse to build on a file that is no GeoPackage
                shutil.copyfile(self.path, tmp)
            for layer in vectors:
                _drop_table(tmp, layer.name)
                pyogrio.write_dataframe(layer.frame, tmp, layer=layer.name, driver="GPKG",
                                        layer_options={"SPATIAL_INDEX": "YES"})
            for raster in rasters:
                _drop_table(tmp, raster.name)
                _write_raster(tmp, raster)
            _write_catalog(tmp, records() if callable(records) else records)
            _check(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)


def _write_raster(path: Path, raster: RasterLayer) -> None:
    rows, cols = raster.shape
    profile = dict(driver="GPKG", width=cols, height=rows, count=1, dtype="float32",
                   crs=raster.crs, transform=raster.transform)
    options = dict(RASTER_TABLE=raster.name, TILE_FORMAT="TIFF", APPEND_SUBDATASET="YES",
                   BLOCKSIZE=256)
    if not path.exists():
        options.pop("APPEND_SUBDATASET")
    with rasterio.open(path, "w", **profile, **options) as dst:
        for (row_off, col_off), block in raster.blocks():
            h, w = block.shape
            dst.write(block.astype("float32"), 1, window=Window(col_off, row_off, w, h))


def _drop_table(path: Path, name: str) -> None:
    """Remove a table and every GeoPackage registration of it (features or gridded coverage)."""
    if not path.exists():
        return
    with contextlib.closing(sqlite3.connect(path)) as con:
        master = con.execute("SELECT name, type, sql FROM sqlite_master").fetchall()
        tables = {n for n, t, _ in master if t == "table"}
        if name not in tables:
            return
        for trig, in con.execute("SELECT name FROM sqlite_master WHERE type='trigger' AND "
                                 "tbl_name = ?", (name,)).fetchall():
            con.execute(f'DROP TRIGGER IF EXISTS "{trig}"')
        for meta in ("gpkg_contents", "gpkg_geometry_columns", "gpkg_tile_matrix",
                     "gpkg_tile_matrix_set", "gpkg_extensions", "gpkg_ogr_contents", *_GRIDDED):
            if meta in tables:
                col = {"gpkg_2d_gridded_tile_ancillary": "tpudt_name",
                       "gpkg_2d_gridded_coverage_ancillary": "tile_matrix_set_name"}.get(
                           meta, "table_name")
                con.execute(f'DELETE FROM "{meta}" WHERE "{col}" = ?', (name,))
        # The R-tree is a virtual table; dropping it drops its shadow tables.
        for table, _, sql in master:
            if table.startswith(f"rtree_{name}_") and (sql or "").upper().startswith("CREATE VIRTUAL"):
                con.execute(f'DROP TABLE IF EXISTS "{table}"')
        con.execute(f'DROP TABLE IF EXISTS "{name}"')
        con.commit()


def _write_catalog(path: Path, records: list[dict[str, Any]]) -> None:
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS {CATALOG_TABLE} (id TEXT PRIMARY KEY NOT NULL, "
                    "title TEXT, access_grade TEXT NOT NULL, record TEXT NOT NULL)")
        con.execute("INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, "
                    "description) VALUES (?, 'attributes', ?, ?)",
                    (CATALOG_TABLE, CATALOG_TABLE, "NGIS map-asset catalogue (ISO 19115 core)"))
        con.executemany(f"INSERT OR REPLACE INTO {CATALOG_TABLE} VALUES (?, ?, ?, ?)",
                        [(r["id"], r["title"], r["access_grade"],
                          json.dumps(r, ensure_ascii=False, sort_keys=True)) for r in records])
        con.commit()


def _check(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as con:
        result = con.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise StoreError(f"GeoPackage failed its integrity check: {result}", path=str(path))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_IN_TERMS = 10000


def _fid_clauses(fid: str, fids: np.ndarray, terms: int = _IN_TERMS):
    """WHERE clauses selecting sorted unique ``fids`` as IN lists of at most ``terms`` ids
    (SQLite looks each up by rowid; an OR of ranges would make it scan)."""
    for i in range(0, len(fids), terms):
        yield f"{fid} IN ({','.join(map(str, fids[i:i + terms].tolist()))})"


def _typed(values: tuple, decl: str) -> np.ndarray | pd.Series:
    """One column of SQLite values typed the way pyogrio types the field."""
    if decl in ("INTEGER", "INT", "MEDIUMINT", "SMALLINT", "TINYINT", "BIGINT", "INTEGER64"):
        if None in values:
            return np.array(values, np.float64)
        return np.array(values, np.int64)
    if decl in ("REAL", "FLOAT", "DOUBLE"):
        return np.array(values, np.float64)
    if decl == "BOOLEAN":
        if None in values:
            return np.array([None if v is None else bool(v) for v in values], object)
        return np.array(values, bool)
    return pd.Series(values, dtype=object)


def gpkg_geometries(blobs) -> np.ndarray:
    """Shapely geometries from GeoPackage geometry blobs (header stripped; WKB decoded)."""
    wkb: list[bytes | None] = []
    for b in blobs:
        if b is None:
            wkb.append(None)
            continue
        flags = b[3]
        if b[:2] != b"GP" or flags & 0x20:
            raise StoreError("unsupported GeoPackage geometry blob (extended type)")
        wkb.append(b[8 + (0, 32, 48, 48, 64, 0, 0, 0)[(flags >> 1) & 7]:])
    return shapely.from_wkb(np.array(wkb, dtype=object))


def block_windows(shape: tuple[int, int], size: int = 1024):
    """Row/col offsets and shapes of blocks tiling a grid."""
    rows, cols = shape
    for r in range(0, rows, size):
        for c in range(0, cols, size):
            yield r, c, min(size, rows - r), min(size, cols - c)


__all__ = ["GeoPackageStore", "block_windows"]
