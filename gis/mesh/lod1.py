"""LOD1 building prisms: footprints extruded from the ground to the building height.

Walls (one quad per ring edge, own vertices per face), a roof at ``top_z`` and a floor at
``base_z`` (the footprint triangulated: a fan for convex rings without holes, earcut otherwise),
all vectorised over the features with numpy. Rings are oriented before building (exterior
counter-clockwise, holes clockwise in xy), so every triangle faces outward and each feature is a
closed solid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from gis.mesh._poly import Rings, cap_triangles, polygon_rings
from gis.mesh.base import SURFACE_CODES, Mesh
from gis.mesh.report import MeshReport, finish
from gis.mesh.terrain import sample_dem

__all__ = ["extrude", "building_heights", "BuildingHeights", "sample_dem"]

WALL = SURFACE_CODES["WallSurface"]
ROOF = SURFACE_CODES["RoofSurface"]
GROUND = SURFACE_CODES["GroundSurface"]
#: Storey height when ``storey_height`` is missing (building standard default).
DEFAULT_STOREY_HEIGHT = 3.0


def per_feature(values: Any, n: int, name: str) -> np.ndarray:
    """A float64 array of ``n`` values from a scalar or a sequence of length ``n``."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        return np.full(n, float(arr[0]))
    if arr.size != n:
        raise ValueError(f"{name}: {arr.size} values for {n} features")
    return arr


def extrude(footprints: Sequence | np.ndarray, base_z: Any, top_z: Any, *,
            report: MeshReport | None = None) -> Mesh:
    """LOD1 prisms: each footprint extruded from ``base_z`` to ``top_z``.

    Args:
        footprints: Polygon / MultiPolygon (holes allowed) per feature, in the store CRS.
        base_z: Ground elevation per feature (or one value), orthometric metres.
        top_z: Roof elevation per feature (or one value).
        report: Collects skipped features and repairs. Without it, skipped features raise.

    Returns:
        The prisms; feature i's vertices have feature id i. Walls are ``WallSurface``, the roof
        ``RoofSurface``, the floor ``GroundSurface``.

    Raises:
        DataError: ``report`` is None and some feature could not be built (empty or zero-area
            footprint, missing or non-increasing heights).
    """
    local = MeshReport()
    n = len(footprints)
    base = per_feature(base_z, n, "base_z")
    top = per_feature(top_z, n, "top_z")
    ok = np.isfinite(base) & np.isfinite(top) & (top > base)
    for i in np.flatnonzero(~ok):
        local.skip(i, f"no usable heights (base_z={base[i]}, top_z={top[i]})")
    rings = polygon_rings(footprints, local, keep=ok)
    vpoly = rings.vertex_poly()
    feat = rings.poly_feature[vpoly]
    mesh = prism(rings, base[feat], top[feat])
    finish(report, local)
    return mesh


def prism(rings: Rings, zb: np.ndarray, zt: np.ndarray, tris: np.ndarray | None = None,
          roof: bool = True) -> Mesh:
    """Walls, roof and floor of the rings, with a base and a top elevation per ring vertex.

    Args:
        rings: Cleaned rings.
        zb: (n,) floor elevation of each vertex (constant per polygon).
        zt: (n,) roof elevation of each vertex (a plane per polygon for the roof to be planar).
        tris: Cap triangulation (default :func:`cap_triangles`).
        roof: False to leave the roof out (the caller builds it).

    Returns:
        The mesh (feature ids from ``rings.poly_feature``).
    """
    if not len(rings.xy):
        return Mesh.empty()
    if tris is None:
        tris = cap_triangles(rings)
    feat = rings.poly_feature[rings.vertex_poly()]
    parts = [walls(rings.xy, rings.next_vertex(), zb, zt, feat)]
    if roof:
        parts.append(cap(rings.xy, tris, zt, feat, ROOF, reverse=False))
    parts.append(cap(rings.xy, tris, zb, feat, GROUND, reverse=True))
    return Mesh.concat(parts)


def walls(xy: np.ndarray, nxt: np.ndarray, zb: np.ndarray, zt: np.ndarray,
          feat: np.ndarray, edges: np.ndarray | None = None) -> Mesh:
    """One vertical quad per ring edge ``i -> nxt[i]``, facing right of the edge (outward).

    Args:
        xy: (n, 2) ring vertices.
        nxt: (n,) next vertex of each.
        zb, zt: (n,) bottom and top elevation at each vertex.
        feat: (n,) feature id of each vertex.
        edges: Start vertices of the edges to build (default all).

    Returns:
        Four vertices and two triangles per edge, ``WallSurface``.
    """
    i = np.arange(len(xy)) if edges is None else np.asarray(edges, np.int64)
    j = nxt[i]
    n = len(i)
    pos = np.empty((n, 4, 3))
    pos[:, 0, :2] = xy[i]
    pos[:, 1, :2] = xy[j]
    pos[:, 2, :2] = xy[j]
    pos[:, 3, :2] = xy[i]
    pos[:, 0, 2] = zb[i]
    pos[:, 1, 2] = zb[j]
    pos[:, 2, 2] = zt[j]
    pos[:, 3, 2] = zt[i]
    b = 4 * np.arange(n, dtype=np.int64)
    tri = np.stack([b, b + 1, b + 2, b, b + 2, b + 3], axis=1).reshape(-1, 3)
    return Mesh(pos.reshape(-1, 3), tri, np.repeat(feat[i], 4), np.full(4 * n, WALL, np.uint8))


def cap(xy: np.ndarray, tris: np.ndarray, z: np.ndarray, feat: np.ndarray, stype: int,
        reverse: bool) -> Mesh:
    """A triangulated horizontal or planar cap over the ring vertices that ``tris`` uses.

    Args:
        xy: (n, 2) vertices.
        tris: (m, 3) counter-clockwise triangles into ``xy``.
        z: (n,) elevation of each vertex.
        feat: (n,) feature id of each vertex.
        stype: Surface code.
        reverse: Flip the triangles (a floor faces down).

    Returns:
        The cap, with its own copy of the vertices.
    """
    if not len(tris):
        return Mesh.empty()
    used = np.unique(tris)
    remap = np.full(len(xy), -1, np.int64)
    remap[used] = np.arange(len(used))
    pos = np.column_stack([xy[used], z[used]])
    t = remap[tris]
    if reverse:
        t = t[:, ::-1]
    return Mesh(pos, t, feat[used], np.full(len(used), stype, np.uint8))


# --------------------------------------------------------------------------- heights


class BuildingHeights(NamedTuple):
    """Elevations of buildings resolved from the building standard's fields.

    Attributes:
        base_z: Ground elevation (NaN where neither ``ground_elevation`` nor a fill is known).
        eave_z: Elevation of the eaves (top of the walls).
        top_z: Elevation of the highest roof point (ridge, apex).
    """

    base_z: np.ndarray
    eave_z: np.ndarray
    top_z: np.ndarray


def _column(frame: Any, name: str, n: int) -> np.ndarray:
    """A numeric column as float64 (NaN where missing or absent)."""
    if name not in frame:
        return np.full(n, np.nan)
    import pandas as pd

    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _pitched(kinds: Any) -> np.ndarray:
    """Whether each roof type names a pitched roof (a string other than empty and ``flat``)."""
    import pandas as pd

    if isinstance(kinds, pd.Series) and pd.api.types.is_string_dtype(kinds.dtype) and \
            kinds.dtype != object:  # pandas strings: no Python objects for a national layer
        return (kinds.notna() & ~kinds.isin(["", "flat"])).to_numpy(bool, na_value=False)
    kinds = np.asarray(kinds, dtype=object)
    return np.array([isinstance(k, str) and k not in ("", "flat") for k in kinds], bool)


def building_heights(frame: Any, ground: Any = None) -> BuildingHeights:
    """Base, eave and top elevations from the building standard's fields.

    Height above ground: ``height`` (ground to the highest roof point) where given, else
    ``storeys x storey_height`` (default 3.0 m) plus ``roof_height`` for pitched roofs
    (``roof_type`` other than flat). The eaves are ``roof_height`` below the top (clamped to the
    height; 0 for flat roofs and where ``roof_height`` is missing, so such roofs come out flat).
    The base is ``ground_elevation``, filled from ``ground`` where missing (sample the DEM with
    :func:`sample_dem` at the footprint, e.g. at ``representative_point()``).

    Args:
        frame: Table with the standard's columns (missing columns count as all missing).
        ground: Optional elevations (one per row, or one value) for rows without
            ``ground_elevation``.

    Returns:
        :class:`BuildingHeights`; NaN where the height or the ground is unknown (``extrude``
        then reports the feature as skipped).
    """
    n = len(frame)
    height = _column(frame, "height", n)
    storeys = _column(frame, "storeys", n)
    storey_h = _column(frame, "storey_height", n)
    storey_h = np.where(np.isfinite(storey_h) & (storey_h > 0), storey_h, DEFAULT_STOREY_HEIGHT)
    roof_h = _column(frame, "roof_height", n)
    roof_h = np.where(np.isfinite(roof_h) & (roof_h > 0), roof_h, 0.0)
    if "roof_type" in frame:
        pitched = _pitched(frame["roof_type"])
    else:
        pitched = np.zeros(n, bool)
    roof_h = np.where(pitched, roof_h, 0.0)
    given = np.isfinite(height) & (height > 0)
    top_rel = np.where(given, height, storeys * storey_h + roof_h)
    top_rel = np.where(np.isfinite(top_rel) & (top_rel > 0), top_rel, np.nan)
    roof_h = np.minimum(roof_h, np.nan_to_num(top_rel))
    base = _column(frame, "ground_elevation", n)
    if ground is not None:
        fill = per_feature(ground, n, "ground")
        base = np.where(np.isfinite(base), base, fill)
    return BuildingHeights(base, base + top_rel - roof_h, base + top_rel)
