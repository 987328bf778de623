"""``ngis model hydro`` end to end (COGs on the DEM grid, one-line errors) and the xarray
wrappers (georeferencing kept)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from gis.cli.main import cli
from models import hydro


def run(*args):
    return CliRunner().invoke(cli, ["-q", "model", "hydro", *map(str, args)])


@pytest.fixture(scope="module")
def dem_path(tmp_path_factory):
    """A 60 x 80 valley draining west with a pit, in UTM 11N at 30 m; a nodata patch."""
    rng = np.random.default_rng(7)
    rr, cc = np.mgrid[0:60, 0:80].astype(np.float32)
    z = 100 + 0.5 * cc + 2.0 * np.abs(rr - 30) + rng.normal(0, 0.3, rr.shape).astype(np.float32)
    z[30, 40] -= 20  # a pit
    z[0:3, 70:80] = -9999  # nodata corner
    path = tmp_path_factory.mktemp("hydro") / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", width=80, height=60, count=1,
                       dtype="float32", crs="EPSG:32611", nodata=-9999,
                       transform=from_origin(380000, 3800000, 30, 30)) as ds:
        ds.write(z.astype(np.float32), 1)
    return path


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, ds.tags()


def test_fill_writes_a_cog_on_the_dem_grid(dem_path, tmp_path):
    out = tmp_path / "filled.tif"
    res = run("fill", "--dem", dem_path, "--out", out)
    assert res.exit_code == 0, res.output
    data, prof, tags = read(out)
    _, src, _ = read(dem_path)
    assert prof["transform"] == src["transform"] and prof["crs"] == src["crs"]
    assert (prof["width"], prof["height"]) == (80, 60)
    with rasterio.open(out) as ds:  # a Cloud-Optimised GeoTIFF: tiled, with its layout tag
        assert ds.profile.get("tiled") and ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    with rasterio.open(dem_path) as ds:
        z = ds.read(1, masked=True).filled(np.nan)
    assert np.array_equal(data[0], hydro.fill_depressions(z), equal_nan=True)
    assert int(tags["raised_cells"]) >= 1


def test_fill_breach(dem_path, tmp_path):
    out = tmp_path / "breached.tif"
    res = run("fill", "--dem", dem_path, "--out", out, "--breach")
    assert res.exit_code == 0, res.output
    data, _, tags = read(out)
    with rasterio.open(dem_path) as ds:
        z = ds.read(1, masked=True).filled(np.nan)
    assert np.array_equal(data[0], hydro.breach_depressions(z), equal_nan=True)
    assert tags["method"] == "breach" and int(tags["lowered_cells"]) >= 1


def test_flowdir_accumulate_hand_watershed(dem_path, tmp_path):
    with rasterio.open(dem_path) as ds:
        z = ds.read(1, masked=True).filled(np.nan)
    filled = hydro.fill_depressions(z)
    d8 = hydro.d8_directions(filled, 30.0)
    assert run("flowdir", "--dem", dem_path, "--out", tmp_path / "d8.tif").exit_code == 0
    assert np.array_equal(read(tmp_path / "d8.tif")[0][0], d8)
    res = run("flowdir", "--dem", dem_path, "--out", tmp_path / "dinf.tif", "--method", "dinf")
    assert res.exit_code == 0, res.output
    bands = read(tmp_path / "dinf.tif")[0]
    angle, slope = hydro.dinf_directions(filled, 30.0)
    assert bands.shape == (2, 60, 80) and np.array_equal(bands[0], angle)
    res = run("accumulate", "--dem", dem_path, "--out", tmp_path / "acc.tif")
    assert res.exit_code == 0, res.output
    acc = read(tmp_path / "acc.tif")[0][0]
    valid = ~np.isnan(z)
    assert np.nansum(acc[d8 == 0]) == valid.sum()  # every valid cell arrives at an outlet
    assert np.isnan(acc[~valid]).all()
    res = run("hand", "--dem", dem_path, "--out", tmp_path / "hand.tif", "--threshold", 50)
    assert res.exit_code == 0, res.output
    h = read(tmp_path / "hand.tif")[0][0]
    assert np.nanmin(h) == 0 and (h[acc >= 50] == 0).all()
    # a pour point in the valley bottom, snapped onto the stream
    x, y = 380000 + 20.5 * 30, 3800000 - 31.5 * 30
    res = run("watershed", "--dem", dem_path, "--out", tmp_path / "ws.tif",
              "--pour-point", f"{x},{y}", "--snap", 60)
    assert res.exit_code == 0, res.output
    labels = read(tmp_path / "ws.tif")[0][0]
    n = int((labels == 1).sum())
    assert f"{n} cells" in res.output
    rr, cc = np.mgrid[0:60, 0:80]
    disc = (rr - 31) ** 2 + (cc - 20) ** 2 <= 4  # within 60 m = 2 cells of the point
    assert n == int(np.nanmax(acc[disc]))  # the catchment of the largest accumulation there


@pytest.mark.parametrize("args, message", [
    (["fill", "--dem", "/no/such/dem.tif"], "cannot read"),
    (["watershed", "--dem", "DEM", "--pour-point", "0,0"], "outside the DEM"),
    (["watershed", "--dem", "DEM", "--pour-point", "abc"], "expected X,Y"),
    (["accumulate", "--dem", "DEM", "--sca"], "--sca needs --method dinf"),
    (["fill", "--dem", "DEM", "--breach", "--epsilon"], "drop --epsilon"),
])
def test_bad_input_is_one_line_and_exit_1(dem_path, tmp_path, args, message):
    args = [str(dem_path) if a == "DEM" else a for a in args]
    out = tmp_path / "x.tif"
    res = run(*args, "--out", out)
    assert res.exit_code in (1, 2)  # 2: click usage errors
    text = res.stderr if res.exit_code == 1 else res.output
    assert message in text
    if res.exit_code == 1:
        assert len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rioxarray
def test_xarray_wrappers_keep_georeferencing(dem_path):
    rioxarray = pytest.importorskip("rioxarray")
    from models.hydro import xr as hxr

    da = rioxarray.open_rasterio(dem_path, masked=True).squeeze("band", drop=True)
    filled = hxr.fill(da)
    assert filled.rio.crs == da.rio.crs and filled.rio.transform() == da.rio.transform()
    assert np.array_equal(filled.values, hydro.fill_depressions(da.values.astype(np.float32)),
                          equal_nan=True)
    d8 = hxr.d8(filled)
    assert d8.dtype == np.uint8 and d8.rio.transform() == da.rio.transform()
    acc = hxr.accumulation(filled)
    assert np.nansum(acc.values[d8.values == 0]) == np.isfinite(da.values).sum()
    angle, slope = hxr.dinf(filled)
    assert angle.rio.crs == da.rio.crs
    h = hxr.hand(da, 50)
    assert np.nanmin(h.values) == 0 and h.rio.transform() == da.rio.transform()
    with pytest.raises(ValueError, match="geographic"):
        hxr.d8(filled.rio.write_crs("EPSG:4326"))
