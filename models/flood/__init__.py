"""Flood models: the 2D rain- and inflow-driven shallow-water model (``rain``/``inflow`` modes).

The core is :func:`simulate` (:mod:`models.flood.swe`), a local-inertial shallow-water model
(Bates et al. 2010; de Almeida et al. 2012) in numba on a regular grid::

    from models.flood import simulate, CurveNumber, ConstantLoss, Inflow
    res = simulate(z, dx, duration_s,
                   manning=0.03,                  # or a per-cell array (forcing.manning_grid)
                   rain=hyetograph,               # gis.io.hyetograph.Hyetograph, uniform in space
                   loss=CurveNumber(75),          # or ConstantLoss(rate_mm_h, initial_mm); None
                   inflows=[Inflow(x, y, radius, q)],   # q: m^3/s or [(t_s, Q), ...]
                   transform=dem.transform,       # places inflows; default: lower-left at (0, 0)
                   blocked=building_mask(...),    # or z = raise_buildings(z, mask, 3.0)
                   h0=None, boundary="open",      # "open" (critical-depth outflow) | "closed"
                   snapshot_times=(600, 1800), wet_threshold=0.05,
                   alpha=0.7, theta=0.8, progress=lambda t_s: ...)
    res.max_depth, res.max_wse, res.max_velocity, res.arrival_time, res.final_depth
    res.snapshots[600.0]; res.volume.as_dict(); res.stats.cell_steps_per_s; res.summary()

Arrays are (ny, nx) float32 on the input grid, NaN where the DEM is NaN. NaN cells are outside
the domain: water reaching them leaves (counted in ``volume.boundary_out``). Blocked cells keep
depth 0; rain on them is not routed (``volume.rain_on_blocked``).

Helpers: :mod:`models.flood.runoff` (SCS curve number, initial/continuing loss),
:mod:`models.flood.forcing` (Manning's n from polygons, building masks, point inflows).
"""

from __future__ import annotations

from models.flood.forcing import (Inflow, building_mask, inflow_cells, manning_grid,
                                  raise_buildings)
from models.flood.runoff import ConstantLoss, CurveNumber, scs_excess_mm
from models.flood.swe import FloodResult, RunStats, VolumeBalance, simulate

__all__ = ["ConstantLoss", "CurveNumber", "FloodResult", "Inflow", "RunStats", "VolumeBalance",
           "building_mask", "inflow_cells", "manning_grid", "raise_buildings", "scs_excess_mm",
           "simulate"]
