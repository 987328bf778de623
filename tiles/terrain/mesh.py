"""Error-bounded triangulation of one tile's height grid (Delatin) and its edge vertices.

A tile's ``(SIZE + 1)``-square grid of ellipsoidal heights is triangulated with Delatin, the greedy
insertion algorithm of Garland & Heckbert ("Fast polygonal approximation of terrains and height
fields", CMU-CS-95-181, 1995) as implemented by Mapbox's delatin and its C++ port hmm (pydelatin):
points are inserted where the current triangulation is worst until every grid sample lies within
``max_error`` metres of the surface. The four corners and, because the grid's outer rows are the
tile edges, enough edge samples are always vertices, so the mesh covers the whole tile.

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
from pydelatin import Delatin


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


def triangulate(grid: np.ndarray, max_error: float) -> TileMesh:
    """Triangulate a square height grid (row 0 = north) to within ``max_error`` metres.

    Args:
        grid: (size + 1, size + 1) finite heights (m).
        max_error: Largest vertical distance (m) allowed between any grid sample and the mesh.
    """
    grid = np.ascontiguousarray(grid, dtype=np.float64)
    size = grid.shape[0] - 1
    if grid.shape != (size + 1, size + 1) or not np.isfinite(grid).all():
        raise ValueError("grid must be square and finite")
    # pydelatin works in float32; heights relative to the minimum keep its rounding < 0.25 mm.
    base = float(grid.min())
    tin = Delatin(grid - base, max_error=max_error)
    xy = np.rint(tin.vertices[:, :2]).astype(np.int32)
    col, row = xy[:, 0], xy[:, 1]  # pydelatin's y counts up from the last row (the south edge)
    height = grid[size - row, col]
    tri = tin.triangles.astype(np.uint32)
    # Counter-clockwise in (east, north): the sign of the cross product of two edges.
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    cross = ((col[b] - col[a]).astype(np.int64) * (row[c] - row[a])
             - (row[b] - row[a]).astype(np.int64) * (col[c] - col[a]))
    flip = cross < 0
    tri[flip, 1], tri[flip, 2] = c[flip], b[flip]
    tri = tri[cross != 0]
    return TileMesh(col, row, height, tri, size, float(max_error))


def edge_vertices(col: np.ndarray, row: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Indices of the vertices on the west, south, east and north edges, ordered along each edge
    (west/east by row from the south, south/north by column from the west)."""
    out = {}
    for name, on, key in (("west", col == 0, row), ("south", row == 0, col),
                          ("east", col == size, row), ("north", row == size, col)):
        idx = np.flatnonzero(on)
        out[name] = idx[np.argsort(key[idx], kind="stable")].astype(np.uint32)
    return out
