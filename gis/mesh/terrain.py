"""Bilinear sampling of a DEM grid (shared by the LOD1, ribbon and tube builders)."""

from __future__ import annotations

import numpy as np
from affine import Affine


def sample_dem(dem: np.ndarray, transform: Affine, x: np.ndarray, y: np.ndarray,
               nodata: float | None = None) -> np.ndarray:
    """Bilinear DEM elevation at points.

    Cell values are taken at cell centres (GDAL/rasterio convention: ``transform`` maps the
    *corner* of cell (col, row) to x, y). Between the outermost cell centres and the raster edge
    the nearest centre row/column is used (no extrapolation); outside the raster the result is
    NaN. A NaN (or ``nodata``) cell makes every point whose bilinear weights use it NaN.

    Args:
        dem: (rows, cols) elevations; a masked array's mask counts as nodata.
        transform: Affine of the grid (any rotation or shear).
        x, y: Coordinates in the grid's CRS (same shape).
        nodata: Value to treat as missing, besides NaN.

    Returns:
        float64 array of ``x``'s shape.
    """
    # Only the cells the points use are read and converted (a national DEM is not copied).
    z = np.ma.getdata(dem)
    mask = np.ma.getmask(dem)
    skip = nodata if nodata is not None and not np.isnan(nodata) else None
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    shape = np.broadcast(x, y).shape
    x, y = np.broadcast_to(x, shape).ravel(), np.broadcast_to(y, shape).ravel()
    inv = ~transform
    col = inv.a * x + inv.b * y + inv.c
    row = inv.d * x + inv.e * y + inv.f
    rows, cols = z.shape
    inside = (col >= 0) & (col <= cols) & (row >= 0) & (row <= rows)
    u = np.clip(col - 0.5, 0.0, cols - 1.0)
    v = np.clip(row - 0.5, 0.0, rows - 1.0)
    c0 = np.minimum(np.floor(u).astype(np.int64), max(cols - 2, 0))
    r0 = np.minimum(np.floor(v).astype(np.int64), max(rows - 2, 0))
    c1 = np.minimum(c0 + 1, cols - 1)
    r1 = np.minimum(r0 + 1, rows - 1)
    fu = u - c0
    fv = v - r0
    out = np.zeros(len(x))
    bad = ~inside
    for rr, cc, w in ((r0, c0, (1 - fu) * (1 - fv)), (r0, c1, fu * (1 - fv)),
                      (r1, c0, (1 - fu) * fv), (r1, c1, fu * fv)):
        val = z[rr, cc].astype(np.float64)
        if mask is not np.ma.nomask:
            val[np.broadcast_to(mask, z.shape)[rr, cc]] = np.nan
        if skip is not None:
            val[val == skip] = np.nan
        used = w > 0
        bad |= used & np.isnan(val)
        out += np.where(used, w * np.nan_to_num(val), 0.0)
    out[bad] = np.nan
    return out.reshape(shape)
