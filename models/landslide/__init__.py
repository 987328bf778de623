"""Landslide decision model: terrain factors, SINMAP, SHALSTAB, infinite-slope factor of safety
with Monte Carlo probability of failure, transient rainfall infiltration (Iverson 2000), and
statistical susceptibility from an inventory.

The kernels work on numpy arrays (metres, NaN = nodata); the CLI (``ngis model landslide``)
and the OGC API Process ``landslide`` read inputs and write outputs.
"""

from __future__ import annotations

from models.landslide.calibration import (Region, parse_calibration, parse_recharge,
                                          region_tables)
from models.landslide.sinmap import si_classes, stability_index
from models.landslide.terrain import (dinf_slope_sca, hydro_available, wetness_index,
                                      zevenbergen_thorne)

__all__ = ["Region", "parse_calibration", "parse_recharge", "region_tables", "si_classes",
           "stability_index", "dinf_slope_sca", "hydro_available", "wetness_index",
           "zevenbergen_thorne"]
