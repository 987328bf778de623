"""Depression breaching (complete breaching after Lindsay 2016): an analytic dammed valley and
the drainage invariant on real DEMs."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from models.hydro import breach_depressions, fill_depressions


def lowest_neighbour(a: np.ndarray) -> np.ndarray:
    p = np.pad(np.where(np.isnan(a), np.inf, a), 1, constant_values=np.inf)
    h, w = a.shape
    return np.minimum.reduce([p[1 + dr:1 + dr + h, 1 + dc:1 + dc + w]
                              for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0)])


def dammed_valley() -> np.ndarray:
    """A V valley falling 1 m per cell to the east (outlet: the east edge), walled on the other
    sides, with a 10 m dam across column 15: the floor behind it (87 m at column 14) is a
    depression whose spill point is the dam's crest on the valley floor (96 m)."""
    rr, cc = np.mgrid[0:20, 0:30].astype(np.float64)
    z = 100 - cc + 2 * np.abs(rr - 9.5)
    z[1:-1, 15] += 10
    z[0, :] = z[-1, :] = 300
    z[:, 0] = 300
    return z.astype(np.float32)


def test_breach_cuts_the_dam_instead_of_filling_the_lake():
    z = dammed_valley()
    b = breach_depressions(z)
    changed = np.argwhere(b != z)
    # one crest cell of the dam is cut to just below the lake floor (87 m); nothing else moves
    assert len(changed) == 1
    r, c = changed[0]
    assert c == 15 and r in (9, 10)
    assert 86.0 < b[r, c] < 87.0
    # the fill instead raises the whole lake to the crest: the 50 cells west of the dam below
    # 96 m (2 |row - 9.5| < col - 4 for cols 6..14)
    f = fill_depressions(z)
    assert (f > z).sum() == 50 and f[9, 14] == np.float32(96.0)
    # every interior cell now has a strictly lower neighbour
    inner = np.zeros(z.shape, bool)
    inner[1:-1, 1:-1] = True
    assert (lowest_neighbour(b)[inner] < b[inner]).all()


def test_single_cell_pit_is_raised_just_below_its_lowest_neighbour():
    z = np.tile(np.arange(10, 0, -1, dtype=np.float32), (7, 1))  # falls east
    z[3, 4] = 0.0  # a pit
    b = breach_depressions(z)
    below5 = np.nextafter(np.float32(5.0), np.float32(-np.inf))
    assert b[3, 4] == below5  # one ulp below its lowest neighbours (2..4, 5) at 5 m
    # it still has no lower neighbour, so one cell of column 5 is cut one ulp below it
    changed = np.argwhere(b != z).tolist()
    assert len(changed) == 2 and [3, 4] in changed
    (r, c), = [rc for rc in changed if rc != [3, 4]]
    assert c == 5 and b[r, c] == np.nextafter(below5, np.float32(-np.inf))


@pytest.mark.shared_data
@pytest.mark.parametrize("name", [("bigtujunga-srtm30m", "bigtujunga_srtm30m_utm11.tif"),
                                  ("pysheds-fortworth-dem", "dem.tif")])
def test_breached_real_dems_drain(shared_data, name):
    with rasterio.open(shared_data(*name)) as ds:
        a = ds.read(1)
    z = a.astype(np.float32)
    b = breach_depressions(z)
    inner = np.zeros(z.shape, bool)
    inner[1:-1, 1:-1] = True
    assert (lowest_neighbour(b)[inner] < b[inner]).all()  # strict descent from every cell
    lowered = b < z
    raised = b > z
    # only single-cell pits are raised, and only to just below their lowest neighbour
    assert (b[raised] < lowest_neighbour(z)[raised]).all()
    assert (z[raised] < lowest_neighbour(z)[raised]).all()
    # breaching modifies far less volume than filling
    f = fill_depressions(z)
    assert (z - b)[lowered].sum() + (b - z)[raised].sum() <= (f - z).sum() + 1.0
