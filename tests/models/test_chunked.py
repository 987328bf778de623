"""Chunked (dask) local raster models against the in-memory models: bit-identical results.

References: the in-memory functions of models.landslide (themselves tested against TauDEM and
analytic cases in test_landslide*.py) run on the whole array; TauDEM's SINMAP output for the
real-data SINMAP case; an in-memory time loop for the wide-halo prototype; mass conservation.
Chunkings are deliberately awkward: chunks of one row (smaller than what the halo needs),
chunks that do not divide the shape.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr
from affine import Affine

from gis.errors import DataError
from models import chunked
from models.landslide import fs, shalstab, sinmap, terrain
from models.landslide.calibration import DEFAULT_TABLE, parse_calibration

CRS = "EPSG:3826"


def _da(z: np.ndarray, dx: float = 10.0, crs: str = CRS, x0: float = 250000.0,
        y0: float = 2600000.0) -> xr.DataArray:
    rows, cols = z.shape
    tr = Affine(dx, 0, x0, 0, -dx, y0)
    da = xr.DataArray(z, dims=("y", "x"), name="dem",
                      coords={"y": y0 - dx * (np.arange(rows) + 0.5),
                              "x": x0 + dx * (np.arange(cols) + 0.5)})
    return da.rio.write_crs(crs).rio.write_transform(tr)


def _chunk(da: xr.DataArray, rows: int, cols: int) -> xr.DataArray:
    return da.chunk({"y": rows, "x": cols})


def _random_dem(shape=(61, 47), seed=3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:shape[0], 0:shape[1]]
    z = 300 + 2.0 * r + 40 * np.sin(c / 6.0) + rng.normal(0, 3, shape)
    z = z.astype(np.float32)
    z[10:14, 20:27] = np.nan          # a hole inside
    z[0, 3] = np.nan                  # nodata on the border
    z[shape[0] // 2, -1] = np.nan
    z[-20:-17, 5:7] = z[-20, 5]       # a small flat
    return z


def _same(a, b) -> None:
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)          # NaN positions must match too


@pytest.fixture(scope="module")
def cluster():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as lc, Client(lc) as client:
        yield client


# --- terrain ----------------------------------------------------------------------------------

@pytest.mark.parametrize("rows, cols", [(1, 13), (7, 5), (16, 47), (61, 47)])
def test_zevenbergen_thorne_equals_in_memory(rows, cols):
    z = _random_dem()
    ref = terrain.zevenbergen_thorne(z, 10.0, 10.0)
    ds = chunked.compute(chunked.zevenbergen_thorne(_chunk(_da(z), rows, cols)))
    for name in chunked.ZT_LAYERS:
        _same(ds[name].values, ref[name])
    # something to compare: interior cells are defined, the border and the hole's ring are not
    assert np.isfinite(ds.slope.values).sum() > 0.8 * z.size
    assert np.isnan(ds.slope.values[[0, -1], :]).all() and np.isnan(ds.slope.values[12, 19])
    # georeferencing kept, chunks kept
    assert ds.rio.crs.to_epsg() == 3826
    assert chunked.transform_of(ds.slope) == chunked.transform_of(_da(z))
    np.testing.assert_array_equal(ds.x.values, _da(z).x.values)


def test_zevenbergen_thorne_rectangular_cells_and_lazy_chunks():
    z = _random_dem((33, 29), seed=8)
    da = _da(z).rio.write_transform(Affine(12.5, 0, 0, 0, -7.5, 1000))
    lazy = chunked.zevenbergen_thorne(_chunk(da, 9, 11))
    assert lazy.slope.chunks == ((9, 9, 9, 6), (11, 11, 7))
    ref = terrain.zevenbergen_thorne(z, 12.5, 7.5)
    _same(chunked.compute(lazy).aspect.values, ref["aspect"])


def test_slope_degrees_and_planar_surface():
    """An inclined plane z = 0.3 x: slope 0.3 everywhere inside, 16.7 deg, aspect west."""
    x = np.arange(25) * 10.0
    z = np.tile(0.3 * x, (19, 1)).astype(np.float32)
    ds = chunked.compute(chunked.zevenbergen_thorne(_chunk(_da(z), 4, 6)))
    inner = ds.slope.values[1:-1, 1:-1]
    np.testing.assert_allclose(inner, 0.3, rtol=1e-6)
    np.testing.assert_allclose(ds.aspect.values[1:-1, 1:-1], 270.0)
    deg = chunked.compute(chunked.slope_degrees(ds.slope.chunk({"y": 5, "x": 7})))
    _same(deg.values, terrain.slope_degrees(ds.slope.values))
    np.testing.assert_allclose(deg.values[1:-1, 1:-1], np.degrees(np.arctan(0.3)), rtol=1e-6)


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rioxarray
def test_geotiff_with_nodata_opened_chunked(tmp_path):
    """A GeoTIFF with a -9999 nodata opened lazily by rioxarray (``chunks=``)."""
    z = _random_dem((45, 38), seed=5)
    raw = np.where(np.isnan(z), -9999.0, z).astype(np.float32)
    path = tmp_path / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", height=45, width=38, count=1,
                       dtype="float32", crs=CRS, nodata=-9999.0, tiled=True,
                       blockxsize=16, blockysize=16,
                       transform=Affine(20, 0, 250000, 0, -20, 2600000)) as dst:
        dst.write(raw, 1)
    da = rioxarray.open_rasterio(path, chunks={"x": 13, "y": 11}).squeeze("band", drop=True)
    ds = chunked.zevenbergen_thorne(da)
    assert ds.slope.chunks is not None
    out = chunked.compute(ds)
    ref = terrain.zevenbergen_thorne(z, 20.0, 20.0)
    for name in chunked.ZT_LAYERS:
        _same(out[name].values, ref[name])
    assert out.slope.rio.crs.to_epsg() == 3826
    da.close()


def test_zarr_round_trip(tmp_path):
    z = _random_dem((40, 30), seed=11)
    _chunk(_da(z), 12, 7).to_dataset(name="dem").to_zarr(tmp_path / "dem.zarr", consolidated=False)
    da = xr.open_zarr(tmp_path / "dem.zarr", decode_coords="all", consolidated=False)["dem"]
    assert da.chunks == ((12, 12, 12, 4), (7, 7, 7, 7, 2))
    out = chunked.compute(chunked.zevenbergen_thorne(da))
    _same(out.plan_curvature.values, terrain.zevenbergen_thorne(z, 10.0)["plan_curvature"])


def _fill_and_reference(z: np.ndarray, dx: float):
    from models import hydro

    filled = hydro.fill_depressions(np.asarray(z, np.float32))
    slope, _, sca = terrain.dinf_slope_sca(z, dx, dx)
    return filled, slope, sca


@pytest.mark.parametrize("rows, cols", [(1, 16), (13, 9)])
def test_dinf_slope_equals_dinf_slope_sca(rows, cols):
    z = _random_dem()
    filled, ref, _ = _fill_and_reference(z, 10.0)
    out = chunked.compute(chunked.dinf_slope(_chunk(_da(filled), rows, cols)))
    _same(out.values, ref)
    assert np.isfinite(ref).sum() > 0.8 * z.size and (ref == 0).any()   # flats filled: slope 0


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_dems_slope_threaded_and_cluster(shared_data, demo_store, cluster):
    """Bigtujunga SRTM 30 m (with nodata holes punched), the Taiwan 40 m DEM warped to
    EPSG:3826 (a coast: sea and the warp's margin are nodata) and the demo DEM:
    Zevenbergen-Thorne and D-infinity slopes, threaded and on a 2-worker LocalCluster."""
    from gis.io.raster import read_projected_dem
    from gis.store import open_store

    big = read_projected_dem(shared_data("bigtujunga-srtm30m", "bigtujunga_srtm30m_utm11.tif"))
    z = big.data[:300, :400].copy()
    z[100:120, 200:260] = np.nan
    z[0:5, 0:30] = np.nan
    tw = read_projected_dem(shared_data("tw-sw-dem40m", "tw_sw40_moi40m_wgs84.tif"))
    ztw = tw.data[600:900, 150:500]
    assert 0.02 < np.isnan(ztw).mean() < 0.5
    tw_tr = tw.transform @ Affine.translation(150, 600)
    demo = open_store(str(demo_store)).read_raster("dem")
    for dem, tr, crs in ((z, big.transform, big.crs), (ztw, tw_tr, tw.crs),
                         (demo.data, demo.transform, demo.crs)):
        dx = abs(tr.a)
        da = _da(dem, dx=dx, crs=crs, x0=tr.c, y0=tr.f)
        ref = terrain.zevenbergen_thorne(dem, dx, dx)
        filled, dref, _ = _fill_and_reference(dem, dx)
        lazy_zt = chunked.zevenbergen_thorne(_chunk(da, 67, 91))
        lazy_d = chunked.dinf_slope(_chunk(da.copy(data=filled), 53, 128))
        for client in (None, cluster):
            zt, dslope = chunked.compute(lazy_zt, lazy_d, client=client)
            for name in chunked.ZT_LAYERS:
                _same(zt[name].values, ref[name])
            _same(dslope.values, dref)
        assert np.isfinite(dref).mean() > 0.5


# --- SINMAP, factor of safety, SHALSTAB, TWI ----------------------------------------------------

@pytest.mark.slow
@pytest.mark.shared_data
def test_sinmap_regions_chunked_equals_in_memory_and_taudem(shared_data, cluster):
    """TauDEM's SINMAP example: its slope, SCA and 2-region raster, chunked 37 x 23; SI and
    saturation equal the in-memory ones bit for bit, and TauDEM's SI to float32 rounding."""
    d = ("taudem-logan-sinmap", "sinmap")

    def read(name):
        with rasterio.open(shared_data(*d, name)) as ds:
            a = ds.read(1)
            nd = ds.nodata
        if nd is not None and np.issubdtype(a.dtype, np.floating):
            a = np.where(a == nd, np.nan, a)
        return a

    slope = read("demslp.tif").astype(np.float32)
    sca = read("demsca.tif").astype(np.float32)
    reg = read("demreg12.tif")
    regions = parse_calibration(shared_data(*d, "dempar12.csv").read_text())
    ref_si, ref_sat = sinmap.stability_index(slope, sca, regions, region_raster=reg,
                                             recharge=(0.0009, 0.00135))

    sl = _chunk(_da(slope), 37, 23)
    sc = _chunk(_da(sca), 50, 50)                    # other chunks: rechunked like the slope
    rg = _chunk(_da(reg), 37, 23)
    for client, (r, c) in ((None, (37, 23)), (cluster, (97, 131))):   # fewer tasks on the cluster
        si, sat = chunked.stability_index(_chunk(sl, r, c), sc, regions,
                                          region_raster=_chunk(rg, r, c),
                                          recharge=(0.0009, 0.00135))
        a, b = chunked.compute(si, sat, client=client)
        _same(a.values, ref_si)
        _same(b.values, ref_sat)
    taudem = read("demsi1.tif")
    m = np.isfinite(taudem)
    assert np.array_equal(np.isnan(a.values), np.isnan(taudem))
    assert np.abs(a.values[m] - taudem[m]).max() <= 1e-5
    assert {1, 2} <= set(np.unique(reg).tolist())            # two calibration regions

    sl, sc, rg = (_chunk(x, 150, 101) for x in (sl, sc, rg))    # per cell: chunking is moot
    f = chunked.compute(chunked.factor_of_safety(sl, sc, regions, recharge=0.001,
                                                 region_raster=rg, bound="low"))
    _same(f.values, fs.factor_of_safety(slope, sca, regions, recharge=0.001, region_raster=reg,
                                        bound="low"))
    q, wc = chunked.compute(*chunked.critical_rainfall(sl, sc, regions, region_raster=rg))
    rq, rwc = shalstab.critical_rainfall(slope, sca, regions, region_raster=reg)
    _same(q.values, rq)
    _same(wc.values, rwc)
    twi = chunked.compute(chunked.wetness_index(sc, sl))
    _same(twi.values, terrain.wetness_index(sca, slope))


def test_sinmap_from_dem_chain_random_dem():
    """D-infinity slope per chunk + in-memory SCA in chunks -> SINMAP and FS with one region."""
    z = _random_dem((70, 52), seed=21)
    filled, slope, sca = _fill_and_reference(z, 10.0)
    regions = parse_calibration(DEFAULT_TABLE)
    s = chunked.dinf_slope(_chunk(_da(filled), 11, 17))
    a = _chunk(_da(sca), 11, 17)
    si, sat = chunked.compute(*chunked.stability_index(s, a, regions))
    rsi, rsat = sinmap.stability_index(slope, sca, regions)
    _same(si.values, rsi)
    _same(sat.values, rsat)
    assert np.isfinite(rsi).sum() > 100
    f = chunked.compute(chunked.factor_of_safety(s, a, regions, recharge=0.0011))
    _same(f.values, fs.factor_of_safety(slope, sca, regions, recharge=0.0011))


@pytest.mark.parametrize("method", ["sinmap", "shalstab", "fs", "pof"])
def test_local_model_numpy_in_and_out(method, cluster):
    """The entry point proposed for run_landslide(--chunk): numpy in, numpy out, same arrays as
    the in-memory calls of models/landslide/run.py, threaded and on the cluster."""
    z = _random_dem((45, 38), seed=4)
    _, slope, sca = _fill_and_reference(z, 10.0)
    regions = parse_calibration(DEFAULT_TABLE + "2,5,10,0.1,0.3,25,40,1800\n")
    reg = np.where(np.arange(38)[None, :] < 19, 1, 2) * np.ones((45, 1), int)
    reg[:3] = 9                                          # a region not in the table: no result
    rech = (0.0009, 0.00135)
    if method == "sinmap":
        ref = sinmap.stability_index(slope, sca, regions, region_raster=reg, recharge=rech)
    elif method == "shalstab":
        ref = shalstab.critical_rainfall(slope, sca, regions, region_raster=reg)
    elif method == "fs":
        ref = (fs.factor_of_safety(slope, sca, regions, recharge=float(np.mean(rech)),
                                   region_raster=reg),)
    else:  # Monte Carlo: each cell's random stream is seeded by its index in the whole grid
        ref = (fs.probability_of_failure(slope, sca, regions, recharge=rech, region_raster=reg,
                                         n=64, seed=7),)
    tr = Affine(10, 0, 250000, 0, -10, 2600000)
    for client in (None, cluster):
        got = chunked.local_model(method, slope, sca, regions, transform=tr, crs=CRS, chunk=13,
                                  client=client, region_raster=reg, recharge=rech, n_draws=64,
                                  seed=7)
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            _same(g, r)
    assert np.isnan(got[0][:3]).all() and np.isfinite(got[0]).sum() > 500


def test_from_array_coordinates():
    tr = Affine(20, 0, 1000, 0, -20, 5000)
    da = chunked.from_array(np.zeros((3, 4), np.float32), tr, CRS, chunks=2)
    np.testing.assert_allclose(da.x.values, [1010, 1030, 1050, 1070])
    np.testing.assert_allclose(da.y.values, [4990, 4970, 4950])
    assert chunked.transform_of(da) == tr and da.chunks == ((2, 1), (2, 2))


def test_grids_must_match():
    z = _random_dem((20, 20))
    with pytest.raises(DataError, match="share the grid"):
        chunked.stability_index(_da(z).chunk(5), _da(z[:19]).chunk(5),
                                parse_calibration(DEFAULT_TABLE))
    with pytest.raises(ValueError, match="geographic"):
        chunked.zevenbergen_thorne(_da(z, crs="EPSG:4326"))


# --- the wide-halo prototype for explicit time stepping --------------------------------------

def _diffuse(u: np.ndarray, t: int) -> np.ndarray:
    """One explicit step of no-flux diffusion with a 5-point stencil, NaN cells outside (walls).
    Conserves the sum exactly up to rounding; reach 1 cell."""
    p = np.pad(u, 1, constant_values=np.nan)
    c = p[1:-1, 1:-1]
    flux = np.zeros_like(c)
    for nb in (p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]):
        ok = np.isfinite(nb) & np.isfinite(c)
        flux += np.where(ok, nb - c, 0.0)
    rate = 0.2 if t % 2 == 0 else 0.1          # the step depends on the global step number
    return np.where(np.isfinite(c), c + rate * flux, np.nan)


@pytest.mark.parametrize("every, rows, cols", [(1, 9, 7), (3, 2, 5), (5, 12, 11)])
def test_wide_halo_iteration_equals_in_memory_steps(every, rows, cols):
    rng = np.random.default_rng(every)
    u0 = rng.random((31, 26))
    u0[12:15, 8:20] = np.nan
    ref = u0.copy()
    for t in range(13):
        ref = _diffuse(ref, t)
    out = chunked.iterate_wide_halo(_diffuse, _chunk(_da(u0), rows, cols), 13, reach=1,
                                    every=every)
    assert out.chunks == _chunk(_da(u0), rows, cols).chunks
    res = chunked.compute(out).values
    _same(res, ref)
    assert np.nansum(res) == pytest.approx(np.nansum(u0), rel=1e-12)   # mass conserved
    assert not np.allclose(res, u0, equal_nan=True)                    # it did diffuse


def test_wide_halo_wider_than_the_grid():
    """A halo wider than the whole grid (3 x 4 cells, 6 steps per exchange): one padded block."""
    u0 = np.arange(12, dtype=np.float64).reshape(3, 4) ** 2
    u0[1, 2] = np.nan
    ref = u0.copy()
    for t in range(7):
        ref = _diffuse(ref, t)
    out = chunked.iterate_wide_halo(_diffuse, _chunk(_da(u0), 1, 3), 7, every=6)
    _same(chunked.compute(out).values, ref)
    assert out.chunks == ((1, 1, 1), (3, 1))
