"""3D polygon (CityGML boundary surface) triangulation.

Reference areas are computed here with an independent Newell implementation (a plain Python loop
over the shapely coordinates), never with the module's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon

from gis.mesh import SURFACE_CODES, MeshReport, triangulate_surfaces
from gis.mesh.checks import check_closed, feature_volumes


def newell_area(poly: Polygon) -> float:
    """Area of a planar 3D polygon with holes: |Newell(exterior)| / 2 - sum over holes."""

    def ring_vector(coords) -> np.ndarray:
        c = np.asarray(coords)[:-1]
        n = np.zeros(3)
        for i in range(len(c)):
            p, q = c[i], c[(i + 1) % len(c)]
            n += [(p[1] - q[1]) * (p[2] + q[2]), (p[2] - q[2]) * (p[0] + q[0]),
                  (p[0] - q[0]) * (p[1] + q[1])]
        return n

    area = np.linalg.norm(ring_vector(poly.exterior.coords)) / 2
    return area - sum(np.linalg.norm(ring_vector(h.coords)) / 2 for h in poly.interiors)


def triangle_areas(mesh) -> np.ndarray:
    p = mesh.positions[mesh.indices]
    return np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1) / 2


def box_faces(x0, y0, z0, x1, y1, z1) -> list[Polygon]:
    """The six faces of a box, each counter-clockwise seen from outside (CityGML)."""
    return [Polygon([(x0, y0, z0), (x0, y1, z0), (x1, y1, z0), (x1, y0, z0)]),
            Polygon([(x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1)]),
            Polygon([(x0, y0, z0), (x1, y0, z0), (x1, y0, z1), (x0, y0, z1)]),
            Polygon([(x0, y1, z0), (x0, y1, z1), (x1, y1, z1), (x1, y1, z0)]),
            Polygon([(x0, y0, z0), (x0, y0, z1), (x0, y1, z1), (x0, y1, z0)]),
            Polygon([(x1, y0, z0), (x1, y1, z0), (x1, y1, z1), (x1, y0, z1)])]


def test_box_is_closed_with_the_right_area_and_volume():
    x0, y0 = 458875.0, 5438350.0
    faces = box_faces(x0, y0, 112.0, x0 + 10, y0 + 5, 115.5)
    kinds = ["GroundSurface", "RoofSurface"] + ["WallSurface"] * 4
    mesh = triangulate_surfaces(faces, [3] * 6, kinds)
    assert check_closed(mesh) == []
    assert feature_volumes(mesh)[3] == pytest.approx(10 * 5 * 3.5, rel=1e-12)
    assert triangle_areas(mesh).sum() == pytest.approx(sum(newell_area(f) for f in faces),
                                                       rel=1e-12)
    assert set(mesh.surface_types) == {SURFACE_CODES[k] for k in kinds}
    assert np.all(mesh.feature_ids == 3)


def test_orientation_is_kept():
    ccw = Polygon([(0, 0, 1), (4, 0, 1), (4, 3, 1), (0, 3, 1)])
    cw = Polygon(list(ccw.exterior.coords)[::-1])
    mesh = triangulate_surfaces([ccw, cw], [0, 1], "RoofSurface")
    n = mesh.face_normals()
    tri_feature = mesh.feature_ids[mesh.indices[:, 0]]
    assert np.allclose(n[tri_feature == 0], [0, 0, 1])
    assert np.allclose(n[tri_feature == 1], [0, 0, -1])


def test_wall_with_a_window_keeps_the_hole():
    wall = Polygon([(0, 0, 0), (10, 0, 0), (10, 0, 5), (0, 0, 5)],
                   [[(2, 0, 1), (2, 0, 3), (4, 0, 3), (4, 0, 1)]])
    mesh = triangulate_surfaces([wall], [0], "WallSurface")
    assert triangle_areas(mesh).sum() == pytest.approx(50 - 4, rel=1e-12)
    assert np.allclose(mesh.face_normals(), [0, -1, 0])
    # no triangle covers the window's centre (x 3, z 2)
    p = mesh.positions[mesh.indices][:, :, [0, 2]]
    tris = shapely.polygons(np.concatenate([p, p[:, :1]], axis=1))
    assert not shapely.contains_xy(tris, 3.0, 2.0).any()


def test_tilted_polygons_with_holes_and_multipolygons():
    rng = np.random.default_rng(5)
    polys, expected = [], []
    for _ in range(20):
        flat = shapely.box(0, 0, 20, 10).difference(shapely.box(3, 3, 7, 6)).difference(
            shapely.Point(14, 5).buffer(2, 8))
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        shift = rng.uniform(-1e5, 1e5, 3)

        def lift(coords):
            c = np.c_[np.asarray(coords), np.zeros(len(coords))]
            return c @ q.T + shift

        p3 = Polygon(lift(flat.exterior.coords), [lift(h.coords) for h in flat.interiors])
        polys.append(MultiPolygon([p3, Polygon(lift([(30, 0), (35, 0), (35, 4), (30, 4)]))]))
        expected.append(newell_area(p3) + 20.0)
    mesh = triangulate_surfaces(polys, np.arange(20), "WallSurface")
    tri_feature = mesh.feature_ids[mesh.indices[:, 0]]
    np.testing.assert_allclose(np.bincount(tri_feature, triangle_areas(mesh)), expected,
                               rtol=1e-9)
    assert np.allclose(np.array(expected), flat.area + 20.0, rtol=1e-9)


def test_degenerate_polygons_are_counted():
    report = MeshReport()
    good = Polygon([(0, 0, 0), (1, 0, 0), (1, 1, 0)])
    line = Polygon([(0, 0, 0), (1, 1, 1), (2, 2, 2)])
    point = Polygon([(0, 0, 0), (0, 0, 0), (0, 0, 0)])
    mesh = triangulate_surfaces([good, line, None, point], [0, 1, 2, 3], "unknown",
                                report=report)
    assert report.degenerate == 2
    assert mesh.n_triangles == 1 and set(mesh.feature_ids) == {0}


def _real(shared_data, name: str):
    from gis.io.citygml import read_citygml_buildings

    layer = read_citygml_buildings(shared_data(*name.split("/")))
    return layer.extras["surfaces"]


@pytest.mark.shared_data
def test_sig3d_building_surfaces(shared_data):
    surfaces = _real(shared_data, "citygml-sig3d-examples/Building_LOD2-EPSG25832_CityGML2.gml")
    fid, _ = pd.factorize(surfaces["building_id"])
    report = MeshReport()
    mesh = triangulate_surfaces(surfaces.geometry.values, fid, surfaces["surface_type"].values,
                                report=report)
    expected = sum(newell_area(p) for g in surfaces.geometry for p in g.geoms)
    assert triangle_areas(mesh).sum() == pytest.approx(expected, rel=1e-12)
    assert report.degenerate == 0
    # this LOD2 building is a closed solid with outward normals
    assert check_closed(mesh) == []
    roof = mesh.surface_types[mesh.indices[:, 0]] == SURFACE_CODES["RoofSurface"]
    assert np.all(mesh.face_normals()[roof, 2] > 0)


@pytest.mark.shared_data
def test_plateau_surfaces_area(shared_data):
    surfaces = _real(shared_data,
                     "plateau-citygml-lod2/citygml3-encoding/53394517_bldg_6697_2_op_CityGML2.gml")
    surfaces = surfaces[surfaces["lod"] == 2].to_crs("EPSG:6677")  # JGD2011 / zone IX, metres
    fid, _ = pd.factorize(surfaces["building_id"])
    mesh = triangulate_surfaces(surfaces.geometry.values, fid, surfaces["surface_type"].values)
    expected = sum(newell_area(p) for g in surfaces.geometry for p in g.geoms)
    # real polygons are planar to a few mm, so the triangle areas equal the plane areas closely
    assert triangle_areas(mesh).sum() == pytest.approx(expected, rel=1e-6)
