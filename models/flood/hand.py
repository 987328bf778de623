"""HAND flood mapping: inundation from Height Above Nearest Drainage for a river stage, or for a
discharge through per-reach synthetic rating curves.

The terrain is filled (Priority-Flood), given D8 directions, accumulated; stream cells are those
draining at least ``threshold_cells``; streams are cut into reaches (links) at every confluence,
and each cell belongs to the reach of the stream cell its flow path meets first (its "nearest
drainage"), whose elevation HAND is measured from (Rennó et al. 2008; Nobre et al. 2011).

- **Stage**: a water level ``h`` above every channel floods the cells with HAND < h, to depth
  ``h - HAND`` (the NOAA/NWM "HAND-FIM" approach).
- **Discharge**: each reach gets a synthetic rating curve from its own terrain (Zheng, Tarboton,
  Maidment et al. 2018, *JAWRA* 54(4)): for stages ``h``, the inundated cells of the reach's
  catchment give the volume ``V(h) = sum (h - HAND) a`` and bed area ``B(h) = sum a sqrt(1 +
  s^2)`` (``a`` cell area, ``s`` terrain slope); with reach length ``L`` and slope ``S``, the mean
  cross-section ``A = V / L``, wetted perimeter ``P = B / L``, hydraulic radius ``R = A / P`` and
  Manning's ``Q = A R^(2/3) S^(1/2) / n``. A discharge is turned into the stage of each reach by
  interpolating its curve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from models.hydro import (accumulate_d8, d8_directions, extract_streams, fill_depressions,
                          flow_order_d8)

# ESRI D8 codes 1, 2, 4, ..., 128 (E, SE, S, SW, W, NW, N, NE) as row and column steps.
_D8_DROW = np.zeros(256, np.int64)
_D8_DCOL = np.zeros(256, np.int64)
_D8_OK = np.zeros(256, np.bool_)
_STEPS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))
for _code, (_dr, _dc) in zip((1, 2, 4, 8, 16, 32, 64, 128), _STEPS):
    _D8_DROW[_code], _D8_DCOL[_code], _D8_OK[_code] = _dr, _dc, True

#: Stages (m) at which rating curves are tabulated.
STAGES = np.round(np.concatenate([np.arange(0.1, 2.0, 0.1), np.arange(2.0, 20.01, 0.25)]), 3)


@dataclass
class HandInundation:
    """Result of :func:`hand_inundation`."""

    depth: np.ndarray                      # float32, 0 where dry, NaN outside
    hand: np.ndarray                       # float32 metres, NaN where no stream is reached
    reach: np.ndarray                      # int32 reach id of each cell's drainage, -1 none
    streams: np.ndarray                    # bool
    rating_curves: pd.DataFrame            # reach, stage_m, area_m2 (section), q_m3s ...
    reaches: pd.DataFrame                  # reach, length_m, slope, cells, stage_m (used)
    summary: dict[str, Any] = field(default_factory=dict)


@njit(cache=True)
def _receivers(dirs, drow, dcol, ok):
    """Flat index of the cell each cell drains to (-1: none, or off the grid)."""
    nrows, ncols = dirs.shape
    out = np.full(nrows * ncols, -1, np.int64)
    for r in range(nrows):
        for c in range(ncols):
            code = dirs[r, c]
            if ok[code]:
                rr, cc = r + drow[code], c + dcol[code]
                if 0 <= rr < nrows and 0 <= cc < ncols:
                    out[r * ncols + c] = rr * ncols + cc
    return out


@njit(cache=True)
def _links(order, recv, stream, z, step):
    """Reach id per stream cell (-1 elsewhere), split at confluences; and the drainage stream
    cell of every cell (-1 when its path meets none). Also each reach's length and its top and
    bottom elevations."""
    n = recv.shape[0]
    donors = np.zeros(n, np.int32)
    for t in range(order.shape[0]):
        j = order[t]
        if stream[j] and recv[j] >= 0 and stream[recv[j]]:
            donors[recv[j]] += 1
    link = np.full(n, -1, np.int32)
    up_link = np.full(n, -1, np.int32)
    nlinks = 0
    length = np.zeros(n, np.float64)
    ztop = np.zeros(n, np.float64)
    zbot = np.zeros(n, np.float64)
    for t in range(order.shape[0]):          # upstream first
        j = order[t]
        if not stream[j]:
            continue
        if donors[j] == 1:
            link[j] = up_link[j]
        else:                                # a source or the first cell below a confluence
            link[j] = nlinks
            ztop[nlinks] = z[j]
            nlinks += 1
        lk = link[j]
        r = recv[j]
        if r >= 0:                           # the step to the next cell (none off the grid)
            length[lk] += step[j]
        zbot[lk] = z[r] if r >= 0 else z[j]
        if r >= 0 and stream[r]:
            up_link[r] = lk
    drain = np.full(n, -1, np.int64)
    for t in range(order.shape[0] - 1, -1, -1):   # downstream first
        j = order[t]
        if stream[j]:
            drain[j] = j
        elif recv[j] >= 0:
            drain[j] = drain[recv[j]]
    return link, drain, nlinks, length[:nlinks], ztop[:nlinks], zbot[:nlinks]


def hand_inundation(dem: np.ndarray, dx: float, *, stage: float | None = None,
                    discharge: float | dict[int, float] | None = None,
                    threshold_cells: int = 1000, manning: float = 0.05,
                    slope_min: float = 1e-4, stages: np.ndarray = STAGES) -> HandInundation:
    """Inundation by HAND for a uniform ``stage`` (m) or a ``discharge`` (m^3/s, one for all
    reaches or per reach id) through synthetic rating curves.

    Args:
        dem: Elevations (m), NaN outside.
        dx: Cell size (m).
        threshold_cells: Accumulation (cells) that starts a stream.
        manning: Manning's n of the channel and floodplain (rating curves).
        slope_min: Smallest reach slope (flat reaches would give infinite stages).
    """
    if (stage is None) == (discharge is None):
        raise ValueError("give a stage or a discharge")
    z = np.asarray(dem, dtype=np.float64)
    filled = fill_depressions(z)
    dirs = d8_directions(filled, dx)
    order = flow_order_d8(dirs)
    acc = accumulate_d8(dirs, order=order)
    streams = extract_streams(acc, threshold_cells)
    recv = _receivers(np.asarray(dirs, np.uint8), _D8_DROW, _D8_DCOL, _D8_OK)
    diag = np.isin(dirs, (2, 8, 32, 128)).reshape(-1)
    step = np.where(diag, dx * np.sqrt(2.0), dx)
    link, drain, nlinks, length, ztop, zbot = _links(
        np.asarray(order, np.int64), recv, streams.reshape(-1), filled.reshape(-1), step)
    flat_filled = filled.reshape(-1)
    hand = np.full(z.size, np.nan)
    ok = drain >= 0
    hand[ok] = np.maximum(flat_filled[ok] - flat_filled[drain[ok]], 0.0)
    hand[np.isnan(z.reshape(-1))] = np.nan
    reach = np.full(z.size, -1, np.int32)
    reach[ok] = link[drain[ok]]
    slope = np.maximum((ztop - zbot) / np.maximum(length, dx), slope_min)
    reaches = pd.DataFrame({"reach": np.arange(nlinks), "length_m": length, "slope": slope,
                            "cells": np.bincount(reach[reach >= 0], minlength=nlinks)})

    gy, gx = np.gradient(np.where(np.isnan(z), np.nanmean(z) if np.isfinite(z).any() else 0,
                                  z), dx)
    bed = (dx * dx * np.sqrt(1.0 + gx * gx + gy * gy)).reshape(-1)
    curves = _rating_curves(hand, reach, bed, dx * dx, reaches, stages, manning)

    if stage is not None:
        h_reach = np.full(nlinks, float(stage))
    else:
        h_reach = np.array([_stage_for(curves, r, discharge if np.isscalar(discharge)
                                       else discharge.get(r, 0.0)) for r in range(nlinks)])
    reaches["stage_m"] = h_reach
    depth = np.zeros(z.size, np.float32)
    has = reach >= 0
    d = h_reach[reach[has]] - hand[has]
    depth[has] = np.where(d > 0, d, 0.0)
    depth[np.isnan(z.reshape(-1))] = np.nan
    shape = z.shape
    summary = {"method": "HAND (Renno 2008) with " + ("a uniform stage" if stage is not None
                                                       else "synthetic rating curves "
                                                            "(Zheng et al. 2018)"),
               "stream_threshold_cells": int(threshold_cells), "reaches": int(nlinks),
               "stream_cells": int(streams.sum()), "manning": manning}
    if stage is not None:
        summary["stage_m"] = float(stage)
    else:
        summary["discharge_m3s"] = discharge if np.isscalar(discharge) else \
            {int(k): float(v) for k, v in discharge.items()}
        if nlinks:
            summary["stage_m"] = {"min": float(h_reach.min()), "max": float(h_reach.max()),
                                  "median": float(np.median(h_reach))}
    return HandInundation(depth=depth.reshape(shape), hand=hand.reshape(shape).astype("float32"),
                          reach=reach.reshape(shape), streams=streams, rating_curves=curves,
                          reaches=reaches, summary=summary)


def _rating_curves(hand, reach, bed, cell_area, reaches, stages, manning) -> pd.DataFrame:
    rows = []
    valid = (reach >= 0) & np.isfinite(hand)
    by_reach = pd.Series(np.flatnonzero(valid)).groupby(reach[valid]).apply(np.asarray)
    for r, cells in by_reach.items():
        h_cells = hand[cells]
        order = np.argsort(h_cells)
        hs = h_cells[order]
        b = np.cumsum(bed[cells][order])
        cum_h = np.cumsum(hs)
        k = np.searchsorted(hs, stages, side="left")       # cells with HAND < stage
        n = k.astype(np.float64)
        volume = cell_area * (n * stages - np.where(k > 0, cum_h[np.maximum(k - 1, 0)], 0.0))
        bed_area = np.where(k > 0, b[np.maximum(k - 1, 0)], 0.0)
        length = max(float(reaches.at[r, "length_m"]), np.sqrt(cell_area))  # one-cell links
        slope = float(reaches.at[r, "slope"])
        area = volume / length
        perimeter = bed_area / length
        with np.errstate(divide="ignore", invalid="ignore"):
            radius = np.where(perimeter > 0, area / perimeter, 0.0)
        q = area * radius ** (2.0 / 3.0) * np.sqrt(slope) / manning
        rows.append(pd.DataFrame({"reach": int(r), "stage_m": stages, "top_width_m":
                                  n * cell_area / length, "area_m2": area,
                                  "wetted_perimeter_m": perimeter, "hydraulic_radius_m": radius,
                                  "q_m3s": q}))
    if not rows:
        return pd.DataFrame(columns=["reach", "stage_m", "top_width_m", "area_m2",
                                     "wetted_perimeter_m", "hydraulic_radius_m", "q_m3s"])
    return pd.concat(rows, ignore_index=True)


def _stage_for(curves: pd.DataFrame, reach: int, q: float) -> float:
    """The stage of ``reach`` carrying ``q`` (linear in its rating curve; 0 for q <= 0; the
    highest tabulated stage when q exceeds the table)."""
    if q <= 0:
        return 0.0
    c = curves[curves["reach"] == reach]
    if c.empty:
        return 0.0
    qs = np.maximum.accumulate(c["q_m3s"].to_numpy())
    hs = c["stage_m"].to_numpy()
    return float(np.interp(q, np.concatenate([[0.0], qs]), np.concatenate([[0.0], hs])))
