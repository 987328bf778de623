"""``ngis model flood`` end to end on small constructed cases: the files a user gets, on the
DEM's grid, consistent with each other; and clear errors for bad input."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from click.testing import CliRunner

from gis.cli.main import cli

CRS = "EPSG:3826"


def _valley(tmp_path, n=60, cell=5.0):
    """A V valley draining south, with a town block on its floor."""
    y, x = np.mgrid[0:n, 0:n]
    z = 50.0 + 0.4 * np.abs(x - n / 2) * cell / 5 + 0.02 * (n - y) * cell
    transform = Affine(cell, 0, 250000.0, 0, -cell, 2650000.0 + n * cell)
    path = tmp_path / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=1, dtype="float32",
                       crs=CRS, transform=transform) as dst:
        dst.write(z.astype("float32"), 1)
    return path, transform, z


def test_inflow_run_writes_consistent_cogs_and_impacts(tmp_path):
    dem, transform, z = _valley(tmp_path)
    cx = transform.c + 30 * 5.0
    top = transform.f
    houses = gpd.GeoDataFrame(
        {"id": ["h1", "h2", "shelter"], "usage": ["residential", "residential", "public"],
         "name": [None, None, "Valley Shelter"]},
        geometry=[shapely.box(cx - 4, top - 200, cx + 4, top - 192),
                  shapely.box(cx + 40, top - 200, cx + 48, top - 192),
                  shapely.box(cx + 60, top - 100, cx + 70, top - 90)], crs=CRS)
    houses.to_file(tmp_path / "houses.gpkg")
    r = CliRunner().invoke(cli, [
        "-q", "model", "flood", "--dem", str(dem), "--mode", "inflow",
        "--inflow", f"{cx},{top - 20},6,3.0", "--duration", "900", "--buildings",
        str(tmp_path / "houses.gpkg"), "--building-mode", "block", "--snapshot", "300",
        "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "out"
    for name in ("max_depth", "max_wse", "max_velocity", "arrival_time"):
        with rasterio.open(out / f"{name}.tif") as src:
            assert src.transform == transform and src.crs.to_string() == CRS
            assert src.shape == z.shape and src.tags()["units"]
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    with rasterio.open(out / "max_depth.tif") as src:
        depth = src.read(1)
    with rasterio.open(out / "max_wse.tif") as src:
        wse = src.read(1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["max_depth_m"] == pytest.approx(float(np.nanmax(depth)), rel=1e-6)
    wet = depth > 0.05
    np.testing.assert_allclose(wse[wet], (z + depth)[wet], atol=1e-3)
    # Water ran down the valley floor: wet cells lie on the thalweg column, not the flanks.
    cols = np.nonzero(wet)[1]
    assert wet.sum() > 20 and abs(np.median(cols) - 30) <= 2
    assert summary["flooded_area_m2"]["over_0.05m"] == pytest.approx(wet.sum() * 25.0)
    assert summary["model"]["volume"]["relative_error"] < 1e-6
    assert (out / "snapshots" / "depth_300s.tif").exists() and (out / "map.png").stat().st_size
    # The house on the thalweg stands in water; the one on the flank and the shelter do not.
    layers = set(pyogrio.list_layers(out / "impacts.gpkg")[:, 0])
    hit = gpd.read_file(out / "impacts.gpkg", layer="buildings") if "buildings" in layers \
        else gpd.GeoDataFrame()
    assert "h1" in set(hit.get("id", [])) and "h2" not in set(hit.get("id", []))
    areas = gpd.read_file(out / "warning_areas.gpkg")
    assert areas["area_m2"].sum() == pytest.approx((depth >= 0.3).sum() * 25.0, rel=0.02)


def test_bad_inputs_name_the_file_and_field(tmp_path):
    dem, transform, _ = _valley(tmp_path, n=20)
    bad = tmp_path / "inflows.csv"
    bad.write_text("x,y,radius,q\n250050,2650090,5,oops\n")
    r = CliRunner().invoke(cli, ["model", "flood", "--dem", str(dem), "--mode", "inflow",
                                 "--inflow-csv", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1
    assert "inflows.csv" in r.output and "row 2" in r.output and "q" in r.output
    assert not (tmp_path / "o").exists()
    r = CliRunner().invoke(cli, ["model", "flood", "--dem", str(dem), "--out",
                                 str(tmp_path / "o")])
    assert r.exit_code == 2 and "--rain" in r.output      # rain mode without rain
    r = CliRunner().invoke(cli, ["model", "flood", "--dem", str(dem), "--mode", "inflow",
                                 "--inflow", "1,2,3", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "X,Y,RADIUS,Q" in r.output
    assert not any(p.name.startswith(".o.") for p in tmp_path.iterdir())


def test_hand_mode_writes_hand_and_rating_curves(tmp_path):
    dem, transform, z = _valley(tmp_path, n=80)
    r = CliRunner().invoke(cli, ["-q", "model", "flood", "--dem", str(dem), "--mode", "hand",
                                 "--discharge", "5", "--stream-area", "0.01",
                                 "--out", str(tmp_path / "hand")])
    assert r.exit_code == 0, r.output
    out = tmp_path / "hand"
    with rasterio.open(out / "hand.tif") as src:
        hand = src.read(1)
    with rasterio.open(out / "max_depth.tif") as src:
        depth = src.read(1)
    import pandas as pd

    reaches = pd.read_csv(out / "reaches.csv")
    curves = pd.read_csv(out / "rating_curves.csv")
    assert len(reaches) >= 1 and set(curves["reach"]) == set(reaches["reach"])
    # Where it is wet, the water surface is level across the valley: depth + HAND = stage.
    main = int(reaches.sort_values("cells").iloc[-1]["reach"])
    stage = float(reaches.loc[reaches["reach"] == main, "stage_m"].iloc[0])
    wet = (depth > 0) & np.isfinite(hand)
    assert wet.any()
    assert len(reaches) == 1      # one valley, one reach
    np.testing.assert_allclose((depth + hand)[wet], stage, atol=1e-3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["mode"] == "hand" and summary["model"]["reaches"] == len(reaches)
