"""Placing store-CRS geometry on the globe: store CRS -> geodetic -> ECEF -> a tile's local frame.

3D Tiles positions are Earth-centred, Earth-fixed (ECEF, EPSG:4978) metres and bounding regions are
geodetic (EPSG:4979: longitude, latitude in radians, height in metres above the WGS84 ellipsoid)
(3D Tiles 1.1, "Coordinate reference system"). The store keeps projected x, y with *orthometric*
heights, so placing a vertex takes three steps:

1. x, y in the store CRS -> longitude, latitude (pyproj, ``always_xy``, one cached Transformer per
   CRS; for EPSG:3826 TWD97 the datum step to WGS84 is the null transformation, TWD97 being
   ITRF94/GRS80 based).
2. ellipsoidal h = orthometric H + geoid undulation N (EGM96, :mod:`tiles.geoid`).
3. geodetic -> ECEF in closed form on the WGS84 ellipsoid. GRS80 (TWD97, JGD2011) and WGS84 share
   the semi-major axis and differ in flattening by 1.6e-11, which moves points by < 0.1 mm: one
   ellipsoid serves both. The tests compare with pyproj's EPSG:4979 -> EPSG:4978.

Tile content is stored in a local east-north-up (ENU) frame at the tile centre, in glTF's y-up axes:
glTF (x, y, z) = (E, U, -N). CesiumJS (and the 3D Tiles spec, "glTF transforms" / "y-up to z-up")
rotates glTF content by +90 degrees about X, (x, y, z) -> (x, -z, y), which maps (E, U, -N) back to
(E, N, U); the ENU -> ECEF matrix then places it. We put that placement into the glb's root node
(see :meth:`LocalFrame.node_matrix`) rather than into tile ``transform`` s, because implicit tiles
cannot carry per-tile transforms and a self-placed glb is also correct on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from pyproj import CRS, Transformer

from tiles.geoid import undulation

#: WGS84 semi-major axis (m) and flattening (EPSG:7030).
WGS84_A = 6378137.0
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)

#: glTF y-up -> 3D Tiles z-up: rotation of +90 degrees about X (3D Tiles 1.1, "y-up to z-up").
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0, 0.0],
                         [0.0, 0.0, -1.0, 0.0],
                         [0.0, 1.0, 0.0, 0.0],
                         [0.0, 0.0, 0.0, 1.0]])
Z_UP_TO_Y_UP = Y_UP_TO_Z_UP.T

#: Largest coordinate (m) that float32 stores within 0.5 mm per axis (|x| < 2^14: ulp/2 = 2^-10 m
#: is 0.98 mm below 2^15 and 0.49 mm below 2^14); 3 axes then stay under 0.85 mm.
FLOAT32_SAFE_EXTENT = 16384.0


class PrecisionError(ValueError):
    """Local coordinates too large for float32 at the required accuracy."""


@cache
def _to_lonlat(crs: str) -> Transformer:
    return Transformer.from_crs(CRS.from_user_input(crs), CRS.from_epsg(4326), always_xy=True)


def geodetic(x, y, H, crs: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Store-CRS points as WGS84 longitude, latitude (degrees) and ellipsoidal height (m).

    Args:
        x, y: Coordinates in ``crs`` (any shape, broadcast together).
        H: Orthometric heights (m).
        crs: The store CRS (anything pyproj accepts, e.g. ``"EPSG:3826"``).

    Returns:
        lon, lat in degrees and h = H + N(EGM96) in metres, float64.
    """
    x, y, H = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64),
                                  np.asarray(H, np.float64))
    lon, lat = _to_lonlat(crs).transform(x, y)
    lon = np.asarray(lon, np.float64)
    lat = np.asarray(lat, np.float64)
    return lon, lat, H + undulation(lat, lon)


def geodetic_to_ecef(lon, lat, h) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 geodetic (degrees, m) to ECEF (m), closed form.

    Args:
        lon, lat: Degrees.
        h: Ellipsoidal height (m).

    Returns:
        X, Y, Z float64 arrays.
    """
    lam = np.radians(np.asarray(lon, np.float64))
    phi = np.radians(np.asarray(lat, np.float64))
    h = np.asarray(h, np.float64)
    sphi = np.sin(phi)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sphi * sphi)
    X = (n + h) * np.cos(phi) * np.cos(lam)
    Y = (n + h) * np.cos(phi) * np.sin(lam)
    Z = (n * (1.0 - WGS84_E2) + h) * sphi
    return X, Y, Z


def to_ecef(x, y, H, crs: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Store-CRS points with orthometric heights to ECEF (EPSG:4978) metres.

    Args:
        x, y: Coordinates in ``crs``.
        H: Orthometric heights (m).
        crs: The store CRS.

    Returns:
        X, Y, Z float64 arrays.

    Raises:
        tiles.geoid.OutsideGeoidGrid: A point lies outside the geoid grid we ship.
    """
    return geodetic_to_ecef(*geodetic(x, y, H, crs))


def enu_rotation(lon: float, lat: float) -> np.ndarray:
    """3x3 rotation whose columns are the east, north and up unit vectors in ECEF."""
    lam, phi = np.radians(lon), np.radians(lat)
    sl, cl, sp, cp = np.sin(lam), np.cos(lam), np.sin(phi), np.cos(phi)
    return np.array([[-sl, -sp * cl, cp * cl],
                     [cl, -sp * sl, cp * sl],
                     [0.0, cp, sp]])


def enu_frame(lon: float, lat: float, h: float) -> np.ndarray:
    """East-north-up to ECEF transform at a point (CesiumJS: eastNorthUpToFixedFrame).

    Args:
        lon, lat: Degrees (WGS84).
        h: Ellipsoidal height (m).

    Returns:
        4x4 float64 matrix acting on column vectors (row-major numpy); ``column_major(m)`` gives the
        16-number list that tileset ``transform`` and glTF ``matrix`` expect.
    """
    m = np.eye(4)
    m[:3, :3] = enu_rotation(lon, lat)
    m[:3, 3] = np.array(geodetic_to_ecef(lon, lat, h), dtype=np.float64)
    return m


def column_major(m: np.ndarray) -> list[float]:
    """A 4x4 matrix as the column-major list of 16 numbers glTF and 3D Tiles use."""
    return [float(v) for v in np.asarray(m, np.float64).T.reshape(-1)]


@dataclass(frozen=True)
class LocalFrame:
    """A tile's local frame: ENU at ``origin`` (lon, lat in degrees, h in metres), glTF y-up axes.

    Attributes:
        lon, lat, h: Origin (WGS84 degrees, ellipsoidal metres).
    """

    lon: float
    lat: float
    h: float

    @classmethod
    def around(cls, lon: np.ndarray, lat: np.ndarray, h: np.ndarray) -> LocalFrame:
        """The frame at the centre of the geodetic bounding box of some points (degrees, m)."""
        return cls(float((lon.min() + lon.max()) / 2), float((lat.min() + lat.max()) / 2),
                   float((h.min() + h.max()) / 2))

    @property
    def enu_to_ecef(self) -> np.ndarray:
        """4x4 ENU -> ECEF matrix."""
        return enu_frame(self.lon, self.lat, self.h)

    def node_matrix(self) -> np.ndarray:
        """glTF root-node matrix taking local glTF coordinates (E, U, -N) to ECEF *in glTF's y-up
        axes*, so that the client's y-up -> z-up rotation yields true ECEF:
        ``Y_UP_TO_Z_UP @ node = enu_to_ecef @ Y_UP_TO_Z_UP``."""
        return Z_UP_TO_Y_UP @ self.enu_to_ecef @ Y_UP_TO_Z_UP

    def gltf_to_ecef(self) -> np.ndarray:
        """4x4 matrix from local glTF coordinates to ECEF (what a 3D Tiles client computes)."""
        return self.enu_to_ecef @ Y_UP_TO_Z_UP

    def from_ecef(self, X, Y, Z) -> np.ndarray:
        """ECEF points as local glTF coordinates (n, 3) float64: (E, U, -N)."""
        m = self.enu_to_ecef
        d = np.stack([np.asarray(X) - m[0, 3], np.asarray(Y) - m[1, 3],
                      np.asarray(Z) - m[2, 3]], axis=-1)
        enu = d @ m[:3, :3]  # R^T d, row-wise
        return np.stack([enu[..., 0], enu[..., 2], -enu[..., 1]], axis=-1)


def float32_error(local: np.ndarray) -> float:
    """Largest distance (m) a point moves when its local coordinates are stored as float32."""
    local = np.asarray(local, np.float64)
    if local.size == 0:
        return 0.0
    d = local - local.astype(np.float32).astype(np.float64)
    return float(np.sqrt((d * d).sum(axis=-1)).max())


def check_float32(local: np.ndarray, tolerance: float = 0.001) -> float:
    """Fail unless float32 storage of local coordinates keeps every point within ``tolerance``.

    Args:
        local: (n, 3) local coordinates in metres.
        tolerance: Largest allowed displacement (m), 1 mm by default.

    Returns:
        The largest displacement (m).

    Raises:
        PrecisionError: A point would move by more than ``tolerance``: its content spans too far
            from the tile centre (keep tiles under ~30 km or split very long features).
    """
    err = float32_error(local)
    if err > tolerance:
        raise PrecisionError(f"float32 local coordinates move points by {err * 1000:.2f} mm "
                             f"(> {tolerance * 1000:g} mm): content reaches "
                             f"{float(np.abs(local).max()):.0f} m from the tile centre")
    return err
