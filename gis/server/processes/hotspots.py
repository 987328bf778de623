"""OGC API Process ``hotspots``: crash hot spots on the configured store's ``roads`` and
``crashes`` layers, by the same code as ``ngis model hotspots``
(:func:`models.hotspots.model.run_hotspots`).

Synchronous. The result is a GeoJSON FeatureCollection of lixels in CRS84 (with count, z, p, q,
class and the method's columns; only the classified ones with ``significant_only``) and the
run's summary. Limits protect the server: at most ``max_lixels`` lixels (processor config,
default 200,000) and 99,999 permutations.
"""

from __future__ import annotations

import json

import numpy as np
from pygeoapi.process.base import BaseProcessor, ProcessorExecuteError

from gis.errors import NgisError
from gis.store import open_store

PROCESS_METADATA = {
    "version": "1.0.0",
    "id": "hotspots",
    "title": {"en": "Traffic-crash hot spots on the road network"},
    "description": {"en": "Splits the store's roads into lixels, snaps its crashes to them and "
                          "runs Getis-Ord Gi* (or local Moran, network kernel density, emerging "
                          "hot spots) with network-distance weights, permutation p-values and "
                          "false-discovery-rate q-values. Returns the lixels (CRS84) and a "
                          "summary."},
    "jobControlOptions": ["sync-execute"],
    "keywords": ["hotspots", "crashes", "roads", "Getis-Ord", "network"],
    "links": [],
    "inputs": {
        "bbox": {"title": "Bounding box", "description": "[minlon, minlat, maxlon, maxlat] "
                 "(CRS84); default: the whole store.",
                 "schema": {"type": "array", "items": {"type": "number"}, "minItems": 4,
                            "maxItems": 4}, "minOccurs": 0, "maxOccurs": 1},
        "method": {"title": "Method", "schema": {"type": "string", "enum":
                   ["gi", "moran", "nkde", "emerging"], "default": "gi"},
                   "minOccurs": 0, "maxOccurs": 1},
        "lixel_length": {"title": "Lixel length (m)", "schema": {"type": "number",
                         "minimum": 1, "default": 100}, "minOccurs": 0, "maxOccurs": 1},
        "bandwidth": {"title": "Network distance band (m)", "schema": {"type": "number",
                      "minimum": 1, "default": 300}, "minOccurs": 0, "maxOccurs": 1},
        "snap_tolerance": {"title": "Snapping tolerance (m)", "schema": {"type": "number",
                           "minimum": 0, "default": 50}, "minOccurs": 0, "maxOccurs": 1},
        "permutations": {"title": "Permutations", "schema": {"type": "integer", "minimum": 0,
                         "maximum": 99999, "default": 999}, "minOccurs": 0, "maxOccurs": 1},
        "seed": {"title": "Seed", "schema": {"type": "integer", "default": 0},
                 "minOccurs": 0, "maxOccurs": 1},
        "null": {"title": "Gi* permutation null", "schema": {"type": "string", "enum":
                 ["conditional", "total"], "default": "conditional"},
                 "minOccurs": 0, "maxOccurs": 1},
        "weights": {"title": "Crash weights", "schema": {"type": "string", "enum":
                    ["count", "severity"], "default": "count"}, "minOccurs": 0, "maxOccurs": 1},
        "severity_weights": {"title": "Severity weights", "schema": {"type": "object",
                             "additionalProperties": {"type": "number"}},
                             "minOccurs": 0, "maxOccurs": 1},
        "fdr": {"title": "FDR correction", "schema": {"type": "string", "enum":
                ["bh", "by", "none"], "default": "bh"}, "minOccurs": 0, "maxOccurs": 1},
        "time_bin": {"title": "Time bin (emerging)", "schema": {"type": "string", "enum":
                     ["month", "quarter", "year"], "default": "quarter"},
                     "minOccurs": 0, "maxOccurs": 1},
        "significant_only": {"title": "Only classified lixels", "schema": {"type": "boolean",
                             "default": False}, "minOccurs": 0, "maxOccurs": 1},
    },
    "outputs": {
        "hotspots": {"title": "Lixels with their statistics and classes",
                     "schema": {"type": "object", "contentMediaType": "application/geo+json"}},
        "summary": {"title": "Run summary",
                    "schema": {"type": "object", "contentMediaType": "application/json"}},
    },
    "example": {"inputs": {"method": "gi", "permutations": 999, "seed": 1}},
}

_NUMBERS = {"lixel_length": "lixel", "bandwidth": "bandwidth", "snap_tolerance": "snap_tolerance"}
_CHOICES = {"method": "method", "null": "null", "weights": "weights", "fdr": "fdr",
            "time_bin": "time_bin"}


class HotspotsProcessor(BaseProcessor):
    """Runs :func:`models.hotspots.model.run_hotspots` on the configured store.

    Processor definition keys: ``store`` (URI, required), ``max_lixels`` (default 200000),
    ``allowed_layers`` (set by the graded-access projection: without ``roads`` and ``crashes``
    in it the process answers that the store lacks them).
    """

    def __init__(self, processor_def):
        super().__init__(processor_def, PROCESS_METADATA)
        self.store_uri = processor_def["store"]
        self.max_lixels = int(processor_def.get("max_lixels", 200_000))
        allowed = processor_def.get("allowed_layers")
        self.allowed = None if allowed is None else frozenset(allowed)

    def execute(self, data, outputs=None):
        from models.hotspots.model import DEFAULT_SEVERITY, HotspotParams

        params = HotspotParams()
        for key, attr in _NUMBERS.items():
            if data.get(key) is not None:
                v = data[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                    raise ProcessorExecuteError(f"input '{key}' must be a number")
                setattr(params, attr, float(v))
        for key, attr in _CHOICES.items():
            if data.get(key) is not None:
                enum = PROCESS_METADATA["inputs"][key]["schema"]["enum"]
                if data[key] not in enum:
                    raise ProcessorExecuteError(f"input '{key}' must be one of {enum}")
                setattr(params, attr, data[key])
        for key in ("permutations", "seed"):
            if data.get(key) is not None:
                v = data[key]
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ProcessorExecuteError(f"input '{key}' must be an integer")
                setattr(params, key, v)
        if not 0 <= params.permutations <= 99_999:
            raise ProcessorExecuteError("input 'permutations' must be within 0..99999")
        sev = data.get("severity_weights")
        if sev is not None:
            if not isinstance(sev, dict) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in sev.values()):
                raise ProcessorExecuteError("input 'severity_weights' must map severities to "
                                            "numbers")
            params.severity_weights = {**DEFAULT_SEVERITY, **{k.lower(): float(v)
                                                              for k, v in sev.items()}}
        only = data.get("significant_only", False)
        if not isinstance(only, bool):
            raise ProcessorExecuteError("input 'significant_only' must be true or false")
        bbox = _bbox(data.get("bbox"))
        try:
            cells, summary = self._run(params, bbox)
        except NgisError as err:
            raise ProcessorExecuteError(str(err))
        if only:
            cells = cells[cells["class"] != 0]
        out = cells.to_crs("OGC:CRS84")
        for col in out.columns:
            if out[col].dtype == object and col != "geometry":
                out[col] = out[col].astype(str)
        fc = json.loads(out.to_json(na="null", drop_id=True))
        return "application/json", {"id": "hotspots", "hotspots": fc, "summary": summary}

    def _run(self, params, bbox):
        from gis.io.crashes import crashes_from_frame
        from models.hotspots.lixels import to_metric
        from models.hotspots.model import run_hotspots

        params.check()
        store = open_store(self.store_uri)
        layers = set(store.layers())
        if self.allowed is not None:  # a grade that may not see a layer runs as if it were absent
            layers &= self.allowed
        for name in ("roads", "crashes"):
            if name not in layers:
                raise ProcessorExecuteError(f"the store has no '{name}' layer")
        roads = store.read("roads", bbox=_layer_bbox(store, "roads", bbox))
        crashes = store.read("crashes", bbox=_layer_bbox(store, "crashes", bbox))
        if len(roads) == 0 or len(crashes) == 0:
            raise ProcessorExecuteError("no roads or no crashes in the box")
        # lixels per road piece: round(L / lixel), at least 1
        estimate = int(np.maximum(1, np.round(to_metric(roads).length.to_numpy()
                                              / params.lixel)).sum())
        if estimate > self.max_lixels:
            raise ProcessorExecuteError(f"about {estimate} lixels: more than {self.max_lixels}; "
                                        "use a smaller bbox or longer lixels")
        rec = crashes_from_frame(crashes, source="crashes")
        result = run_hotspots(rec.frame, roads, params, read_summary=rec.summary())
        result.summary["inputs"] = {"store_layers": ["roads", "crashes"],
                                    "bbox": list(bbox) if bbox else None}
        return result.cells, result.summary

    def __repr__(self):
        return f"<HotspotsProcessor {self.store_uri}>"


def _bbox(value):
    if value is None:
        return None
    if (not isinstance(value, (list, tuple)) or len(value) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or value[0] >= value[2] or value[1] >= value[3]):
        raise ProcessorExecuteError("input 'bbox' must be [minlon, minlat, maxlon, maxlat]")
    return tuple(float(v) for v in value)


def _layer_bbox(store, name, bbox):
    if bbox is None:
        return None
    from pyproj import CRS, Transformer

    crs = CRS.from_user_input(store.record(name)["crs"])
    return Transformer.from_crs("OGC:CRS84", crs, always_xy=True).transform_bounds(
        *bbox, densify_pts=21)
