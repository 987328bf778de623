"""Source profiles: how the fields of known national sources map onto our standards.

A profile recognises a source by its columns and returns a frame with the standard's field names,
keeping the source columns it does not map. Sources already in the standard's form pass unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from gis.io.model import SourceLayer


@dataclass(frozen=True)
class Profile:
    """A known source schema.

    Attributes:
        name: Short name, shown in lineage.
        standard: The standard it maps onto.
        signature: Columns that identify the source.
        convert: Frame -> (standard frame, field sources).
    """

    name: str
    standard: str
    signature: frozenset[str]
    convert: Callable[[gpd.GeoDataFrame, str], tuple[gpd.GeoDataFrame, dict[str, str]]]


def _num(s: pd.Series | None) -> pd.Series | None:
    return None if s is None else pd.to_numeric(s, errors="coerce")


def _osm_nlsc_buildings(df: gpd.GeoDataFrame, path: str):
    """OSM footprints joined with NLSC heights (NYCU campus data set)."""
    out = gpd.GeoDataFrame({
        "id": "osm/" + df["osm_id"].astype(str),
        "name": df.get("name"),
        "height": _num(df.get("height_m")),
        "storeys": _num(df.get("building:levels")).round().astype("Int64")
        if "building:levels" in df else None,
        "structure": df.get("nlsc_BUILD_STR"),
        "lod": 1,
        "source": np.where(df.get("nlsc_BUILD_H", pd.Series(index=df.index)).notna(),
                           "OpenStreetMap footprint; NLSC 3D building height",
                           "OpenStreetMap footprint; height estimated by the source"),
        "lineage": f"{os.path.basename(path)}: OSM building polygon (ODbL), height_m from NLSC "
                   "BUILD_H where matched, else from building:levels or a 5 m default",
        "nlsc_id": df.get("nlsc_BUILD_ID"),
        "osm_building": df.get("building"),
    }, geometry=df.geometry, crs=df.crs)
    return out, {"id": "osm_id", "height": "height_m", "storeys": "building:levels",
                 "structure": "nlsc_BUILD_STR", "name": "name"}


# Taiwan road-network digital map (MOTC/NLSC), RoadStruct codes, inferred from the data: 2 bridges
# (every BridgeID sits on them), 3 tunnels (names end in 隧道), 5 interchange ramps (名稱 交流道),
# 7 main carriageways, 1 other (service areas, dedicated roads).
_ROAD_LEVEL = {"2": "bridge", "3": "tunnel"}


def _tw_freeway(df: gpd.GeoDataFrame, path: str):
    struct = df["RoadStruct"].astype(str)
    name = df.get("RoadAsName", pd.Series("", index=df.index)).fillna("")
    cls = np.where(struct == "5", "ramp", np.where(name.str.contains("服務區"), "service", "motorway"))
    width = _num(df.get("Width"))
    out = gpd.GeoDataFrame({
        "id": df["RoadID"].astype(str),
        "name": df.get("RoadName").where(name.eq(""), df.get("RoadName") + " " + name),
        "class": cls,
        "width": width,
        "level": struct.map(_ROAD_LEVEL).fillna("ground"),
        "oneway": df.get("Direction").astype(str).eq("1"),
        "surface": "asphalt",
        "source": "MOTC/NLSC road network digital map (" + df.get("UniqueID").fillna("") + ")",
        "lineage": f"{os.path.basename(path)}: RoadStruct mapped to level/class (2 bridge, 3 tunnel, "
                   "5 ramp); Width taken as metres",
        "road_struct": struct,
        "fnode": df.get("Fnode"),
        "tnode": df.get("Tnode"),
        "updated": df.get("Updatetime"),
    }, geometry=df.geometry, crs=df.crs)
    return out, {"id": "RoadID", "name": "RoadName+RoadAsName", "class": "RoadStruct",
                 "width": "Width", "level": "RoadStruct", "oneway": "Direction"}


_RAIL_CLASS = {"HSR": "high_speed", "TRA": "main", "MRT": "metro"}


def _tw_rail(df: gpd.GeoDataFrame, path: str):
    kind = df["RailType"].astype(str)
    name = df.get("RailName", pd.Series("", index=df.index)).fillna("")
    cls = np.where(name.str.contains("森林"), "forest", kind.map(_RAIL_CLASS).fillna("main"))
    gauge = np.select([cls == "high_speed", cls == "forest"], [1435, 762], 1067)
    out = gpd.GeoDataFrame({
        "id": kind + "/" + df["RailID"].astype(str),
        "name": name,
        "class": cls,
        "gauge": gauge,
        "level": "ground",
        "source": "MOTC/NLSC rail network (" + df.get("UniqueID").fillna("") + ")",
        "lineage": f"{os.path.basename(path)}: RailType mapped to class; gauge from class",
    }, geometry=df.geometry, crs=df.crs)
    return out, {"id": "RailType+RailID", "name": "RailName", "class": "RailType"}


PROFILES = [
    Profile("osm-nlsc-buildings", "building", frozenset({"osm_id", "height_m"}), _osm_nlsc_buildings),
    Profile("tw-road-network", "road", frozenset({"RoadID", "RoadStruct", "Width"}), _tw_freeway),
    Profile("tw-rail-network", "rail", frozenset({"RailID", "RailType"}), _tw_rail),
]


def detect_standard(frame: gpd.GeoDataFrame) -> str | None:
    """The standard a frame already follows: the one with its required fields all present and
    the most of its fields present, when that is unambiguous and the geometry fits."""
    import standards

    columns = set(frame.columns)
    geom_types = set(frame.geom_type.dropna().unique()) if len(frame) else set()
    scores = []
    for name in standards.FEATURE_STANDARDS:
        std = standards.load(name)
        if not set(std.required) <= columns:
            continue
        if geom_types and not geom_types & set(std.geometry_types):
            continue
        scores.append((len(columns & set(std.properties)), name))
    scores.sort(reverse=True)
    if not scores or (len(scores) > 1 and scores[0][0] == scores[1][0]):
        return None
    return scores[0][1]


def apply_profile(layer: SourceLayer) -> SourceLayer:
    """Map a layer of a known source onto its standard; a layer already in a standard's form
    gets that standard; anything else is returned unchanged (standard None)."""
    if layer.standard is not None:
        return layer
    columns = set(layer.frame.columns)
    for profile in PROFILES:
        if profile.signature <= columns:
            frame, sources = profile.convert(layer.frame, layer.path)
            return SourceLayer(path=layer.path, name=layer.name, frame=frame,
                               standard=profile.standard, field_sources=sources,
                               extras=layer.extras, skipped=layer.skipped)
    layer.standard = detect_standard(layer.frame)
    return layer
