"""Caps of many polygons triangulated in one pass give the triangles of one earcut call per
polygon, bit for bit (the tiles' bytes must not change)."""

from __future__ import annotations

import types

import numpy as np
import shapely

from gis.mesh import _poly
from gis.mesh.report import MeshReport


def _one_by_one(r: _poly.Rings, polys: np.ndarray) -> np.ndarray:
    out = []
    for p in polys:
        v0, v1 = r.poly_vertex_range(p)
        rr = slice(r.poly_ring_start[p], r.poly_ring_start[p] + r.poly_ring_count[p])
        out.append(_poly.earcut_rings(r.xy[v0:v1], r.ring_count[rr]) + v0)
    return np.concatenate(out)


def test_batched_earcut_equals_one_call_per_polygon():
    rng = np.random.default_rng(7)
    polys = []
    for i in range(400):  # star-shaped polygons on a grid, some with a hole, far from the origin
        k = rng.integers(5, 12)
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        pts = np.c_[np.cos(ang), np.sin(ang)] * rng.integers(3, 8, k)[:, None]
        g = shapely.Polygon(np.round(pts, 1) + [250000.0 + 20 * i, 2650000.0])
        if not g.is_valid or g.area <= 0:
            continue
        if i % 5 == 0:
            g = g.difference(shapely.box(250000.0 + 20 * i - 0.5, 2649999.5,
                                         250000.0 + 20 * i + 0.5, 2650000.5))
        polys.append(g)
    r = _poly.polygon_rings(np.array(polys, dtype=object), MeshReport())
    assert r.poly_has_holes().any()
    every = np.arange(r.n_polys)
    assert np.array_equal(_poly._earcut_polys(r, every), _one_by_one(r, every))


def test_batched_earcut_puts_back_skipped_vertices_the_same_way(monkeypatch):
    # a rectangle with a vertex on its bottom edge, and a square; the fake earcut leaves the
    # edge vertex out, as earcut does with collinear points
    xy = np.array([[0, 0], [1, 0], [2, 0], [2, 1], [0, 1],
                   [5, 5], [7, 5], [7, 7], [5, 7]], float)
    r = _poly.Rings(xy, np.array([0, 5]), np.array([5, 4]), np.array([0, 1]), np.array([0, 1]),
                    np.array([1, 1]), np.array([0, 1]), np.array([None, None], dtype=object))
    real = _poly.earcut.triangulate_float64

    def skipping(local, ends):
        if len(local) == 5:
            return np.array([0, 2, 3, 0, 3, 4], np.uint32)
        return real(local, ends)

    monkeypatch.setattr(_poly, "earcut", types.SimpleNamespace(triangulate_float64=skipping))
    batched = _poly._earcut_polys(r, np.arange(2))
    assert np.array_equal(batched, _one_by_one(r, np.arange(2)))
    assert 1 in batched.ravel()  # the edge vertex is used
