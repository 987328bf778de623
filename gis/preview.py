"""A picture of a store: hillshaded DEM with buildings, roads, rail, pipes and crashes on top.

Written as PNG through GDAL (rasterio), so no plotting library is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.transform import from_bounds

import standards
from gis.errors import NgisError
from gis.maps import hillshade  # one hillshade for previews and hazard maps
from gis.store import open_store

# Layer drawing order and colours (RGB); pipelines use the pipeline standard's utility colours.
STYLE = {"roads": (250, 250, 250), "rail": (60, 60, 60), "buildings": (150, 60, 40),
         "crashes": (220, 0, 0)}


def _hex(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def render(store_uri: str, out: str | os.PathLike, *, width: int = 1600,
           dem_layer: str = "dem") -> Path:
    """Draw the store's layers into a PNG ``width`` pixels wide.

    Raises:
        NgisError: The store has no DEM and no vector layer to draw.
    """
    store = open_store(store_uri)
    layers = store.layers()
    frames = {name: store.read(name) for name in (*STYLE, "pipelines") if name in layers}
    dem = store.read_raster(dem_layer) if dem_layer in layers else None
    if dem is None and not frames:
        raise NgisError("nothing to draw: the store has no DEM and no known layer", path=store_uri)
    bounds = dem.bounds if dem is not None else _union_bounds(frames)
    w = width
    h = max(1, round(w * (bounds[3] - bounds[1]) / (bounds[2] - bounds[0])))
    transform = from_bounds(*bounds, w, h)
    rgb = np.full((3, h, w), 235, dtype=np.uint8)
    if dem is not None:
        z = _resample(dem, transform, (h, w))
        shade = hillshade(z, abs(transform.a))
        lo, hi = np.nanpercentile(z, [2, 98])
        t = np.clip((z - lo) / max(hi - lo, 1e-6), 0, 1)
        tint = np.stack([120 + 110 * t, 170 + 40 * t, 110 + 90 * t])  # green lowland -> pale upland
        base = tint * (0.35 + 0.65 * shade)
        rgb = np.where(np.isnan(z), 235, base).astype(np.uint8)
    for name in ("pipelines", *STYLE):
        frame = frames.get(name)
        if frame is None or frame.empty:
            continue
        if name == "pipelines":
            colours = standards.load("pipeline").meta["colours"]
            for utility, group in frame.groupby("utility"):
                _burn(rgb, group.geometry, transform, _hex(colours.get(utility, "#888888")))
        elif name == "crashes":
            _burn(rgb, frame.geometry.buffer(abs(transform.a) * 1.5), transform, STYLE[name])
        else:
            _burn(rgb, frame.geometry, transform, STYLE[name])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}.png")
    crs = dem.crs if dem is not None else next(iter(frames.values())).crs
    with rasterio.open(tmp, "w", driver="PNG", width=w, height=h, count=3, dtype="uint8",
                       transform=transform, crs=crs) as dst:
        dst.write(rgb)
    aux = tmp.with_name(tmp.name + ".aux.xml")  # georeferencing, for opening it in a GIS
    if aux.exists():
        os.replace(aux, out.with_name(out.name + ".aux.xml"))
    os.replace(tmp, out)
    return out


def _burn(rgb, geoms, transform, colour) -> None:
    mask = rasterize(((g, 1) for g in geoms if g is not None and not g.is_empty),
                     out_shape=rgb.shape[1:], transform=transform, fill=0, dtype="uint8",
                     all_touched=True)
    for band, value in enumerate(colour):
        rgb[band][mask == 1] = value


def _resample(dem, transform, shape) -> np.ndarray:
    from rasterio.warp import reproject

    out = np.full(shape, np.nan, dtype="float32")
    reproject(dem.data, out, src_transform=dem.transform, src_crs=dem.crs, dst_transform=transform,
              dst_crs=dem.crs, resampling=Resampling.bilinear, src_nodata=np.nan, dst_nodata=np.nan)
    return out


def _union_bounds(frames) -> tuple[float, float, float, float]:
    b = np.array([f.total_bounds for f in frames.values() if not f.empty])
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())
