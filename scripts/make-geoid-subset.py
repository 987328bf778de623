"""Cut the East Asia part out of the EGM96 5' grid shipped in the `egm96` wheel (0.3.0, MIT;
EGM96 itself is NGA public-domain data) into tiles/data/egm96_east_asia.npz.

We do not depend on `egm96` at run time: its releases with data need numpy >= 2.5, which
py3dtiles and numba do not allow yet. Run once, by hand, with the wheel unpacked:

    python scripts/make-geoid-subset.py path/to/egm96/data/egm96-5.npz
"""

import sys

import numpy as np

WEST, EAST, SOUTH, NORTH = 115.0, 150.0, 18.0, 47.0  # Taiwan and Japan, with margin

src = np.load(sys.argv[1])
cm = np.cumsum(src["undulation_d2"].astype(np.int32), axis=0)
np.cumsum(cm, axis=1, out=cm)
lat, lon = src["latitudes"], src["longitudes"]
i = (lat >= SOUTH - 1e-9) & (lat <= NORTH + 1e-9)
j = (lon >= WEST - 1e-9) & (lon <= EAST + 1e-9)
sub = cm[np.ix_(i, j)]
assert np.abs(sub).max() < 32767
np.savez_compressed("tiles/data/egm96_east_asia.npz", latitudes=lat[i], longitudes=lon[j],
                    undulation_cm=sub.astype(np.int16))
print(sub.shape, sub.min() / 100, sub.max() / 100)
