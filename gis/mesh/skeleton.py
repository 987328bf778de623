"""Straight skeleton of a polygon (holes allowed) by wavefront propagation, and its faces.

The wavefront of a polygon moves every edge inward at unit speed; vertices run along the angle
bisectors. Its topology changes at *edge events* (an edge shrinks to nothing) and *split events*
(a reflex vertex runs into an edge and splits the wavefront, or, for a hole, joins two wavefront
loops). The traces of the vertices are the skeleton arcs; the region swept by each edge is its
face, and lifting each face by its sweep time gives the hip roof (equal slopes on all sides).

The event logic is that of Felkel & Obdrzalek (1998), "Straight skeleton implementation", Proc.
SCCG'98, 210-218, with the split-event test done on the moving wavefront itself (the reflex
vertex must hit the *current* segment of the edge at the event time), which avoids the known flaw
of their bisector test. Events are found by scanning all wavefront vertices after each event
(O(n^2) per event: footprints have few vertices), which keeps no stale event queue. Degenerate
events are resolved with a length tolerance: simultaneous events are processed one after the
other at the same time, zero-length edges collapse at once, a vertex between two opposite edges
(a "spike", when parallel edges meet) slides to its nearer neighbour, and nodes closer than the
tolerance are merged. The faces are then read from the planar graph of polygon edges and arcs and
*validated*: faces must tile the polygon (areas sum to the polygon's area) and every face node's
sweep time must equal its distance to the face's edge line (planar, equal slopes). A polygon that
fails gets status != 0 and the caller falls back to another roof.

The propagation can stop at a time ``t_stop``: the wavefront at that time is then returned as
"top" faces (for mansard roofs: steep faces up to the inset, a flat top inside).
"""

from __future__ import annotations

import numpy as np
from numba import njit

OK, FAIL_EVENTS, FAIL_FACES, FAIL_AREA, FAIL_PLANAR = 0, 1, 2, 3, 4
STATUS_TEXT = {OK: "ok", FAIL_EVENTS: "wavefront did not collapse",
               FAIL_FACES: "faces do not form a planar subdivision",
               FAIL_AREA: "faces do not tile the polygon",
               FAIL_PLANAR: "a face is not planar"}
TOP_OUTER, TOP_HOLE = -1, -2
_EDGE, _SPLIT = 0, 1


@njit(cache=True)
def _velocity(nx, ny, a, b):
    """Velocity of a vertex between wavefront edges a (incoming) and b (outgoing).

    v . n_a = v . n_b = 1 gives v = s / (1 + n_a . n_b) = 2 s / |s|^2 with s = n_a + n_b; the
    second form keeps its precision when the edges are nearly opposite (|s| small). Below
    |s| = 1e-9 (edges opposite within 1e-9 rad) the vertex is a spike.
    """
    sx = nx[a] + nx[b]
    sy = ny[a] + ny[b]
    s2 = sx * sx + sy * sy
    if s2 < 1e-18:
        return 0.0, 0.0, True
    return 2.0 * sx / s2, 2.0 * sy / s2, False


@njit(cache=True)
def _wavefront(xy, ring_start, ring_count, t_stop, tol):
    """Run the wavefront. Returns status, nodes (x, y, t), arcs (a, b, kind) with kind 1 = arc,
    2 = top edge, and for each original vertex its node (itself)."""
    n = xy.shape[0]
    dx = np.empty(n)
    dy = np.empty(n)
    nx = np.empty(n)
    ny = np.empty(n)
    ec = np.empty(n)
    nxt0 = np.empty(n, np.int64)
    for r in range(ring_start.shape[0]):
        s = ring_start[r]
        c = ring_count[r]
        for k in range(c):
            i = s + k
            j = s + (k + 1) % c
            nxt0[i] = j
            ddx = xy[j, 0] - xy[i, 0]
            ddy = xy[j, 1] - xy[i, 1]
            ln = np.sqrt(ddx * ddx + ddy * ddy)
            dx[i] = ddx / ln
            dy[i] = ddy / ln
            nx[i] = -dy[i]
            ny[i] = dx[i]
            ec[i] = nx[i] * xy[i, 0] + ny[i] * xy[i, 1]
    cap = 6 * n + 64
    vx0 = np.zeros(cap)
    vy0 = np.zeros(cap)
    vt0 = np.zeros(cap)
    vvx = np.zeros(cap)
    vvy = np.zeros(cap)
    vin = np.zeros(cap, np.int64)
    vout = np.zeros(cap, np.int64)
    vnext = np.zeros(cap, np.int64)
    vprev = np.zeros(cap, np.int64)
    alive = np.zeros(cap, np.bool_)
    spike = np.zeros(cap, np.bool_)
    reflex = np.zeros(cap, np.bool_)
    vnode = np.zeros(cap, np.int64)
    ncap = 4 * cap
    node_x = np.zeros(ncap)
    node_y = np.zeros(ncap)
    node_t = np.zeros(ncap)
    arc_a = np.zeros(ncap, np.int64)
    arc_b = np.zeros(ncap, np.int64)
    arc_k = np.zeros(ncap, np.int64)
    for i in range(n):
        nxt = nxt0[i]
        vnext[i] = nxt
        vprev[nxt] = i
        vout[i] = i
        vin[nxt] = i
    for i in range(n):
        vx0[i] = xy[i, 0]
        vy0[i] = xy[i, 1]
        a = vin[i]
        b = vout[i]
        vvx[i], vvy[i], spike[i] = _velocity(nx, ny, a, b)
        reflex[i] = dx[a] * dy[b] - dy[a] * dx[b] < -1e-10
        alive[i] = True
        vnode[i] = i
        node_x[i] = xy[i, 0]
        node_y[i] = xy[i, 1]
    nv = n
    nn = n
    na = 0
    n_alive = n
    T = 0.0
    for _ in range(10 * n + 100):
        # --- find the next event: scan every wavefront edge and every reflex vertex
        if n_alive == 0:
            return OK, node_x[:nn], node_y[:nn], node_t[:nn], arc_a[:na], arc_b[:na], arc_k[:na]
        if nv + 4 > cap or nn + 8 > ncap or na + 8 > ncap:
            break
        best_t = np.inf
        best_kind = -1
        best_key = np.inf
        ba = -1
        bb = -1
        # edge events: u -> w shrinks to nothing (at once when a spike or already ~0 long);
        # ties go to the shorter edge, and edge events win ties with split events
        for u in range(nv):
            if not alive[u]:
                continue
            w = vnext[u]
            ux = vx0[u] + vvx[u] * (T - vt0[u])
            uy = vy0[u] + vvy[u] * (T - vt0[u])
            wx = vx0[w] + vvx[w] * (T - vt0[w])
            wy = vy0[w] + vvy[w] * (T - vt0[w])
            if spike[u] or spike[w]:
                t = T
                key = np.sqrt((wx - ux) ** 2 + (wy - uy) ** 2)
            else:
                e = vout[u]
                ln = (wx - ux) * dx[e] + (wy - uy) * dy[e]
                rate = (vvx[w] - vvx[u]) * dx[e] + (vvy[w] - vvy[u]) * dy[e]
                if ln <= tol:
                    t = T
                elif rate < -1e-12:
                    t = T + ln / -rate
                else:
                    continue
                key = ln
            if (t < best_t - tol or (t <= best_t + tol and best_kind == _SPLIT)
                    or (t <= best_t + tol and key < best_key)):
                best_t = max(t, T)
                best_kind = _EDGE
                best_key = key
                ba = u
                bb = w
        # split events: reflex vertex r reaches the current segment u -> w of another edge
        for r in range(nv):
            if not alive[r] or not reflex[r] or spike[r]:
                continue
            rx = vx0[r] + vvx[r] * (T - vt0[r])
            ry = vy0[r] + vvy[r] * (T - vt0[r])
            for u in range(nv):
                if not alive[u]:
                    continue
                w = vnext[u]
                if u == r or w == r or spike[u] or spike[w]:
                    continue
                e = vout[u]
                if e == vin[r] or e == vout[r]:
                    continue
                dist = nx[e] * rx + ny[e] * ry - ec[e] - T
                app = 1.0 - (nx[e] * vvx[r] + ny[e] * vvy[r])
                if app <= 1e-12:
                    continue
                # behind the edge by less than the time tolerance: an event tied with the one
                # just processed (edge events win ties), so it happens now
                if dist < -2.0 * tol * app:
                    continue
                t = T + max(dist, 0.0) / app
                if (t >= best_t - tol) if best_kind == _EDGE else (t >= best_t):
                    continue
                sx = rx + vvx[r] * (t - T)
                sy = ry + vvy[r] * (t - T)
                ux = vx0[u] + vvx[u] * (t - vt0[u])
                uy = vy0[u] + vvy[u] * (t - vt0[u])
                wx = vx0[w] + vvx[w] * (t - vt0[w])
                wy = vy0[w] + vvy[w] * (t - vt0[w])
                su = (ux - sx) * dx[e] + (uy - sy) * dy[e]
                sw = (wx - sx) * dx[e] + (wy - sy) * dy[e]
                if su > tol or sw < -tol:
                    continue
                best_t = max(t, T)
                best_kind = _SPLIT
                best_key = 0.0
                ba = r
                bb = u
        if best_kind < 0 or best_t > t_stop:
            if not np.isfinite(t_stop):
                break
            # stop: the wavefront at t_stop becomes the top faces
            T = t_stop
            first = nn
            for v in range(nv):
                if alive[v]:
                    node_x[nn] = vx0[v] + vvx[v] * (T - vt0[v])
                    node_y[nn] = vy0[v] + vvy[v] * (T - vt0[v])
                    node_t[nn] = T
                    arc_a[na] = vnode[v]
                    arc_b[na] = nn
                    arc_k[na] = 1
                    na += 1
                    vnode[v] = nn
                    nn += 1
                    if na + n_alive + 2 > ncap:
                        return (FAIL_EVENTS, node_x[:nn], node_y[:nn], node_t[:nn], arc_a[:na],
                                arc_b[:na], arc_k[:na])
            for v in range(nv):
                if alive[v]:
                    arc_a[na] = vnode[v]
                    arc_b[na] = vnode[vnext[v]]
                    arc_k[na] = 2
                    na += 1
            if first == nn:
                return (FAIL_EVENTS, node_x[:nn], node_y[:nn], node_t[:nn], arc_a[:na],
                        arc_b[:na], arc_k[:na])
            return OK, node_x[:nn], node_y[:nn], node_t[:nn], arc_a[:na], arc_b[:na], arc_k[:na]
        # --- process it
        T = max(T, best_t)
        if best_kind == _EDGE:
            # u and w meet: one vertex between the edges before u and after w replaces them
            u = ba
            w = bb
            ux = vx0[u] + vvx[u] * (T - vt0[u])
            uy = vy0[u] + vvy[u] * (T - vt0[u])
            wx = vx0[w] + vvx[w] * (T - vt0[w])
            wy = vy0[w] + vvy[w] * (T - vt0[w])
            if spike[u] and not spike[w]:
                px, py = wx, wy
            elif spike[w] and not spike[u]:
                px, py = ux, uy
            else:
                px, py = 0.5 * (ux + wx), 0.5 * (uy + wy)
            node_x[nn] = px
            node_y[nn] = py
            node_t[nn] = T
            N = nn
            nn += 1
            for v in (u, w):
                arc_a[na] = vnode[v]
                arc_b[na] = N
                arc_k[na] = 1
                na += 1
            p = vprev[u]
            q = vnext[w]
            alive[u] = False
            alive[w] = False
            n_alive -= 2
            if p == w:
                continue
            x = nv
            nv += 1
            vx0[x] = px
            vy0[x] = py
            vt0[x] = T
            vin[x] = vin[u]
            vout[x] = vout[w]
            vvx[x], vvy[x], spike[x] = _velocity(nx, ny, vin[x], vout[x])
            a = vin[x]
            b = vout[x]
            reflex[x] = dx[a] * dy[b] - dy[a] * dx[b] < -1e-10
            vnode[x] = N
            alive[x] = True
            n_alive += 1
            vnext[p] = x
            vprev[x] = p
            vnext[x] = q
            vprev[q] = x
            news = (x, x)
        else:
            # r splits edge e = u -> w: p -> v1 -> w and u -> v2 -> q (for a hole: joins loops)
            r = ba
            u = bb
            w = vnext[u]
            e = vout[u]
            px = vx0[r] + vvx[r] * (T - vt0[r])
            py = vy0[r] + vvy[r] * (T - vt0[r])
            node_x[nn] = px
            node_y[nn] = py
            node_t[nn] = T
            N = nn
            nn += 1
            arc_a[na] = vnode[r]
            arc_b[na] = N
            arc_k[na] = 1
            na += 1
            p = vprev[r]
            q = vnext[r]
            alive[r] = False
            n_alive -= 1
            v1 = nv
            v2 = nv + 1
            nv += 2
            for v, a, b in ((v1, vin[r], e), (v2, e, vout[r])):
                vx0[v] = px
                vy0[v] = py
                vt0[v] = T
                vin[v] = a
                vout[v] = b
                vvx[v], vvy[v], spike[v] = _velocity(nx, ny, a, b)
                reflex[v] = dx[a] * dy[b] - dy[a] * dx[b] < -1e-10
                vnode[v] = N
                alive[v] = True
                n_alive += 1
            vnext[p] = v1
            vprev[v1] = p
            vnext[v1] = w
            vprev[w] = v1
            vnext[u] = v2
            vprev[v2] = u
            vnext[v2] = q
            vprev[q] = v2
            news = (v1, v2)
        # loops of one or two vertices are finished: their edges coincide
        for x in news:
            if not alive[x]:
                continue
            y = vnext[x]
            if vnext[y] != x:
                continue
            for k in range(2):
                v = x if k == 0 else y
                if not alive[v]:
                    continue
                vx = vx0[v] + vvx[v] * (T - vt0[v])
                vy = vy0[v] + vvy[v] * (T - vt0[v])
                nd = vnode[v]
                if abs(node_x[nd] - vx) > tol or abs(node_y[nd] - vy) > tol:
                    node_x[nn] = vx
                    node_y[nn] = vy
                    node_t[nn] = T
                    arc_a[na] = nd
                    arc_b[na] = nn
                    arc_k[na] = 1
                    na += 1
                    vnode[v] = nn
                    nn += 1
                alive[v] = False
                n_alive -= 1
            if y != x:
                arc_a[na] = vnode[x]
                arc_b[na] = vnode[y]
                arc_k[na] = 1
                na += 1
    return FAIL_EVENTS, node_x[:nn], node_y[:nn], node_t[:nn], arc_a[:na], arc_b[:na], arc_k[:na]


@njit(cache=True)
def _faces(xy, ring_start, ring_count, node_x, node_y, node_t, arc_a, arc_b, arc_k, tol_merge,
           tol_plane):
    """Faces of the planar graph of polygon edges, arcs and top edges (see module doc).

    Returns status, node representative of each node, face offsets, face node ids, face edge
    (original edge index, TOP_OUTER or TOP_HOLE)."""
    n = xy.shape[0]
    k = node_x.shape[0]
    rep = np.arange(k)
    for i in range(n, k):
        for j in range(i):
            if rep[j] == j and abs(node_x[i] - node_x[j]) <= tol_merge and \
                    abs(node_y[i] - node_y[j]) <= tol_merge:
                rep[i] = j
                break
    m0 = n + arc_a.shape[0]
    ea = np.empty(m0, np.int64)
    eb = np.empty(m0, np.int64)
    ek = np.empty(m0, np.int64)
    eid = np.empty(m0, np.int64)
    m = 0
    for r in range(ring_start.shape[0]):
        s = ring_start[r]
        c = ring_count[r]
        for q in range(c):
            ea[m] = s + q
            eb[m] = s + (q + 1) % c
            ek[m] = 0
            eid[m] = s + q
            m += 1
    for q in range(arc_a.shape[0]):
        a = rep[arc_a[q]]
        b = rep[arc_b[q]]
        if a != b:
            ea[m] = a
            eb[m] = b
            ek[m] = arc_k[q]
            eid[m] = -1
            m += 1
    # one edge per node pair: polygon edge first, then top edge, then arc
    key = np.empty(m, np.int64)
    for q in range(m):
        lo = min(ea[q], eb[q])
        hi = max(ea[q], eb[q])
        prio = 0 if ek[q] == 0 else (1 if ek[q] == 2 else 2)
        key[q] = (lo * k + hi) * 3 + prio
    order = np.argsort(key)
    keep = np.zeros(m, np.bool_)
    last = -1
    for q in order:
        pair = key[q] // 3
        if pair != last:
            keep[q] = True
            last = pair
    sel = np.flatnonzero(keep)
    ne = sel.shape[0]
    nh = 2 * ne
    h_org = np.empty(nh, np.int64)
    h_ang = np.empty(nh)
    for q in range(ne):
        e = sel[q]
        h_org[2 * q] = ea[e]
        h_org[2 * q + 1] = eb[e]
        ddx = node_x[eb[e]] - node_x[ea[e]]
        ddy = node_y[eb[e]] - node_y[ea[e]]
        h_ang[2 * q] = np.arctan2(ddy, ddx)
        h_ang[2 * q + 1] = np.arctan2(-ddy, -ddx)
    hkey = np.empty(nh)
    for h in range(nh):
        hkey[h] = h_org[h] * 8.0 + h_ang[h] + 4.0
    horder = np.argsort(hkey)
    hpos = np.empty(nh, np.int64)
    for i in range(nh):
        hpos[horder[i]] = i
    vstart = np.full(k, -1, np.int64)
    vdeg = np.zeros(k, np.int64)
    for i in range(nh):
        v = h_org[horder[i]]
        if vstart[v] < 0:
            vstart[v] = i
        vdeg[v] += 1
    hnext = np.empty(nh, np.int64)
    for h in range(nh):
        tw = h ^ 1
        b = h_org[tw]
        i = hpos[tw]
        j = vstart[b] + (i - vstart[b] - 1 + vdeg[b]) % vdeg[b]
        hnext[h] = horder[j]
    seen = np.zeros(nh, np.bool_)
    f_off = np.zeros(nh + 1, np.int64)
    f_nodes = np.empty(nh, np.int64)
    f_edge = np.empty(nh, np.int64)
    f_area = np.empty(nh)
    nf = 0
    nfn = 0
    edge_faces = np.zeros(n, np.int64)
    total = 0.0
    x0 = node_x[0]
    y0 = node_y[0]
    for h0 in range(nh):
        if seen[h0]:
            continue
        fwd_orig = 0
        rev_orig = 0
        fwd_top = 0
        orig_id = -1
        area = 0.0
        start_n = nfn
        h = h0
        steps = 0
        while not seen[h]:
            seen[h] = True
            e = sel[h // 2]
            forward = h % 2 == 0
            if ek[e] == 0:
                if forward:
                    fwd_orig += 1
                    orig_id = eid[e]
                else:
                    rev_orig += 1
            elif ek[e] == 2 and forward:
                fwd_top += 1
            a = h_org[h]
            b = h_org[h ^ 1]
            area += (node_x[a] - x0) * (node_y[b] - y0) - (node_x[b] - x0) * (node_y[a] - y0)
            f_nodes[nfn] = a
            nfn += 1
            h = hnext[h]
            steps += 1
        if h != h0:
            return FAIL_FACES, rep, f_off[:1], f_nodes[:0], f_edge[:0]
        area *= 0.5
        if rev_orig > 0:
            nfn = start_n
            continue
        if fwd_orig == 1:
            f_edge[nf] = orig_id
            edge_faces[orig_id] += 1
        elif fwd_orig == 0 and fwd_top == steps:
            f_edge[nf] = TOP_OUTER if area > 0 else TOP_HOLE
        elif abs(area) <= tol_merge * tol_merge:
            nfn = start_n
            continue
        else:
            return FAIL_FACES, rep, f_off[:1], f_nodes[:0], f_edge[:0]
        if fwd_orig == 1 and area <= 0:
            return FAIL_FACES, rep, f_off[:1], f_nodes[:0], f_edge[:0]
        total += area
        f_area[nf] = area
        nf += 1
        f_off[nf] = nfn
    for i in range(n):
        if edge_faces[i] != 1:
            return FAIL_FACES, rep, f_off[:1], f_nodes[:0], f_edge[:0]
    poly_area = 0.0
    for r in range(ring_start.shape[0]):
        s = ring_start[r]
        c = ring_count[r]
        for q in range(c):
            i = s + q
            j = s + (q + 1) % c
            poly_area += (xy[i, 0] - x0) * (xy[j, 1] - y0) - (xy[j, 0] - x0) * (xy[i, 1] - y0)
    poly_area *= 0.5
    if abs(total - poly_area) > 1e-7 * abs(poly_area) + tol_merge * tol_merge:
        return FAIL_AREA, rep, f_off[:nf + 1], f_nodes[:nfn], f_edge[:nf]
    # planarity: on the face of edge e, sweep time == distance to the line of e
    for f in range(nf):
        e = f_edge[f]
        if e < 0:
            continue
        j = e + 1 if e + 1 < n else 0
        for r in range(ring_start.shape[0]):
            if ring_start[r] <= e < ring_start[r] + ring_count[r]:
                j = ring_start[r] + (e - ring_start[r] + 1) % ring_count[r]
        ddx = xy[j, 0] - xy[e, 0]
        ddy = xy[j, 1] - xy[e, 1]
        ln = np.sqrt(ddx * ddx + ddy * ddy)
        for q in range(f_off[f], f_off[f + 1]):
            v = f_nodes[q]
            d = (-(node_x[v] - xy[e, 0]) * ddy + (node_y[v] - xy[e, 1]) * ddx) / ln
            if abs(d - node_t[v]) > tol_plane:
                return FAIL_PLANAR, rep, f_off[:nf + 1], f_nodes[:nfn], f_edge[:nf]
    return OK, rep, f_off[:nf + 1], f_nodes[:nfn], f_edge[:nf]


class Skeleton:
    """Straight skeleton faces of one polygon.

    Attributes:
        status: 0 when the faces passed validation (see :data:`STATUS_TEXT`).
        nodes: (k, 2) node coordinates; the first n are the polygon's vertices, exactly. Nodes
            merged into another one keep their own row but no face uses them.
        times: (k,) sweep time of each node (distance the wavefront travelled).
        face_offsets: (f + 1,) start of each face in ``face_nodes``.
        face_nodes: Node ids of each face ring, counter-clockwise (top holes clockwise).
        face_edge: (f,) polygon edge of each face (edge i runs from vertex i to the next of its
            ring), or TOP_OUTER / TOP_HOLE for the wavefront left at ``t_stop``.
    """

    __slots__ = ("status", "nodes", "times", "face_offsets", "face_nodes", "face_edge", "_arcs")

    def __init__(self, status: int, nodes: np.ndarray, times: np.ndarray,
                 face_offsets: np.ndarray, face_nodes: np.ndarray, face_edge: np.ndarray,
                 arcs: np.ndarray):
        self.status = status
        self.nodes = nodes
        self.times = times
        self.face_offsets = face_offsets
        self.face_nodes = face_nodes
        self.face_edge = face_edge
        self._arcs = arcs

    @property
    def ok(self) -> bool:
        """True when the skeleton is valid."""
        return self.status == OK

    @property
    def arcs(self) -> np.ndarray:
        """(a, 2) node ids of the skeleton arcs (merged nodes, no zero-length or repeated arcs,
        top edges of a stopped wavefront left out)."""
        a = self._arcs
        a = np.sort(a[a[:, 0] != a[:, 1]], axis=1)
        return np.unique(a, axis=0) if len(a) else a

    def faces(self) -> list[np.ndarray]:
        """Node ids of each face."""
        return [self.face_nodes[a:b] for a, b in
                zip(self.face_offsets[:-1], self.face_offsets[1:], strict=True)]


_EMPTY_I = np.zeros(0, np.int64)


def straight_skeleton(xy: np.ndarray, ring_counts: np.ndarray | list[int],
                      t_stop: float = np.inf) -> Skeleton:
    """Straight skeleton of a polygon given as rings, optionally stopped at ``t_stop``.

    Args:
        xy: (n, 2) ring vertices, not closed: exterior counter-clockwise first, then holes
            clockwise (interior on the left of every edge), no repeated or collinear vertices.
        ring_counts: Vertices per ring.
        t_stop: Stop the wavefront at this offset distance (mansard roofs); ``inf``: complete.

    Returns:
        The :class:`Skeleton` (check ``status``).
    """
    xy = np.asarray(xy, dtype=np.float64)
    counts = np.asarray(ring_counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    origin = xy.min(axis=0)
    local = xy - origin
    ext = local.max(axis=0)
    scale = max(float(ext[0]), float(ext[1]), 1e-9)
    status, x, y, t, a, b, kind = _wavefront(local, starts, counts, float(t_stop), 1e-9 * scale)
    n = len(xy)
    if status != OK:
        return Skeleton(status, xy, np.zeros(n), np.zeros(1, np.int64), _EMPTY_I, _EMPTY_I,
                        np.zeros((0, 2), np.int64))
    status, rep, off, fn, fe = _faces(local, starts, counts, x, y, t, a, b, kind, 1e-6 * scale,
                                      1e-5 * scale)
    nodes = np.empty((len(x), 2))
    nodes[:, 0] = x + origin[0]
    nodes[:, 1] = y + origin[1]
    nodes[:n] = xy
    arcs = np.stack([rep[a[kind == 1]], rep[b[kind == 1]]], axis=1)
    return Skeleton(int(status), nodes, t[rep], off, fn, fe, arcs)
