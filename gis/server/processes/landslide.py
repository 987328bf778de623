"""OGC API Process ``landslide``: the landslide model (``ngis model landslide``) on a DEM.

The DEM is the configured store's ``dem`` raster (optionally cut to a ``bbox`` in CRS84) or a
small grid uploaded with the request. The process runs :func:`models.landslide.run.run_landslide`
synchronously and answers with the run's summary and its warning areas (high and very high
hazard) as a GeoJSON FeatureCollection in CRS84, each area with the number of buildings, roads,
rail lines and pipelines of the store it touches.

Processor configuration keys: ``name`` (this class), ``store`` (store URI), optional
``max_cells`` (largest grid a request may run on, default 1,000,000) and ``allowed_layers``
(set by the graded-access projection: the asset layers the client's grade may see).
"""

from __future__ import annotations

import copy
import json

import numpy as np
from pygeoapi.process.base import BaseProcessor, ProcessorExecuteError

from gis.errors import NgisError

ASSET_LAYERS = ("buildings", "roads", "rail", "pipelines")
DEFAULT_MAX_CELLS = 1_000_000

PROCESS_METADATA = {
    "version": "1.0.0",
    "id": "landslide",
    "title": {"en": "Shallow-landslide hazard and warning areas"},
    "description": {"en": "Runs SINMAP (stability index), SHALSTAB (critical rainfall), the "
                          "infinite-slope factor of safety with Monte Carlo probability of "
                          "failure, or transient rainfall infiltration (Iverson 2000 / TRIGRS) "
                          "on the base map's DEM or an uploaded grid, and returns the warning "
                          "areas (high and very high hazard) with the base-map features they "
                          "touch."},
    "jobControlOptions": ["sync-execute"],
    "keywords": ["landslide", "SINMAP", "SHALSTAB", "TRIGRS", "hazard", "warning areas"],
    "links": [],
    "inputs": {
        "method": {"title": "Method", "schema": {
            "type": "string", "enum": ["sinmap", "shalstab", "fs", "transient"],
            "default": "sinmap"}, "minOccurs": 0, "maxOccurs": 1},
        "bbox": {"title": "Area (CRS84)", "description": "[minlon, minlat, maxlon, maxlat] to cut "
                 "the store's DEM to.", "schema": {"type": "array", "items": {"type": "number"},
                                                   "minItems": 4, "maxItems": 4},
                 "minOccurs": 0, "maxOccurs": 1},
        "grid": {"title": "Uploaded DEM", "description": "A small DEM instead of the store's: "
                 "{values: rows of elevations (m, north row first, null = nodata), "
                 "origin: [x, y] of the north-west corner, cell_size: metres, crs: projected "
                 "CRS, e.g. EPSG:3826}.", "schema": {"type": "object"},
                 "minOccurs": 0, "maxOccurs": 1},
        "parameters": {"title": "SINMAP calibration", "description": "TauDEM's table as text "
                       "(header + id,Tmin,Tmax,Cmin,Cmax,phimin,phimax,density), one region.",
                       "schema": {"type": "string"}, "minOccurs": 0, "maxOccurs": 1},
        "recharge": {"title": "Recharge range (m/h)", "schema": {
            "type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2,
            "default": [0.0009, 0.00135]}, "minOccurs": 0, "maxOccurs": 1},
        "rain_mm": {"title": "Hourly rain (mm), for transient", "schema": {
            "type": "array", "items": {"type": "number"}}, "minOccurs": 0, "maxOccurs": 1},
        "soil": {"title": "Soil parameters for transient", "description": "Any of cohesion_pa, "
                 "phi_deg, gamma_s, ks, d0, depth, water_table, izlt.",
                 "schema": {"type": "object"}, "minOccurs": 0, "maxOccurs": 1},
        "edge_contamination": {"title": "Edge contamination", "description": "Leave the "
                               "catchment area undefined where it may reach off the grid "
                               "(TauDEM's rule); false for a small grid cut around one slope.",
                               "schema": {"type": "boolean", "default": True},
                               "minOccurs": 0, "maxOccurs": 1},
        "draws": {"title": "Monte Carlo draws (fs)", "schema": {
            "type": "integer", "minimum": 1, "maximum": 5000, "default": 200},
            "minOccurs": 0, "maxOccurs": 1},
        "seed": {"title": "Seed", "schema": {"type": "integer", "minimum": 0, "default": 0},
                 "minOccurs": 0, "maxOccurs": 1},
    },
    "outputs": {
        "summary": {"title": "Run summary", "schema": {"type": "object",
                                                       "contentMediaType": "application/json"}},
        "warning_areas": {"title": "Warning areas (CRS84)", "schema": {
            "type": "object", "contentMediaType": "application/geo+json"}},
    },
    "example": {"inputs": {"method": "sinmap", "grid": {
        "values": [[120, 118, 115, 111], [119, 114, 108, 101], [117, 109, 99, 90],
                   [116, 105, 92, 80]],
        "origin": [250000, 2700000], "cell_size": 10, "crs": "EPSG:3826"}}},
}


class LandslideProcessor(BaseProcessor):
    """Runs :func:`models.landslide.run.run_landslide` on the store's DEM or an upload."""

    def __init__(self, processor_def):
        allowed = processor_def.get("allowed_layers")
        self.allowed = None if allowed is None else frozenset(allowed)
        super().__init__(processor_def, copy.deepcopy(PROCESS_METADATA))
        self.store_uri = processor_def.get("store")
        self.max_cells = int(processor_def.get("max_cells", DEFAULT_MAX_CELLS))

    def execute(self, data, outputs=None):
        from models.landslide.calibration import parse_calibration, parse_recharge
        from models.landslide.run import run_landslide

        method = data.get("method", "sinmap")
        if method not in ("sinmap", "shalstab", "fs", "transient"):
            raise ProcessorExecuteError("input 'method' must be sinmap, shalstab, fs or "
                                        "transient")
        try:
            dem, transform, crs, store = self._dem(data)
            kwargs = {"method": method, "recharge": parse_recharge(
                tuple(data["recharge"]) if data.get("recharge") is not None else None)}
            if data.get("parameters"):
                if not isinstance(data["parameters"], str):
                    raise ProcessorExecuteError("input 'parameters' must be the table as text")
                kwargs["regions"] = parse_calibration(data["parameters"], path="parameters")
            edge = data.get("edge_contamination", True)
            if not isinstance(edge, bool):
                raise ProcessorExecuteError("input 'edge_contamination' must be true or false")
            kwargs["edge_contamination"] = edge
            if method == "fs":
                kwargs["n_draws"] = _int(data, "draws", 200, 1, 5000)
                kwargs["seed"] = _int(data, "seed", 0, 0, 2**62)
            if method == "transient":
                kwargs.update(_transient(data))
            assets = self._assets(store, dem, transform, crs) if store is not None else None
            result = run_landslide(dem, transform, crs, assets=assets, **kwargs)
        except NgisError as err:
            raise ProcessorExecuteError(str(err))
        areas = result.areas.to_crs("OGC:CRS84") if len(result.areas) else result.areas
        features = []
        for i, row in enumerate(areas.itertuples()):
            props = {"class": int(row[areas.columns.get_loc("class") + 1]),
                     "class_name": row.class_name, "area_m2": round(float(row.area_m2), 1)}
            for name, frame in result.assets.items():
                hit = frame[frame["class"] == props["class"]] if "class" in frame else frame
                props[f"{name}_touched"] = int(len(hit))
            features.append({"type": "Feature", "id": i + 1, "properties": props,
                             "geometry": json.loads(_geojson(row.geometry))})
        summary = dict(result.summary)
        return "application/json", {
            "summary": summary,
            "warning_areas": {"type": "FeatureCollection", "features": features},
        }

    def _dem(self, data):
        grid = data.get("grid")
        if grid is not None:
            return (*_uploaded_grid(grid, self.max_cells), None)
        if not self.store_uri:
            raise ProcessorExecuteError("this server has no store DEM: upload a 'grid'")
        from gis.store import open_store

        store = open_store(self.store_uri)
        if "dem" not in store.layers():
            raise ProcessorExecuteError("the store has no 'dem' raster: upload a 'grid'")
        src = store.read_raster("dem")
        dem, transform = src.data, src.transform
        if src.crs is None or not src.crs.is_projected:
            raise ProcessorExecuteError("the store's DEM is not in a projected CRS")
        bbox = data.get("bbox")
        if bbox is not None:
            dem, transform = _crop(dem, transform, src.crs, bbox)
        if dem.size > self.max_cells:
            raise ProcessorExecuteError(f"the DEM area has {dem.size} cells, more than this "
                                        f"server runs ({self.max_cells}): give a smaller 'bbox'")
        return dem, transform, src.crs, store

    def _assets(self, store, dem, transform, crs):
        from pyproj import Transformer

        rows, cols = dem.shape
        x0, y0 = transform @ (0, 0)
        x1, y1 = transform @ (cols, rows)
        bounds = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        out = {}
        for name in ASSET_LAYERS:
            if name not in store.layers() or (self.allowed is not None
                                               and name not in self.allowed):
                continue
            probe = store.read(name, bbox=(0.0, 0.0, 0.0, 0.0))
            bbox = bounds if probe.crs is None else Transformer.from_crs(
                crs, probe.crs, always_xy=True).transform_bounds(*bounds)
            out[name] = store.read(name, bbox=bbox)
        return out

    def __repr__(self):
        return f"<LandslideProcessor {self.store_uri}>"


def _geojson(geom) -> str:
    import shapely

    return shapely.to_geojson(shapely.set_precision(geom, 1e-7))


def _int(data, key, default, lo, hi) -> int:
    v = data.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ProcessorExecuteError(f"input '{key}' must be an integer in [{lo}, {hi}]")
    return v


def _transient(data) -> dict:
    from models.landslide.transient import TransientParams

    rain = data.get("rain_mm")
    if not isinstance(rain, list) or not rain or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in rain):
        raise ProcessorExecuteError("method 'transient' needs 'rain_mm': hourly rain depths "
                                    "(mm, >= 0)")
    if len(rain) > 24 * 31:
        raise ProcessorExecuteError("'rain_mm' covers more than 31 days")
    soil = data.get("soil") or {}
    if not isinstance(soil, dict):
        raise ProcessorExecuteError("input 'soil' must be an object")
    known = set(TransientParams.__dataclass_fields__) - {"n_depths"}
    bad = [k for k in soil if k not in known]
    if bad:
        raise ProcessorExecuteError(f"unknown soil parameter(s) {bad}; known: {sorted(known)}")
    try:
        tp = TransientParams(**soil)
        tp.check()
    except (TypeError, ValueError) as err:
        raise ProcessorExecuteError(f"input 'soil': {err}")
    edges = np.arange(len(rain) + 1) * 3600.0
    return {"rain": (edges, np.asarray(rain, float)), "transient_params": tp}


def _uploaded_grid(grid, max_cells):
    from affine import Affine
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if not isinstance(grid, dict):
        raise ProcessorExecuteError("input 'grid' must be an object")
    values = grid.get("values")
    if not isinstance(values, list) or not values or not all(isinstance(r, list) for r in values):
        raise ProcessorExecuteError("'grid.values' must be a list of rows")
    if len({len(r) for r in values}) != 1:
        raise ProcessorExecuteError("'grid.values' rows must all have the same length")
    if len(values) * len(values[0]) > max_cells:
        raise ProcessorExecuteError(f"'grid' has more than {max_cells} cells")
    if len(values) < 3 or len(values[0]) < 3:
        raise ProcessorExecuteError("'grid' needs at least 3 x 3 cells")
    try:
        dem = np.array([[np.nan if v is None else float(v) for v in r] for r in values],
                       dtype=np.float32)
    except (TypeError, ValueError):
        raise ProcessorExecuteError("'grid.values' must hold numbers or null")
    origin = grid.get("origin")
    size = grid.get("cell_size")
    if (not isinstance(origin, list) or len(origin) != 2
            or not all(isinstance(v, (int, float)) for v in origin)):
        raise ProcessorExecuteError("'grid.origin' must be [x, y] of the north-west corner")
    if not isinstance(size, (int, float)) or not size > 0:
        raise ProcessorExecuteError("'grid.cell_size' must be a positive number (metres)")
    try:
        crs = CRS.from_user_input(grid.get("crs", ""))
    except CRSError:
        raise ProcessorExecuteError("'grid.crs' is not a known CRS")
    if not crs.is_projected:
        raise ProcessorExecuteError("'grid.crs' must be a projected CRS in metres")
    return dem, Affine(float(size), 0, float(origin[0]), 0, -float(size), float(origin[1])), crs


def _crop(dem, transform, crs, bbox):
    from pyproj import Transformer

    if (not isinstance(bbox, list) or len(bbox) != 4
            or not all(isinstance(v, (int, float)) for v in bbox)):
        raise ProcessorExecuteError("input 'bbox' must be [minlon, minlat, maxlon, maxlat]")
    x0, y0, x1, y1 = Transformer.from_crs("OGC:CRS84", crs, always_xy=True
                                          ).transform_bounds(*bbox)
    inv = ~transform
    ca, ra = inv @ (x0, y1)
    cb, rb = inv @ (x1, y0)
    r0 = max(0, int(np.floor(min(ra, rb))))
    c0 = max(0, int(np.floor(min(ca, cb))))
    r1 = min(dem.shape[0], int(np.ceil(max(ra, rb))))
    c1 = min(dem.shape[1], int(np.ceil(max(ca, cb))))
    if r1 - r0 < 3 or c1 - c0 < 3:
        raise ProcessorExecuteError("input 'bbox' does not overlap the DEM (or is too small)")
    from affine import Affine

    return dem[r0:r1, c0:c1], transform @ Affine.translation(c0, r0)
