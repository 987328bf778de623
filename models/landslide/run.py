"""One landslide run on arrays, shared by the CLI and the OGC API Process.

:func:`run_landslide` computes the chosen method on a DEM grid, turns its result into four
hazard levels (1 low, 2 moderate, 3 high, 4 very high), makes warning polygons of the high and
very high levels with :func:`models.impacts.warning_polygons` and lists the base-map features
they touch with :func:`models.impacts.assets_in_areas` (the flood model's impact code).

Hazard levels per method:

* sinmap: SI classes stable + moderately stable -> 1, quasi-stable -> 2, lower threshold -> 3,
  upper threshold + defended -> 4;
* shalstab: q_crit > 200 mm/day or unconditionally stable -> 1, 100-200 -> 2, 50-100 -> 3,
  < 50 or unconditionally unstable -> 4;
* fs: Monte Carlo P(FS < 1) < 0.05 -> 1, < 0.25 -> 2, < 0.5 -> 3, >= 0.5 -> 4;
* transient: minimum FS over the storm >= 1.5 -> 1, >= 1.25 -> 2, >= 1 -> 3, < 1 -> 4;
* susceptibility: quantile classes (50/75/90 %) of the predicted probability.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from affine import Affine

from gis.errors import DataError
from models.landslide import fs as fs_mod
from models.landslide.calibration import DEFAULT_RECHARGE, DEFAULT_TABLE, Region, parse_calibration
from models.landslide.shalstab import critical_rainfall, shalstab_classes
from models.landslide.sinmap import SI_CLASSES, si_classes, stability_index
from models.landslide.terrain import (dinf_slope_sca, hydro_available, wetness_index,
                                      zevenbergen_thorne)

METHODS = ("sinmap", "shalstab", "fs", "transient", "susceptibility")
LEVELS = {1: "low", 2: "moderate", 3: "high", 4: "very high"}
WARN = (3, 4)
_SINMAP_LEVEL = np.array([0, 1, 1, 2, 3, 4, 4], dtype=np.uint8)
_SHALSTAB_LEVEL = np.array([0, 4, 4, 3, 2, 1, 1, 1], dtype=np.uint8)


@dataclass
class LandslideResult:
    """Rasters on the DEM grid, hazard levels, warning areas, assets touched, summary."""

    method: str
    rasters: dict[str, tuple[np.ndarray, dict[str, str]]]   # name -> (array, tags)
    levels: np.ndarray                                         # uint8, 0 = no data
    areas: Any                                                 # GeoDataFrame
    assets: dict[str, Any]
    summary: dict[str, Any]
    map_layer: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def _terrain(dem, dx, dy, slope, sca, need_sca, notes, edge_contamination=True):
    """(slope tan, sca m, source note): given rasters win, else the hydrology core, else
    Zevenbergen-Thorne slope with no SCA."""
    src = {}
    if slope is not None and sca is not None:
        return np.asarray(slope, float), np.asarray(sca, float), {"slope": "input",
                                                                   "sca": "input"}
    if need_sca and sca is None and not hydro_available():
        raise DataError("this method needs the D-infinity specific catchment area: the "
                        "hydrology core (models.hydro) is not available here; pass --sca",
                        field="sca")
    if hydro_available() and (slope is None or (need_sca and sca is None)):
        d_slope, _, d_sca = dinf_slope_sca(dem, dx, dy, with_sca=need_sca and sca is None,
                                           edge_contamination=edge_contamination)
        if slope is None:
            slope, src["slope"] = d_slope, "D-infinity (models.hydro)"
        if sca is None and d_sca is not None:
            sca, src["sca"] = d_sca, "D-infinity (models.hydro)"
    if slope is None:
        slope = zevenbergen_thorne(dem, dx, dy)["slope"]
        src["slope"] = "Zevenbergen-Thorne"
        notes.append("slope from Zevenbergen & Thorne (the hydrology core is not available)")
    src.setdefault("slope", "input")
    if sca is not None:
        src.setdefault("sca", "input")
    return np.asarray(slope, float), None if sca is None else np.asarray(sca, float), src


def _level_counts(levels: np.ndarray, cell_area: float) -> dict[str, Any]:
    counts = np.bincount(levels.ravel(), minlength=5)
    return {LEVELS[k]: {"cells": int(counts[k]), "area_km2": round(counts[k] * cell_area / 1e6, 4)}
            for k in LEVELS}


def run_landslide(dem: np.ndarray, transform: Affine, crs: Any, *, method: str = "sinmap",
                  regions: list[Region] | None = None, region_raster: np.ndarray | None = None,
                  recharge: tuple[float, float] = DEFAULT_RECHARGE,
                  slope: np.ndarray | None = None, sca: np.ndarray | None = None,
                  rain: tuple[np.ndarray, np.ndarray] | None = None, rain_start: Any = None,
                  transient_params: Any = None, drain_h: float = 0.0,
                  report_h: tuple[float, ...] = (), min_cells: int = 4,
                  edge_contamination: bool = True,
                  observations: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                  factors: tuple[np.ndarray, list[str]] | None = None,
                  model: str = "logistic", n_draws: int = 1000, seed: int = 0,
                  cv_repeats: int = 5, compare: bool = True,
                  assets: Mapping[str, Any] | None = None, terrain: bool = False,
                  progress: Callable[[str, int, int], None] | None = None,
                  chunk: int | None = None, client: Any = None) -> LandslideResult:
    """Run one method on a DEM grid (metres, NaN = nodata).

    Args:
        dem, transform, crs: The DEM and its (projected) georeferencing.
        method: One of :data:`METHODS`.
        regions, region_raster, recharge: SINMAP calibration (defaults: TauDEM's example).
        slope, sca: tan(slope) and specific catchment area on the grid, when given (else the
            hydrology core computes them from the DEM).
        rain: (edges_s, depth_mm) hyetograph for ``transient``; ``rain_start`` its start time.
        observations: (X, y, xy) inventory samples for ``susceptibility``; ``factors`` the
            (stack, names) on the DEM grid.
        assets: Base-map layers (GeoDataFrames) to intersect with the warning areas.
        terrain: Also return the terrain factors (slope, aspect, curvatures, sca, twi).
        edge_contamination: Leave the SCA undefined where part of the catchment may lie off
            the grid (TauDEM's default; turn off for small grids cut around one slope).
        min_cells: Minimum mapping unit of the warning areas: patches of high/very high hazard
            (and holes in them) smaller than this many cells (8-connected) are merged into their
            surroundings before polygonising (1 = keep every cell).
        progress: Called as progress(stage, done, total).
        chunk: Compute the local models (Zevenbergen-Thorne terrain, sinmap, shalstab, fs)
            in ``chunk`` x ``chunk`` chunks with dask (:mod:`models.chunked`, identical
            results); ``client`` a dask.distributed Client, else dask's threads.
    """
    from models.impacts import assets_in_areas, warning_polygons

    if method not in METHODS:
        raise DataError(f"unknown method {method!r} (one of {', '.join(METHODS)})",
                        field="method")
    dem = np.asarray(dem, dtype=np.float32)
    if dem.ndim != 2 or dem.size == 0 or not np.isfinite(dem).any():
        raise DataError("the DEM has no valid cells", field="dem")
    dx, dy = abs(transform.a), abs(transform.e)
    cell_area = dx * dy
    regions = regions or parse_calibration(DEFAULT_TABLE)
    notes: list[str] = []
    rasters: dict[str, tuple[np.ndarray, dict[str, str]]] = {}
    summary: dict[str, Any] = {"method": method, "grid": {
        "rows": int(dem.shape[0]), "cols": int(dem.shape[1]), "cell_m": [dx, dy],
        "crs": None if crs is None else str(getattr(crs, "to_string", lambda: crs)())}}

    def step(stage):
        if progress:
            progress(stage, 0, 1)

    need_sca = method in ("sinmap", "shalstab", "fs") or (terrain and hydro_available())
    need_slope = method != "susceptibility" or terrain
    src = {}
    if need_slope:
        step("terrain")
        slope, sca, src = _terrain(dem, dx, dy, slope, sca, need_sca, notes,
                                   edge_contamination)
        src["edge_contamination"] = edge_contamination
        if slope.shape != dem.shape or (sca is not None and sca.shape != dem.shape):
            raise DataError("slope/sca rasters must be on the DEM grid", field="sca")
        summary["terrain"] = src
    if terrain:
        if chunk:
            from models import chunked

            zt = chunked.compute(chunked.zevenbergen_thorne(chunked.from_array(
                dem, transform, crs, chunks=chunk)), client=client)
            zt = {k: zt[k].values for k in chunked.ZT_LAYERS}
        else:
            zt = zevenbergen_thorne(dem, dx, dy)
        rasters["slope"] = (np.asarray(slope, np.float32), {"units": "tan", "source":
                                                            src.get("slope", "")})
        rasters["aspect"] = (zt["aspect"], {"units": "degrees clockwise from north"})
        rasters["profile_curvature"] = (zt["profile_curvature"], {"units": "1/m"})
        rasters["plan_curvature"] = (zt["plan_curvature"], {"units": "1/m"})
        if sca is not None:
            rasters["sca"] = (np.asarray(sca, np.float32), {"units": "m"})
            rasters["twi"] = (wetness_index(sca, slope), {"units": "ln(m)"})
    params = {"regions": [r.as_dict() for r in regions], "recharge_m_h": list(recharge)}
    map_layer = None
    if method == "sinmap":
        step("sinmap")
        if chunk:
            from models.chunked import local_model

            si, sat = local_model("sinmap", slope, sca, regions, transform=transform, crs=crs,
                                  chunk=chunk, client=client, region_raster=region_raster,
                                  recharge=recharge)
        else:
            si, sat = stability_index(slope, sca, regions, region_raster=region_raster,
                                      recharge=recharge)
        cls = si_classes(si)
        levels = _SINMAP_LEVEL[cls]
        rasters["si"] = (si, {"model": "SINMAP (Pack et al. 1998)", "units": "stability index"})
        rasters["sat"] = (sat, {"model": "SINMAP saturation", "units": "w (<1), 2, 3"})
        rasters["si_class"] = (cls, {"classes": ", ".join(f"{k} {v}" for k, v in
                                                          SI_CLASSES.items())})
        summary["parameters"] = params
        summary["si_classes"] = {name: int((cls == k).sum()) for k, name in SI_CLASSES.items()}
        map_layer = si
    elif method == "shalstab":
        step("shalstab")
        if chunk:
            from models.chunked import local_model

            q, wc = local_model("shalstab", slope, sca, regions, transform=transform, crs=crs,
                                chunk=chunk, client=client, region_raster=region_raster)
        else:
            q, wc = critical_rainfall(slope, sca, regions, region_raster=region_raster)
        cls = shalstab_classes(q, wc)
        levels = _SHALSTAB_LEVEL[cls]
        rasters["qcrit"] = (q, {"model": "SHALSTAB (Montgomery & Dietrich 1994)",
                                "units": "mm/day; 0 unconditionally unstable, NaN stable"})
        rasters["shalstab_class"] = (cls, {"classes": "1 uncond. unstable, 2 <50, 3 50-100, "
                                           "4 100-200, 5 200-400, 6 >400 mm/day, 7 stable"})
        summary["parameters"] = {**params, "values": "middle of each range"}
        map_layer = q
    elif method == "fs":
        step("factor of safety")
        if chunk:
            from models.chunked import local_model

            (fs,) = local_model("fs", slope, sca, regions, transform=transform, crs=crs,
                                chunk=chunk, client=client, region_raster=region_raster,
                                recharge=recharge)
        else:
            fs = fs_mod.factor_of_safety(slope, sca, regions, recharge=float(np.mean(recharge)),
                                         region_raster=region_raster)
        step("monte carlo")
        if chunk:
            (pof,) = local_model("pof", slope, sca, regions, transform=transform, crs=crs,
                                 chunk=chunk, client=client, region_raster=region_raster,
                                 recharge=recharge, n_draws=n_draws, seed=seed)
        else:
            pof = fs_mod.probability_of_failure(slope, sca, regions, recharge=recharge,
                                                region_raster=region_raster, n=n_draws,
                                                seed=seed)
        levels = fs_mod.pof_classes(pof)
        rasters["fs"] = (fs, {"model": "infinite slope (SINMAP form)",
                              "scenario": f"recharge {np.mean(recharge)} m/h, mid values"})
        rasters["pof"] = (pof, {"model": "Monte Carlo P(FS<1)", "draws": str(n_draws),
                                "seed": str(seed)})
        summary["parameters"] = {**params, "draws": n_draws, "seed": seed}
        summary["fs_below_1_cells"] = int(np.nansum(fs < 1))
        map_layer = pof
    elif method == "transient":
        from models.landslide.transient import TransientParams, transient_fs

        if rain is None:
            raise DataError("the transient method needs a hyetograph (--rain CSV)", field="rain")
        tp = transient_params or TransientParams()
        edges, depth = rain
        rows = dem.shape[0]
        done = [0]

        def rows_done(n):
            done[0] += n
            if progress:
                progress("transient", done[0], rows)

        res = transient_fs(slope, edges, depth, tp, drain_s=drain_h * 3600, progress=rows_done,
                           report_times_s=np.asarray(report_h, float) * 3600 if report_h
                           else None)
        ft_h = res.failure_time_s / 3600.0
        levels = fs_mod.fs_classes(res.fs_min)
        rasters["failure_time"] = (ft_h.astype(np.float32), {
            "units": "hours after the rain starts; 0 unstable before; NaN never",
            "rain_start": str(rain_start)})
        rasters["fs_min"] = (res.fs_min, {"model": "Iverson (2000) / TRIGRS"})
        rasters["fs_initial"] = (res.fs_initial, {"model": "before the rain"})
        if report_h:
            rasters["fs_over_time"] = (res.fs_report, {
                "bands": ", ".join(f"FS at {t / 3600:g} h" for t in res.report_times_s)})
        during = np.isfinite(ft_h) & (ft_h > 0)
        tr = {"parameters": tp.as_dict(), "rain_total_mm": float(np.sum(depth)),
              "rain_hours": float(edges[-1] / 3600),
              "cells_unstable_before": int((ft_h == 0).sum()),
              "cells_failing_during": int(during.sum())}
        if during.any():
            first = float(np.nanmin(ft_h[during]))
            tr["first_failure_h"] = first
            tr["median_failure_h"] = float(np.median(ft_h[during]))
            if rain_start is not None:
                import pandas as pd

                tr["first_failure_time"] = str(pd.Timestamp(rain_start)
                                               + pd.Timedelta(hours=first))
        summary["transient"] = tr
        map_layer = ft_h
    else:  # susceptibility
        from models.landslide.susceptibility import susceptibility

        if observations is None or factors is None:
            raise DataError("susceptibility needs an inventory (--inventory) and factor "
                            "rasters (--factors)", field="inventory")
        stack, names = factors
        X, y, xy = observations
        res = susceptibility(stack, names, X, y, xy, model=model, seed=seed,
                             repeats=cv_repeats,
                             compare=("logistic", "forest") if compare else (model,),
                             progress=lambda s: step(s))
        levels = res.classes
        rasters["susceptibility"] = (res.probability, {"model": f"{model} regression"
                                                       if model == "logistic" else model})
        summary["susceptibility"] = res.summary()
        summary["auc"] = {k: {"mean": round(v.auc_mean, 4), "std": round(v.auc_std, 4)}
                          for k, v in res.cv.items()}
        map_layer = res.probability
    levels = np.where(np.isfinite(dem), levels, 0).astype(np.uint8)
    rasters["hazard"] = (levels, {"classes": "1 low, 2 moderate, 3 high, 4 very high"})
    summary["hazard_levels"] = _level_counts(levels, cell_area)
    step("warning areas")
    warn = np.where(np.isin(levels, WARN), levels, 0).astype(np.int16)
    if min_cells > 1:
        from rasterio.features import sieve

        warn = sieve(warn, int(min_cells), connectivity=8)
    areas = warning_polygons(warn, transform, crs, labels=LEVELS, keep=list(WARN),
                             min_area=cell_area * 0.99)
    summary["warning_min_cells"] = int(min_cells)
    touched = assets_in_areas(areas, assets) if assets else {}
    summary["warning_areas"] = [{"class": int(r["class"]), "class_name": r["class_name"],
                                 "area_km2": round(float(r["area_m2"]) / 1e6, 4)}
                                for _, r in areas.iterrows()]
    summary["assets_touched"] = {k: int(len(v)) for k, v in touched.items()}
    for k, v in touched.items():
        if "length_in_m" in v:
            summary.setdefault("assets_length_in_m", {})[k] = round(float(
                np.nansum(v["length_in_m"])), 1)
    summary["notes"] = notes
    return LandslideResult(method, rasters, levels, areas, touched, summary, map_layer, notes)

