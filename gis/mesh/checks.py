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


def _edge_crosses(p0: np.ndarray, p1: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray,
                  eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Whether segments p0-p1 cross the interiors of triangles abc (row by row), strictly:
    Möller & Trumbore (1997), "Fast, minimum storage ray-triangle intersection", J. Graphics
    Tools 2(1), with the segment parameter and barycentrics more than ``eps`` inside.

    Returns:
        (crosses (n,) bool, crossing points (n, 3)).
    """
    d = p1 - p0
    e1, e2 = b - a, c - a
    h = np.cross(d, e2)
    det = np.einsum("ij,ij->i", e1, h)
    ok = np.abs(det) > 1e-12 * np.linalg.norm(d, axis=1) * np.linalg.norm(e1, axis=1) \
        * np.linalg.norm(e2, axis=1)  # not parallel (coplanar pairs are not tested)
    inv = np.divide(1.0, det, out=np.zeros_like(det), where=ok)
    s = p0 - a
    u = np.einsum("ij,ij->i", s, h) * inv
    q = np.cross(s, e1)
    v = np.einsum("ij,ij->i", d, q) * inv
    t = np.einsum("ij,ij->i", e2, q) * inv
    hit = ok & (u > eps) & (v > eps) & (u + v < 1 - eps) & (t > eps) & (t < 1 - eps)
    return hit, p0 + t[:, None] * d


def self_intersections(mesh: Mesh, eps: float = 1e-6, max_pairs: int = 2_000_000
                       ) -> dict[int, np.ndarray]:
    """Features whose triangles cross each other (a self-intersecting surface or solid).

    Pairs of triangles of the same feature whose bounding boxes overlap and that share no
    (welded) corner are tested: an edge of one crossing the interior of the other, strictly
    (barycentrics and segment parameter more than ``eps`` inside, so triangles that only touch
    along edges or at corners, and coplanar overlaps, do not count). Candidate pairs come from a
    sweep along x; a feature with more than ``max_pairs`` candidate pairs is not tested.

    Returns:
        ``{feature id: a crossing point (3,)}`` for each self-intersecting feature.
    """
    if not mesh.n_triangles:
        return {}
    w = weld(mesh)[mesh.indices]
    tri = mesh.positions[mesh.indices]
    feat = mesh.feature_ids[mesh.indices[:, 0]].astype(np.int64)
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    size = float(np.max(hi - lo, initial=0.0))
    pad = 1e-9 * max(size, 1.0)
    found: dict[int, np.ndarray] = {}
    for f in np.unique(feat):
        idx = np.flatnonzero(feat == f)
        if len(idx) < 2:
            continue
        order = idx[np.argsort(lo[idx, 0], kind="stable")]
        x0 = lo[order, 0]
        # for each triangle, the sorted ones starting before it ends (sweep along x)
        ends = np.searchsorted(x0, hi[order, 0] + pad, side="right")
        counts = ends - np.arange(len(order)) - 1
        if counts.sum() > max_pairs:
            continue
        i = np.repeat(np.arange(len(order)), counts)
        j = i + 1 + (np.arange(len(i)) - np.repeat(np.cumsum(counts) - counts, counts))
        a, b = order[i], order[j]
        overlap = ((lo[a] <= hi[b] + pad) & (lo[b] <= hi[a] + pad)).all(axis=1)
        a, b = a[overlap], b[overlap]
        shared = (w[a][:, :, None] == w[b][:, None, :]).any(axis=(1, 2))
        a, b = a[~shared], b[~shared]
        if not len(a):
            continue
        for s_, t_ in ((a, b), (b, a)):
            for k in range(3):
                hit, pts = _edge_crosses(tri[s_, k], tri[s_, (k + 1) % 3], tri[t_, 0],
                                         tri[t_, 1], tri[t_, 2], eps)
                if hit.any():
                    found[int(f)] = pts[np.argmax(hit)]
                    break
            if int(f) in found:
                break
    return found
