"""Synthetic meshes and helpers for the tiles tests (boxes built with numpy, no mesh builders)."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from pyproj import Transformer

from gis.mesh.base import SURFACE_CODES, Mesh

ROOT = Path(__file__).resolve().parents[2]
INSPECT = Path(__file__).with_name("js") / "inspect.mjs"
CLI = ROOT / "node_modules" / "3d-tiles-tools" / "build" / "src" / "cli.mjs"
ORIGIN = (250000.0, 2650000.0)  # EPSG:3826, on the TM2 central meridian 121 E

_CORNERS = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                     [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], float)
#: Faces as quads, counter-clockwise seen from outside: bottom, top, south, east, north, west.
_FACES = np.array([(0, 3, 2, 1), (4, 5, 6, 7), (0, 1, 5, 4), (1, 2, 6, 5), (2, 3, 7, 6),
                   (3, 0, 4, 7)])
_FACE_SURFACE = np.array([SURFACE_CODES["GroundSurface"], SURFACE_CODES["RoofSurface"]]
                         + [SURFACE_CODES["WallSurface"]] * 4, np.uint8)


def box_mesh(x0, y0, z0, w, d, h, *, colors: bool = False, surfaces: bool = False) -> Mesh:
    """Axis-aligned boxes (one feature each, flat faces with their own vertices).

    Args:
        x0, y0, z0: South-west-bottom corners (store CRS, orthometric z), arrays of n.
        w, d, h: Sizes along x, y, z.
        colors: Add RGBA vertex colours (alpha 255).
        surfaces: Add surface codes (ground, roof, walls).
    """
    x0, y0, z0, w, d, h = np.broadcast_arrays(*(np.atleast_1d(np.asarray(a, float))
                                                for a in (x0, y0, z0, w, d, h)))
    n = len(x0)
    corner = _CORNERS[_FACES.reshape(-1)]  # 24 vertices
    pos = corner[None] * np.stack([w, d, h], 1)[:, None] + np.stack([x0, y0, z0], 1)[:, None]
    quad = np.array([(0, 1, 2), (0, 2, 3)])
    tri = (np.arange(6)[:, None, None] * 4 + quad[None]).reshape(-1, 3)
    tri = tri[None] + (np.arange(n) * 24)[:, None, None]
    col = None
    if colors:
        rng = np.random.default_rng(7)
        rgb = rng.integers(0, 256, (n, 3))
        col = np.concatenate([np.repeat(rgb, 24, 0), np.full((n * 24, 1), 255)], 1)
    st = np.tile(np.repeat(_FACE_SURFACE, 4), n) if surfaces else None
    return Mesh(pos.reshape(-1, 3), tri.reshape(-1, 3), np.repeat(np.arange(n), 24), st, col)


def building_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` building records with every standard field, several nullable ones null."""
    rng = np.random.default_rng(seed)
    roofs = ["flat", "shed", "gable", "hip", "pyramid", "mansard", "dome", None]
    i = np.arange(n)
    return pd.DataFrame({
        "id": [f"b{k}" for k in i],
        "name": [None if k % 3 else f"大樓 {k}" for k in i],
        "height": np.where(i % 7 == 3, np.nan, rng.uniform(3, 90, n).round(2)),
        "storeys": pd.array([None if k % 5 == 1 else int(k % 40 + 1) for k in i], "Int64"),
        "storey_height": rng.uniform(2.5, 4.0, n),
        "ground_elevation": rng.uniform(-5, 300, n),
        "roof_type": [roofs[k % len(roofs)] for k in i],
        "roof_height": rng.uniform(0, 5, n),
        "ridge_direction": np.where(i % 4 == 0, np.nan, rng.uniform(0, 179, n)),
        "usage": [["residential", "commercial", "411", None][k % 4] for k in i],
        "year_built": pd.array([None if k % 6 == 2 else int(1900 + k % 120) for k in i],
                               "Int64"),
        "structure": [["RC", "SRC", "wood", None][k % 4] for k in i],
        "lod": pd.array([1] * n, "Int64"),
        "source": "synthetic",
        "lineage": [None if k % 2 else "made in a test" for k in i],
    })


def random_boxes(n: int, seed: int = 0, extent: float = 4000.0, **kw) -> tuple[
        Mesh, pd.DataFrame, np.ndarray, np.ndarray]:
    """``n`` random boxes around :data:`ORIGIN`: mesh, building frame, centroids, bounds."""
    rng = np.random.default_rng(seed)
    x0 = ORIGIN[0] + rng.uniform(0, extent, n)
    y0 = ORIGIN[1] + rng.uniform(0, extent, n)
    w, d = rng.uniform(5, 40, n), rng.uniform(5, 40, n)
    h, z0 = rng.uniform(3, 60, n), rng.uniform(0, 50, n)
    mesh = box_mesh(x0, y0, z0, w, d, h, **kw)
    cent = np.stack([x0 + w / 2, y0 + d / 2], 1)
    bounds = np.stack([x0, y0, x0 + w, y0 + d, z0, z0 + h], 1)
    return mesh, building_frame(n, seed), cent, bounds


@cache
def _to_geodetic() -> Transformer:
    return Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)


def ecef_to_geodetic(p: np.ndarray) -> np.ndarray:
    """(n, 3) ECEF -> (n, 3) lon, lat (radians), ellipsoidal h (pyproj)."""
    lon, lat, h = _to_geodetic().transform(p[:, 0], p[:, 1], p[:, 2])
    return np.stack([np.radians(lon), np.radians(lat), h], 1)


def in_region(geo: np.ndarray, region, tol_angle: float = 0.0, tol_h: float = 0.0) -> bool:
    """Whether every (lon, lat, h) row lies inside a region."""
    w, s, e, n, lo, hi = region
    return bool((geo[:, 0] >= w - tol_angle).all() and (geo[:, 0] <= e + tol_angle).all()
                and (geo[:, 1] >= s - tol_angle).all() and (geo[:, 1] <= n + tol_angle).all()
                and (geo[:, 2] >= lo - tol_h).all() and (geo[:, 2] <= hi + tol_h).all())


def match_vertices(p_in: np.ndarray, f_in: np.ndarray, p_out: np.ndarray,
                   f_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each output vertex, the nearest input vertex of the same feature.

    Returns:
        (input index per output vertex, distance per output vertex).
    """
    idx = np.full(len(p_out), -1)
    dist = np.full(len(p_out), np.inf)
    order_in = np.argsort(f_in, kind="stable")
    bounds = np.searchsorted(f_in[order_in], np.unique(f_out), "left"), \
        np.searchsorted(f_in[order_in], np.unique(f_out), "right")
    for f, a, b in zip(np.unique(f_out), *bounds, strict=True):
        cand = order_in[a:b]
        outs = np.nonzero(f_out == f)[0]
        if not len(cand):
            continue
        d = np.linalg.norm(p_out[outs, None, :] - p_in[None, cand, :], axis=2)
        j = d.argmin(1)
        idx[outs], dist[outs] = cand[j], d[np.arange(len(outs)), j]
    return idx, dist


def triangle_set(tris: np.ndarray, canon: np.ndarray) -> set[tuple[int, int, int]]:
    """Triangles as a set of vertex-id triples, each rotated to start at its smallest id (winding
    kept); ``canon`` maps vertex index -> canonical id (duplicated positions share one)."""
    t = canon[tris]
    out = set()
    for a, b, c in t.tolist():
        r = [(a, b, c), (b, c, a), (c, a, b)]
        out.add(min(r))
    return out


def canonical_ids(p: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Vertex index -> id shared by vertices with the same feature and exact position."""
    key = np.concatenate([f[:, None].astype(np.float64), p], 1)
    _, inv = np.unique(key, axis=0, return_inverse=True)
    return inv.reshape(-1)


def node_available() -> bool:
    """Whether node and the npm tools are installed."""
    return shutil.which("node") is not None and CLI.is_file()


def inspect(cmd: str, arg: str | Path) -> object:
    """Run tests/tiles/js/inspect.mjs (3d-tiles-tools / glTF-Transform readers)."""
    proc = subprocess.run(["node", str(INSPECT), cmd, str(arg)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, check=False)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout)


def tiles_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the 3d-tiles-tools CLI."""
    return subprocess.run(["node", str(CLI), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, check=False)
