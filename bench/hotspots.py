"""Benchmark: Getis-Ord Gi* of crash counts, ours (numba) against esda in the same run.

Two cases (the targets of issue 8):

1. **Permutations on a road network**: a synthetic street grid cut into about ``--lixels`` lixels
   of 100 m, network distance band weights (``--bandwidth``, 300 m), Poisson crash counts with
   planted clusters; Gi* with ``--permutations`` (999) conditional permutations. Ours:
   :func:`models.hotspots.stats.getis_ord`; peer: ``esda.G_Local(y, w, star=True,
   transform="B", permutations=999, n_jobs=-1)`` on the same weights as a libpysal ``W``.
2. **Analytic Gi* on a grid**: ``--grid`` x ``--grid`` cells (500 x 500 = 250k) with rook and
   queen contiguity; ours vs ``esda.G_Local(..., permutations=0)``.

Both sides are warmed up first (numba compilation is not timed; esda's kernels take ~25 s to
compile). Prints the median of ``--repeat`` runs for ours and ``--peer-repeat`` for esda, the
ratio, the agreement (max |z| difference; for the permutation case the mean |p| difference,
which is Monte Carlo noise plus esda's float tie-breaking on integer counts), and memory of one
extra run (tracemalloc peak, which sees numpy's and numba's arrays, per lixel/cell; and the
resident-set growth sampled every 10 ms).

    .venv/bin/python -m bench.hotspots
    .venv/bin/python -m bench.hotspots --lixels 50000 --permutations 999 --repeat 3
    .venv/bin/python -m bench.hotspots --lixels 5000 --grid 100 --peer-repeat 1   # quick
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import warnings

import numpy as np


class PeakRSS:
    """Peak resident-set growth of this process while the block runs (10 ms sampling)."""

    def __init__(self, interval: float = 0.01):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.growth = self.peak - self.base


def street_grid(lixels: int, block: float = 100.0):
    """A square street grid whose 100 m lixels number about ``lixels``."""
    import geopandas as gpd
    import shapely

    k = max(2, int(round(np.sqrt(lixels / 2.0))))
    side = k * block
    lines = [shapely.LineString([(0, i * block), (side, i * block)]) for i in range(k + 1)]
    lines += [shapely.LineString([(i * block, 0), (i * block, side)]) for i in range(k + 1)]
    # streets are drawn whole: build_lixels splits them at the crossings (planar noding)
    return gpd.GeoDataFrame(geometry=lines, crs="EPSG:3826")


def crash_counts(net, rng, clusters: int = 40) -> np.ndarray:
    mid = net.lixels.geometry.interpolate(0.5, normalized=True)
    x, y = mid.x.to_numpy(), mid.y.to_numpy()
    lam = np.full(net.n, 0.3)
    for cx, cy in rng.uniform([x.min(), y.min()], [x.max(), y.max()], (clusters, 2)):
        lam += 4.0 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * 150.0 ** 2))
    return rng.poisson(lam).astype(float)


def timed(fn, repeat: int):
    """Median seconds of ``repeat`` runs, then one more run for memory: the peak of traced
    allocations (tracemalloc sees numpy's and numba's arrays) and the resident-set growth."""
    import tracemalloc

    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    with PeakRSS() as m:
        fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return statistics.median(times), (peak, m.growth), out


def mem(m, n: int, unit: str) -> str:
    traced, rss = m
    return (f"traced peak {traced / 2**20:.1f} MB ({traced / n:.0f} B/{unit}), "
            f"RSS growth {rss / 2**20:.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lixels", type=int, default=50_000, help="Lixels of the street grid.")
    ap.add_argument("--bandwidth", type=float, default=300.0, help="Network band, metres.")
    ap.add_argument("--permutations", type=int, default=999)
    ap.add_argument("--grid", type=int, default=500, help="Grid side for the analytic case.")
    ap.add_argument("--repeat", type=int, default=3, help="Runs of ours (median).")
    ap.add_argument("--peer-repeat", type=int, default=1, help="Runs of esda (median).")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip", choices=["permutations", "analytic"], default=None)
    args = ap.parse_args()

    import esda
    import numba

    from models.hotspots.lixels import build_lixels
    from models.hotspots.stats import getis_ord
    from models.hotspots.weights import grid_weights, network_weights, to_libpysal

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(args.seed)
    print(f"numba threads: {numba.get_num_threads()}; esda {esda.__version__}", flush=True)

    # warm-up: compile both sides on a small case
    wt = grid_weights(20, 20, "queen")
    yt = rng.poisson(1.0, 400).astype(float)
    getis_ord(yt, wt, permutations=9, seed=0)
    t = time.perf_counter()
    esda.G_Local(yt, to_libpysal(wt), star=True, transform="B", permutations=9, seed=0,
                 alternative="greater")
    print(f"warm-up (esda numba compile) {time.perf_counter() - t:.1f} s", flush=True)

    if args.skip != "permutations":
        t = time.perf_counter()
        net = build_lixels(street_grid(args.lixels), 100.0, planar=True)
        t_lix = time.perf_counter() - t
        t = time.perf_counter()
        w = network_weights(net, args.bandwidth)
        t_w = time.perf_counter() - t
        y = crash_counts(net, rng)
        W = to_libpysal(w)
        k = np.diff(w.indptr)
        print(f"\n[1] Gi* with {args.permutations} permutations: {net.n} lixels, "
              f"band {args.bandwidth:g} m, {k.mean():.1f} neighbours on average "
              f"(lixels {t_lix:.1f} s, network weights {t_w:.1f} s); {int(y.sum())} crashes",
              flush=True)
        ours_s, ours_m, g = timed(lambda: getis_ord(y, w, permutations=args.permutations,
                                                    seed=args.seed), args.repeat)
        print(f"  ours: {ours_s:.2f} s median of {args.repeat}; {mem(ours_m, net.n, 'lixel')}",
              flush=True)
        peer_s, peer_m, e = timed(lambda: esda.G_Local(
            y, W, star=True, transform="B", permutations=args.permutations, seed=args.seed,
            keep_simulations=False, alternative="greater"), args.peer_repeat)
        print(f"  esda: {peer_s:.2f} s median of {args.peer_repeat}; "
              f"{mem(peer_m, net.n, 'lixel')} (n_jobs=-1: its workers' memory not included)",
              flush=True)
        print(f"  ratio esda/ours: {peer_s / ours_s:.1f}x (target >= 10x)")
        print(f"  agreement: max |z - z_esda| = {np.abs(g.z - e.Zs).max():.2e}; "
              f"mean |p_greater - p_esda| = {np.abs(g.p_greater - e.p_sim).mean():.4f}",
              flush=True)

    if args.skip != "analytic":
        n = args.grid * args.grid
        y = rng.poisson(1.0, n).astype(float)
        for contiguity in ("rook", "queen"):
            w = grid_weights(args.grid, args.grid, contiguity)
            W = to_libpysal(w)
            print(f"\n[2] analytic Gi* on a {args.grid} x {args.grid} grid ({n} cells), "
                  f"{contiguity}", flush=True)
            ours_s, ours_m, g = timed(lambda: getis_ord(y, w), args.repeat)
            peer_s, peer_m, e = timed(lambda: esda.G_Local(
                y, W, star=True, transform="B", permutations=0), args.peer_repeat)
            print(f"  ours: {ours_s * 1000:.1f} ms median of {args.repeat}; "
                  f"{mem(ours_m, n, 'cell')}")
            print(f"  esda: {peer_s * 1000:.1f} ms median of {args.peer_repeat}; "
                  f"{mem(peer_m, n, 'cell')}")
            print(f"  ratio esda/ours: {peer_s / ours_s:.1f}x (target >= 50x); "
                  f"max |z - z_esda| = {np.abs(g.z - e.Zs).max():.2e}", flush=True)


if __name__ == "__main__":
    main()
