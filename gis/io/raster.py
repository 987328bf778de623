"""DEM sources: GeoTIFF, netCDF (GMT grids included), ESRI ASCII grids, also inside a zip."""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.errors import RasterioIOError

from gis.errors import CRSError, MalformedFileError, UnknownFormatError

log = logging.getLogger(__name__)

RASTER_SUFFIXES = {".tif", ".tiff", ".asc", ".nc", ".grd", ".nc4", ".img", ".vrt", ".bil", ".dem"}


@dataclass
class DemSource:
    """A DEM read into memory (float32, NaN where there is no data).

    Attributes:
        path: The file.
        data: Elevations, metres, shape (rows, cols), north up.
        transform: Affine transform of the pixel corners.
        crs: The CRS, or None when the file has none.
    """

    path: str
    data: np.ndarray
    transform: Affine
    crs: CRS | None

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return self.data.shape

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel size (x, y), positive."""
        return abs(self.transform.a), abs(self.transform.e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy)."""
        rows, cols = self.shape
        x0, y0 = self.transform @ (0, 0)
        x1, y1 = self.transform @ (cols, rows)
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def is_raster_path(path: str | os.PathLike) -> bool:
    """Whether the path looks like a DEM (by suffix, or a zip holding one)."""
    p = str(path).lower()
    if p.endswith(".zip"):
        return raster_member(path) is not None
    return Path(p).suffix in RASTER_SUFFIXES


def raster_member(path: str | os.PathLike) -> str | None:
    """The first raster file inside a zip, or None."""
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if Path(name).suffix.lower() in RASTER_SUFFIXES:
                    return name
    except (zipfile.BadZipFile, OSError):
        return None
    return None


def dem_gdal_path(path: str | os.PathLike) -> str:
    """GDAL path of a DEM file, looking inside zips."""
    p = str(path)
    if p.lower().endswith(".zip"):
        member = raster_member(p)
        if member is None:
            raise UnknownFormatError("zip holds no raster", path=p)
        return f"/vsizip/{os.path.abspath(p)}/{member}"
    return p


def read_dem(path: str | os.PathLike, crs: str | None = None) -> DemSource:
    """Read a single-band DEM.

    netCDF grids without a CRS tag (GMT writes none) are taken as EPSG:4326 when their axes are
    named lon/lat; ``crs`` overrides whatever the file says.

    Raises:
        MalformedFileError: The file is not a readable raster (truncated, corrupt).
        CRSError: No CRS in the file and none given.
    """
    gpath = dem_gdal_path(path)
    try:
        with rasterio.open(gpath) as src:
            if src.count < 1:
                raise MalformedFileError("raster has no bands", path=str(path))
            data = src.read(1, masked=True).astype("float32").filled(np.nan)
            transform = src.transform
            file_crs = CRS.from_user_input(src.crs) if src.crs else None
            if file_crs is None and crs is None and _looks_lonlat(src):
                log.warning("%s: no CRS in the file; its coordinates look like degrees, so "
                            "EPSG:4326 is assumed (pass --crs to say otherwise)", path)
                file_crs = CRS.from_epsg(4326)
    except RasterioIOError as err:
        message = str(err).splitlines()[0]
        if "not recognized" in message:
            raise UnknownFormatError("unknown format: not a raster GDAL can read",
                                     path=str(path)) from err
        raise MalformedFileError(f"cannot read raster: {message}", path=str(path)) from err
    if crs:
        file_crs = CRS.from_user_input(crs)
    if file_crs is None:
        raise CRSError("DEM has no CRS; pass --crs", path=str(path))
    if transform.is_identity:
        raise MalformedFileError("raster has no georeferencing", path=str(path))
    return DemSource(path=str(path), data=data, transform=transform, crs=file_crs)


def _looks_lonlat(src) -> bool:
    """A grid (netCDF/GMT, which often carry no CRS) whose extent fits in degrees."""
    if src.driver not in ("netCDF", "GMT") or src.transform.is_identity:
        return False
    left, bottom, right, top = src.bounds
    return -180.5 <= left < right <= 360.5 and -90.5 <= min(bottom, top) < max(bottom, top) <= 90.5
