"""Content writers: turn a tile's feature list into glb or b3dm bytes, and fingerprint it so an
incremental rebuild can tell which tiles changed without encoding them."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from gis.mesh.base import Mesh
from tiles.b3dm import write_b3dm
from tiles.glb import GENERATOR, Compress, _defaults, write_glb
from tiles.metadata import metadata_class

#: Bump when the encoders change output for the same input (invalidates reuse).
ENCODER_VERSION = 1


class ContentWriter(Protocol):
    """What :func:`tiles.tileset.write_tileset` needs from a content source."""

    extension: str

    def digest(self, features: np.ndarray) -> str:
        """A fingerprint of the content the tile holding ``features`` would get."""

    def write(self, features: np.ndarray) -> bytes:
        """The content bytes of the tile holding ``features`` (indices into the input)."""


class MeshContent:
    """Tile content cut from one layer's mesh and attribute table.

    Args:
        mesh: All features' triangles (store CRS); ``feature_ids`` index ``features`` rows and
            every triangle's three vertices belong to one feature.
        features: Attribute table, one row per feature (positional).
        standard: NGIS standard name or None.
        format: ``glb`` (3D Tiles 1.1) or ``b3dm`` (1.0).
        compress: ``none``, ``quantize`` or ``meshopt``.
        class_name: Metadata class / layer name.
        crs: Store CRS (default the standard's national CRS).

    Raises:
        ValueError: A triangle spans two features, or ids exceed the table.
    """

    def __init__(self, mesh: Mesh, features: pd.DataFrame, standard: str | None, *,
                 format: Literal["glb", "b3dm"] = "glb", compress: Compress = "none",
                 class_name: str | None = None, crs: str | None = None) -> None:
        if format not in ("glb", "b3dm"):
            raise ValueError(f"format must be glb or b3dm, not {format!r}")
        self.class_name, self.crs = _defaults(standard, class_name, crs)
        self.mesh, self.standard, self.format, self.compress = mesh, standard, format, compress
        self.features = features.reset_index(drop=True)
        self.extension = format
        fid = mesh.feature_ids.astype(np.int64)
        n = len(self.features)
        if len(fid) and int(fid.max()) >= n:
            raise ValueError(f"feature id {int(fid.max())} but only {n} feature rows")
        tri_f = fid[mesh.indices] if mesh.n_triangles else np.zeros((0, 3), np.int64)
        if (tri_f != tri_f[:, :1]).any():
            raise ValueError("a triangle joins vertices of different features")
        self._vorder = np.argsort(fid, kind="stable")
        vpos = np.empty(len(fid), np.int64)
        vpos[self._vorder] = np.arange(len(fid))
        sorted_f = fid[self._vorder]
        self._vstart = np.searchsorted(sorted_f, np.arange(n), "left")
        self._vend = np.searchsorted(sorted_f, np.arange(n), "right")
        tf = tri_f[:, 0]
        self._torder = np.argsort(tf, kind="stable")
        sorted_t = tf[self._torder]
        self._tstart = np.searchsorted(sorted_t, np.arange(n), "left")
        self._tend = np.searchsorted(sorted_t, np.arange(n), "right")
        self._tri_local = (vpos[mesh.indices[self._torder]]
                           - self._vstart[sorted_t][:, None]).astype(np.int64)
        self._digests: list[bytes] | None = None
        mc = metadata_class(standard, self.features, self.class_name)
        self._columns = [p.name for p in mc.properties if p.name in self.features.columns]
        self.settings: dict[str, Any] = {
            "generator": GENERATOR, "encoder": ENCODER_VERSION, "format": format,
            "compress": compress, "standard": standard, "class": self.class_name,
            "crs": self.crs, "columns": self._columns}

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Vertices and triangles per feature (useful as tiling weights)."""
        return self._vend - self._vstart, self._tend - self._tstart

    def _feature_digests(self) -> list[bytes]:
        if self._digests is None:
            attr = pd.util.hash_pandas_object(self.features[self._columns], index=False) \
                .to_numpy() if self._columns else np.zeros(len(self.features), np.uint64)
            m = self.mesh
            out = []
            for f in range(len(self.features)):
                h = hashlib.blake2b(digest_size=16)
                vs = self._vorder[self._vstart[f]:self._vend[f]]
                h.update(np.ascontiguousarray(m.positions[vs]).tobytes())
                h.update(self._tri_local[self._tstart[f]:self._tend[f]].tobytes())
                if m.colors is not None:
                    h.update(m.colors[vs].tobytes())
                if m.surface_types is not None:
                    h.update(m.surface_types[vs].tobytes())
                h.update(int(attr[f]).to_bytes(8, "little"))
                out.append(h.digest())
            self._digests = out
        return self._digests

    def digest(self, features: np.ndarray) -> str:
        """Fingerprint of a tile's content: encoder settings plus, per feature in order, its
        geometry and attribute digests (the tile frame follows from the geometry)."""
        d = self._feature_digests()
        h = hashlib.blake2b(json.dumps(self.settings, sort_keys=True).encode(), digest_size=20)
        for f in np.asarray(features, np.int64):
            h.update(d[f])
        return h.hexdigest()

    def submesh(self, features: np.ndarray) -> Mesh:
        """The features' triangles as one mesh with feature ids renumbered 0..k-1 (in order)."""
        idx = np.asarray(features, np.int64)
        nv = self._vend[idx] - self._vstart[idx]
        nt = self._tend[idx] - self._tstart[idx]
        voff = np.concatenate([[0], np.cumsum(nv)[:-1]])
        toff = np.concatenate([[0], np.cumsum(nt)[:-1]])
        vsel = np.repeat(self._vstart[idx] - voff, nv) + np.arange(nv.sum())
        tsel = np.repeat(self._tstart[idx] - toff, nt) + np.arange(nt.sum())
        verts = self._vorder[vsel]
        tris = self._tri_local[tsel] + np.repeat(voff, nt)[:, None]
        m = self.mesh
        return Mesh(m.positions[verts], tris, np.repeat(np.arange(len(idx)), nv),
                    None if m.surface_types is None else m.surface_types[verts],
                    None if m.colors is None else m.colors[verts])

    def write(self, features: np.ndarray) -> bytes:
        """Encode the tile holding ``features``."""
        idx = np.asarray(features, np.int64)
        mesh = self.submesh(idx)
        frame = self.features.iloc[idx].reset_index(drop=True)
        if self.format == "b3dm":
            return write_b3dm(mesh, frame, self.standard, class_name=self.class_name,
                              crs=self.crs, compress=self.compress)
        return write_glb(mesh, frame, self.standard, compress=self.compress,
                         class_name=self.class_name, crs=self.crs)
