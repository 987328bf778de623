"""What the decision-model processes share: the grade-limited view of the store, the area input,
the DEM under an area, and GeoJSON output in CRS84."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import shapely
from affine import Affine
from pygeoapi.process.base import ProcessorExecuteError
from pyproj import CRS, Transformer

from gis.io.raster import DemSource

#: Largest DEM window a synchronous request may ask for (cells); processors may set
#: ``max_cells`` in their definition.
MAX_CELLS = 1_000_000


class OnlyLayers:
    """A store whose layers outside ``allowed`` do not exist (the graded-access projection
    gives each process the layers its grade may see)."""

    def __init__(self, store, allowed: frozenset[str] | None):
        self._store = store
        self._allowed = allowed

    def _ok(self, name: str) -> bool:
        return self._allowed is None or name in self._allowed

    def layers(self):
        return [name for name in self._store.layers() if self._ok(name)]

    def record(self, name):
        if not self._ok(name):
            raise KeyError(name)
        return self._store.record(name)

    def catalog(self):
        return [r for r in self._store.catalog() if self._ok(r.get("id", ""))]

    def read(self, name, *args, **kwargs):
        if not self._ok(name):
            raise KeyError(name)
        return self._store.read(name, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._store, name)


def allowed_layers(processor_def: dict) -> frozenset[str] | None:
    allowed = processor_def.get("allowed_layers")
    return None if allowed is None else frozenset(allowed)


def read_area(data: dict, key: str = "area", *, required: bool = True) -> shapely.Geometry | None:
    """A GeoJSON Polygon/MultiPolygon (geometry or Feature, CRS84) from the inputs."""
    area = data.get(key)
    if area is None:
        if required:
            raise ProcessorExecuteError(f"input '{key}' (a GeoJSON Polygon, CRS84) is required")
        return None
    try:
        geom = shapely.from_geojson(json.dumps(area.get("geometry", area)))
    except (shapely.errors.GEOSException, AttributeError, TypeError) as err:
        raise ProcessorExecuteError(f"input '{key}' is not a GeoJSON geometry: {err}")
    if geom.is_empty or shapely.get_type_id(geom) not in (3, 6):
        raise ProcessorExecuteError(f"input '{key}' must be a Polygon or MultiPolygon")
    minx, miny, maxx, maxy = geom.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise ProcessorExecuteError(f"input '{key}' must be in longitude/latitude (CRS84)")
    return shapely.make_valid(geom)


def number(data: dict, key: str, default: float | None = None, *, lo: float | None = None,
           hi: float | None = None) -> float | None:
    """A numeric input within [lo, hi]."""
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ProcessorExecuteError(f"input '{key}' must be a number")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ProcessorExecuteError(f"input '{key}' must lie in [{lo}, {hi}]")
    return float(value)


def dem_for_area(store_uri: str, area_crs84: shapely.Geometry, *, table: str | None = None,
                 margin_cells: int = 10, max_cells: int = MAX_CELLS) -> DemSource:
    """The store's DEM over the area's bounding box (plus a margin), NaN outside the area's
    box; refuses windows larger than ``max_cells``."""
    from gis.server.providers.coverage import StoreCoverageProvider

    try:
        provider = StoreCoverageProvider({"name": "dem", "type": "coverage",
                                          "data": store_uri, "options": {"table": table}})
    except Exception as err:  # noqa: BLE001 - no DEM in this store
        raise ProcessorExecuteError(f"the base map has no DEM to model on: {err}")
    grid = provider.grid
    if not grid.crs.is_projected:
        raise ProcessorExecuteError("the store's DEM must be in a projected CRS (metres)")
    to_grid = Transformer.from_crs(CRS.from_epsg(4326), grid.crs, always_xy=True)
    minx, miny, maxx, maxy = to_grid.transform_bounds(*area_crs84.bounds, densify_pts=21)
    rx, ry = grid.res
    window = grid.window((minx - margin_cells * rx, miny - margin_cells * ry,
                          maxx + margin_cells * rx, maxy + margin_cells * ry))
    if window is None:
        raise ProcessorExecuteError("the area lies outside the DEM")
    cells = int(window.width) * int(window.height)
    if cells > max_cells:
        raise ProcessorExecuteError(f"the area covers {cells:,} DEM cells; at most "
                                    f"{max_cells:,} per request: choose a smaller area")
    data = provider.read(window)
    transform = grid.transform @ Affine.translation(window.col_off, window.row_off)
    return DemSource(path=f"{store_uri}#dem", data=data, transform=transform, crs=grid.crs)


def features_crs84(frame, columns: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """A GeoJSON FeatureCollection (CRS84) of ``frame`` with ``columns`` as properties."""
    if frame is None or len(frame) == 0:
        return {"type": "FeatureCollection", "features": []}
    ll = frame.to_crs(4326) if frame.crs is not None else frame
    cols = [c for c in columns if c in ll.columns]
    features = []
    for geom, props in zip(ll.geometry.values, ll[cols].to_dict("records")):
        props = {k: (v.item() if isinstance(v, np.generic) else
                     (None if isinstance(v, float) and not np.isfinite(v) else v))
                 for k, v in props.items()}
        features.append({"type": "Feature", "properties": props,
                         "geometry": json.loads(shapely.to_geojson(
                             shapely.set_precision(geom, 1e-7)))})
    return {"type": "FeatureCollection", "features": features}
