"""Pipe tubes: exact polygon-prism volumes, closed bends, depth and invert placement, colours.

A tube with an n-gon cross-section of circumradius r has the section area (n / 2) r^2 sin(2 pi / n);
with mitred joints (rings in the bisector planes, through the centreline) each segment is a prism
cut by planes through its axis, so the volume is that area times the centreline length exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from shapely.geometry import LineString, MultiLineString

from gis.mesh import SURFACE_CODES, MeshReport, tubes
from gis.mesh.checks import check_closed, feature_volumes

X0, Y0 = 250000.0, 2742000.0
GROUND = 35.0
TR = Affine(2.0, 0.0, X0, 0.0, -2.0, Y0 + 400.0)
FLAT = np.full((200, 200), GROUND)


def section(n: int, r: float) -> float:
    return n / 2 * r * r * np.sin(2 * np.pi / n)


@pytest.mark.parametrize("n", [3, 8, 12, 24])
def test_straight_tube_volume(n):
    line = LineString([(X0 + 10, Y0 + 10), (X0 + 90, Y0 + 70)])
    mesh = tubes([line], [800.0], [1.2], FLAT, TR, segments=n)
    assert check_closed(mesh) == []
    assert feature_volumes(mesh)[0] == pytest.approx(section(n, 0.4) * line.length, rel=1e-9)
    assert np.all(mesh.surface_types == SURFACE_CODES["pipe"])


def test_bent_tube_is_closed_without_gaps():
    bend = LineString([(0, 0, 5), (30, 0, 5), (30, 25, 6), (10, 45, 4), (10, 46, 4), (40, 60, 8)])
    mesh = tubes([bend], [500.0], None, None, None, segments=16)
    assert check_closed(mesh) == []
    length = np.linalg.norm(np.diff(np.asarray(bend.coords), axis=0), axis=1).sum()
    assert feature_volumes(mesh)[0] == pytest.approx(section(16, 0.25) * length, rel=1e-9)
    # lateral faces are the prisms' planar quads: the two triangles of each are coplanar
    n_lateral = mesh.n_triangles - 2 * 16  # two caps of 16 triangles come last
    n = mesh.face_normals()[:n_lateral].reshape(-1, 2, 3)
    assert np.abs((n[:, 0] * n[:, 1]).sum(axis=1) - 1).max() < 1e-9


def test_depth_places_the_top_of_the_pipe():
    line = LineString([(X0 + 20, Y0 + 20), (X0 + 120, Y0 + 20), (X0 + 120, Y0 + 90)])
    mesh = tubes([line], [600.0], [1.5], FLAT, TR, segments=12)
    z = mesh.positions[:, 2]
    # 12 sides: one vertex straight up and one straight down on every ring
    assert z.max() == pytest.approx(GROUND - 1.5, abs=1e-9)
    assert z.min() == pytest.approx(GROUND - 1.5 - 0.6, abs=1e-9)
    # densified to the DEM cell: every ring centre follows the ground
    assert len(mesh.positions) > 12 * (line.length / 2.0)


def test_depth_on_a_sloping_ground():
    rows, cols = np.mgrid[0:200, 0:200] + 0.5
    ground = 0.1 * (TR.c + TR.a * cols) - 25000.0 + 0.0 * rows
    line = LineString([(X0 + 20, Y0 + 20), (X0 + 320, Y0 + 20)])
    mesh = tubes([line], [1000.0], [2.0], ground, TR, segments=8)
    assert check_closed(mesh) == []
    rings = mesh.positions[:len(mesh.positions) - 2 * 9].reshape(-1, 8, 3)
    centre = rings.mean(axis=1)
    np.testing.assert_allclose(centre[:, 2], 0.1 * centre[:, 0] - 25000.0 - 2.0 - 0.5,
                               atol=1e-6)


def test_inverts_along_a_multiline():
    multi = MultiLineString([[(0, 0), (30, 0)], [(30, 5), (30, 25)]])
    mesh = tubes([multi], [400.0], None, None, None, inverts=[[10.0, 9.0]], segments=8)
    assert check_closed(mesh) == []
    rings = mesh.positions[:(2 + 2) * 8].reshape(-1, 8, 3)  # the parts' end rings, in order
    centre = rings.mean(axis=1)
    np.testing.assert_allclose(centre[:, 2], [10.2, 10.2 - 30 / 50, 10.2 - 30 / 50, 9.2],
                               atol=1e-9)


def test_line_z_and_colours_and_reports():
    line3d = LineString([(0, 0, -3), (10, 0, -3.5)])
    report = MeshReport()
    mesh = tubes([line3d, line3d, line3d, LineString([(0, 0), (5, 0)])],
                 [300.0, 300.0, np.nan, 300.0], [np.nan, np.nan, 1.0, np.nan], None, None,
                 segments=6, utilities=["water", "gas", "water", "oil"], report=report)
    assert sorted(report.skipped) == [(2, "no usable diameter (nan mm)"),
                                      (3, "no depth, no inverts and no z on the line")]
    colours = {int(f): tuple(mesh.colors[mesh.feature_ids == f][0]) for f in (0, 1)}
    assert colours == {0: (0x1f, 0x78, 0xff, 255), 1: (0xff, 0xd7, 0x00, 255)}
    centre_z = mesh.positions[mesh.feature_ids == 0][:12].reshape(2, 6, 3).mean(axis=1)[:, 2]
    np.testing.assert_allclose(centre_z, [-3, -3.5], atol=1e-12)
    with pytest.raises(ValueError, match="need a DEM"):
        tubes([LineString([(0, 0), (5, 0)])], [300.0], [1.0], None, None)
