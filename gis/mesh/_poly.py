"""Footprints as flat ring arrays, and their triangulation (shared by LOD1 and LOD2 builders).

The footprints of all features are turned into one array of ring vertices (no closing vertex,
exterior counter-clockwise, holes clockwise: the interior is always on the left of an edge), with
exact duplicates and exactly collinear vertices removed, so walls, roofs and floors built from the
same arrays share their vertices bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mapbox_earcut as earcut
import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

from gis.mesh.report import MeshReport

_POLYGON, _MULTIPOLYGON, _COLLECTION = 3, 6, 7


@dataclass
class Rings:
    """The polygons of many features as flat arrays.

    Attributes:
        xy: (n, 2) ring vertices, rings one after the other, not closed.
        ring_start, ring_count: (r,) first vertex and number of vertices of each ring.
        ring_poly: (r,) polygon of each ring; a polygon's rings are consecutive, exterior first.
        poly_ring_start, poly_ring_count: (p,) first ring and number of rings of each polygon.
        poly_feature: (p,) feature (input row) of each polygon.
        polys: (p,) the oriented shapely polygons (before vertex cleaning; same shape).
    """

    xy: np.ndarray
    ring_start: np.ndarray
    ring_count: np.ndarray
    ring_poly: np.ndarray
    poly_ring_start: np.ndarray
    poly_ring_count: np.ndarray
    poly_feature: np.ndarray
    polys: np.ndarray

    @property
    def n_polys(self) -> int:
        """Number of polygons."""
        return len(self.poly_feature)

    def vertex_ring(self) -> np.ndarray:
        """(n,) ring of each vertex."""
        return np.repeat(np.arange(len(self.ring_start)), self.ring_count)

    def vertex_poly(self) -> np.ndarray:
        """(n,) polygon of each vertex."""
        return np.repeat(self.ring_poly, self.ring_count)

    def next_vertex(self) -> np.ndarray:
        """(n,) index of the following vertex of the same ring."""
        nxt = np.arange(1, len(self.xy) + 1)
        ends = self.ring_start + self.ring_count - 1
        nxt[ends] = self.ring_start
        return nxt

    def prev_vertex(self) -> np.ndarray:
        """(n,) index of the preceding vertex of the same ring."""
        prv = np.arange(-1, len(self.xy) - 1)
        prv[self.ring_start] = self.ring_start + self.ring_count - 1
        return prv

    def poly_has_holes(self) -> np.ndarray:
        """(p,) True for polygons with interior rings."""
        return self.poly_ring_count > 1

    def poly_vertex_range(self, p: int) -> tuple[int, int]:
        """First vertex and end (exclusive) of polygon ``p``."""
        r0 = self.poly_ring_start[p]
        r1 = r0 + self.poly_ring_count[p] - 1
        return int(self.ring_start[r0]), int(self.ring_start[r1] + self.ring_count[r1])

    def subset(self, polys: np.ndarray) -> Rings:
        """The rings of some polygons only (in the order given)."""
        polys = np.asarray(polys, dtype=np.int64)
        rs = self.poly_ring_start[polys]
        rc = self.poly_ring_count[polys]
        rings = _ranges(rs, rc)
        counts = self.ring_count[rings]
        verts = _ranges(self.ring_start[rings], counts)
        ring_start = (np.cumsum(counts) - counts).astype(np.int64)
        return Rings(self.xy[verts], ring_start, counts.copy(),
                     np.repeat(np.arange(len(polys)), rc), (np.cumsum(rc) - rc).astype(np.int64),
                     rc.copy(), self.poly_feature[polys], self.polys[polys])


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s + c)`` for each pair, vectorised."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.cumsum(counts) - counts
    return np.repeat(np.asarray(starts, np.int64) - offsets, counts) + np.arange(total)


def as_geometry_array(geoms: Sequence | np.ndarray) -> np.ndarray:
    """A 1-D object array of shapely geometries (None allowed) from a sequence or GeoSeries."""
    values = getattr(geoms, "values", geoms)
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


def polygonal(geom) -> Polygon | MultiPolygon | None:
    """The polygonal part of a geometry (collections searched), None when it has none."""
    if geom is None or geom.is_empty:
        return None
    if isinstance(geom, (Polygon, MultiPolygon)):
        return geom
    parts: list[Polygon] = []
    for g in getattr(geom, "geoms", []):
        sub = polygonal(g)
        if sub is not None:
            parts.extend(getattr(sub, "geoms", [sub]))
    return MultiPolygon(parts) if parts else None


def polygon_rings(footprints: Sequence | np.ndarray, local: MeshReport,
                  keep: np.ndarray | None = None, min_edge: float = 0.0) -> Rings:
    """Validated, oriented, cleaned rings of the footprints.

    Args:
        footprints: Polygon / MultiPolygon per feature (None and empty allowed: reported).
        local: Report to add skipped features and repairs to.
        keep: Optional mask of features to use (others are left out without a report).
        min_edge: Vertices closer than this to the previous one are dropped (0: exact duplicates).

    Returns:
        The rings. Invalid footprints are repaired with ``shapely.make_valid`` (polygonal parts
        kept, noted); empty, non-polygonal and zero-area ones are skipped and reported.
    """
    geoms = as_geometry_array(footprints)
    n = len(geoms)
    use = np.ones(n, bool) if keep is None else np.asarray(keep, bool).copy()
    tid = shapely.get_type_id(geoms)
    for i in np.flatnonzero(use & ((tid < 0) | shapely.is_empty(geoms))):
        local.skip(i, "empty or missing footprint")
        use[i] = False
    for i in np.flatnonzero(use & (tid != _POLYGON) & (tid != _MULTIPOLYGON)):
        g = polygonal(geoms[i])
        if g is None:
            local.skip(i, f"footprint is a {geoms[i].geom_type}, not a polygon")
            use[i] = False
        else:
            geoms[i] = g
    bad = np.flatnonzero(use)[~shapely.is_valid(geoms[use])]
    for i in bad:
        reason = shapely.is_valid_reason(geoms[i])
        g = polygonal(shapely.make_valid(geoms[i]))
        if g is None or g.area <= 0:
            local.skip(i, f"invalid footprint ({reason}) without area after make_valid")
            use[i] = False
        else:
            geoms[i] = g
            local.note(i, f"invalid footprint ({reason}) repaired with make_valid")
    idx = np.flatnonzero(use)
    oriented = shapely.orient_polygons(geoms[idx], exterior_cw=False)
    polys, pf = shapely.get_parts(oriented, return_index=True)
    pfeat = idx[pf]
    rings, rpoly = shapely.get_rings(polys, return_index=True)
    coords, cring = shapely.get_coordinates(rings, return_index=True)
    nr = len(rings)
    count = np.bincount(cring, minlength=nr)
    start = np.cumsum(count) - count
    keepv = np.ones(len(coords), bool)
    keepv[start + count - 1] = False  # closing vertex
    xy, vring = coords[keepv], cring[keepv]
    xy, vring = _clean(xy, vring, nr, min_edge)
    count = np.bincount(vring, minlength=nr)
    ring_ok = count >= 3
    start = np.cumsum(count) - count
    # signed areas (shoelace with local origin), to drop zero-area rings
    area = _ring_areas(xy, start, count)
    ring_ok &= area != 0
    exterior = np.zeros(nr, bool)
    if nr:
        exterior[np.concatenate([[0], np.flatnonzero(np.diff(rpoly)) + 1])] = True
    poly_ok = np.zeros(len(polys), bool)
    poly_ok[rpoly[exterior & ring_ok]] = True
    ring_ok &= poly_ok[rpoly]
    # report features left without any polygon
    feat_ok = np.zeros(n, bool)
    feat_ok[pfeat[poly_ok]] = True
    for i in idx[~feat_ok[idx]]:
        local.skip(i, "footprint has no area")
    vkeep = ring_ok[vring]
    xy = xy[vkeep]
    count = count[ring_ok]
    rpoly = rpoly[ring_ok]
    old_to_new = np.cumsum(poly_ok) - 1
    rpoly = old_to_new[rpoly]
    np_ = int(poly_ok.sum())
    prc = np.bincount(rpoly, minlength=np_)
    return Rings(xy, (np.cumsum(count) - count).astype(np.int64), count.astype(np.int64),
                 rpoly.astype(np.int64), (np.cumsum(prc) - prc).astype(np.int64),
                 prc.astype(np.int64), pfeat[poly_ok].astype(np.int64), polys[poly_ok])


def _ring_areas(xy: np.ndarray, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Signed area of each ring (counter-clockwise positive)."""
    nr = len(start)
    if not len(xy):
        return np.zeros(nr)
    vring = np.repeat(np.arange(nr), count)
    origin = xy[np.minimum(start, len(xy) - 1)][vring]
    p = xy - origin
    nxt = np.arange(1, len(xy) + 1)
    ends = start + count - 1
    nxt[ends[count > 0]] = start[count > 0]
    q = p[nxt]
    cross = p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]
    return np.bincount(vring, weights=cross, minlength=nr) / 2.0


def _clean(xy: np.ndarray, vring: np.ndarray, nr: int,
           min_edge: float) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated and exactly collinear ring vertices (a few passes)."""
    for _ in range(6):
        if not len(xy):
            break
        count = np.bincount(vring, minlength=nr)
        start = np.cumsum(count) - count
        pos = np.arange(len(xy)) - start[vring]
        c = count[vring]
        nxt = start[vring] + (pos + 1) % c
        prv = start[vring] + (pos - 1) % c
        d = xy[nxt] - xy
        dup = (np.hypot(d[:, 0], d[:, 1]) <= min_edge) if min_edge > 0 else (d == 0).all(axis=1)
        if dup.any():
            xy, vring = xy[~dup], vring[~dup]
            continue
        p, q, r = xy[prv], xy, xy[nxt]
        # the same expression as earcut's area(), so earcut finds nothing more to drop
        col = ((q[:, 1] - p[:, 1]) * (r[:, 0] - q[:, 0])
               - (q[:, 0] - p[:, 0]) * (r[:, 1] - q[:, 1])) == 0
        if not col.any():
            break
        xy, vring = xy[~col], vring[~col]
    return xy, vring


# --------------------------------------------------------------------------- triangulation


def earcut_rings(xy: np.ndarray, ring_counts: Sequence[int]) -> np.ndarray:
    """Triangulate one polygon (exterior counter-clockwise, holes clockwise) with earcut.

    Triangles come back counter-clockwise. Vertices earcut leaves out (exactly collinear ones,
    which it filters) are put back by splitting the triangle on the edge they lie on, so the
    triangulation uses every ring vertex and meets walls without T-junctions.

    Args:
        xy: (n, 2) vertices of all rings, not closed.
        ring_counts: Number of vertices of each ring, exterior first.

    Returns:
        (m, 3) int64 triangle indices into ``xy``.
    """
    n = len(xy)
    local = xy - xy.min(axis=0)
    ends = np.cumsum(ring_counts).astype(np.uint32)
    tri = earcut.triangulate_float64(local, ends).astype(np.int64).reshape(-1, 3)
    if not len(tri):
        return tri
    p = local[tri]
    cross = ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
             - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0]))
    flip = cross < 0
    tri[flip] = tri[flip][:, ::-1]
    used = np.zeros(n, bool)
    used[tri.ravel()] = True
    if used.all():
        return tri
    return _put_back(tri, used, ring_counts)


def _put_back(tri: np.ndarray, used: np.ndarray, ring_counts: Sequence[int]) -> np.ndarray:
    """Split triangles so that runs of unused ring vertices between used p and q are used."""
    edge_tri: dict[tuple[int, int], int] = {}
    for t, (a, b, c) in enumerate(tri.tolist()):
        edge_tri[(a, b)] = t
        edge_tri[(b, c)] = t
        edge_tri[(c, a)] = t
    tris = tri.tolist()
    start = 0
    for cnt in ring_counts:
        ring = list(range(start, start + cnt))
        start += cnt
        first = next((k for k in range(cnt) if used[ring[k]]), None)
        if first is None:
            continue
        k = first
        while True:
            p = ring[k]
            run = []
            j = (k + 1) % cnt
            while not used[ring[j]]:
                run.append(ring[j])
                j = (j + 1) % cnt
            q = ring[j]
            if run and (p, q) in edge_tri:
                t = edge_tri.pop((p, q))
                a, b, c = tris[t]
                other = c if (a, b) == (p, q) else (a if (b, c) == (p, q) else b)
                chain = [p] + run + [q]
                tris[t] = [chain[0], chain[1], other]
                for u, v in zip(chain[1:-1], chain[2:], strict=True):
                    tris.append([u, v, other])
            k = j
            if k == first:
                break
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)


def cap_triangles(r: Rings, polys: np.ndarray | None = None) -> np.ndarray:
    """Counter-clockwise triangles covering each polygon (fan for convex ones, else earcut).

    Args:
        r: The rings.
        polys: Optional subset of polygons (default all).

    Returns:
        (m, 3) int64 indices into ``r.xy``.
    """
    if polys is None:
        polys = np.arange(r.n_polys)
    if not len(polys):
        return np.zeros((0, 3), np.int64)
    single = r.poly_ring_count[polys] == 1
    ring0 = r.poly_ring_start[polys]
    convex = np.zeros(len(polys), bool)
    cand = single
    if cand.any():
        nxt, prv = r.next_vertex(), r.prev_vertex()
        d0 = r.xy - r.xy[prv]
        d1 = r.xy[nxt] - r.xy
        left = (d0[:, 0] * d1[:, 1] - d0[:, 1] * d1[:, 0]) > 0
        ring_convex = np.logical_and.reduceat(left, r.ring_start) if len(left) else left
        convex = cand & ring_convex[ring0]
    out = []
    fan = ring0[convex]
    if len(fan):
        s, c = r.ring_start[fan], r.ring_count[fan]
        base = np.repeat(s, c - 2)
        k = _ranges(np.ones(len(fan), np.int64), c - 2)
        out.append(np.stack([base, base + k, base + k + 1], axis=1))
    if (~convex).any():
        out.append(_earcut_polys(r, polys[~convex]))
    return np.concatenate(out) if out else np.zeros((0, 3), np.int64)


def _earcut_polys(r: Rings, polys: np.ndarray) -> np.ndarray:
    """:func:`earcut_rings` of each polygon (the same triangles, in polygon order), with the
    per-polygon array work done once for all: only the earcut call stays in the loop."""
    rs, rc = r.poly_ring_start[polys], r.poly_ring_count[polys]
    last = rs + rc - 1
    v0 = r.ring_start[rs]
    counts = r.ring_start[last] + r.ring_count[last] - v0
    starts = np.cumsum(counts) - counts
    sub = r.xy[_ranges(v0, counts)]
    pid = np.repeat(np.arange(len(polys)), counts)
    mins = np.stack([np.minimum.reduceat(sub[:, 0], starts),
                     np.minimum.reduceat(sub[:, 1], starts)], axis=1)
    local = sub - mins[pid]  # as earcut_rings: each polygon relative to its own minimum
    rings = _ranges(rs, rc)
    ends = (r.ring_start[rings] + r.ring_count[rings] - np.repeat(v0, rc)).astype(np.uint32)
    ring0 = np.cumsum(rc) - rc
    parts = [earcut.triangulate_float64(local[a:a + n], ends[e:e + k])
             for a, n, e, k in zip(starts.tolist(), counts.tolist(), ring0.tolist(), rc.tolist(),
                                   strict=True)]
    ntri = np.array([len(t) // 3 for t in parts], np.int64)
    if not ntri.sum():
        return np.zeros((0, 3), np.int64)
    tri = np.concatenate(parts).astype(np.int64).reshape(-1, 3)
    tpoly = np.repeat(np.arange(len(polys)), ntri)
    tri += starts[tpoly][:, None]
    q = local[tri]
    cross = ((q[:, 1, 0] - q[:, 0, 0]) * (q[:, 2, 1] - q[:, 0, 1])
             - (q[:, 1, 1] - q[:, 0, 1]) * (q[:, 2, 0] - q[:, 0, 0]))
    flip = cross < 0
    tri[flip] = tri[flip][:, ::-1]
    used = np.zeros(len(local), bool)
    used[tri.ravel()] = True
    missing = ~np.logical_and.reduceat(used, starts) & (ntri > 0)
    if missing.any():  # collinear vertices earcut skipped: split triangles to use them
        split = np.split(tri, np.cumsum(ntri)[:-1])
        for k in np.flatnonzero(missing):
            a = starts[k]
            split[k] = _put_back(split[k] - a, used[a:a + counts[k]],
                                 r.ring_count[rs[k]:rs[k] + rc[k]]) + a
        tri = np.concatenate(split)
        tpoly = np.repeat(np.arange(len(polys)), [len(t) for t in split])
    return tri + (v0 - starts)[tpoly][:, None]


def triangulate_simple_rings(xy: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Counter-clockwise triangles of many simple rings without holes (each CCW, not closed).

    Convex rings (collinear vertices allowed) are fanned from their most convex vertex,
    vectorised; the others go through :func:`earcut_rings` one by one.

    Args:
        xy: (n, 2) vertices of all rings.
        starts, counts: First vertex and number of vertices of each ring (>= 3).

    Returns:
        (m, 3) int64 indices into ``xy``.
    """
    starts = np.asarray(starts, np.int64)
    counts = np.asarray(counts, np.int64)
    if not len(starts):
        return np.zeros((0, 3), np.int64)
    verts = _ranges(starts, counts)  # the rings' vertices, in ring order
    vring = np.repeat(np.arange(len(starts)), counts)
    first = np.cumsum(counts) - counts
    pos = np.arange(len(verts)) - first[vring]
    nxt = first[vring] + (pos + 1) % counts[vring]
    prv = first[vring] + (pos - 1) % counts[vring]
    local = xy[verts] - xy[verts].min(axis=0)
    d0 = local - local[prv]
    d1 = local[nxt] - local
    cross = d0[:, 0] * d1[:, 1] - d0[:, 1] * d1[:, 0]
    size = np.maximum(np.abs(d0).max(axis=1), np.abs(d1).max(axis=1))
    concave = cross < -1e-12 * size * size
    convex = ~np.logical_or.reduceat(concave, first)
    out = []
    fan = np.flatnonzero(convex)
    if len(fan):
        s, c = starts[fan], counts[fan]
        # start at the most convex vertex so collinear runs do not give zero-area fans
        order = np.lexsort((-cross, vring))
        best = pos[order[first]]
        b = best[fan]
        ring = np.repeat(np.arange(len(fan)), c - 2)
        k = _ranges(np.ones(len(fan), np.int64), c - 2)
        cc = c[ring]
        tri = np.stack([b[ring], (b[ring] + k) % cc, (b[ring] + k + 1) % cc], axis=1)
        out.append(tri + s[ring][:, None])
    for r in np.flatnonzero(~convex):
        s, c = int(starts[r]), int(counts[r])
        out.append(earcut_rings(xy[s:s + c], [c]) + s)
    return np.concatenate(out) if out else np.zeros((0, 3), np.int64)
