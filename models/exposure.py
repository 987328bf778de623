"""Exposure: which base-map features a hazard area touches, and how much of them.

Every decision model ends here: a flood extent, a landslide susceptibility zone or a crash hotspot
becomes an area, and the base map answers with the buildings, roads, rail and pipelines in it.
Measures are taken in the layer's own (projected, metric) CRS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer

from gis.errors import DataError

DEFAULT_LAYERS = ("buildings", "roads", "rail", "pipelines")


@dataclass
class LayerExposure:
    """What one layer has inside the area."""

    layer: str
    count: int
    ids: list[int]
    length_m: float | None = None  # lines: length inside the area
    area_m2: float | None = None  # polygons: footprint area inside the area

    def as_dict(self, with_ids: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"layer": self.layer, "count": self.count}
        if self.length_m is not None:
            out["length_m"] = round(self.length_m, 3)
        if self.area_m2 is not None:
            out["area_m2"] = round(self.area_m2, 3)
        if with_ids:
            out["ids"] = self.ids
        return out


def exposure(store, area: shapely.Geometry, area_crs: str | CRS = "OGC:CRS84",
             layers: tuple[str, ...] | list[str] = DEFAULT_LAYERS) -> list[LayerExposure]:
    """Features of ``layers`` in ``store`` that intersect ``area``.

    Args:
        store: A :class:`gis.store.Store`.
        area: Polygon or multipolygon (the hazard area).
        area_crs: CRS of ``area`` (default longitude/latitude).
        layers: Store layers to check; layers the store lacks are reported with count 0.

    Raises:
        DataError: ``area`` is empty or not areal.
    """
    if area is None or area.is_empty or shapely.get_type_id(area) not in (3, 6):
        raise DataError("the area must be a non-empty Polygon or MultiPolygon")
    area = shapely.make_valid(area)
    present = set(store.layers())
    out = []
    for name in layers:
        if name not in present:
            out.append(LayerExposure(name, 0, []))
            continue
        layer_crs = CRS.from_user_input(store.record(name)["crs"])
        local = _to_crs(area, CRS.from_user_input(area_crs), layer_crs)
        frame = store.read(name, bbox=tuple(shapely.bounds(local)))
        geoms = frame.geometry.values
        hit = shapely.intersects(geoms, local) if len(frame) else np.zeros(0, bool)
        ids = [int(i) for i in frame.index[hit]]
        inside = shapely.intersection(geoms[hit], local) if hit.any() else np.array([])
        kinds = set(shapely.get_type_id(geoms[hit]).tolist())
        result = LayerExposure(name, len(ids), ids)
        if kinds & {1, 5}:
            result.length_m = float(shapely.length(inside).sum())
        if kinds & {3, 6}:
            result.area_m2 = float(shapely.area(inside).sum())
        out.append(result)
    return out


def _to_crs(geom: shapely.Geometry, src: CRS, dst: CRS) -> shapely.Geometry:
    if src == dst:
        return geom
    tr = Transformer.from_crs(src, dst, always_xy=True)
    # Densify so long lon/lat edges follow the projection.
    geom = shapely.segmentize(geom, 1e-3 if src.is_geographic else 100.0)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
