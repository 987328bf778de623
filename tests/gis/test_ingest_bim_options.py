"""``ngis ingest`` passes the BIM and CityJSON reading options through: an origin and rotation
place an IFC model that has no georeferencing; --lod picks the CityJSON LOD; --repair repairs
CityJSON surfaces invalid in their plane; --skip-invalid leaves an invalid Building out with its
surface rows. The store is read back with plain SQLite; surface rows are counted on the raw JSON.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import shapely
from click.testing import CliRunner

from gis.cli.main import cli
from gis.io import read_source
from gis.io.cityjson import read_cityjson

IFC = ("ifc-samples", "OWL_20230717_Laan-op-Zuid_Rotterdam.ifc")
BAG = ("cityjson-samples", "3dbag_v20240420_delft_subset.city.jsonl")
ZURICH = ("cityjson-samples", "zurich_subset_lod2.city.json")


def _without_georeferencing(shared_data, tmp_path) -> Path:
    text = Path(shared_data(*IFC)).read_text()
    text = "\n".join(ln for ln in text.splitlines() if "IFCMAPCONVERSION" not in ln)
    text = text.replace("(51,54,23,553132),(4,29,57,51126)", "$,$")
    out = tmp_path / "nogeo.ifc"
    out.write_text(text)
    return out


def test_origin_and_rotation_place_an_ifc_model(shared_data, tmp_path):
    pytest.importorskip("ifcopenshell")
    src = _without_georeferencing(shared_data, tmp_path)
    store = tmp_path / "s.gpkg"
    r = CliRunner().invoke(cli, ["-q", "ingest", "--store", str(store), "--origin",
                                 "250000,2700000,10", "--rotation", "30", "--crs", "EPSG:3826",
                                 str(src)])
    assert r.exit_code == 0, r.output
    buildings = read_source(store, layer="buildings")[0].frame
    assert buildings.crs.to_epsg() == 3826
    # The model's own extent is tens of metres: placed, it lies around the given origin.
    centre = shapely.centroid(shapely.union_all(buildings.geometry.values))
    assert shapely.distance(centre, shapely.Point(250000, 2700000)) < 100
    # An origin means nothing without its CRS: one line, exit 1, store untouched.
    r = CliRunner().invoke(cli, ["ingest", "--store", str(tmp_path / "t.gpkg"), "--origin",
                                 "250000,2700000,10", str(src)])
    assert r.exit_code == 1 and "crs" in r.output and not (tmp_path / "t.gpkg").exists()
    r = CliRunner().invoke(cli, ["ingest", "--store", str(tmp_path / "t.gpkg"), "--origin",
                                 "250000,2700000", "--crs", "EPSG:3826", str(src)])
    assert r.exit_code == 1 and "E,N,H" in r.output


def test_lod_picks_the_cityjson_level(shared_data, tmp_path):
    src = shared_data(*BAG)
    expected = {lod: len(read_cityjson(src, lod=lod).extras["surfaces"]) for lod in ("1.2", "2.2")}
    assert expected["1.2"] != expected["2.2"]
    for lod in ("1.2", "2.2"):
        store = tmp_path / f"s{lod}.gpkg"
        r = CliRunner().invoke(cli, ["-q", "ingest", "--store", str(store), "--lod", lod,
                                     "--target-crs", "EPSG:7415", str(src)])
        assert r.exit_code == 0, r.output
        stored = read_source(store, layer="buildings_surfaces")[0].frame
        assert len(stored) == expected[lod], lod


# --------------------------------------------------------------------- invalid CityJSON buildings

def _cube(base: int) -> list:
    """Boundaries of a Solid cube over vertices base..base+7 (ground, roof, four walls)."""
    v = [base + i for i in range(8)]
    return [[[[v[0], v[3], v[2], v[1]]], [[v[4], v[5], v[6], v[7]]], [[v[0], v[1], v[5], v[4]]],
             [[v[1], v[2], v[6], v[5]]], [[v[2], v[3], v[7], v[6]]], [[v[3], v[0], v[4], v[7]]]]]


def _two_buildings(tmp_path: Path) -> Path:
    """Two 2 m cubes in EPSG:3826, b1 valid, b2 with a bow-tie roof polygon (edges crossing in
    its plane z = 10 + x): b2 is invalid, b1 is not. Four surface rows each (Ground, Roof, Wall
    and the polygon without semantics)."""
    cube = [[0, 0, 0], [4, 0, 0], [4, 4, 0], [0, 4, 0], [0, 0, 4], [4, 0, 4], [4, 4, 4], [0, 4, 4]]
    verts = cube + [[x + 10, y, z] for x, y, z in cube] + \
        [[10, 0, 10], [14, 4, 14], [14, 0, 14], [10, 2, 10]]
    sem = {"surfaces": [{"type": "GroundSurface"}, {"type": "RoofSurface"},
                        {"type": "WallSurface"}]}
    b2 = _cube(8)
    b2[0].append([[16, 17, 18, 19]])
    doc = {"type": "CityJSON", "version": "2.0",
           "transform": {"scale": [0.5, 0.5, 0.5], "translate": [250000.0, 2700000.0, 10.0]},
           "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/3826"},
           "CityObjects": {
               "b1": {"type": "Building", "geometry": [{
                   "type": "Solid", "lod": "2", "boundaries": _cube(0),
                   "semantics": {**sem, "values": [[0, 1, 2, 2, 2, None]]}}]},
               "b2": {"type": "Building", "geometry": [{
                   "type": "Solid", "lod": "2", "boundaries": b2,
                   "semantics": {**sem, "values": [[0, 1, 2, 2, 2, None, 1]]}}]}},
           "vertices": verts}
    path = tmp_path / "two.city.json"
    path.write_text(json.dumps(doc))
    return path


def _raw_surface_rows(doc: dict, building: str) -> int:
    """Surface rows a Building's LOD2 geometry makes, counted on the raw JSON: one per semantic
    surface object its polygons refer to, plus one if some polygon has none (what
    gis.io.cityjson documents)."""
    def flat(values):
        return [x for v in values for x in flat(v)] if isinstance(values, list) else [values]

    rows = 0
    for oid in [building, *doc["CityObjects"][building].get("children", [])]:
        for g in doc["CityObjects"][oid].get("geometry", []):
            if str(g["lod"]).startswith("2"):
                refs = flat(g.get("semantics", {}).get("values"))
                rows += len(set(refs) - {None}) + (None in refs)
    return rows


def _sql(store: Path, query: str) -> list[tuple]:
    """A plain SQLite read of the GeoPackage (independent of our store code)."""
    with sqlite3.connect(store) as con:
        return con.execute(query).fetchall()


ORPHANS = ("SELECT count(*) FROM buildings_surfaces "
           "WHERE building_id NOT IN (SELECT id FROM buildings)")


def test_skip_invalid_leaves_the_surfaces_of_left_out_buildings_out(tmp_path):
    src = _two_buildings(tmp_path)
    doc = json.loads(src.read_text())
    store = tmp_path / "s.gpkg"
    r = CliRunner().invoke(cli, ["ingest", "--store", str(store), "--skip-invalid", str(src)])
    assert r.exit_code == 0, r.output
    n2 = _raw_surface_rows(doc, "b2")
    assert n2 == 4
    assert f"buildings: 1 records (1 invalid left out, {n2} buildings_surfaces row(s) with " \
        "them)" in r.output
    assert _sql(store, "SELECT id FROM buildings") == [("b1",)]
    assert _sql(store, ORPHANS) == [(0,)]
    assert _sql(store, "SELECT DISTINCT building_id FROM buildings_surfaces") == [("b1",)]
    assert _sql(store, "SELECT count(*) FROM buildings_surfaces") == [
        (_raw_surface_rows(doc, "b1"),)]
    (record,) = _sql(store, "SELECT record FROM ngis_catalog WHERE id = 'buildings'")
    assert f"1 invalid record(s) left out, with their {n2} buildings_surfaces row(s)" in \
        json.loads(record[0])["lineage"]
    # the API says the same
    from gis.etl.ingest import SourceSpec, ingest

    (summary,) = ingest(str(tmp_path / "t.gpkg"), [SourceSpec(str(src))], skip_invalid=True)
    assert (summary.records, summary.rejected) == (1, 1)
    assert summary.extras_dropped == {"buildings_surfaces": n2}


def test_repair_keeps_the_invalid_building_and_says_so(tmp_path):
    src = _two_buildings(tmp_path)
    # without --repair (and without --skip-invalid): refused, one line about b2's roof
    r = CliRunner().invoke(cli, ["ingest", "--store", str(tmp_path / "no.gpkg"), str(src)])
    assert r.exit_code == 1 and not (tmp_path / "no.gpkg").exists()
    assert [ln for ln in r.output.splitlines() if ":b2: surfaces:" in ln and
            "not valid in its plane" in ln] != []
    store = tmp_path / "s.gpkg"
    r = CliRunner().invoke(cli, ["ingest", "--store", str(store), "--repair", str(src)])
    assert r.exit_code == 0, r.output
    assert "buildings: 2 records" in r.output.splitlines()  # nothing left out
    lineage = dict(_sql(store, "SELECT id, lineage FROM buildings"))
    assert sorted(lineage) == ["b1", "b2"]
    assert "repaired: 1 surface polygon(s) invalid in their plane" in lineage["b2"]
    assert "repaired" not in lineage["b1"]
    assert _sql(store, ORPHANS) == [(0,)]
    # the repaired surfaces are valid in their plane, read back independently
    from gis.io.cityjson import planar_validity

    wkb = _sql(store, "SELECT geom FROM buildings_surfaces WHERE building_id = 'b2'")
    geoms = [shapely.from_wkb(_gpkg_wkb(g)) for (g,) in wkb]
    assert planar_validity(shapely.get_parts(np.asarray(geoms, object)))[0].all()
    # a manifest says it per source
    manifest = tmp_path / "m.yml"
    manifest.write_text(f"sources:\n  - path: {src.name}\n    repair: true\n")
    r = CliRunner().invoke(cli, ["-q", "ingest", "--store", str(tmp_path / "m.gpkg"),
                                 "--manifest", str(manifest)])
    assert r.exit_code == 0, r.output
    assert sorted(_sql(tmp_path / "m.gpkg", "SELECT id FROM buildings")) == [("b1",), ("b2",)]


def _gpkg_wkb(blob: bytes) -> bytes:
    """The WKB of a GeoPackage geometry blob (header: 'GP', version, flags, srs id, envelope
    whose size the flags give)."""
    flags = blob[3]
    envelope = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[(flags >> 1) & 7]
    return blob[8 + envelope:]


@pytest.mark.shared_data
def test_zurich_skip_invalid_leaves_no_orphan_surfaces_and_repair_keeps_all(shared_data,
                                                                            tmp_path):
    """Zurich's one Building with a self-intersecting roof: with --skip-invalid it goes, and so
    do its surface rows (as many as the raw JSON gives its parts); with --repair all 49 stay.
    Either way every surfaces row has its building (plain SQLite)."""
    src = shared_data(*ZURICH)
    doc = json.loads(Path(src).read_text())
    raw_ids = {k for k, o in doc["CityObjects"].items() if o["type"] == "Building"}
    total = sum(_raw_surface_rows(doc, b) for b in raw_ids)
    store = tmp_path / "s.gpkg"
    r = CliRunner().invoke(cli, ["ingest", "--store", str(store), "--skip-invalid",
                                 "--target-crs", "EPSG:2056", str(src)])
    assert r.exit_code == 0, r.output
    kept = {i for (i,) in _sql(store, "SELECT id FROM buildings")}
    (gone,) = raw_ids - kept
    n = _raw_surface_rows(doc, gone)
    assert n == 30 and f"(1 invalid left out, {n} buildings_surfaces row(s) with them)" in r.output
    assert _sql(store, ORPHANS) == [(0,)]
    assert _sql(store, "SELECT count(*) FROM buildings_surfaces") == [(total - n,)]
    fixed = tmp_path / "r.gpkg"
    r = CliRunner().invoke(cli, ["-q", "ingest", "--store", str(fixed), "--repair",
                                 "--target-crs", "EPSG:2056", str(src)])
    assert r.exit_code == 0, r.output
    assert {i for (i,) in _sql(fixed, "SELECT id FROM buildings")} == raw_ids
    assert _sql(fixed, "SELECT id FROM buildings WHERE lineage LIKE '%repaired:%'") == [(gone,)]
    assert _sql(fixed, ORPHANS) == [(0,)]
    assert _sql(fixed, "SELECT count(*) FROM buildings_surfaces") == [(total,)]
