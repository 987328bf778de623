"""DEM sources: GeoTIFF, netCDF (GMT grids included), ESRI ASCII grids, also inside a zip."""

from __future__ import annotations

import contextlib
import logging
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

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


def read_dem(path: str | os.PathLike, crs: str | None = None,
             target_crs: CRS | None = None) -> DemSource:
    """Read a whole single-band DEM into memory (see :func:`open_dem` for streaming), warped to
    ``target_crs`` (bilinear) when given.

    netCDF/GMT grids without a CRS tag are taken as EPSG:4326 when their extent fits in degrees
    (with a warning); ``crs`` overrides whatever the file says.

    Raises:
        MalformedFileError: The file is not a readable raster (truncated, corrupt, no bands,
            no georeferencing).
        CRSError: No CRS in the file and none given.
    """
    with open_dem(path, crs, target_crs) as (ds, src_crs, _):
        if ds.count < 1:
            raise MalformedFileError("raster has no bands", path=str(path))
        if ds.transform.is_identity:
            raise MalformedFileError("raster has no georeferencing", path=str(path))
        data = np.full((ds.height, ds.width), np.nan, dtype="float32")
        for (r, c), block in iter_blocks(ds):
            data[r:r + block.shape[0], c:c + block.shape[1]] = block
        return DemSource(path=str(path), data=data, transform=ds.transform,
                         crs=target_crs or src_crs)


def _looks_lonlat(src) -> bool:
    """A grid (netCDF/GMT, which often carry no CRS) whose extent fits in degrees."""
    if src.driver not in ("netCDF", "GMT") or src.transform.is_identity:
        return False
    left, bottom, right, top = src.bounds
    return -180.5 <= left < right <= 360.5 and -90.5 <= min(bottom, top) < max(bottom, top) <= 90.5


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


def metric_crs_for(crs: CRS, bounds: tuple[float, float, float, float]) -> CRS:
    """A projected CRS in metres for a DEM in ``crs`` with ``bounds``: TWD97 / TM2 (EPSG:3826)
    inside Taiwan's main island, else the WGS 84 UTM zone of the centre."""
    from pyproj import Transformer
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    w, s, e, n = Transformer.from_crs(crs, 4326, always_xy=True).transform_bounds(*bounds)
    if 119.9 <= w and e <= 122.2 and 21.8 <= s and n <= 25.4:
        return CRS.from_epsg(3826)
    lon, lat = (w + e) / 2, (s + n) / 2
    infos = query_utm_crs_info(datum_name="WGS 84",
                               area_of_interest=AreaOfInterest(lon, lat, lon, lat))
    if not infos:
        raise CRSError(f"no UTM zone for ({lon:.3f}, {lat:.3f})")
    return CRS.from_epsg(int(infos[0].code))


def read_projected_dem(path: str | os.PathLike, crs: str | None = None,
                       target_crs: str | CRS | None = None) -> DemSource:
    """Read a DEM for a model that works in metres: as it is when its CRS is projected, else
    warped (bilinear, at the source's resolution in metres) to ``target_crs`` or to
    :func:`metric_crs_for` its extent.

    Raises:
        MalformedFileError, CRSError: As :func:`read_dem`; also when the CRS's unit is not metres.
    """
    if target_crs is not None:
        return read_dem(path, crs, CRS.from_user_input(target_crs))
    with open_dem(path, crs, quiet=True) as (ds, src_crs, _):
        bounds = tuple(ds.bounds)
    if src_crs.is_projected:
        dem = read_dem(path, crs)
        unit = src_crs.axis_info[0].unit_name if src_crs.axis_info else "metre"
        if unit not in ("metre", "meter", "m"):
            raise CRSError(f"the DEM's CRS is in {unit}, not metres; pass a metric CRS",
                           path=str(path))
        return dem
    return read_dem(path, crs, metric_crs_for(src_crs, bounds))
