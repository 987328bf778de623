"""The feature model every reader yields."""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd


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


def records_frame(records: list[dict], columns: list[str], crs, floats: tuple[str, ...],
                  ints: tuple[str, ...]) -> gpd.GeoDataFrame:
    """A frame of ``records`` (dicts with ``columns`` and ``geometry``): ``floats`` as float,
    ``ints`` as nullable Int64, other columns as objects with None for missing (the shapes the
    building readers hand to the standard's checks)."""
    data = pd.DataFrame.from_records(records, columns=[*columns, "geometry"])
    geoms = np.empty(len(data), dtype=object)
    geoms[:] = data.pop("geometry").tolist()
    for col in floats:
        data[col] = pd.to_numeric(data[col]).astype(float)
    for col in ints:
        data[col] = pd.array(data[col].tolist(), dtype="Int64")
    for col in data.columns.difference([*floats, *ints]):
        data[col] = data[col].astype(object).where(data[col].notna(), None)
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, index=data.index), crs=crs)
