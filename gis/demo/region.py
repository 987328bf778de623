"""``generate_region``: build a whole synthetic region into a directory, atomically.

The region is generated district by district (4 km squares, see :mod:`.town`); every district
draws from its own random streams derived from (seed, district), so the output does not depend
on the processing order and any district can be generated alone. Vector layers are appended to
their GeoPackages after every row of districts, so ``national`` (625 districts, over a million
buildings) never holds more than one row of districts in memory; its DEM lives in a memory map.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from tqdm import tqdm

from gis.demo.buildings import BUILDING_COLUMNS, town_buildings
from gis.demo.extras import (CRASH_COLUMNS, PIPE_COLUMNS, RAIL_COLUMNS, RIVER_NAMES,
                             district_crashes,
                             district_pipes, district_rail, rain_series)
from gis.demo.roads import ROAD_COLUMNS, district_roads, river_zone, road_footprints
from gis.demo.spec import CRS, RegionSpec, region_spec, source_of
from gis.demo.terrain import TerrainModel, build_dem, dem_transform, windows
from gis.demo.town import District, districts, plan_town
from gis.errors import NgisError

# path, layer, standard, geometry type, columns, title, abstract, access grade, charge class
LAYERS = {
    "buildings": ("buildings.gpkg", "building", "Polygon", BUILDING_COLUMNS,
                  "Buildings (synthetic demo)",
                  "Building footprints with heights, storeys, roof shapes, usage and ground "
                  "elevation.",
                  "public", "free", "structure"),
    "roads": ("roads.gpkg", "road", "LineString", ROAD_COLUMNS, "Roads (synthetic demo)",
              "Road centrelines noded at junctions, with class, width, lanes, bridges and a "
              "tunnel.",
              "public", "free", "transportation"),
    "rail": ("rail.gpkg", "rail", "LineString", RAIL_COLUMNS, "Railways and metro (synthetic demo)",
             "Main line along the valley and a metro line in tunnel through the town.",
             "public", "free", "transportation"),
    "pipelines": ("pipelines.gpkg", "pipeline", "LineString", PIPE_COLUMNS,
                  "Underground pipelines (synthetic demo)",
                  "Water, sewer (gravity, with inverts) and gas mains under the town streets.",
                  "restricted", "premium", "utilitiesCommunication"),
    "crashes": ("crashes.gpkg", "crash", "Point", CRASH_COLUMNS,
                "Traffic crashes 2021-2024 (synthetic demo)",
                "Police-style crash points along the roads with a few clustered hotspots.",
                "agency", "standard", "transportation"),
}


class LayerWriter:
    """Collects frames of one layer and appends them to its GeoPackage in chunks."""

    def __init__(self, directory: Path, layer: str):
        path, _, geometry_type, columns, *_ = LAYERS[layer]
        self.path = directory / path
        self.layer = layer
        self.geometry_type = geometry_type
        self.columns = columns
        self.pending: list[pd.DataFrame] = []
        self.count = 0
        self.chunks = 0

    def add(self, frame: pd.DataFrame) -> None:
        """Queue a district's records (columns of the standard plus ``geometry``)."""
        if len(frame):
            self.pending.append(frame[[*self.columns, "geometry"]])

    def flush(self) -> None:
        """Append the queued records to the file (creating it on the first call)."""
        if not self.pending:
            return
        frame = pd.concat(self.pending, ignore_index=True)
        self.pending = []
        # A chunk whose number field is empty everywhere (no bridge in these districts) would
        # create the column as TEXT, and later chunks' numbers would be stored as text.
        for column in _number_fields(self.layer):
            if column in frame and frame[column].dtype == object:
                frame[column] = pd.to_numeric(frame[column]).astype(np.float64)
        gdf = gpd.GeoDataFrame(frame, geometry="geometry", crs=CRS)
        write_layer(gdf, self.path, self.layer, self.geometry_type, append=self.chunks > 0)
        self.count += len(gdf)
        self.chunks += 1


def _number_fields(layer: str) -> list[str]:
    """Fields the layer's standard types as numbers (floats)."""
    import standards

    name = {"buildings": "building", "roads": "road", "rail": "rail", "pipelines": "pipeline",
            "crashes": "crash"}.get(layer)
    if name is None:
        return []
    props = standards.load(name).properties
    return [k for k, spec in props.items()
            if "number" in (spec.get("type") if isinstance(spec.get("type"), list)
                            else [spec.get("type")])]


def write_layer(gdf: gpd.GeoDataFrame, path: Path, layer: str, geometry_type: str,
                append: bool) -> None:
    """Write (or append) one chunk of a layer to a GeoPackage."""
    pyogrio.write_dataframe(gdf, path, layer=layer, driver="GPKG", geometry_type=geometry_type,
                            append=append)


def generate_region(out_dir: str | os.PathLike, *, seed: int = 42, size: str = "small",
                    progress: bool = False, scale: float = 1.0) -> dict:
    """Generate a synthetic region (DEM, buildings, roads, rail, pipes, crashes, rain).

    The region is built in ``<out_dir>.tmp-<pid>`` and renamed into place only when complete; an
    existing ``out_dir`` is replaced at that moment. On any error the temporary directory is
    removed and ``out_dir`` is left as it was.

    Args:
        out_dir: Output directory.
        seed: Random seed; the same seed gives identical values and geometries.
        size: ``small`` (4 km, ~2,500 buildings), ``city`` (20 km, ~50,000) or ``national``
            (100 km, > 1,000,000, streamed).
        progress: Draw a progress bar on stderr.
        scale: Side factor for ``national`` (tests and benchmarks run it scaled down).

    Returns:
        The manifest (also written to ``manifest.json``).

    Raises:
        NgisError: Unknown size, or ``out_dir`` exists and is not a directory.
    """
    spec = region_spec(size, scale)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NgisError("exists and is not a directory", path=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        manifest = _build(tmp, spec, seed, progress)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` by the finished ``tmp`` directory."""
    if out.exists():
        old = out.with_name(f"{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _build(directory: Path, spec: RegionSpec, seed: int, progress: bool) -> dict:
    model = TerrainModel.create(seed, spec.bbox)
    all_districts = districts(spec)
    n_windows = sum(1 for _ in windows(spec))
    bar = tqdm(total=2 * n_windows + len(all_districts), desc=f"demo-data {spec.size}", unit="step",
               file=sys.stderr, disable=not progress)
    with bar:
        dem = build_dem(model, spec, directory / "dem.tif", directory, tick=lambda: bar.update(1))
        state = _vectors(directory, model, spec, dem, seed, all_districts, lambda: bar.update(1))
    del dem
    scratch = directory / "dem_work.npy"
    if scratch.exists():
        scratch.unlink()
    rain_series(seed).to_csv(directory / "rain_gauge.csv", index=False)
    return _manifest(model, spec, seed, state)


def _vectors(directory: Path, model: TerrainModel, spec: RegionSpec, dem: np.ndarray, seed: int,
             all_districts: list[District], tick: Callable[[], None]) -> dict:
    """Generate every district and append its features.

    Returns:
        Counts and chunks per layer, hotspots, shelters, towns and the gauge position.
    """
    writers = {name: LayerWriter(directory, name) for name in LAYERS}
    transform = dem_transform(spec)
    source = source_of(seed)
    state: dict = {"hotspots": [], "shelters": [], "towns": []}
    centre = ((spec.bbox[0] + spec.bbox[2]) / 2.0, (spec.bbox[1] + spec.bbox[3]) / 2.0)
    main = min(all_districts,
               key=lambda d: np.hypot(d.centre[0] - centre[0], d.centre[1] - centre[1]))
    for n, district in enumerate(all_districts):
        zone = river_zone(model, district)
        town = plan_town(model, spec, district, seed, zone,
                         boost=spec.main_town_boost if district is main else 1.0)
        roads = district_roads(model, spec, district, town, zone, seed, source)
        rail = district_rail(model, spec, district, town, seed, source)
        exclusion = _exclusion(roads, rail, zone)
        buildings = town_buildings(district, town, exclusion, dem, transform, seed, source)
        crashes, hotspots = district_crashes(roads, town, spec, district, seed, source)
        writers["roads"].add(roads)
        writers["rail"].add(rail)
        writers["buildings"].add(buildings)
        writers["pipelines"].add(district_pipes(roads, dem, transform, district, seed, source))
        writers["crashes"].add(crashes)
        state["hotspots"] += hotspots
        shelter = buildings["name"].fillna("").str.contains("Shelter")
        state["shelters"] += buildings.loc[shelter, "id"].tolist()
        state["towns"].append({"name": town.name, "x": round(town.centre[0], 2),
                               "y": round(town.centre[1], 2),
                               "radius": round(town.radius, 1), "blocks": int(len(town.blocks)),
                               "buildings": int(len(buildings))})
        if district is main:
            state["gauge"] = [round(town.centre[0], 2), round(town.centre[1], 2)]
        if (n + 1) % spec.districts == 0:  # end of a row of districts
            for writer in writers.values():
                writer.flush()
        tick()
    for writer in writers.values():
        writer.flush()
    state["counts"] = {name: w.count for name, w in writers.items()}
    state["chunks"] = {name: w.chunks for name, w in writers.items()}
    return state


def _exclusion(roads: pd.DataFrame, rail: pd.DataFrame,
               zone: shapely.Geometry | None) -> np.ndarray:
    """Where no building may stand: carriageways (+1 m), railways at grade (+3 m), the river."""
    ground = rail[rail["level"] == "ground"]
    parts = [road_footprints(roads, 1.0)]
    if len(ground):
        parts.append(shapely.buffer(np.asarray(ground["geometry"], dtype=object),
                                    ground["width"].to_numpy(dtype=float) / 2.0 + 3.0))
    if zone is not None:
        parts.append(np.asarray([zone], dtype=object))
    return np.concatenate(parts)


def _manifest(model: TerrainModel, spec: RegionSpec, seed: int, state: dict) -> dict:
    sources = []
    for name, (path, standard, _, _, title, abstract, grade, charge, topic) in LAYERS.items():
        sources.append({"path": path, "layer": name, "standard": standard, "title": title,
                        "abstract": abstract, "keywords": ["synthetic", "demo", standard],
                        "topic_category": topic, "access_grade": grade, "charge_class": charge,
                        "lineage": f"Generated by ngis demo-data (seed {seed}, size {spec.size}).",
                        "count": state["counts"][name]})
    rows, cols = spec.shape
    sources.append({"path": "dem.tif", "layer": "dem", "kind": "dem",
                    "title": "Digital elevation model (synthetic demo)",
                    "abstract": f"{spec.cell:g} m float32 DEM (TWVD2001-like orthometric metres), "
                                "hydrologically conditioned so that every cell drains to the "
                                "border.",
                    "keywords": ["synthetic", "demo", "elevation"], "topic_category": "elevation",
                    "access_grade": "public", "charge_class": "free", "resolution": spec.cell,
                    "lineage": "Fractal gradient noise with carved rivers, priority-flood "
                               f"filled (seed {seed}).",
                    "count": rows * cols})
    gauge = state.get("gauge", [spec.bbox[0], spec.bbox[1]])
    rivers = [{"name": f"{RIVER_NAMES[r.index % len(RIVER_NAMES)]} River",
               "centreline": np.round(model.river_path(r, 5 * spec.cell), 2).tolist(),
               "outlet": [spec.bbox[0], round(float(r.centre_y(np.asarray(spec.bbox[0]))), 2)]}
              for r in model.rivers]
    return {"generator": "ngis demo-data", "seed": seed, "size": spec.size, "crs": CRS,
            "bbox": list(spec.bbox), "sources": sources,
            "rain_gauge": {"path": "rain_gauge.csv", "x": gauge[0], "y": gauge[1]},
            "hotspots": state["hotspots"], "shelters": state["shelters"], "rivers": rivers,
            "towns": state["towns"], "chunks": state["chunks"]}
