"""Railways, pipelines, traffic crashes and the rain gauge of the synthetic region."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely
from rasterio.transform import Affine

from gis.demo.roads import (RAIL_OFFSET, cumulative_length, cut_polyline, grid_split,
                            valley_polyline, valley_side)
from gis.demo.spec import RegionSpec, sub_rng
from gis.demo.terrain import TerrainModel, sample_dem
from gis.demo.town import District, Town

RAIL_COLUMNS = ["id", "name", "class", "width", "tracks", "gauge", "level", "deck_height", "depth",
                "surface", "source", "lineage"]
PIPE_COLUMNS = ["id", "utility", "diameter", "depth", "invert_start", "invert_end", "material",
                "pressure_class", "owner", "install_year", "accuracy_class", "source", "lineage"]
CRASH_COLUMNS = ["id", "time", "severity", "deaths", "injuries", "vehicles", "source", "lineage"]
RIVER_NAMES = ("Zhuoshui", "Wu", "Dajia", "Beigang", "Bazhang", "Houlong", "Da-an")
CRASH_RATE = {"trunk": 12.0, "primary": 10.0, "secondary": 8.0, "tertiary": 5.0, "local": 2.0,
              "service": 0.5, "ramp": 3.0, "motorway": 6.0}  # crashes per km over the 4 years
STREET_CLASSES = ("primary", "secondary", "tertiary", "local")


# --- rail -----------------------------------------------------------------------------------------


def district_rail(model: TerrainModel, spec: RegionSpec, district: District, town: Town, seed: int,
                  source: str) -> pd.DataFrame:
    """The main line pieces in the district (one line per valley) and the town's metro.

    Returns:
        DataFrame with the rail standard's columns and ``geometry`` (LineStrings).
    """
    rng = sub_rng(seed, 103, district.i, district.j)
    rows: list[dict] = []
    geoms: list = []
    for river in model.rivers:
        line = valley_polyline(model, river, -valley_side(model, river) * (river.a2 + RAIL_OFFSET))
        for i, j, piece in grid_split(line, spec.bbox[:2], spec.districts):
            if (i, j) != (district.i, district.j):
                continue
            length = cumulative_length(piece)[-1]
            for part in cut_polyline(piece, np.arange(1500.0, length, 1500.0)):
                geoms.append(shapely.linestrings(part))
                rows.append({"name": f"{RIVER_NAMES[river.index % len(RIVER_NAMES)]} Valley Line",
                             "class": "main", "width": 10.0, "tracks": 2, "gauge": 1067,
                             "level": "ground", "deck_height": None, "depth": None,
                             "surface": "ballast"})
    metro = _metro(district, town, rng)
    for part, depth in metro:
        geoms.append(shapely.linestrings(part))
        rows.append({"name": f"{town.name} Metro Line 1", "class": "metro", "width": 9.0,
                     "tracks": 2, "gauge": 1435, "level": "tunnel", "deck_height": None,
                     "depth": depth,
                     "surface": "slab"})
    frame = pd.DataFrame(rows, columns=RAIL_COLUMNS[1:10])
    frame["id"] = [f"rail-{district.tag}-{n:04d}" for n in range(len(frame))]
    frame["source"] = source
    frame["lineage"] = "Synthetic: valley main line and town metro drawn on the synthetic terrain."
    frame["geometry"] = geoms
    return frame[[*RAIL_COLUMNS, "geometry"]]


def _metro(district: District, town: Town,
           rng: np.random.Generator) -> list[tuple[np.ndarray, float]]:
    """Metro pieces between stations, in tunnel, through the town centre (big towns only)."""
    if town.radius < 550.0 or len(town.blocks) < 40:
        return []
    angle = town.theta + rng.uniform(0.5, 0.9)
    direction = np.array([np.cos(angle), np.sin(angle)])
    centre = np.asarray(town.centre)
    x0, y0, x1, y1 = district.box
    half = 0.9 * town.radius
    for _ in range(20):  # shorten until both ends stay inside the district
        ends = centre + np.outer([-half, half], direction)
        if (ends[:, 0] > x0 + 50).all() and (ends[:, 0] < x1 - 50).all() and \
                (ends[:, 1] > y0 + 50).all() and (ends[:, 1] < y1 - 50).all():
            break
        half *= 0.9
    t = np.linspace(-half, half, 41)
    bend = 0.08 * half * np.sin(np.pi * (t / half + 1.0) * rng.uniform(0.5, 1.0))
    normal = np.array([-direction[1], direction[0]])
    coords = centre + t[:, None] * direction + bend[:, None] * normal
    stations = np.arange(rng.uniform(600.0, 900.0), 2.0 * half, rng.uniform(600.0, 900.0))
    return [(part, round(float(rng.uniform(12.0, 25.0)), 1))
            for part in cut_polyline(coords, stations)]


# --- pipelines ------------------------------------------------------------------------------------


def district_pipes(roads: pd.DataFrame, dem: np.ndarray, transform: Affine, district: District,
                   seed: int, source: str) -> pd.DataFrame:
    """Water, sewer and gas mains under the town's ground-level streets.

    Water runs 2 m to one side of the centreline, gas 2 m to the other, the sewer 0.5 m off it.
    Sewers are gravity pipes drawn in the direction of flow (downhill) with falling inverts:
    invert = ground - depth - diameter.

    Returns:
        DataFrame with the pipeline standard's columns and ``geometry`` (LineStrings).
    """
    rng = sub_rng(seed, 105, district.i, district.j)
    streets = roads[roads["in_town"].astype(bool) & (roads["level"] == "ground")
                    & roads["class"].isin(STREET_CLASSES)]
    lines = np.asarray(streets["geometry"])
    if len(lines):
        keep = shapely.length(lines) >= 8.0
        streets, lines = streets[keep], lines[keep]
    classes = streets["class"].to_numpy()
    frames = []
    for utility, offset, share in (("water", 2.0, 0.95), ("sewer", -0.5, 0.85), ("gas", -2.0, 0.6)):
        pick = rng.random(len(lines)) < share
        if not pick.any():
            continue
        geoms = shapely.offset_curve(lines[pick], offset)
        frames.append(_pipe_attrs(utility, geoms, classes[pick], dem, transform, rng))
    if not frames:
        return pd.DataFrame(columns=[*PIPE_COLUMNS, "geometry"])
    frame = pd.concat(frames, ignore_index=True)
    frame["id"] = [f"pipe-{district.tag}-{n:06d}" for n in range(len(frame))]
    frame["source"] = source
    frame["lineage"] = ("Synthetic: main laid under a synthetic street at a fixed offset; sewer "
                        "inverts from the DEM, falling along the flow.")
    return frame[[*PIPE_COLUMNS, "geometry"]]


def _pipe_attrs(utility: str, geoms: np.ndarray, classes: np.ndarray, dem: np.ndarray,
                transform: Affine, rng: np.random.Generator) -> pd.DataFrame:
    n = len(geoms)
    major = np.isin(classes, ["primary", "secondary"])
    if utility == "water":
        diameter = np.where(major, rng.choice([300, 400, 500, 600], n),
                            rng.choice([100, 150, 200, 250], n))
        material = rng.choice(["DI", "PVC", "PE", "CI"], n, p=[0.5, 0.25, 0.15, 0.1])
        pressure = np.where(diameter >= 300, "medium", "low")
        owner = "Zhongbu Water Utility (synthetic)"
    elif utility == "gas":
        diameter = np.where(major, rng.choice([150, 200, 300], n), rng.choice([50, 80, 100], n))
        material = np.where(diameter >= 150, "steel", "PE")
        pressure = np.where(major, rng.choice(["medium", "high"], n, p=[0.8, 0.2]), "low")
        owner = "Zhongbu Gas Co. (synthetic)"
    else:
        diameter = np.where(major, rng.choice([600, 800, 1000, 1200], n),
                            rng.choice([300, 400, 500], n))
        material = rng.choice(["concrete", "PVC", "clay"], n, p=[0.6, 0.3, 0.1])
        pressure = np.full(n, "gravity")
        owner = "County Sewerage Office (synthetic)"
    depth = np.round(rng.uniform(0.8, 1.8, n) if utility == "sewer"
                     else rng.uniform(0.6, 1.5, n), 2)
    frame = pd.DataFrame({"utility": utility, "diameter": diameter.astype(float), "depth": depth,
                          "invert_start": np.nan, "invert_end": np.nan,
                          "material": material.astype(object),
                          "pressure_class": pressure.astype(object),
                          "owner": owner, "install_year": rng.integers(1975, 2025, n),
                          "accuracy_class": rng.choice(["A", "B", "C", "D"], n,
                                                       p=[0.2, 0.4, 0.3, 0.1]).astype(object)})
    if utility == "sewer":
        geoms = _sewer_inverts(frame, geoms, dem, transform)
    frame["geometry"] = geoms
    return frame


def _sewer_inverts(frame: pd.DataFrame, geoms: np.ndarray, dem: np.ndarray,
                   transform: Affine) -> np.ndarray:
    """Orient sewers downhill and set inverts that fall by at least 0.3 % along the flow."""
    first, last = shapely.get_point(geoms, 0), shapely.get_point(geoms, -1)
    z0 = sample_dem(dem, transform, shapely.get_x(first), shapely.get_y(first))
    z1 = sample_dem(dem, transform, shapely.get_x(last), shapely.get_y(last))
    flip = z1 > z0
    geoms = geoms.copy()
    geoms[flip] = shapely.reverse(geoms[flip])
    g_start, g_end = np.where(flip, z1, z0), np.where(flip, z0, z1)
    dia = frame["diameter"].to_numpy() / 1000.0
    depth = frame["depth"].to_numpy()
    start = np.round(g_start - depth - dia, 3)
    fall = np.maximum(0.003 * shapely.length(geoms), 0.02)
    end = np.round(np.minimum(g_end - depth - dia, start - fall), 3)
    frame["invert_start"] = start
    frame["invert_end"] = end
    return geoms


# --- crashes --------------------------------------------------------------------------------------


def district_crashes(roads: pd.DataFrame, town: Town, spec: RegionSpec, district: District,
                     seed: int, source: str) -> tuple[pd.DataFrame, list[list[float]]]:
    """Crash points on the district's roads: a background rate by road class plus hotspots.

    Returns:
        (DataFrame with the crash standard's columns and ``geometry`` (Points), hotspot centres).
    """
    rng = sub_rng(seed, 104, district.i, district.j)
    lines = np.asarray(roads["geometry"])
    if len(lines) == 0:
        return pd.DataFrame(columns=[*CRASH_COLUMNS, "geometry"]), []
    weight = shapely.length(lines) / 1000.0 * roads["class"].map(CRASH_RATE).fillna(1.0).to_numpy()
    n_bg = int(rng.poisson(weight.sum()))
    seg = rng.choice(len(lines), n_bg, p=weight / weight.sum())
    points = [shapely.line_interpolate_point(lines[seg], rng.random(n_bg), normalized=True)]
    hotspots = _hotspot_centres(roads, town, spec, rng)
    tree = shapely.STRtree(lines)
    for hx, hy in hotspots:
        n = int(rng.integers(30, 51))
        raw = shapely.points(np.column_stack([hx + rng.normal(0, 40.0, n),
                                              hy + rng.normal(0, 40.0, n)]))
        near = tree.query_nearest(raw, all_matches=False)
        order = np.argsort(near[0], kind="stable")
        road = lines[near[1][order]]
        points.append(shapely.line_interpolate_point(road, shapely.line_locate_point(road, raw)))
    geoms = np.concatenate(points)
    frame = _crash_attrs(len(geoms), rng)
    frame["id"] = [f"crash-{district.tag}-{n:06d}" for n in range(len(frame))]
    frame["source"] = source
    frame["lineage"] = "Synthetic: background crash rate by road class plus clustered hotspots."
    frame["geometry"] = geoms
    return frame[[*CRASH_COLUMNS, "geometry"]], [[round(x, 2), round(y, 2)] for x, y in hotspots]


def _hotspot_centres(roads: pd.DataFrame, town: Town, spec: RegionSpec,
                     rng: np.random.Generator) -> list[tuple[float, float]]:
    """Junctions of the town's main and tertiary streets, a few hundred metres apart."""
    count = int(rng.integers(spec.hotspots[0], spec.hotspots[1] + 1))
    if count == 0 or len(town.blocks) == 0:
        return []
    ks = np.unique(town.blocks[:, 0])
    ms = np.unique(town.blocks[:, 1])
    kk, mm = np.meshgrid(ks[ks % 4 == 0], ms[ms % 4 == 0])
    x, y = town.to_world(kk.ravel() * town.a, mm.ravel() * town.b)
    if x.size == 0:
        return []
    nodes = shapely.points(np.column_stack([x, y]))
    ends = np.concatenate([shapely.get_point(np.asarray(roads["geometry"]), 0),
                           shapely.get_point(np.asarray(roads["geometry"]), -1)])
    degree = np.bincount(shapely.STRtree(ends).query(nodes, predicate="dwithin", distance=0.01)[0],
                         minlength=x.size)
    ok = np.flatnonzero(degree >= 3)
    ok = ok[rng.permutation(ok.size)]
    chosen: list[tuple[float, float]] = []
    for n in ok:
        if len(chosen) >= count:
            break
        if all(np.hypot(x[n] - cx, y[n] - cy) >= 400.0 for cx, cy in chosen):
            chosen.append((float(x[n]), float(y[n])))
    return chosen


def _crash_attrs(n: int, rng: np.random.Generator) -> pd.DataFrame:
    day = rng.integers(0, 1461, n)  # 2021-01-01 .. 2024-12-31
    hour_p = np.array([1, 1, 1, 1, 1, 2, 4, 8, 9, 6, 5, 5, 6, 5, 5, 6, 7, 9, 9, 7, 5, 3, 2, 2],
                      dtype=float)
    hour = rng.choice(24, n, p=hour_p / hour_p.sum())
    minute = rng.integers(0, 60, n)
    stamp = (np.datetime64("2021-01-01T00:00", "m") + day.astype("timedelta64[D]")
             + (hour * 60 + minute).astype("timedelta64[m]"))
    time = np.char.add(np.datetime_as_string(stamp, unit="m"), ":00+08:00")
    severity = rng.choice(["fatal", "injury", "property"], n, p=[0.015, 0.6, 0.385])
    deaths = np.where(severity == "fatal", 1 + rng.poisson(0.2, n), 0)
    injuries = np.where(severity == "injury", 1 + rng.poisson(0.5, n),
                        np.where(severity == "fatal", rng.poisson(0.8, n), 0))
    vehicles = np.clip(1 + rng.poisson(0.9, n), 1, 6)
    return pd.DataFrame({"time": time.astype(object), "severity": severity.astype(object),
                         "deaths": deaths.astype(np.int64), "injuries": injuries.astype(np.int64),
                         "vehicles": vehicles.astype(np.int64)})


# --- rain -----------------------------------------------------------------------------------------


def rain_series(seed: int) -> pd.DataFrame:
    """A 72-hour typhoon hyetograph by the alternating-block method.

    Depth-duration ``P(d) = total (d / 72 h) ** 0.45`` with a total of 550-750 mm; the hourly
    increments are placed largest first at the peak hour (near the middle of the event), then
    alternately after and before it.

    Returns:
        DataFrame with ``time_start`` (ISO 8601, +08:00, start of each hour; the name tells
        :func:`gis.io.hyetograph.read_hyetograph` so) and ``rain_mm``.
    """
    rng = sub_rng(seed, 6)
    total = rng.uniform(550.0, 750.0)
    hours = np.arange(1, 73)
    increments = np.sort(np.diff(np.concatenate([[0.0], total * (hours / 72.0) ** 0.45])))[::-1]
    peak = int(rng.integers(32, 41))
    order = [peak]
    step = 1
    while len(order) < 72:
        for pos in (peak + step, peak - step):
            if 0 <= pos < 72:
                order.append(pos)
        step += 1
    rain = np.zeros(72)
    rain[np.asarray(order[:72])] = increments
    start = (np.datetime64("2024-08-01T00:00", "h")
             + int(rng.integers(0, 60)) * np.timedelta64(1, "D"))
    stamps = np.datetime_as_string(start + np.arange(72).astype("timedelta64[h]"), unit="m")
    return pd.DataFrame({"time_start": np.char.add(stamps, ":00+08:00"), "rain_mm": np.round(rain, 1)})
