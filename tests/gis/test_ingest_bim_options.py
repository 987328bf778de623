"""``ngis ingest`` passes the BIM and CityJSON reading options through: an origin and rotation
place an IFC model that has no georeferencing; --lod picks the CityJSON LOD."""

from __future__ import annotations

from pathlib import Path

import shapely
from click.testing import CliRunner

from gis.cli.main import cli
from gis.io import read_source
from gis.io.cityjson import read_cityjson

IFC = ("ifc-samples", "OWL_20230717_Laan-op-Zuid_Rotterdam.ifc")
BAG = ("cityjson-samples", "3dbag_v20240420_delft_subset.city.jsonl")


def _without_georeferencing(shared_data, tmp_path) -> Path:
    text = Path(shared_data(*IFC)).read_text()
    text = "\n".join(ln for ln in text.splitlines() if "IFCMAPCONVERSION" not in ln)
    text = text.replace("(51,54,23,553132),(4,29,57,51126)", "$,$")
    out = tmp_path / "nogeo.ifc"
    out.write_text(text)
    return out


def test_origin_and_rotation_place_an_ifc_model(shared_data, tmp_path):
    import pytest

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
