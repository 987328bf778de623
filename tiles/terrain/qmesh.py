"""quantized-mesh-1.0 encoder, written from the format specification.

Spec: CesiumGS/quantized-mesh, README "quantized-mesh-1.0 terrain format" (all little-endian):

1. Header, 88 bytes: tile centre (3 doubles, ECEF), minimum and maximum height (2 floats, m above
   the WGS84 ellipsoid), bounding sphere centre (3 doubles) and radius (double), horizon occlusion
   point (3 doubles, in the ellipsoid-scaled ECEF frame).
2. Vertex data: ``uint32 vertexCount`` then ``u[]``, ``v[]``, ``height[]`` as uint16, each
   quantized to 0..32767 over the tile (u west->east, v south->north, height min->max) and stored
   as zig-zag encoded deltas from the previous value.
3. Index data: ``uint32 triangleCount`` then ``3 * triangleCount`` indices (uint16, or uint32
   after padding to a 4-byte boundary when vertexCount > 65536), "high-water mark" encoded: each
   index is stored as ``highest - index`` where ``highest`` starts at 0 and grows by one whenever a
   code is 0, so vertices must appear in order of first use (:func:`encode_tile` reorders them).
4. Edge indices: west, south, east, north, each ``uint32 count`` + indices (same width; not
   high-water encoded). CesiumJS builds the skirts from them.
5. Extensions: ``uint8 id``, ``uint32 length``, data. id 1 "octvertexnormals": per vertex two
   uint8, the unit normal oct-encoded (Cigolle et al., "A survey of efficient representations for
   independent unit vectors", JCGT 3(2), 2014; CesiumJS ``AttributeCompression.octEncode``). id 2
   "watermask": one byte (0 all land, 255 all water) or 256 x 256 bytes, rows north to south.

The horizon occlusion point follows CesiumJS ``EllipsoidalOccluder
.computeHorizonCullingPointFromVertices`` (direction = tile centre), as the spec points to.
"""

from __future__ import annotations

import struct

import numpy as np
from numba import njit

from tiles.placement import WGS84_A, WGS84_E2, WGS84_F, geodetic_to_ecef
from tiles.terrain.mesh import TileMesh, edge_vertices

QMAX = 32767
RADII = np.array([WGS84_A, WGS84_A, WGS84_A * (1.0 - WGS84_F)])
EXT_NORMALS = 1
EXT_WATERMASK = 2
#: Extensions our tiles carry (layer.json ``extensions``).
EXTENSIONS = ("octvertexnormals", "watermask")


def float32_outward(lo: float, hi: float) -> tuple[float, float]:
    """``lo`` and ``hi`` rounded outwards to float32 (the header's min/max heights), so that
    quantizing against them is exactly what a decoder undoes."""
    lo32, hi32 = np.float32(lo), np.float32(hi)
    if lo32 > lo:
        lo32 = np.nextafter(lo32, np.float32(-np.inf))
    if hi32 < hi:
        hi32 = np.nextafter(hi32, np.float32(np.inf))
    return float(lo32), float(hi32)


def quantization_error(lo: float, hi: float) -> float:
    """Largest height error (m) of 16-bit quantization over [lo, hi] (half a step)."""
    lo, hi = float32_outward(lo, hi)
    return (hi - lo) / QMAX / 2


def zigzag_delta(values: np.ndarray) -> np.ndarray:
    """Zig-zag encoded deltas of non-negative ints (< 2**15) as uint16."""
    d = np.diff(values.astype(np.int32), prepend=0)
    return ((d << 1) ^ (d >> 31)).astype(np.uint16)


def oct_encode(n: np.ndarray) -> np.ndarray:
    """Unit vectors (n, 3) to (n, 2) uint8, CesiumJS ``octEncodeInRange(v, 255)``."""
    n = np.asarray(n, np.float64)
    s = np.abs(n).sum(axis=1)
    s[s == 0] = 1.0
    x, y = n[:, 0] / s, n[:, 1] / s
    neg = n[:, 2] < 0
    sx = np.where(x < 0, -1.0, 1.0)
    sy = np.where(y < 0, -1.0, 1.0)
    x, y = np.where(neg, (1 - np.abs(y)) * sx, x), np.where(neg, (1 - np.abs(x)) * sy, y)
    enc = np.rint((np.clip(np.stack([x, y], axis=1), -1, 1) * 0.5 + 0.5) * 255.0)
    return enc.astype(np.uint8)


def vertex_normals(ecef: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (unit, ECEF) of a counter-clockwise mesh."""
    return _normals(np.ascontiguousarray(ecef, np.float64),
                    np.ascontiguousarray(triangles, np.int64), RADII)


@njit(cache=True)
def _normals(p, tri, radii):
    acc = np.zeros_like(p)
    for t in range(tri.shape[0]):
        a, b, c = tri[t, 0], tri[t, 1], tri[t, 2]
        ux, uy, uz = p[b, 0] - p[a, 0], p[b, 1] - p[a, 1], p[b, 2] - p[a, 2]
        vx, vy, vz = p[c, 0] - p[a, 0], p[c, 1] - p[a, 1], p[c, 2] - p[a, 2]
        fx, fy, fz = uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx
        for k in (a, b, c):
            acc[k, 0] += fx
            acc[k, 1] += fy
            acc[k, 2] += fz
    for i in range(p.shape[0]):
        norm = np.sqrt(acc[i, 0] ** 2 + acc[i, 1] ** 2 + acc[i, 2] ** 2)
        if norm == 0.0:  # no face: the geodetic surface normal
            for k in range(3):
                acc[i, k] = p[i, k] / radii[k] ** 2
            norm = np.sqrt(acc[i, 0] ** 2 + acc[i, 1] ** 2 + acc[i, 2] ** 2)
        for k in range(3):
            acc[i, k] /= norm
    return acc


@njit(cache=True)
def _first_use(flat, nverts):
    """Vertices in order of first use, the old -> new map, and the high-water-mark codes."""
    new = np.full(nverts, -1, np.int64)
    order = np.empty(nverts, np.int64)
    codes = np.empty(len(flat), np.int64)
    k = 0
    highest = 0
    for i in range(len(flat)):
        v = flat[i]
        if new[v] < 0:
            new[v] = k
            order[k] = v
            k += 1
        code = highest - new[v]
        codes[i] = code
        if code == 0:
            highest += 1
    return order[:k], new, codes


def horizon_occlusion_point(ecef: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Horizon culling point in ellipsoid-scaled space (CesiumJS EllipsoidalOccluder)."""
    direction = centre / RADII
    direction /= np.linalg.norm(direction)
    p = ecef / RADII
    mag2 = np.einsum("ij,ij->i", p, p)
    mag = np.sqrt(mag2)
    unit = p / mag[:, None]
    mag2 = np.maximum(mag2, 1.0)
    mag = np.maximum(mag, 1.0)
    cos_a = unit @ direction
    sin_a = np.linalg.norm(np.cross(unit, direction), axis=1)
    cos_b = 1.0 / mag
    sin_b = np.sqrt(mag2 - 1.0) * cos_b
    magnitude = 1.0 / (cos_a * cos_b - sin_a * sin_b)
    return direction * float(np.max(magnitude))


def _grid_ecef(bounds, size: int, col: np.ndarray, row: np.ndarray,
               h: np.ndarray) -> np.ndarray:
    """ECEF of grid vertices: the closed form of :func:`tiles.placement.geodetic_to_ecef` with the
    trigonometry done once per grid column and row."""
    west, south, east, north = bounds
    k = np.arange(size + 1) / size
    lam = np.radians(west + (east - west) * k)
    phi = np.radians(south + (north - south) * k)
    sphi = np.sin(phi)
    nrad = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sphi * sphi)
    cphi, clam, slam = np.cos(phi), np.cos(lam), np.sin(lam)
    n, cp, sp = nrad[row], cphi[row], sphi[row]
    out = np.empty((len(col), 3))
    out[:, 0] = (n + h) * cp * clam[col]
    out[:, 1] = (n + h) * cp * slam[col]
    out[:, 2] = (n * (1.0 - WGS84_E2) + h) * sp
    return out


def encode_tile(mesh: TileMesh, bounds: tuple[float, float, float, float], *,
                normals: bool = True, watermask: np.ndarray | int | None = None) -> bytes:
    """One quantized-mesh-1.0 tile (uncompressed bytes).

    Args:
        mesh: The tile's triangulation (grid columns/rows, ellipsoidal heights).
        bounds: (west, south, east, north) of the tile in degrees.
        normals: Add the octvertexnormals extension.
        watermask: None (no extension), 0 / 255 (all land / all water) or a (256, 256) uint8 mask
            with rows north to south.
    """
    # Vertices in order of first use by the triangles (high-water-mark encoding needs it).
    order, remap, codes = _first_use(mesh.triangles.ravel().astype(np.int64), len(mesh.col))
    col, row, h = mesh.col[order], mesh.row[order], mesh.height[order]
    tri = remap[mesh.triangles]
    n = len(order)

    west, south, east, north = bounds
    hmin, hmax = float32_outward(float(h.min()), float(h.max()))  # as the header stores them
    ecef = _grid_ecef(bounds, mesh.size, col, row, h)
    lo, hi = ecef.min(axis=0), ecef.max(axis=0)
    sphere = (lo + hi) / 2
    radius = float(np.sqrt(((ecef - sphere) ** 2).sum(axis=1).max()))
    centre = np.array(geodetic_to_ecef((west + east) / 2, (south + north) / 2,
                                       (hmin + hmax) / 2), dtype=np.float64)
    horizon = horizon_occlusion_point(ecef, centre)

    u = np.rint(col * (QMAX / mesh.size)).astype(np.int32)
    v = np.rint(row * (QMAX / mesh.size)).astype(np.int32)
    span = hmax - hmin
    hq = (np.rint((h - hmin) / span * QMAX) if span > 0 else np.zeros(n)).astype(np.int32)

    parts = [struct.pack("<3d2f4d3d", *centre, hmin, hmax, *sphere, radius, *horizon),
             struct.pack("<I", n), zigzag_delta(u).tobytes(), zigzag_delta(v).tobytes(),
             zigzag_delta(hq).tobytes()]
    wide = n > 65536
    itype = np.uint32 if wide else np.uint16
    if wide:
        pos = sum(len(p) for p in parts)
        parts.append(b"\0" * (-pos % 4))
    parts += [struct.pack("<I", len(tri)), codes.astype(itype).tobytes()]
    for name, idx in edge_vertices(col, row, mesh.size).items():
        parts += [struct.pack("<I", len(idx)), idx.astype(itype).tobytes()]
    if normals:
        data = oct_encode(vertex_normals(ecef, tri)).tobytes()
        parts += [struct.pack("<BI", EXT_NORMALS, len(data)), data]
    if watermask is not None:
        data = (bytes([int(watermask)]) if np.ndim(watermask) == 0
                else np.ascontiguousarray(watermask, np.uint8).tobytes())
        if len(data) not in (1, 65536):
            raise ValueError("watermask must be one byte or 256 x 256")
        parts += [struct.pack("<BI", EXT_WATERMASK, len(data)), data]
    return b"".join(parts)
