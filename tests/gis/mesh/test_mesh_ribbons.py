"""Road and rail ribbons on a synthetic tilted-plane DEM (z = a x + b y + c).

Bilinear interpolation reproduces a plane exactly, so every expected elevation is the plane's.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from shapely.geometry import LineString, MultiLineString

from gis.errors import DataError
from gis.mesh import SURFACE_CODES, MeshReport, ribbons
from gis.mesh.checks import check_closed, feature_volumes

X0, Y0 = 250000.0, 2742000.0
A, B, C = 0.04, -0.025, 120.0
CELL = 5.0
TR = Affine(CELL, 0.0, X0, 0.0, -CELL, Y0 + 1000.0)


def plane(x, y):
    return A * x + B * y + C


def dem(shape=(200, 200)) -> np.ndarray:
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    return plane(TR.c + TR.a * cols, TR.f + TR.e * rows)


ZIGZAG = LineString([(X0 + 100, Y0 + 100), (X0 + 300, Y0 + 150), (X0 + 350, Y0 + 400),
                     (X0 + 600, Y0 + 420)])
STRAIGHT = LineString([(X0 + 100, Y0 + 700), (X0 + 700, Y0 + 750)])


def test_ground_ribbon_lies_on_the_terrain_plus_offset():
    mesh = ribbons([ZIGZAG, STRAIGHT], [7.5, 12.0], "ground", None, None, dem(), TR,
                   offset=0.05)
    p = mesh.positions
    np.testing.assert_allclose(p[:, 2], plane(p[:, 0], p[:, 1]) + 0.05, atol=1e-6)
    assert np.all(mesh.surface_types == SURFACE_CODES["road"])
    # upward facing, densified to the cell size
    assert np.all(mesh.face_normals()[:, 2] > 0.99)
    centre = p.reshape(-1, 2, 3).mean(axis=1)
    steps = np.hypot(*np.diff(centre[:, :2], axis=0).T)
    same = mesh.feature_ids[::2][1:] == mesh.feature_ids[::2][:-1]
    assert steps[same].max() <= CELL + 1e-9


def test_width_at_straight_parts_and_miters():
    mesh = ribbons([ZIGZAG], [7.5], "ground", None, None, dem(), TR)
    pairs = mesh.positions.reshape(-1, 2, 3)
    width = np.hypot(*(pairs[:, 0, :2] - pairs[:, 1, :2]).T)
    corner = np.array([[X0 + 300, Y0 + 150], [X0 + 350, Y0 + 400]])
    centre = pairs[:, :, :2].mean(axis=1)
    at_corner = (np.hypot(*(centre[:, None] - corner[None]).T) < 1e-6).any(axis=0)
    assert at_corner.sum() == 2
    np.testing.assert_allclose(width[~at_corner], 7.5, rtol=1e-9)
    # at a joint the miter is longer: width / cos(half the turn)
    d = np.diff(np.asarray(ZIGZAG.coords), axis=0)
    ang = np.arctan2(d[:, 1], d[:, 0])
    np.testing.assert_allclose(width[at_corner], 7.5 / np.cos(np.diff(ang) / 2), rtol=1e-9)


def test_bridge_deck_and_tunnel():
    report = MeshReport()
    mesh = ribbons([STRAIGHT, ZIGZAG, STRAIGHT], [10.0, 8.0, 10.0], ["bridge", "tunnel", "bridge"],
                   [12.0, np.nan, np.nan], [np.nan, 15.0, np.nan], dem(), TR,
                   deck_thickness=1.5, default_deck_height=6.0, report=report)
    assert report.notes == [(2, "bridge without deck_height: 6.0 m")]
    for f, deck in ((0, 12.0), (2, 6.0)):
        bridge = mesh.select([f])
        assert check_closed(bridge) == []  # a closed slab
        p = bridge.positions
        along = p[:, :2] - [X0 + 100, Y0 + 700]
        direction = np.array([600.0, 50.0]) / np.hypot(600.0, 50.0)
        base = plane(*(np.array([X0 + 100, Y0 + 700]) + np.outer(along @ direction,
                                                                  direction)).T)
        dz = p[:, 2] - base  # deck top or deck bottom above the ground at the centreline
        assert np.allclose(np.sort(np.unique(np.round(dz, 9))), [deck - 1.5, deck])
        assert np.all(bridge.surface_types == SURFACE_CODES["bridge_deck"])
        vol = feature_volumes(bridge)[0]
        assert vol == pytest.approx(10.0 * STRAIGHT.length * 1.5, rel=1e-9)
        under = bridge.face_normals()[:, 2] < -0.99
        assert under.sum() > 0
    tunnel = mesh.select([1])
    p = tunnel.positions
    centre = p.reshape(-1, 2, 3).mean(axis=1)
    np.testing.assert_allclose(centre[:, 2], plane(centre[:, 0], centre[:, 1]) - 15.0, atol=1e-6)
    assert np.all(p[0::2, 2] == p[1::2, 2])  # level across
    assert np.all(tunnel.surface_types == SURFACE_CODES["tunnel"])


def test_rail_multilines_and_missing_dem():
    grid = dem()
    hole = grid.copy()
    hole[100:110, :] = np.nan  # a band without elevations
    line = LineString([(X0 + 200, Y0 + 300), (X0 + 200, Y0 + 700)])
    outside = LineString([(X0 - 500, Y0), (X0 - 400, Y0)])
    multi = MultiLineString([[(X0 + 50, Y0 + 50), (X0 + 90, Y0 + 60)],
                             [(X0 + 400, Y0 + 50), (X0 + 420, Y0 + 90)]])
    report = MeshReport()
    mesh = ribbons([line, outside, multi], 4.0, None, None, None, hole, TR, kind="rail",
                   offset=0.1, report=report)
    assert report.skipped == [(1, "no DEM elevation under the line")]
    assert np.all(mesh.surface_types == SURFACE_CODES["rail"])
    # the plane is linear along the line, so interpolating across the band is exact
    p = mesh.positions
    np.testing.assert_allclose(p[:, 2], plane(p[:, 0], p[:, 1]) + 0.1, atol=1e-6)
    tri_feature = mesh.feature_ids[mesh.indices[:, 0]]
    assert set(tri_feature) == {0, 2}
    with pytest.raises(DataError):
        ribbons([outside], 4.0, None, None, None, grid, TR)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown level"):
        ribbons([STRAIGHT], 4.0, ["viaduct"], None, None, dem(), TR)
    report = MeshReport()
    mesh = ribbons([STRAIGHT, shapely.Point(X0, Y0)], [np.nan, 3.0], None, None, None, dem(),
                   TR, report=report)
    assert [i for i, _ in report.skipped] == [0, 1]
    assert mesh.n_vertices == 0
