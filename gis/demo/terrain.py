"""Synthetic terrain: fractal hills rising to the east, drained by meandering rivers flowing west.

Approach
--------
The raw surface is a pure function of the seed, the region and the coordinates
(:meth:`TerrainModel.grid` / :meth:`TerrainModel.points`), so any window can be computed on its
own and equals the same cells of a whole-array evaluation:

* hills: a ramp rising from a coastal plain in the west to ``relief`` metres in the east, plus
  fractal gradient noise (octaves from half the region down to 30 m, see :mod:`.noise`) whose
  amplitude grows with the ramp;
* rivers: one per 20 km band, each a sum of two sines ``y = f(x)`` running the whole width from
  the high east side to an outlet on the west border. Near a river the surface is blended down to
  a valley floor whose elevation falls monotonically downstream (with a gentle cross slope towards
  the channel), and a parabolic channel a few metres deep is carved along the centreline.

Drainage conditioning: the carved surface still has small pits (noise on the hills and the
floor). :func:`fill_depressions` removes all of them with a Priority-Flood+epsilon (Barnes et al.
2014): a min-heap seeded with every border cell floods inwards and raises every cell that is not
above the cell it was reached from to one float32 ulp above it. Working on the bit patterns of
positive float32 values (ordered like the values) makes "one ulp" exact. Afterwards every
interior cell has a strictly lower neighbour, so steepest descent from any cell reaches the
border. The fill is global and exact: for ``national`` the raw surface is computed window by
window into a disk-backed memory map (400 MB at 10,000 x 10,000), flooded in place (numba,
O(n log n)), then written window by window into the tiled GeoTIFF; nothing else holds the whole
grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numba
import numpy as np
import rasterio
from rasterio.transform import Affine, from_origin
from rasterio.windows import Window

from gis.demo.noise import gradient_noise_grid, gradient_noise_points
from gis.demo.spec import CRS, RegionSpec, sub_rng

NODATA = -9999.0
MIN_ELEVATION = 0.5  # keeps every value a positive float32 (needed by the ulp-exact fill)


@dataclass(frozen=True)
class River:
    """A river centreline ``y = base + a1 sin(2 pi x / l1 + p1) + a2 sin(2 pi x / l2 + p2)``,
    flowing from east (source) to west (outlet on the west border)."""

    index: int
    base: float
    a1: float
    l1: float
    p1: float
    a2: float
    l2: float
    p2: float

    def centre_y(self, x: np.ndarray) -> np.ndarray:
        """Northing of the centreline at eastings ``x``."""
        return (self.base + self.a1 * np.sin(2.0 * np.pi * x / self.l1 + self.p1)
                + self.a2 * np.sin(2.0 * np.pi * x / self.l2 + self.p2))

    def slope(self, x: np.ndarray) -> np.ndarray:
        """dy/dx of the centreline."""
        return (self.a1 * 2.0 * np.pi / self.l1 * np.cos(2.0 * np.pi * x / self.l1 + self.p1)
                + self.a2 * 2.0 * np.pi / self.l2 * np.cos(2.0 * np.pi * x / self.l2 + self.p2))

    def smooth_y(self, x: np.ndarray) -> np.ndarray:
        """The centreline without its short meanders (what valley roads and railways follow)."""
        return self.base + self.a1 * np.sin(2.0 * np.pi * x / self.l1 + self.p1)


@dataclass(frozen=True)
class TerrainModel:
    """The terrain of one region: a deterministic function of (seed, bbox, x, y).

    Attributes:
        seed: Random seed.
        bbox: (minx, miny, maxx, maxy) of the region.
        relief: Height of the eastern ramp (metres).
        rivers: The rivers, south to north.
        floor_half: Half-width of the valley floor at the outlet (metres).
        octaves: (wavelength, amplitude, (offset x, offset y), salt) of the noise octaves.
    """

    seed: int
    bbox: tuple[float, float, float, float]
    relief: float
    rivers: tuple[River, ...]
    floor_half: float
    octaves: tuple[tuple[float, float, tuple[float, float], int], ...]

    @classmethod
    def create(cls, seed: int, bbox: tuple[float, float, float, float]) -> TerrainModel:
        """Draw the terrain parameters of a region.

        Args:
            seed: Random seed.
            bbox: (minx, miny, maxx, maxy) in metres.

        Returns:
            The model.
        """
        rng = sub_rng(seed, 1)
        minx, miny, maxx, maxy = bbox
        width, height = maxx - minx, maxy - miny
        n_rivers = max(1, int(round(height / 20000.0)))
        band = height / n_rivers
        rivers = []
        for k in range(n_rivers):
            rivers.append(River(
                index=k,
                base=miny + band * (k + 0.5 + rng.uniform(-0.06, 0.06)),
                a1=band * rng.uniform(0.07, 0.12), l1=width * rng.uniform(0.7, 1.1),
                p1=rng.uniform(0.0, 2.0 * np.pi),
                a2=0.0, l2=float(np.clip(width * 0.2, 700.0, 4000.0)) * rng.uniform(0.8, 1.2),
                p2=rng.uniform(0.0, 2.0 * np.pi)))
            rivers[-1] = replace(rivers[-1], a2=rivers[-1].l2 * rng.uniform(0.04, 0.07))
        octaves = []
        wavelength = min(width / 2.0, 16000.0)
        amp = 1.0
        while wavelength >= 30.0:
            offset = (float(rng.uniform(0.0, 1e4)), float(rng.uniform(0.0, 1e4)))
            octaves.append((wavelength, amp, offset, int(rng.integers(0, 2**63 - 1))))
            wavelength /= 2.0
            amp *= 0.5
        total = sum(o[1] for o in octaves)
        octaves = [(w, a / total, off, s) for (w, a, off, s) in octaves]
        return cls(seed=seed, bbox=tuple(float(v) for v in bbox),
                   relief=175.0 * math.sqrt(width / 1000.0), rivers=tuple(rivers),
                   floor_half=min(0.2 * band, 1500.0), octaves=tuple(octaves))

    # --- river geometry -------------------------------------------------------------------------

    @property
    def _size_factor(self) -> float:
        return (self.bbox[2] - self.bbox[0]) / 4000.0

    def channel_half_width(self, x: np.ndarray) -> np.ndarray:
        """Half-width of the river channel (metres) at eastings ``x``."""
        u = (x - self.bbox[0]) / (self.bbox[2] - self.bbox[0])
        return (10.0 + 18.0 * (1.0 - u)) * self._size_factor ** 0.3

    def channel_depth(self, x: np.ndarray) -> np.ndarray:
        """Depth of the channel below the valley floor (metres)."""
        u = (x - self.bbox[0]) / (self.bbox[2] - self.bbox[0])
        return (2.0 + 3.0 * (1.0 - u)) * self._size_factor ** 0.2

    def river_distance(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Approximate perpendicular distance to the nearest river, and that river's index.

        Args:
            x: Eastings (broadcastable with ``y``).
            y: Northings.

        Returns:
            (distance in metres, river index), broadcast shape.
        """
        best = None
        which = None
        for river in self.rivers:
            # Perpendicular distance near the river (|dy| cos(angle)), blending into the smooth
            # vertical distance further out, where the local slope of the meanders is meaningless.
            dy = np.abs(y - river.centre_y(x))
            d = dy / np.sqrt(1.0 + river.slope(x) ** 2 * np.exp(-(dy / 250.0) ** 2))
            if best is None:
                best, which = d, np.zeros(np.shape(d), dtype=np.int64)
            else:
                closer = d < best
                best = np.where(closer, d, best)
                which = np.where(closer, river.index, which)
        return best, which

    def river_path(self, river: River, step: float) -> np.ndarray:
        """Vertices (n, 2) of a river centreline from its source (east) to its outlet (west)."""
        minx, maxx = self.bbox[0], self.bbox[2]
        xs = np.arange(maxx - step / 2.0, minx, -step)
        return np.column_stack([xs, river.centre_y(xs)])

    # --- elevation -------------------------------------------------------------------------------

    def _compose(self, x: np.ndarray, y: np.ndarray, fbm: np.ndarray) -> np.ndarray:
        minx, _, maxx, _ = self.bbox
        u = (x - minx) / (maxx - minx)
        s = np.clip((u - 0.08) / 0.92, 0.0, 1.0)
        hills = self.relief * s ** 1.3 + self.relief * (0.10 + 0.25 * s) * fbm
        d, _ = self.river_distance(x, y)
        cd = self.channel_depth(x)
        z_out = 2.0 + self.channel_depth(np.asarray(minx))
        z_src = 0.25 * self.relief
        valley = z_out + (z_src - z_out) * np.clip(u, 0.0, 1.0) ** 1.6
        floor = valley + 0.004 * d + 1.5 * fbm * np.clip(d / 200.0, 0.0, 1.0)
        t = np.clip((d - self.floor_half * (1.0 - 0.7 * u)) / (1.2 * self.floor_half), 0.0, 1.0)
        w = t * t * (3.0 - 2.0 * t)
        z = floor + np.maximum(hills - floor, 0.0) * w
        q = np.clip(1.0 - (d / self.channel_half_width(x)) ** 2, 0.0, None)
        return np.maximum(z - cd * q, MIN_ELEVATION)

    def grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Raw (unconditioned) elevation on the grid ``ys x xs`` of cell centres.

        Args:
            xs: Eastings of the columns (1-D).
            ys: Northings of the rows (1-D, usually decreasing).

        Returns:
            float64 array (len(ys), len(xs)).
        """
        xs = np.asarray(xs, dtype=np.float64)
        ys = np.asarray(ys, dtype=np.float64)
        fbm = np.zeros((ys.size, xs.size))
        for wavelength, amp, offset, salt in self.octaves:
            fbm = fbm + amp * gradient_noise_grid(xs, ys, wavelength, offset, salt)
        return self._compose(xs[None, :], ys[:, None], fbm)

    def points(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Raw elevation at scattered points (same values as :meth:`grid` at cell centres)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        fbm = np.zeros(np.broadcast(x, y).shape)
        for wavelength, amp, offset, salt in self.octaves:
            fbm = fbm + amp * gradient_noise_points(x, y, wavelength, offset, salt)
        return self._compose(x, y, fbm)

    def slope(self, x: np.ndarray, y: np.ndarray, h: float = 20.0) -> np.ndarray:
        """Magnitude of the raw surface gradient (m/m), by central differences over ``h``."""
        dzdx = (self.points(x + h, y) - self.points(x - h, y)) / (2.0 * h)
        dzdy = (self.points(x, y + h) - self.points(x, y - h)) / (2.0 * h)
        return np.hypot(dzdx, dzdy)

    def window(self, left: float, top: float, nx: int, ny: int, cell: float) -> np.ndarray:
        """Raw elevation of a raster window as float32.

        Args:
            left: Easting of the window's west edge.
            top: Northing of the window's north edge.
            nx: Columns.
            ny: Rows (row 0 is the northernmost).
            cell: Cell size in metres.

        Returns:
            float32 array (ny, nx).
        """
        xs = left + (np.arange(nx) + 0.5) * cell
        ys = top - (np.arange(ny) + 0.5) * cell
        return self.grid(xs, ys).astype(np.float32)


def terrain_window(seed: int, bbox: tuple[float, float, float, float], left: float, top: float,
                   nx: int, ny: int, cell: float) -> np.ndarray:
    """Raw terrain of one window of a region (see :meth:`TerrainModel.window`).

    Args:
        seed: Random seed of the region.
        bbox: The region's (minx, miny, maxx, maxy).
        left: West edge of the window (use whole multiples of ``cell`` from the region origin so
            windows tile exactly).
        top: North edge of the window.
        nx: Columns.
        ny: Rows.
        cell: Cell size (metres).

    Returns:
        float32 array (ny, nx), unconditioned (pits not yet filled).
    """
    return TerrainModel.create(seed, bbox).window(left, top, nx, ny, cell)


# --- drainage conditioning ------------------------------------------------------------------------


@numba.njit(cache=True)
def _heap_push(heap, size, item):
    if size == heap.shape[0]:
        grown = np.empty(heap.shape[0] * 2, np.int64)
        grown[:size] = heap[:size]
        heap = grown
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if heap[parent] <= item:
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = item
    return heap, size + 1


@numba.njit(cache=True)
def _heap_pop(heap, size):
    top = heap[0]
    size -= 1
    item = heap[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and heap[child + 1] < heap[child]:
            child += 1
        if heap[child] >= item:
            break
        heap[i] = heap[child]
        i = child
    heap[i] = item
    return top, size


@numba.njit(cache=True)
def _priority_flood(z, nrows, ncols):
    """Priority-Flood+epsilon on the int32 bit patterns ``z`` (flattened, row-major)."""
    closed = np.zeros(nrows * ncols, np.uint8)
    heap = np.empty(4096, np.int64)
    size = 0
    for r in range(nrows):
        step = 1 if r == 0 or r == nrows - 1 else max(ncols - 1, 1)
        for c in range(0, ncols, step):
            idx = r * ncols + c
            closed[idx] = 1
            heap, size = _heap_push(heap, size, (np.int64(z[idx]) << 32) | idx)
    raised = 0
    while size > 0:
        item, size = _heap_pop(heap, size)
        c = item & 0xFFFFFFFF
        zc = z[c]
        row = c // ncols
        col = c - row * ncols
        for dr in range(-1, 2):
            rr = row + dr
            if rr < 0 or rr >= nrows:
                continue
            for dc in range(-1, 2):
                cc = col + dc
                if (dr == 0 and dc == 0) or cc < 0 or cc >= ncols:
                    continue
                nb = rr * ncols + cc
                if closed[nb]:
                    continue
                closed[nb] = 1
                if z[nb] <= zc:
                    z[nb] = zc + 1
                    raised += 1
                heap, size = _heap_push(heap, size, (np.int64(z[nb]) << 32) | nb)
    return raised


def fill_depressions(dem: np.ndarray) -> int:
    """Condition a DEM in place so that every cell drains to the border.

    Args:
        dem: C-contiguous float32 array (may be a memory map) of positive elevations.

    Returns:
        How many cells were raised.
    """
    if dem.dtype != np.float32 or not dem.flags.c_contiguous:
        raise ValueError("fill_depressions needs a C-contiguous float32 array")
    if dem.size and float(dem.min()) <= 0.0:
        raise ValueError("fill_depressions needs positive elevations")
    bits = np.asarray(dem).reshape(-1).view(np.int32)
    return int(_priority_flood(bits, dem.shape[0], dem.shape[1]))


# --- the DEM file ---------------------------------------------------------------------------------


def dem_transform(spec: RegionSpec) -> Affine:
    """The affine transform of the region's DEM (north-up, origin at the north-west corner)."""
    minx, _, _, maxy = spec.bbox
    return from_origin(minx, maxy, spec.cell, spec.cell)


def windows(spec: RegionSpec) -> Iterator[Window]:
    """The DEM windows (``spec.window`` cells square, row-major) covering the region."""
    rows, cols = spec.shape
    for r0 in range(0, rows, spec.window):
        for c0 in range(0, cols, spec.window):
            yield Window(c0, r0, min(spec.window, cols - c0), min(spec.window, rows - r0))


def build_dem(model: TerrainModel, spec: RegionSpec, path: Path, scratch: Path,
              tick: Callable[[], None] = lambda: None) -> np.ndarray:
    """Compute, condition and write ``dem.tif``.

    Args:
        model: The terrain model.
        spec: Region spec (grid, window size, whether to use a memory map).
        path: Output GeoTIFF.
        scratch: Directory for the memory map of streamed runs (deleted by the caller).
        tick: Called once per window computed and once per window written.

    Returns:
        The conditioned DEM (a memory map for streamed runs), row 0 at the north.
    """
    rows, cols = spec.shape
    if spec.streamed:
        dem = np.lib.format.open_memmap(scratch / "dem_work.npy", mode="w+", dtype=np.float32,
                                        shape=(rows, cols))
    else:
        dem = np.empty((rows, cols), dtype=np.float32)
    transform = dem_transform(spec)
    for win in windows(spec):
        left, top = transform @ (win.col_off, win.row_off)
        dem[win.row_off:win.row_off + win.height, win.col_off:win.col_off + win.width] = \
            model.window(left, top, win.width, win.height, spec.cell)
        tick()
    fill_depressions(dem)
    profile = {"driver": "GTiff", "width": cols, "height": rows, "count": 1, "dtype": "float32",
               "crs": rasterio.crs.CRS.from_string(CRS), "transform": transform,
               "nodata": NODATA, "tiled": True, "blockxsize": 256, "blockysize": 256,
               "compress": "deflate", "predictor": 3, "BIGTIFF": "IF_SAFER"}
    with rasterio.open(path, "w", **profile) as dst:
        for win in windows(spec):
            block = dem[win.row_off:win.row_off + win.height, win.col_off:win.col_off + win.width]
            dst.write(np.ascontiguousarray(block), 1, window=win)
            tick()
    return dem


def sample_dem(dem: np.ndarray, transform: Affine, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """DEM value of the cell containing each point (what ``rasterio`` ``sample`` returns).

    Args:
        dem: The conditioned DEM.
        transform: Its transform.
        x: Eastings.
        y: Northings.

    Returns:
        float64 elevations; points outside the grid get the nearest edge cell.
    """
    rows, cols = rasterio.transform.rowcol(transform, np.asarray(x, dtype=np.float64),
                                           np.asarray(y, dtype=np.float64))
    rows = np.clip(np.asarray(rows), 0, dem.shape[0] - 1)
    cols = np.clip(np.asarray(cols), 0, dem.shape[1] - 1)
    return dem[rows, cols].astype(np.float64)
