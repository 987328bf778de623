"""Build a quantized-mesh terrain tileset from DEM files, tile by tile.

Method:

1. Each DEM is opened with rasterio (GeoTIFF, netCDF/GMT grids, anything GDAL reads; a grid
   without a CRS whose extent fits in degrees is taken as EPSG:4326, :func:`gis.io.raster
   .open_dem`). The finest level ``max_zoom`` defaults to the first whose grid spacing (a tile's
   side / 256) is at most the DEM cell.
2. Finest tiles are sampled straight from the DEMs: the tile's 257 x 257 lon/lat sample points go
   to the DEM CRS (pyproj on every 16th row and column, 4-point Lagrange in between, checked
   against the exact projection to 1e-6 of a cell), the DEM window under them is read and
   interpolated bilinearly between cell centres (numba; no-data cells drop out of the weights).
   Several DEMs mosaic in the order given (the first with data wins; interpolated values before
   the clamped half-cell rims, so overlapping DEMs join without a seam). Only one tile's window is
   in memory.
3. Coarser tiles take every other sample of their four children (each level's grid is the DEM
   sampled at that level's points: the DEM is read once, at the finest level); tiles are visited
   depth first, so at most four half-size grids per level are alive: memory is bounded by the
   tile size, not the DEM size.
4. Heights become ellipsoidal: h = H + N with N from :mod:`tiles.geoid` (EGM96, the same model as
   our 3D Tiles, :func:`tiles.placement.geodetic`), so buildings sit on the terrain. Samples
   without data are put at mean sea level (H = 0). Only sea is water in the watermask, and only
   inside a DEM: by default (``sea="auto"``) a no-data region that reaches the DEM's border along
   a low shore (median of the valid cells around it at most 10 m, :func:`sea_mask`): national
   DEMs stop at the coastline, while a no-data collar from clipping or reprojection in the hills,
   or a void inland, is not sea. Beyond the DEMs' coverage nothing is known, so nothing is water
   (an inland DEM gets no ocean around it). ``sea="nodata"`` makes every no-data cell inside the
   DEMs sea (DEMs whose shore is high), ``sea="none"`` none.
5. Each grid is triangulated to ``max_error * 2 ** (max_zoom - z)`` metres minus half the 16-bit
   height quantization step, so the stated bound holds for the decoded tile at every grid sample
   (strict-error RTIN by default, or Delatin; :mod:`tiles.terrain.mesh`), and encoded as
   quantized-mesh-1.0 with the octvertexnormals and watermask extensions
   (:mod:`tiles.terrain.qmesh`), then gzip-compressed (libdeflate level 1 when the system has
   ``libdeflate.so.0``, else zlib level 1).

Output layout (the served URL layout): ``OUT/layer.json`` and ``OUT/{z}/{x}/{y}.terrain``, y from
the south. The ``.terrain`` files are gzip-compressed at rest under their plain names, like our
gzipped 3D Tiles; a server must send them unchanged with ``Content-Encoding: gzip`` and
``Content-Type: application/vnd.quantized-mesh;extensions=octvertexnormals-watermask``
(layer.json ``ngis.contentEncoding`` says which). Level 0 always has both root tiles (CesiumJS
requests them); deeper levels have every tile that touches the DEMs' lon/lat bounds, listed in
layer.json ``available``. The tileset is built in a temporary folder renamed into place at the end
(:func:`gis.io.outputs.output_dir`): a failed build leaves nothing behind.

Parallel builds (``workers > 1``) hand whole subtrees below a split level to worker threads and
then the levels above them, tile by tile. Threads, not processes: the kernels are numba
``nogil``, and GDAL reads, pyproj and the compressor release the GIL too, so two threads use two
cores without the second or so a process pool needs to start and import.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numba import njit
from pyproj import CRS, Transformer

from gis.errors import DataError
from tiles.geoid import OutsideGeoidGrid, undulation
from tiles.geoid import _grid as _geoid_grid
from tiles.terrain.layer import layer_json
from tiles.terrain.mesh import triangulate
from tiles.terrain.qmesh import EXTENSIONS, encode_array, quantization_error
from tiles.terrain.tiling import SIZE, native_zoom, sample_lonlat, tile_bounds, tile_range

CONTENT_TYPE = "application/vnd.quantized-mesh;extensions=" + "-".join(EXTENSIONS)


@dataclass
class TerrainOptions:
    """Build options.

    Attributes:
        max_zoom: Finest level (default: the DEM's native level, :func:`native_zoom`).
        max_error: Vertical error bound (m) at the finest level; it doubles per coarser level.
        workers: Worker threads.
        gzip: Store ``.terrain`` files gzip-compressed (served with Content-Encoding: gzip).
        normals: Add the octvertexnormals extension.
        watermask: Add the watermask extension (water where ``sea`` says).
        mesh: Triangulation, "rtin" (fast) or "delatin" (fewer triangles).
        sea: Which no-data is sea (water in the watermask, at mean sea level): "auto" (no-data
            regions reaching the DEM's border along a low shore, :func:`sea_mask`), "nodata"
            (all no-data inside the DEMs) or "none". Outside the DEMs there is never water.
    """

    max_zoom: int | None = None
    max_error: float = 0.5
    workers: int = 1
    gzip: bool = True
    normals: bool = True
    watermask: bool = True
    mesh: str = "rtin"
    sea: str = "auto"


@dataclass
class TerrainSummary:
    path: Path
    tiles: int = 0
    bytes: int = 0
    seconds: float = 0.0
    cells: int = 0
    max_zoom: int = 0
    max_error: dict[int, float] = field(default_factory=dict)
    available: list[tuple[int, int, int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class DemInfo:
    """What a worker needs to reopen a DEM: path, CRS, lon/lat bounds, cell in degrees, cells."""

    path: str
    crs: str
    bounds: tuple[float, float, float, float]
    resolution: float
    cells: int


def inspect_dems(paths: Sequence[str | os.PathLike]) -> list[DemInfo]:
    """Open each DEM once: CRS, lon/lat bounds, resolution; checks the geoid covers it.

    Raises:
        DataError: Unreadable file, no CRS, or outside the geoid grids (latitudes beyond 90).
    """
    from rasterio.warp import transform_bounds

    from gis.io.raster import open_dem

    infos = []
    for path in paths:
        with open_dem(path, quiet=True) as (src, crs, _assumed):
            if src.count < 1:
                raise DataError("raster has no band", path=str(path))
            bounds = transform_bounds(crs, CRS.from_epsg(4326), *src.bounds, densify_pts=21)
            width = max(bounds[2] - bounds[0], 1e-12)
            height = max(bounds[3] - bounds[1], 1e-12)
            res = min(width / src.width, height / src.height)
            infos.append(DemInfo(str(path), crs.to_wkt(), tuple(float(b) for b in bounds),
                                 float(res), int(src.width) * int(src.height)))
        west, south, east, north = bounds
        try:
            undulation([south, north, south, north], [west, west, east, east])
        except OutsideGeoidGrid as err:
            raise DataError(f"DEM outside the geoid model we ship ({err})", path=str(path)) \
                from err
    return infos


class _Source:
    """One thread's handle on a DEM: the dataset, lon/lat -> DEM CRS transformer (None for a
    geographic DEM), and how to read its no data."""

    def __init__(self, dem: DemInfo):
        import rasterio
        from rasterio.enums import MaskFlags

        from gis.io.raster import dem_gdal_path

        self.src = rasterio.open(dem_gdal_path(dem.path))
        crs = CRS.from_wkt(dem.crs)
        self.geographic = crs.equals(CRS.from_epsg(4326), ignore_axis_order=True)
        self.transformer = None if self.geographic else Transformer.from_crs(
            CRS.from_epsg(4326), crs, always_xy=True)
        t = self.src.transform
        if t.b != 0 or t.d != 0:
            self.src.close()
            raise DataError("rotated DEM grids are not supported", path=dem.path)
        self.transform = t
        flags = self.src.mask_flag_enums[0]
        # an internal mask or alpha band needs a masked read; else compare with the nodata value
        self.masked = not all(f in (MaskFlags.all_valid, MaskFlags.nodata) for f in flags)
        nodata = self.src.nodata
        self.nodata = float(nodata) if nodata is not None else np.nan
        self.tol = 1e-6 * min(abs(t.a), abs(t.e))  # position error allowed (DEM units)


# Datasets and transformers are not thread-safe: each thread opens its own, kept for one build
# (:func:`_close_all` ends it). Sea masks are shared.
_LOCAL = threading.local()
_LOCK = threading.Lock()
_OPENED: list[_Source] = []
_SEA: dict[tuple[str, str], tuple[np.ndarray, int] | None] = {}
_GENERATION = 0


def _open(dem: DemInfo) -> _Source:
    cache = getattr(_LOCAL, "cache", None)
    if cache is None or _LOCAL.generation != _GENERATION:
        cache = _LOCAL.cache = {}
        _LOCAL.generation = _GENERATION
    source = cache.get((dem.path, dem.crs))
    if source is None:
        source = cache[(dem.path, dem.crs)] = _Source(dem)
        with _LOCK:
            _OPENED.append(source)
    return source


def _close_all() -> None:
    global _GENERATION
    with _LOCK:
        _GENERATION += 1
        while _OPENED:
            _OPENED.pop().src.close()
        _SEA.clear()


#: Sea: a no-data region of the DEM that touches the raster's border and whose shore (the
#: valid cells around it) has a median height at or below this (m).
SEA_SHORE_MAX_M = 10.0
#: The sea is found on the DEM decimated to at most this many cells a side.
SEA_GRID = 1024


def sea_mask(dem: DemInfo, source: _Source | None = None) -> tuple[np.ndarray, int] | None:
    """Where the DEM's no data is sea, on the DEM decimated by a factor f: (mask, f), or None
    when no region qualifies. Sea = a no-data region (8-connected) that reaches the raster's
    border and whose shore (the valid cells next to it) has a median height at or below
    :data:`SEA_SHORE_MAX_M` (national DEMs stop at the coastline; a no-data collar left by
    reprojection or clipping in the hills does not pass). The mask is dilated by one coarse cell
    so that no-data samples along the coast find it. Computed once per DEM and build, when a
    tile first meets no data inside the DEM."""
    from rasterio.enums import Resampling

    key = (dem.path, dem.crs)
    with _LOCK:
        if key in _SEA:
            return _SEA[key]
    source = source or _open(dem)
    src = source.src
    f = max(1, math.ceil(max(src.width, src.height) / SEA_GRID))
    shape = (math.ceil(src.height / f), math.ceil(src.width / f))
    data = src.read(1, out_shape=shape, masked=True, resampling=Resampling.nearest)
    values = np.ma.filled(data.astype(np.float64), np.nan)
    if not np.isnan(source.nodata):
        values[values == source.nodata] = np.nan
    sea = _border_sea(values, SEA_SHORE_MAX_M)
    result = (sea, f) if sea.any() else None
    with _LOCK:
        _SEA[key] = result
    return result


@njit(cache=True, nogil=True)
def _border_sea(values, shore_max):
    """The no-data (NaN) regions reaching the border whose shore median is <= ``shore_max``,
    flood-filled (8-connected) from the border, then dilated by one cell."""
    h, w = values.shape
    label = np.zeros((h, w), np.int32)
    shore_seen = np.zeros((h, w), np.int32)
    sea = np.zeros((h, w), np.bool_)
    queue = np.empty(h * w, np.int64)
    shore = np.empty(h * w)
    region = 0
    for start in range(2 * (h + w)):
        if start < w:
            r0, c0 = 0, start
        elif start < 2 * w:
            r0, c0 = h - 1, start - w
        elif start < 2 * w + h:
            r0, c0 = start - 2 * w, 0
        else:
            r0, c0 = start - 2 * w - h, w - 1
        if not np.isnan(values[r0, c0]) or label[r0, c0] != 0:
            continue
        region += 1
        label[r0, c0] = region
        queue[0] = r0 * w + c0
        head, tail, ns = 0, 1, 0
        while head < tail:
            r, c = queue[head] // w, queue[head] % w
            head += 1
            for dr in range(-1, 2):
                for dc in range(-1, 2):
                    rr, cc = r + dr, c + dc
                    if rr < 0 or rr >= h or cc < 0 or cc >= w:
                        continue
                    if np.isnan(values[rr, cc]):
                        if label[rr, cc] == 0:
                            label[rr, cc] = region
                            queue[tail] = rr * w + cc
                            tail += 1
                    elif shore_seen[rr, cc] != region:
                        shore_seen[rr, cc] = region
                        shore[ns] = values[rr, cc]
                        ns += 1
        if ns > 0 and np.median(shore[:ns]) <= shore_max:
            for k in range(tail):
                sea[queue[k] // w, queue[k] % w] = True
    out = sea.copy()
    for r in range(h):
        for c in range(w):
            if sea[r, c]:
                for rr in range(max(r - 1, 0), min(r + 2, h)):
                    for cc in range(max(c - 1, 0), min(c + 2, w)):
                        out[rr, cc] = True
    return out


_NODES = 16  # coordinates are projected exactly every 16th sample, cubic in between


@functools.cache
def _lagrange(n: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """4-point Lagrange (cubic) interpolation from every ``step``-th of ``n`` uniformly spaced
    samples to all of them: per sample, the first of its 4 nodes and their (n, 4) weights."""
    nodes = (n - 1) // step + 1
    first = np.empty(n, np.int64)
    w = np.zeros((n, 4))
    for k in range(n):
        s = k / step
        i = min(max(int(math.floor(s)) - 1, 0), nodes - 4)
        first[k] = i
        for j in range(4):
            w[k, j] = math.prod((s - (i + m)) / (j - m) for m in range(4) if m != j)
    return first, w


@njit(cache=True, nogil=True)
def _cubic_tensor(coarse, first, w):
    """The (n, n) grid from its every-step-th samples ``coarse``, separable 4-point Lagrange."""
    n = len(first)
    m = coarse.shape[1]
    tmp = np.zeros((n, m))
    for i in range(n):
        for a in range(4):
            wa = w[i, a]
            row = first[i] + a
            for j in range(m):
                tmp[i, j] += wa * coarse[row, j]
    out = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            c = first[j]
            out[i, j] = (w[j, 0] * tmp[i, c] + w[j, 1] * tmp[i, c + 1] + w[j, 2] * tmp[i, c + 2]
                         + w[j, 3] * tmp[i, c + 3])
    return out


def _project(source: _Source, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DEM-CRS coordinates of the grid ``lat`` (rows) x ``lon`` (columns). Exact (pyproj) on
    every 16th row and column, cubic in between (numba), checked against the exact projection
    at the middle of each 16 x 16 block; if any is off by more than 1e-6 of a DEM cell, every
    point is projected."""
    n = len(lon)
    tr = source.transformer
    if n == len(lat) and n > 4 * _NODES and (n - 1) % _NODES == 0:
        first, w = _lagrange(n, _NODES)
        xc, yc = tr.transform(*np.meshgrid(lon[::_NODES], lat[::_NODES]))
        x = _cubic_tensor(np.asarray(xc, np.float64), first, w)
        y = _cubic_tensor(np.asarray(yc, np.float64), first, w)
        mid = np.arange(_NODES // 2, n, _NODES)
        xm, ym = tr.transform(*np.meshgrid(lon[mid], lat[mid]))
        err = max(np.abs(x[np.ix_(mid, mid)] - xm).max(), np.abs(y[np.ix_(mid, mid)] - ym).max())
        if np.isfinite(err) and err <= source.tol:
            return x, y
    x, y = tr.transform(*np.meshgrid(lon, lat))
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


def sample_dem(dem: DemInfo, lon: np.ndarray, lat: np.ndarray, *, rim: bool = True,
               sea: str = "auto") -> np.ndarray:
    """Bilinear DEM heights (float64) at the points ``lon`` x ``lat`` (grid: ``lat`` rows,
    ``lon`` columns), reading only the window under them. NaN: outside the DEM or no data;
    -inf: no data that is sea (``sea``: "auto" = :func:`sea_mask`, "nodata" = every no-data
    cell inside the raster, "none" = never).

    Args:
        rim: Also points in the outer half cell (between the outermost cell centres and the
            raster edge), given the edge cells' values; without, they are outside.
    """
    out = np.full((len(lat), len(lon)), np.nan)
    west, south, east, north = dem.bounds
    if lon[-1] < west or lon[0] > east or lat[0] < south or lat[-1] > north:
        return out
    source = _open(dem)
    src, t = source.src, source.transform
    if source.geographic:
        cf = np.empty(out.shape)
        rf = np.empty(out.shape)
        cf[:] = ((lon - t.c) / t.a - 0.5)[None, :]
        rf[:] = ((lat - t.f) / t.e - 0.5)[:, None]
    else:
        x, y = _project(source, lon, lat)
        cf = (x - t.c) / t.a - 0.5  # fractional positions between cell centres
        rf = (y - t.f) / t.e - 0.5
    margin = 0.5 if rim else 0.0
    found, c0, c1, r0, r1 = _window(cf, rf, src.width, src.height, margin)
    if not found:
        return out
    from rasterio.windows import Window

    window = Window(c0, r0, c1 - c0, r1 - r0)
    if source.masked:
        data = src.read(1, window=window, masked=True)
        arr = np.ma.filled(data.astype(np.float64), np.nan)
    else:
        arr = src.read(1, window=window).astype(np.float64)
    hole = np.zeros(out.shape, np.bool_)
    _bilinear(arr, source.nodata, cf, rf, c0, r0, src.width, src.height, margin, out, hole)
    if sea != "none" and hole.any():
        if sea == "nodata":
            out[hole] = -np.inf
        else:
            found = sea_mask(dem, source)
            if found is not None:
                mask, f = found
                i = np.clip(np.floor(rf[hole] / f).astype(np.intp), 0, mask.shape[0] - 1)
                j = np.clip(np.floor(cf[hole] / f).astype(np.intp), 0, mask.shape[1] - 1)
                vals = out[hole]
                vals[mask[i, j]] = -np.inf
                out[hole] = vals
    return out


@njit(cache=True, nogil=True)
def _window(cf, rf, width, height, margin):
    """The DEM window (c0, c1, r0, r1) under the points inside the raster (with ``margin``)."""
    c0, c1, r0, r1 = np.inf, -np.inf, np.inf, -np.inf
    found = False
    for i in range(cf.shape[0]):
        for j in range(cf.shape[1]):
            c, r = cf[i, j], rf[i, j]
            if c >= -margin and c <= width - 1 + margin and r >= -margin \
                    and r <= height - 1 + margin:
                found = True
                c0, c1 = min(c0, c), max(c1, c)
                r0, r1 = min(r0, r), max(r1, r)
    if not found:
        return False, 0, 0, 0, 0
    return (True, max(int(np.floor(c0)), 0), min(int(np.floor(c1)) + 2, width),
            max(int(np.floor(r0)), 0), min(int(np.floor(r1)) + 2, height))


@njit(cache=True, nogil=True)
def _bilinear(arr, nodata, cf, rf, c0, r0, width, height, margin, out, hole):
    """Bilinear between cell centres of the window ``arr`` (at column c0, row r0), no-data
    corners dropped from the weights; points inside the raster with no valid corner are
    marked in ``hole``."""
    h, w = arr.shape
    for i in range(cf.shape[0]):
        for j in range(cf.shape[1]):
            c, r = cf[i, j], rf[i, j]
            if not (c >= -margin and c <= width - 1 + margin and r >= -margin
                    and r <= height - 1 + margin):
                continue
            ci = min(max(c - c0, 0.0), w - 1.0)
            ri = min(max(r - r0, 0.0), h - 1.0)
            j0 = min(int(np.floor(ci)), max(w - 2, 0))
            i0 = min(int(np.floor(ri)), max(h - 2, 0))
            j1 = min(j0 + 1, w - 1)
            i1 = min(i0 + 1, h - 1)
            dj = min(max(ci - j0, 0.0), 1.0)
            di = min(max(ri - i0, 0.0), 1.0)
            total = 0.0
            weight = 0.0
            for k in range(4):
                ii = i0 if k < 2 else i1
                jj = j0 if k % 2 == 0 else j1
                wk = (1.0 - di if k < 2 else di) * (1.0 - dj if k % 2 == 0 else dj)
                v = arr[ii, jj]
                if wk > 0 and not np.isnan(v) and v != nodata:
                    total += wk * v
                    weight += wk
            if weight > 1e-12:
                out[i, j] = total / weight
            else:
                hole[i, j] = True


def sample_tile(dems: Sequence[DemInfo], z: int, x: int, y: int,
                sea: str = "auto") -> np.ndarray:
    """Orthometric heights of a tile's grid, mosaicking ``dems`` in order (NaN = no data,
    -inf = sea, :func:`sample_dem`)."""
    lon, lat = sample_lonlat(z, x, y)
    grid = np.full((len(lat), len(lon)), np.nan)
    # Interpolated values from any DEM first, then the edge cells' rims (so that where DEMs
    # overlap, a seam is interpolated, not clamped).
    for rim in ((False, True) if len(dems) > 1 else (True,)):
        for dem in dems:
            gap = ~np.isfinite(grid)
            if not gap.any():
                return grid
            part = sample_dem(dem, lon, lat, rim=rim, sea=sea)
            fill = gap & np.isfinite(part)
            grid[fill] = part[fill]
            grid[np.isnan(grid) & (part == -np.inf)] = -np.inf
    return grid


def tile_undulation(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The geoid undulation of :func:`tiles.geoid.undulation` (EGM96, bilinear) on the tensor grid
    ``lat`` (rows) x ``lon`` (columns): bilinear on one geoid grid in a numba kernel (the East
    Asia grid, or the worldwide one for a tile clear of East Asia), point by point through
    :func:`tiles.geoid.undulation` for a tile across the two."""
    from tiles.geoid import grid_covering

    corners = (np.array([lat.min(), lat.min(), lat.max(), lat.max()]),
               np.array([lon.min(), lon.max(), lon.min(), lon.max()]))
    grid = grid_covering(*corners)
    lats, lons, values = ea = _geoid_grid()
    if grid is not ea and not (lat.max() < lats[0] or lat.min() > lats[-1]
                               or lon.max() < lons[0] or lon.min() > lons[-1]):
        LON, LAT = np.meshgrid(lon, lat)
        return np.asarray(undulation(LAT, LON), np.float64)
    lats, lons, values = grid
    return _bilinear_tensor(float(lats[0]), float(lats[1] - lats[0]), float(lons[0]),
                            float(lons[1] - lons[0]), values, np.asarray(lat, np.float64),
                            np.asarray(lon, np.float64))


@njit(cache=True, nogil=True)
def _bilinear_tensor(lat0, dlat, lon0, dlon, values, lat, lon):
    """``tiles.geoid``'s bilinear interpolation (same clamping) at every (lat[i], lon[j])."""
    na, no = values.shape
    out = np.empty((len(lat), len(lon)))
    j0 = np.empty(len(lon), np.int64)
    dj = np.empty(len(lon))
    for j in range(len(lon)):
        f = (lon[j] - lon0) / dlon
        j0[j] = min(max(int(np.floor(f)), 0), no - 2)
        dj[j] = f - j0[j]
    for i in range(len(lat)):
        f = (lat[i] - lat0) / dlat
        i0 = min(max(int(np.floor(f)), 0), na - 2)
        di = f - i0
        for j in range(len(lon)):
            a, d = j0[j], dj[j]
            out[i, j] = (values[i0, a] * (1 - di) * (1 - d) + values[i0, a + 1] * (1 - di) * d
                         + values[i0 + 1, a] * di * (1 - d) + values[i0 + 1, a + 1] * di * d)
    return out


def ellipsoidal(grid: np.ndarray, z: int, x: int, y: int) -> np.ndarray:
    """Orthometric grid (NaN = no data, -inf = sea) -> ellipsoidal heights h = H + N (no data
    and sea: H = 0, mean sea level)."""
    lon, lat = sample_lonlat(z, x, y)
    return np.where(np.isfinite(grid), grid, 0.0) + tile_undulation(lat, lon)


def _watermask(grid: np.ndarray) -> np.ndarray | int:
    """256 x 256 watermask (rows north to south): a cell is water when at least two of its four
    corner samples are sea (-inf); 0 / 255 when the whole tile is land / water."""
    sea = grid == -np.inf
    if not sea.any():
        return 0
    if sea.all():
        return 255
    cell = (sea[:-1, :-1].astype(np.uint8) + sea[1:, :-1] + sea[:-1, 1:] + sea[1:, 1:])
    if cell.shape != (256, 256):
        return 255 if sea.mean() >= 0.5 else 0
    return np.where(cell >= 2, 255, 0).astype(np.uint8)


class _Gzip:
    """gzip at rest: libdeflate (level 1) when the system has it, about twice as fast as zlib's
    level 1 and smaller, else zlib level 1. Compressors are reused from a pool (one per thread
    at work, so never more than the most threads that ran at once)."""

    def __init__(self):
        self.free: list[int] = []
        self.lock = threading.Lock()
        self.lib = None
        try:
            import ctypes

            lib = ctypes.CDLL("libdeflate.so.0")
            lib.libdeflate_alloc_compressor.restype = ctypes.c_void_p
            lib.libdeflate_alloc_compressor.argtypes = [ctypes.c_int]
            lib.libdeflate_gzip_compress_bound.restype = ctypes.c_size_t
            lib.libdeflate_gzip_compress_bound.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            lib.libdeflate_gzip_compress.restype = ctypes.c_size_t
            lib.libdeflate_gzip_compress.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                                     ctypes.c_size_t, ctypes.c_void_p,
                                                     ctypes.c_size_t]
            self.lib = lib
        except (OSError, AttributeError):
            pass

    def __call__(self, data: np.ndarray) -> bytes:
        if self.lib is None:
            return zlib.compress(data, 1, wbits=31)
        with self.lock:
            c = self.free.pop() if self.free else None
        if c is None:
            c = self.lib.libdeflate_alloc_compressor(1)
            if not c:
                raise MemoryError("libdeflate: cannot allocate a compressor")
        try:
            bound = self.lib.libdeflate_gzip_compress_bound(c, data.nbytes)
            out = np.empty(bound, np.uint8)
            n = self.lib.libdeflate_gzip_compress(c, data.ctypes.data, data.nbytes,
                                                  out.ctypes.data, bound)
        finally:
            with self.lock:
                self.free.append(c)
        if n == 0:
            raise RuntimeError("libdeflate: output buffer too small")
        return out[:n].tobytes()


_gzip = _Gzip()


@dataclass
class _Job:
    dems: tuple[DemInfo, ...]
    out: str
    max_zoom: int
    max_error: float
    ranges: tuple[tuple[int, int, int, int], ...]
    options: TerrainOptions


def _write_tile(job: _Job, z: int, x: int, y: int, grid: np.ndarray) -> int:
    """Mesh, encode and write one tile; returns the bytes written."""
    h = ellipsoidal(grid, z, x, y)
    # The stated bound covers the mesh and the 16-bit height quantization together.
    bound = job.max_error * 2.0 ** (job.max_zoom - z)
    budget = bound - quantization_error(float(h.min()), float(h.max())) - 1e-4
    mesh = triangulate(h, max(budget, 0.0), job.options.mesh)
    data = encode_array(mesh, tile_bounds(z, x, y), normals=job.options.normals,
                        watermask=_watermask(grid) if job.options.watermask else None)
    data = _gzip(data) if job.options.gzip else data.tobytes()
    path = os.path.join(job.out, str(z), str(x), f"{y}.terrain")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    return len(data)


def _in_range(job: _Job, z: int, x: int, y: int) -> bool:
    if z >= len(job.ranges):
        return False
    x0, y0, x1, y1 = job.ranges[z]
    return x0 <= x <= x1 and y0 <= y <= y1


def _children_grid(parts: dict[tuple[int, int], np.ndarray | None]) -> np.ndarray:
    """Parent grid from the four children's half grids (every other sample), keyed (dx, dy)."""
    half = SIZE // 2
    grid = np.full((SIZE + 1, SIZE + 1), np.nan)
    for (dx, dy), part in parts.items():
        if part is None:
            continue
        r = 0 if dy == 1 else half  # the northern children (dy = 1) fill the top rows
        c = half * dx
        grid[r:r + half + 1, c:c + half + 1] = part
    return grid


def _subtree(job: _Job, z: int, x: int, y: int,
             tick: Callable[[int], None] | None = None) -> tuple[np.ndarray, int, int]:
    """Build a tile and everything below it, depth first. Returns (its grid's every other
    sample, tiles written, bytes written)."""
    if z == job.max_zoom:
        grid = sample_tile(job.dems, z, x, y, job.options.sea)
        tiles, nbytes = 0, 0
    else:
        parts, tiles, nbytes = {}, 0, 0
        for dy in (0, 1):
            for dx in (0, 1):
                cx, cy = 2 * x + dx, 2 * y + dy
                if _in_range(job, z + 1, cx, cy):
                    part, t, b = _subtree(job, z + 1, cx, cy, tick)
                    parts[(dx, dy)] = part
                    tiles += t
                    nbytes += b
                else:
                    parts[(dx, dy)] = None
        grid = _children_grid(parts)
    nbytes += _write_tile(job, z, x, y, grid)
    tiles += 1
    if tick is not None:
        tick(1)
    return grid[::2, ::2].copy(), tiles, nbytes


def _subtree_job(args) -> tuple[tuple[int, int, int], np.ndarray, int, int]:
    # No rasterio.Env per task: the block cache size the build set is process-wide, and leaving
    # an Env restores (and so flushes) the cache.
    job, z, x, y, tick = args
    part, tiles, nbytes = _subtree(job, z, x, y, tick)
    return (z, x, y), part, tiles, nbytes


def warm_up() -> None:
    """Load every compiled kernel (numba's on-disk cache, a few tenths of a second in all) and
    the compressor, so that a timed build measures the build only."""
    grid = np.zeros((SIZE + 1, SIZE + 1))
    mesh = triangulate(grid, 1.0)
    _gzip(encode_array(mesh, (0.0, 0.0, 1.0, 1.0), watermask=np.zeros((256, 256), np.uint8)))
    pos = np.zeros((2, 2))
    _window(pos, pos, 2, 2, 0.5)
    _bilinear(pos, np.nan, pos, pos, 0, 0, 2, 2, 0.5, pos.copy(), np.zeros((2, 2), np.bool_))
    _border_sea(np.full((3, 3), np.nan), SEA_SHORE_MAX_M)
    lon, lat = sample_lonlat(12, 6830, 2590)
    tile_undulation(lat, lon)
    first, w = _lagrange(SIZE + 1, _NODES)
    _cubic_tensor(np.zeros((SIZE // _NODES + 1,) * 2), first, w)


def _ranges(dems: Sequence[DemInfo], max_zoom: int) -> list[tuple[int, int, int, int]]:
    west = min(d.bounds[0] for d in dems)
    south = min(d.bounds[1] for d in dems)
    east = max(d.bounds[2] for d in dems)
    north = max(d.bounds[3] for d in dems)
    ranges = [(0, 0, 1, 0)]
    for z in range(1, max_zoom + 1):
        ranges.append(tile_range(z, (west, south, east, north)))
    return ranges


def build_terrain(dems: Sequence[str | os.PathLike], out: str | os.PathLike,
                  options: TerrainOptions | None = None, *,
                  progress: Callable[[int], None] | None = None,
                  on_plan: Callable[[int], None] | None = None) -> TerrainSummary:
    """Build ``out/layer.json`` and ``out/{z}/{x}/{y}.terrain`` from DEM files.

    Args:
        dems: DEM paths (mosaicked in order).
        out: Output folder (replaced atomically when the build succeeds).
        options: :class:`TerrainOptions`.
        progress: Called with the number of tiles finished since the last call.
        on_plan: Called once with the total number of tiles.

    Raises:
        DataError: A DEM cannot be read, has no CRS, lies outside the geoid grid, or the
            options are out of range.
    """
    from gis.io.outputs import output_dir

    options = options or TerrainOptions()
    t0 = time.perf_counter()
    if not dems:
        raise DataError("no DEM given")
    if options.mesh not in ("rtin", "delatin"):
        raise DataError(f"unknown mesh method {options.mesh!r}")
    if options.sea not in ("auto", "nodata", "none"):
        raise DataError(f"unknown sea rule {options.sea!r} (auto, nodata or none)")
    if not options.max_error > 0:
        raise DataError(f"max error must be > 0 m, not {options.max_error}")
    infos = inspect_dems(dems)
    max_zoom = options.max_zoom
    if max_zoom is None:
        max_zoom = native_zoom(min(d.resolution for d in infos))
    if not 0 <= max_zoom <= 22:
        raise DataError(f"max zoom must be 0..22, not {max_zoom}")
    ranges = _ranges(infos, max_zoom)
    total = sum((x1 - x0 + 1) * (y1 - y0 + 1) for x0, y0, x1, y1 in ranges)
    if on_plan is not None:
        on_plan(total)
    errors = {z: options.max_error * 2.0 ** (max_zoom - z) for z in range(max_zoom + 1)}
    summary = TerrainSummary(Path(out), max_zoom=max_zoom, max_error=errors, available=ranges,
                             cells=sum(d.cells for d in infos))
    with output_dir(out) as tmp, _closing():
        job = _Job(tuple(infos), str(tmp), max_zoom, options.max_error, tuple(ranges), options)
        split = _split_level(ranges, options.workers)
        if split is None:
            for x in (0, 1):
                _, t, b = _subtree(job, 0, x, 0, progress)
                summary.tiles += t
                summary.bytes += b
        else:
            t, b = _parallel(job, split, options.workers, progress)
            summary.tiles += t
            summary.bytes += b
        name = Path(infos[0].path).stem if len(infos) == 1 else "terrain"
        bounds = (min(d.bounds[0] for d in infos), min(d.bounds[1] for d in infos),
                  max(d.bounds[2] for d in infos), max(d.bounds[3] for d in infos))
        layer = layer_json(ranges, bounds=bounds, max_error=errors, name=name,
                           encoding="gzip" if options.gzip else "identity",
                           extensions=tuple(e for e, on in zip(EXTENSIONS, (options.normals,
                                                                             options.watermask))
                                            if on))
        import json

        data = json.dumps(layer, indent=1).encode()
        (tmp / "layer.json").write_bytes(data)
        summary.bytes += len(data)
    summary.seconds = time.perf_counter() - t0
    return summary


#: GDAL's raster block cache for a build (MB). Tiles are visited depth first, so neighbouring
#: windows reuse recent blocks; GDAL's default (5 % of RAM) would let the cache, and the
#: resident memory, grow with the DEM.
GDAL_CACHE_MB = 64


def _gdal_env():
    import rasterio

    # rasterio hands GDAL_CACHEMAX to GDALSetCacheMax64: bytes, not GDAL's usual megabytes
    # (64 would be a 64-byte cache: every block decompressed again for each read).
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20)


@contextlib.contextmanager
def _closing():
    try:
        with _gdal_env():
            yield
    finally:
        _close_all()


def _split_level(ranges, workers: int) -> int | None:
    """The level whose subtrees go to the worker threads (enough of them to balance), or None."""
    if workers <= 1:
        return None
    for z, (x0, y0, x1, y1) in enumerate(ranges):
        if z > 0 and (x1 - x0 + 1) * (y1 - y0 + 1) >= 16 * workers:
            return z
    return len(ranges) - 1 if len(ranges) > 1 else None


def _parent_job(args) -> tuple[tuple[int, int, int], np.ndarray, int]:
    """One tile above the split level from its children's half grids."""
    job, z, x, y, children = args
    grid = _children_grid(children)
    nbytes = _write_tile(job, z, x, y, grid)
    return (z, x, y), grid[::2, ::2].copy(), nbytes


def _parallel(job: _Job, split: int, workers: int, progress) -> tuple[int, int]:
    """Subtrees at ``split`` in worker threads, then each level above, tile by tile, in the
    threads too (at most the split level's half grids are held). The kernels (numba ``nogil``),
    GDAL reads, pyproj and the compressor release the GIL, so threads share the cores without
    the start-up of processes."""
    lock = threading.Lock()

    def tick(n: int) -> None:
        if progress is not None:
            with lock:
                progress(n)

    x0, y0, x1, y1 = job.ranges[split]
    tasks = [(job, split, x, y, tick) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    parts: dict[tuple[int, int, int], np.ndarray] = {}
    tiles = nbytes = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="terrain") as pool:
        for key, part, t, b in pool.map(_subtree_job, tasks):
            parts[key] = part
            tiles += t
            nbytes += b
        for z in range(split - 1, -1, -1):
            x0, y0, x1, y1 = job.ranges[z]
            level = []
            for x in range(x0, x1 + 1):
                for y in range(y0, y1 + 1):
                    children = {}
                    for dy in (0, 1):
                        for dx in (0, 1):
                            key = (z + 1, 2 * x + dx, 2 * y + dy)
                            children[(dx, dy)] = parts.pop(key, None)
                    level.append((job, z, x, y, children))
            for key, part, b in pool.map(_parent_job, level):
                parts[key] = part
                tiles += 1
                nbytes += b
                tick(1)
    return tiles, nbytes
