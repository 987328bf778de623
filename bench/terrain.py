"""Benchmark: DEM into finished quantized-mesh terrain (``tiles.terrain.build_terrain``), against
the peer: the naive per-tile pipeline with the same libraries a user would reach for (rasterio's
WarpedVRT read per tile at every level, pydelatin per tile, quantized-mesh-encoder, gzip), which
reads the DEM once per tile and level and converts no heights (orthometric, no geoid).

Prints for each DEM: DEM cells/s end to end (median of ``--repeat`` runs, each in a fresh
process, imports and numba cache loads done before the clock starts: about 1 s, half of it
``gis.io`` pulling in geopandas), tiles, bytes and bytes per km² of DEM footprint, peak resident
memory of the build (sampled every 50 ms, also over the RSS after imports), CPU seconds, the
largest vertical error of the finest level against the DEM (spec-decoded tiles, mesh
interpolated at every grid sample, vs bilinear DEM + geoid) and the ratio to the peer.
Wall-clock rates depend on what else runs (the load average is printed); cells per CPU-second
do much less.

    .venv/bin/python -m bench.terrain                       # SW Taiwan 40 m DEM, 1 and 2 workers
    .venv/bin/python -m bench.terrain --size 10000 --workers 2   # + a generated 10,000² DEM
    .venv/bin/python -m bench.terrain --size 3000 --no-sw --repeat 1

Targets (issue 10, 2 cores): >= 5M DEM cells/s; <= 0.5 m vertical error at the finest level for a
40 m DEM; memory bounded by the tile size (compare peak RSS for the 40 m DEM and ``--size``).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SW_DEM = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tw-sw-dem40m" / \
    "tw_sw40_moi40m_wgs84.tif"


def synthetic_dem(path: Path, size: int) -> Path:
    """A ``size`` x ``size`` float32 DEM at 10 m in EPSG:3826 (central Taiwan), mountains from
    a sum of sines plus small noise, written in row blocks (bounded memory)."""
    import rasterio
    from affine import Affine

    if path.exists():
        return path
    tmp = path.with_suffix(".tmp.tif")
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "float32",
               "crs": "EPSG:3826", "transform": Affine(10.0, 0, 200000.0, 0, -10.0, 2650000.0),
               "nodata": -9999.0, "tiled": True, "blockxsize": 256, "blockysize": 256,
               "compress": "deflate", "predictor": 3, "BIGTIFF": "IF_SAFER"}
    rng = np.random.default_rng(7)
    waves = [(rng.uniform(2e-4, 4e-3), rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi),
              rng.uniform(20, 300)) for _ in range(12)]
    x = np.arange(size) * 10.0
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, size, 512):
            y = (r0 + np.arange(min(512, size - r0)))[:, None] * 10.0
            z = np.full((len(y), size), 1200.0)
            for k, phase, ang, amp in waves:
                z += amp * np.sin(k * (x[None] * np.cos(ang) + y * np.sin(ang)) + phase)
            z += rng.normal(0, 0.3, z.shape)
            dst.write(np.clip(z, 0, None).astype(np.float32)[None],
                      window=((r0, r0 + len(y)), (0, size)))
    os.replace(tmp, path)
    return path


def footprint_km2(bounds) -> float:
    west, south, east, north = bounds
    r = 6371.0088
    return r * r * math.radians(east - west) * abs(math.sin(math.radians(north))
                                                   - math.sin(math.radians(south)))


def finest_error(out: Path, dem: Path, tiles: int = 4) -> float:
    """Largest |mesh - (DEM bilinear + N)| over every grid sample of up to ``tiles`` finest
    tiles (spec-decoded, matplotlib's linear interpolation on the decoded triangles)."""
    from matplotlib.tri import LinearTriInterpolator, Triangulation

    import importlib.util

    test = Path(__file__).resolve().parents[1] / "tests" / "tiles" / "test_terrain.py"
    spec = importlib.util.spec_from_file_location("_terrain_test_refs", test)
    refs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(refs)  # the tests' spec decoder and DEM reference
    QMAX, DemReference, spec_decode = refs.QMAX, refs.DemReference, refs.spec_decode
    from tiles.geoid import undulation
    from tiles.terrain.tiling import SIZE, tile_bounds

    layer = json.loads((out / "layer.json").read_text())
    z = layer["maxzoom"]
    ref = DemReference(dem)
    paths = sorted((out / str(z)).glob("*/*.terrain"))
    worst = 0.0
    picked = [paths[i] for i in np.linspace(0, len(paths) - 1, min(tiles, len(paths))).astype(int)]
    for p in picked:
        x, y = int(p.parent.name), int(p.stem)
        t = spec_decode(gzip.decompress(p.read_bytes()))
        hmin, hmax = t["header"][3], t["header"][4]
        col = np.rint(t["u"] * SIZE / QMAX)
        row = np.rint(t["v"] * SIZE / QMAX)
        h = hmin + t["h"] / QMAX * (hmax - hmin)
        west, south, east, north = tile_bounds(z, x, y)
        k = np.arange(SIZE + 1)
        K, R = np.meshgrid(k, k)
        LON, LAT = west + (east - west) * K / SIZE, south + (north - south) * R / SIZE
        H = ref(LON, LAT)
        ok = np.isfinite(H)
        if not ok.any():
            continue
        got = LinearTriInterpolator(Triangulation(col, row, t["indices"].reshape(-1, 3)), h)(
            K.astype(float), R.astype(float)).filled(np.nan)
        worst = max(worst, float(np.nanmax(np.abs(got[ok] - H[ok]
                                                  - undulation(LAT[ok], LON[ok])))))
    return worst


def run_ours(dem: str, out: str, workers: int, max_error: float, max_zoom: int | None) -> dict:
    from tiles.terrain import TerrainOptions, build_terrain

    s = build_terrain([dem], out, TerrainOptions(max_zoom=max_zoom, max_error=max_error,
                                                 workers=workers))
    layer = json.loads((Path(out) / "layer.json").read_text())
    return {"seconds": s.seconds, "tiles": s.tiles, "bytes": s.bytes, "cells": s.cells,
            "max_zoom": s.max_zoom, "bounds": layer["ngis"]["dataBounds"]}


def run_peer(dem: str, out: str, max_error: float, max_zoom: int) -> dict:
    """Naive per-tile pipeline: WarpedVRT read (bilinear, 257 x 257) of every tile at every
    level, pydelatin, quantized-mesh-encoder, gzip; no geoid."""
    import rasterio
    from pydelatin import Delatin
    from quantized_mesh_encoder import encode
    from rasterio.vrt import WarpedVRT
    from rasterio.warp import transform_bounds
    from affine import Affine
    from rasterio.enums import Resampling

    from tiles.terrain.tiling import SIZE, tile_bounds, tile_range

    t0 = time.perf_counter()
    tiles = nbytes = 0
    with rasterio.open(dem) as src:
        bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
        cells = src.width * src.height
        for z in range(max_zoom + 1):
            x0, y0, x1, y1 = (0, 0, 1, 0) if z == 0 else tile_range(z, bounds)
            err = max_error * 2.0 ** (max_zoom - z)
            for x in range(x0, x1 + 1):
                for y in range(y0, y1 + 1):
                    w, s, e, n = tile_bounds(z, x, y)
                    d = (e - w) / SIZE
                    with WarpedVRT(src, crs="EPSG:4326", resampling=Resampling.bilinear,
                                   transform=Affine(d, 0, w - d / 2, 0, -d, n + d / 2),
                                   width=SIZE + 1, height=SIZE + 1, src_nodata=src.nodata,
                                   nodata=np.nan, dtype="float32") as vrt:
                        grid = vrt.read(1).astype(np.float64)
                    grid = np.where(np.isfinite(grid), grid, 0.0)
                    tin = Delatin(grid, max_error=err)
                    v = tin.vertices.astype(np.float64)
                    pos = np.stack([w + (e - w) * v[:, 0] / SIZE, s + (n - s) * v[:, 1] / SIZE,
                                    v[:, 2]], axis=1)
                    buf = io.BytesIO()
                    encode(buf, pos, tin.triangles, bounds=[w, s, e, n])
                    data = gzip.compress(buf.getvalue(), compresslevel=3, mtime=0)
                    p = Path(out) / str(z) / str(x) / f"{y}.terrain"
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_bytes(data)
                    tiles += 1
                    nbytes += len(data)
    return {"seconds": time.perf_counter() - t0, "tiles": tiles, "bytes": nbytes, "cells": cells}


def _child(argv: list[str]) -> dict:
    res = subprocess.run([sys.executable, "-m", "bench.terrain", "--child", *argv],
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


class WorkerPeak:
    """Largest resident set of this process (build threads included) and of any descendant,
    sampled every 50 ms."""

    def __init__(self):
        import threading

        import psutil

        self.me, self.peak, self.stop = psutil.Process(), 0, threading.Event()
        self.own = self.me.memory_info().rss
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(0.05):
            self.own = max(self.own, self.me.memory_info().rss)
            try:
                for c in self.me.children(recursive=True):
                    self.peak = max(self.peak, c.memory_info().rss)
            except Exception:  # a child exited while we looked
                pass

    def close(self) -> float:
        self.stop.set()
        self.thread.join()
        return self.peak / 2**20


def child_main(args) -> None:
    # imports (and numba's cache loads) outside the measured time and CPU, each side its own
    if args.child_kind == "ours":
        import rasterio  # noqa: F401

        import gis.io.outputs  # noqa: F401  (gis.io pulls in geopandas: 0.5 s)
        import gis.io.raster  # noqa: F401
        from tiles.terrain.build import warm_up

        warm_up()
    else:
        import pydelatin  # noqa: F401
        import quantized_mesh_encoder  # noqa: F401
        import rasterio  # noqa: F401
    # ru_maxrss survives exec (it would report the parent's peak): sample the RSS instead
    peak = WorkerPeak()
    baseline = peak.own / 2**20
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    if args.child_kind == "ours":
        r = run_ours(args.dem, args.out, args.workers, args.max_error, args.max_zoom)
    else:
        r = run_peer(args.dem, args.out, args.max_error, args.max_zoom)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    r["cpu_seconds"] = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime  # this process
    r["maxrss_children_mb"] = peak.close()
    r["maxrss_mb"] = peak.own / 2**20
    r["baseline_mb"] = baseline
    print(json.dumps(r))


def bench_dem(name: str, dem: Path, args, work: Path) -> None:
    print(f"== {name}: {dem} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          "CPUs: wall-clock rates are shared with whatever else runs)", flush=True)
    rows = {}
    for workers in sorted({1, args.workers}):
        runs = []
        for _ in range(args.repeat):
            out = work / f"ours-{workers}"
            shutil.rmtree(out, ignore_errors=True)
            argv = ["--child-kind", "ours", "--dem", str(dem), "--out", str(out), "--workers",
                    str(workers), "--max-error", str(args.max_error)]
            if args.max_zoom is not None:
                argv += ["--max-zoom", str(args.max_zoom)]
            runs.append(_child(argv))
        sec = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu_seconds"] for r in runs)
        r = runs[0]
        km2 = footprint_km2(r["bounds"])
        rate = r["cells"] / sec
        rows[workers] = (rate, r, cpu)
        print(f"ngis  workers={workers}: {r['cells']:,} cells, levels 0-{r['max_zoom']}, "
              f"{r['tiles']} tiles, {sec:.2f} s median of {len(runs)} -> {rate / 1e6:.3f} M "
              f"cells/s; {r['bytes'] / 1e6:.1f} MB = {r['bytes'] / km2 / 1e3:.1f} kB/km2 "
              f"({km2:,.0f} km2); peak RSS {r['maxrss_mb']:,.0f} MB "
              f"({r['maxrss_mb'] - r['baseline_mb']:+,.0f} MB over the imports)"
              + (f"; CPU {cpu:.2f} s -> {r['cells'] / cpu / 1e6:.3f} M cells per CPU-s"
                 if workers == 1 else "")
              + (f" (largest child process {r['maxrss_children_mb']:,.0f} MB)"
                 if r["maxrss_children_mb"] else ""),
              flush=True)
    rate1, r1, cpu_med = rows[1]
    err = finest_error(work / "ours-1", dem)
    print(f"ngis  finest level {r1['max_zoom']}: max |mesh - (DEM + N)| = {err:.3f} m "
          f"(bound {args.max_error} m + height quantization)", flush=True)
    if args.no_peer:
        return
    out = work / "peer"
    shutil.rmtree(out, ignore_errors=True)
    p = _child(["--child-kind", "peer", "--dem", str(dem), "--out", str(out), "--max-error",
                str(args.max_error), "--max-zoom", str(r1["max_zoom"])])
    prate = p["cells"] / p["seconds"]
    pcpu = p["cells"] / p["cpu_seconds"]
    print(f"peer  (WarpedVRT + pydelatin + quantized-mesh-encoder per tile, 1 process): "
          f"{p['tiles']} tiles, {p['seconds']:.2f} s -> {prate / 1e6:.3f} M cells/s; "
          f"{p['bytes'] / 1e6:.1f} MB; peak RSS {p['maxrss_mb']:,.0f} MB "
          f"({p['maxrss_mb'] - p['baseline_mb']:+,.0f} MB over the imports); CPU "
          f"{p['cpu_seconds']:.2f} s -> {pcpu / 1e6:.3f} M cells per CPU-s", flush=True)
    cpu1 = r1["cells"] / cpu_med
    print(f"ratio ngis/peer per CPU-second: {cpu1 / pcpu:.2f}x; wall, 1 process: "
          f"{rate1 / prate:.2f}x"
          + (f"; ngis {args.workers} workers / peer: {rows[args.workers][0] / prate:.2f}x"
             if args.workers > 1 else ""), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=0, help="Also a generated SIZE x SIZE DEM.")
    ap.add_argument("--no-sw", action="store_true", help="Skip the SW Taiwan 40 m DEM.")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-error", type=float, default=0.5)
    ap.add_argument("--max-zoom", type=int, default=None)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/ngis-bench/terrain"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-kind", default="ours", help=argparse.SUPPRESS)
    ap.add_argument("--dem", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(args)
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    work = args.cache / "work"
    work.mkdir(exist_ok=True)
    if not args.no_sw:
        if SW_DEM.exists():
            bench_dem("SW Taiwan 40 m", SW_DEM.resolve(), args, work)
        else:
            print(f"SW Taiwan DEM absent ({SW_DEM}); skipped")
    if args.size:
        dem = synthetic_dem(args.cache / f"synthetic-{args.size}.tif", args.size)
        bench_dem(f"generated {args.size} x {args.size} at 10 m", dem, args, work)


if __name__ == "__main__":
    main()
