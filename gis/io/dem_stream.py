"""Stream a DEM, reprojected, block by block (national grids never sit in memory at once)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from gis.errors import CRSError, MalformedFileError, UnknownFormatError
from gis.io.raster import _looks_lonlat, dem_gdal_path

log = logging.getLogger(__name__)


@contextlib.contextmanager
def open_dem(path: str | os.PathLike, crs: str | None = None, target_crs: CRS | None = None,
             quiet: bool = False):
    """Open a DEM as a rasterio dataset, warped to ``target_crs`` (bilinear, NaN for no data).

    Yields:
        (dataset, source CRS, assumed) where ``assumed`` says the source CRS was guessed.
    """
    gpath = dem_gdal_path(path)
    try:
        src = rasterio.open(gpath)
    except RasterioIOError as err:
        message = str(err).splitlines()[0]
        if "not recognized" in message:
            raise UnknownFormatError("unknown format: not a raster GDAL can read",
                                     path=str(path)) from err
        raise MalformedFileError(f"cannot read raster: {message}", path=str(path)) from err
    with src:
        assumed = False
        src_crs = CRS.from_user_input(crs) if crs else (CRS.from_user_input(src.crs) if src.crs else None)
        if src_crs is None and _looks_lonlat(src):
            src_crs, assumed = CRS.from_epsg(4326), True
            if not quiet:
                log.warning("%s: no CRS in the file; coordinates look like degrees, "
                            "EPSG:4326 assumed", path)
        if src_crs is None:
            raise CRSError("DEM has no CRS; pass --crs", path=str(path))
        if target_crs is None or target_crs == src_crs and src.crs is not None:
            yield src, src_crs, assumed
            return
        nodata = src.nodata if src.nodata is not None else np.nan
        with WarpedVRT(src, src_crs=src_crs.to_wkt(), crs=target_crs.to_wkt(),
                       resampling=Resampling.bilinear, src_nodata=nodata, nodata=np.nan,
                       dtype="float32") as vrt:
            yield vrt, src_crs, assumed


def iter_blocks(ds, size: int = 1024) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """Read ``ds`` band 1 in blocks as float32 with NaN for no data.

    Raises:
        MalformedFileError: A block cannot be read (a corrupt or truncated file).
    """
    for r in range(0, ds.height, size):
        for c in range(0, ds.width, size):
            window = Window(c, r, min(size, ds.width - c), min(size, ds.height - r))
            try:
                block = ds.read(1, window=window, masked=True)
            except RasterioIOError as err:
                raise MalformedFileError(f"cannot read raster block at row {r}, column {c}: "
                                         f"{str(err).splitlines()[0]}", path=ds.name) from err
            yield (r, c), block.astype("float32").filled(np.nan)
