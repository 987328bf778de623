"""What every store offers, and the standard table schema both backends write."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from pyproj import CRS

import standards

CATALOG_TABLE = "ngis_catalog"


@dataclass
class VectorLayer:
    """A layer to write: its table name, records (in the store CRS) and standard."""

    name: str
    frame: gpd.GeoDataFrame
    standard: str | None


@dataclass
class RasterLayer:
    """A raster to write, delivered as blocks so national DEMs never sit in memory at once.

    Attributes:
        name: Table name.
        crs: CRS of the grid.
        transform: Affine transform of the whole grid.
        shape: (rows, cols).
        blocks: Callable returning an iterator of ((row_off, col_off), float32 array) with NaN
            for no data; called once by the store.
    """

    name: str
    crs: CRS
    transform: Affine
    shape: tuple[int, int]
    blocks: Callable[[], Iterator[tuple[tuple[int, int], np.ndarray]]]
    stats: dict[str, float] = field(default_factory=dict)


def conform(frame: gpd.GeoDataFrame, standard: str | None) -> gpd.GeoDataFrame:
    """Give a frame the standard's columns and types, in the standard's order, keeping extra source
    columns after them; so every store layer of a standard has one schema whatever its source."""
    if standard is None:
        return frame
    std = standards.load(standard)
    out = {}
    for name, spec in std.properties.items():
        col = frame[name] if name in frame.columns else pd.Series([None] * len(frame),
                                                                  index=frame.index, dtype=object)
        types = spec.get("type", [])
        types = {types} if isinstance(types, str) else set(types)
        if "integer" in types:
            col = pd.to_numeric(col, errors="coerce").round().astype("Int64")
        elif "number" in types:
            col = pd.to_numeric(col, errors="coerce").astype("float64")
        elif "boolean" in types:
            col = col.map(_to_bool, na_action="ignore").astype("boolean")
        elif "string" in types:
            col = col.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v))
                          else str(v)).astype(object)
        out[name] = col
    extras = [c for c in frame.columns if c not in out and c != frame.geometry.name]
    for c in extras:
        out[c] = frame[c]
    return gpd.GeoDataFrame(out, geometry=frame.geometry.values, crs=frame.crs, index=frame.index)


def _to_bool(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v)


class Store(abc.ABC):
    """A base-map store."""

    uri: str

    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether the store has been created."""

    @abc.abstractmethod
    def write(self, vectors: list[VectorLayer], rasters: list[RasterLayer],
              records: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]]) -> None:
        """Write layers and their catalogue records in one atomic step; layers of the same name are
        replaced, others kept. ``records`` may be a callable, called after the rasters are written
        (their statistics are known only then)."""

    @abc.abstractmethod
    def layers(self) -> list[str]:
        """Names of the data tables (vector and raster), catalogue excluded."""

    @abc.abstractmethod
    def read(self, name: str, bbox: tuple[float, float, float, float] | None = None
             ) -> gpd.GeoDataFrame:
        """Read a vector layer (optionally only what meets ``bbox``, in the layer CRS)."""

    def read_envelopes(self, name: str, columns: list[str] | tuple[str, ...] = (),
                       fids: tuple[int, int] | None = None) -> pd.DataFrame:
        """Every feature's envelope and geometry type plus ``columns``, indexed by fid (only fids
        in the ``fids`` range, if given): the light pass of a job that reads a layer piece by
        piece (see ``GeoPackageStore.read_envelopes``). This fallback reads the whole layer; the
        stores override it with a light query."""
        import shapely

        frame = self.read(name)
        if fids is not None:
            at = np.asarray(frame.index, np.int64)
            frame = frame[(at >= fids[0]) & (at <= fids[1])]
        geoms = np.asarray(frame.geometry.array, dtype=object)
        gone = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        out = pd.DataFrame(shapely.bounds(geoms), columns=["minx", "miny", "maxx", "maxy"],
                           index=pd.Index(np.asarray(frame.index, np.int64)))
        out.loc[gone] = np.nan
        out["geom_type"] = [None if g else geom.geom_type.upper()
                            for g, geom in zip(gone, geoms, strict=True)]
        for c in columns:
            if c in frame.columns:
                out[c] = frame[c].to_numpy()
        out.attrs["crs"] = None if frame.crs is None else frame.crs.to_string()
        return out

    def read_fids(self, name: str, fids) -> gpd.GeoDataFrame:
        """The features with the given ids, ascending (fallback: reads the whole layer)."""
        frame = self.read(name)
        return frame.loc[np.unique(np.asarray(fids, np.int64))]

    @abc.abstractmethod
    def catalog(self) -> list[dict[str, Any]]:
        """All catalogue records."""

    def record(self, name: str) -> dict[str, Any]:
        """The catalogue record of one layer."""
        from gis.errors import LayerNotFoundError

        for rec in self.catalog():
            if rec["id"] == name:
                return rec
        raise LayerNotFoundError(f"no layer {name!r} in the store (has: "
                                 f"{', '.join(self.layers()) or 'none'})", path=self.uri)
