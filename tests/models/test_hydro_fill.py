"""Depression filling against RichDEM (bit for bit), TauDEM's PitRemove reference, analytic cases
and the invariants of a filled surface."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
from scipy import sparse
from scipy.sparse import csgraph

from models.hydro import fill_depressions
from tests_helpers import read_nan

DEMS = {
    "sw-taiwan-40m": ("tw-sw-dem40m", "tw_sw40_moi40m_wgs84.tif"),
    "fort-worth": ("pysheds-fortworth-dem", "dem.tif"),
    "big-tujunga": ("bigtujunga-srtm30m", "bigtujunga_srtm30m_utm11.tif"),
}


def richdem_fill(z: np.ndarray, epsilon: bool) -> np.ndarray:
    """RichDEM's fill of ``z`` (float32, NaN -> its no_data value -9999)."""
    rd = pytest.importorskip("richdem")
    arr = rd.rdarray(np.where(np.isnan(z), np.float32(-9999), z).astype(np.float32),
                     no_data=-9999.0)
    arr.geotransform = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    with warnings.catch_warnings():  # richdem calls datetime.utcnow()
        warnings.simplefilter("ignore", DeprecationWarning)
        out = np.asarray(rd.fill_depressions(arr, epsilon=epsilon), dtype=np.float32)
    return np.where(out == -9999, np.float32(np.nan), out)


def neighbours(a: np.ndarray, fill) -> list[np.ndarray]:
    """The 8 shifted copies of ``a`` (``fill`` off the grid)."""
    p = np.pad(a, 1, constant_values=fill)
    h, w = a.shape
    return [p[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
            for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)]


def outlet_mask(z: np.ndarray) -> np.ndarray:
    """Edge cells and cells next to nodata (RichDEM/TauDEM outlets), nodata excluded."""
    nan = np.isnan(z)
    out = np.zeros(z.shape, bool)
    out[0, :] = out[-1, :] = out[:, 0] = out[:, -1] = True
    for nb in neighbours(nan, False):
        out |= nb
    return out & ~nan


def drains(filled: np.ndarray, outlets: np.ndarray) -> np.ndarray:
    """Cells with a non-ascending 8-connected path to an outlet (graph search with scipy)."""
    h, w = filled.shape
    idx = np.arange(h * w).reshape(h, w)
    src, dst = [], []
    pz = np.pad(filled, 1, constant_values=np.nan)
    pi = np.pad(idx, 1, constant_values=-1)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if (dr, dc) == (0, 0):
                continue
            nz = pz[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
            ni = pi[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
            ok = (ni >= 0) & (nz <= filled)  # water may step from a cell to a not-higher one
            src.append(ni[ok])  # reversed edge: from the lower neighbour up to the cell
            dst.append(idx[ok])
    n = h * w
    src = np.concatenate(src + [np.full(int(outlets.sum()), n)])
    dst = np.concatenate(dst + [idx[outlets]])
    g = sparse.csr_matrix((np.ones(src.size, np.int8), (src, dst)), shape=(n + 1, n + 1))
    order = csgraph.breadth_first_order(g, n, directed=True, return_predecessors=False)
    reached = np.zeros(n + 1, bool)
    reached[order] = True
    return reached[:n].reshape(h, w)


@pytest.mark.shared_data
@pytest.mark.parametrize("epsilon", [False, True], ids=["plain", "epsilon"])
@pytest.mark.parametrize("name", list(DEMS))
def test_fill_is_bit_identical_to_richdem(shared_data, name, epsilon):
    z = read_nan(shared_data(*DEMS[name]))
    ours = fill_depressions(z, epsilon=epsilon)
    ref = richdem_fill(z, epsilon)
    assert ours.dtype == np.float32 and ours.shape == z.shape
    assert np.array_equal(np.isnan(ours), np.isnan(z))
    valid = ~np.isnan(z)
    assert np.array_equal(ours[valid].view(np.int32), ref[valid].view(np.int32))
    if name == "sw-taiwan-40m":  # a real test: many cells are raised
        assert (ours[valid] > z[valid]).sum() > (100_000 if epsilon else 50_000)


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["fort-worth", "big-tujunga"])
def test_fill_invariants(shared_data, name):
    z = read_nan(shared_data(*DEMS[name]))
    outlets = outlet_mask(z)
    filled = fill_depressions(z)
    assert (filled >= z).all()
    assert np.array_equal(filled[outlets], z[outlets])  # outlets keep their elevation
    # fixpoint: a non-outlet cell sits at max(own elevation, lowest neighbour)
    low = np.minimum.reduce(neighbours(filled, np.inf))
    inner = ~outlets
    assert np.array_equal(filled[inner], np.maximum(z, low)[inner])
    assert drains(filled, outlets).all()
    # epsilon: every non-outlet cell has a strictly lower neighbour, so steepest descent ends
    # at an outlet; and it never lies below the plain fill
    eps = fill_depressions(z, epsilon=True)
    low = np.minimum.reduce(neighbours(eps, np.inf))
    assert (low[inner] < eps[inner]).all()
    assert (eps >= filled).all()


@pytest.mark.shared_data
def test_fill_matches_taudem_pitremove(shared_data):
    """TauDEM 5.3.3 PitRemove of the Logan 100 m VRT (8-way, flat fill, edges are outlets)."""
    vrt = shared_data("taudem-logan-sinmap", "logan", "LoganVRT", "output.vrt")
    ref_path = shared_data("taudem-logan-sinmap", "logan", "loganvrtfel.tif")
    with rasterio.open(vrt) as ds:
        z = ds.read(1).astype(np.float32)
    with rasterio.open(ref_path) as ds:
        ref = ds.read(1)
    ours = fill_depressions(z)
    assert (ours != z).sum() == 2132  # as SOURCE.md counts
    assert np.array_equal(ours, ref)


def bowl(n: int = 21) -> np.ndarray:
    """A cone (10 m at the centre, rising 1 m per cell) inside a 50 m rim with a notch at
    12.5 m on the west edge. The lowest way out is over the cone cell next to the notch, at
    10 + 10 - 1 = 19 m, so the pit fills to 19 m."""
    r = np.hypot(*np.meshgrid(np.arange(n) - n // 2, np.arange(n) - n // 2))
    z = (10.0 + r).astype(np.float32)
    z[0, :] = z[-1, :] = z[:, 0] = z[:, -1] = 50.0
    z[n // 2, 0] = 12.5  # the notch on the west edge: the spill point
    return z


def test_fill_bowl_to_its_spill_level():
    z = bowl()
    filled = fill_depressions(z)
    n = z.shape[0]
    # every interior cell below the spill level rises to it; the rest keep their value
    assert z[n // 2, 1] == np.float32(19.0)
    inner = np.zeros(z.shape, bool)
    inner[1:-1, 1:-1] = True
    expect = np.where(inner & (z < 19.0), np.float32(19.0), z)
    assert np.array_equal(filled, expect)


def test_sea_level_and_outlet_mask_are_outlets():
    z = bowl()
    n = z.shape[0]
    # a centre at or below sea level drains the bowl: nothing is raised
    z2 = z.copy()
    z2[n // 2, n // 2] = -1.0
    assert np.array_equal(fill_depressions(z2, sea_level=0.0), z2)
    # without sea_level the centre fills up to the spill level
    assert fill_depressions(z2)[n // 2, n // 2] == np.float32(19.0)
    # an explicit outlet mask does the same
    mask = np.zeros(z.shape, bool)
    mask[n // 2, n // 2] = True
    assert np.array_equal(fill_depressions(z, outlets=mask), z)


def test_interior_nodata_hole_is_outlet_or_wall():
    z = bowl()
    n = z.shape[0]
    z[n // 2, n // 2] = np.nan
    out = fill_depressions(z)  # the hole is an outlet: the bowl drains into it
    assert np.isnan(out[n // 2, n // 2])
    assert np.array_equal(out, z, equal_nan=True)
    walled = fill_depressions(z, nodata_is_outlet=False)  # a wall: the bowl fills to 19 m
    assert np.isnan(walled[n // 2, n // 2])
    assert np.nanmin(walled[1:-1, 1:-1]) == np.float32(19.0)
    eps = fill_depressions(z, epsilon=True)  # only ulps added (equal cells on a ring)
    ok = ~np.isnan(z)
    assert (eps[ok] >= z[ok]).all() and (eps[ok] - z[ok] < 1e-4).all()


def test_land_cut_off_by_nodata_walls_drains_into_them():
    z = np.full((9, 9), np.nan, np.float32)
    z[2:7, 2:7] = 5.0
    z[4, 4] = 1.0  # a pit inside an island surrounded by nodata
    for walls in (False, True):
        out = fill_depressions(z, nodata_is_outlet=not walls)
        assert out[4, 4] == 5.0 and np.isnan(out[0, 0])
        assert np.array_equal(np.isnan(out), np.isnan(z))


def test_float64_and_integer_input():
    z = bowl().astype(np.float64) + 1e-9  # values not representable in float32
    out = fill_depressions(z)
    assert out.dtype == np.float64
    inner = np.zeros(z.shape, bool)
    inner[1:-1, 1:-1] = True
    assert np.array_equal(out, np.where(inner & (z < 19.0 + 1e-9), 19.0 + 1e-9, z))
    zi = np.round(bowl()).astype(np.int16)
    assert fill_depressions(zi).dtype == np.float32
    assert np.array_equal(fill_depressions(zi), fill_depressions(zi.astype(np.float32)))


def test_epsilon_gives_strict_descent_on_a_flat_pit():
    z = np.full((7, 9), 10.0, np.float32)
    z[1:-1, 1:-1] = 5.0
    z[3, 0] = 4.0  # outlet
    out = fill_depressions(z, epsilon=True)
    low = np.minimum.reduce(neighbours(out, np.inf))
    inner = np.zeros(z.shape, bool)
    inner[1:-1, 1:-1] = True
    assert (low[inner] < out[inner]).all()
    assert (out[inner] >= 5.0).all() and (out[inner] < 5.001).all()
    # the 35 flat cells got ulp steps, except the 3 next to the outlet (they keep 5.0)
    assert (out[inner] > 5.0).sum() == 32
