"""HAND inundation on a V valley, where HAND, the flooded width and Manning's discharge of the
triangular channel are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from models.flood.hand import hand_inundation

DX, M, S, N = 5.0, 0.05, 0.002, 0.04     # cell (m), side slope, valley slope, Manning's n
NY, NX, MID = 400, 201, 100


def _valley():
    row, col = np.mgrid[0:NY, 0:NX].astype("float64")
    return 100.0 + S * (NY - 1 - row) * DX + M * np.abs(col - MID) * DX


def _manning_q(h):
    """Discharge of a triangular channel with side slopes M (dz/dx) at depth h."""
    area = h * h / M
    perimeter = 2 * h * np.sqrt(1 / M ** 2 + 1)
    return area * (area / perimeter) ** (2 / 3) * np.sqrt(S) / N


def test_stage_floods_where_hand_is_below_it():
    res = hand_inundation(_valley(), DX, stage=1.0, threshold_cells=500)
    rows = slice(20, NY - 1)
    expected_hand = M * np.abs(np.arange(NX) - MID) * DX
    np.testing.assert_allclose(res.hand[rows, 1:-1], np.broadcast_to(
        expected_hand[1:-1], res.hand[rows, 1:-1].shape), atol=1e-9)
    expected = np.clip(1.0 - expected_hand, 0, None)
    np.testing.assert_allclose(res.depth[rows], np.broadcast_to(expected, res.depth[rows].shape),
                               atol=1e-6)
    assert res.summary["reaches"] == 1 and res.streams[rows, MID].all()
    assert not res.streams[:, :MID].any() and not res.streams[:, MID + 1:].any()


def test_rating_curve_matches_mannings_triangular_channel():
    res = hand_inundation(_valley(), DX, stage=1.0, threshold_cells=500, manning=N)
    reach = res.reaches.iloc[0]
    assert reach["slope"] == pytest.approx(S, rel=1e-6)
    curve = res.rating_curves
    for h, tol in ((2.0, 0.06), (5.0, 0.03)):
        row = curve[np.isclose(curve["stage_m"], h)].iloc[0]
        # Volume / length: the rows above the stream's head drain into the reach but add no
        # length (Zheng et al.'s catchment convention), a bias of rows above head / rows.
        assert row["area_m2"] == pytest.approx(h * h / M, rel=0.01)
        # The bed is counted by whole cells: the perimeter, hence Q, is off by under a cell.
        assert row["q_m3s"] == pytest.approx(_manning_q(h), rel=tol)


def test_discharge_gives_the_stage_of_the_rating_curve():
    q = _manning_q(3.0)
    res = hand_inundation(_valley(), DX, discharge=q, threshold_cells=500, manning=N)
    stage = float(res.reaches["stage_m"].iloc[0])
    assert stage == pytest.approx(3.0, rel=0.03)
    flooded = (res.depth[200] > 0).sum()
    assert flooded == 2 * int(np.ceil(stage / (M * DX))) - 1       # cells with HAND < stage


def test_confluences_split_reaches():
    # Two valleys meeting in a Y: three reaches.
    row, col = np.mgrid[0:300, 0:301].astype("float64")
    left = M * np.abs(col - 100 - (300 - row) * 0.0) * DX
    right = M * np.abs(col - 200) * DX
    z = 100.0 + S * (299 - row) * DX + np.minimum(left, right)
    z[200:] = (100.0 + S * (299 - row) * DX + M * np.abs(col - 150) * DX)[200:]
    res = hand_inundation(z, DX, stage=0.5, threshold_cells=400)
    assert res.summary["reaches"] >= 3
    assert len(set(res.reach[res.streams].tolist())) == res.summary["reaches"]
