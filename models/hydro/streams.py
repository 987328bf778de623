"""Streams from flow accumulation and pour points snapped onto them.

A stream cell is one whose accumulation reaches a threshold (in cells, or in the units of the
accumulation's weights). Pour points given by people (a gauge, a bridge) rarely fall on the
one-cell-wide raster stream, so :func:`snap_pour_points` moves each to the cell of largest
accumulation within a radius, which is where the river is.
"""

from __future__ import annotations

import numpy as np


def extract_streams(acc: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean stream mask: accumulation at or above ``threshold`` (NaN is never a stream)."""
    acc = np.asarray(acc)
    if not np.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"stream threshold must be a positive number, got {threshold}")
    with np.errstate(invalid="ignore"):
        return acc >= threshold


def snap_pour_points(points_rc, acc: np.ndarray, radius_cells: float) -> np.ndarray:
    """Move each (row, col) to the cell with the largest accumulation within ``radius_cells``
    (Euclidean, in cells; ties to the nearest, then the first in raster order).

    Returns:
        int64 array (n, 2) of snapped (row, col).
    """
    pts = np.atleast_2d(np.asarray(points_rc, dtype=np.int64))
    if pts.size == 0:
        return pts.reshape(0, 2)
    acc = np.asarray(acc, dtype=np.float64)
    nrows, ncols = acc.shape
    rad = max(0.0, float(radius_cells))
    ir = int(np.floor(rad))
    out = np.empty_like(pts)
    for n, (r, c) in enumerate(pts):
        if not (0 <= r < nrows and 0 <= c < ncols):
            raise ValueError(f"pour point (row {r}, col {c}) lies outside the grid")
        r0, r1 = max(0, r - ir), min(nrows, r + ir + 1)
        c0, c1 = max(0, c - ir), min(ncols, c + ir + 1)
        win = acc[r0:r1, c0:c1]
        rr, cc = np.mgrid[r0:r1, c0:c1]
        d2 = (rr - r) ** 2 + (cc - c) ** 2
        cand = np.where((d2 <= rad * rad + 1e-9) & np.isfinite(win), win, -np.inf)
        best = cand.max()
        if not np.isfinite(best):
            out[n] = (r, c)
            continue
        ties = np.flatnonzero((cand == best).ravel())
        k = ties[np.argmin(d2.ravel()[ties])]
        out[n] = (rr.ravel()[k], cc.ravel()[k])
    return out
