"""OGR vector sources through pyogrio: GeoPackage, GeoJSON, Shapefile, FlatGeobuf, GMT, CSV with
coordinate columns; GeoParquet through geopandas; any of them inside a zip."""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import pyogrio
from pyogrio.errors import DataLayerError, DataSourceError

from gis.errors import MalformedFileError, UnknownFormatError
from gis.io.model import SourceLayer

VECTOR_SUFFIXES = {".gpkg", ".geojson", ".json", ".shp", ".fgb", ".gmt", ".csv", ".parquet",
                   ".geoparquet", ".gml", ".kml", ".gdb"}

#: Column names tried, in order, for CSV coordinates.
CSV_X = ["x", "lon", "longitude", "lng", "easting", "e", "CENT_E_97", "X"]
CSV_Y = ["y", "lat", "latitude", "northing", "n", "CENT_N_97", "Y"]


def gdal_path(path: str | os.PathLike) -> str:
    """The GDAL path of ``path``; files inside a zip get ``/vsizip/``."""
    p = str(path)
    if p.lower().endswith(".zip") and not p.startswith("/vsizip/"):
        return "/vsizip/" + os.path.abspath(p)
    return p


def list_vector_layers(path: str | os.PathLike) -> list[str]:
    """Layer names of a vector source.

    Raises:
        MalformedFileError: The file cannot be opened as vector data.
    """
    if str(path).lower().endswith((".parquet", ".geoparquet")):
        return [Path(path).stem]
    try:
        return [str(name) for name, _ in pyogrio.list_layers(gdal_path(path))]
    except (DataSourceError, DataLayerError) as err:
        raise _open_error(path, err) from err


def read_vector(path: str | os.PathLike, layer: str | None = None) -> list[SourceLayer]:
    """Read one layer (or every layer) of an OGR vector source.

    Args:
        path: The file.
        layer: A layer name; all layers when None.

    Returns:
        One SourceLayer per layer, ``standard`` unset (see :mod:`gis.io.profiles`).

    Raises:
        UnknownFormatError: No driver reads it.
        MalformedFileError: A driver claims it but cannot read it.
    """
    p = str(path)
    if p.lower().endswith((".parquet", ".geoparquet")):
        return [_read_parquet(p)]
    layers = [layer] if layer else list_vector_layers(p)
    return [_read_layer(p, name) for name in layers]


def _read_layer(path: str, layer: str) -> SourceLayer:
    kwargs = {}
    if path.lower().endswith(".csv"):
        kwargs = _csv_options(path)
    try:
        frame = pyogrio.read_dataframe(gdal_path(path), layer=layer, fid_as_index=False, **kwargs)
    except (DataSourceError, DataLayerError) as err:
        raise _open_error(path, err) from err
    if not isinstance(frame, gpd.GeoDataFrame):
        frame = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([None] * len(frame)))
    if ".shp" in path.lower() or path.lower().endswith(".zip"):
        frame = frame.rename(columns=_untruncate(frame.columns))
    return SourceLayer(path=path, name=layer, frame=frame)


def _untruncate(columns) -> dict[str, str]:
    """Shapefile (DBF) names are cut to 10 characters: map ``storey_hei`` back to
    ``storey_height`` when exactly one standard field name starts with it."""
    import standards

    fields = {f for name in standards.FEATURE_STANDARDS for f in standards.load(name).properties}
    out = {}
    for col in columns:
        if len(col) == 10 and col not in fields:
            matches = {f for f in fields if f.startswith(col)}
            if len(matches) == 1:
                out[col] = matches.pop()
    return out


def _csv_options(path: str) -> dict:
    """Open options for a CSV with coordinate columns (types detected, not all strings)."""
    cols = _csv_header(path)
    lower = {c.lower(): c for c in cols}
    xcol = next((lower[c.lower()] for c in CSV_X if c.lower() in lower), None)
    ycol = next((lower[c.lower()] for c in CSV_Y if c.lower() in lower), None)
    if "wkt" in lower:
        opts = {"GEOM_POSSIBLE_NAMES": lower["wkt"], "KEEP_GEOM_COLUMNS": "NO"}
    elif xcol and ycol:
        opts = {"X_POSSIBLE_NAMES": xcol, "Y_POSSIBLE_NAMES": ycol, "KEEP_GEOM_COLUMNS": "YES"}
    else:
        raise MalformedFileError(
            f"CSV has no coordinate columns (looked for {'/'.join(CSV_X)} and {'/'.join(CSV_Y)}, or wkt)",
            path=path)
    opts["AUTODETECT_TYPE"] = "YES"
    return opts  # pyogrio passes unknown keywords to GDAL as open options


def csv_default_crs(path: str) -> str | None:
    """EPSG:4326 when a CSV's coordinate columns are named lon/lat, else None."""
    names = {c.lower() for c in _csv_header(path)}
    if names & {"lon", "longitude", "lng"} and names & {"lat", "latitude"}:
        return "EPSG:4326"
    return None


def _csv_header(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig") as fh:
            header = fh.readline()
    except (OSError, UnicodeDecodeError) as err:
        raise MalformedFileError(f"cannot read CSV header: {err}", path=path) from err
    return [c.strip().strip('"') for c in header.strip().split(",")]


def _read_parquet(path: str) -> SourceLayer:
    try:
        frame = gpd.read_parquet(path)
    except (ValueError, OSError) as err:
        raise MalformedFileError(f"cannot read GeoParquet: {err}", path=path) from err
    return SourceLayer(path=path, name=Path(path).stem, frame=frame)


def _open_error(path, err: Exception):
    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "not recognized as" in message or "not a supported file format" in message:
        return UnknownFormatError("unknown format: no reader recognises this file", path=str(path))
    if not os.path.exists(str(path)):
        return MalformedFileError("no such file", path=str(path))
    return MalformedFileError(f"cannot read: {message}", path=str(path))
