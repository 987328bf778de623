"""Benchmark: local raster models in memory against the chunked (dask, halo) path of
:mod:`models.chunked`, threaded and on a LocalCluster, on a generated DEM.

Operations (each on the whole grid):

* ``terrain``: Zevenbergen-Thorne slope, aspect, profile and plan curvature (halo 1);
* ``dinf``: D-infinity slope of the DEM with TauDEM's undefined cells (halo 1; the generated DEM
  is not depression-filled, which changes nothing for the slope, so the fill's cost stays out);
* ``sinmap``: SINMAP stability index and saturation from slope and a specific catchment area
  (per cell, halo 0).
* ``halo1``, ``halo10``, ``halo1sync``: the cost of halo exchange alone for an explicit time
  stepper (:func:`models.chunked.iterate_wide_halo` with a step that does nothing, so only the
  exchange is timed): 10 steps with a 1-cell exchange per step in one graph (``halo1``); one
  10-cell exchange for the 10 steps (``halo10``, the wide-halo schedule); 10 steps each
  persisted with a global maximum brought back to the client, as an adaptive time step needs
  (``halo1sync``). The in-memory path of these does nothing (no ratio).

Paths: ``memory`` runs the in-memory function on numpy arrays (numba on all threads) and keeps
the results in RAM; ``threads`` and ``cluster`` read the inputs lazily from a Zarr store in
``--chunk``-sized chunks and write the results chunk by chunk to a Zarr store (so no full grid
is ever held), on dask's threaded scheduler and on a LocalCluster of ``--workers`` processes with
one thread each. Every chunked result is checked bit for bit against the in-memory one (on the
first repeat). Prints the median of ``--repeat`` runs: cells/s, the peak resident memory of the
driver above its level before the run, the peak of each worker process, and the ratio of each
chunked time to the in-memory time.

    .venv/bin/python -m bench.chunked --size 4000 --repeat 3
    .venv/bin/python -m bench.chunked --size 10000 --repeat 1 --ops terrain,sinmap
    .venv/bin/python -m bench.chunked --size 2000 --chunk 512 --paths memory,threads
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from bench.tiles import PeakMemory

OPS = ("terrain", "dinf", "sinmap", "halo1", "halo10", "halo1sync")
EXCHANGE_STEPS = 10
PATHS = ("memory", "threads", "cluster")
DX = 20.0


def generate(size: int, cache: Path, chunk: int, seed: int = 7) -> Path:
    """A ``size`` x ``size`` DEM (smoothed noise on a ramp, NaN holes) and a positive specific
    catchment area, written once to ``cache`` as Zarr (float32, ``chunk`` chunks)."""
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr
    from affine import Affine
    from scipy import ndimage

    path = cache / f"chunked-{size}-c{chunk}-s{seed}.zarr"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), 8)
    noise *= 400.0 / max(float(np.abs(noise).max()), 1e-6)
    r = np.arange(size, dtype=np.float32)[:, None]
    dem = (noise + 0.3 * r + 50.0).astype(np.float32)
    for _ in range(max(1, size // 400)):                   # nodata holes
        i, j = rng.integers(0, size - 40, 2)
        dem[i:i + 40, j:j + 25] = np.nan
    sca = (DX * np.exp(rng.normal(2.0, 1.5, (size, size)))).astype(np.float32)
    sca[np.isnan(dem)] = np.nan
    tr = Affine(DX, 0, 250000.0, 0, -DX, 2700000.0)
    coords = {"y": tr.f - DX * (np.arange(size) + 0.5), "x": tr.c + DX * (np.arange(size) + 0.5)}
    ds = xr.Dataset({"dem": (("y", "x"), dem), "sca": (("y", "x"), sca)}, coords=coords)
    ds = ds.rio.write_crs("EPSG:3826").rio.write_transform(tr)
    tmp = path.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ds.chunk({"y": chunk, "x": chunk}).to_zarr(tmp, consolidated=False)
    tmp.rename(path)
    return path


def in_memory(op: str, dem: np.ndarray, sca: np.ndarray) -> dict[str, np.ndarray]:
    from models import hydro
    from models.landslide import terrain
    from models.landslide.calibration import DEFAULT_TABLE, parse_calibration
    from models.landslide.sinmap import stability_index

    if op == "terrain":
        return terrain.zevenbergen_thorne(dem, DX, DX)
    if op == "dinf":
        _, slope = hydro.dinf_directions(dem, DX, DX)
        ring = terrain._ring(np.isfinite(dem))
        return {"slope": np.where(ring | np.isnan(slope), np.nan, slope).astype(np.float32)}
    if op.startswith("halo"):
        return {"state": dem}
    slope = terrain.zevenbergen_thorne(dem, DX, DX)["slope"]
    si, sat = stability_index(slope, sca, parse_calibration(DEFAULT_TABLE))
    return {"si": si, "sat": sat}


def chunked_graph(op: str, ds):
    """The lazy result Dataset of ``op`` from the Zarr-backed inputs."""
    import xarray as xr

    from models import chunked
    from models.landslide.calibration import DEFAULT_TABLE, parse_calibration

    dem = ds["dem"]
    if op in ("halo1", "halo10"):
        return xr.Dataset({"state": chunked.iterate_wide_halo(
            lambda b, t: b, dem, EXCHANGE_STEPS, reach=1, every=1 if op == "halo1" else 10)})
    if op == "terrain":
        return chunked.zevenbergen_thorne(dem)
    if op == "dinf":
        return xr.Dataset({"slope": chunked.dinf_slope(dem)})
    # slope per chunk as in memory (sinmap bench: slope is an input, computed in the graph)
    slope = chunked.zevenbergen_thorne(dem)["slope"]
    si, sat = chunked.stability_index(slope, ds["sca"], parse_calibration(DEFAULT_TABLE))
    return xr.Dataset({"si": si, "sat": sat})


def _clean(ds):
    """Drop the attributes/encodings Zarr cannot store (rio's grid mapping stays a coord)."""
    for v in ds.variables.values():
        v.encoding = {}
    return ds


def run_chunked(op: str, src: Path, out: Path, client) -> float:
    import dask
    import xarray as xr

    ds = xr.open_zarr(src, consolidated=False, decode_coords="all")
    res = None if op == "halo1sync" else _clean(chunked_graph(op, ds))
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    with dask.config.set(scheduler=client if client is not None else "threads"):
        if op == "halo1sync":
            from models import chunked

            data = chunked._dask(ds["dem"])
            for _ in range(EXCHANGE_STEPS):
                (data,) = chunked.map_halo(lambda b: b, data, depth=1, threads=None)
                data = data.persist()
                float(dask.array.nanmax(data).compute())       # the global dt reduction
            res = xr.Dataset({"state": chunked.like(ds["dem"], data, "state")})
        res.to_zarr(out, consolidated=False, compute=True)
    return time.perf_counter() - t0


def check(out: Path, ref: Path) -> bool:
    """Whether the chunked result equals the stored in-memory one bit for bit (NaN at the same
    places)."""
    import xarray as xr

    a = xr.open_zarr(out, consolidated=False)
    b = xr.open_zarr(ref, consolidated=False)
    return all(np.array_equal(a[k].values, b[k].values, equal_nan=True) for k in b.data_vars)


def run_child(args) -> None:
    """One (operation, path): warm-up, ``--repeat`` timed runs, one JSON line on stdout."""
    import json

    import psutil
    import xarray as xr

    from models.chunked import dask_client

    op, path = args.child
    src = generate(args.size, args.cache, args.chunk)
    ref = args.cache / f"chunked-ref-{args.size}-{op}.zarr"
    me = psutil.Process()
    times, peaks, wpeaks = [], [], []
    identical = None
    if path == "memory":
        ds = xr.open_zarr(src, consolidated=False)
        dem, sca = ds["dem"].values, ds["sca"].values
        in_memory(op, dem[:64, :64], sca[:64, :64])                  # numba warm-up
        inputs = dem.nbytes + (sca.nbytes if op == "sinmap" else 0)
        for _ in range(args.repeat):
            base = me.memory_info().rss
            with PeakMemory(0.02) as pm:
                t0 = time.perf_counter()
                res = in_memory(op, dem, sca)
                times.append(time.perf_counter() - t0)
            peaks.append(pm.driver - base)
            wpeaks.append(0)
        if not args.no_check:
            out = xr.Dataset({k: (("y", "x"), v) for k, v in res.items()})
            shutil.rmtree(ref, ignore_errors=True)
            out.chunk({"y": args.chunk, "x": args.chunk}).to_zarr(ref, consolidated=False)
    else:
        inputs = 0
        out = args.cache / f"chunked-out-{args.size}-{op}-{path}.zarr"
        with dask_client(args.workers if path == "cluster" else None) as client:
            run_chunked(op, src, out, client)                         # warm-up
            for _ in range(args.repeat):
                base = me.memory_info().rss
                with PeakMemory(0.02) as pm:
                    times.append(run_chunked(op, src, out, client))
                peaks.append(pm.driver - base)
                wpeaks.append(pm.worker)
        if not args.no_check and ref.exists():
            identical = check(out, ref)
        shutil.rmtree(out, ignore_errors=True)
    print(json.dumps({"op": op, "path": path, "s": statistics.median(times), "times": times,
                      "driver": statistics.median(peaks), "worker": statistics.median(wpeaks),
                      "inputs": inputs, "identical": identical}), flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=4000, help="grid side in cells")
    ap.add_argument("--chunk", type=int, default=1000, help="chunk side in cells")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--paths", default=",".join(PATHS))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/ngis-bench"))
    ap.add_argument("--no-check", action="store_true", help="skip the bit-identity check")
    ap.add_argument("--child", nargs=2, metavar=("OP", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        run_child(args)
        return
    import json
    import os
    import subprocess
    import sys

    ops = [o for o in args.ops.split(",") if o]
    paths = [p for p in args.paths.split(",") if p]
    if not args.no_check and "memory" not in paths:
        paths.insert(0, "memory")              # the reference for the identity check
    src = generate(args.size, args.cache, args.chunk)
    cells = args.size * args.size
    print(f"grid {args.size} x {args.size} ({cells / 1e6:.1f} M cells), chunks {args.chunk}, "
          f"{args.repeat} repeats, {args.workers} cluster workers, inputs {src}", flush=True)
    # large blocks always mmapped, so freed arrays leave the resident set (honest peaks)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    results = {}
    for op in ops:
        for path in paths:
            cmd = [sys.executable, "-m", "bench.chunked", "--size", str(args.size), "--chunk",
                   str(args.chunk), "--repeat", str(args.repeat), "--workers",
                   str(args.workers), "--cache", str(args.cache), "--child", op, path]
            if args.no_check:
                cmd.append("--no-check")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            if proc.returncode != 0 or not line:
                sys.stderr.write(proc.stderr[-3000:])
                raise SystemExit(f"{op}/{path} failed")
            r = json.loads(line[-1])
            results[(op, path)] = r
            print(f"  {op:8} {path:8} runs {', '.join(f'{t:.2f}' for t in r['times'])} s"
                  + ("" if r["identical"] is None else
                     f"; identical to in-memory: {r['identical']}"), flush=True)
            if r["identical"] is False:
                raise SystemExit(f"{op}/{path}: the chunked result differs from the in-memory one")
    print(f"\n{'op':8} {'path':8} {'median s':>9} {'Mcells/s':>9} {'inputs MB':>10} "
          f"{'driver +MB':>11} {'B/cell':>7} {'worker MB':>10} {'x memory':>9}")
    for (op, path), r in results.items():
        if path not in args.paths.split(","):
            continue
        base = None if op.startswith("halo") else results.get((op, "memory"))
        ratio = f"{r['s'] / base['s']:9.2f}" if base else f"{'-':>9}"
        print(f"{op:8} {path:8} {r['s']:9.2f} {cells / r['s'] / 1e6:9.1f} "
              f"{r['inputs'] / 2**20:10.0f} {r['driver'] / 2**20:11.0f} "
              f"{(r['driver'] + r['inputs']) / cells:7.1f} {r['worker'] / 2**20:10.0f} {ratio}")
    for path in ("threads", "cluster"):
        one, ten = results.get(("halo1", path)), results.get(("halo10", path))
        if one and ten:
            print(f"halo exchange, {path}: {(one['s'] - ten['s']) / (EXCHANGE_STEPS - 1) * 1e3:.0f}"
                  f" ms per extra 1-cell exchange round of the whole grid (halo1 - halo10) / 9")
        sync = results.get(("halo1sync", path))
        if sync and ten:
            print(f"halo exchange + global reduction per step, {path}: "
                  f"{(sync['s'] - ten['s']) / (EXCHANGE_STEPS - 1) * 1e3:.0f} ms per step")
    for op in ops:                                  # the in-memory references of this run
        shutil.rmtree(args.cache / f"chunked-ref-{args.size}-{op}.zarr", ignore_errors=True)
    print("B/cell = (inputs held + driver peak above its level before the run) / cells; worker MB"
          " = peak resident set of one LocalCluster worker process; x memory = time / in-memory"
          " time.")


if __name__ == "__main__":
    main()
