"""Geographic tiling scheme of Cesium terrain (``GeographicTilingScheme``, TMS layout).

Level 0 has 2 x 1 tiles of 180 x 180 degrees (x = 0 west of Greenwich, x = 1 east); each level
halves the tiles. ``y`` counts from the south (TMS, quantized-mesh-1.0 spec "Tile format" and
CesiumJS ``CesiumTerrainProvider`` with ``scheme: "tms"``): tile (z, x, y) spans

    west  = -180 + x * 180 / 2**z        south = -90 + y * 180 / 2**z

Every tile carries a ``SIZE + 1`` square grid of samples whose outer rows and columns lie exactly
on the tile edges, so neighbours sample the same points along a shared edge (quantized-mesh tiles
overlap by one vertex). Row 0 of a grid is the north edge.
"""

from __future__ import annotations

import math

import numpy as np

#: Samples per tile side minus one (257 x 257 grid; Cesium's own quantized-mesh terrain uses 256).
SIZE = 256


def tile_span(z: int) -> float:
    """Tile side in degrees at level ``z``."""
    return 180.0 / (1 << z)


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a tile in degrees."""
    d = tile_span(z)
    return -180.0 + x * d, -90.0 + y * d, -180.0 + (x + 1) * d, -90.0 + (y + 1) * d


def tiles_per_level(z: int) -> tuple[int, int]:
    """(columns, rows) of tiles at level ``z``."""
    return 2 << z, 1 << z


def tile_range(z: int, bounds: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), inclusive, of the tiles at level ``z`` that a lon/lat box touches."""
    west, south, east, north = bounds
    d = tile_span(z)
    nx, ny = tiles_per_level(z)
    x0 = min(max(int(math.floor((west + 180.0) / d)), 0), nx - 1)
    x1 = min(max(int(math.ceil((east + 180.0) / d)) - 1, x0), nx - 1)
    y0 = min(max(int(math.floor((south + 90.0) / d)), 0), ny - 1)
    y1 = min(max(int(math.ceil((north + 90.0) / d)) - 1, y0), ny - 1)
    return x0, y0, x1, y1


def sample_lonlat(z: int, x: int, y: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes (columns, west to east) and latitudes (rows, north to south) of a tile's grid."""
    west, south, east, north = tile_bounds(z, x, y)
    t = np.arange(size + 1, dtype=np.float64) / size
    return west + (east - west) * t, north - (north - south) * t


def native_zoom(resolution_deg: float, size: int = SIZE) -> int:
    """The coarsest level whose grid spacing is at most ``resolution_deg`` (the DEM's cell)."""
    return max(0, int(math.ceil(math.log2(180.0 / (size * resolution_deg)) - 1e-9)))
