"""Road network preparation: noding, lixels, snapping crashes to lixels.

A *lixel* (linear pixel, Xie & Yan 2008, "Kernel density estimation of traffic accidents in a
network space", Computers, Environment and Urban Systems 32(5)) is a short piece of road that
plays the part a raster cell plays for areal data: crashes are counted on it and statistics are
computed per lixel.

Steps:

1. **Noding.** Road lines are exploded into single LineStrings. Line ends closer than
   ``tolerance`` become one node; a line end that touches the *inside* of another line (a T
   junction drawn without a vertex break) splits that line there. Crossings without a shared end
   are *not* junctions (bridges, tunnels, interchanges) unless ``planar=True`` nodes every
   crossing. The result is a set of *segments* between nodes.
2. **Lixels.** Each segment of length ``L`` is cut into ``max(1, round(L / length))`` equal
   pieces, so lixels are about ``length`` long and none is a sliver.
3. **Snapping.** Each crash goes to the nearest lixel within ``tolerance`` (shapely STRtree);
   crashes farther away are counted as unsnapped.

The lixel graph (lixels sharing a node are adjacent, at the distance between their midpoints
through the node) gives exact network distances between lixel midpoints: any path from one
midpoint to another leaves the first lixel through one end, crosses whole lixels and enters the
last through one end (:mod:`models.hotspots.weights`).
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numba import njit
from pyproj import CRS

from gis.errors import DataError


@dataclass
class LixelNetwork:
    """Lixels of a road network with its node topology.

    Attributes:
        lixels: GeoDataFrame (metric CRS) with ``lixel`` (0..n-1), ``segment``, ``road`` (index
            of the source road row), ``start_m``/``end_m`` (position along the segment),
            ``length`` and LineString geometry.
        lix_from, lix_to: Node ids of each lixel's ends (interior cut points are nodes too).
        seg_from, seg_to, seg_length: Segment ends (junction/dead-end nodes) and lengths.
        seg_ptr: Lixels of segment ``s`` are ``seg_ptr[s]:seg_ptr[s+1]``, ordered from its start.
        n_nodes: Number of nodes (junctions, ends and interior cut points).
    """

    lixels: gpd.GeoDataFrame
    lix_from: np.ndarray
    lix_to: np.ndarray
    seg_from: np.ndarray
    seg_to: np.ndarray
    seg_length: np.ndarray
    seg_ptr: np.ndarray
    n_nodes: int

    @property
    def n(self) -> int:
        return len(self.lixels)

    @property
    def crs(self) -> CRS:
        return self.lixels.crs

    @property
    def lengths(self) -> np.ndarray:
        return self.lixels["length"].to_numpy()

    def adjacency(self):
        """Lixel graph as CSR: lixels sharing a node, weighted by midpoint-to-midpoint distance.

        Parallel connections keep the shortest; a lixel is not its own neighbour.
        """
        from scipy import sparse

        n = self.n
        nodes = np.concatenate([self.lix_from, self.lix_to])
        lix = np.concatenate([np.arange(n), np.arange(n)])
        order = np.argsort(nodes, kind="stable")
        nodes, lix = nodes[order], lix[order]
        starts = np.flatnonzero(np.r_[True, nodes[1:] != nodes[:-1]])
        counts = np.diff(np.r_[starts, len(nodes)])
        rows, cols = [], []
        for k in np.unique(counts[counts > 1]):
            group = starts[counts == k][:, None] + np.arange(k)[None, :]  # (g, k) positions
            members = lix[group]
            a = np.repeat(members, k, axis=1).ravel()
            b = np.tile(members, (1, k)).ravel()
            rows.append(a)
            cols.append(b)
        if not rows:
            return sparse.csr_matrix((n, n))
        a = np.concatenate(rows)
        b = np.concatenate(cols)
        keep = a != b
        a, b = a[keep], b[keep]
        half = self.lengths / 2.0
        d = half[a] + half[b]
        # shortest of parallel links: sort by distance descending so the smallest wins on dup
        order = np.lexsort((-d, b, a))
        a, b, d = a[order], b[order], d[order]
        last = np.r_[(a[1:] != a[:-1]) | (b[1:] != b[:-1]), True]
        m = sparse.csr_matrix((d[last], (a[last], b[last])), shape=(n, n))
        m.sort_indices()
        return m


def to_metric(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``frame`` in a metric CRS: as is if projected, else TWD97/TM2 (EPSG:3826) in Taiwan,
    else its UTM zone."""
    if frame.crs is None:
        raise DataError("the layer has no CRS")
    if not frame.crs.is_geographic:
        return frame
    x0, y0, x1, y1 = frame.total_bounds
    if 116 <= x0 and x1 <= 123 and 20 <= y0 and y1 <= 27:
        return frame.to_crs("EPSG:3826")
    return frame.to_crs(frame.estimate_utm_crs())


def build_lixels(roads: gpd.GeoDataFrame, length: float = 100.0, tolerance: float = 0.5,
                 planar: bool = False) -> LixelNetwork:
    """Node ``roads`` and cut them into lixels of about ``length`` metres.

    Args:
        roads: Road lines in a metric CRS (see :func:`to_metric`).
        length: Target lixel length, metres.
        tolerance: Line ends closer than this are one node; an end this close to another line
            splits it (T junction).
        planar: Node every crossing too (for networks without bridges, or drawn without ends at
            junctions).

    Raises:
        DataError: no usable line, or a geographic CRS.
    """
    if length <= 0:
        raise DataError(f"lixel length must be positive, got {length}")
    if roads.crs is None or roads.crs.is_geographic:
        raise DataError("roads must be in a metric (projected) CRS")
    geoms = np.asarray(roads.geometry.values)
    road_idx = np.arange(len(geoms))
    parts, pidx = shapely.get_parts(geoms, return_index=True)
    road_idx = road_idx[pidx]
    parts = shapely.force_2d(parts)
    ok = (shapely.get_type_id(parts) == 1) & (shapely.length(parts) > 0)
    parts, road_idx = parts[ok], road_idx[ok]
    if len(parts) == 0:
        raise DataError("the road layer has no line of positive length")
    if planar:
        noded = shapely.get_parts(shapely.node(shapely.multilinestrings(parts)))
        # give each noded piece the road it lies on
        tree = shapely.STRtree(parts)
        mids = shapely.line_interpolate_point(noded, 0.5, normalized=True)
        hit = tree.query_nearest(mids, all_matches=False)
        order = np.argsort(hit[0])
        road_idx = road_idx[hit[1][order]]
        parts = noded
        ok = shapely.length(parts) > 0
        parts, road_idx = parts[ok], road_idx[ok]
    else:
        parts, road_idx = _split_t_junctions(parts, road_idx, tolerance)
    return _lixelize(parts, road_idx, length, tolerance, roads.crs)


def _split_t_junctions(lines: np.ndarray, road_idx: np.ndarray, tol: float):
    """Split lines where another line's end touches their interior."""
    ends = np.concatenate([shapely.get_point(lines, 0), shapely.get_point(lines, -1)])
    tree = shapely.STRtree(lines)
    pe, pl = tree.query(ends, predicate="dwithin", distance=tol)
    if len(pe) == 0:
        return lines, road_idx
    at = shapely.line_locate_point(lines[pl], ends[pe])
    lens = shapely.length(lines[pl])
    inner = (at > tol) & (at < lens - tol)
    cuts: dict[int, list[float]] = {}
    for li, a in zip(pl[inner].tolist(), at[inner].tolist()):
        cuts.setdefault(li, []).append(a)
    if not cuts:
        return lines, road_idx
    out, idx = [], []
    for i, line in enumerate(lines):
        if i not in cuts:
            out.append(line)
            idx.append(road_idx[i])
            continue
        stops = np.unique(np.round(np.r_[0.0, sorted(cuts[i]), line.length], 6))
        for a, b in zip(stops[:-1], stops[1:]):
            if b - a > 1e-9:
                out.append(_substring(line, a, b))
                idx.append(road_idx[i])
    return np.asarray(out, dtype=object), np.asarray(idx)


def _substring(line, a: float, b: float):
    xy = shapely.get_coordinates(line)
    cum = np.r_[0.0, np.cumsum(np.hypot(*np.diff(xy, axis=0).T))]
    return shapely.linestrings(_cut(xy, cum, a, b))


def _cut(xy: np.ndarray, cum: np.ndarray, a: float, b: float) -> np.ndarray:
    """Vertices of the piece of a polyline between distances a < b along it."""
    pa = _interp(xy, cum, a)
    pb = _interp(xy, cum, b)
    inner = (cum > a) & (cum < b)
    return np.vstack([pa, xy[inner], pb])


def _interp(xy: np.ndarray, cum: np.ndarray, d: float) -> np.ndarray:
    return np.array([np.interp(d, cum, xy[:, 0]), np.interp(d, cum, xy[:, 1])])


def _node_ids(points_xy: np.ndarray, tol: float) -> np.ndarray:
    """Cluster points closer than ``tol`` (single linkage); returns a cluster id per point."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    tree = cKDTree(points_xy)
    pairs = tree.query_pairs(tol, output_type="ndarray")
    n = len(points_xy)
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1]


def _lixelize(lines: np.ndarray, road_idx: np.ndarray, length: float, tol: float,
              crs) -> LixelNetwork:
    nseg = len(lines)
    seg_len = shapely.length(lines)
    starts = shapely.get_coordinates(shapely.get_point(lines, 0))
    stops = shapely.get_coordinates(shapely.get_point(lines, -1))
    nid = _node_ids(np.vstack([starts, stops]), tol)
    seg_from, seg_to = nid[:nseg], nid[nseg:]
    # a piece shorter than the tolerance whose ends are one node is a sliver, not a road
    keep = ~((seg_from == seg_to) & (seg_len < tol))
    if not keep.all():
        lines, road_idx, seg_len = lines[keep], road_idx[keep], seg_len[keep]
        seg_from, seg_to = seg_from[keep], seg_to[keep]
        nseg = len(lines)
    _, nid = np.unique(np.r_[seg_from, seg_to], return_inverse=True)
    seg_from, seg_to = nid[:nseg], nid[nseg:]
    n_nodes = int(nid.max()) + 1
    pieces = np.maximum(1, np.round(seg_len / length)).astype(np.int64)
    seg_ptr = np.r_[0, np.cumsum(pieces)]
    n = int(seg_ptr[-1])
    coords, cidx = shapely.get_coordinates(lines, return_index=True)
    bounds = np.searchsorted(cidx, np.arange(nseg + 1))
    out_xy, offsets, start_m, end_m = _cut_lines(coords, bounds, pieces, seg_ptr)
    # lixel ends: the segment's nodes at its two ends, new nodes at the inner cuts
    inner_count = pieces - 1
    inner_ptr = np.r_[0, np.cumsum(inner_count)]
    next_node = n_nodes + int(inner_ptr[-1])
    j = np.arange(n) - np.repeat(seg_ptr[:-1], pieces)  # position of the lixel in its segment
    seg_of = np.repeat(np.arange(nseg), pieces)
    inner_id = n_nodes + np.repeat(inner_ptr[:-1], pieces) + j  # node at the lixel's far end
    lix_from = np.where(j == 0, seg_from[seg_of], inner_id - 1)
    lix_to = np.where(j == pieces[seg_of] - 1, seg_to[seg_of], inner_id)
    lens = end_m - start_m
    frame = gpd.GeoDataFrame(
        pd.DataFrame({"lixel": np.arange(n), "segment": seg_of, "road": road_idx[seg_of],
                      "start_m": start_m, "end_m": end_m, "length": lens}),
        geometry=shapely.linestrings(out_xy, indices=np.repeat(np.arange(n), np.diff(offsets))),
        crs=crs)
    return LixelNetwork(frame, lix_from, lix_to, seg_from, seg_to, seg_len, seg_ptr, next_node)


@njit(cache=True)
def _cut_lines(coords, bounds, pieces, seg_ptr):
    """Cut each polyline ``s`` (vertices ``coords[bounds[s]:bounds[s+1]]``) into ``pieces[s]``
    equal parts; returns the parts' vertices, their offsets, and start/end distances."""
    nseg = len(pieces)
    n = seg_ptr[nseg]
    out = np.empty((len(coords) + 2 * n, 2))
    offsets = np.zeros(n + 1, np.int64)
    start_m = np.empty(n)
    end_m = np.empty(n)
    q = 0
    for s in range(nseg):
        a0 = bounds[s]
        m = bounds[s + 1] - a0
        cum = np.zeros(m)
        for v in range(1, m):
            dx = coords[a0 + v, 0] - coords[a0 + v - 1, 0]
            dy = coords[a0 + v, 1] - coords[a0 + v - 1, 1]
            cum[v] = cum[v - 1] + np.sqrt(dx * dx + dy * dy)
        total = cum[m - 1]
        k = pieces[s]
        u = 0  # current edge: cum[u] <= position <= cum[u + 1]
        for j in range(k):
            li = seg_ptr[s] + j
            a = total * j / k
            b = total if j == k - 1 else total * (j + 1) / k
            start_m[li] = a
            end_m[li] = b
            if j == 0:
                out[q, 0] = coords[a0, 0]
                out[q, 1] = coords[a0, 1]
            else:
                out[q, 0] = out[q - 1, 0]  # the previous part's end
                out[q, 1] = out[q - 1, 1]
            q += 1
            while u < m - 2 and cum[u + 1] <= a:
                u += 1
            w = u + 1
            while w < m - 1 and cum[w] < b:
                out[q, 0] = coords[a0 + w, 0]
                out[q, 1] = coords[a0 + w, 1]
                q += 1
                w += 1
            if j == k - 1:
                out[q, 0] = coords[a0 + m - 1, 0]
                out[q, 1] = coords[a0 + m - 1, 1]
            else:
                e = u
                while e < m - 2 and cum[e + 1] < b:
                    e += 1
                seg = cum[e + 1] - cum[e]
                t = (b - cum[e]) / seg if seg > 0 else 0.0
                out[q, 0] = coords[a0 + e, 0] + t * (coords[a0 + e + 1, 0] - coords[a0 + e, 0])
                out[q, 1] = coords[a0 + e, 1] + t * (coords[a0 + e + 1, 1] - coords[a0 + e, 1])
            q += 1
            offsets[li + 1] = q
    return out[:q].copy(), offsets, start_m, end_m


@dataclass
class Snapped:
    """Where each crash landed: ``lixel`` (-1 when unsnapped), ``distance`` to the road and
    ``position`` along its segment (metres from the segment start)."""

    lixel: np.ndarray
    distance: np.ndarray
    position: np.ndarray

    @property
    def snapped(self) -> np.ndarray:
        return self.lixel >= 0

    @property
    def unsnapped_count(self) -> int:
        return int((self.lixel < 0).sum())


def snap_points(net: LixelNetwork, points: np.ndarray, tolerance: float = 50.0) -> Snapped:
    """Nearest lixel of each point within ``tolerance`` metres (STRtree)."""
    points = np.asarray(points)
    n = len(points)
    lixel = np.full(n, -1, np.int64)
    dist = np.full(n, np.nan)
    pos = np.full(n, np.nan)
    if n == 0:
        return Snapped(lixel, dist, pos)
    geoms = net.lixels.geometry.values
    tree = shapely.STRtree(geoms)
    (pi, li), d = tree.query_nearest(points, max_distance=tolerance, return_distance=True,
                                     all_matches=False)
    lixel[pi] = li
    dist[pi] = d
    pos[pi] = net.lixels["start_m"].to_numpy()[li] + shapely.line_locate_point(geoms[li],
                                                                               points[pi])
    return Snapped(lixel, dist, pos)
