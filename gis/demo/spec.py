"""Region sizes and shared constants of the synthetic demo data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gis.errors import NgisError

CRS = "EPSG:3826"
ORIGIN = (210000.0, 2660000.0)  # lower-left corner: TWD97/TM2, inland central Taiwan
DISTRICT = 4000.0  # side of a district: the unit of town layout and of streaming (metres)
SIZE_NAMES = ("small", "city", "national")


@dataclass(frozen=True)
class RegionSpec:
    """What a ``--size`` means.

    Attributes:
        size: Size name.
        extent: Side of the square region (metres), a multiple of :data:`DISTRICT`.
        cell: DEM cell size (metres).
        town_radius: Radius of a full-size town (metres); hill towns get less.
        streamed: Keep the DEM on disk (memory-mapped) instead of in memory.
        window: DEM window side (cells) for computing and writing the GeoTIFF.
        hotspots: Crash hotspots per district (low, high inclusive).
        main_town_boost: Radius factor of the district nearest the region centre.
    """

    size: str
    extent: float
    cell: float
    town_radius: float
    streamed: bool
    window: int
    hotspots: tuple[int, int]
    main_town_boost: float = 1.0

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in EPSG:3826."""
        x0, y0 = ORIGIN
        return (x0, y0, x0 + self.extent, y0 + self.extent)

    @property
    def shape(self) -> tuple[int, int]:
        """DEM (rows, columns)."""
        n = int(round(self.extent / self.cell))
        return (n, n)

    @property
    def districts(self) -> int:
        """Districts along one side."""
        return int(round(self.extent / DISTRICT))


def region_spec(size: str, scale: float = 1.0) -> RegionSpec:
    """The spec of a named size.

    Args:
        size: ``small``, ``city`` or ``national``.
        scale: Factor on the side of ``national`` (tests use e.g. 0.08 for a 2 x 2 district run
            through the streaming code path); snapped to whole districts. Ignored for other sizes.

    Returns:
        The region spec.

    Raises:
        NgisError: Unknown size or a scale that leaves no district.
    """
    if size == "small":
        return RegionSpec("small", 4000.0, 10.0, 900.0, False, 512, (3, 5))
    if size == "city":
        return RegionSpec("city", 20000.0, 10.0, 1000.0, False, 1024, (0, 2), main_town_boost=1.8)
    if size == "national":
        districts = int(np.floor(100000.0 * scale / DISTRICT + 0.5))
        if districts < 1:
            raise NgisError(f"scale {scale} leaves no {DISTRICT:.0f} m district")
        return RegionSpec("national", districts * DISTRICT, 10.0, 1100.0, True, 512, (0, 2),
                          main_town_boost=1.5)
    raise NgisError(f"unknown size {size!r}; expected one of {', '.join(SIZE_NAMES)}")


def source_of(seed: int) -> str:
    """The ``source`` value of every synthetic record."""
    return f"NGIS synthetic demo (seed {seed})"


def sub_rng(seed: int, *key: int) -> np.random.Generator:
    """An independent generator for one part of the region, derived from the seed and a key.

    The same (seed, key) always gives the same stream, whatever was generated before.
    """
    return np.random.default_rng([seed & 0xFFFFFFFF, *key])
