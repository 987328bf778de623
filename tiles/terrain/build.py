"""Build a quantized-mesh terrain tileset from DEM files, tile by tile.

Method:

1. Each DEM is opened with rasterio (GeoTIFF, netCDF/GMT grids, anything GDAL reads; a grid
   without a CRS whose extent fits in degrees is taken as EPSG:4326, :func:`gis.io.raster
   .open_dem`). The finest level ``max_zoom`` defaults to the first whose grid spacing (a tile's
   side / 256) is at most the DEM cell.
2. Finest tiles are sampled straight from the DEMs: the tile's 257 x 257 lon/lat sample points go
   to the DEM CRS (pyproj), the DEM window under them is read and interpolated bilinearly between
   cell centres (no-data cells drop out of the weights; a point with none is no data). Several
   DEMs mosaic in the order given (the first with data wins; interpolated values before the
   clamped half-cell rims, so overlapping DEMs join without a seam). Only one tile's window is in memory.
3. Coarser tiles take every other sample of their four children (each level's grid is the DEM
   sampled at that level's points, no re-reading); tiles are visited depth first, so at most four
   half-size grids per level are alive: memory is bounded by the tile size, not the DEM size.
4. Heights become ellipsoidal: h = H + N with N from :mod:`tiles.geoid` (EGM96, the same model as
   our 3D Tiles, :func:`tiles.placement.geodetic`), so buildings sit on the terrain. No-data
   samples are put at mean sea level (H = 0; N of the nearest shipped geoid point outside the
   grid) and marked as water in the watermask.
5. Each grid is triangulated to ``max_error * 2 ** (max_zoom - z)`` metres minus half the 16-bit
   height quantization step, so the stated bound holds for the decoded tile at every grid sample
   (strict-error RTIN by default, or Delatin; :mod:`tiles.terrain.mesh`), and encoded as
   quantized-mesh-1.0 with the octvertexnormals and watermask extensions
   (:mod:`tiles.terrain.qmesh`).

Output layout (the served URL layout): ``OUT/layer.json`` and ``OUT/{z}/{x}/{y}.terrain``, y from
the south. The ``.terrain`` files are gzip-compressed at rest under their plain names, like our
gzipped 3D Tiles; a server must send them unchanged with ``Content-Encoding: gzip`` and
``Content-Type: application/vnd.quantized-mesh;extensions=octvertexnormals-watermask``
(layer.json ``ngis.contentEncoding`` says which). Level 0 always has both root tiles (CesiumJS
requests them); deeper levels have every tile that touches the DEMs' lon/lat bounds, listed in
layer.json ``available``. The tileset is built in a temporary folder renamed into place at the end
(:func:`gis.io.outputs.output_dir`): a failed build leaves nothing behind.

Parallel builds (``workers > 1``) hand whole subtrees below a split level to worker processes and
assemble the levels above them in the parent.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyproj import CRS, Transformer

from gis.errors import DataError
from tiles.geoid import OutsideGeoidGrid, undulation
from tiles.geoid import _grid as _geoid_grid
from tiles.terrain.layer import layer_json
from tiles.terrain.mesh import triangulate
from tiles.terrain.qmesh import EXTENSIONS, encode_tile, quantization_error
from tiles.terrain.tiling import SIZE, native_zoom, sample_lonlat, tile_bounds, tile_range

CONTENT_TYPE = "application/vnd.quantized-mesh;extensions=" + "-".join(EXTENSIONS)


@dataclass
class TerrainOptions:
    """Build options.

    Attributes:
        max_zoom: Finest level (default: the DEM's native level, :func:`native_zoom`).
        max_error: Vertical error bound (m) at the finest level; it doubles per coarser level.
        workers: Worker processes.
        gzip: Store ``.terrain`` files gzip-compressed (served with Content-Encoding: gzip).
        normals: Add the octvertexnormals extension.
        watermask: Add the watermask extension (no-data = water).
        mesh: Triangulation, "rtin" (fast) or "delatin" (fewer triangles).
    """

    max_zoom: int | None = None
    max_error: float = 0.5
    workers: int = 1
    gzip: bool = True
    normals: bool = True
    watermask: bool = True
    mesh: str = "rtin"


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
        DataError: Unreadable file, no CRS, or outside the shipped geoid grid.
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


_OPEN: dict[tuple[str, str], tuple] = {}


def _open(path: str, crs_wkt: str):
    """Open datasets and lon/lat -> DEM transformers, kept for one build (:func:`_close_all`)."""
    key = (path, crs_wkt)
    if key not in _OPEN:
        import rasterio

        from gis.io.raster import dem_gdal_path

        src = rasterio.open(dem_gdal_path(path))
        crs = CRS.from_wkt(crs_wkt)
        geographic = crs.equals(CRS.from_epsg(4326), ignore_axis_order=True)
        transformer = None if geographic else Transformer.from_crs(CRS.from_epsg(4326), crs,
                                                                   always_xy=True)
        _OPEN[key] = (src, transformer)
    return _OPEN[key]


def _close_all() -> None:
    while _OPEN:
        _OPEN.popitem()[1][0].close()


def sample_dem(dem: DemInfo, lon: np.ndarray, lat: np.ndarray, *,
               rim: bool = True) -> np.ndarray:
    """Bilinear DEM heights (float64, NaN = no data) at the points ``lon`` x ``lat`` (grid:
    ``lat`` rows, ``lon`` columns), reading only the window under them.

    Args:
        rim: Also points in the outer half cell (between the outermost cell centres and the
            raster edge), given the edge cells' values; without, they are no data.
    """
    out = np.full((len(lat), len(lon)), np.nan)
    west, south, east, north = dem.bounds
    if lon[-1] < west or lon[0] > east or lat[0] < south or lat[-1] > north:
        return out
    src, transformer = _open(dem.path, dem.crs)
    LON, LAT = np.meshgrid(lon, lat)
    if transformer is None:
        x, y = LON, LAT
    else:
        x, y = transformer.transform(LON, LAT)
    t = src.transform
    if t.b != 0 or t.d != 0:
        raise DataError("rotated DEM grids are not supported", path=dem.path)
    x, y = np.asarray(x), np.asarray(y)
    cf = (x - t.c) / t.a - 0.5  # fractional positions between cell centres
    rf = (y - t.f) / t.e - 0.5
    m = 0.5 if rim else 0.0
    inside = (cf >= -m) & (cf <= src.width - 1 + m) & (rf >= -m) & (rf <= src.height - 1 + m)
    if not inside.any():
        return out
    cfi, rfi = cf[inside], rf[inside]
    c0 = max(int(math.floor(cfi.min())), 0)
    c1 = min(int(math.floor(cfi.max())) + 2, src.width)
    r0 = max(int(math.floor(rfi.min())), 0)
    r1 = min(int(math.floor(rfi.max())) + 2, src.height)
    from rasterio.windows import Window

    data = src.read(1, window=Window(c0, r0, c1 - c0, r1 - r0), masked=True)
    arr = np.ma.filled(data.astype(np.float64), np.nan)
    if src.nodata is not None and not np.isnan(src.nodata):
        arr[arr == src.nodata] = np.nan
    cfi = np.clip(cfi - c0, 0, arr.shape[1] - 1)
    rfi = np.clip(rfi - r0, 0, arr.shape[0] - 1)
    j0 = np.minimum(np.floor(cfi).astype(np.intp), max(arr.shape[1] - 2, 0))
    i0 = np.minimum(np.floor(rfi).astype(np.intp), max(arr.shape[0] - 2, 0))
    j1 = np.minimum(j0 + 1, arr.shape[1] - 1)
    i1 = np.minimum(i0 + 1, arr.shape[0] - 1)
    dj = np.clip(cfi - j0, 0.0, 1.0)
    di = np.clip(rfi - i0, 0.0, 1.0)
    total = np.zeros(len(cfi))
    weight = np.zeros(len(cfi))
    for ii, jj, w in ((i0, j0, (1 - di) * (1 - dj)), (i0, j1, (1 - di) * dj),
                      (i1, j0, di * (1 - dj)), (i1, j1, di * dj)):
        val = arr[ii, jj]
        ok = ~np.isnan(val) & (w > 0)
        total[ok] += w[ok] * val[ok]
        weight[ok] += w[ok]
    res = np.where(weight > 1e-12, total / np.where(weight > 1e-12, weight, 1.0), np.nan)
    out[inside] = res
    return out


def sample_tile(dems: Sequence[DemInfo], z: int, x: int, y: int) -> np.ndarray:
    """Orthometric heights (NaN = no data) of a tile's grid, mosaicking ``dems`` in order."""
    lon, lat = sample_lonlat(z, x, y)
    grid = np.full((len(lat), len(lon)), np.nan)
    # Interpolated values from any DEM first, then the edge cells' rims (so that where DEMs
    # overlap, a seam is interpolated, not clamped).
    for rim in ((False, True) if len(dems) > 1 else (True,)):
        for dem in dems:
            gap = np.isnan(grid)
            if not gap.any():
                return grid
            part = sample_dem(dem, lon, lat, rim=rim)
            grid[gap] = part[gap]
    return grid


def _axis_weights(q: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, int]:
    """Linear-interpolation weights of points ``q`` (clamped) on a regular ``axis``: a dense
    (len(q), k) matrix over the k nodes from the returned first node on."""
    q = np.clip(q, axis[0], axis[-1])
    f = (q - axis[0]) / (axis[1] - axis[0])
    i0 = np.clip(np.floor(f).astype(np.intp), 0, len(axis) - 2)
    d = f - i0
    lo = int(i0.min())
    w = np.zeros((len(q), int(i0.max()) - lo + 2))
    rows = np.arange(len(q))
    w[rows, i0 - lo] = 1.0 - d
    w[rows, i0 - lo + 1] = d
    return w, lo


def tile_undulation(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """The geoid undulation of :mod:`tiles.geoid` (EGM96, bilinear) on the tensor grid
    ``lat`` (rows) x ``lon`` (columns), as two small matrix products (bilinear interpolation is
    separable); points outside the shipped grid take its nearest edge (used for no data only:
    :func:`inspect_dems` keeps DEMs inside the grid)."""
    lats, lons, values = _geoid_grid()
    wa, a0 = _axis_weights(lat, lats)
    wo, o0 = _axis_weights(lon, lons)
    return wa @ values[a0:a0 + wa.shape[1], o0:o0 + wo.shape[1]] @ wo.T


def ellipsoidal(grid: np.ndarray, z: int, x: int, y: int) -> np.ndarray:
    """Orthometric grid (NaN = no data) -> ellipsoidal heights h = H + N (no data: H = 0)."""
    lon, lat = sample_lonlat(z, x, y)
    return np.where(np.isnan(grid), 0.0, grid) + tile_undulation(lat, lon)


def _watermask(grid: np.ndarray) -> np.ndarray | int:
    nodata = np.isnan(grid)
    if not nodata.any():
        return 0
    if nodata.all():
        return 255
    cell = (nodata[:-1, :-1].astype(np.uint8) + nodata[1:, :-1] + nodata[:-1, 1:]
            + nodata[1:, 1:])
    if cell.shape != (256, 256):
        return 255 if nodata.mean() >= 0.5 else 0
    return np.where(cell >= 2, 255, 0).astype(np.uint8)


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
    data = encode_tile(mesh, tile_bounds(z, x, y), normals=job.options.normals,
                       watermask=_watermask(grid) if job.options.watermask else None)
    if job.options.gzip:
        data = gzip.compress(data, compresslevel=1, mtime=0)
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
        grid = sample_tile(job.dems, z, x, y)
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
    job, z, x, y = args
    with _closing():
        part, tiles, nbytes = _subtree(job, z, x, y)
    return (z, x, y), part, tiles, nbytes


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


@contextlib.contextmanager
def _closing():
    import rasterio

    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
            yield
    finally:
        _close_all()


def _split_level(ranges, workers: int) -> int | None:
    """The level whose subtrees go to workers (enough of them to balance), or None."""
    if workers <= 1:
        return None
    for z, (x0, y0, x1, y1) in enumerate(ranges):
        if z > 0 and (x1 - x0 + 1) * (y1 - y0 + 1) >= 8 * workers:
            return z
    return len(ranges) - 1 if len(ranges) > 1 else None


def _parent_job(args) -> tuple[tuple[int, int, int], np.ndarray, int]:
    """One tile above the split level from its children's half grids."""
    job, z, x, y, children = args
    grid = _children_grid(children)
    nbytes = _write_tile(job, z, x, y, grid)
    return (z, x, y), grid[::2, ::2].copy(), nbytes


def _parallel(job: _Job, split: int, workers: int, progress) -> tuple[int, int]:
    """Subtrees at ``split`` in workers, then each level above, tile by tile, in workers too
    (children's half grids sent along; at most the split level's tiles are held)."""
    x0, y0, x1, y1 = job.ranges[split]
    tasks = [(job, split, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
    parts: dict[tuple[int, int, int], np.ndarray] = {}
    tiles = nbytes = 0
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tiles.terrain.build"])  # workers fork with it imported
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        for key, part, t, b in pool.map(_subtree_job, tasks):
            parts[key] = part
            tiles += t
            nbytes += b
            if progress is not None:
                progress(t)
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
                if progress is not None:
                    progress(1)
    return tiles, nbytes
