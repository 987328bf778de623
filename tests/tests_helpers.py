"""Small builders shared by tests (kept out of conftest so they can be imported)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import rasterio
import shapely


def buildings_frame(n: int = 5, crs: str = "EPSG:3826", **over) -> gpd.GeoDataFrame:
    """``n`` standard buildings in Hsinchu with every field set."""
    rows = []
    for i in range(n):
        rows.append(dict(id=f"b{i}", name=f"名稱 {i}" if i % 2 else None, height=3.5 + i,
                         storeys=i + 1, storey_height=3.0, ground_elevation=10.25 * i,
                         roof_type=["flat", "gable", "hip", "pyramid", "shed"][i % 5],
                         roof_height=0.0 if i % 5 == 0 else 2.5,
                         ridge_direction=float((i * 30) % 180),
                         usage="residential", year_built=1950 + i, structure="RC", lod=1,
                         source="test", lineage="made in a test",
                         geometry=shapely.box(250000 + 50 * i, 2742000, 250020 + 50 * i, 2742015)))
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:3826").to_crs(crs)
    for k, v in over.items():
        frame[k] = v
    return frame


def read_nan(path) -> np.ndarray:
    """Band 1 of a raster as float32 with its nodata value as NaN."""
    with rasterio.open(path) as ds:
        a = ds.read(1)
        nodata = ds.nodata
    z = a.astype(np.float32)
    if nodata is not None:
        z[a == nodata] = np.nan
    return z
