"""Benchmark: SINMAP stability index and a Monte Carlo probability of failure on a large DEM,
numba kernels (models.landslide) against plain numpy implementations of the same formulas in
the same run.

Prints, for each: the median wall time of ``--repeat`` runs, each in a fresh process after a
warm-up call on a small corner (numba compiles or loads its cache), cells per second, the ratio
numpy / numba, the peak resident memory the call adds (sampled every 10 ms, bytes per cell;
inputs excluded), and the agreement of the two results
(SI: max |difference|; Monte Carlo: mean |difference| of P(failure), which differ only by the
random streams).

    .venv/bin/python -m bench.landslide                      # 2000 x 2000 = 4M cells, 100 draws
    .venv/bin/python -m bench.landslide --size 1000 --repeat 3 --draws 100

The terrain is synthetic (seeded ridges and valleys at 10 m); its D-infinity slope and specific
catchment area come from the hydrology core when it is installed (timed once, no peer), else
from a Zevenbergen-Thorne slope and a synthetic catchment area.
"""

from __future__ import annotations

import argparse
import math
import statistics
import threading
import time

import numpy as np

# --- the peers: plain numpy ---------------------------------------------------------------------


def _ramp_np(k, y1, y2, t1, t2):
    """E[max(k - y t, 0)], y ~ U[y1, y2], t ~ U[t1, t2] (t1 < t2), vectorised."""
    with np.errstate(divide="ignore", invalid="ignore"):
        dt = t2 - t1
        flat = (y2 - y1) <= 1e-12 * np.maximum(1.0, np.abs(y2))
        ym = 0.5 * (y1 + y2)
        tau = np.clip(k / ym, t1, t2)
        one = np.where(k / ym <= t1, 0.0, (k * (tau - t1) - 0.5 * ym * (tau**2 - t1**2)) / dt)
        b2 = k / t2
        b1 = np.where(t1 > 0, k / t1, np.inf)
        lo, hi = y1, np.minimum(y2, b2)
        a = np.where(hi > lo, k * dt * (hi - lo) - 0.25 * (t2**2 - t1**2) * (hi**2 - lo**2), 0.0)
        lo, hi = np.maximum(y1, b2), np.minimum(y2, b1)
        b = np.where(hi > lo, 0.5 * k * k * np.log(hi / lo) - k * t1 * (hi - lo)
                     + 0.25 * t1**2 * (hi**2 - lo**2), 0.0)
        full = (a + b) / (dt * (y2 - y1))
        return np.where(k <= 0, 0.0, np.where(flat, one, full))


def _pfail_np(c1, c2, y1, y2, t1, t2):
    p = (_ramp_np(1.0 - c1, y1, y2, t1, t2) - _ramp_np(1.0 - c2, y1, y2, t1, t2)) / (c2 - c1)
    return np.clip(p, 0.0, 1.0)


def sinmap_numpy(slope, sca, p, rmin, rmax, rho_w=1000.0):
    """SINMAP SI and saturation, whole-array numpy, one region with C and phi ranges."""
    tmin, tmax, c1, c2, phimin, phimax, dens = p
    r = rho_w / dens
    t1, t2 = math.tan(math.radians(phimin)), math.tan(math.radians(phimax))
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.arctan(slope)
        ss, cs = np.sin(theta), np.cos(theta)
        x1, x2 = sca * rmin / tmax, sca * rmax / tmin
        w2r, w1r = x2 / ss, x1 / ss
        sat = np.where(w1r > 1, 3.0, np.where(w2r > 1, 2.0, w2r))
        w2, w1 = np.minimum(w2r, 1.0), np.minimum(w1r, 1.0)
        fs_best = (c2 + cs * (1 - w1 * r) * t2) / ss
        fs_worst = (c1 + cs * (1 - w2 * r) * t1) / ss
        a1, a2 = c1 / ss, c2 / ss
        y_sat = cs * (1 - r) / ss
        y_dry = cs * (1 - w1 * r) / ss
        y_wet = cs * (1 - w2 * r) / ss
        p_sat = _pfail_np(a1, a2, y_sat, y_sat, t1, t2)
        p_part = _pfail_np(a1, a2, y_sat, y_dry, t1, t2)
        p_dry = _pfail_np(a1, a2, y_wet, y_dry, t1, t2)
        wet = (w2r - 1) / (w2r - w1r)
        pf = np.where(w1r >= 1, p_sat, np.where(w2r > 1, wet * p_sat + (1 - wet) * p_part,
                                                 p_dry))
        si = np.where(fs_best < 1, 0.0, np.where(fs_worst >= 1, np.minimum(fs_worst, 10.0),
                                                 1 - pf))
        si = np.where(slope == 0, 10.0, si)
        sat = np.where(slope == 0, 3.0, sat)
        bad = ~(slope >= 0) | ~(sca >= 0)
        si[bad] = np.nan
        sat[bad] = np.nan
    return si.astype(np.float32), sat.astype(np.float32)


def monte_carlo_numpy(slope, sca, p, rmin, rmax, n, seed, rho_w=1000.0):
    """P(FS < 1) with n whole-array draws from numpy's generator (same distributions)."""
    tmin, tmax, c1, c2, phimin, phimax, dens = p
    r = rho_w / dens
    t1, t2 = math.tan(math.radians(phimin)), math.tan(math.radians(phimax))
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.arctan(slope)
        ss, cs = np.sin(theta), np.cos(theta)
        x1, x2 = sca * rmin / tmax, sca * rmax / tmin
        fails = np.zeros(slope.shape, dtype=np.int32)
        for _ in range(n):
            c = rng.uniform(c1, c2, slope.shape)
            t = rng.uniform(t1, t2, slope.shape)
            w = np.minimum((x1 + (x2 - x1) * rng.random(slope.shape)) / ss, 1.0)
            fails += (c + cs * (1 - w * r) * t < ss)
        pof = (fails / n).astype(np.float32)
        pof[slope == 0] = 0.0
        pof[~(slope >= 0) | ~(sca >= 0)] = np.nan
    return pof


# --- measuring ----------------------------------------------------------------------------------

class PeakRSS:
    """Peak resident set above the level at start, sampled every ``interval`` s."""

    def __init__(self, interval: float = 0.01):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval

    def __enter__(self):
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def extra(self) -> int:
        return self.peak - self.base


def terrain(size: int, seed: int, cell: float = 10.0):
    """A synthetic mountain DEM (ridges, valleys, noise) and its slope and SCA."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] * cell
    z = np.zeros((size, size))
    for k in range(6):
        f = 2 * math.pi / (3000 / (k + 1))
        ph = rng.uniform(0, 2 * math.pi, 2)
        z += (400 / (k + 1)) * np.sin(f * x + ph[0]) * np.cos(0.8 * f * y + ph[1])
    z += 0.25 * x + rng.normal(0, 0.3, z.shape) + 1000
    z = z.astype(np.float32)
    from models.landslide.terrain import dinf_slope_sca, hydro_available, zevenbergen_thorne

    t = time.perf_counter()
    if hydro_available():
        slope, _, sca = dinf_slope_sca(z, cell)
        how = "D-infinity (models.hydro)"
    else:
        slope = zevenbergen_thorne(z, cell)["slope"]
        sca = (10 ** rng.uniform(1, 4, z.shape)).astype(np.float32)
        how = "Zevenbergen-Thorne slope, synthetic SCA"
    return z, slope.astype(np.float64), sca.astype(np.float64), how, time.perf_counter() - t


IMPLS = ("sinmap-numba", "sinmap-numpy", "mc-numba", "mc-numpy")
REGION = (2.0, 3.5, 0.0, 0.25, 30.0, 45.0, 2000.0)     # Tmin, Tmax, Cmin, Cmax, phi, density
RECHARGE = (0.0009, 0.00135)


def child(impl: str, data: str, draws: int, seed: int, out: str) -> None:
    """One measured call in a fresh process: wall time and peak extra resident memory."""
    import json

    from models.landslide.calibration import Region
    from models.landslide.fs import probability_of_failure
    from models.landslide.sinmap import stability_index

    arrays = np.load(data)
    slope, sca = arrays["slope"], arrays["sca"]
    region = Region(1, *REGION)
    calls = {
        "sinmap-numba": lambda s, a: stability_index(s, a, [region], recharge=RECHARGE)[0],
        "sinmap-numpy": lambda s, a: sinmap_numpy(s, a, REGION, *RECHARGE)[0],
        "mc-numba": lambda s, a: probability_of_failure(s, a, [region], recharge=RECHARGE,
                                                        n=draws, seed=seed),
        "mc-numpy": lambda s, a: monte_carlo_numpy(s, a, REGION, *RECHARGE, draws, seed),
    }
    fn = calls[impl]
    fn(slope[:40, :40], sca[:40, :40])            # warm-up: numba compiles or loads its cache
    with PeakRSS() as mem:
        t = time.perf_counter()
        result = fn(slope, sca)
        seconds = time.perf_counter() - t
    np.save(out, result)
    print(json.dumps({"seconds": seconds, "extra_rss": mem.extra}))


def run_child(impl, data, draws, seed, out) -> dict:
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "bench.landslide", "--child", impl, "--data",
                           data, "--draws", str(draws), "--seed", str(seed), "--out", out],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    import os
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2000, help="DEM side in cells (2000 = 4M).")
    ap.add_argument("--draws", type=int, default=100, help="Monte Carlo draws per cell.")
    ap.add_argument("--repeat", type=int, default=3, help="Timed runs per implementation.")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--child", choices=IMPLS, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.data, args.draws, args.seed, args.out)
        return

    z, slope, sca, how, t_terrain = terrain(args.size, args.seed)
    cells = z.size
    print(f"DEM {args.size} x {args.size} = {cells:,} cells; slope and SCA: {how} "
          f"({t_terrain:.1f} s, incl. compilation); each run in a fresh process, median of "
          f"{args.repeat}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-landslide-") as tmp:
        data = os.path.join(tmp, "terrain.npz")
        np.savez(data, slope=slope, sca=sca)
        res, outs = {}, {}
        for _ in range(args.repeat):                 # alternate, so load shifts hit both
            for impl in IMPLS:
                outs[impl] = os.path.join(tmp, f"{impl}.npy")
                res.setdefault(impl, []).append(run_child(impl, data, args.draws, args.seed,
                                                          outs[impl]))
        got = {impl: np.load(outs[impl]) for impl in IMPLS}
    med = {k: statistics.median(r["seconds"] for r in v) for k, v in res.items()}
    mem = {k: max(r["extra_rss"] for r in v) / cells for k, v in res.items()}
    si, si_np = got["sinmap-numba"], got["sinmap-numpy"]
    ok = np.isfinite(si) & np.isfinite(si_np)
    print(f"SINMAP  numba {med['sinmap-numba']:7.3f} s ({cells / med['sinmap-numba'] / 1e6:6.1f}"
          f" M cells/s, +{mem['sinmap-numba']:5.1f} B/cell) | numpy {med['sinmap-numpy']:7.3f}"
          f" s ({cells / med['sinmap-numpy'] / 1e6:6.1f} M cells/s, +{mem['sinmap-numpy']:5.1f}"
          f" B/cell) | numpy/numba {med['sinmap-numpy'] / med['sinmap-numba']:5.1f}x | max "
          f"|dSI| {np.abs(si[ok] - si_np[ok]).max():.1e}, same mask "
          f"{np.array_equal(np.isnan(si), np.isnan(si_np))}", flush=True)
    p, p_np = got["mc-numba"], got["mc-numpy"]
    ok = np.isfinite(p) & np.isfinite(p_np)
    d = cells * args.draws
    print(f"MC x{args.draws} numba {med['mc-numba']:7.3f} s ({d / med['mc-numba'] / 1e6:6.1f} M "
          f"draws/s, +{mem['mc-numba']:5.1f} B/cell) | numpy {med['mc-numpy']:7.3f} s "
          f"({d / med['mc-numpy'] / 1e6:6.1f} M draws/s, +{mem['mc-numpy']:5.1f} B/cell) | "
          f"numpy/numba {med['mc-numpy'] / med['mc-numba']:5.1f}x | mean |dP| "
          f"{np.abs(p[ok] - p_np[ok]).mean():.4f} (the random streams differ), mean P "
          f"{np.nanmean(p):.4f} vs {np.nanmean(p_np):.4f}, same mask "
          f"{np.array_equal(np.isnan(p), np.isnan(p_np))}", flush=True)


if __name__ == "__main__":
    main()
