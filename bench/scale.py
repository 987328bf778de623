"""Benchmark: national scale. Hydrology of a large DEM in memory, tiled in one process, and on a
dask LocalCluster of 2 workers (models.hydro.tiled); xarray-spatial's dask fill as the peer;
and buildings into 3D Tiles with 1 and 2 workers (through bench.tiles).

Hydrology: the project's synthetic terrain (gis.demo.terrain: fractal hills, meandering valleys,
pits) at 10 m, ``--size`` cells a side (default 4,000: 16M cells; ``--size 10000`` is the issue's
100M-cell target), written once as a tiled GeoTIFF under ``--cache``. Each path runs in a fresh
process (numba caches loaded and dask workers warmed on a small grid first, untimed) and prints
seconds per step (fill, D8, accumulation), cells/s of fill + accumulation, and peak memory: the
maximum resident set of the driver process and of each worker (the kernel's VmHWM). The
tiled outputs are compared with the in-memory ones (bit for bit) at the end.

Peer: xarray-spatial 0.10's ``fill`` on a numpy-backed and on a dask-backed DataArray (chunks of
``--tile``), in one process; its dask/numpy time ratio is set beside ours (tiled/in-memory).
It is slow (about 15x our in-memory fill), so it runs only up to ``--peer-max`` cells a side.

Buildings: bench.tiles' national region with about ``--buildings`` buildings (LOD1), built with
1 and 2 workers (peak RSS per worker from that benchmark's sampler). PostGIS (with ``--postgis
URL`` or $NGIS_TEST_POSTGIS_URL): the same buildings written into PostGIS by our store and by
GDAL's ogr2ogr as the peer.

    .venv/bin/python -m bench.scale                              # 16M cells, 100k buildings
    .venv/bin/python -m bench.scale --size 10000 --tile 2000 --skip-buildings
    .venv/bin/python -m bench.scale --skip-hydro --buildings 1000000

Repeats: ``--repeat`` runs of each path, medians printed (the machine is small and shared).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CELL = 10.0


def maxrss_mb() -> float:
    """Peak resident set of this process (VmHWM: unlike ``ru_maxrss``, which Linux carries
    over from the parent through fork and exec, it starts afresh in a new program)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def prepare_dem(size: int, cache: Path, seed: int = 11) -> Path:
    """The synthetic DEM as a tiled GeoTIFF (generated in strips, never whole in memory)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from gis.demo.terrain import terrain_window

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"terrain-{size}-seed{seed}.tif"
    if path.exists():
        return path
    side = size * CELL
    tmp = path.with_suffix(".tmp.tif")
    print(f"generating a {size} x {size} DEM ({size * size / 1e6:.0f}M cells) ...",
          file=sys.stderr, flush=True)
    with rasterio.open(tmp, "w", driver="GTiff", width=size, height=size, count=1,
                       dtype="float32", crs="EPSG:3826", nodata=np.nan, tiled=True,
                       blockxsize=512, blockysize=512, compress="deflate", predictor=3,
                       BIGTIFF="IF_SAFER",
                       transform=from_origin(200000.0, 2500000.0 + side, CELL, CELL)) as ds:
        strip = 1024
        for r0 in range(0, size, strip):
            n = min(strip, size - r0)
            top = side - r0 * CELL
            z = terrain_window(seed, (0.0, 0.0, side, side), 0.0, top, size, n, CELL)
            ds.write(z.astype(np.float32), 1, window=Window(0, r0, size, n))
    os.replace(tmp, path)
    return path


# --- the measured paths (each in its own process) ------------------------------------------

def child_memory(dem: Path, out: Path) -> dict:
    import rasterio

    from models import hydro

    hydro.fill_depressions(np.random.default_rng(0).random((64, 64)).astype(np.float32))
    d = hydro.d8_directions(np.ones((8, 8)), 10.0)
    hydro.accumulate_d8(d)
    with rasterio.open(dem) as ds:
        z = ds.read(1)
    times = {}
    t0 = time.perf_counter()
    filled = hydro.fill_depressions(z)
    times["fill"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dirs = hydro.d8_directions(filled, CELL)
    times["d8"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    acc = hydro.accumulate_d8(dirs, weights=np.isfinite(filled).astype(np.float64))
    times["acc"] = time.perf_counter() - t0
    np.save(out / "mem-filled.npy", filled)
    np.save(out / "mem-d8.npy", dirs)
    np.save(out / "mem-acc.npy", acc)
    return {"times": times, "driver_mb": maxrss_mb(), "workers_mb": []}


def child_tiled(dem: Path, out: Path, tile: int, workers: int) -> dict:
    from models.hydro import tiled as T

    times, cpu, solve = {}, {}, {}
    with T.Executor(workers) as ex:
        warm = np.random.default_rng(0).random((96, 96)).astype(np.float32)
        for _ in range(max(1, workers)):  # numba caches loaded on every worker, untimed
            ws = T.TileStore(out / "warm", warm.shape, np.float32, 32)
            T.fill_tiled(T.ArraySource(warm), ws, executor=ex)
            wd = T.TileStore(out / "warm-d8", warm.shape, np.uint8, 32)
            T.d8_tiled(ws, wd, 10.0, executor=ex)
            T.accumulate_tiled(wd, T.TileStore(out / "warm-acc", warm.shape, np.float64, 32),
                               executor=ex)

        def cpu_now() -> float:  # CPU seconds of this process and of every worker
            own = time.process_time()
            if ex.client is None:
                return own
            return own + sum(ex.client.run(time.process_time).values())

        src = T.RasterSource(str(dem))
        filled = T.TileStore(out / "filled", src.shape, src.dtype, tile)
        dirs = T.TileStore(out / "d8", src.shape, np.uint8, tile)
        acc = T.TileStore(out / "acc", src.shape, np.float64, tile)
        steps = {"fill": lambda: T.fill_tiled(src, filled, executor=ex),
                 "d8": lambda: T.d8_tiled(filled, dirs, CELL, executor=ex),
                 "acc": lambda: T.accumulate_tiled(dirs, acc, weights=T.FiniteWeights(filled),
                                                   executor=ex)}
        reports = {}
        for name, step in steps.items():
            c0, t0 = cpu_now(), time.perf_counter()
            reports[name] = step()
            times[name] = time.perf_counter() - t0
            cpu[name] = cpu_now() - c0
            solve[name] = reports[name].solve_seconds
        workers_mb = []
        if ex.client is not None:
            workers_mb = sorted(ex.client.run(maxrss_mb).values())
    rep = reports["fill"]
    return {"times": times, "cpu": cpu, "solve": solve, "driver_mb": maxrss_mb(),
            "workers_mb": workers_mb, "tiles": rep.tiles, "nodes": rep.nodes,
            "edges": rep.edges, "halo": reports["d8"].largest_halo}


def child_peer(dem: Path, tile: int) -> dict:
    import warnings

    import dask
    import rasterio
    import xarray as xr
    import xrspatial

    with rasterio.open(dem) as ds:
        z = ds.read(1)
    small = xr.DataArray(z[:64, :64].copy(), dims=("y", "x"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xrspatial.fill(small)
        xrspatial.fill(small.chunk(32)).compute()
        da_np = xr.DataArray(z, dims=("y", "x"))
        t0 = time.perf_counter()
        xrspatial.fill(da_np).values
        t_np = time.perf_counter() - t0
        with dask.config.set(scheduler="threads", num_workers=2):
            t0 = time.perf_counter()
            xrspatial.fill(da_np.chunk(tile)).compute()
            t_dask = time.perf_counter() - t0
    return {"times": {"fill-numpy": t_np, "fill-dask": t_dask}, "driver_mb": maxrss_mb(),
            "workers_mb": []}


def run_child(*argv: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "bench.scale", "--child", *argv],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-3000:])
        raise SystemExit(f"child {argv[:2]} failed")
    return json.loads(r.stdout.strip().splitlines()[-1])


def compare(out: Path, tile_dir: Path) -> bool:
    from models.hydro import tiled as T

    for name in ("filled", "d8", "acc"):
        mem = np.load(out / f"mem-{name}.npy", mmap_mode="r")
        store = T.TileStore.open(tile_dir / name)
        for r0 in range(0, store.shape[0], 2048):
            got = store.read(r0, min(r0 + 2048, store.shape[0]), 0, store.shape[1])
            if not np.array_equal(got, mem[r0:r0 + 2048], equal_nan=True):
                print(f"  MISMATCH in {name} near row {r0}")
                return False
    return True


def med(runs: list[dict], key: str) -> float:
    return statistics.median(r["times"][key] for r in runs)


def hydro_section(args) -> None:
    cache = Path(args.cache)
    dem = prepare_dem(args.size, cache)
    cells = args.size * args.size
    work = cache / f"work-{args.size}"
    work.mkdir(parents=True, exist_ok=True)
    print(f"\nHydrology: {args.size} x {args.size} = {cells / 1e6:.0f}M cells, tiles of "
          f"{args.tile}, medians of {args.repeat}")
    results = {}
    paths = [("in-memory", ["memory"]), ("tiled, 1 process", ["tiled", "1"]),
             (f"tiled, LocalCluster {args.workers} workers", ["tiled", str(args.workers)])]
    for label, spec in paths:
        runs = []
        for _ in range(args.repeat):
            d = work / ("mem" if spec[0] == "memory" else f"tiled-{spec[1]}")
            d.mkdir(exist_ok=True)
            runs.append(run_child(spec[0], str(dem), str(d), str(args.tile),
                                  spec[1] if len(spec) > 1 else "1"))
        results[label] = runs
        fill, d8, acc = med(runs, "fill"), med(runs, "d8"), med(runs, "acc")
        workers = [mb for r in runs for mb in r["workers_mb"]]
        mem = (f"driver {max(r['driver_mb'] for r in runs):,.0f} MB"
               + (f", per worker {max(workers):,.0f} MB" if workers else ""))
        extra = ""
        if "tiles" in runs[0]:
            cpu = {k: statistics.median(r["cpu"][k] for r in runs) for k in ("fill", "d8", "acc")}
            solve = {k: statistics.median(r["solve"][k] for r in runs) for k in ("fill", "acc")}
            extra = (f"; {runs[0]['tiles']} tiles, graph {runs[0]['nodes']:,} nodes, widest "
                     f"flat halo {runs[0]['halo']}\n{'':38s}CPU s per M cells (all processes): "
                     + ", ".join(f"{k} {v / cells * 1e6:.3f}" for k, v in cpu.items())
                     + f"; global solves: fill {solve['fill']:.2f} s, acc {solve['acc']:.2f} s")
        print(f"  {label:34s} fill {fill:6.1f} s  d8 {d8:6.1f} s  acc {acc:6.1f} s  "
              f"fill+d8+acc {fill + d8 + acc:6.1f} s = {cells / (fill + d8 + acc) / 1e6:5.2f}M "
              f"cells/s; fill {cells / fill / 1e6:5.1f}M cells/s; {mem}{extra}")
    base = med(results["in-memory"], "fill")
    for label in list(results)[1:]:
        print(f"  ratio {label} / in-memory: fill {med(results[label], 'fill') / base:.2f}x, "
              f"all steps {sum(med(results[label], k) for k in ('fill', 'd8', 'acc')) / sum(med(results['in-memory'], k) for k in ('fill', 'd8', 'acc')):.2f}x")  # noqa: E501
    for label in list(results)[1:]:
        name = "tiled-" + ("1" if "1 process" in label else str(args.workers))
        ok = compare(work / "mem", work / name)
        print(f"  {label}: outputs {'identical to' if ok else 'DIFFER from'} in-memory "
              f"(fill bit for bit, D8, accumulation)")
    if args.size <= args.peer_max:
        runs = [run_child("peer", str(dem), "-", str(args.tile), "1")
                for _ in range(args.repeat)]
        t_np, t_dask = med(runs, "fill-numpy"), med(runs, "fill-dask")
        print(f"  peer xarray-spatial fill: numpy {t_np:.1f} s, dask (chunks {args.tile}, 2 "
              f"threads) {t_dask:.1f} s = {t_dask / t_np:.2f}x; ours in memory is "
              f"{t_np / base:.1f}x faster than its numpy path")
    else:
        print(f"  peer xarray-spatial skipped above {args.peer_max} cells a side")


def buildings_section(args) -> None:
    from bench import tiles as bt

    cache = Path(args.cache)
    scale = bt.scale_for(args.buildings)
    store, n = bt.prepare(scale, cache)
    print(f"\nBuildings: national region, {n:,} buildings, LOD1 into 3D Tiles")
    for workers in (1, 2):
        rates, drivers, worker_peaks = [], [], []
        for _ in range(args.repeat):
            out = cache / f"scale-tiles-{workers}"
            r = bt._child("--child", "run", "--store", str(store), "--out", str(out),
                          "--lod", "1", "--compress", "none", "--workers", str(workers))
            rates.append(r["features"] / r["seconds"])
            drivers.append(r["peak_driver_mb"])
            if workers > 1:
                worker_peaks.append(r["peak_worker_mb"])
        per_worker = f", per worker {max(worker_peaks):,.0f} MB" if worker_peaks else ""
        print(f"  {workers} worker{'s' if workers > 1 else ''}: "
              f"{statistics.median(rates):,.0f} buildings/s; driver peak {max(drivers):,.0f} MB"
              f"{per_worker}")


def child_postgis(store: Path, url: str) -> dict:
    """The buildings of a GeoPackage store written into PostGIS by our store (COPY in batches,
    GiST index, ANALYZE), and by GDAL's ogr2ogr (COPY, GiST index) as the peer."""
    from urllib.parse import parse_qsl, urlsplit

    from gis.store import open_store
    from gis.store.base import VectorLayer
    from gis.store.postgis import PostGISStore

    frame = open_store(str(store)).read("buildings")
    pg = PostGISStore(url)
    t0 = time.perf_counter()
    pg.write([VectorLayer("buildings", frame, "building")], [], [])
    ours = time.perf_counter() - t0
    parts = urlsplit(url)
    schema = dict(parse_qsl(parts.query)).get("schema", "public")
    conn = (f"PG:host={parts.hostname} port={parts.port or 5432} dbname={parts.path[1:]} "
            f"user={parts.username} password={parts.password}")
    t0 = time.perf_counter()
    subprocess.run(["ogr2ogr", "-f", "PostgreSQL", conn, str(store), "buildings",
                    "-nln", f"{schema}.buildings_gdal", "-overwrite", "-lco", "SPATIAL_INDEX=GIST",
                    "-lco", "GEOMETRY_NAME=geom", "-lco", "FID=fid", "--config", "PG_USE_COPY",
                    "YES"], check=True, capture_output=True)
    peer = time.perf_counter() - t0
    return {"times": {"ours": ours, "ogr2ogr": peer}, "rows": len(frame),
            "driver_mb": maxrss_mb(), "workers_mb": []}


def postgis_section(args) -> None:
    from bench import tiles as bt

    cache = Path(args.cache)
    store, n = bt.prepare(bt.scale_for(args.buildings), cache)
    url = args.postgis + ("&" if "?" in args.postgis else "?") + "schema=bench_scale"
    runs = [run_child("postgis", str(store), url, "0", "1") for _ in range(args.repeat)]
    ours, peer = med(runs, "ours"), med(runs, "ogr2ogr")
    rows = runs[0]["rows"]
    print(f"\nPostGIS: {rows:,} buildings from the GeoPackage store into PostGIS")
    print(f"  ours (one streamed COPY encoded in batches of 20k, GiST, ANALYZE) {ours:.1f} s = "
          f"{rows / ours:,.0f} rows/s; ogr2ogr (COPY, GiST) {peer:.1f} s = "
          f"{rows / peer:,.0f} rows/s; "
          f"ours/peer time {ours / peer:.2f}x; driver peak {runs[0]['driver_mb']:,.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4000, help="DEM cells a side.")
    ap.add_argument("--tile", type=int, default=1000, help="Tile size of the tiled paths.")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster workers.")
    ap.add_argument("--repeat", type=int, default=1, help="Runs per path (medians).")
    ap.add_argument("--peer-max", type=int, default=4000,
                    help="Largest DEM side the xarray-spatial peer runs on.")
    ap.add_argument("--buildings", type=int, default=100_000)
    ap.add_argument("--skip-hydro", action="store_true")
    ap.add_argument("--skip-buildings", action="store_true")
    ap.add_argument("--postgis", default=os.environ.get("NGIS_TEST_POSTGIS_URL"),
                    help="PostgreSQL URL for the PostGIS section (default "
                         "$NGIS_TEST_POSTGIS_URL; skipped without one).")
    ap.add_argument("--cache", default="/tmp/ngis-bench")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, dem, out, tile, workers = args.child
        if kind == "memory":
            res = child_memory(Path(dem), Path(out))
        elif kind == "tiled":
            res = child_tiled(Path(dem), Path(out), int(tile), int(workers))
        elif kind == "postgis":
            res = child_postgis(Path(dem), out)
        else:
            res = child_peer(Path(dem), int(tile))
        print(json.dumps(res))
        return
    print(f"bench.scale on {os.cpu_count()} cores, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if not args.skip_hydro:
        hydro_section(args)
    if not args.skip_buildings:
        buildings_section(args)
        if args.postgis:
            postgis_section(args)


if __name__ == "__main__":
    main()
