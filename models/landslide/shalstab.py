"""SHALSTAB: the critical steady-state rainfall for shallow landsliding (Montgomery & Dietrich
1994; with cohesion, Montgomery, Sullivan & Greenberg 1998).

Steady subsurface flow parallel to the slope saturates a fraction w = q a / (T sin(theta)) of
the soil (q rainfall or recharge, a specific catchment area, T transmissivity). Setting the
infinite-slope factor of safety to 1 and solving for w gives the critical wetness::

    w_c = C' / (rho_w g z cos^2(theta) tan(phi)) + (rho_s / rho_w) (1 - tan(theta) / tan(phi))

and the critical rainfall q_c = T sin(theta) w_c / a. Here the cohesion is SINMAP's
dimensionless C = C' / (h rho_s g) with h = z cos(theta) the soil thickness normal to the slope,
so the same calibration tables drive SINMAP and SHALSTAB, and the first term reads
(rho_s/rho_w) C / (cos(theta) tan(phi)). With C = 0 this is Montgomery & Dietrich's eq. (6).

* w_c >= 1: stable even when saturated ("unconditionally stable", no critical rain);
* w_c <= 0: unstable even when dry ("unconditionally unstable", q_c = 0).

Classes (Dietrich & Montgomery's SHALSTAB maps, mm/day): 1 unconditionally unstable,
2 < 50, 3 50-100, 4 100-200, 5 200-400, 6 > 400, 7 unconditionally stable.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from models.landslide.calibration import RHO_WATER, Region, region_tables

SHALSTAB_CLASSES = {1: "unconditionally unstable", 2: "< 50 mm/day", 3: "50-100 mm/day",
                    4: "100-200 mm/day", 5: "200-400 mm/day", 6: "> 400 mm/day",
                    7: "unconditionally stable"}
_BREAKS_MM_DAY = (50.0, 100.0, 200.0, 400.0)


def region_values(params: np.ndarray, bound: str) -> np.ndarray:
    """Per-region (T, C, tan(phi), rho_s) for a single scenario: ``"mid"`` (middle of each
    range), ``"low"`` (least favourable: T min, C min, phi min) or ``"high"``."""
    tmin, tmax, cmin, cmax, phimin, phimax, dens = params.T
    if bound == "mid":
        t, c, phi = (tmin + tmax) / 2, (cmin + cmax) / 2, (phimin + phimax) / 2
    elif bound == "low":
        t, c, phi = tmin, cmin, phimin
    elif bound == "high":
        t, c, phi = tmax, cmax, phimax
    else:
        raise ValueError(f"bound must be mid, low or high, not {bound!r}")
    return np.stack([t, c, np.tan(np.radians(phi)), dens], axis=1).astype(np.float64)


@njit(cache=True, parallel=True)
def _qcrit_kernel(slope, sca, region, vals, rho_w):
    rows, cols = slope.shape
    q = np.full((rows, cols), np.nan, dtype=np.float64)
    wc_out = np.full((rows, cols), np.nan, dtype=np.float64)
    for i in prange(rows):
        for j in range(cols):
            k = region[i, j]
            s = slope[i, j]
            a = sca[i, j]
            if k < 0 or not (s >= 0.0) or not (a > 0.0):
                continue
            t, c, tphi, dens = vals[k, 0], vals[k, 1], vals[k, 2], vals[k, 3]
            theta = math.atan(s)
            ss = math.sin(theta)
            cs = math.cos(theta)
            wc = (dens / rho_w) * (1.0 - (ss - c) / (cs * tphi))
            wc_out[i, j] = wc
            if wc <= 0.0:
                q[i, j] = 0.0
            elif wc < 1.0:
                q[i, j] = t * ss * wc / a
    return q, wc_out


def critical_rainfall(slope: np.ndarray, sca: np.ndarray, regions: list[Region], *,
                      region_raster: np.ndarray | None = None, bound: str = "mid",
                      rho_w: float = RHO_WATER) -> tuple[np.ndarray, np.ndarray]:
    """SHALSTAB critical steady rainfall.

    Args:
        slope: tan(slope); sca: specific catchment area (m); NaN = nodata.
        regions, region_raster: Calibration regions (T m^2/h, dimensionless C, phi, rho_s).
        bound: Which parameter values of each range to use (see :func:`region_values`).

    Returns:
        (q_crit in mm/day: 0 where unconditionally unstable, NaN where unconditionally stable
        or nodata; critical wetness w_c, dimensionless).
    """
    slope = np.asarray(slope, dtype=np.float64)
    sca = np.asarray(sca, dtype=np.float64)
    index, params = region_tables(regions, region_raster, slope.shape)
    q, wc = _qcrit_kernel(slope, sca, index, region_values(params, bound), float(rho_w))
    return (q * 24_000.0).astype(np.float32), wc.astype(np.float32)   # m/h -> mm/day


def shalstab_classes(q_mm_day: np.ndarray, wc: np.ndarray) -> np.ndarray:
    """Classes 1-7 (see the module docstring); 0 = nodata."""
    q = np.asarray(q_mm_day, dtype=np.float64)
    wc = np.asarray(wc, dtype=np.float64)
    cls = np.zeros(q.shape, dtype=np.uint8)
    cls[wc >= 1.0] = 7
    cls[wc <= 0.0] = 1
    mid = (wc > 0.0) & (wc < 1.0) & np.isfinite(q)
    cls[mid] = (2 + np.searchsorted(_BREAKS_MM_DAY, q[mid], side="right")).astype(np.uint8)
    return cls
