"""``ngis model hydro``: the hydrology core for scientists (fill, flow directions, accumulation,
HAND, watersheds), one Cloud-Optimised GeoTIFF per command.

The DEM is read with :func:`gis.io.raster.read_projected_dem`: a projected DEM is used as it is
(outputs on its grid); a geographic DEM (degrees) is first warped to metres (TWD97/TM2 in Taiwan,
else UTM, bilinear, at its resolution) and the outputs are on that warped grid. The computing is
:mod:`models.hydro`; this module only reads, calls and writes (atomically, through
:func:`gis.io.outputs.write_cog`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from gis.cli.main import progress_enabled
from gis.cli.model_hydro_tiled import run as run_tiled
from gis.cli.model_hydro_tiled import tiled_options, wants_tiled
from gis.errors import DataError

DEM_HELP = ("DEM raster (GeoTIFF, netCDF, ESRI ASCII...), elevations in metres. A geographic DEM "
            "(degrees) is warped to metres first (TWD97/TM2 in Taiwan, else UTM) and the "
            "output is on that warped grid.")


def _dem_options(f):
    f = click.option("--no-fill", is_flag=True,
                     help="The DEM is already depression-filled: skip the fill.")(f)
    f = click.option("--sea-level", type=float, default=None,
                     help="Cells at or below this elevation are outlets (coasts).")(f)
    f = click.option("--out", required=True, type=click.Path(dir_okay=False),
                     help="Output Cloud-Optimised GeoTIFF.")(f)
    f = click.option("--dem-crs", default=None,
                     help="CRS of a DEM whose file has none (e.g. EPSG:26912).")(f)
    f = click.option("--dem", required=True, help=DEM_HELP)(f)
    return f


class _Steps:
    """A progress bar over named steps (tqdm on stderr, off with --quiet or when piped)."""

    def __init__(self, ctx: click.Context, total: int, name: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=name, unit="step", file=sys.stderr,
                        disable=not progress_enabled(ctx), leave=False)

    def __call__(self, label: str):
        self.bar.set_postfix_str(label)
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.update(1)
        return False

    def close(self):
        self.bar.close()


def _read(dem: str, dem_crs: str | None):
    from gis.io.raster import read_projected_dem

    src = read_projected_dem(dem, dem_crs)
    if not np.isfinite(src.data).any():
        raise DataError("the DEM has no valid cells", path=dem)
    rx, ry = src.resolution
    if not (rx > 0 and ry > 0):
        raise DataError("the DEM has no cell size", path=dem)
    return src


def _filled(src, steps, no_fill: bool, sea_level: float | None, epsilon: bool = False):
    from models import hydro

    if no_fill:
        return src.data
    with steps("fill"):
        return hydro.fill_depressions(src.data, epsilon=epsilon, sea_level=sea_level)


def _sea(src, sea_level: float | None) -> np.ndarray | None:
    """Cells at or below sea level: outlets for the flow directions too (water ends there)."""
    if sea_level is None:
        return None
    with np.errstate(invalid="ignore"):
        return src.data <= sea_level


def _write(out: str, array: np.ndarray, src, nodata, tags: dict[str, str]) -> None:
    from gis.io.outputs import write_cog

    write_cog(out, array, src.transform, src.crs, nodata=nodata, tags=tags)


def _echo_done(out: str, what: str) -> None:
    click.echo(f"{what} -> {out}", err=True)


@click.group("hydro")
def command():
    """Hydrology core: depression filling, flow directions, accumulation, HAND, watersheds.

    \b
    $ ngis model hydro fill --dem dem.tif --out filled.tif [--epsilon] [--sea-level 0]
    $ ngis model hydro fill --dem dem.tif --out breached.tif --breach
    $ ngis model hydro accumulate --dem big.tif --out acc.tif --tile 2048 --workers 2
    $ ngis model hydro flowdir --dem dem.tif --out d8.tif [--method dinf]
    $ ngis model hydro accumulate --dem dem.tif --out acc.tif [--method dinf --sca]
    $ ngis model hydro hand --dem dem.tif --out hand.tif --threshold 1000
    $ ngis model hydro watershed --dem dem.tif --out basins.tif \\
          --pour-point 190312,2552640 --snap 200
    """


@command.command("fill")
@_dem_options
@click.option("--epsilon", is_flag=True,
              help="Priority-Flood+epsilon: filled cells get a strictly draining gradient.")
@click.option("--nodata-wall", is_flag=True,
              help="Nodata cells are walls, not outlets (default: nodata such as the sea drains).")
@click.option("--breach", is_flag=True,
              help="Breach instead of filling: cut a channel from each pit along the lowest "
                   "way out (Lindsay 2016 complete breaching).")
@tiled_options
@click.pass_context
def fill_cmd(ctx, dem, dem_crs, out, sea_level, no_fill, epsilon, nodata_wall, breach, tile,
             workers, scheduler, work_dir):
    """Fill depressions (Priority-Flood, Barnes 2014 / Zhou 2016; bit-identical to RichDEM),
    or breach them (--breach). With --tile: parallel Priority-Flood (Barnes 2016), bit-identical
    to the in-memory fill."""
    from models import hydro

    if wants_tiled(tile, workers, scheduler, {"--epsilon": epsilon, "--breach": breach,
                                               "--nodata-wall": nodata_wall,
                                               "--no-fill": no_fill}):
        return run_tiled(ctx, "fill", dem=dem, dem_crs=dem_crs, out=out, sea_level=sea_level,
                         no_fill=False, tile=tile, workers=workers, scheduler=scheduler,
                         work_dir=work_dir)
    if breach and epsilon:
        raise click.UsageError("--breach already makes every cell drain; drop --epsilon")
    src = _read(dem, dem_crs)
    steps = _Steps(ctx, 2, "fill")
    with steps("breach" if breach else "fill"):
        if breach:
            filled = hydro.breach_depressions(src.data, sea_level=sea_level,
                                              nodata_is_outlet=not nodata_wall)
        else:
            filled = hydro.fill_depressions(src.data, epsilon=epsilon, sea_level=sea_level,
                                            nodata_is_outlet=not nodata_wall)
    raised = int(np.sum(filled > src.data))
    lowered = int(np.sum(filled < src.data))
    with steps("write"):
        _write(out, filled.astype(np.float32), src, np.nan,
               {"model": "ngis hydro fill", "method": "breach" if breach else "fill",
                "epsilon": str(epsilon), "units": "m", "raised_cells": str(raised),
                "lowered_cells": str(lowered)})
    steps.close()
    _echo_done(out, f"{'breached' if breach else 'filled'} ({raised} cells raised, "
                    f"{lowered} lowered)")


@command.command("flowdir")
@_dem_options
@click.option("--method", type=click.Choice(["d8", "dinf"]), default="d8", show_default=True,
              help="d8: ESRI codes (1=E,2=SE,4=S,...,128=NE; 0 none). dinf: 2 bands, angle "
                   "(radians counter-clockwise from east, -1 none) and slope (tan).")
@tiled_options
@click.pass_context
def flowdir_cmd(ctx, dem, dem_crs, out, sea_level, no_fill, method, tile, workers, scheduler,
                work_dir):
    """Flow directions of the filled DEM (flats drained, Barnes 2014b). With --tile (D8): tile
    by tile, each tile's window grown until it holds the flats it touches; equal to the
    in-memory directions."""
    from models import hydro

    if wants_tiled(tile, workers, scheduler, {"--method dinf": method == "dinf"}):
        return run_tiled(ctx, "flowdir", dem=dem, dem_crs=dem_crs, out=out,
                         sea_level=sea_level, no_fill=no_fill, tile=tile, workers=workers,
                         scheduler=scheduler, work_dir=work_dir)
    src = _read(dem, dem_crs)
    steps = _Steps(ctx, 3, "flowdir")
    filled = _filled(src, steps, no_fill, sea_level)
    dx, dy = src.resolution
    with steps(method):
        if method == "d8":
            arr = hydro.d8_directions(filled, dx, dy, outlets=_sea(src, sea_level))
            nodata = None
            tags = {"model": "ngis hydro flowdir", "coding": "ESRI D8 (1=E,2=SE,4=S,8=SW,"
                    "16=W,32=NW,64=N,128=NE; 0=no outflow)"}
        else:
            angle, slope = hydro.dinf_directions(filled, dx, dy, outlets=_sea(src, sea_level))
            arr, nodata = np.stack([angle, slope]), -1.0
            slope_band = arr[1]
            slope_band[np.isnan(slope_band)] = -1.0
            tags = {"model": "ngis hydro flowdir", "bands": "1: D-infinity angle (radians "
                    "counter-clockwise from east, -1 none); 2: slope (tan, -1 nodata)"}
    with steps("write"):
        _write(out, arr, src, nodata, tags)
    steps.close()
    _echo_done(out, f"{method} directions")


@command.command("accumulate")
@_dem_options
@click.option("--method", type=click.Choice(["d8", "dinf"]), default="d8", show_default=True)
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), default=None,
              help="Raster of per-cell weights on the DEM grid (e.g. rainfall excess).")
@click.option("--sca", is_flag=True, help="D-infinity: write the specific catchment area in "
              "metres (TauDEM's sca: accumulated cells x cell width) instead of cells.")
@tiled_options
@click.pass_context
def accumulate_cmd(ctx, dem, dem_crs, out, sea_level, no_fill, method, weights_path, sca, tile,
                   workers, scheduler, work_dir):
    """Flow accumulation: cells draining through each cell (itself included), or the sum of
    --weights. With --tile (D8): tiled accumulation (Barnes 2017), equal to the in-memory
    result."""
    from models import hydro

    if wants_tiled(tile, workers, scheduler, {"--method dinf": method == "dinf",
                                               "--weights": weights_path, "--sca": sca}):
        return run_tiled(ctx, "accumulate", dem=dem, dem_crs=dem_crs, out=out,
                         sea_level=sea_level, no_fill=no_fill, tile=tile, workers=workers,
                         scheduler=scheduler, work_dir=work_dir)
    if sca and method != "dinf":
        raise click.UsageError("--sca needs --method dinf")
    src = _read(dem, dem_crs)
    valid = ~np.isnan(src.data)
    weights = valid.astype(np.float64)
    if weights_path:
        weights = np.where(valid, _read_weights(weights_path, src), 0.0)
    steps = _Steps(ctx, 4, "accumulate")
    filled = _filled(src, steps, no_fill, sea_level)
    dx, dy = src.resolution
    with steps("directions"):
        if method == "d8":
            dirs = hydro.d8_directions(filled, dx, dy, outlets=_sea(src, sea_level))
        else:
            angle, _ = hydro.dinf_directions(filled, dx, dy, outlets=_sea(src, sea_level))
    with steps("accumulate"):
        if method == "d8":
            acc = hydro.accumulate_d8(dirs, weights=weights)
        else:
            acc = hydro.accumulate_dinf(angle, weights=weights, valid=valid)
            if sca:
                acc = hydro.specific_catchment_area(acc, dx)
    acc[~valid] = np.nan
    with steps("write"):
        units = "m (specific catchment area)" if sca else (
            "weight units" if weights_path else "cells")
        _write(out, acc.astype(np.float32), src, np.nan,
               {"model": "ngis hydro accumulate", "method": method, "units": units})
    steps.close()
    _echo_done(out, f"{method} accumulation (max {np.nanmax(acc):.6g})")


def _read_weights(path: str, src) -> np.ndarray:
    from gis.io.raster import read_dem

    w = read_dem(path, None, None)
    if w.shape != src.shape or not np.allclose(tuple(w.transform)[:6],
                                               tuple(src.transform)[:6]):
        raise DataError(f"weights grid {w.shape} does not match the DEM grid {src.shape}",
                        path=path)
    return np.nan_to_num(w.data.astype(np.float64), nan=0.0)


@command.command("hand")
@_dem_options
@click.option("--threshold", type=click.FloatRange(min=1), default=1000, show_default=True,
              help="Stream cells: D8 accumulation of at least this many cells.")
@click.pass_context
def hand_cmd(ctx, dem, dem_crs, out, sea_level, no_fill, threshold):
    """Height above nearest drainage (m) along D8 flow paths (NaN where no stream is reached)."""
    from models import hydro

    src = _read(dem, dem_crs)
    steps = _Steps(ctx, 5, "hand")
    filled = _filled(src, steps, no_fill, sea_level)
    dx, dy = src.resolution
    with steps("d8"):
        dirs = hydro.d8_directions(filled, dx, dy, outlets=_sea(src, sea_level))
        order = hydro.flow_order_d8(dirs)
    with steps("streams"):
        valid = ~np.isnan(src.data)
        acc = hydro.accumulate_d8(dirs, weights=valid.astype(np.float64), order=order)
        streams = hydro.extract_streams(acc, threshold)
    with steps("hand"):
        h = hydro.hand(filled, dirs, streams, order=order)
    with steps("write"):
        _write(out, h, src, np.nan, {"model": "ngis hydro hand", "units": "m",
                                     "stream_threshold_cells": str(threshold)})
    steps.close()
    _echo_done(out, f"HAND ({int(streams.sum())} stream cells)")


def _parse_point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected X,Y in the DEM's CRS, got {text!r}") from None
    return x, y


@command.command("watershed")
@_dem_options
@click.option("--pour-point", "pour_points", multiple=True, required=True, metavar="X,Y",
              help="Outlet in the DEM's CRS (repeatable; the projected CRS for a geographic "
                   "DEM). Catchment k has the value k.")
@click.option("--snap", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Move each pour point to the cell of largest accumulation within this many "
                   "metres (onto the stream).")
@click.pass_context
def watershed_cmd(ctx, dem, dem_crs, out, sea_level, no_fill, pour_points, snap):
    """Catchments of pour points (D8), labelled 1..N in the order given, 0 elsewhere."""
    from models import hydro

    points = [_parse_point(p) for p in pour_points]
    src = _read(dem, dem_crs)
    rows, cols = src.shape
    inv = ~src.transform
    rc = []
    for x, y in points:
        c, r = inv @ (x, y)
        r, c = int(np.floor(r)), int(np.floor(c))
        if not (0 <= r < rows and 0 <= c < cols):
            raise DataError(f"pour point ({x}, {y}) lies outside the DEM", path=dem)
        rc.append((r, c))
    steps = _Steps(ctx, 5, "watershed")
    filled = _filled(src, steps, no_fill, sea_level)
    dx, dy = src.resolution
    with steps("d8"):
        dirs = hydro.d8_directions(filled, dx, dy, outlets=_sea(src, sea_level))
        order = hydro.flow_order_d8(dirs)
    if snap > 0:
        with steps("snap"):
            acc = hydro.accumulate_d8(dirs, order=order)
            acc[np.isnan(src.data)] = np.nan
            rc = [tuple(p) for p in hydro.snap_pour_points(rc, acc, snap / min(dx, dy))]
    with steps("catchments"):
        labels = hydro.catchment(dirs, rc, order=order)
    with steps("write"):
        _write(out, labels, src, 0, {"model": "ngis hydro watershed",
                                     "pour_points": ";".join(f"{x},{y}" for x, y in points)})
    steps.close()
    for k, (r, c) in enumerate(rc, start=1):
        n = int((labels == k).sum())
        x, y = src.transform @ (c + 0.5, r + 0.5)
        click.echo(f"{k}: pour cell ({x:.3f}, {y:.3f}), {n} cells, "
                   f"{n * dx * dy / 1e6:.4f} km2")
    _echo_done(out, f"{len(rc)} catchment(s)")


if __name__ == "__main__":  # pragma: no cover
    command(prog_name=Path(sys.argv[0]).name)
