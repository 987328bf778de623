"""Hashed-lattice gradient noise (Perlin style), evaluated without any global state.

Every value is a pure function of the seed, the octave and the coordinates, so a raster window
gives exactly the same numbers as the same cells of a whole-array evaluation: that is what lets
``national`` stream its terrain window by window. Gradients come from a 64-bit integer hash of
the lattice coordinates (splitmix64 finaliser) indexing a fixed table of 16 unit vectors, so no
transcendental function is evaluated per cell.

Grid windows use a separable form (interpolate along x on the few lattice rows the window
touches, then along y), which costs a handful of array operations per cell and octave. Scattered
points use :func:`gradient_noise_points`, which performs the same floating-point operations in the
same order, so a point at a cell centre gets the cell's value.
"""

from __future__ import annotations

import math

import numpy as np

_ANGLES = [2.0 * math.pi * k / 16.0 for k in range(16)]
_GRAD = np.array([[math.cos(a), math.sin(a)] for a in _ANGLES], dtype=np.float64)

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M3 = np.uint64(0xBF58476D1CE4E5B9)
_M4 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def lattice_hash(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """A 64-bit hash of integer lattice coordinates (broadcast together).

    Args:
        ix: Lattice column indices (integer array).
        iy: Lattice row indices (integer array, broadcastable with ``ix``).
        salt: Per-seed, per-octave salt (0 <= salt < 2**64).

    Returns:
        uint64 array of the broadcast shape.
    """
    shape = np.broadcast(ix, iy).shape
    # At least 1-D: numpy wraps uint64 overflow silently for arrays but warns for scalars.
    ix = np.atleast_1d(np.asarray(ix, dtype=np.int64)).astype(np.uint64)
    iy = np.atleast_1d(np.asarray(iy, dtype=np.int64)).astype(np.uint64)
    h = (ix * _M1) ^ (iy * _M2)
    h = h ^ np.uint64(salt)
    h = (h ^ (h >> _S30)) * _M3
    h = (h ^ (h >> _S27)) * _M4
    return (h ^ (h >> _S31)).reshape(shape)


def _gradients(ix: np.ndarray, iy: np.ndarray, salt: int) -> tuple[np.ndarray, np.ndarray]:
    idx = (lattice_hash(ix, iy, salt) & np.uint64(15)).astype(np.intp)
    return _GRAD[idx, 0], _GRAD[idx, 1]


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def _lattice(x, y, wavelength: float, offset: tuple[float, float]):
    """Lattice cell (ix, iy) and position inside it (fx, fy) of coordinates."""
    u = (np.asarray(x, dtype=np.float64) - offset[0]) / wavelength
    v = (np.asarray(y, dtype=np.float64) - offset[1]) / wavelength
    ix = np.floor(u)
    iy = np.floor(v)
    return ix.astype(np.int64), iy.astype(np.int64), u - ix, v - iy


def gradient_noise_grid(xs: np.ndarray, ys: np.ndarray, wavelength: float,
                        offset: tuple[float, float], salt: int) -> np.ndarray:
    """Gradient noise on the grid ``ys x xs`` (rows x columns), roughly in [-0.7, 0.7].

    Args:
        xs: Cell-centre eastings (1-D).
        ys: Cell-centre northings (1-D).
        wavelength: Lattice spacing in metres.
        offset: Lattice origin (metres), to decorrelate octaves.
        salt: Hash salt of this octave.

    Returns:
        float64 array of shape ``(len(ys), len(xs))``.
    """
    ix, iy, fx, fy = _lattice(xs, ys, wavelength, offset)
    lat_x = np.arange(ix.min(), ix.max() + 2)
    lat_y = np.arange(iy.min(), iy.max() + 2)
    gx, gy = _gradients(lat_x[None, :], lat_y[:, None], salt)
    cx = ix - lat_x[0]
    cy = iy - lat_y[0]
    wx = _fade(fx)
    wy = _fade(fy)
    # Interpolate along x on every lattice row the window touches.
    bx = gx[:, cx] * (1.0 - wx) * fx + gx[:, cx + 1] * wx * (fx - 1.0)
    by = gy[:, cx] * (1.0 - wx) + gy[:, cx + 1] * wx
    # Then along y for every cell row.
    lo = bx[cy] + fy[:, None] * by[cy]
    hi = bx[cy + 1] + (fy - 1.0)[:, None] * by[cy + 1]
    return (1.0 - wy)[:, None] * lo + wy[:, None] * hi


def gradient_noise_points(x: np.ndarray, y: np.ndarray, wavelength: float,
                          offset: tuple[float, float], salt: int) -> np.ndarray:
    """Gradient noise at scattered points; the same arithmetic as :func:`gradient_noise_grid`.

    Args:
        x: Eastings (any shape).
        y: Northings (same shape as ``x``).
        wavelength: Lattice spacing in metres.
        offset: Lattice origin (metres).
        salt: Hash salt of this octave.

    Returns:
        float64 array shaped like ``x``.
    """
    ix, iy, fx, fy = _lattice(x, y, wavelength, offset)
    gx00, gy00 = _gradients(ix, iy, salt)
    gx10, gy10 = _gradients(ix + 1, iy, salt)
    gx01, gy01 = _gradients(ix, iy + 1, salt)
    gx11, gy11 = _gradients(ix + 1, iy + 1, salt)
    wx = _fade(fx)
    wy = _fade(fy)
    bx0 = gx00 * (1.0 - wx) * fx + gx10 * wx * (fx - 1.0)
    by0 = gy00 * (1.0 - wx) + gy10 * wx
    bx1 = gx01 * (1.0 - wx) * fx + gx11 * wx * (fx - 1.0)
    by1 = gy01 * (1.0 - wx) + gy11 * wx
    lo = bx0 + fy * by0
    hi = bx1 + (fy - 1.0) * by1
    return (1.0 - wy) * lo + wy * hi
