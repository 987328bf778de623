"""Benchmark: the 2D flood model (models.flood.simulate) in cell-steps per second, against
landlab's ``OverlandFlow`` (the same de Almeida et al. 2012 local-inertial scheme) in the same run.

Cases, on an ``--size`` x ``--size`` grid (2000 x 2000 = 4M cells by default), 10 m cells:

* ``wet``: a tilted plane (slopes 1e-3 and 5e-4) under 0.5 m of water, closed walls, Manning 0.03:
  every cell is active every step. Reported on one thread and on all numba threads, as
  cell-steps/s of the time loop (median of ``--repeat`` runs of ``--steps`` steps) and per
  CPU-second of the process over the loop (the machine is shared; a busy second core makes the
  threaded run slower than the single one, which is why ``simulate`` decides from the load).
* ``dry``: a plane falling east (1e-3) folded into a wide V valley (side slopes 3e-4), fed by
  500 m^3/s at its head for ``--dry-duration`` s: most land never gets wet. Reported per *active* cell (the wet-list spans
  the model processes) and per grid cell (what a model without a wet list would have to do).
* ``landlab``: ``OverlandFlow`` (``overland_flow()`` with its own adaptive step, numpy, one
  thread) on the wet case at ``--peer-size``, same water, slope and Manning n, alternating with
  our model (one thread) on the same grid, each run in a fresh process after two untimed
  warm-ups: both rates and their ratio, and our big-grid rate over landlab's. landlab runs with
  one BLAS thread: numpy's OpenBLAS threads spin, and on this shared machine they made it
  2-20x slower from run to run (1-22 M cell-steps/s); single-threaded it gives 9-11 M here
  under load and ~21 M on a quiet machine.

Memory: tracemalloc's peak over a whole ``simulate`` call (set-up, state, outputs) in bytes per
cell, and the process's peak resident set.

    .venv/bin/python -m bench.flood2d                        # 4M cells, 3 repeats, landlab 250k
    .venv/bin/python -m bench.flood2d --size 1000 --repeat 5 --steps 40
    .venv/bin/python -m bench.flood2d --threads 1            # one core

``swe_benchmark(cells)`` runs the ``wet`` case quickly for ``bench.hydro`` and returns a dict.
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
import tracemalloc

import numpy as np

G = 9.81
DX = 10.0
DEPTH = 0.5


def plane(n: int) -> np.ndarray:
    y, x = np.mgrid[0:n, 0:n]
    return (1e-3 * (n - x) + 5e-4 * y).astype(np.float32)


def valley(n: int) -> np.ndarray:
    """The plane with a V valley along the rows' middle, falling east (most land stays dry)."""
    y, x = np.mgrid[0:n, 0:n]
    return (1e-3 * (n - x) + 3e-4 * np.abs(y - n // 2)).astype(np.float32)


def _dt(depth: float) -> float:
    return 0.7 * DX / np.sqrt(G * depth)


def run_wet(n: int, steps: int, parallel: bool | None = None) -> dict:
    """One timed run of the wet case (``parallel``: force all threads or one; None = auto)."""
    from models.flood import simulate

    z = plane(n)
    h0 = np.full(z.shape, DEPTH)
    res = simulate(z, DX, steps * _dt(DEPTH + 0.01), h0=h0, boundary="closed", manning=0.03,
                   dt_max=_dt(DEPTH + 0.01), parallel=parallel, parallel_min_cells=0)
    st = res.stats
    cpu = st.loop_cpu_s
    return {"steps": st.steps, "loop_s": st.loop_s, "wall_s": st.wall_s, "cpu_s": cpu,
            "rate": st.grid_cell_steps_per_s,
            "cpu_rate": st.grid_cell_steps / cpu if cpu > 0 else 0.0,
            "volume_error": res.volume.error}


def run_dry(n: int, duration: float) -> dict:
    from affine import Affine

    from models.flood import Inflow, simulate

    z = valley(n)
    tr = Affine(DX, 0, 0, 0, -DX, n * DX)
    res = simulate(z, DX, duration, manning=0.035, boundary="open", transform=tr,
                   inflows=[Inflow(5.0 * DX, tr.f - (n // 2 + 0.5) * DX, 3 * DX, 500.0)])
    st = res.stats
    return {"steps": st.steps, "loop_s": st.loop_s, "active_rate": st.cell_steps_per_s,
            "grid_rate": st.grid_cell_steps_per_s,
            "active_fraction": st.cell_steps / max(st.grid_cell_steps, 1),
            "wet_fraction": float(np.mean(res.max_depth > 0.01)),
            "volume_error": res.volume.error}


def run_landlab(n: int, steps: int) -> dict | None:
    try:
        from landlab import RasterModelGrid
        from landlab.components import OverlandFlow
    except ImportError:
        return None
    grid = RasterModelGrid((n, n), xy_spacing=DX)
    grid.add_field("topographic__elevation", plane(n).astype(float).ravel(), at="node")
    grid.add_field("surface_water__depth", np.full(n * n, DEPTH), at="node")
    for edge in ("right", "top", "left", "bottom"):
        grid.status_at_node[grid.nodes_at_edge(edge)] = grid.BC_NODE_IS_CLOSED
    of = OverlandFlow(grid, mannings_n=0.03, alpha=0.7, theta=0.8, steep_slopes=True)
    of.overland_flow()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        of.overland_flow()
    el = time.perf_counter() - t0
    return {"steps": steps, "loop_s": el, "rate": n * n * steps / el}


def run_child(impl: str, n: int, steps: int) -> dict | None:
    """One same-size comparison run in a fresh process (after the 4M-cell runs, this process's
    allocator hands landlab's per-step temporaries fresh pages: 10x slower, not its own fault).
    Each child warms up (two untimed runs) before its timed one."""
    cmd = [sys.executable, "-m", "bench.flood2d", "--child", impl, "--size", str(n),
           "--steps", str(steps)]
    env = dict(os.environ)
    if impl == "landlab":  # one BLAS thread: its spinning threads collapse on a busy machine
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else impl)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(impl: str, n: int, steps: int) -> None:
    if impl == "landlab":
        if run_landlab(n, 2) is None:
            print("null")
            return
        run_landlab(n, 2)
        print(json.dumps(run_landlab(n, steps)))
    else:
        run_wet(n, 2, False)
        run_wet(n, 2, False)
        print(json.dumps(run_wet(n, steps, False)))


def memory_per_cell(n: int) -> float:
    """tracemalloc peak bytes per cell over a whole simulate() call (set-up, loop, outputs)."""
    from models.flood import simulate

    z = plane(n)
    h0 = np.full(z.shape, DEPTH)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    simulate(z, DX, 2 * _dt(DEPTH + 0.01), h0=h0, boundary="closed", manning=0.03)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak / z.size


def swe_benchmark(cells: int, steps: int = 10, repeat: int = 3) -> dict:
    """The wet case on a square grid of about ``cells`` cells (for bench.hydro): cell-steps/s
    on one thread and on all threads (medians), and per CPU-second."""
    n = max(16, int(round(np.sqrt(cells))))
    run_wet(64, 3)  # warm-up: numba cache load
    out = {"cells": n * n, "steps": steps}
    for label, par in (("one_thread", False), ("all_threads", True)):
        runs = [run_wet(n, steps, par) for _ in range(repeat)]
        out[f"cell_steps_per_s_{label}"] = statistics.median(r["rate"] for r in runs)
        out[f"cell_steps_per_cpu_s_{label}"] = statistics.median(r["cpu_rate"] for r in runs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=2000, help="Grid side in cells (2000 = 4M).")
    ap.add_argument("--steps", type=int, default=20, help="Steps per timed wet run.")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dry-duration", type=float, default=3600.0, help="Simulated s (dry case).")
    ap.add_argument("--peer-size", type=int, default=500, help="landlab grid side (0: skip).")
    ap.add_argument("--peer-steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="numba threads (default: all).")
    ap.add_argument("--child", choices=("landlab", "ours"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.size, args.steps)
        return
    import numba

    if args.threads:
        numba.set_num_threads(args.threads)
    n = args.size
    print(f"grid {n} x {n} = {n * n:,} cells, {numba.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f}; median of {args.repeat}", flush=True)
    run_wet(64, 3)  # numba cache load / compilation, untimed
    run_dry(64, 60.0)

    rates = {}
    for label, par in (("1 thread", False), (f"{numba.get_num_threads()} threads", True)):
        wet = [run_wet(n, args.steps, par) for _ in range(args.repeat)]
        rate = statistics.median(r["rate"] for r in wet)
        cpu_rate = statistics.median(r["cpu_rate"] for r in wet)
        rates[label] = rate
        print(f"wet, {label:9s}: {rate / 1e6:8.1f} M cell-steps/s (loop, wall clock); "
              f"{cpu_rate / 1e6:.1f} M cell-steps per CPU-second; {wet[0]['steps']} steps; "
              f"volume error {max(abs(r['volume_error']) for r in wet):.1e}; load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)
    rate = max(rates.values())

    dry = [run_dry(n, args.dry_duration) for _ in range(args.repeat)]
    d_active = statistics.median(r["active_rate"] for r in dry)
    d_grid = statistics.median(r["grid_rate"] for r in dry)
    print(f"dry: {d_active / 1e6:8.1f} M active cell-steps/s; {d_grid / 1e6:.1f} M grid "
          f"cell-steps/s equivalent; active {dry[0]['active_fraction']:.1%} of cell-steps, "
          f"wet {dry[0]['wet_fraction']:.1%} of cells at the end; {dry[0]['steps']} steps; "
          f"volume error {max(abs(r['volume_error']) for r in dry):.1e}", flush=True)

    if args.peer_size:
        m = args.peer_size
        peers, ours = [], []
        for _ in range(args.repeat):  # alternate, so load shifts hit both
            peer = run_child("landlab", m, args.peer_steps)
            if peer is None:
                break
            peers.append(peer["rate"])
            ours.append(run_child("ours", m, args.peer_steps)["rate"])
        if not peers:
            print("landlab: not installed")
        else:
            p_rate, o_rate = statistics.median(peers), statistics.median(ours)
            print(f"landlab OverlandFlow {m} x {m}: {p_rate / 1e6:8.2f} M cell-steps/s; ours on "
                  f"the same grid, one thread: {o_rate / 1e6:.1f} M; ratio {o_rate / p_rate:.1f}x"
                  f" (same size); ours at {n} x {n} / landlab at {m} x {m}: "
                  f"{rate / p_rate:.1f}x", flush=True)
    mem = memory_per_cell(n)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"memory: {mem:.1f} bytes/cell peak (tracemalloc, whole simulate call); process peak "
          f"RSS {rss / 1e6:.0f} MB = {rss / (n * n):.0f} bytes/cell")


if __name__ == "__main__":
    main()
