"""Cesium quantized-mesh terrain from DEMs (issue 10).

- :mod:`tiles.terrain.tiling`: the geographic TMS tiling scheme (2 x 1 tiles at level 0).
- :mod:`tiles.terrain.mesh`: error-bounded triangulation per tile (strict RTIN or Delatin), edge vertices.
- :mod:`tiles.terrain.qmesh`: quantized-mesh-1.0 encoder (octvertexnormals, watermask).
- :mod:`tiles.terrain.layer`: ``layer.json`` with the available tile ranges.
- :mod:`tiles.terrain.build`: streaming build from DEM files, heights made ellipsoidal with the
  geoid of :mod:`tiles.geoid`; see its docstring for the output layout and how to serve it.
"""

from __future__ import annotations

from tiles.terrain.build import (CONTENT_TYPE, TerrainOptions, TerrainSummary,
                                 build_terrain)

__all__ = ["CONTENT_TYPE", "TerrainOptions", "TerrainSummary", "build_terrain"]
