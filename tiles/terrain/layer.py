"""``layer.json``: the TileJSON-like metadata CesiumJS's ``CesiumTerrainProvider`` reads first.

Keys CesiumJS uses: ``format`` ("quantized-mesh-1.0"), ``tiles`` (URL templates relative to the
layer.json), ``scheme`` ("tms": y from the south), ``projection`` ("EPSG:4326"), ``available``
(per level, a list of inclusive ``{startX, startY, endX, endY}`` rectangles of tiles that exist;
tiles outside them are not requested and CesiumJS upsamples the parent instead), ``extensions``
and ``minzoom``/``maxzoom``. Our additions sit under ``ngis`` (ignored by CesiumJS): the per-level
error bound, the geoid model and the storage encoding.
"""

from __future__ import annotations

from typing import Any

from tiles.geoid import MODEL as GEOID_MODEL
from tiles.terrain.qmesh import EXTENSIONS


def layer_json(available: list[tuple[int, int, int, int]], *, bounds: tuple[float, ...],
               max_error: dict[int, float], name: str = "terrain", version: str = "1.0.0",
               attribution: str = "", encoding: str = "gzip",
               extensions: tuple[str, ...] = EXTENSIONS) -> dict[str, Any]:
    """The layer.json object.

    Args:
        available: Per level z (list index), the inclusive tile range (x0, y0, x1, y1).
        bounds: (west, south, east, north) of the data in degrees.
        max_error: Level -> largest vertical error (m) of its meshes against the DEM samples.
        encoding: How the ``.terrain`` files are stored ("gzip" or "identity").
    """
    return {
        "tilejson": "2.1.0",
        "name": name,
        "version": version,
        "format": "quantized-mesh-1.0",
        "scheme": "tms",
        "projection": "EPSG:4326",
        "tiles": ["{z}/{x}/{y}.terrain?v={version}"],
        "minzoom": 0,
        "maxzoom": len(available) - 1,
        "bounds": [-180.0, -90.0, 180.0, 90.0],
        "available": [[{"startX": x0, "startY": y0, "endX": x1, "endY": y1}]
                      for x0, y0, x1, y1 in available],
        "extensions": list(extensions),
        "attribution": attribution,
        "ngis": {"dataBounds": [round(b, 9) for b in bounds],
                 "maxError": {str(z): e for z, e in sorted(max_error.items())},
                 "heights": "ellipsoidal (WGS84) = DEM orthometric + geoid undulation",
                 "geoid": GEOID_MODEL, "contentEncoding": encoding},
    }
