"""Checks of built meshes: closed (watertight and consistently oriented) solids, volumes."""

from __future__ import annotations

import numpy as np

from gis.mesh.base import Mesh


def weld(mesh: Mesh) -> np.ndarray:
    """Welded vertex id of each vertex: equal (feature id, x, y, z), bit for bit, share an id."""
    key = np.column_stack([mesh.feature_ids.astype(np.float64), mesh.positions])
    _, inverse = np.unique(key, axis=0, return_inverse=True)
    return inverse.reshape(-1)


def feature_volumes(mesh: Mesh) -> np.ndarray:
    """Signed volume enclosed by each feature's triangles (positive for outward normals).

    Returns:
        (max feature id + 1,) volumes, 0 for ids without triangles.
    """
    if not mesh.n_triangles:
        return np.zeros(0)
    nf = int(mesh.feature_ids.max()) + 1
    counts = np.bincount(mesh.feature_ids, minlength=nf)
    centre = np.column_stack([np.bincount(mesh.feature_ids, mesh.positions[:, k], nf)
                              for k in range(3)]) / np.maximum(counts, 1)[:, None]
    tri_feat = mesh.feature_ids[mesh.indices[:, 0]]
    p = mesh.positions[mesh.indices] - centre[tri_feat][:, None, :]
    vol = np.einsum("ij,ij->i", p[:, 0], np.cross(p[:, 1], p[:, 2])) / 6.0
    return np.bincount(tri_feat, weights=vol, minlength=nf)


def closed_defects(mesh: Mesh, manifold: bool = True) -> dict[int, str]:
    """Features that are not closed, consistently oriented solids.

    After welding (:func:`weld`), every undirected edge of a feature must be used by exactly two
    triangles, once in each direction. Triangles with two welded-equal corners are ignored
    (zero-length edges); zero-area triangles with three distinct corners count.

    Args:
        mesh: The mesh.
        manifold: False to accept edges used by 2k triangles, k in each direction (solids of one
            feature touching along an edge, e.g. the two halves of a repaired bow-tie).

    Returns:
        ``{feature id: description}`` of the defective features (empty when all are closed).
    """
    if not mesh.n_triangles:
        return {}
    w = weld(mesh)[mesh.indices]
    ok = (w[:, 0] != w[:, 1]) & (w[:, 1] != w[:, 2]) & (w[:, 2] != w[:, 0])
    w = w[ok].astype(np.int64)
    feat = mesh.feature_ids[mesh.indices[ok, 0]]
    a = w.reshape(-1)
    b = np.roll(w, -1, axis=1).reshape(-1)
    f = np.repeat(feat, 3)
    n = int(w.max()) + 1 if len(w) else 1
    fwd_key = a * n + b
    keys, first, counts = np.unique(fwd_key, return_index=True, return_counts=True)
    rev_keys = (keys % n) * n + keys // n
    pos = np.searchsorted(keys, rev_keys)
    pos = np.minimum(pos, len(keys) - 1)
    rev_counts = np.where(keys[pos] == rev_keys, counts[pos], 0)
    bad_dup = counts > 1 if manifold else np.zeros(len(keys), bool)
    bad_unpaired = rev_counts != counts
    defects: dict[int, str] = {}
    for fid in f[first[bad_unpaired]]:
        defects.setdefault(int(fid), "a boundary or unpaired edge (open or misoriented)")
    for fid in f[first[bad_dup]]:
        defects.setdefault(int(fid), "an edge used twice in the same direction")
    return defects


def check_closed(mesh: Mesh, manifold: bool = True) -> list[str]:
    """Problems that keep the features of ``mesh`` from being closed solids with outward normals.

    Args:
        mesh: The mesh.
        manifold: See :func:`closed_defects`.

    Returns:
        One line per defective feature (open or inconsistently oriented surface, or a volume not
        above zero); empty when every feature is fine.
    """
    problems = [f"feature {fid}: {text}"
                for fid, text in sorted(closed_defects(mesh, manifold).items())]
    vol = feature_volumes(mesh)
    present = np.unique(mesh.feature_ids)
    for fid in present[vol[present] <= 0]:
        problems.append(f"feature {int(fid)}: volume {vol[fid]:.6g} <= 0")
    return problems
