"""``ngis tiles build``: a store layer (or a source file) -> meshes -> a 3D Tiles tileset.

The driver reads the layer, resolves heights (sampling the DEM where the records have no ground
elevation), tiles the features (:func:`tiles.tiling.build_tileset`), and hands each tile to a
content builder that makes the tile's meshes and encodes them. Tiles are independent, so the
builders run on dask.distributed: a LocalCluster on this machine by default (``workers``), or a
running scheduler (``scheduler="tcp://host:8786"``). Only the tiles whose content changed since the
previous build are built (:mod:`tiles.tileset` reuses the rest).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
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

import standards
from gis.errors import DataError
from gis.io.raster import DemSource
from gis.mesh.base import Mesh
from gis.mesh.report import MeshReport
from gis.mesh.terrain import sample_dem
from tiles.b3dm import write_b3dm
from tiles.content import ENCODER_VERSION
from tiles.glb import GENERATOR, write_glb
from tiles.tileset import write_tileset
from tiles.tiling import build_tileset

log = logging.getLogger(__name__)

KINDS = {"building": "buildings", "road": "roads", "rail": "rail", "pipeline": "pipelines"}


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
        max_features: Features per tile before a tile splits.
        workers: Local dask worker processes (1: build in this process).
        scheduler: Address of a running dask scheduler (overrides ``workers``).
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


# -- per-tile builders (module level: they run on dask workers) ---------------------------------

@dataclass
class TileInput:
    """Everything one tile's builder needs, small enough to ship to a worker."""

    frame: gpd.GeoDataFrame
    kind: str
    lod: int
    dem: np.ndarray | None = None
    dem_transform: Affine | None = None
    surfaces: gpd.GeoDataFrame | None = None
    attrs: pd.DataFrame | None = None


def build_mesh(t: TileInput) -> tuple[Mesh, MeshReport]:
    """The mesh of one tile's features (feature id = row of ``t.frame``)."""
    from gis import mesh as m

    report = MeshReport()
    f = t.frame
    geoms = np.asarray(f.geometry.array, dtype=object)
    if t.kind == "building":
        base, eave, top = f["_base"].to_numpy(), f["_eave"].to_numpy(), f["_top"].to_numpy()
        if t.lod == 1:
            return m.extrude(geoms, base, top, report=report), report
        parts = []
        with_surfaces = np.zeros(len(f), bool)
        if t.surfaces is not None and len(t.surfaces):
            rows = pd.Index(f["id"]).get_indexer(t.surfaces["building_id"])
            keep = rows >= 0
            parts.append(m.triangulate_surfaces(np.asarray(t.surfaces.geometry.array)[keep],
                                                rows[keep], t.surfaces["surface_type"][keep],
                                                report=report))
            with_surfaces[rows[keep]] = True
        rest = np.flatnonzero(~with_surfaces)
        if len(rest):
            sub = m.lod2_from_attributes(geoms[rest], base[rest], eave[rest], top[rest],
                                         f["roof_type"].to_numpy(object)[rest],
                                         f["ridge_direction"].to_numpy(float)[rest],
                                         report=report)
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
    mesh, report = build_mesh(t)
    attrs = t.attrs if t.attrs is not None else _attributes(t.frame)
    attrs = attrs.reset_index(drop=True)
    notes = [f"{attrs.iloc[i].get('id', i)}: {why}" for i, why in report.skipped]
    if mesh.n_triangles == 0:
        raise DataError(f"a tile of {len(attrs)} features produced no triangles: "
                        + "; ".join(notes[:3]))
    if fmt == "b3dm":
        data = write_b3dm(mesh, attrs, standard, class_name=class_name, crs=crs, compress=compress)
    else:
        data = write_glb(mesh, attrs, standard, compress=compress, class_name=class_name, crs=crs)
    return data, notes


def _attributes(frame: gpd.GeoDataFrame) -> pd.DataFrame:
    """The attribute table the tiles carry: no geometry, no internal (``_``) columns."""
    return pd.DataFrame(frame.drop(columns=[c for c in frame.columns
                                            if c.startswith("_") or c == frame.geometry.name]))


# -- the content writer tiles.tileset calls ---------------------------------------------------

class FeatureContent:
    """Content writer that builds each tile's meshes on demand (never the whole layer at once),
    optionally ahead of time on dask workers."""

    def __init__(self, frame: gpd.GeoDataFrame, standard: str, kind: str, options: TilesOptions,
                 class_name: str, crs: str, dem: DemSource | None,
                 surfaces: gpd.GeoDataFrame | None):
        self.frame, self.standard, self.kind, self.options = frame, standard, kind, options
        self.class_name, self.crs, self.dem, self.surfaces = class_name, crs, dem, surfaces
        self.extension = "b3dm" if options.version == "1.0" else "glb"
        self.settings: dict[str, Any] = {
            "generator": GENERATOR, "encoder": ENCODER_VERSION, "format": self.extension,
            "compress": options.compress, "standard": standard, "class": class_name, "crs": crs,
            "lod": options.lod, "kind": kind,
            "dem": None if dem is None else _dem_digest(dem)}
        self._digests = _feature_digests(frame, surfaces)
        self._attrs = _attributes(frame)
        self._pending: dict[str, Any] = {}
        self.notes: list[str] = []

    def digest(self, features: np.ndarray) -> str:
        h = hashlib.blake2b(json.dumps(self.settings, sort_keys=True).encode(), digest_size=20)
        for f in np.asarray(features, np.int64):
            h.update(self._digests[f])
        return h.hexdigest()

    def tile_input(self, features: np.ndarray) -> TileInput:
        sub = self.frame.iloc[np.asarray(features, np.int64)]
        dem = transform = None
        if self.dem is not None and self.kind in ("road", "rail", "pipeline"):
            dem, transform = _dem_window(self.dem, sub.total_bounds)
        surfaces = None
        if self.surfaces is not None:
            surfaces = self.surfaces[self.surfaces["building_id"].isin(sub["id"])]
        return TileInput(sub, self.kind, self.options.lod, dem, transform, surfaces,
                         self._attrs.iloc[np.asarray(features, np.int64)])

    def _args(self, features):
        return (self.tile_input(features), self.standard, self.extension, self.options.compress,
                self.class_name, self.crs)

    def write(self, features: np.ndarray) -> bytes:
        key = _key(features)
        future = self._pending.pop(key, None)
        data, notes = future.result() if future is not None else encode_tile(*self._args(features))
        self.notes.extend(notes)
        if self.on_write is not None:
            self.on_write(len(features))
        self._refill()
        return data

    on_write: Callable[[int], None] | None = None
    _queue: deque | None = None

    def prefetch(self, client, tile_features: list[np.ndarray], window: int) -> None:
        """Submit the given tiles' builds to dask, at most ``window`` ahead of the writer."""
        self._client, self._window = client, window
        self._queue = deque(tile_features)
        self._refill()

    def _refill(self) -> None:
        if self._queue is None:
            return
        while self._queue and len(self._pending) < self._window:
            features = self._queue.popleft()
            self._pending[_key(features)] = self._client.submit(encode_tile, *self._args(features),
                                                                pure=False)


def _key(features: np.ndarray) -> str:
    return hashlib.blake2b(np.asarray(features, np.int64).tobytes(), digest_size=16).hexdigest()


def _feature_digests(frame: gpd.GeoDataFrame, surfaces) -> list[bytes]:
    attrs = frame.drop(columns=frame.geometry.name)
    values = pd.util.hash_pandas_object(attrs, index=False).to_numpy()
    wkb = shapely.to_wkb(np.asarray(frame.geometry.array, dtype=object))
    extra: dict[str, bytes] = {}
    if surfaces is not None and len(surfaces):
        for bid, group in surfaces.groupby("building_id"):
            h = hashlib.blake2b(digest_size=8)
            for g in shapely.to_wkb(np.asarray(group.geometry.array, dtype=object)):
                h.update(g)
            extra[bid] = h.digest()
    ids = frame["id"].to_numpy(object) if "id" in frame else [None] * len(frame)
    out = []
    for v, g, i in zip(values, wkb, ids, strict=True):
        h = hashlib.blake2b(int(v).to_bytes(8, "little") + (g or b""), digest_size=16)
        h.update(extra.get(i, b""))
        out.append(h.digest())
    return out


def _dem_digest(dem: DemSource) -> str:
    h = hashlib.blake2b(np.ascontiguousarray(dem.data).tobytes(), digest_size=12)
    h.update(repr(tuple(dem.transform)).encode())
    return h.hexdigest()


def _dem_window(dem: DemSource, bounds, margin_cells: int = 3) -> tuple[np.ndarray, Affine]:
    inv = ~dem.transform
    cols, rows = zip(*(inv @ (x, y) for x in bounds[[0, 2]] for y in bounds[[1, 3]]), strict=True)
    r0 = max(int(np.floor(min(rows))) - margin_cells, 0)
    c0 = max(int(np.floor(min(cols))) - margin_cells, 0)
    r1 = min(int(np.ceil(max(rows))) + margin_cells, dem.data.shape[0])
    c1 = min(int(np.ceil(max(cols))) + margin_cells, dem.data.shape[1])
    if r1 <= r0 or c1 <= c0:
        return np.full((1, 1), np.nan, np.float32), dem.transform
    return dem.data[r0:r1, c0:c1], dem.transform @ Affine.translation(c0, r0)


# -- the driver ---------------------------------------------------------------------------------

def prepare(frame: gpd.GeoDataFrame, standard: str, dem: DemSource | None,
            notes: list[str]) -> tuple[gpd.GeoDataFrame, np.ndarray, DemSource | None]:
    """Drop what cannot be built (saying so), add internal height columns, and return the frame
    with the per-feature (minx, miny, maxx, maxy, minz, maxz) bounds the tiling needs."""
    kind = standard
    frame = frame.reset_index(drop=True)
    geoms = np.asarray(frame.geometry.array, dtype=object)
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    wanted = {"building": (3, 6), "road": (1, 5), "rail": (1, 5), "pipeline": (1, 5)}[kind]
    types = shapely.get_type_id(geoms)
    wrong = ~empty & ~np.isin(types, wanted)
    if wrong.all() and len(frame):
        raise DataError(f"the layer's geometries are {frame.geom_type.iloc[0]}: "
                        f"{KINDS[kind]} need {'footprints' if kind == 'building' else 'lines'}")
    drop = empty | wrong
    if drop.any():
        notes.append(f"{int(drop.sum())} feature(s) without usable geometry left out")
    frame = frame[~drop].reset_index(drop=True)
    b2 = frame.bounds.to_numpy()
    if kind == "building":
        from gis.mesh.lod1 import building_heights

        ground = None
        if dem is not None:
            pts = frame.geometry.representative_point()
            ground = sample_dem(dem.data, dem.transform, pts.x.to_numpy(), pts.y.to_numpy())
        h = building_heights(frame, ground)
        no_ground = ~np.isfinite(h.base_z)
        if no_ground.any():
            notes.append(f"{int(no_ground.sum())} building(s) have no ground elevation"
                         + (" and lie outside the DEM" if dem is not None else " and no DEM")
                         + ": placed on 0 m")
            on_zero = building_heights(frame, 0.0)
            h = type(h)(*(np.where(no_ground, a, b) for a, b in zip(on_zero, h, strict=True)))
        bad = ~(np.isfinite(h.top_z) & (h.top_z > h.base_z))
        if bad.any():
            notes.append(f"{int(bad.sum())} building(s) with neither height nor storeys left out")
        frame = frame.assign(_base=h.base_z, _eave=h.eave_z, _top=h.top_z)[~bad].reset_index(drop=True)
        b2 = b2[~bad]
        z = np.c_[frame["_base"].to_numpy(), frame["_top"].to_numpy()]
    else:
        if dem is None:
            notes.append("no DEM: lines are draped on flat ground at 0 m")
            dem = flat_dem(frame.total_bounds, frame.crs)
        frame = split_lines(frame, MAX_PIECE)
        b2 = frame.bounds.to_numpy()
        z = _line_z_range(frame, kind, dem)
        outside = ~np.isfinite(z[:, 0])
        if outside.any():
            notes.append(f"{int(outside.sum())} line(s) wholly outside the DEM left out")
            frame, b2, z = frame[~outside].reset_index(drop=True), b2[~outside], z[~outside]
    bounds = np.c_[b2, z]
    return frame, bounds, dem


#: Longest line piece (m): long roads and pipes are cut so no tile content gets far from its centre.
MAX_PIECE = 1000.0


def split_lines(frame: gpd.GeoDataFrame, max_length: float) -> gpd.GeoDataFrame:
    """Cut lines longer than ``max_length`` into pieces (each keeps the feature's attributes, so
    picking any piece shows the same record)."""
    lengths = frame.length.to_numpy()
    long_ = np.flatnonzero(lengths > max_length)
    if not len(long_):
        return frame
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
    cut = frame.iloc[rows].copy()
    cut.geometry = gpd.GeoSeries(pieces, index=cut.index, crs=frame.crs)
    return pd.concat([frame.iloc[keep], cut]).sort_index(kind="stable").reset_index(drop=True)


def flat_dem(bounds, crs, cell: float = 10.0) -> DemSource:
    """A DEM of zeros covering ``bounds`` (for draping lines where no terrain is known)."""
    minx, miny, maxx, maxy = bounds
    cols = max(int(np.ceil((maxx - minx) / cell)) + 4, 2)
    rows = max(int(np.ceil((maxy - miny) / cell)) + 4, 2)
    transform = Affine(cell, 0, minx - 2 * cell, 0, -cell, maxy + 2 * cell)
    return DemSource("flat", np.zeros((rows, cols), np.float32), transform, CRS.from_user_input(crs))


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


def build_tiles(frame: gpd.GeoDataFrame, standard: str, out: str | Path, *,
                dem: DemSource | None = None, surfaces: gpd.GeoDataFrame | None = None,
                class_name: str | None = None, options: TilesOptions | None = None,
                progress: Callable[[int], None] | None = None) -> TilesSummary:
    """Build a tileset of one layer.

    Args:
        frame: The layer's records in a projected store CRS, with the standard's columns.
        standard: ``building``, ``road``, ``rail`` or ``pipeline``.
        out: Tileset directory (``out/tileset.json``), replaced atomically.
        dem: Terrain in the same CRS: ground for buildings without ``ground_elevation``, and
            what roads, rail and pipes are draped on.
        surfaces: CityGML boundary surfaces of the buildings (``building_id``, ``surface_type``,
            3D geometry) for LOD2.
        class_name: Metadata class name (default: the standard).
        options: :class:`TilesOptions`.
        progress: Called with the number of features in each tile as it is written.

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
    crs = CRS.from_user_input(frame.crs)
    if not crs.is_projected:
        raise DataError(f"tiles are built from a projected CRS, not {crs.name}: ingest first")
    crs_text = crs.to_string()
    if dem is not None and dem.crs is not None and CRS.from_user_input(dem.crs) != crs:
        raise DataError(f"the DEM is in {CRS.from_user_input(dem.crs).to_string()}, the layer in "
                        f"{crs_text}: ingest the DEM into the store first")
    t0 = time.perf_counter()
    notes: list[str] = []
    frame, bounds, dem = prepare(frame, standard, dem, notes)
    if frame.empty:
        raise DataError("nothing to build: no feature has usable geometry and heights")
    if options.lod == 2 and surfaces is None and standard == "building" and \
            "roof_type" not in frame:
        notes.append("no roof types and no CityGML surfaces: LOD2 roofs are flat")
    centroids = np.c_[(bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2]
    tree = build_tileset(centroids, bounds, crs_text, max_features_per_tile=options.max_features)
    content = FeatureContent(frame, standard, standard, options, class_name or standard, crs_text,
                             dem, surfaces)
    content.on_write = progress
    client = cluster = None
    try:
        if options.scheduler or options.workers > 1:
            client, cluster = _dask_client(options)
            todo = _tiles_to_write(tree, content, Path(out))
            content.prefetch(client, todo, window=4 * max(1, len(client.scheduler_info()
                                                                  ["workers"])))
        report = write_tileset(tree, out, content, version=options.version,
                               implicit=options.implicit, gzip=options.gzip)
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    skipped = len(content.notes)
    notes.extend(content.notes[:20])
    return TilesSummary(Path(out), len(frame), skipped, report.tiles, report.contents,
                        report.written, report.reused, report.bytes,
                        time.perf_counter() - t0, notes)


def _tiles_to_write(tree, content: FeatureContent, out: Path) -> list[np.ndarray]:
    """Contents whose fingerprint the previous tileset lacks, in the order they are written."""
    from tiles.tileset import _read_manifest

    prev = _read_manifest(out) if out.is_dir() else None
    encoding = "gzip" if content.options.gzip else "identity"
    old = set()
    if prev is not None and prev.get("content_encoding") == encoding:
        old = {v["hash"] for v in prev.get("tiles", {}).values()}
    return [t.features for t in tree.root.walk()
            if t.has_content and content.digest(t.features) not in old]


def _dask_client(options: TilesOptions):
    from dask.distributed import Client, LocalCluster

    if options.scheduler:
        return Client(options.scheduler, timeout="30s"), None
    cluster = LocalCluster(n_workers=options.workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address="127.0.0.1:0",
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster
