"""Straight skeleton: known skeletons, and the hip roof against the distance-to-boundary field.

Independent references: for a convex polygon the wavefront reaches a point when its distance to
the boundary has been travelled, so the hip roof height is ``eave + k * distance to the nearest
edge`` with one constant k (shapely computes the distances); for any simple polygon the mitred
wavefront is never behind the disc-shaped Euclidean offset, so roof <= eave + k * distance.
Faces must tile the polygon (checked with shapely unions, not with the module's own check).
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon

from gis.mesh import SURFACE_CODES, lod2_from_attributes, straight_skeleton
from gis.mesh._poly import polygon_rings
from gis.mesh.report import MeshReport
from gis.mesh.skeleton import TOP_OUTER


def rings_of(poly: Polygon) -> tuple[np.ndarray, list[int]]:
    """Ring arrays as the roof builder prepares them (oriented, cleaned)."""
    r = polygon_rings([poly], MeshReport())
    return r.xy, r.ring_count.tolist()


def regular(n: int, radius: float = 10.0, centre=(0.0, 0.0)) -> Polygon:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False) + 0.1
    return Polygon(np.c_[centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a)])


def segments(sk) -> set[tuple[tuple[float, float], tuple[float, float]]]:
    """Skeleton arcs as sorted pairs of rounded points."""
    out = set()
    for a, b in sk.arcs:
        p = tuple(np.round(sk.nodes[a], 9) + 0.0)
        q = tuple(np.round(sk.nodes[b], 9) + 0.0)
        out.add(tuple(sorted([p, q])))
    return out


def test_rectangle_is_ridge_plus_four_hips():
    sk = straight_skeleton(*rings_of(shapely.box(0, 0, 10, 4)))
    assert sk.ok
    assert segments(sk) == {((0.0, 0.0), (2.0, 2.0)), ((0.0, 4.0), (2.0, 2.0)),
                            ((8.0, 2.0), (10.0, 0.0)), ((8.0, 2.0), (10.0, 4.0)),
                            ((2.0, 2.0), (8.0, 2.0))}
    assert sk.times[sk.face_nodes].max() == pytest.approx(2.0)


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8, 12, 32])
def test_regular_polygon_arcs_meet_at_the_centre(n):
    poly = regular(n, centre=(250000.0, 2742000.0))
    sk = straight_skeleton(*rings_of(poly))
    assert sk.ok
    inner = np.setdiff1d(np.unique(sk.arcs), np.arange(n))
    centre = np.array([250000.0, 2742000.0])
    # every arc runs from a polygon vertex to the centre
    assert len(sk.arcs) == n
    np.testing.assert_allclose(sk.nodes[inner], centre[None].repeat(len(inner), 0), atol=1e-7)
    apothem = 10.0 * np.cos(np.pi / n)
    np.testing.assert_allclose(sk.times[inner], apothem, rtol=1e-9)


def _roof_z_at(mesh, points: np.ndarray) -> np.ndarray:
    """Height of the roof surface above each point (barycentric in the containing triangle)."""
    roof = mesh.indices[mesh.surface_types[mesh.indices[:, 0]] == SURFACE_CODES["RoofSurface"]]
    p = mesh.positions[roof]
    out = np.full(len(points), np.nan)
    a, b, c = p[:, 0, :2], p[:, 1, :2], p[:, 2, :2]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    good = np.abs(det) > 1e-12
    for k, q in enumerate(points):
        u = ((q[0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (q[1] - a[:, 1])) / \
            np.where(good, det, 1.0)
        v = ((b[:, 0] - a[:, 0]) * (q[1] - a[:, 1]) - (q[0] - a[:, 0]) * (b[:, 1] - a[:, 1])) / \
            np.where(good, det, 1.0)
        inside = good & (u >= -1e-12) & (v >= -1e-12) & (u + v <= 1 + 1e-12)
        t = np.flatnonzero(inside)[0]
        out[k] = p[t, 0, 2] + u[t] * (p[t, 1, 2] - p[t, 0, 2]) + v[t] * (p[t, 2, 2] - p[t, 0, 2])
    return out


def _inside_points(poly: Polygon, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = poly.bounds
    pts = np.c_[rng.uniform(x0, x1, 20 * n), rng.uniform(y0, y1, 20 * n)]
    return pts[shapely.contains_xy(poly, pts[:, 0], pts[:, 1])][:n]


@pytest.mark.parametrize("seed", range(6))
def test_hip_roof_is_the_distance_field_on_convex_polygons(seed):
    rng = np.random.default_rng(seed)
    poly = shapely.MultiPoint(rng.uniform(0, 30, (12, 2))).convex_hull
    poly = shapely.affinity.translate(poly, 250000.0, 2742000.0)
    eave, ridge = 20.0, 26.0
    mesh = lod2_from_attributes([poly], 0.0, eave, ridge, ["hip"])
    pts = _inside_points(poly, 200, seed)
    z = _roof_z_at(mesh, pts)
    dist = shapely.distance(shapely.points(pts), poly.exterior)
    k = (z - eave) / dist
    # one slope everywhere, and its highest point at the ridge height
    np.testing.assert_allclose(k, np.median(k), rtol=1e-8)
    ridge_dist = (ridge - eave) / np.median(k)
    centre = shapely.maximum_inscribed_circle(poly, tolerance=1e-6)
    assert ridge_dist == pytest.approx(centre.length, abs=2e-6)


STAR_A = np.arange(10) * 0.2 * np.pi
STAR_R = np.where(np.arange(10) % 2, 4.0, 10.0)


@pytest.mark.parametrize("name", ["L", "U", "star"])
def test_hip_roof_never_above_the_distance_field(name):
    shapes = {
        "L": Polygon([(0, 0), (10, 0), (10, 4), (4, 4), (4, 10), (0, 10)]),
        "U": Polygon([(0, 0), (9, 0), (9, 9), (6, 9), (6, 3), (3, 3), (3, 9), (0, 9)]),
        "star": Polygon(np.c_[STAR_R * np.cos(STAR_A), STAR_R * np.sin(STAR_A)]),
    }
    poly = shapes[name]
    sk = straight_skeleton(*rings_of(poly))
    assert sk.ok
    tmax = sk.times[sk.face_nodes].max()
    mesh = lod2_from_attributes([poly], 0.0, 5.0, 5.0 + tmax, ["hip"])  # slope 1
    pts = _inside_points(poly, 300, 1)
    z = _roof_z_at(mesh, pts)
    dist = shapely.distance(shapely.points(pts), poly.exterior)
    assert np.all(z - 5.0 <= dist + 1e-9)
    # and equal where the nearest boundary feature is an edge seen straight on (most points)
    assert np.mean(np.abs(z - 5.0 - dist) < 1e-9) > 0.5


def _face_polygons(sk) -> list[Polygon]:
    return [Polygon(sk.nodes[f]) for f in sk.faces()]


def test_faces_tile_random_polygons():
    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(80):
        k = int(rng.integers(5, 30))
        a = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(3, 10, k)
        poly = Polygon(np.c_[r * np.cos(a), r * np.sin(a)])  # star-shaped, so simple
        if not poly.is_valid:  # repeated angles only
            continue
        sk = straight_skeleton(*rings_of(poly))
        assert sk.ok
        faces = _face_polygons(sk)
        assert all(f.is_valid and f.area > 0 for f in faces)
        assert sum(f.area for f in faces) == pytest.approx(poly.area, rel=1e-9)
        assert shapely.union_all(faces).symmetric_difference(poly).area < 1e-9 * poly.area
        checked += 1
    assert checked >= 75


def test_polygon_with_a_hole():
    poly = shapely.box(0, 0, 20, 12).difference(shapely.box(4, 4, 9, 8))
    sk = straight_skeleton(*rings_of(poly))
    assert sk.ok
    faces = _face_polygons(sk)
    assert len(faces) == 8  # one face per edge: 4 outer + 4 hole edges
    assert sum(f.area for f in faces) == pytest.approx(poly.area, rel=1e-9)
    assert shapely.union_all(faces).symmetric_difference(poly).area < 1e-9


def test_stopped_wavefront_leaves_a_top_face():
    poly = Polygon([(0, 0), (10, 0), (10, 4), (4, 4), (4, 10), (0, 10)])
    sk = straight_skeleton(*rings_of(poly), t_stop=1.0)
    assert sk.ok
    top = [f for f, e in zip(sk.faces(), sk.face_edge, strict=True) if e == TOP_OUTER]
    assert len(top) == 1
    # the top face is the polygon offset inward by 1 (mitred: the L shrinks to an L)
    expected = Polygon([(1, 1), (9, 1), (9, 3), (3, 3), (3, 9), (1, 9)])
    assert Polygon(sk.nodes[top[0]]).symmetric_difference(expected).area < 1e-9
    assert np.allclose(sk.times[top[0]], 1.0)
