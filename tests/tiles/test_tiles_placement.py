"""Placement: store CRS + orthometric height -> ECEF, local ENU frames, float32 precision."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer

from tiles.geoid import undulation
from tiles.placement import FLOAT32_SAFE_EXTENT, Y_UP_TO_Z_UP, LocalFrame, PrecisionError, \
    _to_lonlat, check_float32, column_major, enu_frame, geodetic, to_ecef


def pyproj_ecef(lon, lat, h):
    t = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    return np.array(t.transform(lon, lat, h))


def test_known_point_on_central_meridian():
    # EPSG:3826 (TWD97 / TM2 zone 121): x = 250000 is the central meridian 121 E.
    x, y, H = 250000.0, 2650000.0, 100.0
    lon, lat, h = geodetic(x, y, H, "EPSG:3826")
    assert float(lon) == pytest.approx(121.0, abs=1e-12)
    lat_pyproj = Transformer.from_crs("EPSG:3826", "EPSG:4326", always_xy=True).transform(x, y)[1]
    assert float(lat) == pytest.approx(lat_pyproj, abs=1e-12)
    n = float(undulation(lat, lon))
    assert 18.0 < n < 27.0  # EGM96 in central Taiwan: N = 24.46 m here
    assert n == pytest.approx(24.46, abs=0.05)
    assert float(h) == pytest.approx(100.0 + n, abs=1e-9)
    X, Y, Z = to_ecef(x, y, H, "EPSG:3826")
    ours = np.array([float(X), float(Y), float(Z)])
    ref = pyproj_ecef(121.0, lat_pyproj, 100.0 + n)
    assert np.abs(ours - ref).max() < 0.01
    # The undulation is applied: without it the point sits N metres lower along the normal.
    no_geoid = pyproj_ecef(121.0, lat_pyproj, 100.0)
    assert np.linalg.norm(ours) - np.linalg.norm(no_geoid) == pytest.approx(n, abs=0.01)
    assert np.linalg.norm(ours - no_geoid) == pytest.approx(n, abs=1e-6)


def test_closed_form_matches_pyproj_over_taiwan():
    rng = np.random.default_rng(3)
    x = rng.uniform(150000, 350000, 500)
    y = rng.uniform(2450000, 2800000, 500)
    H = rng.uniform(-10, 3900, 500)
    lon, lat, h = geodetic(x, y, H, "EPSG:3826")
    ours = np.stack(to_ecef(x, y, H, "EPSG:3826"))
    ref = pyproj_ecef(lon, lat, h)
    assert np.abs(ours - ref).max() < 1e-3  # WGS84 closed form vs pyproj: sub-millimetre


def test_transformer_cached_per_crs():
    assert _to_lonlat("EPSG:3826") is _to_lonlat("EPSG:3826")


def test_enu_frame_axes():
    m = enu_frame(121.0, 24.0, 50.0)
    r = m[:3, :3]
    assert np.allclose(r.T @ r, np.eye(3), atol=1e-15)
    assert np.linalg.det(r) == pytest.approx(1.0)
    up = r[:, 2]
    origin = m[:3, 3]
    # Up is the ellipsoid normal: moving 1 m up changes the height by 1 m.
    t = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
    assert t.transform(*(origin + up))[2] == pytest.approx(51.0, abs=1e-6)
    east = r[:, 0]
    assert t.transform(*(origin + 100 * east))[0] > 121.0
    north = r[:, 1]
    assert t.transform(*(origin + 100 * north))[1] > 24.0
    cm = column_major(m)
    assert cm[12:15] == pytest.approx(list(origin))  # translation is the last column


def test_gltf_axes_round_trip():
    f = LocalFrame(121.0, 24.0, 30.0)
    # The client applies y-up -> z-up after the node matrix: Y_UP_TO_Z_UP @ node == ENU @ Y2Z.
    assert np.allclose(Y_UP_TO_Z_UP @ f.node_matrix(), f.gltf_to_ecef(), atol=1e-6)
    enu = f.enu_to_ecef
    p = enu @ np.array([10.0, 20.0, 5.0, 1.0])  # 10 m east, 20 m north, 5 m up
    g = f.from_ecef(*p[:3])
    assert g == pytest.approx([10.0, 5.0, -20.0], abs=1e-6)  # glTF (E, U, -N)
    back = f.gltf_to_ecef() @ np.append(g, 1.0)
    assert back[:3] == pytest.approx(p[:3], abs=1e-6)


def test_float32_guard():
    near = np.array([[FLOAT32_SAFE_EXTENT * 0.99, -5000.0, 12.345678]])
    assert check_float32(near) < 0.001
    with pytest.raises(PrecisionError):
        check_float32(np.array([[60000.123, 0.0, 0.0]]))
