"""The triangle mesh every builder returns and every tile writer takes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Codes of the surface kinds kept per vertex (CityGML boundary surfaces and our own parts).
SURFACE_CODES = {"unknown": 0, "GroundSurface": 1, "WallSurface": 2, "RoofSurface": 3,
                 "ClosureSurface": 4, "OuterCeilingSurface": 5, "OuterFloorSurface": 6,
                 "road": 10, "rail": 11, "bridge_deck": 12, "tunnel": 13, "pipe": 20}


@dataclass
class Mesh:
    """Triangles of many features, in the store CRS.

    Attributes:
        positions: (n, 3) float64: x, y in the store CRS (projected, metres), z orthometric
            metres. Tile writers convert to ECEF themselves.
        indices: (m, 3) uint32 triangles, counter-clockwise seen from outside (outward normals).
        feature_ids: (n,) uint32: row of the feature (in the caller's attribute table) each vertex
            belongs to.
        surface_types: (n,) uint8 codes from :data:`SURFACE_CODES`, or None.
        colors: (n, 4) uint8 RGBA, or None.

    Builders emit separate vertices for each planar face (flat shading); smooth surfaces such as
    tubes share vertices. Normals are derived by the writer from the final positions.
    """

    positions: np.ndarray
    indices: np.ndarray
    feature_ids: np.ndarray
    surface_types: np.ndarray | None = None
    colors: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.indices = np.asarray(self.indices, dtype=np.uint32).reshape(-1, 3)
        self.feature_ids = np.asarray(self.feature_ids, dtype=np.uint32).reshape(-1)
        n = len(self.positions)
        if len(self.feature_ids) != n:
            raise ValueError(f"{len(self.feature_ids)} feature ids for {n} vertices")
        if self.indices.size and int(self.indices.max()) >= n:
            raise ValueError("triangle index out of range")
        if self.surface_types is not None:
            self.surface_types = np.asarray(self.surface_types, dtype=np.uint8).reshape(-1)
            if len(self.surface_types) != n:
                raise ValueError("surface_types must have one entry per vertex")
        if self.colors is not None:
            self.colors = np.asarray(self.colors, dtype=np.uint8).reshape(-1, 4)
            if len(self.colors) != n:
                raise ValueError("colors must have one entry per vertex")

    @classmethod
    def empty(cls) -> Mesh:
        """A mesh with nothing in it."""
        return cls(np.zeros((0, 3)), np.zeros((0, 3), np.uint32), np.zeros(0, np.uint32))

    @property
    def n_vertices(self) -> int:
        """Number of vertices."""
        return len(self.positions)

    @property
    def n_triangles(self) -> int:
        """Number of triangles."""
        return len(self.indices)

    @classmethod
    def concat(cls, meshes: Sequence[Mesh]) -> Mesh:
        """One mesh from many (indices shifted; optional arrays kept when all have them)."""
        meshes = [m for m in meshes if m.n_vertices]
        if not meshes:
            return cls.empty()
        offsets = np.cumsum([0] + [m.n_vertices for m in meshes[:-1]])
        indices = np.concatenate([m.indices + np.uint32(o) for m, o in zip(meshes, offsets,
                                                                           strict=True)])
        st = (np.concatenate([m.surface_types for m in meshes])
              if all(m.surface_types is not None for m in meshes) else None)
        col = (np.concatenate([m.colors for m in meshes])
               if all(m.colors is not None for m in meshes) else None)
        return cls(np.concatenate([m.positions for m in meshes]), indices,
                   np.concatenate([m.feature_ids for m in meshes]), st, col)

    def select(self, features: np.ndarray) -> Mesh:
        """The part of the mesh that belongs to the given feature ids (renumbered 0..k-1 in the
        order given)."""
        features = np.asarray(features, dtype=np.int64)
        lookup = np.full(int(max(self.feature_ids.max(initial=0), features.max(initial=0))) + 1,
                         -1, dtype=np.int64)
        lookup[features] = np.arange(len(features))
        keep_v = lookup[self.feature_ids] >= 0
        new_index = np.cumsum(keep_v) - 1
        keep_t = keep_v[self.indices].all(axis=1)
        return Mesh(self.positions[keep_v], new_index[self.indices[keep_t]],
                    lookup[self.feature_ids[keep_v]],
                    None if self.surface_types is None else self.surface_types[keep_v],
                    None if self.colors is None else self.colors[keep_v])

    def face_normals(self) -> np.ndarray:
        """Unit normals of the triangles (zero for degenerate ones)."""
        p = self.positions[self.indices]
        n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        length = np.linalg.norm(n, axis=1, keepdims=True)
        return np.divide(n, length, out=np.zeros_like(n), where=length > 0)

    def signed_volume(self) -> float:
        """Volume enclosed (divergence theorem); positive when normals point outward."""
        p = self.positions[self.indices] - self.positions.mean(axis=0)
        return float(np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])).sum() / 6.0)
