"""Hydrology core: depression filling, flow directions, accumulation, streams, catchments, HAND."""

from models.hydro.fill import fill_depressions

__all__ = ["fill_depressions"]
