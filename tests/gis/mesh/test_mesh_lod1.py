"""LOD1 prisms, building heights and DEM sampling.

Expected values are analytic (areas x heights, planes sampled bilinearly) or computed with
shapely on the input, never by the builder itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from shapely.geometry import MultiPolygon, Polygon
from tests_helpers import buildings_frame

from gis.errors import DataError
from gis.mesh import SURFACE_CODES, Mesh, MeshReport, building_heights, extrude, sample_dem
from gis.mesh.checks import check_closed, feature_volumes

X0, Y0 = 250000.0, 2742000.0  # TWD97 TM2 (EPSG:3826) magnitudes


def star(n: int = 7, r_out: float = 10.0, r_in: float = 4.0) -> Polygon:
    """A concave star around (X0, Y0)."""
    a = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
    r = np.where(np.arange(2 * n) % 2, r_in, r_out)
    return Polygon(np.c_[X0 + r * np.cos(a), Y0 + r * np.sin(a)])


SHAPES = {
    "rectangle": shapely.box(X0, Y0, X0 + 12.5, Y0 + 7.25),
    "rotated": shapely.affinity.rotate(shapely.box(X0, Y0, X0 + 20, Y0 + 8), 33.3),
    "L": Polygon([(X0, Y0), (X0 + 10, Y0), (X0 + 10, Y0 + 4), (X0 + 4, Y0 + 4), (X0 + 4, Y0 + 10),
                  (X0, Y0 + 10)]),
    "holes": shapely.box(X0, Y0, X0 + 30, Y0 + 20).difference(
        shapely.box(X0 + 5, Y0 + 5, X0 + 12, Y0 + 15)).difference(
        shapely.box(X0 + 18, Y0 + 4, X0 + 25, Y0 + 9)),
    "multi": MultiPolygon([shapely.box(X0, Y0, X0 + 5, Y0 + 5),
                           shapely.box(X0 + 10, Y0, X0 + 18, Y0 + 3)]),
    "star": star(),
    "collinear": Polygon([(X0, Y0), (X0 + 5, Y0), (X0 + 10, Y0), (X0 + 10, Y0 + 5),
                          (X0 + 10, Y0 + 10), (X0, Y0 + 10)]),
    "clockwise": Polygon([(X0, Y0), (X0, Y0 + 6), (X0 + 9, Y0 + 6), (X0 + 9, Y0)]),
}


def _by_type(mesh: Mesh, name: str) -> np.ndarray:
    """Triangles (indices) whose first vertex has the surface type."""
    return mesh.indices[mesh.surface_types[mesh.indices[:, 0]] == SURFACE_CODES[name]]


def test_prisms_are_closed_with_exact_volumes():
    names = list(SHAPES)
    geoms = [SHAPES[k] for k in names]
    base = np.arange(len(geoms)) * 3.5 + 10.0
    top = base + np.linspace(4.0, 40.0, len(geoms))
    mesh = extrude(geoms, base, top)
    assert check_closed(mesh) == []
    vol = feature_volumes(mesh)
    for i, g in enumerate(geoms):
        assert vol[i] == pytest.approx(g.area * (top[i] - base[i]), rel=1e-9), names[i]


def test_roof_floor_and_walls():
    geoms = list(SHAPES.values())
    base, top = 12.0, 31.5
    mesh = extrude(geoms, base, top)
    roof, floor, wall = (_by_type(mesh, k) for k in ("RoofSurface", "GroundSurface",
                                                      "WallSurface"))
    assert len(roof) + len(floor) + len(wall) == mesh.n_triangles
    assert np.all(mesh.positions[roof, 2] == top)
    assert np.all(mesh.positions[floor, 2] == base)
    normals = Mesh(mesh.positions, wall, mesh.feature_ids).face_normals()
    # every wall triangle is vertical (horizontal normal) and has an area
    assert np.abs(normals[:, 2]).max() < 1e-12
    assert np.all(np.linalg.norm(normals, axis=1) > 0.999)
    up = Mesh(mesh.positions, roof, mesh.feature_ids).face_normals()
    down = Mesh(mesh.positions, floor, mesh.feature_ids).face_normals()
    assert np.allclose(up, [0, 0, 1]) and np.allclose(down, [0, 0, -1])
    # roof and floor cover the footprint area exactly (no overlap, no gap)
    for tris in (roof, floor):
        p = mesh.positions[tris]
        cross = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])[:, 2]
        area = np.bincount(mesh.feature_ids[tris[:, 0]], np.abs(cross) / 2, len(geoms))
        np.testing.assert_allclose(area, [g.area for g in geoms], rtol=1e-9)


def test_wall_normals_point_away_from_the_rectangle():
    g = SHAPES["rotated"]
    mesh = extrude([g], 0.0, 5.0)
    wall = _by_type(mesh, "WallSurface")
    normals = Mesh(mesh.positions, wall, mesh.feature_ids).face_normals()
    centre = np.array(g.centroid.coords[0])
    mid = mesh.positions[wall].mean(axis=1)[:, :2] - centre
    assert np.all((normals[:, :2] * mid).sum(axis=1) > 0)


def test_feature_ids_follow_rows():
    geoms = [shapely.box(X0 + 100 * i, Y0, X0 + 100 * i + 10, Y0 + 10) for i in range(5)]
    mesh = extrude(geoms, 0.0, np.arange(1, 6) * 3.0)
    for i in range(5):
        sel = mesh.positions[mesh.feature_ids == i]
        assert sel[:, 0].min() == X0 + 100 * i and sel[:, 0].max() == X0 + 100 * i + 10
        assert sel[:, 2].max() == 3.0 * (i + 1)


def test_bow_tie_is_repaired_and_empty_reported():
    bow = Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])
    report = MeshReport()
    mesh = extrude([bow, Polygon(), shapely.box(0, 0, 1, 1), None], 0.0, 3.0, report=report)
    assert [i for i, _ in report.notes] == [0]
    assert "make_valid" in report.notes[0][1]
    assert sorted(i for i, _ in report.skipped) == [1, 3]
    vol = feature_volumes(mesh)
    assert vol[0] == pytest.approx(shapely.make_valid(bow).area * 3.0, rel=1e-12)
    assert vol[2] == pytest.approx(3.0)
    # the two triangles of the repaired bow-tie touch at (1, 1): closed, but the vertical edge
    # there is shared by four walls, so only the non-manifold check accepts it
    assert check_closed(mesh, manifold=False) == []
    assert check_closed(mesh) == ["feature 0: an edge used twice in the same direction"]


def test_skipped_features_raise_without_report():
    with pytest.raises(DataError, match="could not be meshed"):
        extrude([shapely.box(0, 0, 1, 1), Polygon()], 0.0, 3.0)


def test_zero_area_and_bad_heights_are_reported():
    sliver = Polygon([(0, 0), (1, 1), (2, 2), (0, 0)])
    report = MeshReport()
    mesh = extrude([sliver, shapely.box(0, 0, 1, 1), shapely.box(0, 0, 1, 1)],
                   [0.0, 0.0, np.nan], [3.0, 0.0, 5.0], report=report)
    assert sorted(i for i, _ in report.skipped) == [0, 1, 2]
    assert mesh.n_vertices == 0


def test_many_random_rectangles():
    rng = np.random.default_rng(7)
    n = 300
    cx, cy = rng.uniform(X0, X0 + 5000, n), rng.uniform(Y0, Y0 + 5000, n)
    geoms = [shapely.affinity.rotate(shapely.box(x, y, x + w, y + h), a, origin="centroid")
             for x, y, w, h, a in zip(cx, cy, rng.uniform(4, 40, n), rng.uniform(4, 40, n),
                                      rng.uniform(0, 180, n), strict=True)]
    top = rng.uniform(5, 80, n)
    mesh = extrude(geoms, 0.0, top)
    assert check_closed(mesh) == []
    np.testing.assert_allclose(feature_volumes(mesh), [g.area for g in geoms] * top, rtol=1e-9)


# --------------------------------------------------------------------------- heights


def test_building_heights_from_height():
    frame = buildings_frame(5)
    h = building_heights(frame)
    ground = frame["ground_elevation"].to_numpy()
    np.testing.assert_allclose(h.base_z, ground)
    np.testing.assert_allclose(h.top_z, ground + frame["height"].to_numpy())
    # flat roofs have their eaves at the top; pitched ones roof_height below it
    roof_h = np.where(frame["roof_type"] == "flat", 0.0, frame["roof_height"])
    np.testing.assert_allclose(h.eave_z, h.top_z - np.minimum(roof_h, frame["height"]))


def test_building_heights_from_storeys_and_ground_fill():
    frame = buildings_frame(5)
    frame["height"] = np.nan
    frame.loc[1, "storey_height"] = np.nan
    frame.loc[2, "ground_elevation"] = np.nan
    h = building_heights(frame, ground=[1.0, 2.0, 3.0, 4.0, 5.0])
    storeys = frame["storeys"].to_numpy()
    sh = np.array([3.0, 3.0, 3.0, 3.0, 3.0])  # row 1 falls back to the 3.0 m default
    pitched = (frame["roof_type"] != "flat").to_numpy()
    rel = storeys * sh + np.where(pitched, frame["roof_height"], 0.0)
    ground = frame["ground_elevation"].to_numpy().copy()
    ground[2] = 3.0
    np.testing.assert_allclose(h.top_z, ground + rel)
    np.testing.assert_allclose(h.eave_z, ground + storeys * sh)


def test_building_heights_missing_everything_is_nan():
    frame = buildings_frame(2)
    frame["height"] = np.nan
    frame["storeys"] = None
    frame = frame.drop(columns=["ground_elevation"])
    h = building_heights(frame)
    assert np.isnan(h.top_z).all() and np.isnan(h.base_z).all()


# --------------------------------------------------------------------------- DEM


def _plane_dem(transform: Affine, shape=(40, 50), a=0.3, b=-0.2, c=50.0):
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    x = transform.c + transform.a * cols + transform.b * rows
    y = transform.f + transform.d * cols + transform.e * rows
    return a * x + b * y + c


def test_sample_dem_reproduces_a_plane():
    tr = Affine(5.0, 0.0, X0, 0.0, -5.0, Y0 + 200)
    dem = _plane_dem(tr)
    rng = np.random.default_rng(3)
    # inside the cell-centre grid bilinear interpolation of a plane is exact
    x = rng.uniform(X0 + 2.5, X0 + 247.5, 500)
    y = rng.uniform(Y0 + 2.5, Y0 + 197.5, 500)
    np.testing.assert_allclose(sample_dem(dem, tr, x, y), 0.3 * x - 0.2 * y + 50.0, atol=1e-6)
    # at a cell centre, the cell value
    assert sample_dem(dem, tr, X0 + 7.5, Y0 + 200 - 12.5) == pytest.approx(dem[2, 1])


def test_sample_dem_outside_and_nodata():
    tr = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 10.0)
    dem = np.arange(100, dtype=float).reshape(10, 10)
    dem[5, 5] = -9999.0
    out = sample_dem(dem, tr, [-0.1, 10.1, 5.5, 5.5, 0.2], [5.0, 5.0, 4.5, 4.9, 9.9], nodata=-9999)
    assert np.isnan(out[0]) and np.isnan(out[1])  # outside the raster
    assert np.isnan(out[2]) and np.isnan(out[3])  # weights on the nodata cell
    assert out[4] == dem[0, 0]  # half a cell from the edge: nearest centre row/column


def test_feature_volumes_match_the_mesh_contract():
    geoms = [SHAPES["L"], SHAPES["holes"], SHAPES["star"]]
    mesh = extrude(geoms, [0.0, 5.0, 10.0], [7.0, 9.0, 30.0])
    vol = feature_volumes(mesh)
    for i in range(3):
        assert vol[i] == pytest.approx(mesh.select([i]).signed_volume(), rel=1e-12)
