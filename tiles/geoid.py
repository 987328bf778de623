"""Geoid undulation N (ellipsoidal height = orthometric height + N), for placing base-map
content, whose heights are orthometric, on the WGS84/GRS80 ellipsoid that 3D Tiles uses.

Model: EGM96 (NGA), bilinear on two grids made from the 5' grid of the ``egm96`` wheel (see
scripts/make-geoid-subset.py):

* **East Asia** (115-150 E, 18-47 N: Taiwan and Japan): the 5' grid itself,
  ``tiles/data/egm96_east_asia.npz`` (int16 cm). Bilinear on the 5' grid is within 0.06 m of the
  full model.
* **Elsewhere**: every third node (15', worldwide), ``tiles/data/egm96_global_15.npz`` (int16 cm
  as second differences, 0.7 MB). Measured against the full 5' grid at all of its 9.3 million
  nodes, bilinear on the 15' grid is within 0.074 m over 95% of the globe's area, 0.17 m over
  99% and 0.35 m over 99.9%, RMS 0.039 m (area-weighted); the largest error is 1.06 m, on the
  steep geoid of Hawaii (19.58 N, 155.58 W). Add the 5' grid's own 0.06 m for the distance to
  the full model.

EGM96 itself is within about 0.5-1 m of the national geoids (TWHGEO2014 in Taiwan, GSIGEO2011
in Japan, NLGEO2018 in the Netherlands), which we do not have. In Taiwan N is 15-25 m, in the
Netherlands about 43 m: ignoring it would sink everything by that much.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np

MODEL = "EGM96 (NGA), bilinear: 5' grid in East Asia, 15' elsewhere"
#: Largest difference of the 15' grid (bilinear) from the 5' grid, metres (measured worldwide).
GLOBAL_MAX_ERROR_M = 1.07
#: 99.9% of the globe's area is within this of the 5' grid with the 15' grid, metres.
GLOBAL_P999_ERROR_M = 0.35


class OutsideGeoidGrid(ValueError):
    """A point lies outside the geoid grid asked for (``undulation(..., worldwide=False)``)."""


@cache
def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The East Asia 5' grid: (latitudes, longitudes, undulation m (lat, lon))."""
    with resources.files("tiles").joinpath("data", "egm96_east_asia.npz").open("rb") as fh:
        d = np.load(fh)
        return d["latitudes"], d["longitudes"], d["undulation_cm"].astype(np.float64) / 100.0


@cache
def _global_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The worldwide 15' grid: (latitudes -90..90, longitudes -180..180, undulation m)."""
    with resources.files("tiles").joinpath("data", "egm96_global_15.npz").open("rb") as fh:
        d = np.load(fh)
        cm = np.cumsum(d["undulation_cm_d2"].astype(np.int32), axis=0)
        np.cumsum(cm, axis=1, out=cm)
        return d["latitudes"], d["longitudes"], cm.astype(np.float64) / 100.0


def _inside(lats: np.ndarray, lons: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    return (lat >= lats[0]) & (lat <= lats[-1]) & (lon >= lons[0]) & (lon <= lons[-1])


def _bilinear(grid: tuple[np.ndarray, np.ndarray, np.ndarray], lat: np.ndarray,
              lon: np.ndarray) -> np.ndarray:
    lats, lons, values = grid
    fi = (lat - lats[0]) / (lats[1] - lats[0])
    fj = (lon - lons[0]) / (lons[1] - lons[0])
    i0 = np.clip(np.floor(fi).astype(np.intp), 0, len(lats) - 2)
    j0 = np.clip(np.floor(fj).astype(np.intp), 0, len(lons) - 2)
    di, dj = fi - i0, fj - j0
    return (values[i0, j0] * (1 - di) * (1 - dj) + values[i0, j0 + 1] * (1 - di) * dj
            + values[i0 + 1, j0] * di * (1 - dj) + values[i0 + 1, j0 + 1] * di * dj)


def grid_covering(lat, lon) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid :func:`undulation` uses for all the given points: the East Asia 5' grid when it
    holds them all, else the worldwide 15' grid ((latitudes, longitudes, values m))."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0
    ea = _grid()
    if lat.size and _inside(ea[0], ea[1], lat, lon).all():
        return ea
    return _global_grid()


def undulation(lat, lon, *, worldwide: bool = True) -> np.ndarray:
    """Geoid undulation in metres at WGS84 latitude/longitude (degrees), bilinear: on the 5'
    grid inside East Asia, on the 15' grid elsewhere (see the module docstring for accuracy).

    Args:
        lat, lon: Degrees (any shape; longitudes wrap).
        worldwide: False: East Asia only (raises outside it).

    Raises:
        OutsideGeoidGrid: ``worldwide=False`` and a point lies outside 115-150 E, 18-47 N, or a
            latitude beyond +-90.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    lon_w = (lon + 180.0) % 360.0 - 180.0
    lon_w = np.where(lon == 180.0, 180.0, lon_w)
    ea = _grid()
    inside = _inside(ea[0], ea[1], lat, lon_w)
    if lat.size and not inside.all():
        if not worldwide:
            raise OutsideGeoidGrid(f"geoid grid covers {ea[1][0]:g}-{ea[1][-1]:g} E, "
                                   f"{ea[0][0]:g}-{ea[0][-1]:g} N only")
        if np.nanmax(np.abs(lat)) > 90.0:
            raise OutsideGeoidGrid("latitude beyond +-90 degrees")
    if inside.all():
        return _bilinear(ea, lat, lon_w)
    out = _bilinear(_global_grid(), lat, lon_w)
    if inside.any():
        out = np.where(inside, _bilinear(ea, lat, lon_w), out)
    return out
