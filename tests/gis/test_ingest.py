"""Ingest into the GeoPackage store: real data spot-checked against independent reads, lossless
round trip, atomicity, catalogue records."""

from __future__ import annotations

import hashlib
import json
import os
import re

import jsonschema
import netCDF4
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import pytest
import rasterio
import shapely
from click.testing import CliRunner

import standards
from gis.cli.main import cli
from gis.errors import CRSError, StoreError
from gis.etl.ingest import IngestValidationError, SourceSpec, ingest
from gis.store import open_store
from tests_helpers import buildings_frame


def _sha(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


_buildings = buildings_frame


def test_round_trip_is_lossless(tmp_path):
    src = _buildings()
    src.to_file(tmp_path / "b.gpkg", layer="b")
    store = tmp_path / "store.gpkg"
    ingest(str(store), [SourceSpec(str(tmp_path / "b.gpkg"))])
    back = open_store(str(store)).read("buildings").reset_index(drop=True)
    std = standards.load("building")
    for field in std.properties:
        a, b = src[field], back[field]
        if pd.api.types.is_numeric_dtype(a):
            np.testing.assert_array_equal(a.to_numpy(float), b.to_numpy(float), err_msg=field)
        else:
            assert list(a.where(a.notna(), None)) == list(b.where(b.notna(), None)), field
    assert shapely.equals_exact(src.geometry.values, back.geometry.values, tolerance=0).all()
    # Integer fields are INTEGER columns in the GeoPackage, not REAL.
    info = pyogrio.read_info(store, layer="buildings")
    types = dict(zip(info["fields"], info["dtypes"], strict=True))
    assert types["storeys"].startswith("int") and types["year_built"].startswith("int")
    assert info["crs"] == "EPSG:3826"


def test_reprojection_matches_pyproj(tmp_path):
    src = _buildings(crs="EPSG:4326")
    src.to_file(tmp_path / "b.geojson")
    store = tmp_path / "s.gpkg"
    ingest(str(store), [SourceSpec(str(tmp_path / "b.geojson"))])
    back = open_store(str(store)).read("buildings")
    tr = pyproj.Transformer.from_crs(4326, 3826, always_xy=True)
    lon, lat = shapely.get_coordinates(src.geometry.values).T
    x, y = tr.transform(lon, lat)
    np.testing.assert_allclose(shapely.get_coordinates(back.geometry.values), np.c_[x, y],
                               atol=1e-6)


def test_invalid_records_abort_and_leave_store_untouched(tmp_path):
    good = tmp_path / "good.gpkg"
    _buildings().to_file(good)
    store = tmp_path / "s.gpkg"
    ingest(str(store), [SourceSpec(str(good))])
    before = _sha(store)
    bad = tmp_path / "bad.gpkg"
    _buildings(height=[1.0, -2.0, 3.0, 4.0, 5.0]).to_file(bad)
    with pytest.raises(IngestValidationError) as info:
        ingest(str(store), [SourceSpec(str(bad))])
    assert info.value.reports[0].lines() == [f"{bad}:bad:b1: height: out of range: -2 (must be > 0)"]
    assert _sha(store) == before
    # --skip-invalid loads the rest and says so in the lineage.
    ingest(str(store), [SourceSpec(str(bad))], skip_invalid=True)
    s = open_store(str(store))
    assert sorted(s.read("buildings")["id"]) == ["b0", "b2", "b3", "b4"]
    assert "1 invalid record(s) left out" in s.record("buildings")["lineage"]


def test_interrupted_ingest_leaves_old_store(tmp_path, monkeypatch):
    good = tmp_path / "good.gpkg"
    _buildings().to_file(good)
    store = tmp_path / "s.gpkg"
    ingest(str(store), [SourceSpec(str(good), metadata={"access_grade": "public"})])
    before = _sha(store)
    real = pyogrio.write_dataframe
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr(pyogrio, "write_dataframe", dying)
    with pytest.raises(KeyboardInterrupt):
        ingest(str(store), [SourceSpec(str(good), layer="a"), SourceSpec(str(good), layer="b")])
    assert _sha(store) == before
    assert sorted(os.listdir(tmp_path)) == ["good.gpkg", "s.gpkg"]


def test_layers_are_replaced_others_kept(tmp_path):
    a = tmp_path / "a.gpkg"
    _buildings(3).to_file(a)
    store = str(tmp_path / "s.gpkg")
    ingest(store, [SourceSpec(str(a), layer="x"), SourceSpec(str(a), layer="y")])
    _buildings(2).to_file(tmp_path / "b.gpkg")
    ingest(store, [SourceSpec(str(tmp_path / "b.gpkg"), layer="x")])
    s = open_store(store)
    assert s.layers() == ["x", "y"]
    assert len(s.read("x")) == 2 and len(s.read("y")) == 3
    assert [r["id"] for r in s.catalog()] == ["x", "y"]


def test_catalogue_record_is_valid_and_fails_closed(tmp_path):
    a = tmp_path / "a.gpkg"
    _buildings().to_file(a)
    store = str(tmp_path / "s.gpkg")
    ingest(store, [SourceSpec(str(a))])
    rec = open_store(store).record("buildings")
    jsonschema.Draft202012Validator(standards.load("map_asset").schema).validate(rec)
    assert rec["access_grade"] == "restricted"  # nobody graded it: closed
    assert rec["feature_count"] == 5 and rec["crs"] == "EPSG:3826"
    w, s, e, n = rec["extent"]["bbox"]
    assert 120.9 < w < e < 121.1 and 24.7 < s < n < 24.9
    assert re.search(r"a\.gpkg.*sha256 [0-9a-f]{16}, 5 records, EPSG:3826", rec["lineage"])


def test_japan_refused_in_twd97_with_a_hint(tmp_path):
    frame = _buildings(crs="EPSG:4326")
    frame.geometry = frame.geometry.translate(18.7, 10.8)  # to Tokyo
    frame.to_file(tmp_path / "tokyo.geojson")
    with pytest.raises(CRSError, match=r"outside the area of EPSG:3826.*--target-crs EPSG:326"):
        ingest(str(tmp_path / "s.gpkg"), [SourceSpec(str(tmp_path / "tokyo.geojson"))])


def test_store_that_is_not_a_geopackage(tmp_path):
    junk = tmp_path / "s.gpkg"
    junk.write_bytes(b"not sqlite at all" * 100)
    _buildings().to_file(tmp_path / "a.gpkg")
    with pytest.raises(StoreError, match="not a GeoPackage"):
        ingest(str(junk), [SourceSpec(str(tmp_path / "a.gpkg"))])
    assert junk.read_bytes() == b"not sqlite at all" * 100


# -- real data ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_store(tmp_path_factory, shared_data):
    shared = shared_data
    d = tmp_path_factory.mktemp("real")
    specs = [
        SourceSpec(str(shared("hsinchu-nycu-buildings", "guangfu_buildings_3d.geojson")),
                   metadata={"access_grade": "public", "charge_class": "free"}),
        SourceSpec(str(shared("hsinchu-nycu-buildings", "nlsc_buildings_hsinchu_city_points.json")),
                   layer="building_points"),
        SourceSpec(str(shared("tw-transport-network", "Freeway_Nat.gmt"))),
        SourceSpec(str(shared("tw-transport-network", "THSRC.gmt"))),
        SourceSpec(str(shared("tw-transport-network", "TRA.gmt"))),
        SourceSpec(str(shared("tw-sw-dem40m", "tw_sw40_moi40m_wgs84.nc"))),
    ]
    path = d / "basemap.gpkg"
    ingest(str(path), specs)
    return open_store(str(path))


def test_real_hsinchu_heights_and_areas(real_store, shared_data):
    raw = json.loads(shared_data("hsinchu-nycu-buildings", "guangfu_buildings_3d.geojson")
                     .read_text(encoding="utf-8"))
    stored = real_store.read("buildings").set_index("id")
    assert len(stored) == len(raw["features"]) == 319
    geod = pyproj.Geod(ellps="GRS80")
    for feat in raw["features"][::40]:
        row = stored.loc[f"osm/{feat['properties']['osm_id']}"]
        assert row["height"] == feat["properties"]["height_m"]
        lon, lat = np.array(feat["geometry"]["coordinates"][0]).T
        area = abs(geod.polygon_area_perimeter(lon, lat)[0])
        # TM2 scale factor 0.9999 near the central meridian: areas agree to ~0.03 %.
        assert row.geometry.area == pytest.approx(area, rel=5e-4)


def test_real_nlsc_points_sit_on_their_twd97_coordinates(real_store, shared_data):
    raw = json.loads(shared_data("hsinchu-nycu-buildings", "nlsc_buildings_hsinchu_city_points.json")
                     .read_text(encoding="utf-8"))["buildings"]
    stored = real_store.read("building_points").set_index("id")
    assert len(stored) == len(raw) == 6181
    for rec in raw[::500]:
        row = stored.loc[rec["BUILD_ID"]]
        assert row["height"] == float(rec["BUILD_H"])
        assert row["storeys"] == int(rec["BUILD_NO"])
        assert (row.geometry.x, row.geometry.y) == (float(rec["CENT_E_97"]), float(rec["CENT_N_97"]))


def _gmt_records(path):
    """An independent reading of a GMT vector file: header lines and coordinates per record."""
    names, records = None, []
    with open(path, encoding="utf-8") as fh:
        lines = fh.readlines()
    for line in lines:
        if line.startswith("# @N"):
            names = line[4:].strip().split("|")
        elif line.startswith("# @D"):
            records.append({"attrs": dict(zip(names, line[4:].strip().split("|"), strict=True)),
                            "xy": []})
        elif line[:1].isdigit() or line[:1] == "-":
            records[-1]["xy"].append(tuple(map(float, line.split()[:2])))
    return records


def test_real_freeways(real_store, shared_data):
    recs = _gmt_records(shared_data("tw-transport-network", "Freeway_Nat.gmt"))
    roads = real_store.read("roads").set_index("id")
    assert len(roads) == len(recs) == 4330
    tr = pyproj.Transformer.from_crs(4326, 3826, always_xy=True)
    for rec in recs[::433]:
        row = roads.loc[rec["attrs"]["RoadID"]]
        assert row["width"] == float(rec["attrs"]["Width"])
        want = "tunnel" if rec["attrs"]["RoadStruct"] == "3" else (
            "bridge" if rec["attrs"]["RoadStruct"] == "2" else "ground")
        assert row["level"] == want
        x, y = tr.transform(*np.array(rec["xy"]).T)
        np.testing.assert_allclose(shapely.get_coordinates(row.geometry), np.c_[x, y], atol=1e-3)
    tunnels = roads[roads["level"] == "tunnel"]
    assert tunnels["name"].str.contains("隧道").mean() > 0.9
    assert len(real_store.read("rail")) == 25 + 318


def test_real_dem_matches_netcdf_read_independently(real_store, shared_data):
    nc = netCDF4.Dataset(shared_data("tw-sw-dem40m", "tw_sw40_moi40m_wgs84.nc"))
    lon, lat, z = nc["x"][:], nc["y"][:], nc["z"][:].filled(np.nan)
    dem = real_store.read_raster("dem")
    assert dem.crs.to_epsg() == 3826
    tr = pyproj.Transformer.from_crs(4326, 3826, always_xy=True)
    inv = ~dem.transform
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(400):
        i, j = rng.integers(1, len(lat) - 2), rng.integers(1, len(lon) - 2)
        block = z[i - 1:i + 2, j - 1:j + 2]
        if np.isnan(block).any():
            continue
        col, row = inv @ tr.transform(float(lon[j]), float(lat[i]))
        value = dem.data[int(row), int(col)]
        # Bilinear resampling stays within the values of the source neighbourhood.
        assert block.min() - 1e-3 <= value <= block.max() + 1e-3
        checked += 1
    assert checked > 100
    rec = real_store.record("dem")
    assert rec["extent"]["vertical"][1] == pytest.approx(3091, abs=5)
    assert "assumed EPSG:4326" in rec["lineage"]


def test_dem_in_a_zip_and_ascii_grid(tmp_path):
    data = (np.arange(30 * 40, dtype="float32").reshape(30, 40) % 97) + 100
    profile = dict(driver="AAIGrid", width=40, height=30, count=1, dtype="float32",
                   crs="EPSG:3826", transform=rasterio.transform.from_origin(250000, 2742000, 10, 10))
    asc = tmp_path / "dem.asc"
    with rasterio.open(asc, "w", **profile) as dst:
        dst.write(data, 1)
    import zipfile

    with zipfile.ZipFile(tmp_path / "dem.zip", "w") as zf:
        for f in tmp_path.glob("dem.*"):
            if f.suffix != ".zip":
                zf.write(f, f.name)
    store = str(tmp_path / "s.gpkg")
    ingest(store, [SourceSpec(str(tmp_path / "dem.zip"), layer="dem")])
    back = open_store(store).read_raster("dem")
    np.testing.assert_array_equal(back.data, data)
    assert back.transform == profile["transform"]


def test_reingest_replaces_rasters_and_vectors(tmp_path):
    """Running the same ingest twice (make demo twice) replaces layers, DEM included."""
    data = np.arange(20 * 30, dtype="float32").reshape(20, 30)
    dem = tmp_path / "d.tif"
    profile = dict(driver="GTiff", width=30, height=20, count=1, dtype="float32", crs="EPSG:3826",
                   transform=rasterio.transform.from_origin(250000, 2742000, 10, 10))
    with rasterio.open(dem, "w", **profile) as dst:
        dst.write(data, 1)
    _buildings().to_file(tmp_path / "b.gpkg")
    store = str(tmp_path / "s.gpkg")
    specs = [SourceSpec(str(dem), layer="dem"), SourceSpec(str(tmp_path / "b.gpkg"))]
    ingest(store, specs)
    with rasterio.open(dem, "r+") as dst:
        dst.write(data + 1000, 1)
    ingest(store, specs)
    s = open_store(store)
    np.testing.assert_array_equal(s.read_raster("dem").data, data + 1000)
    assert s.layers() == ["buildings", "dem"] and len(s.read("buildings")) == 5


def test_corrupt_geotiff_one_line(tmp_path):
    good = tmp_path / "g.tif"
    with rasterio.open(good, "w", driver="GTiff", width=512, height=512, count=1, dtype="float32",
                       crs="EPSG:3826", compress="deflate", tiled=True,
                       transform=rasterio.transform.from_origin(250000, 2742000, 10, 10)) as dst:
        dst.write(np.random.default_rng(0).random((512, 512), dtype="float32"), 1)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    result = CliRunner().invoke(cli, ["ingest", "--store", str(tmp_path / "s.gpkg"), str(bad)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.startswith(f"error: {bad}: cannot read raster")
    assert not (tmp_path / "s.gpkg").exists()


def test_cli_ingest_and_catalog(tmp_path):
    _buildings().to_file(tmp_path / "b.gpkg")
    store = str(tmp_path / "s.gpkg")
    r = CliRunner().invoke(cli, ["ingest", "--store", store, "--access-grade", "public",
                                 "--title", "Test town buildings", str(tmp_path / "b.gpkg")])
    assert r.exit_code == 0, r.output
    assert "buildings: 5 records" in r.stdout
    r = CliRunner().invoke(cli, ["catalog", "list", "--store", store])
    assert r.exit_code == 0
    assert re.match(r"buildings\s+public\s+standard\s+5 features\s+Test town buildings", r.stdout)
    r = CliRunner().invoke(cli, ["catalog", "show", "--store", store, "roads"])
    assert r.exit_code == 1 and "no layer 'roads'" in r.stderr
    r = CliRunner().invoke(cli, ["ingest", "--store", store])
    assert r.exit_code == 2


def test_all_real_sources_into_one_store(tmp_path, shared_data):
    """The foundation's done-when: Hsinchu buildings, PLATEAU LOD2 buildings and pipes, the
    freeway network and the SW Taiwan DEM in one store (examples/shared-data.yml)."""
    shared_data("plateau-utility-network")
    from pathlib import Path

    manifest = Path(__file__).resolve().parents[2] / "examples" / "shared-data.yml"
    store = str(tmp_path / "all.gpkg")
    r = CliRunner().invoke(cli, ["-q", "ingest", "--store", store, "--manifest", str(manifest)])
    assert r.exit_code == 0, r.output
    s = open_store(store)
    assert s.layers() == ["building_points", "buildings", "dem", "plateau_buildings",
                          "plateau_buildings_surfaces", "plateau_pipelines", "rail", "roads"]
    counts = {rec["id"]: rec["feature_count"] for rec in s.catalog()}
    assert counts["plateau_buildings"] == 13 + 8
    # 11 pipes and cables in the sample; 3 have no depth at all and are left out, with a note.
    assert counts["plateau_pipelines"] == 8
    assert "3 invalid record(s) left out" in s.record("plateau_pipelines")["lineage"]
    plateau = s.read("plateau_buildings")
    assert plateau.crs.to_epsg() == 6677 and s.read("buildings").crs.to_epsg() == 3826
    # Japan Plane Rectangular CS IX: Yokosuka and Tokyo lie some tens of km from its origin.
    assert plateau.total_bounds[0] > -60000 and plateau.total_bounds[2] < 60000
    surfaces = s.read("plateau_buildings_surfaces")
    assert surfaces.has_z.all() and set(surfaces["building_id"]) <= set(plateau["id"])
