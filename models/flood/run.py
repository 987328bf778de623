"""The flood decision model end to end, on arrays and frames: hazard rasters, warning areas and
impacts on the base map. The CLI (``ngis model flood``) and the OGC API Process ``flood`` read the
inputs, call :func:`run_flood`, and write or return what it gives.

Modes:

- ``rain``: rainfall excess from a hyetograph (SCS curve number, constant loss, or none) routed by
  the 2D local-inertial model (:func:`models.flood.simulate`), plus any inflows;
- ``inflow``: the same model driven by point inflow hydrographs only;
- ``hand``: inundation from Height Above Nearest Drainage for a uniform river stage, or for a
  discharge through per-reach synthetic rating curves (:mod:`models.flood.hand`).

Warning areas follow the depth classes of Taiwan's flood potential maps (Water Resources Agency:
0.3-0.5, 0.5-1, 1-2, 2-3 and over 3 m): water shallower than 0.3 m is not a warning area.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
from affine import Affine

from gis.errors import DataError
from models.impacts import flood_impacts, warning_polygons

#: (lower bound m, label) of the warning classes; class k covers [bound_k, bound_k+1).
DEPTH_CLASSES = ((0.3, "0.3-0.5 m"), (0.5, "0.5-1 m"), (1.0, "1-2 m"), (2.0, "2-3 m"),
                 (3.0, "over 3 m"))
#: Map colours of the classes (light to dark blue, then purple), as on WRA potential maps.
DEPTH_COLOURS = ("#c6dbef", "#6baed6", "#2171b5", "#08306b", "#54278f")


@dataclass
class FloodRun:
    """What a flood run gives: rasters on the DEM grid, warning areas, impacts, summary."""

    rasters: dict[str, np.ndarray]          # name -> (ny, nx) float32, NaN = no value
    transform: Affine
    crs: Any
    warning_areas: gpd.GeoDataFrame
    impacts: dict[str, gpd.GeoDataFrame]
    summary: dict[str, Any]
    snapshots: dict[float, np.ndarray] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)   # name -> DataFrame (CSV)


def depth_classes(depth: np.ndarray) -> np.ndarray:
    """Warning class index per cell (-1 below 0.3 m or no value)."""
    bounds = np.array([b for b, _ in DEPTH_CLASSES])
    d = np.nan_to_num(depth, nan=0.0)
    return np.searchsorted(bounds, d, side="right").astype(np.int64) - 1


def run_flood(z: np.ndarray, transform: Affine, crs, *, mode: str = "rain",
              duration_s: float | None = None, rain=None, loss=None,
              inflows: Sequence = (), manning: float | np.ndarray = 0.03,
              blocked: np.ndarray | None = None, boundary: str = "open",
              snapshot_times: Sequence[float] = (), stage: float | None = None,
              discharge: float | Mapping[int, float] | None = None,
              stream_threshold_km2: float = 1.0, reach_slope_min: float = 1e-4,
              min_area_m2: float | None = None,
              layers: Mapping[str, gpd.GeoDataFrame] | None = None,
              shelters: gpd.GeoDataFrame | None = None,
              progress: Callable[[float], None] | None = None) -> FloodRun:
    """Run the flood model and tie it to the base map.

    Args:
        z: Ground elevation (ny, nx), metres, NaN outside; already with buildings raised when
            they are modelled that way.
        transform, crs: The grid (square cells, metres).
        mode: ``rain``, ``inflow`` or ``hand``.
        duration_s: Simulated time for ``rain``/``inflow`` (default: the hyetograph's length
            plus 2 hours of recession, or 6 hours for inflows alone).
        rain, loss, inflows, manning, blocked, boundary, snapshot_times: As
            :func:`models.flood.simulate`.
        stage: ``hand`` mode: river stage above the channel (m), everywhere.
        discharge: ``hand`` mode: a discharge (m^3/s) for every reach, or per reach id, turned
            into a stage by each reach's synthetic rating curve.
        stream_threshold_km2: ``hand`` mode: drainage area that starts a stream.
        layers: Base-map frames (``buildings``, ``roads``, ``pipelines``) for the impacts.
        shelters: Shelter buildings (default: named shelters and schools).
        min_area_m2: Warning-area parts smaller than this are dropped (default: one cell).
        progress: Called with simulated seconds (2D modes).
    """
    if abs(abs(transform.a) - abs(transform.e)) > 1e-6 * abs(transform.a):
        raise DataError("the flood model needs square cells; resample the DEM", field="dem")
    dx = float(abs(transform.a))
    snapshots: dict[float, np.ndarray] = {}
    tables: dict[str, Any] = {}
    if mode in ("rain", "inflow"):
        from models.flood import simulate

        if mode == "rain" and rain is None:
            raise DataError("mode 'rain' needs a hyetograph (--rain CSV)", field="rain")
        if mode == "inflow" and not inflows:
            raise DataError("mode 'inflow' needs at least one inflow", field="inflow")
        if duration_s is None:
            duration_s = (rain.duration_s + 7200.0) if rain is not None else 6 * 3600.0
        res = simulate(z, dx, duration_s, manning=manning, rain=rain if mode == "rain" else None,
                       loss=loss if mode == "rain" else None, inflows=inflows,
                       transform=transform, blocked=blocked, boundary=boundary,
                       snapshot_times=snapshot_times, progress=progress,
                       velocity_depth=0.05)   # velocities of films thinner than this are noise
        depth = res.max_depth
        rasters = {"max_depth": res.max_depth, "max_wse": res.max_wse,
                   "max_velocity": res.max_velocity, "arrival_time": res.arrival_time}
        snapshots = dict(res.snapshots)
        model = {"mode": mode, **res.summary()}
        if rain is not None and mode == "rain":
            model["rain"] = {"source": rain.source, "total_mm": round(rain.total_mm, 1),
                             "duration_h": round(rain.duration_s / 3600, 2),
                             "peak_mm_h": round(float(rain.intensity_mm_h.max()), 1),
                             "loss": repr(loss) if loss is not None else "none"}
    elif mode == "hand":
        from models.flood.hand import hand_inundation

        if (stage is None) == (discharge is None):
            raise DataError("mode 'hand' needs either a stage (--stage M) or a discharge",
                            field="stage")
        inund = hand_inundation(z, dx, stage=stage, discharge=discharge,
                                threshold_cells=max(1, int(stream_threshold_km2 * 1e6 / dx ** 2)),
                                manning=float(np.nanmean(manning)) if np.ndim(manning) else
                                float(manning), slope_min=reach_slope_min)
        depth = inund.depth
        with np.errstate(invalid="ignore"):
            wse = np.where(depth > 0, z + depth, np.nan).astype("float32")
        rasters = {"max_depth": depth, "max_wse": wse, "hand": inund.hand}
        model = {"mode": "hand", **inund.summary}
        tables = {"rating_curves": inund.rating_curves, "reaches": inund.reaches}
    else:
        raise DataError(f"mode must be rain, inflow or hand, not {mode!r}", field="mode")

    classes = depth_classes(depth)
    areas = warning_polygons(classes, transform, crs,
                             labels={k: label for k, (_, label) in enumerate(DEPTH_CLASSES)},
                             min_area=dx * dx if min_area_m2 is None else min_area_m2)
    impacts, impact_summary = flood_impacts(depth, transform, crs, layers or {},
                                            shelters=shelters)
    wet = np.nan_to_num(depth, nan=0.0)
    cell_area = dx * dx
    summary = {
        "model": model,
        "grid": {"rows": int(z.shape[0]), "cols": int(z.shape[1]), "cell_m": dx,
                 "crs": crs.to_string() if hasattr(crs, "to_string") else str(crs)},
        "flooded_area_m2": {"over_0.05m": float((wet > 0.05).sum() * cell_area),
                            **{f"over_{b:g}m": float((wet > b).sum() * cell_area)
                               for b, _ in DEPTH_CLASSES}},
        "max_depth_m": float(np.nanmax(depth)) if np.isfinite(depth).any() else 0.0,
        "warning_areas": [{"class": label, "area_m2": round(float(a), 1)}
                          for label, a in zip(areas["class_name"], areas["area_m2"])],
        "impacts": impact_summary,
    }
    return FloodRun(rasters=rasters, transform=transform, crs=crs, warning_areas=areas,
                    impacts=impacts, summary=summary, snapshots=snapshots, tables=tables)
