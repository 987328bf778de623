"""Infinite-slope factor of safety for a rainfall scenario, and probability of failure by Monte
Carlo over the calibration ranges.

The factor of safety is SINMAP's dimensionless infinite-slope form (Pack et al. 1998; Hammond
et al. 1992)::

    FS = (C + cos(theta) (1 - w r) tan(phi)) / sin(theta),   w = min(R a / (T sin(theta)), 1)

with the steady recharge R (m/h) of the rainfall scenario, specific catchment area a (m),
transmissivity T (m^2/h), dimensionless cohesion C, friction angle phi and r = rho_w / rho_s.

Monte Carlo draws, independently for each cell and draw, C ~ U[Cmin, Cmax],
tan(phi) ~ U[tan(phimin), tan(phimax)] and the wetness ratio x = R/T ~ U[Rmin/Tmax, Rmax/Tmin]
(SINMAP's distributions, so 1 - P(failure) estimates SINMAP's SI where 0 < SI < 1), and counts
the draws with FS < 1. The random numbers come from a counter-based generator (SplitMix64 seeded
with the seed and the cell's index), so the result depends only on the seed, not on the number
of threads or the order of cells: the same seed gives the same raster.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from models.landslide.calibration import RHO_WATER, Region, region_tables
from models.landslide.shalstab import region_values

FS_CLASSES = {1: "FS >= 1.5", 2: "1.25 <= FS < 1.5", 3: "1.0 <= FS < 1.25", 4: "FS < 1"}
POF_CLASSES = {1: "P < 0.05", 2: "0.05 <= P < 0.25", 3: "0.25 <= P < 0.5", 4: "P >= 0.5"}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


@njit(cache=True)
def _mix(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True)
def _uniform(state):
    """Next SplitMix64 number in [0, 1) and the new state."""
    state = state + _GOLDEN
    return (_mix(state) >> _S11) * _INV53, state


@njit(cache=True)
def _fs_kernel(slope, sca, region, vals, recharge, rho_w):
    rows, cols = slope.shape
    fs = np.full((rows, cols), np.nan, dtype=np.float32)
    for i in range(rows):
        for j in range(cols):
            k = region[i, j]
            s = slope[i, j]
            a = sca[i, j]
            if k < 0 or not (s > 0.0) or not (a >= 0.0):
                continue
            theta = math.atan(s)
            ss = math.sin(theta)
            cs = math.cos(theta)
            w = min(recharge * a / (vals[k, 0] * ss), 1.0)
            r = rho_w / vals[k, 3]
            fs[i, j] = (vals[k, 1] + cs * (1.0 - w * r) * vals[k, 2]) / ss
    return fs


def factor_of_safety(slope: np.ndarray, sca: np.ndarray, regions: list[Region], *,
                     recharge: float, region_raster: np.ndarray | None = None,
                     bound: str = "mid", rho_w: float = RHO_WATER) -> np.ndarray:
    """Deterministic FS for a steady recharge ``recharge`` (m/h) with each region's ``bound``
    parameter values (``mid``, ``low`` = least favourable, ``high``). Flat cells and nodata
    give NaN."""
    slope = np.asarray(slope, dtype=np.float64)
    sca = np.asarray(sca, dtype=np.float64)
    index, params = region_tables(regions, region_raster, slope.shape)
    return _fs_kernel(slope, sca, index, region_values(params, bound), float(recharge),
                      float(rho_w))


@njit(cache=True, parallel=True)
def _mc_kernel(slope, sca, region, params, rmin, rmax, rho_w, n, seed, row0, col0, width):
    rows, cols = slope.shape
    pof = np.full((rows, cols), np.nan, dtype=np.float32)
    seed_u = _mix(np.uint64(seed) * _GOLDEN + _GOLDEN)
    for i in prange(rows):
        for j in range(cols):
            k = region[i, j]
            s = slope[i, j]
            a = sca[i, j]
            if k < 0 or not (s >= 0.0) or not (a >= 0.0):
                continue
            if s == 0.0:
                pof[i, j] = 0.0
                continue
            p = params[k]
            theta = math.atan(s)
            ss = math.sin(theta)
            cs = math.cos(theta)
            x1 = a * rmin / p[1]
            x2 = a * rmax / p[0]
            t1 = math.tan(p[4] * math.pi / 180.0)
            t2 = math.tan(p[5] * math.pi / 180.0)
            r = rho_w / p[6]
            state = _mix(seed_u ^ np.uint64((i + row0) * width + (j + col0)))
            fails = 0
            for _ in range(n):
                u, state = _uniform(state)
                c = p[2] + (p[3] - p[2]) * u
                u, state = _uniform(state)
                t = t1 + (t2 - t1) * u
                u, state = _uniform(state)
                w = min((x1 + (x2 - x1) * u) / ss, 1.0)
                if c + cs * (1.0 - w * r) * t < ss:
                    fails += 1
            pof[i, j] = fails / n
    return pof


def probability_of_failure(slope: np.ndarray, sca: np.ndarray, regions: list[Region], *,
                           recharge: tuple[float, float], region_raster: np.ndarray | None = None,
                           n: int = 1000, seed: int = 0, rho_w: float = RHO_WATER,
                           offset: tuple[int, int] = (0, 0), width: int | None = None
                           ) -> np.ndarray:
    """Monte Carlo probability of failure P(FS < 1) per cell (float32 in [0, 1], NaN = nodata).

    Args:
        slope, sca: tan(slope) and specific catchment area (m).
        regions, region_raster: Calibration regions.
        recharge: (R min, R max), m/h.
        n: Draws per cell.
        seed: Any non-negative integer; the same seed gives the same result.
        offset, width: Where these arrays lie in a larger grid of ``width`` columns (a chunk):
            each cell's random stream is seeded by its index in that grid, so a grid computed
            chunk by chunk equals the whole grid computed at once.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    slope = np.asarray(slope, dtype=np.float64)
    sca = np.asarray(sca, dtype=np.float64)
    index, params = region_tables(regions, region_raster, slope.shape)
    width = slope.shape[1] if width is None else int(width)
    return _mc_kernel(slope, sca, index, params, float(recharge[0]), float(recharge[1]),
                      float(rho_w), int(n), int(seed), int(offset[0]), int(offset[1]), width)


def fs_classes(fs: np.ndarray) -> np.ndarray:
    """1 FS >= 1.5, 2 [1.25, 1.5), 3 [1, 1.25), 4 FS < 1; 0 = nodata."""
    fs = np.asarray(fs, dtype=np.float64)
    cls = np.zeros(fs.shape, dtype=np.uint8)
    ok = np.isfinite(fs)
    cls[ok] = (4 - np.searchsorted([1.0, 1.25, 1.5], fs[ok], side="right")).astype(np.uint8)
    return cls


def pof_classes(pof: np.ndarray) -> np.ndarray:
    """1 P < 0.05, 2 [0.05, 0.25), 3 [0.25, 0.5), 4 P >= 0.5; 0 = nodata."""
    p = np.asarray(pof, dtype=np.float64)
    cls = np.zeros(p.shape, dtype=np.uint8)
    ok = np.isfinite(p)
    cls[ok] = (1 + np.searchsorted([0.05, 0.25, 0.5], p[ok], side="right")).astype(np.uint8)
    return cls
