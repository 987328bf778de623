"""HAND, height above nearest drainage (Renno et al. 2008; Nobre et al. 2011).

Each cell's HAND is its elevation minus that of the stream cell its D8 flow path reaches first:
walking the topological order backwards (downstream first), a stream cell refers to itself and
any other cell inherits its receiver's stream cell. Cells whose path ends without meeting a
stream (an outlet first) get NaN. Use the depression-filled DEM for the directions; the
elevations may be the filled or the original DEM (with the original, cells in filled pits can
lie below their drainage and HAND is clipped at 0).

References: Rennó, C. D. et al. (2008) HAND, a new terrain descriptor using SRTM-DEM. Remote
Sensing of Environment 112, 3469-3481. Nobre, A. D. et al. (2011) Height Above the Nearest
Drainage - a hydrologically relevant new terrain model. Journal of Hydrology 404, 13-29.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from models.hydro.accumulate import _check_dirs, _offsets_esri, _pack_d8, flow_order_d8


@njit(cache=True)
def _hand(packed, ncols, order, stream, z, out):
    off = _offsets_esri(ncols)
    ref = np.full(z.shape[0], -1, np.int32)
    for t in range(order.shape[0] - 1, -1, -1):
        j = order[t]
        if stream[j]:
            ref[j] = j
        else:
            p = packed[j]
            if p & 0x80 != 0:
                ref[j] = ref[j + off[(p >> 4) & 7]]
        s = ref[j]
        if s >= 0:
            h = z[j] - z[s]
            out[j] = h if h > 0 else 0.0
        else:
            out[j] = np.nan


def hand(dem: np.ndarray, dirs: np.ndarray, streams: np.ndarray,
         order: np.ndarray | None = None) -> np.ndarray:
    """Height above nearest drainage (float32 metres, NaN where no stream is reached).

    Args:
        dem: Elevations (filled or original), NaN = nodata.
        dirs: ESRI D8 codes computed on the filled DEM.
        streams: Boolean stream mask (e.g. :func:`models.hydro.extract_streams`).
        order: A :func:`models.hydro.flow_order_d8` of ``dirs`` to reuse.
    """
    dirs = _check_dirs(dirs)
    z = np.ascontiguousarray(dem, dtype=np.float64)
    st = np.ascontiguousarray(streams, dtype=np.bool_)
    if z.shape != dirs.shape or st.shape != dirs.shape:
        raise ValueError(f"dem {z.shape}, dirs {dirs.shape} and streams {st.shape} differ")
    if order is None:
        order = flow_order_d8(dirs)
    out = np.full(z.size, np.nan, np.float64)
    _hand(_pack_d8(dirs), dirs.shape[1], np.asarray(order, dtype=np.int32), st.reshape(-1),
          z.reshape(-1), out)
    out = out.reshape(z.shape).astype(np.float32)
    out[np.isnan(z)] = np.nan
    return out
