"""Geoid undulation N (ellipsoidal height = orthometric height + N), for placing base-map
content, whose heights are orthometric, on the WGS84/GRS80 ellipsoid that 3D Tiles uses.

Model: EGM96 on its 5' grid (NGA), bilinear, cut to East Asia (115-150 E, 18-47 N: Taiwan and
Japan) in ``tiles/data/egm96_east_asia.npz`` (see scripts/make-geoid-subset.py). Bilinear on the
5' grid is within 0.06 m of the full model; EGM96 itself is within about 0.5-1 m of the local
geoids (TWHGEO2014 in Taiwan, GSIGEO2011 in Japan), which we do not have. In Taiwan N is 15-25 m:
ignoring it would sink everything by that much.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np

MODEL = "EGM96 5' grid (NGA), bilinear"


class OutsideGeoidGrid(ValueError):
    """A point lies outside the geoid grid we ship."""


@cache
def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with resources.files("tiles").joinpath("data", "egm96_east_asia.npz").open("rb") as fh:
        d = np.load(fh)
        return d["latitudes"], d["longitudes"], d["undulation_cm"].astype(np.float64) / 100.0


def undulation(lat, lon) -> np.ndarray:
    """Geoid undulation in metres at WGS84 latitude/longitude (degrees), bilinear.

    Raises:
        OutsideGeoidGrid: A point lies outside 115-150 E, 18-47 N.
    """
    lats, lons, values = _grid()
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    if lat.size and (lat.min() < lats[0] or lat.max() > lats[-1] or lon.min() < lons[0]
                     or lon.max() > lons[-1]):
        raise OutsideGeoidGrid(f"geoid grid covers {lons[0]:g}-{lons[-1]:g} E, "
                               f"{lats[0]:g}-{lats[-1]:g} N only")
    fi = (lat - lats[0]) / (lats[1] - lats[0])
    fj = (lon - lons[0]) / (lons[1] - lons[0])
    i0 = np.clip(np.floor(fi).astype(np.intp), 0, len(lats) - 2)
    j0 = np.clip(np.floor(fj).astype(np.intp), 0, len(lons) - 2)
    di, dj = fi - i0, fj - j0
    return (values[i0, j0] * (1 - di) * (1 - dj) + values[i0, j0 + 1] * (1 - di) * dj
            + values[i0 + 1, j0] * di * (1 - dj) + values[i0 + 1, j0 + 1] * di * dj)
