"""Jam-prone corridors from a speed layer, beside the crash hot spots.

Speed observations (vehicle-detector points, probe-vehicle segments...) with a ``speed`` column
(km/h) are snapped to the lixels like crashes. Per lixel, the congestion index is
``1 - mean speed / free-flow speed`` where the free-flow speed is the observations'
``free_flow`` (or ``speed_limit``) column when there is one, else the 85th percentile of the
lixel's own observations (the usual free-flow proxy of detector data). A lixel is jam-prone when
the index reaches ``threshold`` (0.5: traffic at half its free speed or slower, roughly level of
service E-F); jam-prone lixels that touch form corridors, and corridors shorter than
``min_length`` are dropped (a single slow detector is not a corridor).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from gis.errors import DataError
from models.hotspots.lixels import snap_points


def jam_corridors(net, observations, tolerance: float = 50.0, threshold: float = 0.5,
                  min_length: float = 300.0) -> dict:
    """Congestion per lixel and corridor ids (-1: none).

    Args:
        net: A :class:`models.hotspots.lixels.LixelNetwork`.
        observations: GeoDataFrame with ``speed`` (km/h) and optionally ``free_flow`` or
            ``speed_limit``; points or lines (lines count at their midpoint).
        tolerance: Snapping distance, metres.
        threshold: Congestion index from which a lixel is jam-prone.
        min_length: Shortest corridor kept, metres.

    Returns:
        dict with ``speed`` (mean, NaN where unobserved), ``congestion``, ``corridor`` (per
        lixel), ``corridors`` (count), ``corridor_km``, ``observations``, ``unsnapped``.
    """
    if "speed" not in observations.columns:
        raise DataError("the speed layer needs a 'speed' column (km/h)", field="speed")
    obs = observations.to_crs(net.crs)
    geoms = obs.geometry.values
    if len(geoms) and (geoms.geom_type != "Point").any():
        geoms = geoms.interpolate(0.5, normalized=True)
    snapped = snap_points(net, np.asarray(geoms), tolerance)
    ok = snapped.snapped & np.isfinite(obs["speed"].to_numpy(dtype=float))
    lix = snapped.lixel[ok]
    v = obs["speed"].to_numpy(dtype=float)[ok]
    n = net.n
    cnt = np.bincount(lix, minlength=n)
    mean = np.full(n, np.nan)
    has = cnt > 0
    mean[has] = np.bincount(lix, weights=v, minlength=n)[has] / cnt[has]
    free = np.full(n, np.nan)
    ref_col = next((c for c in ("free_flow", "speed_limit") if c in obs.columns), None)
    if ref_col is not None:
        ref = obs[ref_col].to_numpy(dtype=float)[ok]
        good = np.isfinite(ref)
        c2 = np.bincount(lix[good], minlength=n)
        s2 = np.bincount(lix[good], weights=ref[good], minlength=n)
        free[c2 > 0] = s2[c2 > 0] / c2[c2 > 0]
    else:
        order = np.lexsort((v, lix))
        ls, vs = lix[order], v[order]
        starts = np.searchsorted(ls, np.arange(n))
        for i in np.flatnonzero(has):
            free[i] = np.percentile(vs[starts[i]:starts[i] + cnt[i]], 85)
    with np.errstate(invalid="ignore", divide="ignore"):
        congestion = np.clip(1.0 - mean / free, 0.0, 1.0)
    jam = np.nan_to_num(congestion, nan=0.0) >= threshold
    corridor = np.full(n, -1, np.int64)
    if jam.any():
        adj = net.adjacency()
        keep = sparse.diags(jam.astype(float))
        sub = (keep @ adj @ keep).tocsr()
        _, label = connected_components(sub, directed=False)
        lengths = np.bincount(label[jam], weights=net.lengths[jam], minlength=label.max() + 1)
        long_enough = lengths >= min_length
        ids = {lab: k for k, lab in enumerate(np.flatnonzero(long_enough))}
        for i in np.flatnonzero(jam):
            corridor[i] = ids.get(label[i], -1)
    return {"speed": mean, "congestion": congestion, "corridor": corridor,
            "corridors": int(corridor.max() + 1),
            "corridor_km": float(net.lengths[corridor >= 0].sum() / 1000.0),
            "observations": int(ok.sum()), "unsnapped": int((~snapped.snapped).sum())}
