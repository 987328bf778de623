"""Impacts on the base map, on constructed floods whose answers are known by construction."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine

from models.impacts import (assets_in_areas, building_depths, default_shelters, flood_impacts,
                            line_flooding, shelter_access, warning_polygons)

CRS = "EPSG:3826"
CELL = 2.0
T = Affine(CELL, 0, 1000.0, 0, -CELL, 2000.0)   # 500 x 500 cells: x 1000..2000, y 1000..2000


def _frame(geoms, **cols):
    return gpd.GeoDataFrame(cols, geometry=list(geoms), crs=CRS)


def test_warning_polygons_cover_exactly_their_cells_and_list_the_assets():
    cls = -np.ones((500, 500), dtype=np.int64)
    cls[100:150, 100:200] = 1          # x 1200..1400, y 1700..1800
    cls[300:310, 50:450] = 2           # x 1100..1900, y 1380..1400
    w = warning_polygons(cls, T, CRS, labels={1: "high", 2: "very high"}, simplify=0)
    assert w["class"].tolist() == [1, 2]
    assert w["area_m2"].tolist() == pytest.approx([50 * 100 * CELL ** 2, 10 * 400 * CELL ** 2])
    b = _frame([shapely.box(1250, 1750, 1260, 1760), shapely.box(1500, 1385, 1510, 1395),
                shapely.box(1500, 1500, 1510, 1510)], id=["in-high", "in-very-high", "outside"])
    road = _frame([shapely.LineString([(1000, 1390), (2000, 1390)])], id=["r"])
    hit = assets_in_areas(w, {"buildings": b, "roads": road})
    assert dict(zip(hit["buildings"]["id"], hit["buildings"]["class_name"])) == \
        {"in-high": "high", "in-very-high": "very high"}
    assert hit["buildings"]["area_in_m2"].tolist() == pytest.approx([100.0, 100.0])
    assert hit["roads"]["length_in_m"].iloc[0] == pytest.approx(800.0)


def test_building_depth_counts_the_water_around_an_obstacle():
    depth = np.zeros((500, 500))
    depth[240:260, 240:260] = 0.8                 # x 1480..1520, y 1480..1520
    depth[245:255, 245:255] = np.nan              # a blocked building holds no water
    b = _frame([shapely.box(1490, 1490, 1510, 1510),      # the blocked one, water around it
                shapely.box(1800, 1800, 1810, 1810),      # dry
                shapely.box(1481, 1481, 1481.5, 1481.5)],  # smaller than a cell, in the water
               id=["walls", "dry", "shed"])
    out = building_depths(b, depth, T)
    assert out["max_depth"].tolist() == pytest.approx([0.8, 0.0, 0.8])
    assert out["depth_class"].fillna("dry").tolist() == [">0.5 m", "dry", ">0.5 m"]


def test_road_flooded_length_is_the_width_of_the_water():
    depth = np.zeros((500, 500))
    depth[:, 200:230] = 0.45                      # a band 60 m wide: x 1400..1460
    depth[:, 210:215] = 0.2                       # with a shallow strip of 10 m inside
    road = _frame([shapely.LineString([(1000, 1500), (2000, 1500)])], id=["main"])
    out = line_flooding(road, depth, T, threshold=0.3)
    assert out["max_depth"].iloc[0] == pytest.approx(0.45)
    assert out["flooded_length_m"].iloc[0] == pytest.approx(50.0, abs=CELL)


def _town():
    """Homes on the west (x 1100..1300), a river at x 1490..1510 crossed by one road, a
    shelter on the east, and a school on the west."""
    roads = _frame([shapely.LineString([(1100, 1500), (1300, 1500)]),
                    shapely.LineString([(1300, 1500), (1700, 1500)]),     # crosses the river
                    shapely.LineString([(1700, 1500), (1900, 1500)]),
                    shapely.LineString([(1200, 1400), (1200, 1600)])],    # crosses the first
                   id=["w", "bridge-road", "e", "ns"], level=["ground"] * 4)
    homes = [shapely.box(x, 1510, x + 10, 1520) for x in range(1100, 1300, 20)]
    buildings = _frame(homes + [shapely.box(1800, 1510, 1830, 1540),
                                shapely.box(1150, 1410, 1180, 1440)],
                       id=[f"h{i}" for i in range(len(homes))] + ["sh", "school"],
                       usage=["residential"] * len(homes) + ["public", "education"],
                       name=[None] * len(homes) + ["East Community Shelter", "West School"])
    river = np.zeros((500, 500))
    river[:, 245:255] = 2.0
    return roads, buildings, river


def test_a_flooded_crossing_cuts_the_east_shelter_off():
    roads, buildings, river = _town()
    shelters = default_shelters(buildings)
    assert sorted(shelters["id"]) == ["school", "sh"]
    s, summary = shelter_access(shelters, buildings, roads, river, T)
    status = dict(zip(s["id"], zip(s["flooded"], s["cut_off"], s["reachable_buildings"])))
    assert status == {"sh": (False, True, 0), "school": (False, False, 10)}
    assert summary == {"populated_buildings": 10, "populated_without_shelter": 0}
    # Without the school, nobody reaches a shelter; on a bridge, the river closes nothing.
    s, summary = shelter_access(shelters[shelters["id"] == "sh"], buildings, roads, river, T)
    assert summary["populated_without_shelter"] == 10 and bool(s["cut_off"].iloc[0])
    roads.loc[roads["id"] == "bridge-road", "level"] = "bridge"
    s, summary = shelter_access(shelters, buildings, roads, river, T)
    assert not s["cut_off"].any() and summary["populated_without_shelter"] == 0


def test_flood_impacts_summary():
    roads, buildings, river = _town()
    pipes = _frame([shapely.LineString([(1400, 1450), (1600, 1450)]),
                    shapely.LineString([(1100, 1450), (1200, 1450)])],
                   id=["p1", "p2"], utility=["water", "sewer"])
    frames, summary = flood_impacts(river, T, CRS, {"buildings": buildings, "roads": roads,
                                                    "pipelines": pipes})
    assert summary["roads"]["impassable"] == 1
    assert summary["roads"]["impassable_length_m"] == pytest.approx(20.0, abs=CELL)
    assert summary["pipelines"] == {"total": 2, "under_flood": 1,
                                    "length_under_flood_m": pytest.approx(20.0, abs=CELL),
                                    "by_utility": {"water": 1}}
    assert summary["buildings"]["over_0.3m"] == 0
    assert set(frames) == {"buildings", "roads", "pipelines", "shelters"}
