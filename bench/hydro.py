"""Benchmark: the hydrology core (models.hydro) against richdem, pysheds, xarray-spatial and
whitebox-workflows in the same run, on a 4M-cell DEM.

Tasks (each peer where it has the function; a peer that fails or lacks it prints "n/a"):

* ``fill``: depression filling (ours: Priority-Flood with Zhou's short-cut) vs richdem
  ``fill_depressions`` (Zhou 2016), pysheds ``fill_depressions``, xarray-spatial ``fill``,
  whitebox ``fill_depressions``; ``fill-eps``: Priority-Flood+epsilon vs richdem's.
* ``d8-acc``: D8 accumulation *including the topological ordering*, from D8 directions (ours:
  the ordering walk accumulates as it goes; ``ours+order``: a reusable order, then one pass;
  pysheds, xarray-spatial take directions; richdem and whitebox only take a DEM, so they are also
  shown against ours from the DEM, ``d8-acc-dem`` = directions + ordering + accumulation).
* ``dinf-acc``: D-infinity accumulation including ordering, from angles (ours, pysheds,
  xarray-spatial); ``dinf-acc-dem`` from the filled DEM (ours, richdem, whitebox).
* ``hand``: HAND from the filled DEM, D8 directions and a stream mask (ours: ordering + HAND;
  pysheds ``compute_hand``, xarray-spatial ``hand``).

Every (task, implementation) runs in a fresh process: it loads the DEM, prepares its inputs
(untimed), warms up (numba loads its cache or compiles; peers get one untimed call on a corner),
then times ``--repeat`` calls and reports the median wall time and the median CPU time of the
process (the machine is shared, so CPU time is the steadier figure). Memory: the peak resident
set above the level before the first timed call (sampled every 5 ms, and the OS high-water
mark when the call raised it), in bytes per cell, and, for ``fill``, the same minus the 4-byte
float32 output, i.e. the working memory. (For tasks after ``fill`` the allocator may reuse
memory freed while preparing the inputs, so their figures can read low.)

The DEM is the project's synthetic terrain (:func:`gis.demo.terrain.terrain_window`: fractal
hills rising east, meandering river valleys, channels, unconditioned pits) at 30 m, 2000 x 2000 =
4M cells by default, cached as .npy under ``--cache``. ``--dem PATH`` uses a real DEM instead
(e.g. the SW Taiwan 40 m grid, 3.5M cells, integer metres: many flats).

    .venv/bin/python -m bench.hydro                         # 4M cells, 5 repeats, all peers
    .venv/bin/python -m bench.hydro --size 1000 --repeat 3 --tasks fill,d8-acc
    .venv/bin/python -m bench.hydro --dem ../shared/data/tw-sw-dem40m/tw_sw40_moi40m_wgs84.tif

Measured here (2 cores shared with other jobs, load average 4-7, so wall times run 1-3x the
CPU times; 4M cells, medians of 5; CPU seconds, ours vs peer):

    fill            ours 0.11-0.12   richdem 0.25-0.28 (2.2-2.4x)  whitebox 0.40 (3.4x)
                    xarray-spatial 1.65 (14x)  pysheds 4.1 (34x); working memory 5.0 B/cell
    fill epsilon    ours 0.44        richdem 0.51-0.54 (1.2x), bit-identical
    D8 acc + order  ours 0.045 (wall 0.09 loaded)  pysheds 0.24 (5.3x)  xarray-spatial 0.30 (7x)
    D8 from DEM     ours 0.22        richdem 0.50 (2.4x)  whitebox 0.50 (2.3x)
    D-inf acc       ours 0.145 (wall 0.15)  xarray-spatial 0.30 (2.1x)  pysheds 0.94 (6.5x)
    D-inf from DEM  ours 0.66        richdem 1.25 (1.9x)  whitebox 0.86-0.89 (1.4x)
    HAND            ours 0.11        xarray-spatial 0.42-0.45 (4x)  pysheds 0.82-0.85 (7.5x)

The 2D flood model's cell-steps/s come from ``bench.flood2d.swe_benchmark(cells)`` when that
module exists (another part of the project); it is skipped otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

TASKS = {
    "fill": ["ours", "richdem", "pysheds", "xrspatial", "whitebox"],
    "fill-eps": ["ours", "richdem"],
    "d8-acc": ["ours", "ours+order", "pysheds", "xrspatial"],
    "d8-acc-dem": ["ours", "richdem", "whitebox"],
    "dinf-acc": ["ours", "ours+order", "pysheds", "xrspatial"],
    "dinf-acc-dem": ["ours", "richdem", "whitebox"],
    "hand": ["ours", "pysheds", "xrspatial"],
}
CELL = 30.0
STREAM_CELLS = 1000


# --- the DEM ------------------------------------------------------------------------------------

def prepare_dem(size: int, seed: int, cache: Path, dem: str | None) -> Path:
    """The benchmark DEM as float32 .npy (NaN = nodata), cached."""
    cache.mkdir(parents=True, exist_ok=True)
    if dem:
        out = cache / f"{Path(dem).stem}.npy"
        if not out.exists():
            from gis.io.raster import read_dem

            np.save(out, read_dem(dem).data.astype(np.float32))
        return out
    out = cache / f"terrain-{size}-seed{seed}.npy"
    if not out.exists():
        from gis.demo.terrain import terrain_window

        side = size * CELL
        print(f"generating a {size} x {size} terrain ({size * size / 1e6:.1f}M cells) ...",
              file=sys.stderr, flush=True)
        z = terrain_window(seed, (0.0, 0.0, side, side), 0.0, side, size, size, CELL)
        np.save(out, z.astype(np.float32))
    return out


# --- measuring ----------------------------------------------------------------------------------

class PeakRSS:
    """Peak resident set above the level at entry: sampled every ``interval`` s, and from the
    OS's high-water mark (``ru_maxrss``) when the block raised it, which catches short peaks."""

    def __init__(self, interval: float = 0.005):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval

    def __enter__(self):
        import resource

        self.base = self.peak = self.proc.memory_info().rss
        self.maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        import resource

        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if maxrss > self.maxrss0:
            self.peak = max(self.peak, maxrss)

    @property
    def extra(self) -> int:
        return self.peak - self.base


def _quiet_fd():
    """Silence C-level stdout/stderr (richdem prints progress) inside a block."""
    import contextlib

    @contextlib.contextmanager
    def cm():
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(devnull)
            os.close(saved[0])
            os.close(saved[1])
    return cm()


# --- implementations: each returns (setup(z) -> state, run(state) -> result) ------------------

def _ours_filled(z):
    from models import hydro

    return hydro.fill_depressions(z)


def _tif(z: np.ndarray, tmp: str, name: str = "dem.tif") -> str:
    import rasterio
    from rasterio.transform import from_origin

    path = os.path.join(tmp, name)
    with rasterio.open(path, "w", driver="GTiff", width=z.shape[1], height=z.shape[0], count=1,
                       dtype=z.dtype.name, crs="EPSG:32611", nodata=-9999,
                       transform=from_origin(300000, 3900000, CELL, CELL)) as ds:
        ds.write(np.where(np.isnan(z), -9999, z).astype(z.dtype), 1)
    return path


def _rd_array(z):
    import richdem as rd

    arr = rd.rdarray(np.where(np.isnan(z), -9999, z).astype(np.float32), no_data=-9999.0)
    arr.geotransform = (0.0, CELL, 0.0, 0.0, 0.0, -CELL)
    return arr


def _pysheds(z, tmp):
    from pysheds.grid import Grid

    path = _tif(z, tmp)
    grid = Grid.from_raster(path)
    return grid, grid.read_raster(path)


def _xr(z):
    import xarray as xr

    ys = np.arange(z.shape[0]) * -CELL
    xs = np.arange(z.shape[1]) * CELL
    return xr.DataArray(z, dims=("y", "x"), coords={"y": ys, "x": xs})


def impl(task: str, name: str, tmp: str):
    """(setup, run) for one implementation of one task."""
    from models import hydro

    if task == "fill":
        if name == "ours":
            return (lambda z: z), hydro.fill_depressions
        if name == "richdem":
            import richdem as rd
            return _rd_array, lambda a: rd.fill_depressions(a, epsilon=False)
        if name == "pysheds":
            return (lambda z: _pysheds(z, tmp)), lambda s: s[0].fill_depressions(s[1])
        if name == "xrspatial":
            import xrspatial
            return _xr, lambda da: xrspatial.fill(da).values
        if name == "whitebox":
            import whitebox_workflows as wb
            wbe = wb.WbEnvironment()
            return (lambda z: wbe.read_raster(_tif(z, tmp))), \
                lambda r: wbe.hydrology.fill_depressions(dem=r)
    if task == "fill-eps":
        if name == "ours":
            return (lambda z: z), lambda z: hydro.fill_depressions(z, epsilon=True)
        if name == "richdem":
            import richdem as rd
            return _rd_array, lambda a: rd.fill_depressions(a, epsilon=True)
    if task == "d8-acc":
        def dirs(z):
            return hydro.d8_directions(_ours_filled(z), CELL)
        if name == "ours":  # the ordering walk accumulates as it goes
            return dirs, hydro.accumulate_d8
        if name == "ours+order":  # a reusable order first, then one pass
            return dirs, lambda d: hydro.accumulate_d8(d, order=hydro.flow_order_d8(d))
        if name == "pysheds":
            from pysheds.sview import Raster

            def setup(z):
                grid, _ = _pysheds(z, tmp)
                dem = grid.read_raster(os.path.join(tmp, "dem.tif"))
                return grid, Raster(dirs(z).astype(np.int64), viewfinder=dem.viewfinder)
            return setup, lambda s: s[0].accumulation(s[1], dirmap=(64, 128, 1, 2, 4, 8, 16, 32))
        if name == "xrspatial":
            import xrspatial

            def setup(z):
                return xrspatial.flow_direction(_xr(_ours_filled(z)))
            return setup, lambda fd: xrspatial.flow_accumulation(fd).values
    if task == "d8-acc-dem":
        if name == "ours":
            def run(f):
                d = hydro.d8_directions(f, CELL)
                return hydro.accumulate_d8(d, order=hydro.flow_order_d8(d))
            return _ours_filled, run
        if name == "richdem":
            import richdem as rd
            return (lambda z: _rd_array(_ours_filled(z))), \
                lambda a: rd.FlowAccumulation(a, method="D8")
        if name == "whitebox":
            import whitebox_workflows as wb
            wbe = wb.WbEnvironment()
            return (lambda z: wbe.read_raster(_tif(_ours_filled(z), tmp))), \
                lambda r: wbe.hydrology.d8_flow_accum(input=r)
    if task == "dinf-acc":
        def angles(z):
            return hydro.dinf_directions(_ours_filled(z), CELL)[0]
        if name == "ours":
            return angles, hydro.accumulate_dinf
        if name == "ours+order":
            return angles, lambda a: hydro.accumulate_dinf(a, order=hydro.flow_order_dinf(a))
        if name == "pysheds":
            def setup(z):
                grid, _ = _pysheds(z, tmp)
                filled = grid.read_raster(_tif(_ours_filled(z), tmp, "filled.tif"))
                return grid, grid.flowdir(filled, routing="dinf")
            return setup, lambda s: s[0].accumulation(s[1], routing="dinf")
        if name == "xrspatial":
            import xrspatial

            def setup(z):
                return xrspatial.flow_direction(_xr(_ours_filled(z)), routing="dinf")
            return setup, lambda fd: xrspatial.flow_accumulation(fd, routing="dinf").values
    if task == "dinf-acc-dem":
        if name == "ours":
            def run(f):
                a = hydro.dinf_directions(f, CELL)[0]
                return hydro.accumulate_dinf(a, order=hydro.flow_order_dinf(a))
            return _ours_filled, run
        if name == "richdem":
            import richdem as rd
            return (lambda z: _rd_array(_ours_filled(z))), \
                lambda a: rd.FlowAccumulation(a, method="Dinf")
        if name == "whitebox":
            import whitebox_workflows as wb
            wbe = wb.WbEnvironment()
            return (lambda z: wbe.read_raster(_tif(_ours_filled(z), tmp))), \
                lambda r: wbe.hydrology.dinf_flow_accum(input=r)
    if task == "hand":
        def inputs(z):
            f = _ours_filled(z)
            d = hydro.d8_directions(f, CELL)
            acc = hydro.accumulate_d8(d)
            return f, d, acc
        if name == "ours":
            def setup(z):
                f, d, acc = inputs(z)
                return f, d, hydro.extract_streams(acc, STREAM_CELLS)
            return setup, lambda s: hydro.hand(s[0], s[1], s[2])
        if name == "pysheds":
            from pysheds.sview import Raster, ViewFinder

            def setup(z):
                f, d, acc = inputs(z)
                grid, dem = _pysheds(z, tmp)
                vf = dem.viewfinder

                def view(nodata):
                    return ViewFinder(affine=vf.affine, shape=vf.shape, crs=vf.crs, nodata=nodata)
                return (grid, Raster(d.astype(np.int64), viewfinder=view(0)),
                        Raster(f, viewfinder=view(np.float32(-9999))),
                        Raster(acc >= STREAM_CELLS, viewfinder=view(False)))
            return setup, lambda s: s[0].compute_hand(s[1], s[2], s[3], nodata_out=-1.0,
                                                      dirmap=(64, 128, 1, 2, 4, 8, 16, 32))
        if name == "xrspatial":
            import xrspatial

            def setup(z):
                f = _xr(_ours_filled(z))
                fd = xrspatial.flow_direction(f)
                return fd, xrspatial.flow_accumulation(fd), f
            return setup, lambda s: xrspatial.hand(s[0], s[1], s[2], threshold=STREAM_CELLS).values
    raise KeyError(f"{task}/{name}")


def child(task: str, name: str, data: str, repeat: int, out: str) -> None:
    warnings.simplefilter("ignore")
    z = np.load(data)
    result: dict = {"task": task, "impl": name, "cells": int(z.size)}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            setup, run = impl(task, name, tmp)
            with _quiet_fd():
                small = z[: min(200, z.shape[0]), : min(200, z.shape[1])].copy()
                run(setup(small))  # warm-up: numba cache / peer initialisation
                state = setup(z)
                walls, cpus, peak = [], [], None
                for k in range(repeat):
                    t, c = time.perf_counter(), time.process_time()
                    if k == 0:
                        with PeakRSS() as mem:
                            res = run(state)
                        peak = mem.extra
                    else:
                        res = run(state)
                    walls.append(time.perf_counter() - t)
                    cpus.append(time.process_time() - c)
                    del res
        result.update(wall=statistics.median(walls), cpu=statistics.median(cpus),
                      peak_bytes_per_cell=peak / z.size)
    except Exception as err:  # a peer without the function, or failing: reported as n/a
        result["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
    Path(out).write_text(json.dumps(result))


def run_child(task: str, name: str, data: Path, repeat: int, timeout: float) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        subprocess.run([sys.executable, "-m", "bench.hydro", "--child", f"{task}:{name}",
                        "--data", str(data), "--repeat", str(repeat), "--out", out],
                       check=False, timeout=timeout)
        return json.loads(Path(out).read_text() or "{}")
    except (subprocess.TimeoutExpired, json.JSONDecodeError) as err:
        return {"task": task, "impl": name, "error": type(err).__name__}
    finally:
        Path(out).unlink(missing_ok=True)


def flood2d_hook(cells: int) -> str:
    """Cell-steps/s of the 2D flood model from bench.flood2d.swe_benchmark, if present."""
    try:
        from bench.flood2d import swe_benchmark  # written by the flood model's helper
    except ImportError:
        return "skipped (bench.flood2d not present)"
    try:
        rate = swe_benchmark(cells)
    except Exception as err:
        return f"n/a ({type(err).__name__}: {err})"
    if isinstance(rate, dict):
        parts = [f"{rate['cell_steps_per_s'] / 1e6:.1f}M cell-steps/s (wall)"] if \
            "cell_steps_per_s" in rate else []
        if "cell_steps_per_cpu_s" in rate:
            parts.append(f"{rate['cell_steps_per_cpu_s'] / 1e6:.1f}M per CPU second")
        return ", ".join(parts) + f"  [{rate}]" if parts else str(rate)
    return f"{float(rate) / 1e6:.1f}M cell-steps/s" if np.isscalar(rate) else str(rate)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2000, help="Terrain side in cells (2000 = 4M).")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--dem", default=None, help="Use this DEM file instead of the terrain.")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tasks", default=",".join(TASKS), help="Comma-separated tasks.")
    ap.add_argument("--peers", default="all", help="Comma-separated peers, or 'all' / 'none'.")
    ap.add_argument("--cache", default="/tmp/ngis-bench", type=Path)
    ap.add_argument("--timeout", type=float, default=900.0, help="Seconds per child.")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        task, name = args.child.split(":")
        child(task, name, args.data, args.repeat, args.out)
        return
    data = prepare_dem(args.size, args.seed, args.cache, args.dem)
    cells = int(np.load(data, mmap_mode="r").size)
    print(f"DEM {data.name}: {cells / 1e6:.2f}M cells; medians of {args.repeat} runs, "
          f"each implementation in a fresh process")
    peers = None if args.peers == "all" else set(args.peers.split(",")) - {"none"}
    header = (f"{'task':<13} {'impl':<11} {'wall s':>8} {'cpu s':>8} {'peak B/cell':>11} "
              f"{'peer/ours (wall, cpu)':>22}")
    print(header)
    print("-" * len(header))
    for task in args.tasks.split(","):
        ours = None
        for name in TASKS[task]:
            if not name.startswith("ours") and peers is not None and name not in peers:
                continue
            r = run_child(task, name, data, args.repeat, args.timeout)
            if "error" in r or "wall" not in r:
                print(f"{task:<13} {name:<11} {'n/a':>8} {'':>8} {'':>11}  "
                      f"{r.get('error', 'failed')}", flush=True)
                continue
            ratio = ""
            if name == "ours":
                ours = r
            elif ours is not None and not name.startswith("ours"):
                ratio = f"{r['wall'] / ours['wall']:.2f}x, {r['cpu'] / ours['cpu']:.2f}x"
            extra = ""
            if task == "fill" and name == "ours":
                extra = f"  (working memory {r['peak_bytes_per_cell'] - 4:.2f} B/cell " \
                        "beyond the float32 output)"
            print(f"{task:<13} {name:<11} {r['wall']:>8.3f} {r['cpu']:>8.3f} "
                  f"{r['peak_bytes_per_cell']:>11.2f} {ratio:>22}{extra}", flush=True)
    print(f"2D flood model: {flood2d_hook(cells)}")


if __name__ == "__main__":
    main()
