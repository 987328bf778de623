"""The feature model every reader yields."""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd


@dataclass
class SourceLayer:
    """One layer read from a source file.

    Attributes:
        path: The file it came from.
        name: Layer name inside the source (GeoPackage layer, CityGML feature type...).
        frame: The records, in the source CRS, with x = easting/longitude and y = northing/latitude
            (traditional GIS axis order, whatever the CRS definition says). Columns already carry
            the standard's field names where the reader knows a mapping; ``id`` is a string.
        standard: The data standard the columns follow (``building``, ``road``...), or None when the
            reader does not know.
        field_sources: Standard field -> source field it was read from, for error messages.
        extras: Companion tables (e.g. ``surfaces``: LOD2 surfaces of CityGML buildings, one row
            per surface with ``building_id``, ``surface_type``, 3D geometry).
        skipped: Human-readable notes on records the reader left out on purpose, with counts.
    """

    path: str
    name: str
    frame: gpd.GeoDataFrame
    standard: str | None = None
    field_sources: dict[str, str] = field(default_factory=dict)
    extras: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def crs(self):
        """The layer's CRS (pyproj.CRS) or None."""
        return self.frame.crs

    def __len__(self) -> int:
        return len(self.frame)
