"""Error-bounded triangulation of one tile's height grid, and its edge vertices.

Two methods, both guaranteeing that every grid sample lies within ``max_error`` metres of the
mesh (the tests check it against the DEM):

- ``"rtin"`` (default): a right-triangulated irregular network (Evans, Kirkpatrick & Townsend,
  "Right-triangulated irregular networks", Algorithmica 30, 2001), built the way Mapbox's martini
  does (V. Agafonkin, 2019): errors are computed bottom-up for the binary tree of right triangles
  of a 2^k + 1 grid, then the tree is cut top-down wherever the error at a hypotenuse midpoint is
  above the bound. Martini's error is only the deviation at each midpoint; ours is *strict*: the
  largest deviation of any grid sample inside the triangle from the triangle's plane, still
  propagated from children to parents so that the two triangles sharing a hypotenuse always split
  together (no T-junctions inside a tile). Numba, O(n log n) per tile.
- ``"delatin"``: greedy insertion (Garland & Heckbert, "Fast polygonal approximation of terrains
  and height fields", CMU-CS-95-181, 1995) via pydelatin: fewer triangles for the same bound, about
  ten times slower.

Skirts: quantized-mesh tiles do not store skirt geometry; the format lists the vertices on each
edge (west, south, east, north) and CesiumJS hangs skirts from them (``TerrainProvider
.getSkirtHeight``; ``QuantizedMeshTerrainData`` builds them when it creates the mesh). Two
neighbours sample identical points on their shared edge (same heights), but each picks its own
subset of them as vertices, so the gap between their edges is at most the sum of their max errors,
which the skirts hide. :func:`edge_vertices` gives those lists, ordered along each edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit


@dataclass
class TileMesh:
    """A triangulated tile.

    Attributes:
        col: Vertex column in the grid, 0 (west edge) .. size (east edge), int32.
        row: Vertex row counted from the SOUTH edge, 0 .. size, int32.
        height: Ellipsoidal height (m) of each vertex: the grid sample itself, float64.
        triangles: (n, 3) vertex indices, counter-clockwise seen from above, uint32.
        size: Grid cells per side.
        max_error: The error bound the mesh was built to (m).
    """

    col: np.ndarray
    row: np.ndarray
    height: np.ndarray
    triangles: np.ndarray
    size: int
    max_error: float


def triangulate(grid: np.ndarray, max_error: float, method: str = "rtin") -> TileMesh:
    """Triangulate a square height grid (row 0 = north) to within ``max_error`` metres.

    Args:
        grid: (size + 1, size + 1) finite heights (m); ``size`` a power of two for "rtin".
        max_error: Largest vertical distance (m) allowed between any grid sample and the mesh.
        method: "rtin" or "delatin".
    """
    grid = np.ascontiguousarray(grid, dtype=np.float64)
    size = grid.shape[0] - 1
    if grid.shape != (size + 1, size + 1) or not np.isfinite(grid).all():
        raise ValueError("grid must be square and finite")
    if method == "rtin":
        if size & (size - 1):
            raise ValueError("rtin needs a 2^k + 1 grid")
        errors = _rtin_errors(grid, float(max_error))
        col, row_down, tri = _rtin_mesh(errors, size, float(max_error))
        row = (size - row_down).astype(np.int32)
    elif method == "delatin":
        from pydelatin import Delatin

        # pydelatin works in float32; heights relative to the minimum keep its rounding small.
        tin = Delatin(grid - float(grid.min()), max_error=max_error)
        xy = np.rint(tin.vertices[:, :2]).astype(np.int32)
        col, row = xy[:, 0], xy[:, 1]  # pydelatin's y counts up from the south edge
        tri = tin.triangles.astype(np.uint32)
    else:
        raise ValueError(f"unknown method {method!r}")
    height = grid[size - row, col]
    tri = tri.astype(np.uint32)
    # Counter-clockwise in (east, north): the sign of the cross product of two edges.
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    cross = ((col[b] - col[a]).astype(np.int64) * (row[c] - row[a])
             - (row[b] - row[a]).astype(np.int64) * (col[c] - col[a]))
    flip = cross < 0
    tri[flip, 1], tri[flip, 2] = c[flip], b[flip]
    tri = tri[cross != 0]
    return TileMesh(col.astype(np.int32), row, height, tri, size, float(max_error))


@njit(cache=True)
def _rtin_errors(grid, limit):
    """Per grid point, the strict error of the triangles whose hypotenuse midpoint it is,
    propagated from children (martini's layout: triangle i of the implicit binary tree). Only
    the comparison with ``limit`` matters, so scans stop as soon as it is exceeded (values above
    ``limit`` are lower bounds)."""
    n = grid.shape[0]
    tile = n - 1
    errors = np.zeros(n * n)
    num = tile * tile * 2 - 2
    parents = num - tile * tile
    for i in range(num - 1, -1, -1):
        tid = i + 2
        ax = ay = bx = by = cx = cy = 0
        if tid & 1:
            bx = by = cx = tile
        else:
            ax = ay = cy = tile
        tid >>= 1
        while tid > 1:
            mx = (ax + bx) >> 1
            my = (ay + by) >> 1
            if tid & 1:
                bx, by, ax, ay = ax, ay, cx, cy
            else:
                ax, ay, bx, by = bx, by, cx, cy
            cx, cy = mx, my
            tid >>= 1
        mx = (ax + bx) >> 1
        my = (ay + by) >> 1
        cx = mx + my - ay
        cy = my + ax - mx
        m = my * n + mx
        if i < parents:  # children first: they were visited before (larger i)
            left = ((ay + cy) >> 1) * n + ((ax + cx) >> 1)
            right = ((by + cy) >> 1) * n + ((bx + cx) >> 1)
            errors[m] = max(errors[m], errors[left], errors[right])
        if errors[m] <= limit:  # else the triangle splits whatever its own deviation
            # strict deviation of the samples inside (a, b, c) from its plane, row by row
            dev = _plane_deviation(grid, ax, ay, bx, by, cx, cy, limit)
            if dev > errors[m]:
                errors[m] = dev
    return errors


@njit(cache=True, inline="always")
def _span(px, py, qx, qy, rx, ry, y, lo, hi):
    """Narrow [lo, hi] to the integer x on row y on r's side of the line p-q (inclusive)."""
    k = -(qy - py)
    c = (qx - px) * (y - py) + (qy - py) * px
    side = (qx - px) * (ry - py) - (qy - py) * (rx - px)
    if side < 0:
        k, c = -k, -c
    # k * x + c >= 0
    if k > 0:
        lo = max(lo, -((c) // k))  # ceil(-c / k)
    elif k < 0:
        hi = min(hi, c // (-k))  # floor(c / -k)
    elif c < 0:
        hi = lo - 1
    return lo, hi


@njit(cache=True)
def _plane_deviation(grid, ax, ay, bx, by, cx, cy, limit):
    """Largest |grid - plane(a, b, c)| over the grid points inside the triangle, or the first
    deviation found above ``limit``."""
    ha, hb, hc = grid[ay, ax], grid[by, bx], grid[cy, cx]
    det = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)
    gx = ((hb - ha) * (cy - ay) - (hc - ha) * (by - ay)) / det
    gy = ((hc - ha) * (bx - ax) - (hb - ha) * (cx - ax)) / det
    x0, x1 = min(ax, bx, cx), max(ax, bx, cx)
    dev = 0.0
    for y in range(min(ay, by, cy), max(ay, by, cy) + 1):
        lo, hi = _span(ax, ay, bx, by, cx, cy, y, x0, x1)
        lo, hi = _span(bx, by, cx, cy, ax, ay, y, lo, hi)
        lo, hi = _span(cx, cy, ax, ay, bx, by, y, lo, hi)
        base = ha + gy * (y - ay) - gx * ax
        for x in range(lo, hi + 1):
            d = abs(grid[y, x] - (base + gx * x))
            if d > dev:
                dev = d
                if dev > limit:
                    return dev
    return dev


@njit(cache=True)
def _rtin_mesh(errors, tile, max_error):
    """Cut the triangle tree where errors <= max_error: (columns, rows from the north, (n, 3)
    triangles)."""
    n = tile + 1
    vid = np.full(n * n, -1, np.int64)
    cols = np.empty(n * n, np.int32)
    rows = np.empty(n * n, np.int32)
    tris = np.empty((2 * tile * tile, 3), np.int64)
    stack = np.empty((256, 6), np.int64)
    nv = 0
    nt = 0
    top = 0
    stack[0] = (0, 0, tile, tile, tile, 0)
    stack[1] = (tile, tile, 0, 0, 0, tile)
    top = 2
    while top > 0:
        top -= 1
        ax, ay, bx, by, cx, cy = stack[top]
        mx = (ax + bx) >> 1
        my = (ay + by) >> 1
        if abs(ax - cx) + abs(ay - cy) > 1 and errors[my * n + mx] > max_error:
            stack[top] = (bx, by, cx, cy, mx, my)
            stack[top + 1] = (cx, cy, ax, ay, mx, my)
            top += 2
        else:
            for k in range(3):
                if k == 0:
                    px, py = ax, ay
                elif k == 1:
                    px, py = bx, by
                else:
                    px, py = cx, cy
                g = py * n + px
                if vid[g] < 0:
                    vid[g] = nv
                    cols[nv] = px
                    rows[nv] = py
                    nv += 1
                tris[nt, k] = vid[g]
            nt += 1
    return cols[:nv].copy(), rows[:nv].copy(), tris[:nt].copy()


def edge_vertices(col: np.ndarray, row: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Indices of the vertices on the west, south, east and north edges, ordered along each edge
    (west/east by row from the south, south/north by column from the west)."""
    out = {}
    for name, on, key in (("west", col == 0, row), ("south", row == 0, col),
                          ("east", col == size, row), ("north", row == size, col)):
        idx = np.flatnonzero(on)
        out[name] = idx[np.argsort(key[idx], kind="stable")].astype(np.uint32)
    return out
