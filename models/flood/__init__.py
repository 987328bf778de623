"""Flood models: the 2D rain- and inflow-driven shallow-water model (``rain``/``inflow`` modes).

The core is :func:`simulate` (:mod:`models.flood.swe`): a local-inertial shallow-water model
(Bates et al. 2010; de Almeida et al. 2012) in numba on a regular grid of square cells::

    from models.flood import simulate, CurveNumber, ConstantLoss, Inflow
    res = simulate(z, dx, duration_s,
                   manning=0.03,                  # or a per-cell array (manning_grid)
                   rain=hyetograph,               # gis.io.hyetograph.Hyetograph, uniform in space
                   loss=CurveNumber(75),          # or ConstantLoss(rate_mm_h, initial_mm); None
                   inflows=[Inflow(x, y, radius, q)],   # q: m^3/s or [(t_s, Q), ...]
                   transform=dem.transform,       # places inflows; default: lower-left at (0, 0)
                   blocked=building_mask(...),    # or z = raise_buildings(z, mask, 3.0)
                   h0=None, uv0=None,             # initial depth / velocities
                   boundary="open",               # "open" (critical-depth outflow) | "closed"
                   snapshot_times=(600, 1800), wet_threshold=0.05,
                   alpha=0.7, theta=0.8,          # Courant factor, de Almeida's weighting
                   progress=lambda t_s: ...)      # simulated seconds, every ~0.2 s of wall time
    res.max_depth, res.max_wse, res.max_velocity, res.arrival_time, res.final_depth
    res.snapshots[600.0]; res.volume.as_dict(); res.stats.as_dict(); res.summary()

Outputs are (ny, nx) float32 arrays on the input grid (the caller keeps transform and CRS), NaN
where the DEM is NaN. NaN cells are outside the domain: water reaching them leaves at critical
depth, like water crossing an open grid edge, and is counted in ``volume.boundary_out``. Blocked
cells keep depth 0 and arrival NaN; rain on them is not routed (``volume.rain_on_blocked``).
``max_wse`` is NaN where a cell was never wet; ``arrival_time`` is NaN where the depth never
exceeded ``wet_threshold``. ``volume.error`` is the relative volume residual (~1e-15: depth is
float64 and every face flux enters both of its cells identically).

Speed: the time loop runs in numba (no Python per step); each row keeps a span of active
columns (wet cells and their neighbours), so dry land costs nothing; a step runs on all threads
from ``parallel_min_cells`` active cells (1M) when the load average leaves cores idle
(``parallel=None``; True/False force it), otherwise on one. ``res.stats`` gives steps,
active and grid cell-steps, loop wall and CPU seconds and how often the positivity limiter ran.
``bench/flood2d.py`` measures cell-steps/s against landlab's ``OverlandFlow``.

Known limits (the local-inertial approximation drops advection; de Almeida & Bates 2013): near
Froude 1 it departs from the full shallow-water equations (Stoker's dam break: 6 % L1 error,
independent of resolution), and a front running onto a dry frictionless bed moves at about
``sqrt(g h)`` instead of ``2 sqrt(g h0)`` (Ritter). Floodplain flows (Hunter et al. 2005's front:
within 4 % of the analytic speed) and slow sloshing (Thacker) are reproduced.
``tests/models/test_flood2d_validation.py`` holds the references and bounds.

Helpers: :mod:`models.flood.runoff` (SCS curve number with Ia = 0.2S or 0.05S, initial and
continuing loss), :mod:`models.flood.forcing` (Manning's n from polygons, building masks and
raising, point inflows spread over a radius).
"""

from __future__ import annotations

from models.flood.forcing import (Inflow, building_mask, inflow_cells, manning_grid,
                                  raise_buildings)
from models.flood.runoff import ConstantLoss, CurveNumber, scs_excess_mm
from models.flood.swe import FloodResult, RunStats, VolumeBalance, simulate

__all__ = ["ConstantLoss", "CurveNumber", "FloodResult", "Inflow", "RunStats", "VolumeBalance",
           "building_mask", "inflow_cells", "manning_grid", "raise_buildings", "scs_excess_mm",
           "simulate"]
