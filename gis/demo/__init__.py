"""Synthetic demo data: a realistic, deterministic region of central Taiwan in EPSG:3826.

``generate_region`` writes a DEM that drains, buildings, a noded road network, railways,
pipelines, traffic crashes with known hotspots, a typhoon rain gauge record and a manifest.
See :mod:`gis.demo.terrain` for the terrain and drainage approach and :mod:`gis.demo.region`
for streaming and atomic output.
"""

from gis.demo.region import LAYERS, generate_region
from gis.demo.spec import CRS, SIZE_NAMES, RegionSpec, region_spec, source_of
from gis.demo.terrain import TerrainModel, fill_depressions, terrain_window

__all__ = ["CRS", "LAYERS", "SIZE_NAMES", "RegionSpec", "TerrainModel", "fill_depressions",
           "generate_region", "region_spec", "source_of", "terrain_window"]
