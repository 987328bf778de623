"""Tiled hydrology (models.hydro.tiled, ``ngis model hydro ... --tile``) against the in-memory
path and RichDEM: the filled DEM bit for bit, D8 codes and accumulation exactly, on random grids
built to stress tile borders (flats, nodata, sea, tiles of 3 cells, shapes the tile does not
divide), real DEMs, and a LocalCluster of 2 worker processes. Also: no task reads more than its
tile and halo, and bad input is refused before anything is written."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from models import hydro
from models.hydro import tiled as T
from tests_helpers import read_nan

NGIS = [sys.executable, "-m", "gis"]


class CountingSource:
    """A window source that records the largest window it was asked for."""

    def __init__(self, array):
        self.inner = T.ArraySource(array)
        self.shape = self.inner.shape
        self.dtype = self.inner.dtype
        self.largest = 0

    def read(self, r0, r1, c0, c1):
        self.largest = max(self.largest, (r1 - r0) * (c1 - c0))
        return self.inner.read(r0, r1, c0, c1)


def in_memory(z, dx=10.0, sea=None):
    filled = hydro.fill_depressions(z, sea_level=sea)
    outlets = None if sea is None else (z <= sea)
    dirs = hydro.d8_directions(filled, dx, outlets=outlets)
    acc = hydro.accumulate_d8(dirs, weights=np.isfinite(filled).astype(np.float64))
    return filled, dirs, acc


def tiled(z, tile, tmp_path, dx=10.0, sea=None, executor=None):
    fs = T.TileStore(tmp_path / "filled", z.shape, z.dtype, tile)
    T.fill_tiled(T.ArraySource(z), fs, sea_level=sea, executor=executor)
    ds = T.TileStore(tmp_path / "d8", z.shape, np.uint8, tile)
    rep = T.d8_tiled(fs, ds, dx, sea_level=sea, executor=executor)
    acs = T.TileStore(tmp_path / "acc", z.shape, np.float64, tile)
    T.accumulate_tiled(ds, acs, weights=T.FiniteWeights(fs), executor=executor)
    return T.read_all(fs), T.read_all(ds), T.read_all(acs), rep


def random_dem(rng, kind, h, w):
    if kind == "noise":
        return (rng.random((h, w)) * 10).astype(np.float32)
    if kind == "terraces":  # few levels: flats everywhere, many across tile borders
        return rng.integers(0, 4, (h, w)).astype(np.float32)
    if kind == "valleys":
        yy, xx = np.mgrid[0:h, 0:w]
        z = np.sin(xx / 5.0) * 3 + np.cos(yy / 7.0) * 3 + rng.random((h, w)) * 0.5
        return np.round(z, 1).astype(np.float32)
    z = rng.integers(0, 3, (h, w)).astype(np.float32)  # holes of nodata inside
    z[rng.random((h, w)) < 0.1] = np.nan
    return z


@pytest.mark.parametrize("seed", range(4))
def test_random_grids_equal_in_memory(seed, tmp_path):
    rng = np.random.default_rng(seed)
    for trial, kind in enumerate(["noise", "terraces", "valleys", "holes"] * 2):
        h, w = (int(v) for v in rng.integers(3, 40, 2))
        z = random_dem(rng, kind, h, w)
        sea = 0.5 if trial % 3 == 0 else None
        tile = int(rng.integers(3, 13))
        want = in_memory(z, sea=sea)
        got = tiled(z, tile, tmp_path / f"{trial}", sea=sea)
        label = f"seed {seed} trial {trial} {kind} {h}x{w} tile {tile} sea {sea}"
        assert np.array_equal(want[0], got[0], equal_nan=True), f"fill differs: {label}"
        assert np.array_equal(want[1], got[1]), f"d8 differs: {label}"
        assert np.array_equal(want[2], got[2]), f"accumulation differs: {label}"


def test_float64_dem_fill_is_bit_identical(tmp_path):
    """float64 DEMs keep their precision through the tiles (ranks, not float32 keys)."""
    rng = np.random.default_rng(11)
    for trial in range(8):
        h, w = (int(v) for v in rng.integers(3, 30, 2))
        z = (rng.random((h, w)) * 5).round(2)  # ties, and values float32 cannot hold
        z[rng.random((h, w)) < 0.05] = np.nan
        sea = 0.5 if trial % 2 else None
        store = T.TileStore(tmp_path / f"f{trial}", z.shape, z.dtype, int(rng.integers(3, 9)))
        T.fill_tiled(T.ArraySource(z), store, sea_level=sea)
        got = T.read_all(store)
        assert got.dtype == np.float64
        assert np.array_equal(hydro.fill_depressions(z, sea_level=sea), got, equal_nan=True)


def test_flat_across_many_tiles_grows_the_window(tmp_path):
    """A filled lake 60 cells wide over tiles of 12: the tiles inside it must read the whole
    flat to route water as the in-memory path does (Barnes 2014b gradients)."""
    yy, xx = np.mgrid[0:80, 0:90]
    z = (np.hypot(yy - 40, xx - 45) * 0.5).astype(np.float32)  # a cone pointing down...
    z[(yy - 40) ** 2 + (xx - 45) ** 2 < 30 ** 2] = 5.0  # ...whose middle is a flat at 5 m
    z[40, 89] = 0.0  # one outlet on the east edge
    want = in_memory(z)
    f, d, a, rep = tiled(z, 12, tmp_path)
    assert rep.largest_halo > 12  # the window had to grow past the next tile
    assert np.array_equal(want[0], f, equal_nan=True)
    assert np.array_equal(want[1], d)
    assert np.array_equal(want[2], a)


def test_tasks_read_one_tile_and_its_halo(tmp_path):
    rng = np.random.default_rng(7)
    z = random_dem(rng, "valleys", 120, 130)
    src = CountingSource(z)
    fs = T.TileStore(tmp_path / "f", z.shape, z.dtype, 32)
    T.fill_tiled(src, fs)
    assert src.largest == 32 * 32
    filled = CountingSource(T.read_all(fs))
    ds = T.TileStore(tmp_path / "d", z.shape, np.uint8, 32)
    rep = T.d8_tiled(filled, ds, 10.0)
    assert filled.largest <= (32 + 2 * rep.largest_halo) ** 2
    dirs = CountingSource(T.read_all(ds))
    T.accumulate_tiled(dirs, T.TileStore(tmp_path / "a", z.shape, np.float64, 32))
    assert dirs.largest == 32 * 32


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("folder,name", [
    ("tw-sw-dem40m", "tw_sw40_moi40m_wgs84.tif"),  # integer metres: flats; the sea as nodata
    ("bigtujunga-srtm30m", "bigtujunga_srtm30m_utm11.tif"),
])
def test_real_dems_equal_in_memory_and_richdem(folder, name, shared_data, tmp_path):
    rd = pytest.importorskip("richdem")
    z = read_nan(shared_data(folder, name))
    want = in_memory(z, dx=30.0)
    got = tiled(z, 300, tmp_path, dx=30.0)
    assert np.array_equal(want[0], got[0], equal_nan=True)
    assert np.array_equal(want[1], got[1])
    assert np.array_equal(want[2], got[2])
    # RichDEM, an independent Priority-Flood, fills to the same bits
    arr = rd.rdarray(np.where(np.isnan(z), np.float32(-9999), z), no_data=-9999.0)
    arr.geotransform = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ref = np.asarray(rd.fill_depressions(arr, epsilon=False), dtype=np.float32)
    ref = np.where(ref == -9999, np.float32(np.nan), ref)
    assert np.array_equal(ref, got[0], equal_nan=True)


def test_sources_and_store_windows(tmp_path):
    z = np.arange(35 * 41, dtype=np.float32).reshape(35, 41)
    path = tmp_path / "z.tif"
    with rasterio.open(path, "w", driver="GTiff", width=41, height=35, count=1,
                       dtype="float32", crs="EPSG:3826", transform=from_origin(0, 350, 10, 10),
                       nodata=-1) as ds:
        zz = z.copy()
        zz[3, 4] = -1
        ds.write(zz, 1)
    src = T.RasterSource(str(path))
    w = src.read(-2, 5, 38, 44)  # off the grid on two sides: NaN there
    assert w.shape == (7, 6)
    assert np.isnan(w[:2]).all() and np.isnan(w[:, 3:]).all()
    assert np.array_equal(w[2:, :3], z[0:5, 38:41])
    assert np.isnan(src.read(3, 4, 4, 5)[0, 0])  # nodata value -> NaN
    store = T.TileStore(tmp_path / "s", z.shape, np.float32, 16)
    for i, j in T.Tiling(z.shape, 16).tiles():
        r0, r1, c0, c1 = T.Tiling(z.shape, 16).window(i, j)
        store.write(r0, c0, z[r0:r1, c0:c1])
    assert np.array_equal(store.read(5, 30, 7, 40), z[5:30, 7:40])
    da = store.dataarray(src.transform, "EPSG:3826")
    assert da.chunks == ((16, 16, 3), (16, 16, 9))
    assert np.array_equal(da.values, z)
    assert da.rio.crs.to_epsg() == 3826
    with pytest.raises(ValueError):
        store.write(3, 0, z[:16, :16])  # not a tile corner


@pytest.fixture(scope="module")
def dem_tif(tmp_path_factory):
    from gis.demo.terrain import terrain_window

    z = terrain_window(3, (0.0, 0.0, 9000.0, 7500.0), 0.0, 9000.0, 300, 250, 30.0)
    z = z.astype(np.float32)
    z[:20, :30] = np.nan  # a corner of nodata
    path = tmp_path_factory.mktemp("tiled") / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", width=z.shape[1], height=z.shape[0],
                       count=1, dtype="float32", crs="EPSG:3826",
                       transform=from_origin(250000, 2600000, 30, 30), nodata=np.nan) as ds:
        ds.write(z, 1)
    return path


def run_cli(*args):
    return subprocess.run([*NGIS, "--quiet", "model", "hydro", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cli_local_cluster_equals_in_memory(dem_tif, tmp_path):
    for step in ("fill", "accumulate"):
        mem = tmp_path / f"mem-{step}.tif"
        til = tmp_path / f"tiled-{step}.tif"
        assert run_cli(step, "--dem", dem_tif, "--out", mem).returncode == 0
        r = run_cli(step, "--dem", dem_tif, "--out", til, "--tile", 64, "--workers", 2)
        assert r.returncode == 0, r.stderr
        with rasterio.open(mem) as a, rasterio.open(til) as b:
            assert np.array_equal(a.read(1), b.read(1), equal_nan=True)
            assert (a.crs, a.transform, a.dtypes) == (b.crs, b.transform, b.dtypes)
            assert b.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("ngis-tiled-")]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_cli_on_a_running_scheduler(dem_tif, tmp_path):
    """``--scheduler ADDRESS``: a dask scheduler and a worker started as their own programs
    (as on a cluster, sharing this file system), the same result as in memory."""
    import os
    import time

    dask_cli = os.path.join(os.path.dirname(sys.executable), "dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    procs = [subprocess.Popen([dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", "127.0.0.1:0"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(1.0)
        procs.append(subprocess.Popen([dask_cli, "worker", address, "--nthreads", "1",
                                       "--host", "127.0.0.1", "--dashboard-address",
                                       "127.0.0.1:0"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, cwd=str(tmp_path)))
        out, mem = tmp_path / "acc.tif", tmp_path / "mem.tif"
        r = run_cli("accumulate", "--dem", dem_tif, "--out", out, "--tile", 100,
                    "--scheduler", address, "--work-dir", tmp_path / "shared")
        assert r.returncode == 0, r.stderr
        assert run_cli("accumulate", "--dem", dem_tif, "--out", mem).returncode == 0
        with rasterio.open(mem) as a, rasterio.open(out) as b:
            assert np.array_equal(a.read(1), b.read(1), equal_nan=True)
        assert list((tmp_path / "shared").iterdir()) == []  # scratch tiles removed
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rioxarray
def test_cli_zarr_out_opens_in_xarray(dem_tif, tmp_path):
    import rioxarray  # noqa: F401
    import xarray as xr

    out = tmp_path / "d8.zarr"
    r = run_cli("flowdir", "--dem", dem_tif, "--out", out, "--tile", 100)
    assert r.returncode == 0, r.stderr
    mem = tmp_path / "d8.tif"
    assert run_cli("flowdir", "--dem", dem_tif, "--out", mem).returncode == 0
    ds = xr.open_dataset(out, engine="zarr", chunks={}, decode_coords="all")
    d8 = ds["d8"]
    assert d8.chunks == ((100, 100, 50), (100, 100, 100))
    assert d8.rio.crs.to_epsg() == 3826
    with rasterio.open(mem) as ref:
        assert np.array_equal(d8.values, ref.read(1))
        assert d8.rio.transform() == ref.transform


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rioxarray
def test_chunked_dataarrays_in_and_out(dem_tif, tmp_path):
    """rioxarray opens the DEM lazily in chunks; the tiled wrappers return dask-backed
    DataArrays (a chunk per tile) on the same grid, equal to the in-memory wrappers."""
    import rioxarray

    from models.hydro import xr as hxr

    dem = rioxarray.open_rasterio(dem_tif, chunks={"band": 1, "y": 96, "x": 96})
    dem = dem.squeeze("band", drop=True)
    filled = hxr.fill_tiled(dem, str(tmp_path), tile=96)
    assert filled.chunks == ((96, 96, 58), (96, 96, 96, 12))
    d8 = hxr.d8_tiled(filled, str(tmp_path), tile=96)
    acc = hxr.accumulation_tiled(filled, d8, str(tmp_path), tile=96)
    ref_dem = dem.load()
    assert np.array_equal(filled.values, hxr.fill(ref_dem).values, equal_nan=True)
    assert np.array_equal(d8.values, hxr.d8(hxr.fill(ref_dem)).values)
    want = hxr.accumulation(hxr.fill(ref_dem), "d8").values
    got = acc.values
    valid = ~np.isnan(want)
    assert np.array_equal(got[valid], want[valid])
    for out in (filled, d8, acc):
        assert out.rio.crs == dem.rio.crs and out.rio.transform() == dem.rio.transform()
        assert np.array_equal(out.x, dem.x) and np.array_equal(out.y, dem.y)


def test_cli_refusals(dem_tif, tmp_path):
    out = tmp_path / "x.tif"
    r = run_cli("fill", "--dem", dem_tif, "--out", out, "--workers", 2)
    assert r.returncode == 2 and "--tile" in r.stderr
    r = run_cli("fill", "--dem", dem_tif, "--out", out, "--tile", 64, "--epsilon")
    assert r.returncode == 2 and "--epsilon" in r.stderr
    geo = tmp_path / "geo.tif"
    with rasterio.open(geo, "w", driver="GTiff", width=10, height=10, count=1,
                       dtype="float32", crs="EPSG:4326",
                       transform=from_origin(120, 23, 0.001, 0.001)) as ds:
        ds.write(np.ones((10, 10), np.float32), 1)
    r = run_cli("fill", "--dem", geo, "--out", out, "--tile", 64)
    assert r.returncode == 1
    assert "projected" in r.stderr and str(geo) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [geo]
