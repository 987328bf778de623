"""The glb writer's shortcuts give exactly the numbers of the plain computation: vertices that share
an (x, y) are projected once, and normals use a hand-written cross product."""

from __future__ import annotations

import numpy as np

from tiles.glb import placed, vertex_normals
from tiles.placement import geodetic, geodetic_to_ecef


def _prism_like(n: int, seed: int) -> np.ndarray:
    """Vertices as builders make them: every footprint corner repeated at several heights."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform([248000.0, 2650000.0], [252000.0, 2654000.0], (n, 2))
    z = rng.uniform(0, 300, (n, 6))
    return np.c_[np.repeat(xy, 6, axis=0), z.ravel()]


def test_placed_equals_geodetic_then_ecef_bit_for_bit():
    for p in (_prism_like(500, 1), np.random.default_rng(2).uniform(
            [248000.0, 2650000.0, 0], [252000.0, 2654000.0, 100], (300, 3))):  # all distinct
        lon_u, lat_u, h, ecef = placed(p, "EPSG:3826")
        lon, lat, h_ref = geodetic(p[:, 0], p[:, 1], p[:, 2], "EPSG:3826")
        assert np.array_equal(h, h_ref)
        assert lon_u.min() == lon.min() and lon_u.max() == lon.max()
        assert lat_u.min() == lat.min() and lat_u.max() == lat.max()
        for a, b in zip(ecef, geodetic_to_ecef(lon, lat, h_ref), strict=True):
            assert np.array_equal(a, b)


def test_vertex_normals_cross_product_is_numpys():
    rng = np.random.default_rng(3)
    pos = rng.normal(size=(400, 3)) * 50
    tri = rng.integers(0, 400, (700, 3))
    p = pos[tri]
    face = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    acc = np.stack([np.bincount(tri.ravel(), weights=np.repeat(face[:, c], 3), minlength=400)
                    for c in range(3)], axis=1)
    length = np.linalg.norm(acc, axis=1, keepdims=True)
    ref = np.divide(acc, length, out=np.zeros_like(acc), where=length > 0)
    ref[length[:, 0] == 0] = (0.0, 1.0, 0.0)
    assert np.array_equal(vertex_normals(pos, tri), ref)
