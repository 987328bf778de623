"""Terrain factors for landslide models: slope, aspect, curvatures, wetness index.

Slope, aspect and the plan and profile curvatures come from the local quadratic surface of
Zevenbergen & Thorne (1987), fitted exactly through each 3 x 3 window::

    z1 z2 z3        D = ((z4 + z6)/2 - z5) / dx^2      G = (z6 - z4) / (2 dx)
    z4 z5 z6        E = ((z2 + z8)/2 - z5) / dy^2      H = (z2 - z8) / (2 dy)
    z7 z8 z9        F = (-z1 + z3 + z7 - z9) / (4 dx dy)

(x east, y north, so z = D x^2 + E y^2 + F x y + G x + H y + z5 near the centre).

* slope = atan(sqrt(G^2 + H^2)) (returned as the tangent, like TauDEM's ``slp``, or in degrees);
* aspect = direction the slope faces (downhill), degrees clockwise from north, NaN on flats;
* profile curvature = -2 (D G^2 + E H^2 + F G H) / (G^2 + H^2) (1/m): the curvature along the
  line of steepest slope, Zevenbergen & Thorne's sign: positive = convex (flow accelerates);
* plan curvature = 2 (D H^2 + E G^2 - F G H) / (G^2 + H^2) (1/m): the curvature along the
  contour, positive = concave across the slope (a hollow: flow converges);
  both are NaN where the cell is flat.

Cells on the border or next to nodata get NaN (the window is incomplete).

The topographic wetness index is TWI = ln(a / tan(beta)) (Beven & Kirkby 1979) with ``a`` the
D-infinity specific catchment area (m) and tan(beta) the slope; the specific catchment area
itself comes from the hydrology core (:mod:`models.hydro`, Tarboton 1997), see
:func:`dinf_slope_sca`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def _zt_kernel(z, dx, dy):
    rows, cols = z.shape
    out = np.full((5, rows, cols), np.nan, dtype=np.float64)
    for i in prange(1, rows - 1):
        for j in range(1, cols - 1):
            z1 = z[i - 1, j - 1]
            z2 = z[i - 1, j]
            z3 = z[i - 1, j + 1]
            z4 = z[i, j - 1]
            z5 = z[i, j]
            z6 = z[i, j + 1]
            z7 = z[i + 1, j - 1]
            z8 = z[i + 1, j]
            z9 = z[i + 1, j + 1]
            s = z1 + z2 + z3 + z4 + z5 + z6 + z7 + z8 + z9
            if np.isnan(s):
                continue
            d = ((z4 + z6) / 2.0 - z5) / (dx * dx)
            e = ((z2 + z8) / 2.0 - z5) / (dy * dy)
            f = (-z1 + z3 + z7 - z9) / (4.0 * dx * dy)
            g = (z6 - z4) / (2.0 * dx)
            h = (z2 - z8) / (2.0 * dy)
            p = g * g + h * h
            out[0, i, j] = np.sqrt(p)
            if p > 0.0:
                # downhill direction is (-g, -h) in (east, north); azimuth clockwise from north
                az = np.degrees(np.arctan2(-g, -h))
                out[1, i, j] = az + 360.0 if az < 0.0 else az
                out[2, i, j] = -2.0 * (d * g * g + e * h * h + f * g * h) / p
                out[3, i, j] = 2.0 * (d * h * h + e * g * g - f * g * h) / p
    return out


def zevenbergen_thorne(dem: np.ndarray, dx: float, dy: float | None = None
                       ) -> dict[str, np.ndarray]:
    """Slope (tangent), aspect (deg), profile and plan curvature (1/m) of a DEM.

    Args:
        dem: Elevations (m), rows north to south, NaN = nodata.
        dx, dy: Cell size east-west and north-south (m); ``dy`` defaults to ``dx``.

    Returns:
        ``{"slope": tan, "aspect": deg, "profile_curvature": 1/m, "plan_curvature": 1/m}``,
        float32 arrays on the DEM grid (NaN on the border, next to nodata and, for aspect and
        curvatures, on flat cells).
    """
    z = np.asarray(dem, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError("the DEM must be a 2-D array")
    dy = dx if dy is None else dy
    out = _zt_kernel(z, float(dx), float(abs(dy)))
    return {"slope": out[0].astype(np.float32), "aspect": out[1].astype(np.float32),
            "profile_curvature": out[2].astype(np.float32),
            "plan_curvature": out[3].astype(np.float32)}


def slope_degrees(slope_tan: np.ndarray) -> np.ndarray:
    """Slope angle in degrees from its tangent."""
    return np.degrees(np.arctan(np.asarray(slope_tan, dtype=np.float64))).astype(np.float32)


def wetness_index(sca: np.ndarray, slope_tan: np.ndarray, min_slope: float = 1e-3) -> np.ndarray:
    """Topographic wetness index ln(a / tan(beta)); slopes below ``min_slope`` count as it
    (so flats give a large finite value). NaN where either input is NaN or ``a`` <= 0."""
    a = np.asarray(sca, dtype=np.float64)
    s = np.maximum(np.asarray(slope_tan, dtype=np.float64), min_slope)
    with np.errstate(divide="ignore", invalid="ignore"):
        twi = np.log(a / s)
    twi[~(a > 0)] = np.nan
    return twi.astype(np.float32)


def hydro_available() -> bool:
    """Whether the hydrology core (:mod:`models.hydro`) offers the D-infinity functions."""
    try:
        from models import hydro
    except ImportError:
        return False
    return all(hasattr(hydro, name) for name in
               ("fill_depressions", "dinf_directions", "accumulate_dinf",
                "specific_catchment_area"))


def dinf_slope_sca(dem: np.ndarray, dx: float, dy: float | None = None, *, with_sca: bool = True,
                   edge_contamination: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """D-infinity slope (tangent), flow angle and specific catchment area (m) of a DEM through
    the hydrology core: fill depressions, Tarboton (1997) facet directions, D-infinity
    accumulation, a = contributing cells x dx (TauDEM AreaDinf's convention).

    TauDEM's conventions at the edges: cells on the grid border or next to nodata get no
    direction (their slope, angle and area are NaN), and with ``edge_contamination`` (TauDEM's
    default) a cell's area is NaN when a neighbour of it, or of any cell draining to it, has no
    direction: part of its catchment may lie off the grid, so its area is unknown.

    Returns:
        (slope float32 (NaN where undefined), angle float32 (radians, NaN where undefined),
        sca float32 m (NaN where undefined), or None without ``with_sca``).

    Raises:
        ImportError: When the hydrology core is not installed (pass the SCA in instead).
    """
    if not hydro_available():
        raise ImportError("models.hydro (the D-infinity hydrology core) is not available")

    from models import hydro

    dy = dx if dy is None else dy
    z = np.asarray(dem, dtype=np.float32)
    filled = hydro.fill_depressions(z)
    angle, slope = hydro.dinf_directions(filled, dx, dy)
    ring = _ring(np.isfinite(filled))
    undefined = ring | ~(np.asarray(angle) >= 0) | np.isnan(slope)
    angle = np.where(undefined, -1.0, angle).astype(np.float32)
    slope = np.where(undefined, np.nan, slope).astype(np.float32)
    if not with_sca:
        return slope, np.where(undefined, np.nan, angle).astype(np.float32), None
    acc = hydro.accumulate_dinf(angle)
    sca = np.asarray(hydro.specific_catchment_area(acc, dx), dtype=np.float32).copy()
    bad = undefined | ~(sca > 0)
    if edge_contamination:
        seed = _ring(~undefined) & ~undefined         # cells with a neighbour without direction
        bad |= hydro.accumulate_dinf(angle, weights=seed.astype(np.float64)) > 0
    sca[bad] = np.nan
    return slope, np.where(undefined, np.nan, angle).astype(np.float32), sca


def _ring(valid: np.ndarray) -> np.ndarray:
    """Cells that are invalid, on the grid border, or next to an invalid cell (8-neighbours)."""
    from scipy import ndimage

    padded = np.pad(~valid, 1, constant_values=True)
    return ndimage.binary_dilation(padded, structure=np.ones((3, 3), bool))[1:-1, 1:-1]
