"""Benchmark: buildings into 3D Tiles, end to end (store -> finished tileset), against the peer:
the same tiles (same tree, same LOD1 meshes) encoded through py3dtiles' own b3dm writer.

Prints, per configuration (LOD1/LOD2, compress none/meshopt, inline or dask workers): buildings/s
end to end (median of ``--repeat`` runs, each in a fresh process), bytes per building as written
and gzipped, and peak memory (resident set of the build process and of each dask worker, sampled
every 50 ms, plus the OS's maxrss); then the peer's encode rate and bytes, and the ratio.

    .venv/bin/python -m bench.tiles --buildings 100000 --repeat 3
    .venv/bin/python -m bench.tiles --buildings 1000000 --workers 2 --peer-buildings 100000

``--buildings N`` generates the national demo region with about N buildings (whole 4 km
districts, so the count is approximate; ``--scale`` picks the region side directly: 0.28 ~ 100k,
0.96 ~ 1.07M) and caches the sources and the ingested store under ``--cache``
(``/tmp/ngis-bench``), so later runs skip the generation (several minutes for 1M buildings).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np

CONFIGS = {"lod1": (1, "none"), "lod1-meshopt": (1, "meshopt"), "lod2": (2, "none"),
           "lod2-meshopt": (2, "meshopt")}


def scale_for(buildings: int) -> float:
    """The national-region scale giving about ``buildings`` buildings (~1,800 per district)."""
    side = max(1, round(float(np.sqrt(buildings / 1800.0))))
    return side / 25.0


def prepare(scale: float, cache: Path, seed: int = 5) -> tuple[Path, int]:
    """Generate and ingest the region once (buildings and DEM); returns (store, buildings)."""
    from gis.demo import generate_region
    from gis.etl.ingest import ingest, load_manifest

    d = cache / f"national-{scale:g}-seed{seed}"
    store = d / "basemap.gpkg"
    if not (d / "src" / "manifest.json").exists():
        print(f"generating the national region at scale {scale:g} into {d} ...", flush=True)
        generate_region(d / "src", seed=seed, size="national", scale=scale)
    if not store.exists():
        specs = [s for s in load_manifest(d / "src" / "manifest.json")
                 if s.layer in ("buildings", "dem")]
        tmp = d / "basemap.tmp.gpkg"
        tmp.unlink(missing_ok=True)
        ingest(str(tmp), specs)
        os.replace(tmp, store)
    manifest = json.loads((d / "src" / "manifest.json").read_text())
    n = next(s["count"] for s in manifest["sources"] if s["layer"] == "buildings")
    return store, n


# -- one measured run, in its own process (so peak memory is that run's) ------------------------

class PeakMemory:
    """Samples the resident set of this process and of its children (dask workers) every
    ``interval`` seconds."""

    def __init__(self, interval: float = 0.05):
        import psutil

        self.me = psutil.Process()
        self.interval, self.driver, self.worker, self.total = interval, 0, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                own = self.me.memory_info().rss
                kids = []
                for c in self.me.children(recursive=True):
                    try:
                        kids.append(c.memory_info().rss)
                    except psutil.Error:
                        pass
            except psutil.Error:
                continue
            self.driver = max(self.driver, own)
            self.worker = max([self.worker, *kids])
            self.total = max(self.total, own + sum(kids))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_one(args) -> None:
    """Build the store's buildings once and print what it took as one JSON line."""
    from gis.etl.tiles_job import StoreLayer, TilesOptions, build_tiles
    from gis.store import open_store

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    store = open_store(args.store)
    options = TilesOptions(lod=args.lod, compress=args.compress, workers=args.workers)
    cpu = time.process_time()
    with PeakMemory() as peak:
        t = time.perf_counter()
        summary = build_tiles(StoreLayer(args.store, "buildings"), "building", out,
                              dem=lambda: store.read_raster("dem"), options=options)
        seconds = time.perf_counter() - t
    mb = 2**20
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "cpu_driver": me.ru_utime + me.ru_stime, "cpu_workers": kids.ru_utime + kids.ru_stime,
        "load": os.getloadavg()[0],
        "seconds": seconds, "features": summary.features, "tiles": summary.tiles,
        "contents": summary.contents, "largest_tile": summary.largest_tile,
        "driver_cpu": time.process_time() - cpu,
        "peak_driver_mb": peak.driver / mb, "peak_worker_mb": peak.worker / mb,
        "peak_total_mb": peak.total / mb,
        "maxrss_driver_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "maxrss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def run_peer(args) -> None:
    """py3dtiles' b3dm writer on the same tiles and LOD1 meshes as ours (tree of the whole layer,
    tiles in tileset order until ``--limit`` buildings): mesh and encode seconds, bytes."""
    from py3dtiles.tileset.content import B3dm
    from py3dtiles.tileset.content.batch_table import BatchTable

    from gis.etl.tiles_job import FeatureContent, StoreLayer, StoreSource, TileInput, TileJob, \
        build_mesh, plan_layer, tile_features
    from tiles.tiling import build_tileset

    source = StoreSource(StoreLayer(args.store, "buildings"))
    with PeakMemory() as peak:
        plan = plan_layer(source, "building", None, [])
        b = plan.bounds
        tree = build_tileset(np.c_[(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], b,
                             "EPSG:3826", max_features_per_tile=1000)
        job = TileJob("building", "building", 1, "glb", "none", "buildings", "EPSG:3826", False,
                      b"")
        content = FeatureContent(plan, source, job, {}, set())
        read_s = mesh_s = enc_s = 0.0
        size = done = 0
        for tile in tree.root.walk():
            if not tile.has_content:
                continue
            if done >= args.limit:
                break
            t = time.perf_counter()
            spec = content.spec(tile.features)
            geoms, attrs = tile_features(source.rows(spec.fids), spec, "building")
            read_s += time.perf_counter() - t
            t = time.perf_counter()
            mesh, _ = build_mesh(TileInput(geoms, attrs, "building", 1, spec.heights))
            mesh_s += time.perf_counter() - t
            t = time.perf_counter()
            pos = (mesh.positions - mesh.positions.mean(axis=0)).astype(np.float32)
            bt = BatchTable()
            for c in attrs.columns:
                bt.add_property_as_json(c, [None if v != v else v for v in attrs[c].tolist()])
            b3dm = B3dm.from_numpy_arrays(pos, mesh.indices.astype(np.uint32), batch_table=bt,
                                          batchids=mesh.feature_ids.astype(np.uint32))
            size += len(b3dm.to_array().tobytes())
            enc_s += time.perf_counter() - t
            done += len(tile.features)
    print(json.dumps({"buildings": done, "read_s": read_s, "mesh_s": mesh_s, "enc_s": enc_s,
                      "bytes": size, "peak_mb": peak.driver / 2**20}))


def _child(*argv: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.tiles", *argv], capture_output=True,
                          text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError(f"bench child {argv} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def sizes(out: Path) -> tuple[int, int]:
    """Bytes of the contents as written, and gzipped (level 6, as a server would send them)."""
    raw = packed = 0
    for f in (out / "content").rglob("*.*"):
        data = f.read_bytes()
        raw += len(data)
        packed += len(zlib.compress(data, 6)) + 18  # gzip header + trailer
    return raw, packed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--buildings", type=int, default=None,
                    help="About how many buildings to generate (default: ~100,000).")
    ap.add_argument("--scale", type=float, default=None, help="National region scale instead.")
    ap.add_argument("--workers", type=int, default=2, help="Dask workers of the parallel run "
                    "(1: no parallel run).")
    ap.add_argument("--repeat", type=int, default=1, help="Runs per configuration (median).")
    ap.add_argument("--configs", default="lod1,lod1-meshopt,lod2,lod2-meshopt",
                    help=f"Which of {', '.join(CONFIGS)} to run (LOD1 also with workers).")
    ap.add_argument("--peer-buildings", type=int, default=150_000,
                    help="Run the py3dtiles peer on at most this many buildings (its tiles in "
                    "tileset order); 0 skips it.")
    ap.add_argument("--cache", default="/tmp/ngis-bench", help="Where generated data is kept.")
    # one measured run in a child process (how main() runs each configuration)
    ap.add_argument("--child", choices=["run", "peer"], help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--lod", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--compress", default="none", help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "run":
        return run_one(args)
    if args.child == "peer":
        return run_peer(args)

    scale = args.scale if args.scale is not None else scale_for(args.buildings or 100_000)
    cache = Path(args.cache)
    store, n = prepare(scale, cache)
    print(f"buildings: {n:,} (national region at scale {scale:g}, {store}); {os.cpu_count()} "
          f"CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    runs = []
    for name in args.configs.split(","):
        lod, compress = CONFIGS[name]
        runs.append((lod, compress, 1))
        if name == "lod1" and args.workers > 1:
            runs.append((lod, compress, args.workers))
    work = cache / "out"
    results = {}
    for lod, compress, workers in runs:
        out = work / f"lod{lod}-{compress}-w{workers}"
        got = [_child("--child", "run", "--store", str(store), "--out", str(out), "--lod",
                      str(lod), "--compress", compress, "--workers", str(workers))
               for _ in range(args.repeat)]
        raw, packed = sizes(out)
        shutil.rmtree(out, ignore_errors=True)
        secs = statistics.median(r["seconds"] for r in got)
        r = got[-1]
        results[lod, compress, workers] = secs
        where = "inline" if workers == 1 else f"{workers} dask workers"
        mem = (f"peak RSS {max(g['peak_driver_mb'] for g in got):,.0f} MB"
               if workers == 1 else
               f"peak RSS {max(g['peak_driver_mb'] for g in got):,.0f} MB driver + "
               f"{max(g['peak_worker_mb'] for g in got):,.0f} MB per worker "
               f"({max(g['peak_total_mb'] for g in got):,.0f} MB together)")
        cpu = statistics.median(g["cpu_driver"] + g["cpu_workers"] for g in got)
        print(f"ngis LOD{lod} compress={compress} {where}: {secs:.1f} s end to end (median of "
              f"{len(got)}: {', '.join(f'{g['seconds']:.1f}' for g in got)}; load average "
              f"{', '.join(f'{g['load']:.1f}' for g in got)} after), "
              f"{r['features'] / secs:,.0f} buildings/s, {r['tiles']} tiles, "
              f"{raw / r['features']:.0f} B/building as written, {packed / r['features']:.0f} B "
              f"gzipped; CPU {cpu:.1f} s in all (process and workers, with imports); {mem}; "
              f"maxrss {r['maxrss_driver_mb']:,.0f} MB (process), "
              f"{r['maxrss_children_mb']:,.0f} MB (largest child)", flush=True)
    if args.peer_buildings:
        p = _child("--child", "peer", "--store", str(store), "--limit", str(args.peer_buildings))
        subset = "" if p["buildings"] >= n else (
            f" on its first {p['buildings']:,} buildings (tiles in tileset order; not all "
            f"{n:,}: py3dtiles' writer is run on a subset to keep the benchmark short)")
        peer_rate = p["buildings"] / (p["mesh_s"] + p["enc_s"])
        print(f"py3dtiles b3dm (peer){subset}: our meshes {p['mesh_s']:.1f} s + py3dtiles "
              f"encode {p['enc_s']:.1f} s (one process; rows read in {p['read_s']:.1f} s, not "
              f"counted) = {peer_rate:,.0f} buildings/s, {p['bytes'] / p['buildings']:.0f} "
              f"B/building raw", flush=True)
        ours = n / results[1, "none", 1]
        print(f"ratio: ngis LOD1 inline end to end ({ours:,.0f} buildings/s, store to tileset) "
              f"vs our meshes + py3dtiles b3dm encoding only ({peer_rate:,.0f} buildings/s, no "
              f"store read, no tileset): {ours / peer_rate:.2f}x")
        if (1, "none", args.workers) in results and args.workers > 1:
            par = n / results[1, "none", args.workers]
            print(f"ratio with {args.workers} workers: {par / peer_rate:.2f}x")


if __name__ == "__main__":
    main()
