"""The decision models as OGC API Processes on a real server: the same model as the CLI, on the
store's DEM and layers, limited to what the client's grade may see."""

from __future__ import annotations

import json

import pytest

# 700 m x 700 m of the demo town by its river (about 90 x 90 DEM cells with the margin).
TOWN = {"type": "Polygon", "coordinates": [[[120.6116, 24.0607], [120.6184, 24.0607],
                                            [120.6184, 24.0670], [120.6116, 24.0670],
                                            [120.6116, 24.0607]]]}


def _run(server, client, process, inputs):
    return server.fetch(f"/processes/{process}/execution", client, "POST",
                        json.dumps({"inputs": inputs}).encode())


@pytest.fixture(scope="module")
def flood_runs(graded_server):
    inputs = {"area": TOWN, "mode": "rain", "rain_mm": [60, 90], "rain_step_s": 900,
              "curve_number": 80, "duration_s": 1800}
    return {client: _run(graded_server, client, "flood", inputs)
            for client in ("public", "restricted")}


def test_flood_process_returns_warning_areas_and_impacts(flood_runs):
    status, _, body = flood_runs["restricted"]
    assert status == 200, body[:500]
    doc = json.loads(body)
    s = doc["summary"]
    assert s["model"]["mode"] == "rain" and s["model"]["volume"]["relative_error"] < 1e-6
    areas = doc["warning_areas"]["features"]
    assert areas and sum(f["properties"]["area_m2"] for f in areas) == pytest.approx(
        s["flooded_area_m2"]["over_0.3m"], rel=0.05)
    lon, lat = areas[0]["geometry"]["coordinates"][0][0][:2] \
        if areas[0]["geometry"]["type"] == "Polygon" else \
        areas[0]["geometry"]["coordinates"][0][0][0][:2]
    assert 120.5 < lon < 120.7 and 24.0 < lat < 24.1          # CRS84
    assert len(doc["affected"]["buildings"]) == s["impacts"]["buildings"]["over_0.3m"]
    assert "pipelines" in s["impacts"]
    assert b"NaN" not in body and b"Infinity" not in body     # strict JSON for browsers


def test_flood_process_hides_what_the_grade_may_not_see(flood_runs):
    status, _, body = flood_runs["public"]
    assert status == 200, body[:500]
    doc = json.loads(body)
    assert "pipelines" not in doc["affected"] and "pipelines" not in doc["summary"]["impacts"]
    assert b"pipe" not in body.lower()
    # Everything public is the same for both grades.
    restricted = json.loads(flood_runs["restricted"][2])
    assert doc["summary"]["impacts"]["buildings"] == \
        restricted["summary"]["impacts"]["buildings"]
    assert doc["warning_areas"] == restricted["warning_areas"]


@pytest.mark.parametrize("inputs,message", [
    ({"mode": "rain", "rain_mm": [10]}, "area"),
    ({"area": TOWN, "mode": "rain"}, "rain_mm"),
    ({"area": TOWN, "mode": "rain", "rain_mm": [10, -1]}, "rain_mm"),
    ({"area": TOWN, "mode": "flash"}, "mode"),
    ({"area": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]},
      "rain_mm": [10]}, "outside"),
])
def test_flood_process_bad_inputs_are_400(graded_server, inputs, message):
    status, _, body = _run(graded_server, "public", "flood", inputs)
    assert status == 400 and message in body.decode(), body[:300]


def test_large_areas_are_refused_before_any_work(demo_store):
    from pygeoapi.process.base import ProcessorExecuteError

    from gis.server.processes.common import dem_for_area, read_area

    area = read_area({"area": TOWN})
    dem = dem_for_area(str(demo_store), area, max_cells=20_000)
    assert dem.crs.to_epsg() == 3826 and dem.shape[0] * dem.shape[1] <= 20_000
    # The window covers the area (plus its margin) on the store's own grid.
    x0, y0 = dem.transform.c, dem.transform.f
    assert (x0 - 210000) % 10 == 0 and (2664000 - y0) % 10 == 0
    with pytest.raises(ProcessorExecuteError, match="cells"):
        dem_for_area(str(demo_store), area, max_cells=1000)


def test_long_flood_runs_become_jobs_by_themselves(demo_store, tmp_path, monkeypatch):
    from pygeoapi.util import RequestedProcessExecutionMode

    from gis.server.jobs import CURRENT_OWNER, ClientJobManager
    from gis.server.processes.flood import FloodProcessor

    p = FloodProcessor({"name": "flood", "store": str(demo_store)})
    small = {"area": TOWN, "rain_mm": [30], "duration_s": 1800}
    whole = {"area": {"type": "Polygon", "coordinates": [[[120.60, 24.04], [120.65, 24.04],
                                                          [120.65, 24.09], [120.60, 24.09],
                                                          [120.60, 24.04]]]},
             "rain_mm": [30] * 48}
    assert not p.prefers_async(small) and p.prefers_async(whole)
    assert not p.prefers_async({**whole, "mode": "hand"})

    manager = ClientJobManager({
        "name": "ClientJobManager", "connection": str(tmp_path / "jobs.db"),
        "output_dir": str(tmp_path / "results"),
        "processes": {"flood": {"type": "process", "processor": {
            "name": "gis.server.processes.flood.FloodProcessor", "store": str(demo_store)}}}})
    ran = []
    monkeypatch.setattr(manager, "_execute_handler_async",
                        lambda *a, **k: ran.append("async") or ("application/json", None, None))
    monkeypatch.setattr(manager, "_execute_handler_sync",
                        lambda *a, **k: ran.append("sync") or ("application/json", {}, None))
    token = CURRENT_OWNER.set("city-gis")
    try:
        manager.execute_process("flood", whole)                      # no preference: a job
        manager.execute_process("flood", whole, RequestedProcessExecutionMode.wait)
        manager.execute_process("flood", small)
    finally:
        CURRENT_OWNER.reset(token)
    token = CURRENT_OWNER.set("*anonymous*")
    try:
        manager.execute_process("flood", whole)                      # nobody to fetch it
    finally:
        CURRENT_OWNER.reset(token)
    assert ran == ["async", "sync", "sync", "sync"]


def test_hand_on_a_small_area_still_finds_its_river(demo_store):
    from gis.server.processes.flood import FloodProcessor

    p = FloodProcessor({"name": "flood", "store": str(demo_store)})
    _, doc = p.execute({"area": TOWN, "mode": "hand", "stage_m": 2})
    model = doc["summary"]["model"]
    assert model["reaches"] >= 1 and model["stream_cells"] > 0
    assert doc["summary"]["flooded_area_m2"]["over_0.3m"] > 0
