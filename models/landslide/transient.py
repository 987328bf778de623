"""Transient rainfall-triggered shallow landsliding: Iverson (2000) infiltration as in TRIGRS.

Each cell is an infinite slope of angle delta with a soil of vertical depth Z over an
impermeable base, initially with a water table at depth d (vertical) and a steady background
infiltration I_ZLT. Rain of intensity I_n over the n-th step infiltrates at
I_nZ = min(I_n, K_s) (the excess runs off and is not routed). The pressure head at depth Z is
the linear diffusion solution of Iverson (2000) in the multi-step form of TRIGRS (Baum et al.
2002, 2008, eq. 3)::

    psi(Z, t) = (Z - d) beta
              + 2 sum_n (I_nZ / K_s) [H(t - t_n) K(t - t_n) - H(t - t_n+1) K(t - t_n+1)]
    K(tau)    = sqrt(D1 tau) ierfc(Z / (2 sqrt(D1 tau))),   ierfc(x) = exp(-x^2)/sqrt(pi) - x erfc(x)
    beta      = cos^2(delta) - I_ZLT / K_s,   D1 = D0 / cos^2(delta)

and is capped at psi <= Z beta (a water table at the surface), as TRIGRS does. The factor of
safety is (Iverson 2000, eq. 28a; TRIGRS eq. 6)::

    FS(Z, t) = tan(phi)/tan(delta) + (c' - psi(Z, t) gamma_w tan(phi)) / (gamma_s Z sin(delta) cos(delta))

Computation: the hyetograph is put on a regular time grid of step dt (exact when its steps are
multiples of dt); the sum telescopes to psi_k = (Z - d) beta + (2/K_s) sum_n dI_n K((k - n) dt)
with dI_n the change of infiltration rate at t_n, so each cell needs K at only M lags and the
sum is a discrete convolution (M^2/2 multiply-adds, over the steps where the rate changes, in a
branch-free loop that vectorises), done in numba, cell-parallel.

Outputs: FS at the reporting times, the minimum FS over the run and its time, and the time of
first failure (the first grid time with FS < 1; 0 when the slope is unstable before the rain,
NaN when it never fails). FS is evaluated at the soil base Z, or at the minimum over
``n_depths`` equally spaced depths down to Z.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from numba import njit, prange

G = 9.81
GAMMA_W = 1000.0 * G


@dataclass
class TransientParams:
    """Soil and hydraulic parameters (scalars, uniform over the grid).

    Defaults are generic values for weathered sandstone/shale colluvium in SW Taiwan's
    foothills (TRIGRS-type studies use c' 2-10 kPa, phi 30-35 deg, Ks 1e-6-1e-4 m/s); they are
    assumptions, not a calibration.
    """

    cohesion_pa: float = 8000.0
    phi_deg: float = 35.0
    gamma_s: float = 21000.0          # soil unit weight, N/m^3
    ks: float = 1e-5                  # saturated hydraulic conductivity, m/s (36 mm/h)
    d0: float = 5e-5                  # saturated hydraulic diffusivity, m^2/s
    depth: float = 2.0                # soil depth Z, m (vertical)
    water_table: float | None = None  # initial water-table depth d, m (default: at the base)
    izlt: float = 0.0                 # steady background infiltration, m/s
    n_depths: int = 1                 # depths evaluated down to Z (1 = the base only)

    def as_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        for name in ("cohesion_pa", "izlt"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("gamma_s", "ks", "d0", "depth"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if not 0 < self.phi_deg < 90:
            raise ValueError("phi_deg must lie in (0, 90)")
        if self.izlt >= self.ks:
            raise ValueError("izlt must be below ks")
        d = self.depth if self.water_table is None else self.water_table
        if not 0 <= d <= self.depth:
            raise ValueError("water_table must lie between 0 and depth")
        if self.n_depths < 1:
            raise ValueError("n_depths must be >= 1")


@dataclass
class TransientResult:
    """Factor of safety over time on the grid.

    Attributes:
        times_s: The time grid (s from the rain's start), M + 1 values from 0.
        failure_time_s: First grid time with FS < 1 (NaN = never), float32.
        fs_min, fs_min_time_s: Minimum FS over the run and when it occurs, float32.
        fs_initial: FS before the rain, float32.
        report_times_s, fs_report: FS at the reporting times, shape (len(report), rows, cols).
        infiltration_m_s: Infiltration rate of each grid step (after the K_s cap).
    """

    times_s: np.ndarray
    failure_time_s: np.ndarray
    fs_min: np.ndarray
    fs_min_time_s: np.ndarray
    fs_initial: np.ndarray
    report_times_s: np.ndarray
    fs_report: np.ndarray
    infiltration_m_s: np.ndarray
    params: dict = field(default_factory=dict)


@njit(cache=True)
def ierfc(x):
    """Integral of the complementary error function, exp(-x^2)/sqrt(pi) - x erfc(x)."""
    return math.exp(-x * x) / math.sqrt(math.pi) - x * math.erfc(x)


@njit(cache=True, parallel=True)
def _transient_kernel(slope, rate_change, dt, c, tphi, gamma_s, ks, d0, zmax, d, izlt,
                      n_depths, report_idx):
    rows, cols = slope.shape
    m = rate_change.size          # changes at t_n = n dt, n = 0..m-1; grid times k = 0..m
    nz_at = np.flatnonzero(rate_change)
    nz_val = rate_change[nz_at]
    nnz = nz_at.size
    nrep = report_idx.size
    fail = np.full((rows, cols), np.nan, dtype=np.float32)
    fsmin = np.full((rows, cols), np.nan, dtype=np.float32)
    tmin = np.full((rows, cols), np.nan, dtype=np.float32)
    fs0 = np.full((rows, cols), np.nan, dtype=np.float32)
    rep = np.full((nrep, rows, cols), np.nan, dtype=np.float32)
    for i in prange(rows):
        kern = np.empty(m + 1)
        fsk = np.empty(m + 1)
        acc = np.empty(m + 1)
        for j in range(cols):
            s = slope[i, j]
            if not (s > 0.0):
                continue
            delta = math.atan(s)
            sd = math.sin(delta)
            cd = math.cos(delta)
            beta = cd * cd - izlt / ks
            d1 = d0 / (cd * cd)
            for k in range(m + 1):
                fsk[k] = math.inf
            for lev in range(n_depths):
                z = zmax * (lev + 1) / n_depths
                kern[0] = 0.0
                for lag in range(1, m + 1):
                    root = math.sqrt(d1 * lag * dt)
                    kern[lag] = root * ierfc(z / (2.0 * root))
                base = (z - d) * beta
                for k in range(m + 1):
                    acc[k] = 0.0
                for q in range(nnz):              # each change of rate, forward in time
                    n = nz_at[q]
                    v = nz_val[q]
                    for k in range(n + 1, m + 1):  # contiguous, no branch: vectorises
                        acc[k] += v * kern[k - n]
                for k in range(m + 1):
                    psi = base + 2.0 * acc[k] / ks
                    cap = z * beta
                    if psi > cap:
                        psi = cap
                    f = tphi / (sd / cd) + (c - psi * GAMMA_W * tphi) / (gamma_s * z * sd * cd)
                    if f < fsk[k]:
                        fsk[k] = f
            best = fsk[0]
            kbest = 0
            first = -1
            for k in range(m + 1):
                if fsk[k] < best:
                    best = fsk[k]
                    kbest = k
                if first < 0 and fsk[k] < 1.0:
                    first = k
            fs0[i, j] = fsk[0]
            fsmin[i, j] = best
            tmin[i, j] = kbest * dt
            if first >= 0:
                fail[i, j] = first * dt
            for r in range(nrep):
                rep[r, i, j] = fsk[report_idx[r]]
    return fail, fsmin, tmin, fs0, rep


def rain_on_grid(edges_s: np.ndarray, depth_mm: np.ndarray, dt: float, duration_s: float
                 ) -> np.ndarray:
    """Mean rain rate (m/s) over each step of a regular grid of ``dt`` covering
    ``duration_s`` (exact when the hyetograph's edges are multiples of ``dt``)."""
    edges_s = np.asarray(edges_s, dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(np.asarray(depth_mm, dtype=np.float64))]) / 1000.0
    n = int(math.ceil(duration_s / dt - 1e-9))
    grid = np.arange(n + 1) * dt
    c = np.interp(grid, edges_s, cum)
    return np.diff(c) / dt


def transient_fs(slope: np.ndarray, edges_s: np.ndarray, depth_mm: np.ndarray,
                 params: TransientParams | None = None, *, dt: float | None = None,
                 drain_s: float = 0.0, report_times_s: np.ndarray | None = None,
                 progress: Callable[[int], None] | None = None, chunk_rows: int = 64
                 ) -> TransientResult:
    """Factor of safety through a storm (see the module docstring).

    Args:
        slope: tan(slope) per cell (NaN = nodata; flat cells give NaN).
        edges_s, depth_mm: The hyetograph (step edges in s from its start, depth per step).
        params: Soil parameters (defaults: :class:`TransientParams`).
        dt: Time grid step (default: the hyetograph's shortest step).
        drain_s: Time to follow after the rain ends (s).
        report_times_s: Times at which to keep the whole FS grid (snapped to the time grid).
        progress: Called with the number of rows done after each chunk.
    """
    params = params or TransientParams()
    params.check()
    edges_s = np.asarray(edges_s, dtype=np.float64)
    depth_mm = np.asarray(depth_mm, dtype=np.float64)
    if edges_s.size != depth_mm.size + 1 or depth_mm.size == 0:
        raise ValueError("a hyetograph needs n + 1 edges for n depths (n >= 1)")
    if dt is None:
        dt = float(np.diff(edges_s).min())
    if not dt > 0:
        raise ValueError("dt must be > 0")
    duration = float(edges_s[-1] + drain_s)
    rain = np.zeros(int(math.ceil(duration / dt - 1e-9)))
    r = rain_on_grid(edges_s, depth_mm, dt, float(edges_s[-1]))
    rain[:r.size] = r
    infil = np.minimum(rain, params.ks)
    change = np.diff(np.concatenate([[0.0], infil]))
    times = np.arange(rain.size + 1) * dt
    if report_times_s is None:
        report_idx = np.zeros(0, dtype=np.int64)
    else:
        report_idx = np.clip(np.rint(np.asarray(report_times_s, float) / dt), 0,
                             rain.size).astype(np.int64)
    slope = np.asarray(slope, dtype=np.float64)
    rows, cols = slope.shape
    fail = np.full((rows, cols), np.nan, np.float32)
    fsmin = np.full((rows, cols), np.nan, np.float32)
    tmin = np.full((rows, cols), np.nan, np.float32)
    fs0 = np.full((rows, cols), np.nan, np.float32)
    rep = np.full((report_idx.size, rows, cols), np.nan, np.float32)
    d = params.depth if params.water_table is None else params.water_table
    tphi = math.tan(math.radians(params.phi_deg))
    for r0 in range(0, rows, chunk_rows):
        sl = slice(r0, min(rows, r0 + chunk_rows))
        out = _transient_kernel(np.ascontiguousarray(slope[sl]), change, float(dt),
                                float(params.cohesion_pa), tphi, float(params.gamma_s),
                                float(params.ks), float(params.d0), float(params.depth),
                                float(d), float(params.izlt), int(params.n_depths), report_idx)
        fail[sl], fsmin[sl], tmin[sl], fs0[sl], rep[:, sl] = out
        if progress is not None:
            progress(sl.stop - sl.start)
    return TransientResult(times, fail, fsmin, tmin, fs0, times[report_idx], rep, infil,
                           params.as_dict())


def pressure_head(z: float, t: float, edges_s, depth_mm, params: TransientParams,
                  slope_deg: float) -> float:
    """psi(Z, t) at one point by the step-by-step sum of TRIGRS eq. 3 (no time grid, no
    telescoping): a plain reference for the grid kernel, and for checking single sites."""
    cd = math.cos(math.radians(slope_deg))
    beta = cd * cd - params.izlt / params.ks
    d1 = params.d0 / (cd * cd)
    d = params.depth if params.water_table is None else params.water_table
    psi = (z - d) * beta

    def kk(tau):
        if tau <= 0:
            return 0.0
        root = math.sqrt(d1 * tau)
        return root * (math.exp(-(z / (2 * root)) ** 2) / math.sqrt(math.pi)
                       - z / (2 * root) * math.erfc(z / (2 * root)))

    for n in range(len(depth_mm)):
        i_nz = min(depth_mm[n] / 1000.0 / (edges_s[n + 1] - edges_s[n]), params.ks)
        psi += 2 * i_nz / params.ks * (kk(t - edges_s[n]) - kk(t - edges_s[n + 1]))
    return min(psi, z * beta)
