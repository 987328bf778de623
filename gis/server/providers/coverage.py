"""OGC API - Coverages: a DEM of the base-map store as CoverageJSON or GeoTIFF.

A pygeoapi ``coverage`` provider over a raster layer of the store: a GeoPackage 2D gridded
coverage (read through GDAL's GPKG driver, window by window) or a PostGIS raster table of the
same grid (the tiles meeting the window, through the GiST index on their hulls)::

    - type: coverage
      name: gis.server.providers.coverage.StoreCoverageProvider
      data: /srv/ngis/basemap.gpkg            # or postgresql://user:pw@host/db?schema=basemap
      options:
        table: dem                            # default: the store's only raster layer
        max_cells: 1000000                    # optional: larger requests are refused (400)
      format: {name: GTiff, mimetype: image/tiff}

Why not pygeoapi's stock ``rasterio`` provider: it does open ``GPKG:path:table`` and its subsets
read the right cells, but asked for the native format with no parameters it returns the raw data
file (the whole GeoPackage, every layer and the catalogue, as "image/tiff"); it has no size limit;
its CoverageJSON puts the cell edges where CoverageJSON wants cell centres, names the band
``null`` and labels EPSG codes with an ``OGC/1.3`` URI; ``bbox-crs`` URIs break it; and it keeps a
file handle open per request.

Query parameters (as pygeoapi passes them): ``subset`` on ``x``/``y`` (the store CRS, metres) or
``Lon``/``Lat`` (CRS84 degrees), intervals ``x(a:b)`` or points ``x(a)``; ``bbox`` (CRS84, or
``bbox-crs``); ``properties`` (the one band, ``elevation``). A request selects every cell that
meets the requested interval (a point selects the cell holding it). Output is CoverageJSON
(``f=json``, metres in nine significant digits, which read back as the stored float32
exactly; ``null`` for no data) or a GeoTIFF (``f=GTiff``,
float32, NaN no data) of the same cells.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from pygeoapi.provider.base import (BaseProvider, ProviderConnectionError,
                                    ProviderInvalidQueryError, ProviderQueryError)
from pyproj import CRS, Transformer
from rasterio.io import MemoryFile
from rasterio.windows import Window

from gis.server.providers.tiles import (cached_store_state, gpkg_connect, is_postgres, pg_cursor,
                                        pg_split, redact)

MAX_CELLS = 1_000_000
"""Default largest response, in cells (about 18 MB of CoverageJSON, 4 MB of GeoTIFF)."""
FIELD = "elevation"
CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
NATIVE_FORMATS = {"gtiff", "geotiff", "tif", "tiff"}
_GEO_AXES = {"lon": "lon", "long": "lon", "longitude": "lon", "lat": "lat", "latitude": "lat"}
_XY_AXES = {"x": "x", "e": "x", "easting": "x", "y": "y", "n": "y", "northing": "y"}
_EPS = 1e-9


class CoverageTooLargeError(ProviderQueryError):
    """The request would return more cells than the provider's ``max_cells``: 400, not 500."""

    ogc_exception_code = "InvalidParameterValue"
    http_status_code = 400


@dataclass
class Grid:
    """A north-up raster layer: CRS, pixel-corner transform and size."""

    table: str
    crs: CRS
    transform: Affine
    width: int
    height: int
    signature: str
    checked: float = field(default_factory=time.monotonic)

    @property
    def res(self) -> tuple[float, float]:
        return abs(self.transform.a), abs(self.transform.e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        x0, y0 = self.transform.c, self.transform.f
        return (x0, y0 + self.height * self.transform.e, x0 + self.width * self.transform.a, y0)

    @property
    def crs_uri(self) -> str:
        epsg = self.crs.to_epsg()
        return EPSG_URI.format(epsg) if epsg else CRS84_URI if self.crs.is_geographic else \
            self.crs.to_string()

    def window(self, bounds: tuple[float, float, float, float],
               point_x: bool = False, point_y: bool = False) -> Window | None:
        """The cells meeting ``bounds`` (storage CRS), clipped to the grid; None if none."""
        minx, miny, maxx, maxy = bounds
        rx, ry = self.res
        x0, y0 = self.transform.c, self.transform.f
        c0 = math.floor((minx - x0) / rx + _EPS)
        c1 = c0 + 1 if point_x else math.ceil((maxx - x0) / rx - _EPS)
        r0 = math.floor((y0 - maxy) / ry + _EPS)
        r1 = r0 + 1 if point_y else math.ceil((y0 - miny) / ry - _EPS)
        c0, c1 = max(c0, 0), min(c1, self.width)
        r0, r1 = max(r0, 0), min(r1, self.height)
        if c1 <= c0 or r1 <= r0:
            return None
        return Window(c0, r0, c1 - c0, r1 - r0)


_GRIDS: dict[tuple[str, str], tuple[Any, Grid]] = {}


def _gpkg_raster_tables(path: str) -> list[str]:
    with contextlib.closing(gpkg_connect(path)) as con:
        try:
            rows = con.execute("SELECT table_name FROM gpkg_contents WHERE data_type = "
                               "'2d-gridded-coverage' ORDER BY table_name").fetchall()
        except sqlite3.DatabaseError as err:
            raise ProviderConnectionError(user_msg=f"not a GeoPackage store: {err}") from err
    return [r[0] for r in rows]


def _load_gpkg_grid(path: str, table: str) -> Grid:
    with contextlib.closing(gpkg_connect(path)) as con:
        row = con.execute("SELECT last_change FROM gpkg_contents WHERE table_name = ? AND "
                          "data_type = '2d-gridded-coverage'", (table,)).fetchone()
    if row is None:
        raise ProviderConnectionError(user_msg=f"no raster layer {table!r} in the store")
    try:
        with rasterio.open(f"GPKG:{path}:{table}") as src:
            if src.transform.b or src.transform.d:
                raise ProviderConnectionError(user_msg=f"{table!r} is not north-up")
            return Grid(table=table, crs=CRS.from_user_input(src.crs), transform=src.transform,
                        width=src.width, height=src.height,
                        signature=f"{row[0]}|{src.width}x{src.height}")
    except rasterio.errors.RasterioIOError as err:
        raise ProviderConnectionError(user_msg=f"cannot read raster {table!r}: {err}") from err


def _pg_raster_tables(url: str) -> list[str]:
    _, schema = pg_split(url)
    with pg_cursor(url) as cur:
        cur.execute("SELECT r_table_name FROM raster_columns WHERE r_table_schema = %s ORDER BY 1",
                    (schema,))
        return [r[0] for r in cur.fetchall()]


def _load_pg_grid(url: str, table: str) -> Grid:
    from psycopg2 import sql

    from gis.server.providers.tiles import _pg_signature

    _, schema = pg_split(url)
    with pg_cursor(url) as cur:
        cur.execute("SELECT r_raster_column FROM raster_columns WHERE r_table_schema = %s AND "
                    "r_table_name = %s", (schema, table))
        row = cur.fetchone()
        if row is None:
            raise ProviderConnectionError(user_msg=f"no raster layer {table!r} in the store")
        rast = sql.Identifier(row[0])
        cur.execute(sql.SQL(
            "SELECT ST_SRID({r}), ST_ScaleX({r}), ST_ScaleY({r}), ST_SkewX({r}), ST_SkewY({r}), "
            "min(ST_UpperLeftX({r})), max(ST_UpperLeftY({r})), "
            "max(ST_UpperLeftX({r}) + ST_Width({r}) * ST_ScaleX({r})), "
            "min(ST_UpperLeftY({r}) + ST_Height({r}) * ST_ScaleY({r})), count(*) "
            "FROM {s}.{t} GROUP BY 1, 2, 3, 4, 5").format(
            r=rast, s=sql.Identifier(schema), t=sql.Identifier(table)))
        rows = cur.fetchall()
        signature = _pg_signature(cur, schema, table)
    if len(rows) != 1:
        raise ProviderConnectionError(user_msg=f"raster {table!r} is empty or not one grid")
    srid, sx, sy, kx, ky, x0, y0, x1, y1, count = rows[0]
    if kx or ky or sy >= 0:
        raise ProviderConnectionError(user_msg=f"{table!r} is not north-up")
    width, height = round((x1 - x0) / sx), round((y1 - y0) / sy)
    return Grid(table=table, crs=CRS.from_epsg(int(srid)),
                transform=Affine(sx, 0, x0, 0, sy, y0), width=width, height=height,
                signature=signature or f"unversioned|{count}|{x0},{y0},{x1},{y1}")


def grid_info(data: str, table: str | None) -> Grid:
    """The cached grid of a store raster layer (``table`` None: the store's only raster)."""
    pg = is_postgres(data)
    if table is None:
        tables = _pg_raster_tables(data) if pg else _gpkg_raster_tables(data)
        if len(tables) != 1:
            raise ProviderConnectionError(
                user_msg=f"say which raster layer (options.table); the store has {tables}")
        table = tables[0]
    return cached_store_state(_GRIDS, data, table, _load_gpkg_grid, _load_pg_grid)


def _crs_of(value: Any) -> CRS:
    """A CRS from what pygeoapi may pass as a bbox CRS: an EPSG int, a code or an OGC URI."""
    if value is None:
        return CRS.from_user_input("OGC:CRS84")
    if isinstance(value, int):
        return CRS.from_epsg(value)
    text = str(value).strip()
    if text.isdigit():
        return CRS.from_epsg(int(text))
    if "/def/crs/" in text:
        parts = text.rstrip("/").split("/")
        auth, code = parts[-3], parts[-1]
        text = f"OGC:{code}" if auth.upper() == "OGC" else f"{auth}:{code}"
    try:
        return CRS.from_user_input(text)
    except Exception as err:  # noqa: BLE001 - pyproj raises CRSError and others
        raise ProviderInvalidQueryError(user_msg=f"unknown CRS {value!r}") from err


def float32_digits(data: np.ndarray) -> np.ndarray:
    """float32 values as float64 rounded to nine significant digits: what JSON writes is then
    short and reads back as exactly the same float32 (nine digits always round-trip)."""
    out = data.astype("float64")
    mask = np.isfinite(out) & (out != 0)
    vals = out[mask]
    exps = np.floor(np.log10(np.abs(vals))).astype(int)
    for e in np.unique(exps):
        sel = exps == e
        vals[sel] = np.round(vals[sel], 8 - int(e))
    out[mask] = vals
    return out


class StoreCoverageProvider(BaseProvider):
    """The store's DEM for OGC API - Coverages."""

    def __init__(self, provider_def: dict[str, Any]):
        super().__init__(provider_def)
        self.data = str(self.data)
        options = dict(self.options or {})
        self.options = options
        self.table = options.get("table")
        self.max_cells = int(options.get("max_cells", MAX_CELLS))
        fmt = provider_def.get("format") or {"name": "GTiff", "mimetype": "image/tiff"}
        self.native_format = fmt.get("name", "GTiff")
        try:
            self.grid = grid_info(self.data, self.table)
        except ProviderConnectionError:
            raise
        except Exception as err:  # noqa: BLE001 - whatever the backend raises: no connection
            raise ProviderConnectionError(
                user_msg=f"cannot open coverage in {redact(self.data)}: {err}") from err
        self.table = self.grid.table
        self.axes = ["x", "y", "Lon", "Lat"]
        self.crs = self.grid.crs_uri
        self.num_bands = 1
        self.filename = None
        self._coverage_properties = self._properties()
        self._fields = self.get_fields()

    def __repr__(self) -> str:
        return f"<StoreCoverageProvider> {redact(self.data)} {self.table}"

    # -- description ----------------------------------------------------------------------
    def _properties(self) -> dict[str, Any]:
        g = self.grid
        rx, ry = g.res
        return {
            "bbox": list(g.bounds), "bbox_crs": g.crs_uri,
            "crs_type": "GeographicCRS" if g.crs.is_geographic else "ProjectedCRS",
            "bbox_units": "deg" if g.crs.is_geographic else "m",
            "x_axis_label": "x", "y_axis_label": "y", "axes": ["x", "y"],
            "width": g.width, "height": g.height, "resx": rx, "resy": ry, "num_bands": 1,
        }

    def get_fields(self) -> dict[str, dict[str, Any]]:
        return {FIELD: {"title": "Elevation", "type": "number", "x-ogc-unit": "m",
                        "description": "Height of the terrain, metres, as the source gives it "
                                       "(orthometric, TWVD2001 for Taiwanese sources)"}}

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        return self.get_fields()

    def get_coverage_domainset(self, *args, **kwargs) -> dict[str, Any]:
        """The coverage's domain set (OGC CIS 1.1 JSON), the whole grid."""
        g = self.grid
        minx, miny, maxx, maxy = g.bounds
        return {
            "type": "DomainSetType",
            "generalGrid": {
                "type": "GeneralGridCoverageType",
                "srsName": g.crs_uri,
                "axisLabels": ["x", "y"],
                "axis": [
                    {"type": "RegularAxisType", "axisLabel": "x", "lowerBound": minx,
                     "upperBound": maxx, "uomLabel": "m", "resolution": g.res[0]},
                    {"type": "RegularAxisType", "axisLabel": "y", "lowerBound": miny,
                     "upperBound": maxy, "uomLabel": "m", "resolution": g.res[1]},
                ],
                "gridLimits": {
                    "type": "GridLimitsType",
                    "srsName": "http://www.opengis.net/def/crs/OGC/0/Index2D",
                    "axisLabels": ["i", "j"],
                    "axis": [{"type": "IndexAxisType", "axisLabel": "i", "lowerBound": 0,
                              "upperBound": g.width - 1},
                             {"type": "IndexAxisType", "axisLabel": "j", "lowerBound": 0,
                              "upperBound": g.height - 1}],
                },
            },
        }

    def get_coverage_rangetype(self, *args, **kwargs) -> dict[str, Any]:
        """The coverage's range type (OGC CIS 1.1 JSON): one float32 band in metres."""
        return {"type": "DataRecordType", "field": [{
            "id": FIELD, "type": "QuantityType", "name": "Elevation",
            "definition": "float32", "nodata": "NaN",
            "uom": {"id": "http://www.opengis.net/def/uom/UCUM/m", "type": "UnitReference",
                    "code": "m"},
        }]}

    # -- query ----------------------------------------------------------------------------
    def _window(self, subsets: dict[str, list], bbox: list, bbox_crs) -> Window:
        g = self.grid
        xy = {_XY_AXES[k.lower()]: v for k, v in subsets.items() if k.lower() in _XY_AXES}
        geo = {_GEO_AXES[k.lower()]: v for k, v in subsets.items() if k.lower() in _GEO_AXES}
        unknown = [k for k in subsets if k.lower() not in _XY_AXES and k.lower() not in _GEO_AXES]
        if unknown:
            raise ProviderInvalidQueryError(user_msg=f"unknown subset axis {unknown[0]!r}; "
                                                     f"axes: {', '.join(self.axes)}")
        if xy and geo:
            raise ProviderInvalidQueryError(
                user_msg="subset either x/y (store CRS) or Lon/Lat (CRS84), not both")
        if bbox and subsets:
            raise ProviderInvalidQueryError(user_msg="bbox and subset are exclusive")
        minx, miny, maxx, maxy = g.bounds
        point_x = point_y = False
        if bbox:
            if len(bbox) == 6:
                bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
            if len(bbox) != 4:
                raise ProviderInvalidQueryError(user_msg="bbox takes 4 (or 6) numbers")
            src = _crs_of(bbox_crs)
            box = [float(v) for v in bbox]
            if src != g.crs:
                to_grid = Transformer.from_crs(src, g.crs, always_xy=True)
                box = list(to_grid.transform_bounds(*box, densify_pts=21))
            minx, miny, maxx, maxy = box
        elif xy:
            (minx, maxx, point_x), (miny, maxy, point_y) = (
                self._interval(xy.get(a), lo, hi, a) for a, lo, hi in
                (("x", minx, maxx), ("y", miny, maxy)))
        elif geo:
            to_ll = Transformer.from_crs(g.crs, "OGC:CRS84", always_xy=True)
            w, s, e, n = to_ll.transform_bounds(*g.bounds, densify_pts=21)
            (w, e, px), (s, n, py) = (self._interval(geo.get(a), lo, hi, a) for a, lo, hi in
                                      (("lon", w, e), ("lat", s, n)))
            to_grid = Transformer.from_crs("OGC:CRS84", g.crs, always_xy=True)
            if px and py:
                x, y = to_grid.transform(w, s)
                minx = maxx = x
                miny = maxy = y
                point_x = point_y = True
            else:
                minx, miny, maxx, maxy = to_grid.transform_bounds(w, s, e, n, densify_pts=21)
        if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
            raise ProviderInvalidQueryError(user_msg="the requested area cannot be projected to "
                                                     "the coverage CRS")
        window = g.window((minx, miny, maxx, maxy), point_x, point_y)
        if window is None:
            gb = ", ".join(f"{v:.10g}" for v in g.bounds)
            raise ProviderInvalidQueryError(
                user_msg=f"the requested area does not meet the coverage (extent {gb} in "
                         f"{g.crs_uri})")
        return window

    @staticmethod
    def _interval(values, lo: float, hi: float, axis: str) -> tuple[float, float, bool]:
        if values is None:
            return lo, hi, False
        try:
            nums = [float(v) for v in values]
        except (TypeError, ValueError) as err:
            raise ProviderInvalidQueryError(user_msg=f"subset {axis} takes numbers") from err
        if len(nums) == 1:
            return nums[0], nums[0], True
        if len(nums) != 2 or nums[0] > nums[1]:
            raise ProviderInvalidQueryError(user_msg=f"subset {axis}(low:high) with low <= high")
        return nums[0], nums[1], nums[0] == nums[1]

    def read(self, window: Window) -> np.ndarray:
        """Elevations of a window of the grid (float32, NaN for no data)."""
        if is_postgres(self.data):
            return self._read_pg(window)
        with rasterio.open(f"GPKG:{self.data}:{self.table}") as src:
            out = src.read(1, window=window, out_dtype="float32")
            if src.nodata is not None and not np.isnan(src.nodata):
                out[out == src.nodata] = np.nan
        return out

    def _read_pg(self, window: Window) -> np.ndarray:
        from psycopg2 import sql

        from gis.store.postgis import parse_raster_wkb

        g = self.grid
        _, schema = pg_split(self.data)
        c0, r0, w, h = int(window.col_off), int(window.row_off), int(window.width), \
            int(window.height)
        left, top = g.transform @ (c0, r0)
        right, bottom = g.transform @ (c0 + w, r0 + h)
        rx, ry = g.res
        # Shrink by a quarter cell so tiles that only touch the window stay out.
        env = (left + rx / 4, bottom + ry / 4, right - rx / 4, top - ry / 4)
        with pg_cursor(self.data) as cur:
            cur.execute("SELECT r_raster_column FROM raster_columns WHERE r_table_schema = %s "
                        "AND r_table_name = %s", (schema, self.table))
            rast = sql.Identifier(cur.fetchone()[0])
            cur.execute(sql.SQL("SELECT ST_AsBinary({r}) FROM {s}.{t} WHERE ST_ConvexHull({r}) "
                                "&& ST_MakeEnvelope(%s, %s, %s, %s, %s)").format(
                r=rast, s=sql.Identifier(schema), t=sql.Identifier(self.table)),
                (*env, g.crs.to_epsg() or 0))
            blobs = [bytes(r[0]) for r in cur.fetchall()]
        out = np.full((h, w), np.nan, dtype="float32")
        for blob in blobs:
            data, origin, _ = parse_raster_wkb(blob)
            tc = round((origin.c - g.transform.c) / rx) - c0
            tr = round((g.transform.f - origin.f) / ry) - r0
            th, tw = data.shape
            a0, a1 = max(tr, 0), min(tr + th, h)
            b0, b1 = max(tc, 0), min(tc + tw, w)
            if a1 > a0 and b1 > b0:
                out[a0:a1, b0:b1] = data[a0 - tr:a1 - tr, b0 - tc:b1 - tc]
        return out

    def query(self, properties=None, subsets=None, bbox=None, bbox_crs=None, datetime_=None,
              format_="json", **kwargs):
        """A subset of the DEM as CoverageJSON (dict) or GeoTIFF (bytes)."""
        for name in properties or []:
            if name not in self.fields:
                raise ProviderInvalidQueryError(user_msg=f"unknown range property {name!r}; "
                                                         f"the coverage has {FIELD!r}")
        window = self._window(dict(subsets or {}), list(bbox or []), bbox_crs)
        cells = int(window.width) * int(window.height)
        if cells > self.max_cells:
            raise CoverageTooLargeError(
                user_msg=f"the request selects {int(window.width)} x {int(window.height)} = "
                         f"{cells} cells, more than this service's limit of {self.max_cells}; "
                         f"ask for a smaller subset or bbox")
        data = self.read(window)
        transform = rasterio.windows.transform(window, self.grid.transform)
        if str(format_ or "json").lower() in NATIVE_FORMATS | {self.native_format.lower()}:
            self.filename = f"{self.table}.tif"
            return self._geotiff(data, transform)
        return self._covjson(data, transform)

    def _geotiff(self, data: np.ndarray, transform: Affine) -> bytes:
        h, w = data.shape
        epsg = self.grid.crs.to_epsg()
        crs = rasterio.crs.CRS.from_epsg(epsg) if epsg else \
            rasterio.crs.CRS.from_wkt(self.grid.crs.to_wkt())
        profile = dict(driver="GTiff", width=w, height=h, count=1, dtype="float32", crs=crs,
                       transform=transform,
                       nodata=np.nan, compress="deflate", predictor=3)
        if w >= 256 and h >= 256:
            profile.update(tiled=True, blockxsize=256, blockysize=256)
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                dst.write(data, 1)
                dst.update_tags(1, UNITS="m")
                dst.set_band_description(1, FIELD)
            return mem.read()

    def _covjson(self, data: np.ndarray, transform: Affine) -> dict[str, Any]:
        h, w = data.shape
        x0, y0 = transform @ (0.5, 0.5)
        x1, y1 = transform @ (w - 0.5, h - 0.5)
        values = float32_digits(data).astype(object)
        values[np.isnan(data)] = None
        g = self.grid
        return {
            "type": "Coverage",
            "domain": {
                "type": "Domain",
                "domainType": "Grid",
                "axes": {"x": {"start": x0, "stop": x1, "num": w},
                         "y": {"start": y0, "stop": y1, "num": h}},
                "referencing": [{
                    "coordinates": ["x", "y"],
                    "system": {"type": self._coverage_properties["crs_type"], "id": g.crs_uri},
                }],
            },
            "parameters": {FIELD: {
                "type": "Parameter",
                "description": {"en": self.get_fields()[FIELD]["description"]},
                "unit": {"label": {"en": "metre"},
                         "symbol": {"value": "m", "type": "http://www.opengis.net/def/uom/UCUM/"}},
                "observedProperty": {"label": {"en": "Elevation"}},
            }},
            "ranges": {FIELD: {
                "type": "NdArray",
                "dataType": "float",
                "axisNames": ["y", "x"],
                "shape": [h, w],
                "values": values.ravel().tolist(),
            }},
        }


__all__ = ["StoreCoverageProvider", "CoverageTooLargeError", "Grid", "grid_info", "MAX_CELLS"]
