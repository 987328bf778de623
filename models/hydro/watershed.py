"""Catchments of pour points over D8 directions.

Walking the topological order backwards (downstream first), each cell takes the label of its
receiver, and a pour point takes its own label: so every cell gets the label of the first pour
point its flow path meets. A pour point upstream of another gets its own (nested) catchment and
the downstream one keeps the rest.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from models.hydro.accumulate import _check_dirs, _offsets_esri, _pack_d8, flow_order_d8


@njit(cache=True)
def _label_down_first(packed, ncols, order, labels):
    off = _offsets_esri(ncols)
    for t in range(order.shape[0] - 1, -1, -1):
        j = order[t]
        if labels[j] != 0:
            continue
        p = packed[j]
        if p & 0x80 != 0:
            labels[j] = labels[j + off[(p >> 4) & 7]]


def catchment(dirs: np.ndarray, pour_points, order: np.ndarray | None = None) -> np.ndarray:
    """Label the catchment of each pour point.

    Args:
        dirs: ESRI D8 codes.
        pour_points: (row, col) pairs, already snapped to the stream where wanted.
        order: A :func:`models.hydro.flow_order_d8` of ``dirs`` to reuse.

    Returns:
        int32 labels: ``k + 1`` for the cells draining to pour point ``k`` first, 0 elsewhere.
    """
    dirs = _check_dirs(dirs)
    nrows, ncols = dirs.shape
    pts = np.atleast_2d(np.asarray(pour_points, dtype=np.int64)).reshape(-1, 2)
    labels = np.zeros(dirs.size, np.int32)
    for k, (r, c) in enumerate(pts):
        if not (0 <= r < nrows and 0 <= c < ncols):
            raise ValueError(f"pour point (row {r}, col {c}) lies outside the grid")
        labels[r * ncols + c] = k + 1
    if order is None:
        order = flow_order_d8(dirs)
    _label_down_first(_pack_d8(dirs), ncols, np.asarray(order, dtype=np.int32), labels)
    return labels.reshape(nrows, ncols)
