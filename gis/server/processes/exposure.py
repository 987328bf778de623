"""OGC API Process ``exposure``: the base-map features inside an area (a hazard zone).

The processor definition may carry ``allowed_layers`` (the graded-access projection sets it to the
feature layers the client's grade may see): layers outside it are treated exactly as layers the
store lacks (count 0), and the process description names only the allowed layers.
"""

from __future__ import annotations

import copy
import json

import shapely
from pygeoapi.process.base import BaseProcessor, ProcessorExecuteError

from gis.errors import NgisError
from gis.server.processes.common import OnlyLayers
from gis.store import open_store
from models.exposure import DEFAULT_LAYERS, exposure

PROCESS_METADATA = {
    "version": "1.0.0",
    "id": "exposure",
    "title": {"en": "Exposure of the base map to a hazard area"},
    "description": {"en": "Counts the features of base-map layers that intersect an area "
                          "(GeoJSON geometry in CRS84), with lengths and footprint areas inside "
                          "it and, on request, the feature ids."},
    "jobControlOptions": ["sync-execute", "async-execute"],
    "keywords": ["exposure", "hazard", *DEFAULT_LAYERS],
    "links": [],
    "inputs": {
        "area": {
            "title": "Area",
            "description": "Polygon or MultiPolygon (GeoJSON geometry, CRS84).",
            "schema": {"type": "object", "contentMediaType": "application/geo+json"},
            "minOccurs": 1, "maxOccurs": 1,
        },
        "layers": {
            "title": "Layers",
            "description": "Base-map layers to check.",
            "schema": {"type": "array", "items": {"type": "string"},
                       "default": list(DEFAULT_LAYERS)},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "include_ids": {
            "title": "Include feature ids",
            "schema": {"type": "boolean", "default": False},
            "minOccurs": 0, "maxOccurs": 1,
        },
    },
    "outputs": {
        "exposure": {
            "title": "Exposure per layer",
            "schema": {"type": "object", "contentMediaType": "application/json"},
        }
    },
    "example": {"inputs": {"area": {"type": "Polygon", "coordinates": [
        [[120.61, 24.06], [120.62, 24.06], [120.62, 24.07], [120.61, 24.07], [120.61, 24.06]]]}}},
}


class ExposureProcessor(BaseProcessor):
    """Runs :func:`models.exposure.exposure` on the configured store."""

    def __init__(self, processor_def):
        allowed = processor_def.get("allowed_layers")
        self.allowed = None if allowed is None else frozenset(allowed)
        super().__init__(processor_def, _metadata(self.allowed))
        self.store_uri = processor_def["store"]

    def execute(self, data, outputs=None):
        area = data.get("area")
        if area is None:
            raise ProcessorExecuteError("input 'area' (a GeoJSON Polygon) is required")
        try:
            geom = shapely.from_geojson(json.dumps(area.get("geometry", area)))
        except (shapely.errors.GEOSException, AttributeError, TypeError) as err:
            raise ProcessorExecuteError(f"input 'area' is not a GeoJSON geometry: {err}")
        layers = data.get("layers") or list(self.metadata["inputs"]["layers"]["schema"]["default"])
        if not isinstance(layers, list) or not all(isinstance(v, str) for v in layers):
            raise ProcessorExecuteError("input 'layers' must be an array of layer names")
        try:
            store = open_store(self.store_uri)
            if self.allowed is not None:
                store = OnlyLayers(store, self.allowed)
            result = exposure(store, geom, layers=layers)
        except NgisError as err:
            raise ProcessorExecuteError(str(err))
        with_ids = data.get("include_ids", False)
        if not isinstance(with_ids, bool):
            raise ProcessorExecuteError("input 'include_ids' must be true or false")
        return "application/json", {"id": "exposure",
                                    "value": [r.as_dict(with_ids) for r in result]}

    def __repr__(self):
        return f"<ExposureProcessor {self.store_uri}>"


def _metadata(allowed: frozenset[str] | None) -> dict:
    """The process description; with ``allowed``, it names only those layers."""
    meta = copy.deepcopy(PROCESS_METADATA)
    if allowed is not None:
        default = [name for name in DEFAULT_LAYERS if name in allowed]
        meta["inputs"]["layers"]["schema"]["default"] = default
        meta["keywords"] = ["exposure", "hazard", *default]
    return meta
