"""Forcing and surface arrays for the 2D flood model, prepared from parameters and GeoDataFrames.

* :func:`manning_grid`: Manning's n per cell from polygons (a field or one value per zone) over a
  default, rasterised at cell centres (``rasterio.features.rasterize``; later rows win).
* :func:`building_mask` and :func:`raise_buildings`: buildings as obstacles, either blocked (pass
  the mask as ``simulate(blocked=...)``: no flux through their faces) or raised (bed + height).
* :class:`Inflow`: a point inflow hydrograph ``(x, y, radius, Q)`` with ``Q`` a constant (m^3/s)
  or a table of ``(t_s, Q)`` pairs (linear in between, held at the ends); its discharge is spread
  evenly over the cells whose centres lie within ``radius`` of the point (the cell containing the
  point when none do), skipping blocked and NaN cells.

Nothing here reads files; the CLI does that and passes frames and numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine

from gis.errors import DataError


@dataclass
class Inflow:
    """A point inflow. ``q``: m^3/s, a number or a sequence of ``(t_s, Q)`` rows."""

    x: float
    y: float
    radius: float
    q: float | np.ndarray | list

    def table(self) -> tuple[np.ndarray, np.ndarray]:
        """(times_s, Q) arrays; a constant gives one row at t = 0."""
        if np.ndim(self.q) == 0:
            q = float(self.q)
            if not np.isfinite(q) or q < 0:
                raise DataError(f"inflow Q must be a number >= 0, got {self.q!r}", field="q")
            return np.array([0.0]), np.array([q])
        tab = np.asarray(self.q, dtype="float64")
        if tab.ndim != 2 or tab.shape[1] != 2 or len(tab) < 1:
            raise DataError("an inflow hydrograph is a list of (t_s, Q) rows", field="q")
        if not np.all(np.isfinite(tab)) or np.any(tab[:, 1] < 0):
            raise DataError("inflow hydrograph values must be finite, Q >= 0", field="q")
        if np.any(np.diff(tab[:, 0]) <= 0):
            raise DataError("inflow hydrograph times must increase", field="t_s")
        return tab[:, 0].copy(), tab[:, 1].copy()

    def volume(self, t0: float, t1: float) -> float:
        """Volume (m^3) delivered between ``t0`` and ``t1`` (exact for the piecewise-linear Q)."""
        t, q = self.table()
        grid = np.unique(np.concatenate([[t0, t1], t[(t > t0) & (t < t1)]]))
        vals = np.interp(grid, t, q)
        return float(np.sum(0.5 * (vals[1:] + vals[:-1]) * np.diff(grid)))


def inflow_cells(inflow: Inflow, transform: Affine, valid: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, weights summing to 1) of the cells an inflow feeds.

    Raises:
        DataError: The point is off the grid or every candidate cell is blocked or NaN.
    """
    ny, nx = valid.shape
    if inflow.radius < 0 or not np.isfinite(inflow.radius):
        raise DataError(f"inflow radius must be >= 0, got {inflow.radius}", field="radius")
    col_f, row_f = ~transform @ (inflow.x, inflow.y)
    if not (0 <= col_f < nx and 0 <= row_f < ny):
        raise DataError(f"inflow point ({inflow.x}, {inflow.y}) is outside the grid",
                        field="x,y")
    cell = abs(transform.a)
    r_cells = int(np.ceil(inflow.radius / cell)) + 1
    r0, c0 = int(row_f), int(col_f)
    rows, cols = np.mgrid[max(0, r0 - r_cells):min(ny, r0 + r_cells + 1),
                          max(0, c0 - r_cells):min(nx, c0 + r_cells + 1)]
    t = transform
    xs = t.a * (cols + 0.5) + t.b * (rows + 0.5) + t.c
    ys = t.d * (cols + 0.5) + t.e * (rows + 0.5) + t.f
    inside = (np.hypot(xs - inflow.x, ys - inflow.y) <= inflow.radius) & valid[rows, cols]
    rr, cc = rows[inside], cols[inside]
    if rr.size == 0:
        if not valid[r0, c0]:
            raise DataError(f"inflow point ({inflow.x}, {inflow.y}) falls on a blocked or "
                            "nodata cell", field="x,y")
        rr, cc = np.array([r0]), np.array([c0])
    w = np.full(rr.size, 1.0 / rr.size)
    return rr.astype(np.int64), cc.astype(np.int64), w


def _rasterize(frame, values, transform: Affine, shape: tuple[int, int], fill, dtype,
               all_touched: bool = False) -> np.ndarray:
    from rasterio.features import rasterize

    geoms = [(g, v) for g, v in zip(frame.geometry, values) if g is not None and not g.is_empty]
    if not geoms:
        return np.full(shape, fill, dtype=dtype)
    return rasterize(geoms, out_shape=shape, transform=transform, fill=fill, dtype=dtype,
                     all_touched=all_touched)


def manning_grid(zones, transform: Affine, shape: tuple[int, int], *, default: float = 0.03,
                 field: str | None = None, value: float | None = None) -> np.ndarray:
    """Manning's n per cell (float32): ``default`` where no polygon covers the cell centre.

    Args:
        zones: GeoDataFrame of polygons in the grid's CRS.
        field: Column holding n per polygon, or
        value: One n for all polygons.
    """
    if (field is None) == (value is None):
        raise DataError("give either field= or value= for Manning zones")
    if field is not None:
        if field not in zones.columns:
            raise DataError(f"no field {field!r} in the Manning zones", field=field)
        vals = np.asarray(zones[field], dtype="float64")
    else:
        vals = np.full(len(zones), float(value))
    bad = np.flatnonzero(~np.isfinite(vals) | (vals <= 0) | (vals > 1))
    if bad.size:
        raise DataError(f"Manning's n must be in (0, 1], got {vals[bad[0]]!r}",
                        record=f"feature {int(bad[0])}", field=field or "value")
    if not 0 < default <= 1:
        raise DataError(f"default Manning's n must be in (0, 1], got {default}")
    return _rasterize(zones, vals, transform, shape, default, "float32")


def building_mask(buildings, transform: Affine, shape: tuple[int, int], *,
                  all_touched: bool = False) -> np.ndarray:
    """Cells whose centre lies in a building footprint (bool)."""
    return _rasterize(buildings, np.ones(len(buildings)), transform, shape, 0, "uint8",
                      all_touched).astype(bool)


def raise_buildings(z: np.ndarray, mask: np.ndarray, height: float = 3.0) -> np.ndarray:
    """A copy of the bed with building cells raised by ``height`` metres."""
    if height <= 0:
        raise DataError(f"building height must be > 0, got {height}", field="building_height")
    out = np.array(z, dtype="float32", copy=True)
    out[mask] += np.float32(height)
    return out
