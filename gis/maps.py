"""Hazard maps as pictures: a result over a hillshade, with legend, scale bar and north arrow.

Every decision model writes ``map.png`` with :func:`hazard_map`, so a flood depth, a landslide
stability class and a crash hot spot look like parts of one atlas. Rendering is matplotlib (Agg,
no display); large rasters are decimated to at most ``max_pixels`` before drawing.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS


@dataclass
class MapClass:
    """One class of a classified layer: values in [lo, hi) drawn in ``colour``."""

    lo: float
    hi: float
    colour: str
    label: str


@dataclass
class MapVectors:
    """A vector overlay: a GeoDataFrame (in the raster's CRS) and its matplotlib style."""

    frame: Any
    label: str
    style: dict = field(default_factory=dict)


def hillshade(z: np.ndarray, cellsize: float | tuple[float, float], azimuth: float = 315.0,
              altitude: float = 45.0, z_factor: float = 1.0) -> np.ndarray:
    """Hillshade in [0, 1] (Horn's gradient); NaN cells come out NaN."""
    dx, dy = (cellsize, cellsize) if np.isscalar(cellsize) else cellsize
    zz = np.asarray(z, dtype="float64")
    fill = np.where(np.isnan(zz), np.nanmean(zz) if np.isfinite(zz).any() else 0.0, zz)
    p = np.pad(fill, 1, mode="reflect", reflect_type="odd")  # linear beyond the edge
    gx = ((p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2]
                                                        + p[2:, :-2])) / (8 * dx)
    gy = ((p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1]
                                                        + p[:-2, 2:])) / (8 * dy)
    gx *= z_factor
    gy *= z_factor
    slope = np.arctan(np.hypot(gx, gy))
    aspect = np.arctan2(gy, -gx)      # ESRI: gy is dz towards the south (down the rows)
    az = math.radians(360.0 - azimuth + 90.0)
    alt = math.radians(altitude)
    shade = np.sin(alt) * np.cos(slope) + np.cos(alt) * np.sin(slope) * np.cos(az - aspect)
    shade = np.clip(shade, 0, 1)
    shade[np.isnan(zz)] = np.nan
    return shade


def _decimate(a: np.ndarray | None, step: int, how: str = "nearest") -> np.ndarray | None:
    if a is None or step == 1:
        return a
    if how == "max":  # keep thin wet features visible when shrinking
        r, c = (a.shape[0] // step) * step, (a.shape[1] // step) * step
        if r == 0 or c == 0:
            return a[::step, ::step]
        return _nanmax_blocks(a[:r, :c].reshape(r // step, step, c // step, step))
    return a[::step, ::step]


def _nanmax_blocks(blocks: np.ndarray) -> np.ndarray:
    filled = np.where(np.isnan(blocks), -np.inf, blocks)
    out = filled.max(axis=(1, 3))
    out[np.isneginf(out)] = np.nan
    return out


def _metres_per_unit(crs: CRS | None, lat: float) -> float:
    if crs is not None and crs.is_geographic:
        return 111_320.0 * math.cos(math.radians(lat))
    if crs is not None and crs.axis_info:
        factor = crs.axis_info[0].unit_conversion_factor
        return factor or 1.0
    return 1.0


def _nice_length(metres: float) -> float:
    """The largest 1/2/5 x 10^k length not above ``metres``."""
    if metres <= 0:
        return 1.0
    k = 10 ** math.floor(math.log10(metres))
    for m in (5, 2, 1):
        if m * k <= metres:
            return m * k
    return k


def hazard_map(path: str | os.PathLike, dem: np.ndarray | None, transform: Affine, crs: Any,
               layer: np.ndarray | None, *, title: str, label: str = "",
               cmap: str = "Blues", vmin: float | None = None, vmax: float | None = None,
               classes: Sequence[MapClass] | None = None,
               vectors: Sequence[MapVectors] = (), note: str | None = None,
               max_pixels: int = 1600 * 1600, dpi: int = 120) -> Path:
    """Draw ``layer`` (NaN = nothing) over the hillshade of ``dem`` and write a PNG atomically.

    Args:
        path: The PNG to write.
        dem: Elevations on the same grid as ``layer`` (or None for a plain background).
        transform, crs: The grid's georeferencing (for axes, the scale bar and vectors).
        layer: The result (depth, index, class...) on the grid, or None for vectors only.
        title: Map title; ``label`` names the legend (with units).
        cmap, vmin, vmax: Continuous colouring (ignored when ``classes`` are given).
        classes: Discrete classes, drawn with their colours and listed in the legend.
        vectors: Overlays (impacted buildings, roads, warning polygons...).
        note: A line of small print under the map (source, model, parameters).
    """
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # font searches at -v
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    crs = CRS.from_user_input(crs) if crs is not None else None
    grid = dem if dem is not None else layer
    if grid is None:
        raise ValueError("hazard_map needs a DEM or a layer")
    rows, cols = grid.shape
    step = max(1, math.ceil(math.sqrt(rows * cols / max_pixels)))
    left, top = transform.c, transform.f
    right, bottom = transform @ (cols, rows)
    extent = (left, right, bottom, top)

    fig, ax = plt.subplots(figsize=(9, 9 * rows / max(cols, 1) if cols else 9), dpi=dpi)
    try:
        ax.set_facecolor("#f2f2ee")
        if dem is not None:
            res = (abs(transform.a) * step, abs(transform.e) * step)
            lat = (top + bottom) / 2
            mpu = _metres_per_unit(crs, lat)
            zd = _decimate(np.asarray(dem, dtype="float64"), step)
            geographic = crs is not None and crs.is_geographic
            cell_m = (res[0] * mpu, res[1] * (111_320.0 if geographic else mpu))
            shade = hillshade(zd, cell_m)
            ax.imshow(shade, cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="bilinear",
                      alpha=0.9)
        handles = []
        if layer is not None:
            ld = _decimate(np.asarray(layer, dtype="float64"), step, "max")
            masked = np.ma.masked_invalid(ld)
            if classes:
                bounds = [float(c.lo) for c in classes] + [float(classes[-1].hi)]
                finite = ld[np.isfinite(ld)]
                lo_data = float(finite.min()) if finite.size else 0.0
                hi_data = float(finite.max()) if finite.size else 0.0
                if not np.isfinite(bounds[0]):   # open classes end beyond the data
                    bounds[0] = min(bounds[1] - 1, lo_data - 1)
                if not np.isfinite(bounds[-1]):
                    bounds[-1] = max(bounds[-2] + 1, hi_data + 1)
                cm = ListedColormap([c.colour for c in classes])
                norm = BoundaryNorm(bounds, cm.N)
                ax.imshow(masked, cmap=cm, norm=norm, extent=extent, interpolation="nearest",
                          alpha=0.8)
                handles += [Patch(facecolor=c.colour, edgecolor="none", label=c.label)
                            for c in classes]
            else:
                im = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax, extent=extent,
                               interpolation="nearest", alpha=0.85)
                bar = fig.colorbar(im, ax=ax, shrink=0.6, pad=0.02)
                bar.set_label(label)
        for overlay in vectors:
            frame = overlay.frame
            if frame is None or len(frame) == 0:
                continue
            style = {"linewidth": 0.8, **overlay.style}
            frame.plot(ax=ax, **style)
            kind = frame.geometry.iloc[0].geom_type
            if "Polygon" in kind:
                handles.append(Patch(facecolor=style.get("facecolor", style.get("color", "none")),
                                     edgecolor=style.get("edgecolor", style.get("color", "k")),
                                     label=overlay.label))
            else:
                from matplotlib.lines import Line2D
                marker = "o" if "Point" in kind else None
                handles.append(Line2D([], [], color=style.get("color", "k"), marker=marker,
                                      linestyle="" if marker else "-", label=overlay.label))
        if handles:
            ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.85,
                      title=label if classes else None, title_fontsize=8)
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
        if crs is not None and crs.is_geographic:  # true shape at the map's latitude
            ax.set_aspect(1 / max(math.cos(math.radians((top + bottom) / 2)), 1e-6))
        ax.set_title(title, fontsize=12)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(useOffset=False, style="plain")
        if crs is not None:
            ax.set_xlabel(f"{crs.name}", fontsize=7)
        _scale_bar(ax, crs, extent)
        _north_arrow(ax)
        if note:
            fig.text(0.01, 0.005, note, fontsize=6, color="#444444", ha="left", va="bottom")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
    return path


def _scale_bar(ax, crs: CRS | None, extent) -> None:
    left, right, bottom, top = extent
    mpu = _metres_per_unit(crs, (top + bottom) / 2)
    width_m = (right - left) * mpu
    length_m = _nice_length(width_m / 4)
    length_units = length_m / mpu
    x0 = left + (right - left) * 0.04
    y0 = bottom + (top - bottom) * 0.04
    ax.plot([x0, x0 + length_units], [y0, y0], color="k", linewidth=3, solid_capstyle="butt")
    ax.plot([x0, x0 + length_units], [y0, y0], color="w", linewidth=1, solid_capstyle="butt")
    text = f"{length_m / 1000:g} km" if length_m >= 1000 else f"{length_m:g} m"
    ax.text(x0 + length_units / 2, y0 + (top - bottom) * 0.012, text, ha="center", va="bottom",
            fontsize=8, bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1})


def _north_arrow(ax) -> None:
    ax.annotate("", xy=(0.95, 0.93), xytext=(0.95, 0.85), xycoords="axes fraction",
                arrowprops={"arrowstyle": "-|>", "color": "k", "linewidth": 1.5})
    ax.text(0.95, 0.935, "N", transform=ax.transAxes, ha="center", va="bottom", fontsize=10,
            fontweight="bold")
