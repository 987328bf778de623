"""``ngis tiles build``: a store layer (or a frame) -> meshes -> a 3D Tiles tileset, tile by tile.

The job never holds a whole layer. It runs in two passes:

1. **Plan** (:func:`plan_layer`): a light pass over the layer that reads each feature's id,
   envelope, geometry type and the few columns the heights need, but no geometry
   (``Store.read_envelopes``: the GeoPackage geometry header, PostGIS ``ST_XMin``...). Buildings
   without a ground elevation read their footprints (to sample the DEM) in batches of at most
   ``max_features`` rows; lines, which are cut into pieces and draped, read theirs in such
   batches too. What stays is a few numbers per feature: fid, bounds, heights. The quadtree
   (:func:`tiles.tiling.build_tileset`) is planned from those, so every feature lands in exactly
   one tile (its own fid list).
2. **Build**: each tile with content reads just its rows (``Store.read_fids``), fingerprints them,
   and, unless the previous tileset has that fingerprint, builds the meshes and encodes the
   content (:func:`tile_content`). Peak memory is the plan plus the largest tile, not the layer.

Tiles are independent, so they can be built on dask.distributed: a LocalCluster on this machine
(``workers`` > 1), or a running scheduler (``scheduler="tcp://host:8786"``, whose workers must
reach the store themselves: a PostGIS URL, or a GeoPackage on a shared disk). A task is a run of
consecutive tiles: the worker receives their fids (and heights, or DEM windows for lines), the
store URI and the options, reads its own rows, and writes the contents into a staging directory
beside the output (local workers) or sends the bytes back (remote ones); no frames travel. The
driver only plans, moves the staged files into place and writes ``tileset.json``. Only tiles
whose content changed since the previous build are built (:mod:`tiles.tileset` reuses the rest).

**BIM detail**: buildings whose surfaces are BIM elements (rows with an ``ifc_class``, from
:mod:`gis.io.ifc`) are drawn as their envelope (footprint and height, LOD1) in the quadtree, and
each tile holding one gets ``refine: REPLACE`` and a single child, its detail tile (a
``"detail"`` variant of the tile, :attr:`tiles.tiling.Tile.variant`, content
``content/L/X/Y.detail.glb``, ``refine: ADD``): the same buildings, the BIM ones as one feature
per element with its IFC class, storey, name, GlobalId and building id (:func:`bim_detail_mesh`),
the tile's old children below it (:func:`add_bim_detail`, on the tile tree before it is
written). So a BIM building shows as a block from afar and as walls, slabs and windows one can
pick close up. Explicit tilesets only (implicit ones keep the envelopes). Detail contents have
fingerprints of their own, so a rebuild reuses them like any other content.

Output is byte for byte what building from the layer in memory gives (``build_tiles(frame)``,
the same code on rows cut from the frame), whichever store or number of workers.
"""

from __future__ import annotations

import dataclasses
import gc
import gzip as gzip_module
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import shapely.ops
from affine import Affine
from pyproj import CRS

from gis.errors import DataError
from gis.io.raster import DemSource
from gis.mesh.base import Mesh
from gis.mesh.report import MeshReport
from gis.mesh.terrain import sample_dem
from tiles.b3dm import write_b3dm
from tiles.content import ENCODER_VERSION
from tiles.glb import GENERATOR, write_glb
from tiles.tileset import _read_manifest, write_tileset
from tiles.tiling import Tile, TileTree, build_tileset, place_regions

log = logging.getLogger(__name__)

KINDS = {"building": "buildings", "road": "roads", "rail": "rail", "pipeline": "pipelines"}
#: Geometry types (shapely ids) each kind is built from.
WANTED = {"building": (3, 6), "road": (1, 5), "rail": (1, 5), "pipeline": (1, 5)}
#: Columns the plan reads for building heights (besides envelopes).
HEIGHT_COLUMNS = ("height", "storeys", "storey_height", "roof_height", "roof_type",
                  "ground_elevation")
#: Fids per slice of the plan's light pass (bounds its temporaries on national layers).
ENVELOPE_CHUNK = 250_000
#: Version of the tile fingerprint (part of every fingerprint: a change rebuilds everything).
DIGEST_VERSION = 2
#: Column of a surfaces table that marks BIM elements (IFC, :mod:`gis.io.ifc`): their buildings
#: get a detail tile (one feature per element) below the tile holding their envelope.
ELEMENT_CLASS = "ifc_class"
#: Variant name of the BIM detail tiles (:attr:`tiles.tiling.Tile.variant`).
DETAIL = "detail"
#: Per-element metadata of detail tiles: surfaces column -> property name.
ELEMENT_FIELDS = {"ifc_class": "ifc_class", "storey": "storey", "name": "element_name",
                  "part_id": "global_id", "building_id": "building_id",
                  "properties": "element_properties"}
_TYPE_IDS = {"POINT": 0, "LINESTRING": 1, "LINEARRING": 2, "POLYGON": 3, "MULTIPOINT": 4,
             "MULTILINESTRING": 5, "MULTIPOLYGON": 6, "GEOMETRYCOLLECTION": 7}
_TYPE_NAMES = {0: "Point", 1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint",
               5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}


@dataclass
class TilesOptions:
    """How to build.

    Attributes:
        lod: 1 (prisms) or 2 (roofs from roof types, or CityGML surfaces where the store has them).
        version: 3D Tiles ``1.1`` (glb + EXT_mesh_features/EXT_structural_metadata) or ``1.0``
            (b3dm + batch table).
        implicit: Implicit quadtree tiling with subtrees (1.1 only).
        compress: ``none``, ``quantize`` (KHR_mesh_quantization) or ``meshopt``
            (+ EXT_meshopt_compression).
        gzip: Store content gzip-compressed (serve with ``Content-Encoding: gzip``).
        max_features: Features per tile before a tile splits (also the most rows the plan reads
            with geometry at once).
        workers: Local dask worker processes (1: build in this process).
        scheduler: Address of a running dask scheduler (overrides ``workers``); its workers read
            the store themselves.
    """

    lod: int = 1
    version: Literal["1.0", "1.1"] = "1.1"
    implicit: bool = False
    compress: Literal["none", "quantize", "meshopt"] = "none"
    gzip: bool = False
    max_features: int = 1000
    workers: int = 1
    scheduler: str | None = None


@dataclass
class TilesSummary:
    """What a build did."""

    path: Path
    features: int
    skipped: int
    tiles: int
    contents: int
    written: int
    reused: int
    bytes: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    largest_tile: int = 0


@dataclass(frozen=True)
class StoreLayer:
    """A layer of a store, read tile by tile (never whole). Small enough to send to workers.

    Attributes:
        uri: Store URI (GeoPackage path or ``postgresql://`` URL).
        layer: Feature layer.
        surfaces: Table of the layer's CityGML boundary surfaces (``building_id``,
            ``surface_type``, 3D geometry) for LOD2, or None.
    """

    uri: str
    layer: str
    surfaces: str | None = None
    version: str | None = None


def _stamped(layer: StoreLayer) -> StoreLayer:
    """The layer with the store file's identity (inode, size, mtime): workers that outlive a build
    keep their open stores by it, and must not read a replaced GeoPackage through a connection to
    the old file. (PostGIS reads open a connection per read.)"""
    if "://" in layer.uri or not os.path.exists(layer.uri):
        return layer
    st = os.stat(layer.uri)
    return dataclasses.replace(layer, version=f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}")


# -- where rows come from -----------------------------------------------------------------------

def _type_codes(names: pd.Series) -> np.ndarray:
    """Shapely geometry type ids from OGC type names (``POLYGON``, ``POLYGON Z``, ``ST_Polygon``,
    ``POLYGONM``...); -1 for None."""
    out = np.full(len(names), -1, np.int64)
    for name in names.dropna().unique():  # a handful of names: compared column-wise
        key = str(name).upper().split()[0].removeprefix("ST_")
        for suffix in ("ZM", "Z", "M"):
            if key not in _TYPE_IDS and key.endswith(suffix):
                key = key[:-len(suffix)]
        out[(names == name).to_numpy(bool, na_value=False)] = _TYPE_IDS.get(key, 7)
    return out


class FrameSource:
    """Rows from a GeoDataFrame in memory (``build_tiles(frame)``); fids are row positions."""

    def __init__(self, frame: gpd.GeoDataFrame, surfaces: gpd.GeoDataFrame | None = None):
        self.frame = frame.reset_index(drop=True)
        self.crs = frame.crs
        self.surfaces = None if surfaces is None else surfaces.reset_index(drop=True)
        self.remote = None

    def envelopes(self, columns: tuple[str, ...]) -> pd.DataFrame:
        geoms = np.asarray(self.frame.geometry.array, dtype=object)
        gone = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        out = pd.DataFrame(shapely.bounds(geoms), columns=["minx", "miny", "maxx", "maxy"])
        out.loc[gone] = np.nan
        out["geom_type"] = np.where(gone, -1, shapely.get_type_id(geoms))
        for c in columns:
            if c in self.frame.columns:
                out[c] = self.frame[c].to_numpy()
        return out

    def envelope_chunks(self, columns: tuple[str, ...]) -> Iterator[pd.DataFrame]:
        yield self.envelopes(columns)

    def rows(self, fids: np.ndarray) -> gpd.GeoDataFrame:
        return self.frame.iloc[np.asarray(fids, np.int64)]

    tile_rows = rows

    def surface_keys(self) -> pd.Series:
        return self.surfaces["building_id"]

    def element_buildings(self) -> set:
        """Ids of the buildings with BIM elements (surface rows with an ``ifc_class``)."""
        if self.surfaces is None or ELEMENT_CLASS not in self.surfaces:
            return set()
        return set(self.surfaces["building_id"][self.surfaces[ELEMENT_CLASS].notna()])

    def surface_rows(self, fids: np.ndarray) -> gpd.GeoDataFrame:
        return self.surfaces.iloc[np.asarray(fids, np.int64)]


class StoreSource:
    """Rows from a store layer, by fid (``Store.read_envelopes`` / ``Store.read_fids``)."""

    def __init__(self, layer: StoreLayer):
        from gis.store import open_store

        self.remote = layer
        self.store = open_store(layer.uri)
        self.crs = self.store.read_fids(layer.layer, []).crs  # checks the layer, reads no row

    def envelopes(self, columns: tuple[str, ...], fids: tuple[int, int] | None = None
                  ) -> pd.DataFrame:
        env = self.store.read_envelopes(self.remote.layer, list(columns),
                                        **({} if fids is None else {"fids": fids})).copy()
        env["geom_type"] = _type_codes(env["geom_type"])
        return env

    def envelope_chunks(self, columns: tuple[str, ...], chunk: int | None = None
                        ) -> Iterator[pd.DataFrame]:
        """The envelopes in slices of ``chunk`` fids (:data:`ENVELOPE_CHUNK`; one slice where
        the store cannot slice)."""
        chunk = chunk or ENVELOPE_CHUNK
        extent = getattr(self.store, "fid_extent", None)
        span = None if extent is None else extent(self.remote.layer)
        if span is None:
            yield self.envelopes(columns)
            return
        for first in range(span[0], span[1] + 1, chunk):
            env = self.envelopes(columns, (first, min(first + chunk - 1, span[1])))
            if len(env):
                yield env

    def rows(self, fids: np.ndarray) -> gpd.GeoDataFrame:
        return self.store.read_fids(self.remote.layer, fids)

    def tile_rows(self, fids: np.ndarray) -> gpd.GeoDataFrame | Rows:
        """The rows of a tile, taken apart when the store can (no frame to build)."""
        read = getattr(self.store, "read_fid_columns", None)
        if read is None:
            return self.rows(fids)
        return Rows(*read(self.remote.layer, fids), self.crs)

    def surface_keys(self) -> pd.Series:
        return self.store.read_envelopes(self.remote.surfaces, ["building_id"])["building_id"]

    def element_buildings(self) -> set:
        """Ids of the buildings with BIM elements (surface rows with an ``ifc_class``)."""
        if ELEMENT_CLASS not in self.store.read_fids(self.remote.surfaces, []).columns:
            return set()  # no BIM in the table: no second pass over it
        env = self.store.read_envelopes(self.remote.surfaces, ["building_id", ELEMENT_CLASS])
        if ELEMENT_CLASS not in env:
            return set()
        return set(env["building_id"][env[ELEMENT_CLASS].notna()])

    def surface_rows(self, fids: np.ndarray) -> gpd.GeoDataFrame:
        return self.store.read_fids(self.remote.surfaces, fids)


@dataclass
class Rows:
    """Rows of a layer taken apart (no frame built): what a tile reads from a GeoPackage."""

    index: pd.Index
    columns: dict[str, Any]
    geoms: np.ndarray
    crs: Any

    def __len__(self) -> int:
        return len(self.index)

    def frame(self) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame(self.columns, geometry=self.geoms, crs=self.crs,
                                index=self.index)


_OPEN: dict[tuple[StoreLayer, int], StoreSource] = {}


def _source_of(reader: StoreLayer | FrameSource | StoreSource) -> FrameSource | StoreSource:
    """A source for a worker: store layers are opened once per process and thread."""
    if not isinstance(reader, StoreLayer):
        return reader
    key = (reader, threading.get_ident())
    if key not in _OPEN:
        for old in [k for k in _OPEN if k[1] == key[1] and k[0].uri == reader.uri]:
            del _OPEN[old]  # an earlier version of the store: let its connection go
        _OPEN[key] = StoreSource(reader)
    return _OPEN[key]


def _batches(values: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


# -- the plan -----------------------------------------------------------------------------------

@dataclass
class Plan:
    """A few numbers per feature, what tiling and the tile builds need.

    Attributes:
        fids: (n,) source row (fid) of each feature, ascending.
        bounds: (n, 6) minx, miny, maxx, maxy, minz, maxz (store CRS).
        pieces: (n,) piece of the row (lines are cut at :data:`MAX_PIECE`), or None.
        heights: (n, 3) base, eave and top elevation (buildings), or None.
        ids: (n,) ``id`` values when CityGML surfaces are matched to buildings, else None.
        dem: What lines are draped on (the DEM, or flat ground), or None.
        has_roof_types: Whether the layer has a ``roof_type`` column.
    """

    fids: np.ndarray
    bounds: np.ndarray
    pieces: np.ndarray | None = None
    heights: np.ndarray | None = None
    ids: np.ndarray | None = None
    dem: DemSource | None = None
    has_roof_types: bool = False

    def __len__(self) -> int:
        return len(self.fids)


class _GeometryCheck:
    """Which features have a usable geometry, slice by slice, and what to say about the rest."""

    def __init__(self, kind: str):
        self.kind, self.rows, self.wrong, self.dropped, self.first = kind, 0, 0, 0, None

    def keep(self, env: pd.DataFrame) -> np.ndarray:
        types = env["geom_type"].to_numpy(np.int64)
        if self.first is None and len(types):
            self.first = int(types[0])
        empty = types < 0
        wrong = ~empty & ~np.isin(types, WANTED[self.kind])
        self.rows += len(types)
        self.wrong += int(wrong.sum())
        self.dropped += int((empty | wrong).sum())
        return ~(empty | wrong)

    def finish(self, notes: list[str]) -> None:
        if self.rows and self.wrong == self.rows:
            raise DataError(f"the layer's geometries are {_TYPE_NAMES.get(self.first, '?')}: "
                            f"{KINDS[self.kind]} need "
                            f"{'footprints' if self.kind == 'building' else 'lines'}")
        if self.dropped:
            notes.append(f"{self.dropped} feature(s) without usable geometry left out")


def plan_layer(source: FrameSource | StoreSource, kind: str, dem: Callable[[], DemSource] | None,
               notes: list[str], *, batch: int = 1000, surfaces: bool = False) -> Plan:
    """The light pass: which features are built, their bounds (and heights), in fid order.

    Args:
        source: Where the rows come from.
        kind: ``building``, ``road``, ``rail`` or ``pipeline``.
        dem: Loads the DEM (called only when needed), or None.
        notes: Receives what was left out or assumed.
        batch: Most rows read with geometry at once.
        surfaces: Buildings get CityGML surfaces (their ``id`` s are kept to match them).

    Returns:
        The :class:`Plan`.
    """
    if kind == "building":
        return _plan_buildings(source, dem, notes, batch, surfaces)
    return _plan_lines(source, kind, dem, notes, batch)


def _plan_buildings(source, dem, notes, batch, surfaces) -> Plan:
    from gis.mesh.lod1 import building_heights

    check = _GeometryCheck("building")
    grid = None
    fids, bounds, heights, ids = [], [], [], []
    no_ground = bad = 0
    has_roof_types = False
    for env in source.envelope_chunks(HEIGHT_COLUMNS + (("id",) if surfaces else ())):
        has_roof_types |= "roof_type" in env
        env = env[check.keep(env)]
        if not len(env):
            continue
        f = env.index.to_numpy(np.int64)
        h = building_heights(env)
        missing = np.flatnonzero(~np.isfinite(h.base_z))
        if dem is not None and len(missing):  # the DEM under the footprint (point on surface)
            grid = grid or dem()
            xy = np.full((len(env), 2), np.nan)
            for part in _batches(missing, batch):
                pts = shapely.point_on_surface(np.asarray(source.rows(f[part]).geometry.array,
                                                          dtype=object))
                xy[part] = np.c_[shapely.get_x(pts), shapely.get_y(pts)]
            ground = np.full(len(env), np.nan)
            ground[missing] = sample_dem(grid.data, grid.transform, xy[missing, 0],
                                         xy[missing, 1])
            h = building_heights(env, ground)
        lost = ~np.isfinite(h.base_z)
        if lost.any():
            no_ground += int(lost.sum())
            on_zero = building_heights(env, 0.0)
            h = type(h)(*(np.where(lost, a, b) for a, b in zip(on_zero, h, strict=True)))
        ok = np.isfinite(h.top_z) & (h.top_z > h.base_z)
        bad += int((~ok).sum())
        fids.append(f[ok])
        bounds.append(env[["minx", "miny", "maxx", "maxy"]].to_numpy(np.float64)[ok])
        heights.append(np.c_[h.base_z, h.eave_z, h.top_z][ok])
        if surfaces and "id" in env:
            ids.append(env["id"].to_numpy(object)[ok])
    check.finish(notes)
    if no_ground:
        notes.append(f"{no_ground} building(s) have no ground elevation"
                     + (" and lie outside the DEM" if dem is not None else " and no DEM")
                     + ": placed on 0 m")
    if bad:
        notes.append(f"{bad} building(s) with neither height nor storeys left out")
    if not fids:
        return Plan(np.zeros(0, np.int64), np.zeros((0, 6)), heights=np.zeros((0, 3)),
                    has_roof_types=has_roof_types)
    h3 = np.concatenate(heights)
    return Plan(np.concatenate(fids), np.c_[np.concatenate(bounds), h3[:, 0], h3[:, 2]],
                heights=h3, ids=np.concatenate(ids) if ids else None,
                has_roof_types=has_roof_types)


def _plan_lines(source, kind, dem, notes, batch) -> Plan:
    check = _GeometryCheck(kind)
    kept = [env[check.keep(env)][["minx", "miny", "maxx", "maxy"]]
            for env in source.envelope_chunks(())]
    check.finish(notes)
    env = pd.concat(kept) if kept else pd.DataFrame(columns=["minx", "miny", "maxx", "maxy"])
    fids = np.asarray(env.index, np.int64)
    if dem is None:
        notes.append("no DEM: lines are draped on flat ground at 0 m")
        grid = flat_dem((env["minx"].min(), env["miny"].min(), env["maxx"].max(),
                         env["maxy"].max()), source.crs) if len(env) else None
    else:
        grid = dem()
    out_f, out_p, out_b = [], [], []
    outside = 0
    for part in _batches(fids, batch):
        pieces, src, piece = split_pieces(source.rows(part), MAX_PIECE)
        b2 = pieces.bounds.to_numpy()
        z = _line_z_range(pieces, kind, grid)
        keep = np.isfinite(z[:, 0])
        outside += int((~keep).sum())
        out_f.append(src[keep])
        out_p.append(piece[keep])
        out_b.append(np.c_[b2, z][keep])
    if outside:
        notes.append(f"{outside} line(s) wholly outside the DEM left out")
    if not out_f:
        return Plan(np.zeros(0, np.int64), np.zeros((0, 6)), np.zeros(0, np.int64), dem=grid)
    return Plan(np.concatenate(out_f), np.concatenate(out_b), np.concatenate(out_p), dem=grid)


#: Longest line piece (m): long roads and pipes are cut so no tile content gets far from its centre.
MAX_PIECE = 1000.0


def split_pieces(frame: gpd.GeoDataFrame, max_length: float
                 ) -> tuple[gpd.GeoDataFrame, np.ndarray, np.ndarray]:
    """Cut lines longer than ``max_length`` into pieces (each keeps the feature's attributes, so
    picking any piece shows the same record).

    Returns:
        (pieces in row order then along the line, fid of each piece (the input's index), number
        of the piece within its row).
    """
    index = np.asarray(frame.index, np.int64)
    lengths = frame.length.to_numpy()
    long_ = np.flatnonzero(lengths > max_length)
    if not len(long_):
        return frame.reset_index(drop=True), index, np.zeros(len(frame), np.int64)
    pieces, rows = [], []
    for i in long_:
        geom = frame.geometry.iloc[i]
        for part in getattr(geom, "geoms", [geom]):
            n = max(int(np.ceil(part.length / max_length)), 1)
            cuts = np.linspace(0, part.length, n + 1)
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                pieces.append(shapely.ops.substring(part, a, b))
                rows.append(i)
    keep = np.setdiff1d(np.arange(len(frame)), long_)
    pos = np.r_[keep, np.asarray(rows, np.int64)]
    order = np.argsort(pos, kind="stable")
    plain = frame.iloc[keep]
    cut = frame.iloc[rows].copy()
    cut.geometry = gpd.GeoSeries(pieces, index=cut.index, crs=frame.crs)
    out = pd.concat([plain, cut]).iloc[order].reset_index(drop=True)
    pos = pos[order]
    first = np.r_[True, pos[1:] != pos[:-1]]
    starts = np.maximum.accumulate(np.where(first, np.arange(len(pos)), 0))
    return out, index[pos], np.arange(len(pos)) - starts


def split_lines(frame: gpd.GeoDataFrame, max_length: float) -> gpd.GeoDataFrame:
    """Cut lines longer than ``max_length`` into pieces (see :func:`split_pieces`)."""
    return split_pieces(frame, max_length)[0]


def flat_dem(bounds, crs, cell: float = 10.0) -> DemSource:
    """A DEM of zeros covering ``bounds`` (for draping lines where no terrain is known)."""
    minx, miny, maxx, maxy = bounds
    cols = max(int(np.ceil((maxx - minx) / cell)) + 4, 2)
    rows = max(int(np.ceil((maxy - miny) / cell)) + 4, 2)
    transform = Affine(cell, 0, minx - 2 * cell, 0, -cell, maxy + 2 * cell)
    return DemSource("flat", np.zeros((rows, cols), np.float32), transform,
                     None if crs is None else CRS.from_user_input(crs))


def _line_z_range(frame: gpd.GeoDataFrame, kind: str, dem: DemSource) -> np.ndarray:
    """Generous (min, max) elevations of draped lines: the DEM along them, plus deck heights
    and minus depths and diameters."""
    cell = abs(dem.transform.a)
    dense = shapely.segmentize(np.asarray(frame.geometry.array, dtype=object), cell)
    xy, idx = shapely.get_coordinates(dense, return_index=True)
    z = sample_dem(dem.data, dem.transform, xy[:, 0], xy[:, 1])
    n = len(frame)
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    np.minimum.at(lo, idx, np.where(np.isfinite(z), z, np.inf))
    np.maximum.at(hi, idx, np.where(np.isfinite(z), z, -np.inf))

    def col(name, default):
        v = pd.to_numeric(frame[name], errors="coerce").to_numpy(float) if name in frame \
            else np.full(n, np.nan)
        return np.where(np.isfinite(v), v, default)

    lo = np.where(np.isfinite(lo), lo, np.nan)
    hi = np.where(np.isfinite(hi), hi, np.nan)
    if kind == "pipeline":
        depth = col("depth", 0.0) + col("diameter", 1000.0) / 1000.0
        inv = np.fmin(col("invert_start", np.inf), col("invert_end", np.inf))
        return np.c_[np.fmin(lo - depth, inv) - 1.0, hi + 0.5]
    return np.c_[lo - col("depth", 10.0) - 2.0, hi + col("deck_height", 6.0) + 3.0]


def _dem_window(dem: DemSource, bounds, margin_cells: int = 3) -> tuple[np.ndarray, Affine]:
    inv = ~dem.transform
    cols, rows = zip(*(inv @ (x, y) for x in bounds[[0, 2]] for y in bounds[[1, 3]]), strict=True)
    r0 = max(int(np.floor(min(rows))) - margin_cells, 0)
    c0 = max(int(np.floor(min(cols))) - margin_cells, 0)
    r1 = min(int(np.ceil(max(rows))) + margin_cells, dem.data.shape[0])
    c1 = min(int(np.ceil(max(cols))) + margin_cells, dem.data.shape[1])
    if r1 <= r0 or c1 <= c0:
        return np.full((1, 1), np.nan, np.float32), dem.transform
    return np.ascontiguousarray(dem.data[r0:r1, c0:c1]), dem.transform @ Affine.translation(c0, r0)


# -- one tile (module level: it runs on dask workers) ------------------------------------------

@dataclass
class TileSpec:
    """What a tile's build needs besides the store: small enough to send to a worker.

    Attributes:
        fids: Source rows to read (ascending, unique).
        feature_fids, pieces: Lines: fid and piece number of each feature of the tile.
        heights: Buildings: (k, 3) base, eave and top elevation of each feature.
        surface_fids: Rows of the surfaces table (LOD2 from CityGML surfaces).
        dem, dem_transform: Lines: the DEM window under the tile.
        rows, surface_rows: The rows themselves when they do not come from a store (frames).
        detail: Build the BIM detail of the tile (elements as features) instead of envelopes.
    """

    fids: np.ndarray
    feature_fids: np.ndarray | None = None
    pieces: np.ndarray | None = None
    heights: np.ndarray | None = None
    surface_fids: np.ndarray | None = None
    dem: np.ndarray | None = None
    dem_transform: Affine | None = None
    rows: gpd.GeoDataFrame | None = None
    surface_rows: gpd.GeoDataFrame | None = None
    detail: bool = False


@dataclass(frozen=True)
class TileJob:
    """The options every tile build shares."""

    standard: str
    kind: str
    lod: int
    format: str
    compress: str
    class_name: str
    crs: str
    gzip: bool
    prefix: bytes


@dataclass
class TileResult:
    """A built (or recognised) tile: its fingerprint, its content bytes (None when the previous
    tileset has that fingerprint, or when a worker left them in a staging file), the builder's
    notes and the rows it read."""

    digest: str
    data: bytes | None
    notes: list[str]
    rows: int
    staged: str | None = None


@dataclass
class TileInput:
    """Everything one tile's mesh builder needs.

    Attributes:
        geoms: The features' geometries (store CRS).
        attrs: Their attribute table (positional; what the tile carries).
        kind, lod: Layer kind and level of detail.
        heights: Buildings: (k, 3) base, eave and top elevation.
        dem, dem_transform: Lines: the DEM window they are draped on.
        surfaces: CityGML surfaces of the buildings (LOD2), or None.
        detail: BIM detail tile (see :func:`bim_detail_mesh`).
    """

    geoms: np.ndarray
    attrs: pd.DataFrame
    kind: str
    lod: int
    heights: np.ndarray | None = None
    dem: np.ndarray | None = None
    dem_transform: Affine | None = None
    surfaces: gpd.GeoDataFrame | None = None
    detail: bool = False


def tile_features(rows: gpd.GeoDataFrame | Rows, spec: TileSpec, kind: str
                  ) -> tuple[np.ndarray, pd.DataFrame]:
    """The tile's geometries and attribute table from its rows (lines are cut into pieces and
    the tile's pieces kept)."""
    if not np.array_equal(np.asarray(rows.index, np.int64), spec.fids):
        raise DataError("the layer changed while its tiles were being built: build again")
    if isinstance(rows, Rows):
        if kind == "building":
            data = {c: (pd.Series(v.to_numpy(), dtype=object) if isinstance(v, pd.Series)
                        else v) for c, v in rows.columns.items() if not str(c).startswith("_")}
            return rows.geoms, pd.DataFrame(data)
        rows = rows.frame()
    if kind != "building":
        pieces, src, piece = split_pieces(rows, MAX_PIECE)
        keep = np.isin((src << 24) + piece, (spec.feature_fids << 24) + spec.pieces)
        if keep.sum() != len(spec.pieces):
            raise DataError("the layer changed while its tiles were being built: build again")
        rows = pieces[keep]
    geoms = np.asarray(rows.geometry.array, dtype=object)
    name = rows.geometry.name
    data = {}
    for c in rows.columns:
        if c != name and not str(c).startswith("_"):
            v = rows[c].to_numpy()
            # object columns stay objects (pandas would convert strings to its string dtype)
            data[c] = pd.Series(v, dtype=object, copy=False) if v.dtype == object else v
    return geoms, pd.DataFrame(data)


def tile_content(reader: StoreLayer | FrameSource | StoreSource | None, spec: TileSpec,
                 job: TileJob, known: frozenset[str] | set[str] = frozenset()) -> TileResult:
    """Read one tile's rows, fingerprint them and, unless ``known`` has the fingerprint, build
    and encode the tile (gzipped when the job says so)."""
    source = None if reader is None else _source_of(reader)
    rows = spec.rows if spec.rows is not None else source.tile_rows(spec.fids)
    geoms, attrs = tile_features(rows, spec, job.kind)
    surfaces = spec.surface_rows
    if surfaces is None and spec.surface_fids is not None:
        surfaces = source.surface_rows(spec.surface_fids)
    digest = tile_digest(job.prefix, geoms, attrs, spec, surfaces)
    n_rows = len(rows) + (0 if surfaces is None else len(surfaces))
    if digest in known:
        return TileResult(digest, None, [], n_rows)
    t = TileInput(geoms, attrs, job.kind, job.lod, spec.heights, spec.dem, spec.dem_transform,
                  surfaces, spec.detail)
    data, notes = encode_tile(t, job.standard, job.format, job.compress, job.class_name, job.crs)
    if job.gzip:
        data = gzip_module.compress(data, compresslevel=9, mtime=0)
    return TileResult(digest, data, notes, n_rows)


def _canonical(values: np.ndarray) -> bytes:
    """A column's values as bytes that do not depend on how it was read: numbers as float64
    (int64 or float64 with NaN, or Python numbers with None from PostGIS), the rest as text."""
    if values.dtype.kind in "biuf":
        return b"n" + values.astype(np.float64).tobytes()
    items = values.tolist()
    if all(type(v) is str for v in items):
        return b"s" + "\x1f".join(items).encode("utf-8", "surrogatepass")
    null = [v is None or v is pd.NA or (isinstance(v, float) and v != v) for v in items]
    if all(n or isinstance(v, (int, float, np.number)) for v, n in zip(items, null, strict=True)):
        return b"n" + np.array([np.nan if n else float(v) for v, n in zip(items, null,
                                                                          strict=True)]).tobytes()
    return b"s" + "\x1f".join("\x1e" if n else str(v) for v, n in zip(items, null, strict=True)
                              ).encode("utf-8", "surrogatepass")


def _wkb_bytes(geoms: np.ndarray) -> bytes:
    wkb = shapely.to_wkb(geoms)
    parts = [b"" if w is None else w for w in wkb]
    return np.array([len(w) for w in parts], np.int64).tobytes() + b"".join(parts)


def tile_digest(prefix: bytes, geoms: np.ndarray, attrs: pd.DataFrame, spec: TileSpec,
                surfaces: gpd.GeoDataFrame | None) -> str:
    """Fingerprint of a tile's content: encoder settings, the features' attributes, geometry and
    heights (so the DEM under buildings without a ground elevation too), the DEM window lines
    are draped on, and the CityGML surfaces."""
    h = hashlib.blake2b(prefix, digest_size=20)
    for name in attrs.columns:
        h.update(str(name).encode() + b"\0")
        h.update(_canonical(_plain(attrs[name])))
    h.update(_wkb_bytes(geoms))
    if spec.heights is not None:
        h.update(np.ascontiguousarray(spec.heights, np.float64).tobytes())
    if spec.dem is not None:
        h.update(np.ascontiguousarray(spec.dem).tobytes())
        h.update(repr(tuple(spec.dem_transform)).encode())
    if surfaces is not None:
        h.update(b"surfaces")
        h.update(_wkb_bytes(np.asarray(surfaces.geometry.array, dtype=object)))
        for name in ("building_id", "surface_type"):
            h.update(_canonical(_plain(surfaces[name])))
        if ELEMENT_CLASS in surfaces:  # element rows are left out of envelope tiles
            h.update(_canonical(_plain(surfaces[ELEMENT_CLASS])))
        if spec.detail:
            h.update(b"detail")
            for name in ELEMENT_FIELDS:
                if name in surfaces:
                    h.update(_canonical(_plain(surfaces[name])))
    return h.hexdigest()


def _plain(col: pd.Series) -> np.ndarray:
    """A column as a NumPy array: numbers and booleans as float64 (NaN for nulls), the rest as
    objects."""
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return col.to_numpy(np.float64, na_value=np.nan)
    return col.to_numpy(object)


def build_mesh(t: TileInput) -> tuple[Mesh, MeshReport]:
    """The mesh of one tile's features (feature id = row of ``t.attrs``)."""
    from gis import mesh as m

    report = MeshReport()
    f = t.attrs
    geoms = t.geoms
    if t.kind == "building":
        base, eave, top = t.heights[:, 0], t.heights[:, 1], t.heights[:, 2]
        if t.lod == 1:
            return m.extrude(geoms, base, top, report=report), report
        parts = []
        with_surfaces = np.zeros(len(f), bool)
        if t.surfaces is not None and len(t.surfaces):
            rows = pd.Index(f["id"]).get_indexer(t.surfaces["building_id"])
            keep = rows >= 0
            if ELEMENT_CLASS in t.surfaces:  # BIM elements: envelopes here, detail below
                keep &= t.surfaces[ELEMENT_CLASS].isna().to_numpy()
            parts.append(m.triangulate_surfaces(np.asarray(t.surfaces.geometry.array)[keep],
                                                rows[keep],
                                                np.asarray(t.surfaces["surface_type"])[keep],
                                                report=report))
            with_surfaces[rows[keep]] = True
        rest = np.flatnonzero(~with_surfaces)
        if len(rest):
            roof = f["roof_type"].to_numpy(object) if "roof_type" in f else \
                np.full(len(f), None, object)
            ridge = f["ridge_direction"].to_numpy(float) if "ridge_direction" in f else \
                np.full(len(f), np.nan)
            sub = m.lod2_from_attributes(geoms[rest], base[rest], eave[rest], top[rest],
                                         roof[rest], ridge[rest], report=report)
            sub.feature_ids = rest[sub.feature_ids].astype(np.uint32)
            parts.append(sub)
        return Mesh.concat(parts), report
    if t.kind in ("road", "rail"):
        width = f["width"].to_numpy(float) if "width" in f else np.full(len(f), np.nan)
        width = np.where(np.isfinite(width), width, 4.0 if t.kind == "rail" else 7.0)
        return m.ribbons(geoms, width, f["level"].to_numpy(object), f["deck_height"].to_numpy(float),
                         f["depth"].to_numpy(float), t.dem, t.dem_transform, kind=t.kind,
                         report=report), report
    if t.kind == "pipeline":
        inverts = None
        if {"invert_start", "invert_end"} <= set(f.columns):
            inverts = np.c_[f["invert_start"].to_numpy(float), f["invert_end"].to_numpy(float)]
        return m.tubes(geoms, f["diameter"].to_numpy(float), f["depth"].to_numpy(float), t.dem,
                       t.dem_transform, inverts=inverts, utilities=f["utility"].to_numpy(object),
                       report=report), report
    raise DataError(f"no 3D builder for {t.kind!r} layers")


def encode_tile(t: TileInput, standard: str, fmt: str, compress: str, class_name: str,
                crs: str) -> tuple[bytes, list[str]]:
    """Build and encode one tile; returns the bytes and the builder's notes."""
    if t.detail:
        mesh, report, attrs = bim_detail_mesh(t)
        standard, class_name = None, f"{class_name}_element"
    else:
        mesh, report = build_mesh(t)
        attrs = t.attrs
    ids = attrs["id"].to_numpy(object) if "id" in attrs else None
    notes = [f"{i if ids is None else ids[i]}: {why}" for i, why in report.skipped]
    if mesh.n_triangles == 0:
        raise DataError(f"a tile of {len(attrs)} features produced no triangles: "
                        + "; ".join(notes[:3]))
    if fmt == "b3dm":
        data = write_b3dm(mesh, attrs, standard, class_name=class_name, crs=crs, compress=compress)
    else:
        data = write_glb(mesh, attrs, standard, compress=compress, class_name=class_name, crs=crs)
    return data, notes


def bim_detail_mesh(t: TileInput) -> tuple[Mesh, MeshReport, pd.DataFrame]:
    """The BIM detail of a tile: each element of the BIM buildings (surface rows with an
    :data:`ELEMENT_CLASS`) is a feature of its own, carrying its building's attributes and
    :data:`ELEMENT_FIELDS` (IFC class, storey, name, GlobalId...); the tile's other buildings
    are built as in the envelope tile (feature rows first, element fields null).

    Returns:
        (mesh, report, attribute table: one row per feature id).
    """
    f = t.attrs
    s = t.surfaces
    is_el = s[ELEMENT_CLASS].notna().to_numpy() if s is not None and ELEMENT_CLASS in s else \
        np.zeros(0 if s is None else len(s), bool)
    el = s[is_el] if s is not None else None
    owner = pd.Index(f["id"]).get_indexer(el["building_id"]) if el is not None else \
        np.zeros(0, np.int64)
    el, owner = (el[owner >= 0], owner[owner >= 0]) if el is not None else (el, owner)
    bim = np.zeros(len(f), bool)
    bim[owner] = True
    others = np.flatnonzero(~bim)
    base, report = build_mesh(dataclasses.replace(t, detail=False))
    parts = [base.select(others)] if len(others) else []
    if el is not None and len(el):
        from gis import mesh as m

        em = m.triangulate_surfaces(np.asarray(el.geometry.array), len(others) + np.arange(len(el)),
                                    np.asarray(el["surface_type"]), report=report)
        parts.append(em)
    rows = [f.iloc[others], f.iloc[owner]] if el is not None else [f.iloc[others]]
    attrs = pd.concat(rows, ignore_index=True) if rows else f.iloc[:0]
    for src, name in ELEMENT_FIELDS.items():
        values = np.full(len(attrs), None, object)
        if el is not None and src in el:
            values[len(others):] = [None if v is None or v != v else str(v) for v in el[src]]
        attrs[name] = pd.Series(values, dtype=object)
    return Mesh.concat(parts), report, attrs


def _detail_error(old: float, parent: float | None, size: float) -> float:
    """Geometric error of a tile whose envelopes are replaced by BIM detail (below it, with the
    tile's old error ``old``): the BIM buildings' size, strictly between ``old`` and the parent's
    error."""
    upper = np.inf if parent is None else parent
    e = max(size, old)
    if e >= upper:
        e = (old + upper) / 2
    if e <= old:
        e = old + (upper - old) / 2 if np.isfinite(upper) else old * 1.5 + 0.01
    return float(e)


def add_bim_detail(tree: TileTree, plan: Plan, bim: np.ndarray) -> int:
    """Give every tile holding BIM buildings a detail child (explicit tilesets only): the tile
    becomes ``refine: REPLACE`` (its envelopes give way), its only child is its
    :data:`DETAIL` variant (same place and features, elements as features, ``refine: ADD``, the
    tile's old geometric error, 0 for a leaf) and the tile's old children hang below that. The
    tile's own error rises to the BIM buildings' size (:func:`_detail_error`, below its
    parent's old error), the tileset's to at least twice the root's. Changes ``tree`` in place,
    before its regions are placed (a detail tile's region is then its parent's).

    Returns:
        The number of detail tiles added.
    """
    b = plan.bounds
    size = np.sqrt((b[:, 2] - b[:, 0]) ** 2 + (b[:, 3] - b[:, 1]) ** 2 + (b[:, 5] - b[:, 4]) ** 2)
    added = 0

    def walk(t: Tile, parent_error: float | None) -> None:
        nonlocal added
        for ch in t.children:
            walk(ch, t.geometric_error)
        mine = t.features[bim[t.features]] if t.has_content else np.zeros(0, np.int64)
        if not len(mine):
            return
        old = t.geometric_error if t.children else 0.0  # a leaf's detail: 0
        detail = Tile(t.level, t.x, t.y, t.features, geometric_error=old, children=t.children,
                      refine="ADD", variant=DETAIL)
        t.refine = "REPLACE"
        t.children = [detail]
        t.geometric_error = _detail_error(old, parent_error, float(size[mine].max()))
        added += 1

    walk(tree.root, None)
    tree.geometric_error = max(float(tree.geometric_error), 2.0 * tree.root.geometric_error)
    return added


# -- the content writer tiles.tileset calls ---------------------------------------------------

class FeatureContent:
    """Content writer for :func:`tiles.tileset.write_tileset`: builds each tile on demand from its
    own rows (:func:`tile_content`), inline or ahead of time on dask workers.

    Args:
        plan: The layer's plan.
        source: Where rows come from.
        job: Shared build options.
        settings: Encoder settings recorded in the manifest.
        known: Fingerprints the previous tileset has (their tiles are not built).
        surface_index: Building id -> rows of the surfaces table, or None.
    """

    def __init__(self, plan: Plan, source: FrameSource | StoreSource, job: TileJob,
                 settings: dict[str, Any], known: set[str],
                 surface_index: dict[Any, np.ndarray] | None = None):
        self.plan, self.source, self.job, self.settings = plan, source, job, settings
        self.known = frozenset(known)
        self.surface_index = surface_index
        self.extension = job.format
        self.gzipped = job.gzip
        self.notes: list[str] = []
        self.on_tile: Callable[[int], None] | None = None
        self._current: tuple[str, TileResult] | None = None
        self._pending: dict[str, Any] = {}
        self._fetched: dict[str, list[TileResult]] = {}
        self._queue: deque | None = None
        self._client = None
        self._known_arg: Any = self.known

    def spec(self, features: np.ndarray, *, with_rows: bool = False,
             variant: str = "") -> TileSpec:
        """The spec of the tile holding ``features`` (plan indices), or of its ``variant``
        (:data:`DETAIL`: the BIM detail)."""
        if variant not in ("", DETAIL):
            raise ValueError(f"no tile variant {variant!r}")
        idx = np.asarray(features, np.int64)
        plan = self.plan
        ffids = plan.fids[idx]
        spec = TileSpec(np.unique(ffids), detail=variant == DETAIL)
        if plan.heights is not None:
            spec.heights = plan.heights[idx]
        if plan.pieces is not None:
            spec.feature_fids, spec.pieces = ffids, plan.pieces[idx]
            b = plan.bounds[idx]
            spec.dem, spec.dem_transform = _dem_window(plan.dem, np.array(
                [b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()]))
        if self.surface_index is not None and plan.ids is not None:
            found = [self.surface_index[i] for i in plan.ids[idx] if i in self.surface_index]
            spec.surface_fids = np.sort(np.concatenate(found)) if found else \
                np.zeros(0, np.int64)
        if with_rows:
            spec.rows = self.source.rows(spec.fids)
            if spec.surface_fids is not None:
                spec.surface_rows = self.source.surface_rows(spec.surface_fids)
        return spec

    def _result(self, features: np.ndarray, variant: str = "") -> TileResult:
        key = _key(features, variant)
        if self._current is not None and self._current[0] == key:
            return self._current[1]
        pending = self._pending.pop(key, None)
        if pending is not None:
            future, i = pending
            batch = self._fetched.pop(future.key, None) or future.result()  # fetched once
            result = batch[i]
            if any(f.key == future.key for f, _ in self._pending.values()):
                self._fetched[future.key] = batch
        else:
            result = tile_content(self.source, self.spec(features, variant=variant), self.job,
                                  self.known)
        self._current = (key, result)
        self.notes.extend(result.notes)
        if self.on_tile is not None and not variant:  # progress counts each feature once
            self.on_tile(len(features))
        self._refill()
        return result

    def digest(self, features: np.ndarray, variant: str = "") -> str:
        return self._result(features, variant).digest

    def write(self, features: np.ndarray, variant: str = "") -> bytes:
        result = self._result(features, variant)
        if result.staged is not None:
            return Path(result.staged).read_bytes()
        if result.data is None:  # the previous tileset has the fingerprint but lost the file
            result = tile_content(self.source, self.spec(features, variant=variant), self.job)
        return result.data

    def place(self, features: np.ndarray, target: Path, variant: str = "") -> bool:
        """Move the content a worker staged for this tile to ``target``; False if there is none
        (then :meth:`write` gives the bytes)."""
        result = self._result(features, variant)
        if result.staged is None:
            return False
        os.replace(result.staged, target)
        return True

    def prefetch(self, client, tiles: list[tuple[np.ndarray, str]], window: int,
                 stage: Path | None = None, batch: int = 4000, first: int = 0) -> None:
        """Submit the given tiles' builds (features and variant of each) to dask, at most
        ``window`` tasks ahead of the writer, a task being consecutive tiles of about ``batch``
        features (fewer tasks for the scheduler). Workers get the tiles' specs and the store layer, never frames (except for
        a frame source, whose rows have no other way there), and leave the contents in
        ``stage`` (a directory beside the output, when they share this machine's disk) or send
        them back. ``first`` tasks go out at once (work for the workers while this process
        finishes the plan)."""
        self._client, self._window, self._stage = client, window, stage
        self._queue = deque()
        group: list[tuple[np.ndarray, str]] = []
        size = 0
        for features, variant in tiles:
            group.append((features, variant))
            size += len(features)
            if size >= batch:
                self._queue.append(group)
                group, size = [], 0
        if group:
            self._queue.append(group)
        if self.known:
            self._known_arg = client.scatter(self.known, broadcast=True)
        self._refill(max(first, window))

    def _refill(self, window: int | None = None) -> None:
        if self._queue is None:
            return
        remote = self.source.remote
        window = self._window if window is None else window
        while self._queue and len({f.key for f, _ in self._pending.values()}) < window:
            group = self._queue.popleft()
            keys = [_key(f, v) for f, v in group]
            specs = [self.spec(f, with_rows=remote is None, variant=v) for f, v in group]
            future = self._client.submit(tile_batch, remote, list(zip(keys, specs, strict=True)),
                                         self.job, self._known_arg,
                                         None if self._stage is None else str(self._stage),
                                         pure=False)
            for i, key in enumerate(keys):
                self._pending[key] = (future, i)


_FROZEN = False


def tile_batch(reader: StoreLayer | None, tiles: list[tuple[str, TileSpec]], job: TileJob,
               known: frozenset[str] = frozenset(), stage: str | None = None
               ) -> list[TileResult]:
    """:func:`tile_content` of consecutive tiles (one dask task); with ``stage``, each content is
    written there (``KEY.EXT``) instead of being sent back."""
    global _FROZEN
    if not _FROZEN and multiprocessing.parent_process() is not None:
        gc.freeze()  # a worker process's modules live on: the collector need not scan them
        _FROZEN = True
    out = []
    for key, spec in tiles:
        result = tile_content(reader, spec, job, known)
        if stage is not None and result.data is not None:
            path = Path(stage) / f"{key}.{job.format}"
            path.write_bytes(result.data)
            result = TileResult(result.digest, None, result.notes, result.rows, str(path))
        out.append(result)
    return out


def _key(features: np.ndarray, variant: str = "") -> str:
    h = hashlib.blake2b(np.asarray(features, np.int64).tobytes(), digest_size=16).hexdigest()
    return f"{h}.{variant}" if variant else h


def _known_fingerprints(out: Path, gzip: bool) -> set[str]:
    """Fingerprints of the previous tileset's contents (what write_tileset can reuse)."""
    prev = _read_manifest(out) if out.is_dir() else None
    if prev is None or prev.get("content_encoding") != ("gzip" if gzip else "identity"):
        return set()
    return {v["hash"] for v in prev.get("tiles", {}).values()}


# -- the driver ---------------------------------------------------------------------------------

def build_tiles(layer: gpd.GeoDataFrame | StoreLayer, standard: str, out: str | Path, *,
                dem: DemSource | Callable[[], DemSource] | None = None,
                surfaces: gpd.GeoDataFrame | None = None, class_name: str | None = None,
                options: TilesOptions | None = None,
                progress: Callable[[int], None] | None = None,
                on_plan: Callable[[int], None] | None = None) -> TilesSummary:
    """Build a tileset of one layer.

    Args:
        layer: A :class:`StoreLayer` (read tile by tile, never whole), or the layer's records
            in memory; either in a projected store CRS with the standard's columns.
        standard: ``building``, ``road``, ``rail`` or ``pipeline``.
        out: Tileset directory (``out/tileset.json``), replaced atomically.
        dem: Terrain in the same CRS (or a function loading it, called only when needed):
            ground for buildings without ``ground_elevation``, and what roads, rail and pipes are
            draped on.
        surfaces: CityGML boundary surfaces of in-memory buildings (``building_id``,
            ``surface_type``, 3D geometry) for LOD2 (a store layer names its surfaces table).
        class_name: Metadata class name (default: the standard).
        options: :class:`TilesOptions`.
        progress: Called with the number of features in each tile as it is done.
        on_plan: Called with the number of features to build once they are known.

    Returns:
        A :class:`TilesSummary`.

    Raises:
        DataError: Nothing to build, a layer kind without 3D builder, a missing DEM.
    """
    options = options or TilesOptions()
    if standard not in KINDS:
        raise DataError(f"no 3D builder for {standard!r} layers (have: {', '.join(KINDS)})")
    if options.version == "1.0" and options.implicit:
        raise DataError("implicit tiling needs 3D Tiles 1.1")
    t0 = time.perf_counter()
    if isinstance(layer, StoreLayer):
        layer = _stamped(layer)
        source: FrameSource | StoreSource = StoreSource(layer)
        with_surfaces = layer.surfaces is not None
    else:
        source = FrameSource(layer, surfaces)
        with_surfaces = surfaces is not None
    crs_text = _check_crs(source.crs)
    if dem is not None and not callable(dem):
        _check_dem(dem, crs_text)
    notes: list[str] = []
    batch = max(1, options.max_features)
    starting = stage = None
    if options.scheduler or options.workers > 1:  # workers start while the plan is made
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1)
        starting = pool.submit(_dask_client, options)
        pool.shutdown(wait=False)

    def load_dem() -> DemSource:
        grid = dem() if callable(dem) else dem
        _check_dem(grid, crs_text)
        return grid

    try:
        plan = plan_layer(source, standard, None if dem is None else load_dem, notes, batch=batch,
                          surfaces=with_surfaces and standard == "building")
        if not len(plan):
            raise DataError("nothing to build: no feature has usable geometry and heights")
        if on_plan is not None:
            on_plan(len(plan))
        if options.lod == 2 and not with_surfaces and standard == "building" and \
                not plan.has_roof_types:
            notes.append("no roof types and no CityGML surfaces: LOD2 roofs are flat")
        b = plan.bounds
        centroids = np.c_[(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2]
        # bounding regions (half of the planning time) come once the workers have work
        tree = build_tileset(centroids, b, crs_text, max_features_per_tile=options.max_features,
                             regions=False)
        fmt = "b3dm" if options.version == "1.0" else "glb"
        cls = class_name or standard
        settings: dict[str, Any] = {
            "generator": GENERATOR, "encoder": ENCODER_VERSION, "format": fmt,
            "compress": options.compress, "standard": standard, "class": cls, "crs": crs_text,
            "lod": options.lod, "kind": standard, "digest": DIGEST_VERSION}
        prefix = json.dumps(settings, sort_keys=True).encode()
        job = TileJob(standard, standard, options.lod, fmt, options.compress, cls, crs_text,
                      options.gzip, prefix)
        surface_index = None
        if with_surfaces and standard == "building":
            keys = source.surface_keys()
            fids = np.asarray(keys.index, np.int64)
            groups = keys.reset_index(drop=True).groupby(keys.to_numpy(object)).indices
            surface_index = {k: fids[v] for k, v in groups.items()}
        bim = None
        if surface_index is not None and plan.ids is not None:
            with_elements = source.element_buildings()
            if with_elements:
                bim = np.isin(plan.ids, np.array(list(with_elements), dtype=object))
                if options.implicit:
                    notes.append("implicit tiling: BIM buildings appear as envelopes only (their "
                                 "element detail needs explicit tiling)")
                    bim = None
        if bim is not None:
            add_bim_detail(tree, plan, bim)
        content = FeatureContent(plan, source, job, settings,
                                 _known_fingerprints(Path(out), options.gzip), surface_index)
        content.on_tile = progress
        if starting is not None:
            client, cluster = starting.result()
            todo = [(t.features, t.variant) for t in tree.root.walk() if t.has_content]
            workers = max(1, len(client.scheduler_info()["workers"]))
            if cluster is not None:  # local workers write the contents beside the output
                stage = Path(out).parent / f".{Path(out).name}.stage-{os.getpid()}"
                shutil.rmtree(stage, ignore_errors=True)
                stage.mkdir(parents=True)
            content.prefetch(client, todo, window=max(8, 4 * workers), stage=stage,
                             batch=4 * options.max_features, first=32)
        place_regions(tree, b)
        gc.freeze()  # the plan, the tree and the modules live on: the collector need not scan them
        try:
            report = write_tileset(tree, out, content, version=options.version,
                                   implicit=options.implicit, gzip=options.gzip)
        finally:
            gc.unfreeze()
    finally:
        if starting is not None:
            _close_dask(starting)
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
    skipped = len(content.notes)
    notes.extend(content.notes[:20])
    largest = max((len(t.features) for t in tree.root.walk()), default=0)
    return TilesSummary(Path(out), len(plan), skipped, report.tiles, report.contents,
                        report.written, report.reused, report.bytes,
                        time.perf_counter() - t0, notes, largest)


def _check_crs(crs_like) -> str:
    if crs_like is None:
        raise DataError("the layer has no CRS: ingest it first")
    crs = CRS.from_user_input(crs_like)
    if not crs.is_projected:
        raise DataError(f"tiles are built from a projected CRS, not {crs.name}: ingest first")
    return crs.to_string()


def _check_dem(dem: DemSource, crs_text: str) -> None:
    if dem.crs is not None and CRS.from_user_input(dem.crs) != CRS.from_user_input(crs_text):
        raise DataError(f"the DEM is in {CRS.from_user_input(dem.crs).to_string()}, the layer in "
                        f"{crs_text}: ingest the DEM into the store first")


#: glibc malloc settings of local workers. Dask starts workers with MALLOC_TRIM_THRESHOLD_=64k
#: (give memory back early); a tile build allocates and frees tens of MB of arrays, so the
#: workers then spent a fifth of their time in page faults. Keeping up to 256 MB and serving
#: arrays below 32 MB from the heap brings them to the speed of an inline build.
WORKER_MALLOC = {"MALLOC_TRIM_THRESHOLD_": str(256 * 2**20),
                 "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20)}


def _dask_client(options: TilesOptions):
    """A client of the given scheduler, or of a new LocalCluster of ``options.workers``
    single-threaded processes (statistical profiler off, :data:`WORKER_MALLOC`)."""
    import dask
    from dask.distributed import Client, LocalCluster

    if options.scheduler:
        return Client(options.scheduler, timeout="30s"), None
    config = {"distributed.worker.profile.enabled": False,  # background work off: tasks are
              "distributed.scheduler.work-stealing": False,  # uniform and the scheduler runs
              "distributed.admin.system-monitor.interval": "5s",  # in this process
              "distributed.worker.memory.monitor-interval": "1s"}
    config.update({f"distributed.nanny.pre-spawn-environ.{k}": v
                   for k, v in WORKER_MALLOC.items()})
    saved = {k: os.environ.get(k) for k in WORKER_MALLOC}
    try:
        os.environ.update(WORKER_MALLOC)  # the nanny prefers these over its config
        with dask.config.set(config):
            cluster = LocalCluster(n_workers=options.workers, threads_per_worker=1,
                                   processes=True, host="127.0.0.1",
                                   dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Client(cluster), cluster


def _close_dask(starting) -> None:
    try:
        client, cluster = starting.result()
    except Exception:  # the start failed: the build already raised that
        return
    client.close()
    if cluster is not None:
        cluster.close()
