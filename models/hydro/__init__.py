"""Hydrology core: depression filling, flow directions, accumulation, streams, catchments, HAND.

Numba kernels on plain numpy arrays (cell sizes in metres, NaN = nodata); :mod:`models.hydro.xr`
wraps them for georeferenced xarray DataArrays.
"""

from models.hydro.accumulate import (
    accumulate_d8,
    accumulate_dinf,
    flow_order_d8,
    flow_order_dinf,
    outflow_dinf,
    specific_catchment_area,
)
from models.hydro.breach import breach_depressions
from models.hydro.fill import fill_depressions
from models.hydro.flowdir import d8_directions, dinf_directions, resolve_flats
from models.hydro.hand import hand
from models.hydro.streams import extract_streams, snap_pour_points
from models.hydro.watershed import catchment

__all__ = [
    "accumulate_d8",
    "accumulate_dinf",
    "breach_depressions",
    "catchment",
    "d8_directions",
    "dinf_directions",
    "extract_streams",
    "fill_depressions",
    "flow_order_d8",
    "flow_order_dinf",
    "hand",
    "outflow_dinf",
    "resolve_flats",
    "snap_pour_points",
    "specific_catchment_area",
]
