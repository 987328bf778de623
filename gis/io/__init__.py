"""Readers: one per source format, all yielding :class:`gis.io.model.SourceLayer` (vectors) or
:class:`gis.io.raster.DemSource` (DEMs).

:func:`read_source` picks the reader from the file itself, then maps known national sources onto
our standards (:mod:`gis.io.profiles`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pyproj import CRS
from pyproj.exceptions import CRSError as PyprojCRSError

from gis.errors import CRSError, MalformedFileError, UnknownFormatError
from gis.io.raster import DemSource, is_raster_path, read_dem

if TYPE_CHECKING:
    from gis.io.model import SourceLayer

__all__ = ["SourceLayer", "DemSource", "read_source", "read_dem", "is_raster_path", "parse_crs"]


def __getattr__(name: str):
    """``SourceLayer`` on first use: it brings geopandas (half a second), which the raster
    commands (terrain, hydrology) never need."""
    if name == "SourceLayer":
        from gis.io.model import SourceLayer

        return SourceLayer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_crs(text: str | None) -> CRS | None:
    """A CRS from user text (``EPSG:3826``, a WKT, a PROJ string), or None.

    Raises:
        CRSError: The text names no CRS.
    """
    if text is None:
        return None
    try:
        return CRS.from_user_input(text)
    except PyprojCRSError as err:
        raise CRSError(f"unknown CRS {text!r}") from err


def _sniff_xml(path: str) -> str | None:
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not head.startswith(b"<"):
        return None
    if b"citygml" not in head and b"CityModel" not in head:
        return "xml"
    pipe_words = (b"Pipe", b"Cable", b"Duct")
    if b"/iur/uro" in head and any(b"<uro:" + w in head or w + b" gml:id" in head
                                   for w in pipe_words):
        if b"<bldg:Building" not in head:
            return "pipes"
    return "citygml"


def read_source(path: str | os.PathLike, *, standard: str | None = None, layer: str | None = None,
                crs: str | None = None, lod: str | None = None,
                origin: tuple[float, float, float] | None = None,
                rotation: float = 0.0, repair: bool = False) -> list[SourceLayer]:
    """Read a vector source into standard-shaped layers.

    Args:
        path: GeoPackage, GeoJSON, Shapefile, FlatGeobuf, GeoParquet, CSV, GMT, CityGML 2.0/3.0,
            CityJSON 1.x/2.0 (and CityJSONSeq .jsonl), IFC2x3/IFC4 (.ifc),
            PLATEAU UtilityNetwork GML, NLSC building JSON, or any of those in a zip.
        standard: The standard the caller expects; picks the CityGML reader (building or pipeline).
        layer: One layer of a multi-layer source.
        crs: Override or supply the source CRS (e.g. for a CSV of x/y or a file without one);
            for IFC, the CRS of ``origin`` (or the one to place an IfcSite latitude/longitude in).
        lod: CityJSON: the LOD to read (``2.2``, ``2``; default the highest up to 2.x).
        origin: IFC: map E, N, H of the model origin, overriding the model's georeferencing.
        rotation: IFC with ``origin``: model x axis from grid east, counter-clockwise, degrees.
        repair: CityJSON: repair surface polygons that are invalid in their plane
            (``make_valid`` there, noted in the building's lineage) instead of reporting them
            (:func:`gis.io.cityjson.read_cityjson`); other formats have no repairs and ignore it.

    Returns:
        The layers read, each with ``standard`` set where the reader or a profile knows it.

    Raises:
        UnknownFormatError, MalformedFileError, CRSError: see :mod:`gis.errors`.
    """
    from gis.io.profiles import apply_profile

    p = str(path)
    if not os.path.exists(p):
        raise MalformedFileError("no such file", path=p)
    if os.path.isdir(p) and not p.lower().endswith(".gdb"):
        raise UnknownFormatError("is a directory, not a data file", path=p)
    if is_raster_path(p):
        raise UnknownFormatError("is a raster; DEMs are read with read_dem", path=p)
    layers = _read_any(p, standard, layer, lod=lod, origin=origin, rotation=rotation, crs=crs,
                       repair=repair)
    forced = parse_crs(crs)
    out = []
    for lyr in layers:
        if forced is not None:
            lyr.frame = lyr.frame.set_crs(forced, allow_override=True)
        elif lyr.frame.crs is None and p.lower().endswith(".csv"):
            from gis.io.vector import csv_default_crs

            default = csv_default_crs(p)
            if default:
                lyr.frame = lyr.frame.set_crs(default)
        out.append(apply_profile(lyr))
    return out


def _read_any(p: str, standard: str | None, layer: str | None, *, lod: str | None = None,
              origin: tuple[float, float, float] | None = None, rotation: float = 0.0,
              crs: str | None = None, repair: bool = False) -> list[SourceLayer]:
    suffix = Path(p).suffix.lower()
    if suffix in (".gml", ".xml", ".citygml"):
        kind = _sniff_xml(p)
        if kind in ("citygml", "pipes"):
            from gis.io import citygml

            if standard == "pipeline" or (standard is None and kind == "pipes"):
                return [citygml.read_plateau_pipes(p)]
            return [citygml.read_citygml_buildings(p)]
    if suffix in (".json", ".jsonl"):
        from gis.io.cityjson import is_cityjson, read_cityjson

        if is_cityjson(p):
            return [read_cityjson(p, lod=lod, repair=repair)]
    if suffix == ".ifc":
        from gis.io.ifc import read_ifc

        return read_ifc(p, origin=origin, rotation=rotation, crs=crs)
    if suffix == ".json":
        from gis.io.nlsc import is_nlsc_points, read_nlsc_points

        if is_nlsc_points(p):
            return [read_nlsc_points(p)]
    from gis.io.vector import read_vector

    return read_vector(p, layer)
