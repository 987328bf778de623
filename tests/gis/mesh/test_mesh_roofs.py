"""LOD2 roofs from attributes: closed solids, analytic volumes, slopes and directions.

Volumes of the roof over a W x L rectangle (L >= W), roof height Hr above the eaves:

* shed, gable: the mean height is Hr / 2, so W L Hr / 2.
* pyramid: W L Hr / 3.
* hip (equal slopes s = 2 Hr / W): integrate the height s t over the offset rectangles at
  distance t, whose perimeter is P(t) = 2 (L + W) - 8 t:
  s * int_0^{W/2} t P(t) dt = s ((L + W) W^2 / 4 - W^3 / 3) = Hr W (3 L - W) / 6
  (a square gives W^2 Hr / 3, the pyramid; L -> infinity gives W L Hr / 2, the gable).
* mansard (steep part up to the inset d with slope Hr / d, flat top at Hr):
  (Hr / d) ((L + W) d^2 - 8 d^3 / 3) + Hr (L - 2 d) (W - 2 d).
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon

from gis.mesh import SURFACE_CODES, Mesh, MeshReport, lod2_from_attributes
from gis.mesh.checks import check_closed, feature_volumes

X0, Y0 = 250000.0, 2742000.0
W, L, BASE, EAVE, RIDGE = 8.0, 14.0, 10.0, 16.5, 20.0
HE, HR = EAVE - BASE, RIDGE - EAVE


def rect(angle: float = 27.0) -> Polygon:
    return shapely.affinity.rotate(shapely.box(X0, Y0, X0 + L, Y0 + W), angle, origin="centroid")


STAR_A = np.arange(14) * np.pi / 7
STAR_R = np.where(np.arange(14) % 2, 5.0, 12.0)
SHAPES = {
    "L": Polygon([(0, 0), (10, 0), (10, 4), (4, 4), (4, 10), (0, 10)]),
    "U": Polygon([(0, 0), (9, 0), (9, 9), (6, 9), (6, 3), (3, 3), (3, 9), (0, 9)]),
    "T": Polygon([(0, 0), (9, 0), (9, 3), (6, 3), (6, 9), (3, 9), (3, 3), (0, 3)]),
    "star": Polygon(np.c_[STAR_R * np.cos(STAR_A), STAR_R * np.sin(STAR_A)]),
    "holed": shapely.box(0, 0, 24, 16).difference(shapely.box(5, 5, 11, 11)),
}


def roof_triangles(mesh: Mesh) -> np.ndarray:
    return mesh.indices[mesh.surface_types[mesh.indices[:, 0]] == SURFACE_CODES["RoofSurface"]]


def test_rectangle_volumes_are_analytic():
    kinds = ["flat", "shed", "gable", "pyramid", "hip"]
    mesh = lod2_from_attributes([rect()] * len(kinds), BASE, EAVE, RIDGE, kinds)
    assert check_closed(mesh) == []
    a = W * L
    expected = [a * HE, a * (HE + HR / 2), a * (HE + HR / 2), a * HE + a * HR / 3,
                a * HE + HR * W * (3 * L - W) / 6]
    np.testing.assert_allclose(feature_volumes(mesh), expected, rtol=1e-9)


def test_mansard_volume_is_analytic():
    inset = 0.35
    mesh = lod2_from_attributes([rect()], BASE, EAVE, RIDGE, ["mansard"], mansard_inset=inset)
    assert check_closed(mesh) == []
    d = inset * HR
    roof = (HR / d) * ((L + W) * d ** 2 - 8 * d ** 3 / 3) + HR * (L - 2 * d) * (W - 2 * d)
    assert feature_volumes(mesh)[0] == pytest.approx(W * L * HE + roof, rel=1e-9)
    # the top is flat at the ridge, the sides slope at atan(Hr / d)
    tri = roof_triangles(mesh)
    n = Mesh(mesh.positions, tri, mesh.feature_ids).face_normals()
    flat = n[:, 2] > 1 - 1e-12
    assert np.all(mesh.positions[tri[flat], 2] == RIDGE)
    assert np.allclose(np.degrees(np.arccos(n[~flat, 2])), np.degrees(np.arctan(HR / d)))
    # inside the footprint's prism
    p = mesh.positions
    assert shapely.contains_xy(rect().buffer(1e-6), p[:, 0], p[:, 1]).all()
    assert p[:, 2].min() == BASE and p[:, 2].max() == RIDGE


@pytest.mark.parametrize("name", ["L", "U", "holed"])
def test_mansard_on_concave_and_holed_footprints(name):
    poly = shapely.affinity.translate(SHAPES[name], X0, Y0)
    mesh = lod2_from_attributes([poly], BASE, EAVE, RIDGE, ["mansard"], mansard_inset=0.2)
    assert check_closed(mesh) == []
    p = mesh.positions
    assert shapely.contains_xy(poly.buffer(1e-6), p[:, 0], p[:, 1]).all()
    assert p[:, 2].min() == BASE and p[:, 2].max() == RIDGE
    # the flat top is the footprint offset inward by the inset (mitred offset = buffer here,
    # all corners being right angles)
    tri = roof_triangles(mesh)
    top = tri[np.all(mesh.positions[tri, 2] == RIDGE, axis=1)]
    q = mesh.positions[top]
    area = np.abs(np.cross(q[:, 1] - q[:, 0], q[:, 2] - q[:, 0])[:, 2]).sum() / 2
    inset = poly.buffer(-0.2 * HR, join_style="mitre")
    assert area == pytest.approx(inset.area, rel=1e-9)


@pytest.mark.parametrize("name", list(SHAPES))
def test_hip_on_any_polygon_has_equal_slopes(name):
    poly = shapely.affinity.translate(SHAPES[name], X0, Y0)
    mesh = lod2_from_attributes([poly], BASE, EAVE, RIDGE, ["hip"])
    assert check_closed(mesh) == []
    tri = roof_triangles(mesh)
    p = mesh.positions[tri]
    cross = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    area = np.linalg.norm(cross, axis=1)
    cos = cross[area > 1e-9, 2] / area[area > 1e-9]
    assert np.ptp(cos) < 1e-6
    assert 0 < cos.min() < 1
    assert mesh.positions[tri, 2].max() == RIDGE
    assert mesh.positions[tri, 2].min() == EAVE
    # roof, walls and floor together: the volume is above the prism to the eaves
    assert feature_volumes(mesh)[0] > poly.area * HE


@pytest.mark.parametrize("azimuth", [0.0, 30.0, 90.0, 135.0])
def test_gable_ridge_follows_the_azimuth(azimuth):
    square = shapely.box(X0, Y0, X0 + 20, Y0 + 20)
    mesh = lod2_from_attributes([square], BASE, EAVE, RIDGE, ["gable"], [azimuth])
    assert check_closed(mesh) == []
    if azimuth % 90 == 0:  # ridge parallel to two sides: a plain gable
        assert feature_volumes(mesh)[0] == pytest.approx(400 * (HE + HR / 2), rel=1e-9)
    tri = roof_triangles(mesh)
    top = np.unique(mesh.positions[tri][mesh.positions[tri, 2] == RIDGE][:, :2], axis=0)
    assert len(top) >= 2
    direction = top[np.argmax(np.hypot(*(top - top[0]).T))] - top[0]
    direction /= np.hypot(*direction)
    rad = np.radians(azimuth)
    assert abs(direction[0] * np.cos(rad) - direction[1] * np.sin(rad)) < 1e-9
    # the ridge crosses the middle of the footprint
    centre = np.array([X0 + 10, Y0 + 10])
    off = top - centre
    assert np.abs(off[:, 0] * np.cos(rad) - off[:, 1] * np.sin(rad)).max() < 1e-6


def test_gable_default_ridge_is_along_the_longest_side():
    mesh = lod2_from_attributes([rect(25.0)], BASE, EAVE, RIDGE, ["gable"])
    tri = roof_triangles(mesh)
    top = np.unique(mesh.positions[tri][mesh.positions[tri, 2] == RIDGE][:, :2], axis=0)
    d = top.max(axis=0) - top.min(axis=0)
    assert np.degrees(np.arctan2(d[1], d[0])) == pytest.approx(25.0, abs=1e-6)
    assert np.hypot(*d) == pytest.approx(L, rel=1e-9)
    # gable ends: the two short walls rise to the ridge
    wall = mesh.indices[mesh.surface_types[mesh.indices[:, 0]] == SURFACE_CODES["WallSurface"]]
    assert mesh.positions[wall, 2].max() == RIDGE


def test_shed_rises_to_the_right_of_the_azimuth():
    box = shapely.box(X0, Y0, X0 + 10, Y0 + 6)
    mesh = lod2_from_attributes([box, box], BASE, EAVE, RIDGE, ["shed", "shed"], [0.0, 90.0])
    assert check_closed(mesh) == []
    for f, axis, high in ((0, 0, X0 + 10), (1, 1, Y0)):
        p = mesh.positions[(mesh.feature_ids == f)]
        assert np.all(p[p[:, 2] == RIDGE][:, axis] == high)
        assert np.all(p[p[:, 2] == EAVE][:, axis] != high)


def test_dome_is_closed_inside_the_prism_and_close_to_a_hemisphere():
    radius = 10.0
    a = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    circle = Polygon(np.c_[X0 + radius * np.cos(a), Y0 + radius * np.sin(a)])
    mesh = lod2_from_attributes([circle, rect()], BASE, EAVE, [EAVE + radius, RIDGE],
                                ["dome", "dome"], dome_rings=24, dome_segments=96)
    assert check_closed(mesh) == []
    for f, g, top in ((0, circle, EAVE + radius), (1, rect(), RIDGE)):
        p = mesh.positions[mesh.feature_ids == f]
        assert shapely.contains_xy(g.buffer(1e-6), p[:, 0], p[:, 1]).all()
        assert p[:, 2].min() == BASE and p[:, 2].max() == top
    hemisphere = 2 / 3 * np.pi * radius ** 3
    roof = feature_volumes(mesh)[0] - circle.area * HE
    assert roof == pytest.approx(hemisphere, rel=0.01)


def test_pyramid_apex_and_fallbacks():
    holed = SHAPES["holed"]
    report = MeshReport()
    mesh = lod2_from_attributes([SHAPES["L"], holed, SHAPES["U"]], 0.0, 3.0, 6.0,
                                ["pyramid", "pyramid", "dome"], report=report)
    assert check_closed(mesh) == []
    apex = mesh.positions[(mesh.feature_ids == 0) & (mesh.positions[:, 2] == 6.0)]
    np.testing.assert_allclose(apex[:, :2], np.array(SHAPES["L"].centroid.coords)[[0] * len(apex)],
                               atol=1e-12)
    assert sorted(i for i, _ in report.notes) == [1, 2]
    assert all("built as hip" in text for _, text in report.notes)


def test_mixed_batch_multipolygons_and_flat_defaults():
    multi = MultiPolygon([shapely.box(0, 0, 6, 4), shapely.box(10, 0, 14, 9)])
    geoms = [multi, rect(), rect(), SHAPES["T"]]
    mesh = lod2_from_attributes(geoms, [0.0, BASE, BASE, 1.0], [5.0, EAVE, EAVE, 4.0],
                                [8.0, EAVE, RIDGE, 7.0], ["hip", "gable", None, "mansard"])
    assert check_closed(mesh) == []
    vol = feature_volumes(mesh)
    # a gable of height 0 and a missing roof type are flat
    assert vol[1] == pytest.approx(W * L * HE, rel=1e-9)
    assert vol[2] == pytest.approx(W * L * HE, rel=1e-9)
    # the two parts of the MultiPolygon are feature 0, each with its hip reaching the ridge
    p = mesh.positions[mesh.feature_ids == 0]
    assert p[p[:, 0] < 8][:, 2].max() == 8.0 and p[p[:, 0] > 8][:, 2].max() == 8.0
    floor = mesh.indices[mesh.surface_types[mesh.indices[:, 0]] == SURFACE_CODES["GroundSurface"]]
    assert np.allclose(Mesh(mesh.positions, floor, mesh.feature_ids).face_normals(), [0, 0, -1])


def test_bad_input():
    with pytest.raises(ValueError, match="unknown roof type"):
        lod2_from_attributes([rect()], 0.0, 3.0, 6.0, ["onion"])
    report = MeshReport()
    mesh = lod2_from_attributes([rect(), Polygon()], [0.0, 0.0], [3.0, 3.0], [0.0, 5.0],
                                ["hip", "hip"], report=report)
    assert sorted(i for i, _ in report.skipped) == [0, 1]
    assert mesh.n_vertices == 0


@pytest.mark.shared_data
def test_every_roof_type_on_real_footprints(shared_data):
    import geopandas as gpd

    path = shared_data("hsinchu-nycu-buildings", "guangfu_buildings_3d.geojson")
    geoms = gpd.read_file(path).to_crs("EPSG:3826").geometry.values
    n = len(geoms)
    for kind in ("shed", "gable", "hip", "pyramid", "mansard", "dome"):
        report = MeshReport()
        mesh = lod2_from_attributes(geoms, 0.0, 9.0, 13.0, [kind] * n, report=report)
        assert report.skipped == []
        assert not [t for _, t in report.notes if "skeleton" in t], kind
        assert check_closed(mesh) == [], kind
        assert len(np.unique(mesh.feature_ids)) == n
        z = mesh.positions[roof_triangles(mesh), 2]
        assert z.min() == 9.0 and z.max() == 13.0


def test_skeleton_fallbacks_are_reported(monkeypatch):
    import gis.mesh.roofs as roofs

    monkeypatch.setattr(roofs, "MAX_SKELETON_VERTICES", 3)
    report = MeshReport()
    mesh = lod2_from_attributes([rect(), SHAPES["holed"]], 0.0, 3.0, 6.0, ["hip", "mansard"],
                                report=report)
    assert check_closed(mesh) == []
    assert [i for i, _ in report.notes] == [0, 1]
    assert "pyramid roof" in report.notes[0][1] and "flat roof" in report.notes[1][1]
    vol = feature_volumes(mesh)
    assert vol[0] == pytest.approx(W * L * 3.0 + W * L * 3.0 / 3, rel=1e-9)
    assert vol[1] == pytest.approx(SHAPES["holed"].area * 3.0, rel=1e-9)
