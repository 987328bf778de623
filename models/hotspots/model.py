"""The crash hot-spot model end to end, on frames: crashes + roads in, classified lixels and a
summary out. The CLI (``ngis model hotspots``) and the OGC API process ``hotspots`` both call
:func:`run_hotspots`; neither this module nor the kernels read or write files.

Methods:

* ``gi``: Getis-Ord Gi* of the crash counts (or severity-weighted sums) per lixel, network
  distance band weights, analytic z and conditional permutation p-values, FDR q-values,
  hot/cold classes at 90/95/99% (:mod:`.stats`, :mod:`.fdr`).
* ``moran``: local Moran's I with quadrants; ``class`` is the quadrant (1 HH, 2 LH, 3 LL, 4 HL)
  of the lixels significant after FDR, 0 otherwise.
* ``nkde``: Okabe's equal-split network kernel density (:mod:`.nkde`), with the Gi* columns too.
* ``emerging``: space-time Gi* per time bin, Mann-Kendall trend and ArcGIS's categories
  (:mod:`.emerging`), with the Gi* columns of the whole period.

Without roads, crashes are aggregated to hexagons (:mod:`.hexgrid`) and the same statistics run
on the cells with six-neighbour contiguity weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from gis.errors import DataError
from models.hotspots.fdr import CLASS_NAMES, classify, q_values
from models.hotspots.lixels import build_lixels, snap_points, to_metric
from models.hotspots.stats import getis_ord, local_moran
from models.hotspots.weights import network_weights

METHODS = ("gi", "moran", "nkde", "emerging")
TIME_BINS = ("month", "quarter", "year")
QUADRANTS = {0: "not significant", 1: "HH (high among high)", 2: "LH (low among high)",
             3: "LL (low among low)", 4: "HL (high among low)"}
DEFAULT_SEVERITY = {"fatal": 10.0, "injury": 3.0, "property": 1.0}


@dataclass
class HotspotParams:
    """Parameters of a run (all recorded in the summary).

    Attributes:
        method: gi, moran, nkde or emerging.
        lixel: Lixel length, metres.
        bandwidth: Network distance band of the weights (and the NKDE bandwidth), metres.
        snap_tolerance: Crashes farther than this from every road are left out (counted).
        permutations: Conditional permutations (0: analytic p-values only).
        seed: Seed of the permutations.
        null: Permutation null of Gi*: ``conditional`` (esda) or ``total`` (see
            :func:`models.hotspots.stats.permutation_counts`).
        weights: ``count`` (every crash 1) or ``severity`` (``severity_weights`` per class).
        severity_weights: Weight of a fatal, injury and property-damage crash.
        fdr: bh, by or none: correction of the p-values before classifying.
        time_bin: month, quarter or year (emerging; default quarter).
        time_window: Earlier time bins in a space-time neighbourhood (emerging).
        alpha: Significance for Moran clusters and emerging bins/trends.
        kernel: NKDE kernel.
        hex_size: Hexagon circumradius, metres, when there are no roads.
        planar: Node every road crossing (see :func:`build_lixels`).
        jam_threshold, jam_min_length: Jam-prone corridors from a speed layer
            (:mod:`.jams`).
    """

    method: str = "gi"
    lixel: float = 100.0
    bandwidth: float = 300.0
    snap_tolerance: float = 50.0
    permutations: int = 999
    seed: int = 0
    null: str = "conditional"
    weights: str = "count"
    severity_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SEVERITY))
    fdr: str = "bh"
    time_bin: str | None = None
    time_window: int = 1
    alpha: float = 0.05
    kernel: str = "quartic"
    hex_size: float = 500.0
    planar: bool = False
    jam_threshold: float = 0.5
    jam_min_length: float = 300.0

    def check(self) -> None:
        if self.method not in METHODS:
            raise DataError(f"unknown method {self.method!r} ({', '.join(METHODS)})")
        if self.lixel <= 0 or self.bandwidth <= 0 or self.snap_tolerance < 0:
            raise DataError("lixel length and bandwidth must be positive")
        if self.permutations < 0:
            raise DataError("permutations must be >= 0")
        if self.weights not in ("count", "severity"):
            raise DataError(f"unknown weights {self.weights!r} (count, severity)")
        if self.time_bin is not None and self.time_bin not in TIME_BINS:
            raise DataError(f"unknown time bin {self.time_bin!r} ({', '.join(TIME_BINS)})")
        if self.null not in ("conditional", "total"):
            raise DataError(f"unknown permutation null {self.null!r} (conditional, total)")
        if self.fdr not in ("bh", "by", "none"):
            raise DataError(f"unknown FDR method {self.fdr!r} (bh, by, none)")


@dataclass
class HotspotResult:
    """Cells (lixels or hexagons) with their statistics, and the run's summary."""

    cells: gpd.GeoDataFrame
    summary: dict[str, Any]
    crashes: gpd.GeoDataFrame  # the crashes used, in the cells' CRS, with ``cell`` (-1 unsnapped)


def run_hotspots(crashes: gpd.GeoDataFrame, roads: gpd.GeoDataFrame | None,
                 params: HotspotParams | None = None,
                 progress: Callable[[str], None] | None = None,
                 read_summary: dict[str, Any] | None = None,
                 speed: gpd.GeoDataFrame | None = None) -> HotspotResult:
    """Run the model.

    Args:
        crashes: Crash points with ``severity`` and ``time`` columns (see
            :mod:`gis.io.crashes`), any CRS.
        roads: Road lines (any CRS), or None for the hexagon-grid variant.
        params: Parameters (defaults: Gi*, 100 m lixels, 300 m band, 999 permutations).
        progress: Called with the name of each stage as it starts.
        read_summary: What the reader reported (rows, skipped rows...), copied into the summary.
        speed: Optional speed observations (``speed`` km/h, optional ``free_flow``): marks
            jam-prone corridors beside the hot spots (network variant only).
    """
    params = params or HotspotParams()
    params.check()
    step = progress or (lambda name: None)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name):
        timings[name] = round(time.perf_counter() - t0 - sum(timings.values()), 3)

    if crashes.crs is None:
        raise DataError("the crash points have no CRS")
    if len(crashes) == 0:
        raise DataError("no crash points to analyse")
    value_w = _crash_weights(crashes, params)
    summary: dict[str, Any] = {"model": "hotspots", "parameters": asdict(params),
                               "crashes": dict(read_summary or {})}
    if roads is not None:
        step("lixels")
        roads_m = to_metric(roads)
        net = build_lixels(roads_m, params.lixel, planar=params.planar)
        lap("lixels")
        step("snap")
        pts = crashes.to_crs(net.crs)
        snapped = snap_points(net, pts.geometry.values, params.snap_tolerance)
        cell = snapped.lixel
        lap("snap")
        step("weights")
        w = network_weights(net, params.bandwidth)
        lap("weights")
        cells = net.lixels.copy()
        summary["network"] = {"lixels": net.n, "segments": int(len(net.seg_length)),
                              "nodes": int(net.n_nodes),
                              "length_km": round(float(net.lengths.sum()) / 1000, 3),
                              "crs": net.crs.to_string()}
    else:
        if params.method == "nkde":
            raise DataError("network kernel density needs a road network (--roads or --store)")
        from models.hotspots.hexgrid import hex_grid

        step("hexagons")
        pts = to_metric(crashes)
        try:
            cells, w, cell = hex_grid(pts, params.hex_size)
        except ValueError as err:
            raise DataError(str(err)) from None
        cells = cells.drop(columns=["count", "value"])
        net = snapped = None
        lap("hexagons")
        summary["grid"] = {"hexagons": len(cells), "size_m": params.hex_size,
                           "crs": cells.crs.to_string()}
    ok = cell >= 0
    n = len(cells)
    count = np.bincount(cell[ok], minlength=n).astype(np.int64)
    value = np.bincount(cell[ok], weights=value_w[ok], minlength=n)
    cells["count"] = count
    cells["value"] = value
    summary["crashes"].update({"used": int(len(crashes)), "snapped": int(ok.sum()),
                               "unsnapped": int((~ok).sum()),
                               "snap_tolerance_m": params.snap_tolerance if net else None})
    nb = np.diff(w.indptr)
    summary["weights"] = {"kind": "network distance band" if net else "hexagon contiguity",
                          "bandwidth_m": params.bandwidth if net else None,
                          "mean_neighbours": round(float(nb.mean()), 3),
                          "islands": int((nb == 0).sum())}
    if value.sum() == 0:
        raise DataError(f"none of the {len(crashes)} crashes lies within "
                        f"{params.snap_tolerance} m of a road")

    step("statistics")
    if params.method == "moran":
        st = local_moran(value, w, permutations=params.permutations, seed=params.seed)
        q = q_values(st.p, params.fdr)
        cls = np.where(q <= params.alpha, st.quadrant, 0).astype(np.int8)
        cells["I"] = st.stat
        cells["quadrant"] = st.quadrant
        names = QUADRANTS
    else:
        st = getis_ord(value, w, star=True, permutations=params.permutations, seed=params.seed,
                       null=params.null)
        q = q_values(st.p, params.fdr)
        cls = classify(st.z, q)
        cells["gi_star"] = st.stat
        names = CLASS_NAMES
    if params.permutations and st.p_sim is not None:
        floor = 2.0 / (params.permutations + 1)
        need = int(np.ceil(floor * n / 0.05))
        summary["significance"] = {
            "p_source": f"{'conditional' if params.method == 'moran' else params.null} "
                        "permutation (two-sided)", "fdr": params.fdr,
            "smallest_p": floor,
            "note": (f"with {params.permutations} permutations the smallest two-sided p is "
                     f"{floor:.4g}; Benjamini-Hochberg over {n} cells gives q <= 0.05 only if "
                     f"at least {need} cells reach it: raise --permutations to resolve more")}
    else:
        summary["significance"] = {"p_source": "normal approximation (two-sided)",
                                   "fdr": params.fdr}
    cells["z"] = st.z
    cells["p_norm"] = st.p_norm
    cells["p_sim"] = st.p_sim if st.p_sim is not None else np.nan
    cells["p"] = st.p
    cells["q"] = q
    cells["class"] = cls
    cells["class_name"] = [names[int(c)] for c in cls]
    lap("statistics")
    summary["classes"] = {names[int(k)]: int((cls == k).sum()) for k in sorted(names)
                          if (cls == k).any()}

    if params.method == "nkde":
        from models.hotspots.nkde import network_kde

        step("kernel density")
        seg = net.lixels["segment"].to_numpy()[cell[ok]]
        try:
            mass = network_kde(net, seg, snapped.position[ok], value_w[ok], params.bandwidth,
                               params.kernel)
        except ValueError as err:  # too many kernel paths: the bandwidth is too wide here
            raise DataError(str(err)) from None
        cells["nkde_mass"] = mass
        cells["density_per_km"] = mass / net.lengths * 1000.0
        summary["nkde"] = {"kernel": params.kernel, "bandwidth_m": params.bandwidth,
                           "mass": float(mass.sum()), "weight": float(value_w[ok].sum()),
                           "max_density_per_km": float(cells["density_per_km"].max())}
        lap("kernel density")
    if params.method == "emerging":
        from models.hotspots.emerging import CATEGORIES, emerging_hot_spots

        step("emerging")
        tb = params.time_bin or "quarter"
        bins, labels = time_bins(crashes["time"], tb)
        good = ok & (bins >= 0)
        cube = np.zeros((len(labels), n))
        np.add.at(cube, (bins[good], cell[good]), value_w[good])
        if len(labels) < 4:
            raise DataError(f"emerging hot spots need at least 4 time bins; the crashes span "
                            f"{len(labels)} {tb}(s)")
        em = emerging_hot_spots(cube, w, params.time_window, params.alpha, params.fdr)
        cells["category"] = em["category"].astype(str)
        cells["trend_z"] = em["trend_z"]
        cells["trend_p"] = em["trend_p"]
        cells["hot_bins"] = em["hot_bins"]
        cells["cold_bins"] = em["cold_bins"]
        cats = pd.Series(em["category"]).value_counts()
        summary["emerging"] = {"time_bin": tb, "bins": len(labels), "first": labels[0],
                               "last": labels[-1], "time_window": params.time_window,
                               "without_time": int((ok & (bins < 0)).sum()),
                               "categories": {c: int(cats.get(c, 0)) for c in CATEGORIES
                                              if cats.get(c, 0)}}
        lap("emerging")
    if speed is not None:
        if net is None:
            raise DataError("jam-prone corridors need a road network")
        from models.hotspots.jams import jam_corridors

        step("jams")
        jams = jam_corridors(net, speed, params.snap_tolerance, params.jam_threshold,
                             params.jam_min_length)
        cells["speed_kmh"] = jams["speed"]
        cells["congestion"] = jams["congestion"]
        cells["jam_corridor"] = jams["corridor"]
        hot = cells["class"].to_numpy() > 0 if params.method != "moran" else \
            cells["class"].to_numpy() == 1
        summary["jams"] = {k: jams[k] for k in ("corridors", "corridor_km", "observations",
                                                "unsnapped")}
        summary["jams"].update({"threshold": params.jam_threshold,
                                "min_length_m": params.jam_min_length,
                                "hot_cells_in_corridors": int((hot & (jams["corridor"] >= 0))
                                                              .sum())})
        lap("jams")
    summary["timings_s"] = timings
    used = pts.copy()
    used["cell"] = cell
    if snapped is not None:
        used["snap_distance_m"] = snapped.distance
    return HotspotResult(cells, summary, used)


def _crash_weights(crashes: gpd.GeoDataFrame, params: HotspotParams) -> np.ndarray:
    if params.weights == "count":
        return np.ones(len(crashes))
    if "severity" not in crashes.columns:
        raise DataError("severity weights need a 'severity' column", field="severity")
    sev = crashes["severity"].astype(str).str.lower()
    unknown = set(sev.unique()) - set(params.severity_weights)
    if unknown:
        raise DataError(f"no weight for severities {sorted(unknown)}", field="severity")
    return sev.map(params.severity_weights).to_numpy(dtype=float)


def time_bins(times: pd.Series, unit: str) -> tuple[np.ndarray, list[str]]:
    """Bin index of each time (``-1`` where missing) and the bins' labels, first to last."""
    t = pd.to_datetime(times, errors="coerce")
    valid = t.notna().to_numpy()
    if not valid.any():
        raise DataError("no crash has a time: emerging hot spots need times")
    y = t.dt.year.to_numpy()
    if unit == "year":
        k = y
        lab = lambda v: f"{v}"  # noqa: E731
    elif unit == "quarter":
        k = y * 4 + (t.dt.month.to_numpy() - 1) // 3
        lab = lambda v: f"{int(v) // 4}-Q{int(v) % 4 + 1}"  # noqa: E731
    else:
        k = y * 12 + t.dt.month.to_numpy() - 1
        lab = lambda v: f"{int(v) // 12}-{int(v) % 12 + 1:02d}"  # noqa: E731
    k0, k1 = int(np.nanmin(k[valid])), int(np.nanmax(k[valid]))
    idx = np.where(valid, np.nan_to_num(k, nan=k0) - k0, -1).astype(np.int64)
    return idx, [lab(v) for v in range(k0, k1 + 1)]
