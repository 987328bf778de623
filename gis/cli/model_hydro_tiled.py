"""The tiled path of ``ngis model hydro fill|flowdir|accumulate`` (``--tile N``), for DEMs larger
than memory, in this process or on dask.distributed (``--workers N`` local processes, or
``--scheduler ADDRESS`` of a running cluster).

The DEM is read window by window (:class:`models.hydro.tiled.RasterSource`), the steps exchange
tiles through a scratch directory beside the output (``--work-dir`` to put it elsewhere; with a
remote scheduler it must be a file system every worker sees), and the result is streamed into
a Cloud-Optimised GeoTIFF, or a Zarr store when ``--out`` ends in ``.zarr``. The results equal the
in-memory path's (see :mod:`models.hydro.tiled`); only the options the tiled algorithms cover
are accepted.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import click
import numpy as np

from gis.cli.main import progress_enabled
from gis.errors import DataError


def tiled_options(f):
    f = click.option("--work-dir", type=click.Path(file_okay=False), default=None,
                     help="Tiled path: scratch directory for the intermediate tiles (default: "
                          "beside --out; with --scheduler, a file system all workers see).")(f)
    f = click.option("--scheduler", default=None,
                     help="Tiled path: address of a running dask scheduler "
                          "(tcp://host:8786) instead of local workers.")(f)
    f = click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Tiled path: local dask worker processes (1: this process).")(f)
    f = click.option("--tile", type=click.IntRange(min=16), default=None,
                     help="Process the DEM in tiles of N x N cells (parallel Priority-Flood and "
                          "tiled accumulation; results equal the in-memory path). Memory per "
                          "worker is a few tiles.")(f)
    return f


def wants_tiled(tile: int | None, workers: int, scheduler: str | None,
                unsupported: dict[str, object]) -> bool:
    """Whether the tiled path runs; refuses the options it does not cover (``unsupported``:
    option as the user writes it -> its value)."""
    if tile is None:
        if workers > 1 or scheduler:
            raise click.UsageError("--workers and --scheduler need --tile N (the tiled path)")
        return False
    bad = [name for name, value in unsupported.items() if value]
    if bad:
        names = ", ".join(bad)
        raise click.UsageError(f"{names}: not available with --tile (the in-memory path has it)")
    return True


class _Float32Masked:
    """Accumulation windows as float32 with NaN where the DEM has no data (as the in-memory
    path writes them)."""

    def __init__(self, acc, filled):
        self.acc, self.filled = acc, filled
        self.shape = acc.shape

    def read(self, r0, r1, c0, c1):
        a = self.acc.read(r0, r1, c0, c1).astype(np.float32)
        a[np.isnan(self.filled.read(r0, r1, c0, c1))] = np.nan
        return a


def _open(dem: str, dem_crs: str | None):
    import rasterio
    from pyproj import CRS

    from gis.io.raster import dem_gdal_path
    from models.hydro.tiled import RasterSource

    path = dem_gdal_path(dem)
    try:
        src = RasterSource(path)
    except rasterio.errors.RasterioIOError as exc:
        raise DataError(f"cannot read the DEM: {exc}", path=dem) from exc
    crs = CRS.from_user_input(dem_crs) if dem_crs else (
        CRS.from_user_input(src.crs) if src.crs else None)
    if crs is None:
        raise DataError("the DEM has no CRS; give it with --dem-crs", path=dem)
    if crs.is_geographic:
        raise DataError("the tiled path reads projected DEMs (cell sizes in metres); warp it "
                        "first, e.g. gdalwarp -t_srs EPSG:3826 -r bilinear in.tif out.tif",
                        path=dem)
    rx, ry = abs(src.transform.a), abs(src.transform.e)
    if not (rx > 0 and ry > 0) or src.transform.b or src.transform.d:
        raise DataError("the DEM grid is rotated or has no cell size", path=dem)
    return src, crs, (rx, ry)


def _progress(ctx: click.Context):
    from tqdm import tqdm

    enabled = progress_enabled(ctx)

    def bar(total: int, desc: str):
        return tqdm(total=total, desc=desc, unit="tile", file=sys.stderr, disable=not enabled,
                    leave=False)

    return bar


def _write(out: str, source, dtype, nodata, src, crs, tags: dict, tile: int) -> None:
    from gis.io.outputs import write_cog_windows

    if out.lower().rstrip("/").endswith(".zarr"):
        _write_zarr(out, source, dtype, src, crs, tags, tile)
        return
    write_cog_windows(out, source.read, source.shape, dtype, src.transform, crs, nodata,
                      tags=tags)


def _write_zarr(out: str, source, dtype, src, crs, tags: dict, tile: int) -> None:
    """A Zarr store (one chunk per tile) that xarray/rioxarray open with its CRS and grid."""
    import dask

    from models.hydro.tiled import as_dataarray

    arr = as_dataarray(source, tile, src.transform, crs, tags.get("name", "data"), dtype)
    arr.attrs.update({k: str(v) for k, v in tags.items()})
    tmp = f"{out.rstrip('/')}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with dask.config.set(scheduler="threads"):
            arr.to_dataset().to_zarr(tmp, mode="w", consolidated=True)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _Counting:
    """Counts cells raised or lowered while the filled DEM is written."""

    def __init__(self, filled, dem):
        self.filled, self.dem = filled, dem
        self.shape = filled.shape
        self.raised = self.lowered = 0

    def read(self, r0, r1, c0, c1):
        f = self.filled.read(r0, r1, c0, c1)
        z = self.dem.read(r0, r1, c0, c1)
        with np.errstate(invalid="ignore"):
            self.raised += int(np.sum(f > z))
            self.lowered += int(np.sum(f < z))
        return f


def run(ctx: click.Context, step: str, *, dem: str, dem_crs: str | None, out: str,
        sea_level: float | None, no_fill: bool, tile: int, workers: int,
        scheduler: str | None, work_dir: str | None) -> None:
    """Run ``fill``, ``flowdir`` (D8) or ``accumulate`` (D8) tile by tile and write ``out``."""
    import rioxarray  # noqa: F401  (registers .rio for the Zarr output)

    from models.hydro import tiled

    src, crs, (dx, dy) = _open(dem, dem_crs)
    parent = work_dir or str(Path(out).resolve().parent)
    os.makedirs(parent, exist_ok=True)
    scratch = tiled.work_dir(parent)
    timings: dict[str, float] = {}
    notes: list[str] = []
    try:
        with tiled.Executor(workers, scheduler, progress=_progress(ctx)) as ex:
            filled = src
            if not no_fill:
                t0 = time.perf_counter()
                store = tiled.TileStore(os.path.join(scratch, "filled"), src.shape, src.dtype,
                                        tile)
                rep = tiled.fill_tiled(src, store, sea_level=sea_level, executor=ex)
                filled = store
                timings["fill"] = time.perf_counter() - t0
                notes.append(f"{rep.tiles} tiles, global graph {rep.nodes:,} nodes "
                             f"{rep.edges:,} spill edges")
            if step == "fill":
                t0 = time.perf_counter()
                counting = _Counting(filled, src)
                _write(out, counting, np.float32, np.nan, src, crs,
                       {"model": "ngis hydro fill", "method": "fill", "epsilon": "False",
                        "units": "m", "name": "filled", "tiled": str(tile)}, tile)
                timings["write"] = time.perf_counter() - t0
                what = (f"filled ({counting.raised} cells raised, {counting.lowered} lowered)")
            else:
                t0 = time.perf_counter()
                dirs = tiled.TileStore(os.path.join(scratch, "d8"), src.shape, np.uint8, tile)
                rep = tiled.d8_tiled(filled, dirs, dx, dy, sea_level=sea_level, executor=ex)
                timings["d8"] = time.perf_counter() - t0
                notes.append(f"widest flat halo {rep.largest_halo} cells")
                if step == "flowdir":
                    t0 = time.perf_counter()
                    _write(out, dirs, np.uint8, None, src, crs,
                           {"model": "ngis hydro flowdir", "name": "d8", "tiled": str(tile),
                            "coding": "ESRI D8 (1=E,2=SE,4=S,8=SW,16=W,32=NW,64=N,128=NE; "
                                      "0=no outflow)"}, tile)
                    timings["write"] = time.perf_counter() - t0
                    what = "d8 directions"
                else:
                    t0 = time.perf_counter()
                    acc = tiled.TileStore(os.path.join(scratch, "acc"), src.shape, np.float64,
                                          tile)
                    tiled.accumulate_tiled(dirs, acc, weights=tiled.FiniteWeights(filled),
                                           executor=ex)
                    timings["accumulate"] = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    _write(out, _Float32Masked(acc, filled), np.float32, np.nan, src, crs,
                           {"model": "ngis hydro accumulate", "method": "d8", "units": "cells",
                            "name": "accumulation", "tiled": str(tile)}, tile)
                    timings["write"] = time.perf_counter() - t0
                    what = "d8 accumulation"
    finally:
        tiled.drop(scratch)
    where = f"scheduler {scheduler}" if scheduler else (
        f"{workers} local workers" if workers > 1 else "this process")
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
    click.echo(f"{what} -> {out}", err=True)
    click.echo(f"tiled: {src.shape[0]} x {src.shape[1]} cells in tiles of {tile} on {where}; "
               f"{steps}; {'; '.join(notes)}", err=True)
