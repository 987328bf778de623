"""Make the geoid grids of tiles/geoid.py from the EGM96 5' grid shipped in the `egm96` wheel
(0.3.0, MIT; EGM96 itself is NGA public-domain data):

* tiles/data/egm96_east_asia.npz: the 5' grid cut to 115-150 E, 18-47 N (Taiwan and Japan),
  int16 centimetres;
* tiles/data/egm96_global_15.npz: every third node of the 5' grid (15', 721 x 1441, worldwide),
  stored as second differences (along longitude, then latitude) of int16 centimetres, as the
  wheel stores its own grid: the smooth undulation compresses to about 0.7 MB that way;
* the accuracy of bilinear interpolation on the 15' grid against the full 5' grid at every 5'
  node (area-weighted), which tiles/geoid.py's docstring quotes.

We do not depend on `egm96` at run time: its releases with data need numpy >= 2.5, which
py3dtiles and numba do not allow yet. Run once, by hand, with the wheel unpacked:

    python scripts/make-geoid-subset.py path/to/egm96/data/egm96-5.npz
"""

import sys

import numpy as np

WEST, EAST, SOUTH, NORTH = 115.0, 150.0, 18.0, 47.0  # Taiwan and Japan, with margin
STEP = 3  # 5' -> 15'

src = np.load(sys.argv[1])
cm = np.cumsum(src["undulation_d2"].astype(np.int32), axis=0)
np.cumsum(cm, axis=1, out=cm)
lat, lon = src["latitudes"], src["longitudes"]
assert np.abs(cm).max() < 32767

i = (lat >= SOUTH - 1e-9) & (lat <= NORTH + 1e-9)
j = (lon >= WEST - 1e-9) & (lon <= EAST + 1e-9)
sub = cm[np.ix_(i, j)]
np.savez_compressed("tiles/data/egm96_east_asia.npz", latitudes=lat[i], longitudes=lon[j],
                    undulation_cm=sub.astype(np.int16))
print("east asia", sub.shape, sub.min() / 100, sub.max() / 100)

coarse = cm[::STEP, ::STEP]
glat, glon = lat[::STEP], lon[::STEP]
assert glat[-1] == 90.0 and glon[-1] == 180.0
d2 = np.diff(np.diff(coarse, axis=1, prepend=0), axis=0, prepend=0)
assert np.abs(d2).max() < 32767
back = np.cumsum(np.cumsum(d2, axis=0), axis=1)
assert np.array_equal(back, coarse)
np.savez_compressed("tiles/data/egm96_global_15.npz", latitudes=glat, longitudes=glon,
                    undulation_cm_d2=d2.astype(np.int16))

# accuracy of the 15' grid, bilinear, at every node of the 5' grid
fi = (lat - glat[0]) / (glat[1] - glat[0])
fj = (lon - glon[0]) / (glon[1] - glon[0])
i0 = np.clip(np.floor(fi).astype(np.intp), 0, len(glat) - 2)
j0 = np.clip(np.floor(fj).astype(np.intp), 0, len(glon) - 2)
di, dj = (fi - i0)[:, None], (fj - j0)[None, :]
v = coarse / 100.0
est = (v[i0][:, j0] * (1 - di) * (1 - dj) + v[i0][:, j0 + 1] * (1 - di) * dj
       + v[i0 + 1][:, j0] * di * (1 - dj) + v[i0 + 1][:, j0 + 1] * di * dj)
err = np.abs(est - cm / 100.0)
w = np.broadcast_to(np.cos(np.radians(lat))[:, None], err.shape).ravel()
order = np.argsort(err.ravel())
cum = np.cumsum(w[order]) / w.sum()
worst = np.unravel_index(err.argmax(), err.shape)
print(f"global 15': max {err.max():.3f} m at {lat[worst[0]]:.3f} N {lon[worst[1]]:.3f} E, "
      f"RMS {np.sqrt((err.ravel() ** 2 * w).sum() / w.sum()):.3f} m (area-weighted), "
      + ", ".join(f"{int(q * 1000) / 10}% of the area within "
                  f"{err.ravel()[order][np.searchsorted(cum, q)]:.3f} m"
                  for q in (0.95, 0.99, 0.999)))
