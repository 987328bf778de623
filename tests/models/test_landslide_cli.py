"""``ngis model landslide`` and the OGC API Process ``landslide``: outputs on the DEM grid,
SINMAP through the CLI against TauDEM, warning areas and the assets they touch, one-line errors.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from gis.cli.main import cli

TAUDEM = ("taudem-logan-sinmap", "sinmap")


def _run(*args):
    return CliRunner().invoke(cli, ["-q", "model", "landslide", *map(str, args)])


def _read(path):
    with rasterio.open(path) as ds:
        a = ds.read(1).astype("float64")
        if ds.nodata is not None and not np.isnan(ds.nodata):
            a[a == ds.nodata] = np.nan
        return a, ds.transform, ds.shape, ds.crs


@pytest.mark.shared_data
def test_cli_sinmap_reproduces_taudem(shared_data, tmp_path):
    d = lambda name: shared_data(*TAUDEM, name)  # noqa: E731
    out = tmp_path / "si"
    res = _run("--dem", d("sample.asc"), "--dem-crs", "EPSG:26909", "--out", out,
               "--params", d("dempar12.csv"), "--regions", d("demreg12.tif"),
               "--slope", d("demslp.tif"), "--sca", d("demsca.tif"),
               "--recharge", "0.0009,0.00135")
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} >= {"si.tif", "sat.tif", "hazard.tif",
                                               "warning_areas.gpkg", "summary.json", "map.png"}
    si, transform, shape, crs = _read(out / "si.tif")
    ref, ref_transform, ref_shape, _ = _read(d("demsi1.tif"))
    assert shape == ref_shape and transform.almost_equals(ref_transform)
    assert crs.to_epsg() == 26909
    assert np.array_equal(np.isnan(si), np.isnan(ref))
    assert np.nanmax(np.abs(si - ref)) <= 1e-5
    sat, *_ = _read(out / "sat.tif")
    assert np.nanmax(np.abs(sat - _read(d("demsat1.tif"))[0])) <= 1e-6
    with rasterio.open(out / "si.tif") as ds:                     # a Cloud-Optimised GeoTIFF
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["si_classes"]["defended"] == 3665              # SOURCE.md's count
    # warning areas = lower threshold (high) + upper threshold/defended (very high)
    areas = gpd.read_file(out / "warning_areas.gpkg", layer="warning_areas")
    assert areas["class_name"].tolist() == ["high", "very high"]
    assert areas.loc[0, "area_m2"] == pytest.approx(26618 * 100, rel=0.02)
    assert areas.loc[1, "area_m2"] == pytest.approx((9872 + 3665) * 100, rel=0.02)


def _rain_csv(path, mm_per_hour=40.0, hours=48):
    path.write_text("hours,mm\n" + "".join(f"{h},{mm_per_hour}\n" for h in range(1, hours + 1)))
    return path


@pytest.mark.slow
def test_cli_transient_with_store_lists_the_assets_touched(demo_store, tmp_path):
    soil = tmp_path / "soil.json"
    soil.write_text(json.dumps({"cohesion_pa": 1000, "phi_deg": 28}))
    out = tmp_path / "tr"
    res = _run("--dem", demo_store, "--out", out, "--method", "transient",
               "--rain", _rain_csv(tmp_path / "rain.csv"), "--params", soil,
               "--store", demo_store)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["transient"]["parameters"]["cohesion_pa"] == 1000
    assert summary["transient"]["cells_failing_during"] > 0
    ft, transform, shape, _ = _read(out / "failure_time.tif")
    with rasterio.open(f"GPKG:{demo_store}:dem") as ds:
        assert shape == ds.shape and transform.almost_equals(ds.transform)
    assert np.nanmin(ft) >= 0 and np.nanmax(ft) <= 48
    # the assets touched, recounted here by a spatial join of the store with the polygons
    areas = gpd.read_file(out / "warning_areas.gpkg", layer="warning_areas")
    assert len(areas) and set(areas["class_name"]) <= {"high", "very high"}
    from gis.store import open_store

    store = open_store(str(demo_store))
    for name in ("buildings", "roads", "pipelines"):
        frame = store.read(name).to_crs(areas.crs)
        hits = gpd.sjoin(frame, areas[["geometry"]], predicate="intersects")
        assert summary["assets_touched"].get(name, 0) == hits.index.nunique()
    assert sum(summary["assets_touched"].values()) > 0


@pytest.mark.parametrize("bad, expect", [
    ("SiID,tmin,tmax,cmin,cmax,phimin,phimax,SoilDens\n1,2.7,2.7,0,abc,30,45,2000\n",
     "par.csv:line 2: cmax: not a number"),
    ("SiID,tmin,tmax,cmin,cmax,phimin,phimax,SoilDens\n1,2.7,2.7,0,0.2,30,45\n",
     "par.csv:line 2: 7 values, expected 8"),
])
def test_cli_bad_calibration_file_is_one_line(demo_store, tmp_path, bad, expect):
    par = tmp_path / "par.csv"
    par.write_text(bad)
    res = _run("--dem", demo_store, "--out", tmp_path / "o", "--params", par,
               "--sca", tmp_path / "nosuch.tif")
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0]
    assert not (tmp_path / "o").exists()                            # nothing half-written


def test_cli_other_errors(demo_store, tmp_path):
    res = _run("--dem", demo_store, "--out", tmp_path / "o", "--method", "transient")
    assert res.exit_code == 2 and "--rain" in res.output
    bad = tmp_path / "soil.json"
    bad.write_text('{"cohesion": 3}')
    res = _run("--dem", demo_store, "--out", tmp_path / "o", "--method", "transient",
               "--rain", _rain_csv(tmp_path / "r.csv"), "--params", bad)
    assert res.exit_code == 1 and "soil.json: cohesion: unknown parameter" in res.output
    res = _run("--dem", demo_store, "--out", tmp_path / "o", "--regions", tmp_path / "no.tif",
               "--sca", tmp_path / "no.tif")
    assert res.exit_code == 1 and "no.tif" in res.output and "regions" in res.output
    res = _run("--dem", tmp_path / "missing.tif", "--out", tmp_path / "o")
    assert res.exit_code == 1 and "missing.tif" in res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@pytest.mark.shared_data
def test_cli_susceptibility_ecuador(shared_data, tmp_path):
    ta = shared_data("ecuador-landslides-lsl", "ta.tif")
    with rasterio.open(ta) as ds:                                   # band 4 = elevation
        profile = ds.profile | {"count": 1}
        elev = ds.read(4)
    dem = tmp_path / "elev.tif"
    with rasterio.open(dem, "w", **profile) as dst:
        dst.write(elev, 1)
    out = tmp_path / "sus"
    res = _run("--dem", dem, "--out", out, "--method", "susceptibility",
               "--inventory", shared_data("ecuador-landslides-lsl", "lsl.geojson"),
               "--factors", ta, "--cv-repeats", "1")
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["auc"]["logistic"]["mean"] >= 0.75
    assert summary["susceptibility"]["n_presence"] == 175
    assert summary["susceptibility"]["factors"] == ["slope", "cplan", "cprof", "elev",
                                                    "log10_carea"]
    prob, *_ = _read(out / "susceptibility.tif")
    assert np.nanmin(prob) >= 0 and np.nanmax(prob) <= 1


@pytest.mark.slow
@pytest.mark.shared_data
def test_cli_susceptibility_presence_only_polygons(shared_data, tmp_path):
    """Landslide polygons without absences: absences are sampled outside them (seeded)."""
    ta = shared_data("ecuador-landslides-lsl", "ta.tif")
    with rasterio.open(ta) as ds:
        profile = ds.profile | {"count": 1}
        elev = ds.read(4)
    dem = tmp_path / "elev.tif"
    with rasterio.open(dem, "w", **profile) as dst:
        dst.write(elev, 1)
    lsl = gpd.read_file(shared_data("ecuador-landslides-lsl", "lsl.geojson"))
    polys = lsl[lsl["lslpts"].astype(bool)][["geometry"]].copy()
    polys["geometry"] = polys.buffer(12.0)                          # ~ 3 x 3 cells each
    inv = tmp_path / "scars.gpkg"
    polys.to_file(inv)
    out = tmp_path / "po"
    res = _run("--dem", dem, "--out", out, "--method", "susceptibility", "--inventory", inv,
               "--factors", ta, "--cv-repeats", "1", "--no-compare", "--seed", "4")
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())["susceptibility"]
    assert s["n_presence"] == s["n_absence"] > 175                  # cells of the polygons
    assert list(s["cross_validation"]) == ["logistic"]
    assert s["cross_validation"]["logistic"]["auc_mean"] > 0.6          # better than chance
    # too few landslides: one clear line
    polys.iloc[:3].to_file(tmp_path / "few.gpkg")
    res = _run("--dem", dem, "--out", tmp_path / "few", "--method", "susceptibility",
               "--inventory", tmp_path / "few.gpkg", "--factors", ta)
    assert res.exit_code == 1 and "inventory too small" in res.output
    assert len(res.output.strip().splitlines()) == 1


# --- OGC API Process ---------------------------------------------------------------------------

def _valley(n=40, cell=10.0):
    """A V-shaped valley with 35-45 degree sides draining north-south."""
    y, x = np.mgrid[0:n, 0:n] * cell
    z = 300 + 0.8 * np.abs(x - n * cell / 2) + 0.1 * (n * cell - y)
    return z


def test_process_on_an_uploaded_grid():
    from gis.server.processes.landslide import LandslideProcessor

    proc = LandslideProcessor({"name": "landslide"})
    z = _valley()
    grid = {"values": z.round(2).tolist(), "origin": [250000, 2700000], "cell_size": 10,
            "crs": "EPSG:3826"}
    sca = None
    from models.landslide.terrain import hydro_available

    if not hydro_available():
        method = "transient"
        extra = {"rain_mm": [30.0] * 24, "soil": {"cohesion_pa": 500, "phi_deg": 30}}
    else:   # a grid cut around one valley: every catchment reaches the edge
        method, extra = "sinmap", {"edge_contamination": False}
    mime, out = proc.execute({"method": method, "grid": grid, **extra})
    assert mime == "application/json" and sca is None
    fc = out["warning_areas"]
    assert fc["type"] == "FeatureCollection" and fc["features"]
    lon, lat = np.array(fc["features"][0]["geometry"]["coordinates"][0]).T[:2] \
        if fc["features"][0]["geometry"]["type"] == "Polygon" else \
        np.array(fc["features"][0]["geometry"]["coordinates"][0][0]).T[:2]
    assert (119 < lon).all() and (lon < 123).all() and (21 < lat).all() and (lat < 26).all()
    assert out["summary"]["method"] == method
    json.dumps(out)                                                 # serialisable as is


def test_process_on_the_store_dem_with_bbox(demo_store):
    from gis.server.processes.landslide import LandslideProcessor

    proc = LandslideProcessor({"name": "landslide", "store": str(demo_store),
                               "allowed_layers": ["roads", "rail"]})
    from gis.store import open_store
    from pyproj import Transformer

    dem = open_store(str(demo_store)).read_raster("dem")
    x0, y0, x1, y1 = dem.bounds
    lon0, lat0, lon1, lat1 = Transformer.from_crs(dem.crs, "OGC:CRS84", always_xy=True
                                                  ).transform_bounds(x0, y0, (x0 + x1) / 2, y1)
    mime, out = proc.execute({"method": "transient", "bbox": [lon0, lat0, lon1, lat1],
                              "rain_mm": [40.0] * 48,
                              "soil": {"cohesion_pa": 1000, "phi_deg": 28}})
    grid = out["summary"]["grid"]
    assert grid["cols"] == pytest.approx(dem.shape[1] / 2, abs=3)
    # only the layers the grade may see are intersected
    assert set(out["summary"]["assets_touched"]) <= {"roads", "rail"}


@pytest.mark.parametrize("data, msg", [
    ({"method": "nope"}, "method"),
    ({"grid": {"values": [[1, 2], [3, 4]], "origin": [0, 0], "cell_size": 1,
               "crs": "EPSG:3826"}}, "3 x 3"),
    ({"grid": {"values": [[1, 2, 3]] * 3, "origin": [0, 0], "cell_size": 1,
               "crs": "EPSG:4326"}}, "projected"),
    ({"method": "transient", "grid": {"values": [[1, 2, 3]] * 3, "origin": [0, 0],
                                      "cell_size": 1, "crs": "EPSG:3826"}}, "rain_mm"),
    ({"parameters": "SiID,tmin\n1,x", "grid": {"values": [[1, 2, 3]] * 3, "origin": [0, 0],
                                                "cell_size": 1, "crs": "EPSG:3826"}},
     "header"),
])
def test_process_bad_inputs(data, msg):
    from pygeoapi.process.base import ProcessorExecuteError

    from gis.server.processes.landslide import LandslideProcessor

    with pytest.raises(ProcessorExecuteError, match=msg):
        LandslideProcessor({"name": "landslide"}).execute(data)


@pytest.mark.slow
def test_cli_methods_on_the_hydrology_core(demo_store, tmp_path):
    """Without --slope/--sca the CLI takes the D-infinity slope and SCA from models.hydro;
    the rasters it writes equal the models called on its own terrain outputs."""
    from models.landslide.calibration import DEFAULT_TABLE, parse_calibration
    from models.landslide.fs import probability_of_failure
    from models.landslide.shalstab import critical_rainfall
    from models.landslide.terrain import hydro_available

    if not hydro_available():
        pytest.skip("models.hydro (D-infinity) not available")
    regions = parse_calibration(DEFAULT_TABLE)
    out = tmp_path / "sh"
    res = _run("--dem", demo_store, "--out", out, "--method", "shalstab", "--terrain")
    assert res.exit_code == 0, res.output
    slope, *_ = _read(out / "slope.tif")
    sca, *_ = _read(out / "sca.tif")
    twi, *_ = _read(out / "twi.tif")
    ok = np.isfinite(sca) & (slope > 1e-3)
    np.testing.assert_allclose(twi[ok], np.log(sca[ok] / slope[ok]), rtol=1e-5)
    q, *_ = _read(out / "qcrit.tif")
    q_ref, _ = critical_rainfall(slope, sca, regions)
    assert np.array_equal(np.isnan(q), np.isnan(q_ref))
    np.testing.assert_allclose(q[np.isfinite(q)], q_ref[np.isfinite(q_ref)], rtol=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["terrain"] == {"slope": "D-infinity (models.hydro)",
                                  "sca": "D-infinity (models.hydro)",
                                  "edge_contamination": True}
    out = tmp_path / "fs"
    res = _run("--dem", demo_store, "--out", out, "--method", "fs", "--draws", "50",
               "--seed", "3", "--slope", tmp_path / "sh" / "slope.tif",
               "--sca", tmp_path / "sh" / "sca.tif")
    assert res.exit_code == 0, res.output
    pof, *_ = _read(out / "pof.tif")
    ref = probability_of_failure(slope, sca, regions, recharge=(0.0009, 0.00135), n=50, seed=3)
    assert np.array_equal(pof, ref, equal_nan=True)                 # seeded: the same raster


@pytest.mark.slow
def test_cli_chunked_equals_in_memory(demo_store, tmp_path):
    """--chunk runs the local models chunk by chunk with halos (models.chunked): every raster
    equals the in-memory run's, on dask's threads and on a LocalCluster of 2 processes, the
    seeded Monte Carlo probability of failure included."""
    mem = tmp_path / "mem"
    assert _run("--dem", demo_store, "--out", mem, "--method", "sinmap",
                "--terrain").exit_code == 0
    fs_mem = tmp_path / "fs-mem"
    assert _run("--dem", demo_store, "--out", fs_mem, "--method", "fs", "--draws", 40,
                "--seed", 2).exit_code == 0
    runs = {"threads": ("sinmap", mem, "--terrain", "--chunk", 48),
            "cluster": ("sinmap", mem, "--terrain", "--chunk", 64, "--workers", 2),
            "fs": ("fs", fs_mem, "--draws", 40, "--seed", 2, "--chunk", 40)}
    for name, (method, mem, *extra) in runs.items():
        out = tmp_path / name
        res = _run("--dem", demo_store, "--out", out, "--method", method, *extra)
        assert res.exit_code == 0, res.output
        tifs = sorted(p.name for p in mem.glob("*.tif"))
        assert tifs == sorted(p.name for p in out.glob("*.tif"))
        assert ("pof.tif" if method == "fs" else "si.tif") in tifs
        for tif in tifs:
            a, *_ = _read(mem / tif)
            b, *_ = _read(out / tif)
            assert np.array_equal(a, b, equal_nan=True), (name, tif)
    res = _run("--dem", demo_store, "--out", tmp_path / "x", "--workers", 2)
    assert res.exit_code == 2 and "--chunk" in res.output
