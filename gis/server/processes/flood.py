"""OGC API Process ``flood``: the flood model of ``ngis model flood`` over an area of the base map.

The DEM is the store's (the window under the area, at most ``max_cells`` cells); buildings, roads
and pipelines come from the store, limited to the layers the client's grade may see (the
graded-access projection sets ``allowed_layers``; a hidden layer is a layer the store lacks).
Runs synchronously, or as a job with ``Prefer: respond-async`` (clients with a key); a long run
(DEM cells x simulated seconds over :attr:`FloodProcessor.ASYNC_WORK`) without a stated
preference becomes a job by itself.
"""

from __future__ import annotations

import copy

import numpy as np
import shapely
from pygeoapi.process.base import BaseProcessor, ProcessorExecuteError
from pyproj import Transformer

from gis.errors import NgisError
from gis.server.processes.common import (OnlyLayers, allowed_layers, dem_for_area,
                                         features_crs84, number, read_area)

IMPACT_LAYERS = ("buildings", "roads", "pipelines")

PROCESS_METADATA = {
    "version": "1.0.0",
    "id": "flood",
    "title": {"en": "Flood hazard and its impacts on the base map"},
    "description": {"en": "2D local-inertial flood model driven by rain (with SCS curve-number "
                          "or constant losses) or inflows, or HAND inundation for a river stage, "
                          "over the base map's DEM; returns warning areas (WRA depth classes) and "
                          "the base-map features affected: {layers} and shelters."},
    "jobControlOptions": ["sync-execute", "async-execute"],
    "keywords": ["flood", "hazard", "inundation", "HAND", "shallow water"],
    "links": [],
    "inputs": {
        "area": {"title": "Area", "description": "Polygon (GeoJSON geometry, CRS84).",
                 "schema": {"type": "object", "contentMediaType": "application/geo+json"},
                 "minOccurs": 1, "maxOccurs": 1},
        "mode": {"title": "Mode", "schema": {"type": "string", "enum": ["rain", "inflow", "hand"],
                                             "default": "rain"},
                 "minOccurs": 0, "maxOccurs": 1},
        "rain_mm": {"title": "Rain per step (mm)",
                    "schema": {"type": "array", "items": {"type": "number", "minimum": 0}},
                    "minOccurs": 0, "maxOccurs": 1},
        "rain_step_s": {"title": "Rain step (s)",
                        "schema": {"type": "number", "exclusiveMinimum": 0, "default": 3600},
                        "minOccurs": 0, "maxOccurs": 1},
        "curve_number": {"title": "SCS curve number (losses); none: all rain runs off",
                         "schema": {"type": "number", "minimum": 1, "maximum": 100},
                         "minOccurs": 0, "maxOccurs": 1},
        "inflows": {"title": "Inflows",
                    "description": "Objects {lon, lat, radius_m, q_m3s}.",
                    "schema": {"type": "array", "items": {"type": "object"}},
                    "minOccurs": 0, "maxOccurs": 1},
        "duration_s": {"title": "Simulated time (s)",
                       "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 172800},
                       "minOccurs": 0, "maxOccurs": 1},
        "manning": {"title": "Manning's n", "schema": {"type": "number", "default": 0.03},
                    "minOccurs": 0, "maxOccurs": 1},
        "buildings": {"title": "Buildings in the water's way",
                      "schema": {"type": "string", "enum": ["block", "raise", "none"],
                                 "default": "block"},
                      "minOccurs": 0, "maxOccurs": 1},
        "stage_m": {"title": "HAND mode: river stage (m)", "schema": {"type": "number"},
                    "minOccurs": 0, "maxOccurs": 1},
        "min_area_m2": {"title": "Smallest warning-area part kept (m^2; default one DEM cell)",
                        "schema": {"type": "number", "minimum": 0}, "minOccurs": 0,
                        "maxOccurs": 1},
    },
    "outputs": {
        "summary": {"title": "Run summary", "schema": {"type": "object",
                                                       "contentMediaType": "application/json"}},
        "warning_areas": {"title": "Warning areas (CRS84)", "schema": {
            "type": "object", "contentMediaType": "application/geo+json"}},
        "affected": {"title": "Affected features per layer", "schema": {
            "type": "object", "contentMediaType": "application/json"}},
    },
    "example": {"inputs": {
        "area": {"type": "Polygon", "coordinates": [[[120.6130, 24.0620], [120.6160, 24.0620],
                                                     [120.6160, 24.0645], [120.6130, 24.0645],
                                                     [120.6130, 24.0620]]]},
        "mode": "rain", "rain_mm": [30, 60], "rain_step_s": 600, "curve_number": 80,
        "duration_s": 1200}},
}


class FloodProcessor(BaseProcessor):
    """Runs :func:`models.flood.run.run_flood` on the configured store's DEM."""

    def __init__(self, processor_def):
        self.allowed = allowed_layers(processor_def)
        meta = copy.deepcopy(PROCESS_METADATA)
        # The description names only the layers this grade may see (a layer's existence is
        # graded too).
        seen = [n for n in IMPACT_LAYERS if self.allowed is None or n in self.allowed]
        meta["description"]["en"] = meta["description"]["en"].format(layers=", ".join(seen))
        super().__init__(processor_def, meta)
        self.store_uri = processor_def["store"]
        self.max_cells = int(processor_def.get("max_cells", 250_000))

    #: Work (DEM cells x simulated seconds) above which a run without a stated preference is
    #: started as a job (about a minute on one core of this project's reference machine).
    ASYNC_WORK = 2e9

    def prefers_async(self, data) -> bool:
        """Whether this run is long enough to be a job (see :mod:`gis.server.jobs`)."""
        try:
            area = read_area(data)
            if data.get("mode", "rain") == "hand":
                return False
            from gis.server.providers.coverage import grid_info

            grid = grid_info(self.store_uri, None)
            to_grid = Transformer.from_crs(4326, grid.crs, always_xy=True)
            window = grid.window(to_grid.transform_bounds(*area.bounds))
            if window is None:
                return False          # outside the DEM: execute() says so at once
            cells = int(window.width) * int(window.height)
            if cells > self.max_cells:
                return False          # too large: execute() refuses it at once
            steps = float(data.get("duration_s") or 0) or \
                len(data.get("rain_mm") or []) * float(data.get("rain_step_s", 3600)) + 7200
            return cells * steps > self.ASYNC_WORK
        except Exception:  # noqa: BLE001 - a bad request is for execute() to refuse
            return False

    def execute(self, data, outputs=None):
        from gis.io.hyetograph import Hyetograph
        from gis.store import open_store
        from models.flood import CurveNumber, building_mask, raise_buildings
        from models.flood.run import run_flood

        area = read_area(data)
        mode = data.get("mode", "rain")
        if mode not in ("rain", "inflow", "hand"):
            raise ProcessorExecuteError("input 'mode' must be rain, inflow or hand")
        try:
            dem = dem_for_area(self.store_uri, area, max_cells=self.max_cells)
            store = OnlyLayers(open_store(self.store_uri), self.allowed)
            to_grid = Transformer.from_crs(4326, dem.crs, always_xy=True)
            area_grid = shapely.transform(area, lambda xy: np.column_stack(
                to_grid.transform(xy[:, 0], xy[:, 1])))
            layers = _layers(store, dem, area_grid)
            rain = None
            if mode == "rain":
                depths = data.get("rain_mm")
                if not isinstance(depths, list) or not depths or not all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                        for v in depths):
                    raise ProcessorExecuteError("input 'rain_mm' must be a non-empty array of "
                                                "numbers >= 0 (mm per step)")
                step = number(data, "rain_step_s", 3600.0, lo=1.0, hi=86400.0)
                rain = Hyetograph(np.arange(len(depths) + 1) * step,
                                  np.asarray(depths, dtype="float64"), source="request")
            cn = number(data, "curve_number", None, lo=1.0, hi=100.0)
            inflows = [_inflow(v, to_grid) for v in data.get("inflows") or []]
            z = dem.data
            blocked = None
            how = data.get("buildings", "block")
            if how not in ("block", "raise", "none"):
                raise ProcessorExecuteError("input 'buildings' must be block, raise or none")
            if how != "none" and len(layers.get("buildings", [])):
                mask = building_mask(layers["buildings"], dem.transform, z.shape)
                if how == "raise":
                    z = raise_buildings(z, mask, 3.0)
                else:
                    blocked = mask
            # HAND sees only the window: its streams start where 2% of the window drains (at
            # most 1 km^2), so the river through any area is found although its upstream
            # catchment lies outside (HAND is measured from the channel, not the area drained).
            cell_km2 = abs(dem.transform.a * dem.transform.e) / 1e6
            stream_km2 = min(1.0, 0.02 * z.size * cell_km2)
            result = run_flood(
                z, dem.transform, dem.crs, mode=mode, stream_threshold_km2=stream_km2,
                duration_s=number(data, "duration_s", None, lo=1.0, hi=172800.0),
                rain=rain, loss=CurveNumber(cn) if cn is not None else None, inflows=inflows,
                manning=number(data, "manning", 0.03, lo=0.001, hi=1.0), blocked=blocked,
                stage=number(data, "stage_m", None, lo=0.0, hi=100.0), layers=layers,
                min_area_m2=number(data, "min_area_m2", None, lo=0.0, hi=1e9))
        except NgisError as err:
            raise ProcessorExecuteError(str(err))
        return "application/json", _document(result)

    def __repr__(self):
        return f"<FloodProcessor {self.store_uri}>"


def _inflow(value, to_grid):
    from models.flood import Inflow

    if not isinstance(value, dict):
        raise ProcessorExecuteError("each inflow is an object {lon, lat, radius_m, q_m3s}")
    try:
        lon, lat = float(value["lon"]), float(value["lat"])
        radius, q = float(value.get("radius_m", 10.0)), float(value["q_m3s"])
    except (KeyError, TypeError, ValueError):
        raise ProcessorExecuteError("each inflow needs numbers lon, lat, q_m3s (radius_m)")
    x, y = to_grid.transform(lon, lat)
    return Inflow(x, y, radius, q)


def _layers(store, dem, area_grid) -> dict:
    from pyproj import CRS

    records = {r["id"]: r for r in store.catalog()}
    out = {}
    for name in IMPACT_LAYERS:
        if name not in store.layers():
            continue
        layer_crs = CRS.from_user_input(records.get(name, {}).get("crs") or dem.crs)
        box = Transformer.from_crs(dem.crs, layer_crs, always_xy=True).transform_bounds(
            *area_grid.bounds)
        frame = store.read(name, bbox=box).to_crs(dem.crs)
        out[name] = frame[frame.intersects(area_grid)]
    return out


def _document(result) -> dict:
    impacts = result.impacts
    affected = {}
    for name, cols in (("buildings", ("id", "name", "usage", "max_depth", "depth_class")),
                       ("roads", ("id", "name", "class", "max_depth", "flooded_length_m")),
                       ("pipelines", ("id", "utility", "max_depth", "flooded_length_m")),
                       ("shelters", ("id", "name", "max_depth", "flooded", "cut_off",
                                     "reachable_buildings"))):
        if name in impacts:
            frame = impacts[name]
            affected[name] = [{c: _plain(v) for c, v in row.items()}
                              for row in frame[[c for c in cols if c in frame]].to_dict("records")]
    return {"summary": _plain(result.summary),
            "warning_areas": features_crs84(result.warning_areas, ("class", "class_name",
                                                                    "area_m2")),
            "affected": affected}


def _plain(value):
    """JSON-safe: numpy scalars to Python, NaN and infinities to null (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
