"""Tiled hydrology for DEMs larger than memory: parallel Priority-Flood (Barnes 2016), D8
directions with flats resolved across tiles, and tiled flow accumulation (Barnes 2017). Each
result is identical to the in-memory path (:mod:`models.hydro`): the filled DEM bit for bit, the
D8 codes code for code, the accumulation exactly (unit weights count cells, which float64 adds
exactly in any order).

The DEM is cut into square tiles (``tile`` cells a side). Every step reads only windows of its
inputs (:class:`ArraySource`, :class:`RasterSource`, :class:`DataArraySource` for chunked
xarray and Zarr) and writes whole tiles into a :class:`TileStore` (a file per tile, so parallel
writers never share one). Tasks run in this process or on dask.distributed (:class:`Executor`: a
LocalCluster, or a running scheduler whose workers see the same file system), and memory per
task is bounded by a tile and its halo.

Fill (Barnes 2016, "Parallel Priority-Flood depression filling for trillion cell digital
elevation models on desktops or clusters", Computers & Geosciences 96, 56-68)
-----------------------------------------------------------------------------------------------
The filled elevation of a cell is its *water level*: the lowest, over all paths from the cell to
an outlet (the DEM's edge, nodata, the sea), of the highest elevation on the path. Seen from one
tile, a path leaves either through an outlet in the tile or through a cell of the tile's
perimeter, so the water levels ``W(p)`` of the perimeter cells decide everything inside.

1. *First pass, per tile*: Priority-Flood from the tile's perimeter, each perimeter cell seeding
   a label of its own (outlets share the label OUT), records for every pair of touching labels the
   lowest spill elevation between them (max of the two cells' filled levels). The tile filled
   this way (``f1``) and its labels are kept on disk (Barnes' "retain" strategy: 5-6 bytes per
   cell, a tile at a time in memory).
2. *Global solve*: a graph whose nodes are the perimeter cells of all tiles plus OUT, with the
   spill edges of step 1 and an edge between every two touching perimeter cells of neighbouring
   tiles (weight: the higher of the two elevations). A minimax Dijkstra from OUT gives each
   perimeter cell its water level. The graph is small (4 x tile cells per tile).
3. *Second pass, per tile*: each cell becomes ``max(f1, W(seed of its label))``. It reaches its
   seed no higher than ``f1`` and the seed drains at ``W``; and any way out either stays in the
   tile (no lower than ``f1``) or passes the seed's water level. So this is the global fill,
   bit for bit (only copies of elevations are compared).

Flow directions
---------------
A D8 code needs the cell's 8 neighbours (a halo of one cell), except on flats, where Barnes,
Lehman & Mulla (2014b) route water over the whole connected region of equal elevation. A tile's
window therefore starts with a halo of one cell and grows (x4) until every equal-elevation
region holding a flat cell of the tile lies inside the window, away from its cut edges; then
:func:`models.hydro.d8_directions` on the window is exact for the tile. Flats are rare and
small after filling, so nearly all tiles finish with the one-cell halo; a flat as large as the
DEM (a filled reservoir across the whole map) makes its tiles read it whole.

Accumulation (Barnes 2017, "Parallel non-divergent flow accumulation for trillion cell digital
elevation models on desktops or clusters", Environmental Modelling & Software 92, 202-212)
-----------------------------------------------------------------------------------------------
1. *First pass, per tile*: the local accumulation (flow from outside the tile ignored), and for
   each perimeter cell the perimeter cell at which its flow leaves the tile.
2. *Global solve*: the flow entering each tile at each perimeter cell, in topological order over
   the perimeter cells of all tiles (a D8 forest: each perimeter cell has one exit, each exit one
   receiving cell in the next tile).
3. *Second pass, per tile*: accumulation with the inflow added to the entry cells' weights.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from models.hydro._grid import (
    CODE_TO_K,
    ESRI_DCOL,
    ESRI_DROW,
    grow,
    heap_pop,
    heap_push,
    pheap_pop,
    pheap_push,
)
from models.hydro.accumulate import accumulate_d8, flow_order_d8
from models.hydro.fill import _fifo_put, _from_keys, _to_keys, padded_grid
from models.hydro.flowdir import _d8_steepest, _spacing, d8_from_steepest

OUT = 1  # label of outlets in the first fill pass; perimeter cell k has label 2 + k
HALO_GROWTH = 4


# --- tiles -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tiling:
    """Square tiles of ``tile`` cells over a grid of ``shape`` (the last row and column of tiles
    may be smaller)."""

    shape: tuple[int, int]
    tile: int

    def __post_init__(self):
        if self.tile < 2:
            raise ValueError(f"tile size must be at least 2 cells, got {self.tile}")

    @property
    def counts(self) -> tuple[int, int]:
        return (math.ceil(self.shape[0] / self.tile), math.ceil(self.shape[1] / self.tile))

    def tiles(self) -> list[tuple[int, int]]:
        ni, nj = self.counts
        return [(i, j) for i in range(ni) for j in range(nj)]

    def window(self, i: int, j: int) -> tuple[int, int, int, int]:
        """(row0, row1, col0, col1) of tile (i, j)."""
        t = self.tile
        return (i * t, min((i + 1) * t, self.shape[0]), j * t, min((j + 1) * t, self.shape[1]))


def ring_cells(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the perimeter cells of an h x w tile, in row-major order."""
    cols = np.arange(w, dtype=np.int64)
    if h == 1:
        return np.zeros(w, np.int64), cols
    mid = np.arange(1, h - 1, dtype=np.int64)
    sides = np.array([0, w - 1] if w > 1 else [0], np.int64)
    rows = np.concatenate([np.zeros(w, np.int64), np.repeat(mid, sides.size),
                           np.full(w, h - 1, np.int64)])
    cc = np.concatenate([cols, np.tile(sides, mid.size), cols])
    return rows, cc


# --- window sources and tile sinks (picklable: they travel to dask workers) ------------------

class ArraySource:
    """An in-memory array read by windows (tests, and small DEMs on a local cluster)."""

    def __init__(self, array: np.ndarray):
        self.array = np.asarray(array)
        self.shape = self.array.shape
        self.dtype = self.array.dtype

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        return _padded(self.array, self.shape, r0, r1, c0, c1, self.dtype)


class RasterSource:
    """Band 1 of a raster file (GeoTIFF, VRT...) read by windows with rasterio; the nodata value
    becomes NaN (float32 unless the file is float64)."""

    def __init__(self, path: str):
        import rasterio

        self.path = str(path)
        with rasterio.open(self.path) as ds:
            self.shape = (ds.height, ds.width)
            self.dtype = np.dtype(np.float64 if ds.dtypes[0] == "float64" else np.float32)
            self.nodata = ds.nodata
            self.transform = ds.transform
            self.crs = ds.crs
        self._ds = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_ds"} | {"_ds": None}

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        from rasterio.windows import Window

        if self._ds is None:
            self._ds = _open_raster(self.path)
        q0, q1, p0, p1 = max(r0, 0), min(r1, self.shape[0]), max(c0, 0), min(c1, self.shape[1])
        out = np.full((r1 - r0, c1 - c0), np.nan, self.dtype)
        if q1 > q0 and p1 > p0:
            block = self._ds.read(1, window=Window(p0, q0, p1 - p0, q1 - q0)).astype(self.dtype)
            if self.nodata is not None and not np.isnan(self.nodata):
                block[block == self.nodata] = np.nan
            out[q0 - r0:q1 - r0, p0 - c0:p1 - c0] = block
        return out


_OPEN: dict[tuple, Any] = {}  # (thread, path, file identity) -> open dataset
_OPEN_LOCK = threading.Lock()


def _open_raster(path: str):
    """The raster opened once per process and thread: a task unpickles a fresh source, and
    opening the file again for every tile cost more than reading the tile. Closed at exit
    (a GDAL dataset left to the interpreter's teardown fails noisily)."""
    import rasterio

    try:  # a file rewritten at the same path is opened anew (long-lived cluster workers)
        st = os.stat(path)
        key = (threading.get_ident(), path, st.st_ino, st.st_mtime_ns, st.st_size)
    except OSError:  # GDAL virtual paths (/vsizip/...)
        key = (threading.get_ident(), path)
    with _OPEN_LOCK:
        ds = _OPEN.get(key)
        if ds is None or ds.closed:
            if len(_OPEN) >= 16:
                _close_rasters()
            ds = _OPEN[key] = rasterio.open(path)
        return ds


@atexit.register
def _close_rasters() -> None:
    for ds in list(_OPEN.values()):
        ds.close()
    _OPEN.clear()


class DataArraySource:
    """A 2-D xarray DataArray (numpy- or dask-backed, e.g. opened with ``chunks=``) read by
    windows; a numeric nodata value (``rio.nodata`` / ``_FillValue``) becomes NaN."""

    def __init__(self, da):
        if da.ndim != 2:
            raise ValueError(f"expected a 2-D DataArray, got dims {da.dims}")
        self.da = da
        self.shape = tuple(da.shape)
        self.dtype = np.dtype(np.float64 if da.dtype == np.float64 else (
            da.dtype if np.issubdtype(da.dtype, np.integer) and da.dtype.itemsize == 1
            else np.float32))
        nodata = getattr(da.rio, "nodata", None) if hasattr(da, "rio") else None
        if nodata is None:
            nodata = da.attrs.get("_FillValue")
        self.nodata = None if nodata is None or np.isnan(nodata) else nodata

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        q0, q1, p0, p1 = max(r0, 0), min(r1, self.shape[0]), max(c0, 0), min(c1, self.shape[1])
        block = np.asarray(self.da.isel({self.da.dims[0]: slice(q0, q1),
                                         self.da.dims[1]: slice(p0, p1)}).values)
        if self.nodata is not None and np.issubdtype(self.dtype, np.floating):
            block = np.where(block == self.nodata, np.nan, block)
        return _padded(block.astype(self.dtype, copy=False), (q1 - q0, p1 - p0),
                       r0 - q0, r1 - q0, c0 - p0, c1 - p0, self.dtype)


class FiniteWeights:
    """1 where a source is finite, 0 elsewhere (nodata cells carry no weight, as in the CLI)."""

    def __init__(self, source):
        self.source = source
        self.shape = source.shape
        self.dtype = np.dtype(np.float64)

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        return np.isfinite(self.source.read(r0, r1, c0, c1)).astype(np.float64)


def _padded(arr, shape, r0, r1, c0, c1, dtype) -> np.ndarray:
    """``arr[r0:r1, c0:c1]`` with NaN (or 0 for integers) outside the grid."""
    q0, q1, p0, p1 = max(r0, 0), min(r1, shape[0]), max(c0, 0), min(c1, shape[1])
    if (q0, q1, p0, p1) == (r0, r1, c0, c1):
        return np.asarray(arr[r0:r1, c0:c1], dtype=dtype)
    fill = np.nan if np.issubdtype(dtype, np.floating) else 0
    out = np.full((r1 - r0, c1 - c0), fill, dtype)
    if q1 > q0 and p1 > p0:
        out[q0 - r0:q1 - r0, p0 - c0:p1 - c0] = np.asarray(arr[q0:q1, p0:p1], dtype=dtype)
    return out


class TileStore:
    """A raster on disk as one ``.npy`` file per tile (``<path>/<row>_<col>.npy``): what the
    tiled steps write and read between them. A tile is written to a temporary name and renamed,
    so parallel writers never see each other's halves, and windows are read by memory-mapping
    the tiles they touch (a Zarr array did the same at 20x the cost per window read, most of it
    in its asyncio machinery). Missing tiles read as the fill value (NaN, or 0 for integers).
    :meth:`dataarray` gives it to xarray as a dask-backed DataArray, one chunk per tile."""

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int], dtype, tile: int):
        self.path = str(path)
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self.tile = int(tile)
        self.fill = np.nan if np.issubdtype(self.dtype, np.floating) else 0
        shutil.rmtree(self.path, ignore_errors=True)  # never read a tile of an earlier run
        os.makedirs(self.path)
        with open(os.path.join(self.path, "store.json"), "w") as fh:
            json.dump({"shape": self.shape, "dtype": self.dtype.str, "tile": self.tile}, fh)

    @classmethod
    def open(cls, path: str | os.PathLike) -> TileStore:
        """An existing store, as written (nothing cleared)."""
        with open(os.path.join(str(path), "store.json")) as fh:
            meta = json.load(fh)
        store = cls.__new__(cls)
        store.path = str(path)
        store.shape = tuple(meta["shape"])
        store.dtype = np.dtype(meta["dtype"])
        store.tile = int(meta["tile"])
        store.fill = np.nan if np.issubdtype(store.dtype, np.floating) else 0
        return store

    def _file(self, i: int, j: int) -> str:
        return os.path.join(self.path, f"{i}_{j}.npy")

    def write(self, r0: int, c0: int, block: np.ndarray) -> None:
        """Write one whole tile (``r0``, ``c0`` on the tile grid)."""
        i, j = r0 // self.tile, c0 // self.tile
        if r0 % self.tile or c0 % self.tile:
            raise ValueError(f"({r0}, {c0}) is not the corner of a tile of {self.tile}")
        tmp = self._file(i, j) + f".{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(block, dtype=self.dtype))
        os.replace(tmp, self._file(i, j))

    def tile_array(self, i: int, j: int) -> np.ndarray | None:
        try:
            return np.load(self._file(i, j), mmap_mode="r")
        except FileNotFoundError:
            return None

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        out = np.full((r1 - r0, c1 - c0), self.fill, self.dtype)
        t = self.tile
        q0, q1 = max(r0, 0), min(r1, self.shape[0])
        p0, p1 = max(c0, 0), min(c1, self.shape[1])
        for i in range(q0 // t, (q1 - 1) // t + 1 if q1 > q0 else 0):
            for j in range(p0 // t, (p1 - 1) // t + 1 if p1 > p0 else 0):
                arr = self.tile_array(i, j)
                if arr is None:
                    continue
                a0, a1 = max(q0, i * t), min(q1, (i + 1) * t)
                b0, b1 = max(p0, j * t), min(p1, (j + 1) * t)
                out[a0 - r0:a1 - r0, b0 - c0:b1 - c0] = arr[a0 - i * t:a1 - i * t,
                                                            b0 - j * t:b1 - j * t]
        return out

    def source(self) -> TileStore:
        return self

    def dataarray(self, transform=None, crs=None, name: str | None = None):
        """The store as a lazy, dask-backed xarray DataArray (one chunk per tile)."""
        return as_dataarray(self, self.tile, transform, crs, name)


def as_dataarray(source, tile: int, transform=None, crs=None, name: str | None = None,
                 dtype=None):
    """A window source as a lazy, dask-backed xarray DataArray with chunks of ``tile`` cells
    (each read by its own task), x/y coordinates of the cell centres and the CRS when given."""
    import dask.array as da
    import xarray as xr
    from dask import delayed

    dtype = np.dtype(dtype or source.dtype)
    tiling = Tiling(tuple(source.shape), tile)
    ni, nj = tiling.counts
    rows = []
    for i in range(ni):
        row = []
        for j in range(nj):
            r0, r1, c0, c1 = tiling.window(i, j)
            part = delayed(source.read)(r0, r1, c0, c1)
            row.append(da.from_delayed(part, (r1 - r0, c1 - c0), dtype=dtype))
        rows.append(row)
    data = da.block(rows).astype(dtype)
    coords = {}
    if transform is not None:
        coords = {"y": transform.f + transform.e * (np.arange(source.shape[0]) + 0.5),
                  "x": transform.c + transform.a * (np.arange(source.shape[1]) + 0.5)}
    out = xr.DataArray(data, dims=("y", "x"), coords=coords, name=name)
    if crs is not None:
        import rioxarray  # noqa: F401  (registers .rio)

        out = out.rio.write_crs(crs)
        if transform is not None:
            out = out.rio.write_transform(transform)
    return out


# --- where tasks run -------------------------------------------------------------------------

class Executor:
    """Runs tile tasks in this process (``workers=1``), on a LocalCluster of ``workers``
    single-threaded processes, or on a running scheduler (``scheduler="tcp://host:8786"``).
    Use as a context manager; ``progress(n, desc)`` may return a tqdm-like bar."""

    def __init__(self, workers: int = 1, scheduler: str | None = None,
                 progress: Callable[[int, str], Any] | None = None,
                 memory_limit: str | None = None, client=None):
        self.workers = max(1, int(workers))
        self.scheduler = scheduler
        self.progress = progress
        self.memory_limit = memory_limit
        self.client = client
        self._own = client is None
        self._cluster = None

    def __enter__(self):
        if self.client is None and (self.scheduler or self.workers > 1):
            import logging

            import dask
            from dask.distributed import Client, LocalCluster

            if self.scheduler:
                self.client = Client(self.scheduler, timeout="30s")
            else:
                # loopback only, no dashboard, one numba thread per single-threaded worker
                with dask.config.set({"distributed.worker.profile.enabled": False}):
                    self._cluster = LocalCluster(
                        n_workers=self.workers, threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address="127.0.0.1:0",
                        silence_logs=logging.ERROR, memory_limit=self.memory_limit or "auto",
                        env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
                self.client = Client(self._cluster)
        return self

    def __exit__(self, *exc):
        if self._own:  # a client handed in stays open for its owner
            if self.client is not None:
                self.client.close()
            if self._cluster is not None:
                self._cluster.close()
            self.client = self._cluster = None
        return False

    @property
    def distributed(self) -> bool:
        return self.client is not None

    def map(self, fn: Callable, args: Sequence[tuple], desc: str = "") -> list[Any]:
        """``[fn(*a) for a in args]``, in order, wherever the tasks run."""
        bar = self.progress(len(args), desc) if self.progress else None
        try:
            if self.client is None:
                results = []
                for a in args:
                    results.append(fn(*a))
                    if bar is not None:
                        bar.update(1)
                return results
            from dask.distributed import as_completed

            futures = [self.client.submit(fn, *a, pure=False) for a in args]
            index = {f.key: k for k, f in enumerate(futures)}
            results = [None] * len(futures)
            for fut in as_completed(futures):
                results[index[fut.key]] = fut.result()
                fut.release()
                if bar is not None:
                    bar.update(1)
            return results
        finally:
            if bar is not None:
                bar.close()


# --- fill: first pass ------------------------------------------------------------------------

@njit(cache=True)
def _flood_labels(z, nrows, ncols, lab):
    """Priority-Flood of a tile from its perimeter with watershed labels: the Zhou, Sun & Fu
    (2016) short-cut of :func:`models.hydro.fill._pf_zhou`, each cell taking the label of the
    cell that reached it (so its seed reaches it by a path no higher than its filled level).

    ``z``: the padded tile as int32 keys (:func:`models.hydro.fill._to_keys`; outlets at SINK),
    raised in place to the filled keys; ``lab``: padded int32 labels, -1 on the padding, OUT on
    outlets, the perimeter cells' labels, 0 elsewhere; filled in place. The spills between
    labels are read afterwards by :func:`_spills` (recording them inside the flood's hot loops
    made it four times slower)."""
    width = ncols + 2
    off = np.empty(8, np.int64)
    for d in range(8):
        off[d] = ESRI_DROW[d] * width + ESRI_DCOL[d]
    heap = np.empty(max(64, 2 * (nrows + ncols)), np.int64)
    size = 0
    for r in range(1, nrows + 1):
        for c in range(1, ncols + 1):
            i = r * width + c
            if lab[i] == 0:
                continue
            seed = r == 1 or r == nrows or c == 1 or c == ncols
            if not seed:  # an outlet inside: a seed if it touches land
                for d in range(8):
                    if lab[i + off[d]] == 0:
                        seed = True
                        break
            if seed:
                if size == heap.shape[0]:
                    heap = grow(heap, size)
                size = pheap_push(heap, size, (np.int64(z[i]) << 32) | i)
    dq = np.empty(1024, np.int32)
    dh = 0
    dn = 0
    tq = np.empty(1024, np.int32)
    th = 0
    tn = 0
    while size > 0:
        item, size = pheap_pop(heap, size)
        c = item & 0xFFFFFFFF
        level = z[c]
        lc = lab[c]
        for k in range(8):
            nb = c + off[k]
            lnb = lab[nb]
            if lnb != 0:
                continue
            lab[nb] = lc
            if z[nb] <= level:
                z[nb] = level
                dq, dh = _fifo_put(dq, dh, dn, nb)
                dn += 1
            else:
                tq, th = _fifo_put(tq, th, tn, nb)
                tn += 1
            while dn > 0:  # flood the depression at this level
                d = dq[dh]
                dh = (dh + 1) & (dq.shape[0] - 1)
                dn -= 1
                ld = lab[d]
                for kk in range(8):
                    m = d + off[kk]
                    lm = lab[m]
                    if lm != 0:
                        continue
                    lab[m] = ld
                    if z[m] <= level:
                        z[m] = level
                        dq, dh = _fifo_put(dq, dh, dn, m)
                        dn += 1
                    else:
                        tq, th = _fifo_put(tq, th, tn, m)
                        tn += 1
            while tn > 0:  # climb the slopes
                t = tq[th]
                th = (th + 1) & (tq.shape[0] - 1)
                tn -= 1
                zt = z[t]
                lt = lab[t]
                queued = False
                for kk in range(8):
                    m = t + off[kk]
                    lm = lab[m]
                    if lm != 0:
                        continue
                    zm = z[m]
                    if zm >= zt:
                        lab[m] = lt
                        tq, th = _fifo_put(tq, th, tn, m)
                        tn += 1
                    elif not queued:
                        lower_seen = False
                        for q in range(8):
                            j = m + off[q]
                            if lab[j] > 0 and z[j] < zm:
                                lower_seen = True
                                break
                        if not lower_seen:
                            queued = True
                            if size == heap.shape[0]:
                                heap = grow(heap, size)
                            size = pheap_push(heap, size, (np.int64(zt) << 32) | t)


@njit(cache=True, inline="always")
def _spill_at(z, lab, i, j, ek, ew, ne):
    li = lab[i]
    lj = lab[j]
    if lj > 0 and lj != li:
        ek[ne] = (np.int64(min(li, lj)) << 32) | np.int64(max(li, lj))
        ew[ne] = max(z[i], z[j])
        return ne + 1
    return ne


@njit(cache=True)
def _spills(z, nrows, ncols, lab):
    """Every two touching cells of different labels (``z``, ``lab``: the padded tile's filled
    keys and labels, flat, padding -1): the label pairs (a < b) and the lowest spill key
    between them, the higher of the two filled keys."""
    width = ncols + 2
    n = 0
    for r in range(1, nrows + 1):  # count, then record: no growing buffers
        for i in range(r * width + 1, r * width + ncols + 1):
            li = lab[i]
            for j in (i + 1, i + width - 1, i + width, i + width + 1):
                if lab[j] > 0 and lab[j] != li:
                    n += 1
    ek = np.empty(n, np.int64)
    ew = np.empty(n, np.int32)
    ne = 0
    for r in range(1, nrows + 1):
        for i in range(r * width + 1, r * width + ncols + 1):  # E, SW, S, SE: each pair once
            ne = _spill_at(z, lab, i, i + 1, ek, ew, ne)
            ne = _spill_at(z, lab, i, i + width - 1, ek, ew, ne)
            ne = _spill_at(z, lab, i, i + width, ek, ew, ne)
            ne = _spill_at(z, lab, i, i + width + 1, ek, ew, ne)
    order = np.argsort(ek)
    m = 0
    ea = np.empty(ne, np.int64)
    eb = np.empty(ne, np.int64)
    el = np.empty(ne, np.int32)
    for t in range(ne):
        key = ek[order[t]]
        w = ew[order[t]]
        if m > 0 and ((ea[m - 1] << 32) | eb[m - 1]) == key:
            if w < el[m - 1]:
                el[m - 1] = w
        else:
            ea[m] = key >> 32
            eb[m] = key & 0xFFFFFFFF
            el[m] = w
            m += 1
    return ea[:m], eb[:m], el[:m]


def _on_dem_edge(rr, cc, r0, c0, shape) -> np.ndarray:
    g_r, g_c = rr + r0, cc + c0
    return (g_r == 0) | (g_c == 0) | (g_r == shape[0] - 1) | (g_c == shape[1] - 1)


@dataclass
class _FillGraph:
    """What the first pass of a tile tells the global solve."""

    i: int
    j: int
    ring_rows: np.ndarray  # global rows of the perimeter cells
    ring_cols: np.ndarray
    ring_z: np.ndarray  # float64, outlets at -inf
    ring_out: np.ndarray  # bool: the cell is an outlet or on the DEM's edge (label OUT)
    edges: tuple[np.ndarray, np.ndarray, np.ndarray]  # labels a, b (1 = OUT, 2 + k) and level


def _fill_pass1(src, tiling: Tiling, i: int, j: int, sea_level: float | None,
                keep: str) -> _FillGraph:
    r0, r1, c0, c1 = tiling.window(i, j)
    block = src.read(r0, r1, c0, c1)
    h, w = block.shape
    zp, inner, sinks = padded_grid(block, None, True, sea_level)  # outlets at -inf, NaN frame
    rr, cc = ring_cells(h, w)
    ring_z = inner[rr, cc].astype(np.float64)
    ring_out = _on_dem_edge(rr, cc, r0, c0, tiling.shape) | (ring_z == -np.inf)
    lab = np.full((h + 2, w + 2), -1, np.int32)
    lab[1:-1, 1:-1] = np.where(inner == -np.inf, OUT, 0)
    lab[rr + 1, cc + 1] = np.where(ring_out, OUT, 2 + np.arange(rr.size))
    keys, values = _to_keys(zp.reshape(-1))
    _flood_labels(keys, h, w, lab.reshape(-1))
    a, b, spill = _spills(keys, h, w, lab.reshape(-1))
    levels = _from_keys(spill.copy(), values).astype(np.float64)
    # Kept for the second pass (Barnes' "retain"): the tile filled with its perimeter as
    # outlets, outlets holding their own values, and each cell's label.
    filled = _from_keys(keys, values).reshape(h + 2, w + 2)[1:-1, 1:-1]
    if sinks is not None:
        filled[sinks] = block[sinks]
    labels = lab[1:-1, 1:-1]
    _save(os.path.join(keep, f"{i}_{j}.filled.npy"), filled)
    _save(os.path.join(keep, f"{i}_{j}.labels.npy"),
          labels.astype(np.uint16) if rr.size + 2 < 65535 else labels)
    return _FillGraph(i, j, rr + r0, cc + c0, ring_z, ring_out, (a, b, levels))


def _save(path: str, array: np.ndarray) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array))
    os.replace(tmp, path)


# --- fill: global solve ----------------------------------------------------------------------

@njit(cache=True)
def _minimax(n_nodes, ea, eb, ew):
    """Minimax distance from node 0 over an undirected graph: the lowest, over all paths, of
    the highest edge weight on the path (Dijkstra with max instead of +)."""
    deg = np.zeros(n_nodes + 1, np.int64)
    for t in range(ea.shape[0]):
        deg[ea[t] + 1] += 1
        deg[eb[t] + 1] += 1
    for v in range(n_nodes):
        deg[v + 1] += deg[v]
    nbr = np.empty(deg[n_nodes], np.int64)
    wt = np.empty(deg[n_nodes], np.float64)
    pos = deg[:-1].copy()
    for t in range(ea.shape[0]):
        a = ea[t]
        b = eb[t]
        nbr[pos[a]] = b
        wt[pos[a]] = ew[t]
        pos[a] += 1
        nbr[pos[b]] = a
        wt[pos[b]] = ew[t]
        pos[b] += 1
    dist = np.full(n_nodes, np.inf)
    done = np.zeros(n_nodes, np.uint8)
    hk = np.empty(max(64, ea.shape[0] + 1), np.float64)
    hi = np.empty(hk.shape[0], np.int32)
    dist[0] = -np.inf
    hs = heap_push(hk, hi, 0, -np.inf, np.int32(0))
    while hs > 0:
        v, hs = heap_pop(hk, hi, hs)
        if done[v]:
            continue
        done[v] = 1
        dv = dist[v]
        for t in range(deg[v], deg[v + 1]):
            u = nbr[t]
            cand = max(dv, wt[t])
            if cand < dist[u]:
                dist[u] = cand
                if hs == hk.shape[0]:
                    hk2 = np.empty(hs * 2, np.float64)
                    hk2[:hs] = hk[:hs]
                    hk = hk2
                    hi = grow(hi, hs)
                hs = heap_push(hk, hi, hs, cand, np.int32(u))
    return dist


def _neighbour_pairs(rows: np.ndarray, cols: np.ndarray, ncols: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (a, b) of 8-adjacent cells among the given cells (each pair once)."""
    lin = rows * ncols + cols
    order = np.argsort(lin, kind="stable")
    sorted_lin = lin[order]
    pa, pb = [], []
    for dr, dc in ((0, 1), (1, -1), (1, 0), (1, 1)):
        target = (rows + dr) * ncols + (cols + dc)
        ok = (cols + dc >= 0) & (cols + dc < ncols)
        pos = np.searchsorted(sorted_lin, target)
        pos = np.minimum(pos, sorted_lin.size - 1)
        hit = ok & (sorted_lin[pos] == target)
        pa.append(np.flatnonzero(hit))
        pb.append(order[pos[hit]])
    return np.concatenate(pa), np.concatenate(pb)


def _solve_fill(graphs: list[_FillGraph], tiling: Tiling) -> dict[tuple[int, int], np.ndarray]:
    """Water level of every perimeter cell of every tile (float64; -inf for outlets)."""
    base, n = {}, 1
    for g in graphs:
        base[(g.i, g.j)] = n
        n += g.ring_z.size
    node = np.concatenate([np.where(g.ring_out, 0, base[(g.i, g.j)] + np.arange(g.ring_z.size))
                           for g in graphs])
    rows = np.concatenate([g.ring_rows for g in graphs])
    cols = np.concatenate([g.ring_cols for g in graphs])
    zs = np.concatenate([g.ring_z for g in graphs])
    tile_id = np.concatenate([np.full(g.ring_z.size, t) for t, g in enumerate(graphs)])
    ea, eb, ew = [], [], []
    for g in graphs:  # spill edges inside tiles; label 1 is OUT, 2 + k is perimeter cell k
        a, b, w = g.edges
        to_node = np.where(g.ring_out, 0, base[(g.i, g.j)] + np.arange(g.ring_z.size))
        na = np.where(a == OUT, 0, to_node[np.maximum(a - 2, 0)])
        nb = np.where(b == OUT, 0, to_node[np.maximum(b - 2, 0)])
        ea.append(na)
        eb.append(nb)
        ew.append(w)
    pa, pb = _neighbour_pairs(rows, cols, tiling.shape[1])  # across tile borders
    cross = tile_id[pa] != tile_id[pb]
    pa, pb = pa[cross], pb[cross]
    ea.append(node[pa])
    eb.append(node[pb])
    ew.append(np.maximum(zs[pa], zs[pb]))
    ea, eb, ew = np.concatenate(ea), np.concatenate(eb), np.concatenate(ew)
    keep = ea != eb
    dist = _minimax(n, ea[keep].astype(np.int64), eb[keep].astype(np.int64), ew[keep])
    out, start = {}, 0
    for g in graphs:
        k = g.ring_z.size
        out[(g.i, g.j)] = dist[node[start:start + k]]
        start += k
    return out


# --- fill: second pass -----------------------------------------------------------------------

def _fill_pass2(keep: str, sink: TileStore, tiling: Tiling, i: int, j: int,
                levels: np.ndarray) -> None:
    """The tile's final fill: each cell at the higher of its first-pass level and the water
    level of its label's perimeter seed. A cell drains to its seed no higher than its first-pass
    level, and the seed to an outlet at its water level; no path does better (Barnes 2016,
    the "retain" strategy), so this equals the global fill bit for bit."""
    r0, _, c0, _ = tiling.window(i, j)
    filled = np.load(os.path.join(keep, f"{i}_{j}.filled.npy"))
    labels = np.load(os.path.join(keep, f"{i}_{j}.labels.npy"))
    by_label = np.full(levels.size + 2, -np.inf, dtype=filled.dtype)  # OUT: no raise
    by_label[2:] = levels
    sink.write(r0, c0, np.maximum(filled, by_label[labels]))
    for name in ("filled", "labels"):
        os.remove(os.path.join(keep, f"{i}_{j}.{name}.npy"))


def _tiling(src, sink: TileStore) -> Tiling:
    if tuple(src.shape) != sink.shape:
        raise ValueError(f"input grid {tuple(src.shape)} and output store {sink.shape} differ")
    return Tiling(sink.shape, sink.tile)


@dataclass
class TiledReport:
    """What a tiled step did: tiles, graph nodes/edges of the global solve, largest window."""

    tiles: int
    nodes: int = 0
    edges: int = 0
    largest_halo: int = 0
    solve_seconds: float = 0.0


def fill_tiled(src, sink: TileStore, *, sea_level: float | None = None,
               executor: Executor | None = None) -> TiledReport:
    """Fill every depression of ``src`` (a window source) into ``sink``, tile by tile; the
    result equals :func:`models.hydro.fill_depressions` (``nodata_is_outlet=True``) bit for
    bit."""
    executor = executor or Executor()
    tiling = _tiling(src, sink)
    tiles = tiling.tiles()
    keep = sink.path + ".first-pass"  # beside the output: on the file system workers share
    shutil.rmtree(keep, ignore_errors=True)
    os.makedirs(keep)
    try:
        graphs = executor.map(_fill_pass1, [(src, tiling, i, j, sea_level, keep)
                                            for i, j in tiles], "fill: first pass")
        t0 = time.perf_counter()
        levels = _solve_fill(graphs, tiling)
        solve = time.perf_counter() - t0
        n_nodes = 1 + sum(g.ring_z.size for g in graphs)
        n_edges = sum(g.edges[0].size for g in graphs)
        executor.map(_fill_pass2, [(keep, sink, tiling, i, j, levels[(i, j)])
                                   for i, j in tiles], "fill: second pass")
    finally:
        shutil.rmtree(keep, ignore_errors=True)
    return TiledReport(len(tiles), n_nodes, n_edges, solve_seconds=solve)


# --- D8 directions ---------------------------------------------------------------------------

@njit(cache=True)
def _flat_regions_cut(z, steep, t0, t1, s0, s1, cut_top, cut_bottom, cut_left, cut_right):
    """Whether an equal-elevation region holding a flat cell (steep == 254) of the core window
    ``[t0:t1, s0:s1]`` reaches a cut edge of the window (a side not on the DEM's edge)."""
    nr, nc = z.shape
    seen = np.zeros(nr * nc, np.uint8)
    stack = np.empty(1024, np.int32)
    for r in range(t0, t1):
        for c in range(s0, s1):
            i0 = r * nc + c
            if steep[r, c] != 254 or seen[i0]:
                continue
            zc = z[r, c]
            seen[i0] = 1
            size = 1
            stack[0] = i0
            while size > 0:
                size -= 1
                i = stack[size]
                rr0 = i // nc
                cc0 = i - rr0 * nc
                if ((cut_top and rr0 == 0) or (cut_bottom and rr0 == nr - 1)
                        or (cut_left and cc0 == 0) or (cut_right and cc0 == nc - 1)):
                    return True
                for d in range(8):
                    rr = rr0 + ESRI_DROW[d]
                    cc = cc0 + ESRI_DCOL[d]
                    if rr < 0 or rr >= nr or cc < 0 or cc >= nc:
                        continue
                    j = rr * nc + cc
                    if seen[j] == 0 and z[rr, cc] == zc:
                        seen[j] = 1
                        if size == stack.shape[0]:
                            stack = grow(stack, size)
                        stack[size] = j
                        size += 1
    return False


def _d8_tile(src, sink: TileStore, tiling: Tiling, i: int, j: int, dx: float, dy: float,
             sea_level: float | None) -> int:
    """D8 codes of one tile from a window of the filled DEM grown until exact; returns the
    halo used."""
    r0, r1, c0, c1 = tiling.window(i, j)
    nr, nc = tiling.shape
    halo = 1
    while True:
        w0, w1 = max(r0 - halo, 0), min(r1 + halo, nr)
        v0, v1 = max(c0 - halo, 0), min(c1 + halo, nc)
        z = np.ascontiguousarray(src.read(w0, w1, v0, v1), dtype=np.float64)
        outlets = None
        if sea_level is not None:
            with np.errstate(invalid="ignore"):
                outlets = z <= sea_level
        whole = (w0, w1, v0, v1) == (0, nr, 0, nc)
        extra = (outlets.astype(np.uint8) if outlets is not None
                 else np.zeros(z.shape, np.uint8))
        steep = _d8_steepest(z, dx, dy, extra)
        if whole or not _flat_regions_cut(z, steep, r0 - w0, r1 - w0, c0 - v0, c1 - v0,
                                          w0 > 0, w1 < nr, v0 > 0, v1 < nc):
            break
        halo *= HALO_GROWTH
    codes = d8_from_steepest(z, steep)
    sink.write(r0, c0, codes[r0 - w0:r1 - w0, c0 - v0:c1 - v0])
    return halo


def d8_tiled(filled, sink: TileStore, dx: float, dy: float | None = None, *,
             sea_level: float | None = None, executor: Executor | None = None) -> TiledReport:
    """D8 codes of a filled DEM (a window source) into ``sink``, tile by tile; equal to
    :func:`models.hydro.d8_directions` (with cells at or below ``sea_level`` as outlets)."""
    dx, dy = _spacing(dx, dy)
    executor = executor or Executor()
    tiling = _tiling(filled, sink)
    halos = executor.map(_d8_tile, [(filled, sink, tiling, i, j, dx, dy, sea_level)
                                    for i, j in tiling.tiles()], "flow directions")
    return TiledReport(len(halos), largest_halo=max(halos, default=0))


# --- accumulation ----------------------------------------------------------------------------

@njit(cache=True)
def _exits(dirs, order):
    """For each cell, the flat index of the cell at which its flow leaves the tile (a cell whose
    code points off the tile), or -1 if it ends inside. ``order``: upstream first."""
    nr, nc = dirs.shape
    n = nr * nc
    ex = np.full(n, -1, np.int64)
    flat = dirs.reshape(-1)
    for t in range(order.shape[0] - 1, -1, -1):  # downstream first
        i = order[t]
        k = CODE_TO_K[flat[i]]
        if k == 255:
            continue
        r = i // nc
        c = i - r * nc
        rr = r + ESRI_DROW[k]
        cc = c + ESRI_DCOL[k]
        if rr < 0 or rr >= nr or cc < 0 or cc >= nc:
            ex[i] = i
        else:
            ex[i] = ex[rr * nc + cc]
    return ex


@dataclass
class _AccGraph:
    i: int
    j: int
    ring_lin: np.ndarray  # global flat indices of the perimeter cells
    ring_exit: np.ndarray  # index (into the ring) of the perimeter cell where flow leaves, -1
    exit_target: np.ndarray  # global flat index the ring cell's code points to (outside), -1
    ring_acc: np.ndarray  # local accumulation at the perimeter cells


def _acc_pass1(dirs_src, weights_src, tiling: Tiling, i: int, j: int) -> _AccGraph:
    r0, r1, c0, c1 = tiling.window(i, j)
    dirs = np.ascontiguousarray(dirs_src.read(r0, r1, c0, c1), dtype=np.uint8)
    w = None if weights_src is None else weights_src.read(r0, r1, c0, c1)
    order = flow_order_d8(dirs)
    acc = accumulate_d8(dirs, weights=w, order=order)
    ex = _exits(dirs, order)
    h, wd = dirs.shape
    rr, cc = ring_cells(h, wd)
    lin_local = rr * wd + cc
    pos = np.full(h * wd, -1, np.int64)
    pos[lin_local] = np.arange(rr.size)
    e = ex[lin_local]
    ring_exit = np.where(e >= 0, pos[np.maximum(e, 0)], -1)
    k = CODE_TO_K[dirs[rr, cc]]
    valid = k != 255
    kk = np.where(valid, k, 0)
    tr = rr + r0 + ESRI_DROW[kk]
    tc = cc + c0 + ESRI_DCOL[kk]
    outside_tile = valid & ((tr < r0) | (tr >= r1) | (tc < c0) | (tc >= c1))
    in_dem = (tr >= 0) & (tr < tiling.shape[0]) & (tc >= 0) & (tc < tiling.shape[1])
    target = np.where(outside_tile & in_dem, tr * tiling.shape[1] + tc, -1)
    return _AccGraph(i, j, (rr + r0) * tiling.shape[1] + cc + c0, ring_exit, target,
                     acc[rr, cc])


@njit(cache=True)
def _propagate_inflow(succ, base):
    """``inflow[v] = base[v] + sum of inflow[u] over u with succ[u] == v`` over a forest."""
    n = succ.shape[0]
    indeg = np.zeros(n, np.int64)
    for u in range(n):
        if succ[u] >= 0:
            indeg[succ[u]] += 1
    inflow = base.copy()
    stack = np.empty(n, np.int64)
    size = 0
    for u in range(n):
        if indeg[u] == 0:
            stack[size] = u
            size += 1
    while size > 0:
        size -= 1
        u = stack[size]
        v = succ[u]
        if v >= 0:
            inflow[v] += inflow[u]
            indeg[v] -= 1
            if indeg[v] == 0:
                stack[size] = v
                size += 1
    return inflow


def _solve_acc(graphs: list[_AccGraph]) -> dict[tuple[int, int], np.ndarray]:
    """Flow entering each perimeter cell of each tile from other tiles."""
    lin = np.concatenate([g.ring_lin for g in graphs])
    order = np.argsort(lin)
    start = np.cumsum([0] + [g.ring_lin.size for g in graphs])

    def node_of(targets):
        pos = np.minimum(np.searchsorted(lin[order], targets), lin.size - 1)
        found = lin[order][pos] == targets
        return np.where(found, order[pos], -1)

    n = lin.size
    base = np.zeros(n)  # inflow from the local accumulation of exits
    succ = np.full(n, -1, np.int64)  # a ring cell's inflow passes on to its exit's target
    for t, g in enumerate(graphs):
        exits = np.flatnonzero(g.exit_target >= 0)
        tnode = node_of(g.exit_target[exits])
        np.add.at(base, tnode[tnode >= 0], g.ring_acc[exits[tnode >= 0]])
        has_exit = g.ring_exit >= 0
        ex = g.ring_exit[has_exit]
        tgt = g.exit_target[ex]
        succ_nodes = np.where(tgt >= 0, node_of(np.maximum(tgt, 0)), -1)
        succ[start[t] + np.flatnonzero(has_exit)] = succ_nodes
    inflow = _propagate_inflow(succ, base)
    return {(g.i, g.j): inflow[start[t]:start[t + 1]] for t, g in enumerate(graphs)}


def _acc_pass2(dirs_src, weights_src, sink: TileStore, tiling: Tiling, i: int, j: int,
               inflow: np.ndarray) -> None:
    r0, r1, c0, c1 = tiling.window(i, j)
    dirs = np.ascontiguousarray(dirs_src.read(r0, r1, c0, c1), dtype=np.uint8)
    w = (np.ones(dirs.shape) if weights_src is None
         else np.array(weights_src.read(r0, r1, c0, c1), dtype=np.float64))
    rr, cc = ring_cells(*dirs.shape)
    w[rr, cc] += inflow
    sink.write(r0, c0, accumulate_d8(dirs, weights=w))


def accumulate_tiled(dirs, sink: TileStore, *, weights=None,
                     executor: Executor | None = None) -> TiledReport:
    """D8 flow accumulation of ``dirs`` (a window source of ESRI codes) into ``sink``, tile by
    tile; equal to :func:`models.hydro.accumulate_d8` (exactly for unit or integer weights;
    other weights add in another order, so within float64 rounding)."""
    executor = executor or Executor()
    tiling = _tiling(dirs, sink)
    tiles = tiling.tiles()
    graphs = executor.map(_acc_pass1, [(dirs, weights, tiling, i, j) for i, j in tiles],
                          "accumulate: first pass")
    t0 = time.perf_counter()
    inflow = _solve_acc(graphs)
    solve = time.perf_counter() - t0
    executor.map(_acc_pass2, [(dirs, weights, sink, tiling, i, j, inflow[(i, j)])
                              for i, j in tiles], "accumulate: second pass")
    return TiledReport(len(tiles), nodes=sum(g.ring_lin.size for g in graphs),
                       solve_seconds=solve)


# --- conveniences ----------------------------------------------------------------------------

def work_dir(parent: str | os.PathLike | None = None) -> str:
    """A scratch directory for the intermediate Zarr arrays (removed by :func:`drop`)."""
    return tempfile.mkdtemp(prefix="ngis-tiled-", dir=parent)


def drop(path: str | os.PathLike) -> None:
    shutil.rmtree(path, ignore_errors=True)


def read_all(source) -> np.ndarray:
    """A whole window source as one array (tests and small grids)."""
    return source.read(0, source.shape[0], 0, source.shape[1])
