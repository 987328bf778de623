"""SINMAP: the stability index of Pack, Tarboton & Goodwin (1998).

The infinite-slope factor of safety in SINMAP's dimensionless form is::

    FS = (C + cos(theta) * (1 - w * r) * tan(phi)) / sin(theta)

with theta the slope angle (tan(theta) is the D-infinity slope), C the dimensionless cohesion
(root + soil cohesion over h rho_s g), phi the friction angle, r = rho_w / rho_s and the relative
wetness of the steady-state TOPMODEL-like hydrology w = min(R a / (T sin(theta)), 1) with ``a``
the specific catchment area (m), R the recharge (m/h) and T the transmissivity (m^2/h).

C, tan(phi) and x = R/T are uniform random variables between their bounds (a calibration region
gives C, phi and T bounds; the recharge range gives R). The stability index is

* SI = FS at the least favourable values (C min, phi min, wettest x), if that is >= 1;
* SI = 0 if even the most favourable values (C max, phi max, driest x) give FS < 1;
* otherwise SI = Prob(FS > 1), computed in closed form below.

SI is capped at 10; a flat cell gets SI = 10 and saturation 3 (TauDEM's convention).

The probability is exact: with c = C/sin(theta) ~ U[c1, c2], y = cos(theta)(1 - w r)/sin(theta)
(uniform when w < 1, since it is linear in x) and t = tan(phi) ~ U[t1, t2],
``Prob(FS < 1) = Prob(c + y t < 1) = (Q(1 - c1) - Q(1 - c2)) / (c2 - c1)`` where
``Q(k) = E[max(k - y t, 0)]``, a double integral of a piecewise function of y t that has an
elementary antiderivative on each piece (y <= k/t2, k/t2 < y < k/t1, y >= k/t1); derived here,
not copied from TauDEM. Where the wettest x saturates the soil and the driest does not, the
saturated fraction of the x range has fixed w = 1 and the rest uniform y.

Saturation (TauDEM's ``sat``): the wettest w = R_max a / (T_min sin(theta)) where it is below 1,
2 where the cell saturates for part of the parameter range ("threshold saturation"), 3 where it
saturates for all of it ("saturation zone").

Stability classes (SINMAP manual): 1 stable SI > 1.5, 2 moderately stable 1.25-1.5,
3 quasi-stable 1.0-1.25, 4 lower threshold 0.5-1.0, 5 upper threshold 0-0.5, 6 defended SI = 0.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from models.landslide.calibration import RHO_WATER, Region, region_tables

SI_CLASSES = {1: "stable", 2: "moderately stable", 3: "quasi-stable", 4: "lower threshold",
              5: "upper threshold", 6: "defended"}
SI_CAP = 10.0


# --- closed-form expectations over y ~ U[y1, y2], t ~ U[t1, t2] (both >= 0) ---------------

@njit(cache=True)
def _ramp_t(k, y, t1, t2):
    """E_t[max(k - y t, 0)] for t ~ U[t1, t2] (or t = t1 when t1 == t2)."""
    if t2 <= t1:
        v = k - y * t1
        return v if v > 0.0 else 0.0
    if y <= 0.0:
        return k if k > 0.0 else 0.0
    tau = k / y
    if tau <= t1:
        return 0.0
    if tau > t2:
        tau = t2
    return (k * (tau - t1) - 0.5 * y * (tau * tau - t1 * t1)) / (t2 - t1)


@njit(cache=True)
def _step_t(k, y, t1, t2):
    """Prob_t(y t < k) for t ~ U[t1, t2] (or t = t1)."""
    if t2 <= t1:
        return 1.0 if y * t1 < k else 0.0
    if y <= 0.0:
        return 1.0 if k > 0.0 else 0.0
    tau = k / y
    if tau <= t1:
        return 0.0
    if tau >= t2:
        return 1.0
    return (tau - t1) / (t2 - t1)


@njit(cache=True)
def _ramp(k, y1, y2, t1, t2):
    """Q(k) = E[max(k - y t, 0)] over y ~ U[y1, y2] and t ~ U[t1, t2]."""
    if k <= 0.0:
        return 0.0
    if y2 - y1 <= 1e-12 * max(1.0, abs(y2)):
        return _ramp_t(k, 0.5 * (y1 + y2), t1, t2)
    total = 0.0
    if t2 <= t1:
        # t fixed: integrand k - y t1 on y < k/t1
        hi = y2 if t1 <= 0.0 else min(y2, k / t1)
        if hi > y1:
            total = k * (hi - y1) - 0.5 * t1 * (hi * hi - y1 * y1)
        return total / (y2 - y1)
    dt = t2 - t1
    b2 = k / t2                                  # below: tau = t2 (whole t range counts)
    b1 = k / t1 if t1 > 0.0 else math.inf        # above: nothing counts
    lo, hi = y1, min(y2, b2)
    if hi > lo:   # piece A: k (t2 - t1) - y (t2^2 - t1^2) / 2
        total += k * dt * (hi - lo) - 0.25 * (t2 * t2 - t1 * t1) * (hi * hi - lo * lo)
    lo, hi = max(y1, b2), min(y2, b1)
    if hi > lo:   # piece B: k^2 / (2 y) - k t1 + y t1^2 / 2
        total += (0.5 * k * k * math.log(hi / lo) - k * t1 * (hi - lo)
                  + 0.25 * t1 * t1 * (hi * hi - lo * lo))
    return total / (dt * (y2 - y1))


@njit(cache=True)
def _step(k, y1, y2, t1, t2):
    """Prob(y t < k) over y ~ U[y1, y2] and t ~ U[t1, t2] (dQ/dk)."""
    if k <= 0.0:
        return 0.0
    if y2 - y1 <= 1e-12 * max(1.0, abs(y2)):
        return _step_t(k, 0.5 * (y1 + y2), t1, t2)
    if t2 <= t1:
        if t1 <= 0.0:
            return 1.0
        hi = min(y2, k / t1)
        return max(hi - y1, 0.0) / (y2 - y1)
    dt = t2 - t1
    b2 = k / t2
    b1 = k / t1 if t1 > 0.0 else math.inf
    total = 0.0
    lo, hi = y1, min(y2, b2)
    if hi > lo:
        total += hi - lo
    lo, hi = max(y1, b2), min(y2, b1)
    if hi > lo:   # (k / y - t1) / dt
        total += (k * math.log(hi / lo) - t1 * (hi - lo)) / dt
    return total / (y2 - y1)


@njit(cache=True)
def _p_fail(c1, c2, y1, y2, t1, t2):
    """Prob(c + y t < 1) with c ~ U[c1, c2], y ~ U[y1, y2], t ~ U[t1, t2]."""
    if c2 - c1 <= 1e-9:
        return _step(1.0 - 0.5 * (c1 + c2), y1, y2, t1, t2)
    p = (_ramp(1.0 - c1, y1, y2, t1, t2) - _ramp(1.0 - c2, y1, y2, t1, t2)) / (c2 - c1)
    return min(max(p, 0.0), 1.0)


@njit(cache=True)
def fs_dimensionless(sin_t, cos_t, w, c, tan_phi, r):
    """SINMAP's FS = (C + cos(theta) (1 - w r) tan(phi)) / sin(theta)."""
    return (c + cos_t * (1.0 - w * r) * tan_phi) / sin_t


@njit(cache=True)
def si_cell(s, x1, x2, c1, c2, t1, t2, r):
    """(SI, saturation) of one cell: ``s`` = tan(slope), ``x1``/``x2`` = driest/wettest
    R a / T (m), c bounds, tan(phi) bounds ``t1``/``t2``, density ratio ``r``."""
    if s == 0.0:
        return SI_CAP, 3.0
    theta = math.atan(s)
    ss = math.sin(theta)
    cs = math.cos(theta)
    if x1 > x2:
        x1, x2 = x2, x1
    w2 = x2 / ss
    w1 = x1 / ss
    sat = w2
    if w2 > 1.0:
        w2 = 1.0
        sat = 2.0
    if w1 > 1.0:
        w1 = 1.0
        sat = 3.0
    if fs_dimensionless(ss, cs, w1, c2, t2, r) < 1.0:
        return 0.0, sat
    fs_min = fs_dimensionless(ss, cs, w2, c1, t1, r)
    if fs_min >= 1.0:
        return min(fs_min, SI_CAP), sat
    a1 = c1 / ss
    a2 = c2 / ss
    y_sat = cs * (1.0 - r) / ss
    if w1 >= 1.0:                       # saturated over the whole range
        pf = _p_fail(a1, a2, y_sat, y_sat, t1, t2)
    elif x2 / ss > 1.0:                 # saturated for part of the x range
        wet = (x2 / ss - 1.0) / (x2 / ss - x1 / ss)
        y_dry = cs * (1.0 - w1 * r) / ss
        pf = wet * _p_fail(a1, a2, y_sat, y_sat, t1, t2) \
            + (1.0 - wet) * _p_fail(a1, a2, y_sat, y_dry, t1, t2)
    else:
        y_lo = cs * (1.0 - w2 * r) / ss
        y_hi = cs * (1.0 - w1 * r) / ss
        pf = _p_fail(a1, a2, y_lo, y_hi, t1, t2)
    return 1.0 - pf, sat


@njit(cache=True, parallel=True)
def _si_kernel(slope, sca, region, params, rmin, rmax, rho_w):
    rows, cols = slope.shape
    si = np.full((rows, cols), np.nan, dtype=np.float32)
    sat = np.full((rows, cols), np.nan, dtype=np.float32)
    for i in prange(rows):
        for j in range(cols):
            k = region[i, j]
            s = slope[i, j]
            a = sca[i, j]
            if k < 0 or not (s >= 0.0) or not (a >= 0.0):
                continue
            p = params[k]
            x2 = a * rmax / p[0]
            x1 = a * rmin / p[1]
            t1 = math.tan(p[4] * math.pi / 180.0)
            t2 = math.tan(p[5] * math.pi / 180.0)
            v, w = si_cell(s, x1, x2, p[2], p[3], t1, t2, rho_w / p[6])
            si[i, j] = v
            sat[i, j] = w
    return si, sat


def stability_index(slope: np.ndarray, sca: np.ndarray, regions: list[Region], *,
                    region_raster: np.ndarray | None = None,
                    recharge: tuple[float, float] = (0.0009, 0.00135),
                    rho_w: float = RHO_WATER) -> tuple[np.ndarray, np.ndarray]:
    """SINMAP stability index and saturation on a grid.

    Args:
        slope: tan(slope) (D-infinity slope, like TauDEM's ``slp``); NaN or < 0 = nodata.
        sca: Specific catchment area (m); NaN or < 0 = nodata.
        regions: Calibration regions (:func:`models.landslide.calibration.parse_calibration`).
        region_raster: Region id per cell (None: all cells in the first region).
        recharge: (R min, R max), m/h.
        rho_w: Water density (kg/m^3).

    Returns:
        (si, sat) float32, NaN where an input is nodata or the region is not in the table.
    """
    slope = np.asarray(slope, dtype=np.float64)
    sca = np.asarray(sca, dtype=np.float64)
    if slope.shape != sca.shape:
        raise ValueError(f"slope {slope.shape} and sca {sca.shape} differ in shape")
    index, params = region_tables(regions, region_raster, slope.shape)
    return _si_kernel(slope, sca, index, params, float(recharge[0]), float(recharge[1]),
                      float(rho_w))


def si_classes(si: np.ndarray) -> np.ndarray:
    """SINMAP stability classes 1-6 (see the module docstring); 0 where SI is NaN."""
    si = np.asarray(si)
    cls = np.zeros(si.shape, dtype=np.uint8)
    cls[si > 1.5] = 1
    cls[(si > 1.25) & (si <= 1.5)] = 2
    cls[(si > 1.0) & (si <= 1.25)] = 3
    cls[(si > 0.5) & (si <= 1.0)] = 4            # SI = 1.0 is a probability rounded to 1
    cls[(si > 0.0) & (si <= 0.5)] = 5
    cls[si == 0.0] = 6
    return cls
