"""2D local-inertial shallow-water model on a regular grid (the flood model's ``rain`` mode).

Method
------
Bates, Horritt & Fewtrell (2010, J. Hydrol. 387:33-45) drop the advection term of the 2D
shallow-water momentum equations; de Almeida, Bates, Freer & Souvignet (2012, Water Resour. Res.
48, W05528) add a theta-weighted average of the neighbouring face fluxes for numerical diffusion.
The unit-width discharge ``q`` on a cell face is advanced semi-implicitly::

    q^{n+1} = [theta q^n + (1-theta)/2 (q^n_left + q^n_right) - g h_f dt d(eta)/dx]
              / (1 + g dt n^2 |q^n| / h_f^{7/3})

with the face flow depth ``h_f = max(eta_i, eta_j) - max(z_i, z_j)`` (no flux below
``depth_threshold``), and the depth by continuity ``h += dt/dx * (q_in - q_out) + sources``.
The step is adaptive: ``dt = alpha * dx / sqrt(g * h_max)`` from the deepest cell of the previous
step (``alpha`` ~ 0.7, Bates 2010), clipped at ``dt_max`` and at forcing/snapshot times.

Positivity: when the total outflow of a cell over a step would exceed its water, all its outgoing
face fluxes are scaled down so it drains to (almost exactly) zero; the scaled fluxes are the ones
used for continuity and stored, so mass is conserved exactly. The scaling pass only runs on rows
where some face carried more than a quarter of its upstream cell (the only way a cell can
over-drain), so it costs nothing in ordinary flow.

Layout and speed: the grid is padded with a one-cell ring. Walls (blocked cells and the ring of a
closed domain) carry a huge bed level so their face depth is zero; sinks (NaN cells and the ring of
an open domain) take the outflow of their wet neighbours at critical depth, ``q = h sqrt(g h)``,
and the volume they receive is summed as boundary outflow. Depth is float64 (in float32 a small
rain increment added to many equal depths rounds the same way in every cell, so errors of ~1e-8
per step would add up rather than cancel: an estimate, not measured), bed, fluxes and outputs
float32; volumes are float64 sums. Each row keeps an
*active span* of columns (wet cells dilated by one in every direction, never shrinking) and the
loops cover only rows holding spans, so dry land costs nothing. A step is three passes over the
rows (numba, one thread or ``prange``): pass 1 the face fluxes and the face velocities of the
state the step starts from; pass 2 (rows flagged by pass 1 only) the positivity limiter; pass 3
continuity, rain and inflow sources, maximum depth, arrival time, cell speeds (mean of the face
velocities) and boundary outflow. The inner loops index row views from zero and avoid division
checks, so LLVM vectorises them; the friction term's ``h_f^{7/3}`` uses a bit-level inverse cube
root refined by Newton steps.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numba
import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit, prange, types
from numba.extending import intrinsic

G = 9.81
WALL = np.float32(1e20)
SINK = np.float32(-1e20)
_WALL_TEST = 1e19
_SINK_TEST = -1e19
_FM = {"nsz", "contract", "reassoc"}  # lets LLVM vectorise the row loops and their reductions
_LIMIT_EPS = 1e-6  # a drained cell keeps this fraction of its water (float32 fluxes round ~6e-8)


# --------------------------------------------------------------------------------------------
# Kernels (padded arrays: cells j in 1..ny, i in 1..nx; qx[j, i] = east face of (j, i),
# qy[j, i] = south face of (j, i), positive towards +i / +j).
# --------------------------------------------------------------------------------------------

@intrinsic
def _f32_bits(typingctx, x):
    """Reinterpret a float32 as int32 (an LLVM bitcast: free, vectorisable)."""
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.IntType(32))

    return sig, codegen


@intrinsic
def _bits_f32(typingctx, x):
    """Reinterpret an int32 as float32."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.FloatType())

    return sig, codegen


@njit(cache=True, inline="always", error_model="numpy")
def _inv_cbrt(x):
    """x^(-1/3) for x > 0: bit-level first guess (< 4 % off), two Newton steps (~1e-4)."""
    i = _f32_bits(np.float32(x))
    y = np.float64(_bits_f32(np.int32(0x54A2FA8C) - i // np.int32(3)))
    y = y * (4.0 - x * y * y * y) * (1.0 / 3.0)
    y = y * (4.0 - x * y * y * y) * (1.0 / 3.0)
    return y


@njit(cache=True, inline="always", error_model="numpy")
def _face_flux(hc, zc, he, ze, q0, qa, qb, nsq, dt, dx, theta, hmin):
    """New unit-width discharge from cell c to cell e (positive c -> e), any cell kinds."""
    if ze < _SINK_TEST:
        if zc < _SINK_TEST or hc <= hmin:
            return 0.0
        return hc * math.sqrt(G * hc)
    if zc < _SINK_TEST:
        if he <= hmin:
            return 0.0
        return -he * math.sqrt(G * he)
    return _face_flux_regular(hc, zc, he, ze, q0, qa, qb, nsq, dt, dx, theta, hmin)


@njit(cache=True, inline="always", error_model="numpy")
def _face_flux_regular(hc, zc, he, ze, q0, qa, qb, nsq, dt, dx, theta, hmin):
    """Branch-free flux between two cells that are not sinks (walls give zero face depth).

    ``(num / den)`` with ``den = 1 + g dt n^2 |q0| hf^(-7/3)`` is evaluated with one division
    as ``num hf^2 / (hf^2 + g dt n^2 |q0| hf^(-1/3))``.
    """
    etac = hc + zc
    etae = he + ze
    hf = max(etac, etae) - max(zc, ze)
    hfs = max(hf, hmin)
    qt = theta * q0 + (0.5 - 0.5 * theta) * (qa + qb)
    num = qt - (G * dt / dx) * hf * (etae - etac)
    h2 = hfs * hfs
    q = num * h2 / (h2 + (G * dt) * nsq * abs(q0) * _inv_cbrt(hfs))
    return q if hf > hmin else 0.0


@njit(cache=True, inline="always", error_model="numpy")
def _face_vel(hc, zc, he, ze, q0, vel_depth):
    """Velocity ``q0 / h_face`` of a face of the current state (0 on faces shallower than
    ``vel_depth``: thin films over steps give no meaningful velocity)."""
    if ze < _SINK_TEST:
        hf = hc
    elif zc < _SINK_TEST:
        hf = he
    else:
        hf = max(hc + zc, he + ze) - max(zc, ze)
    return q0 / hf if hf > vel_depth else 0.0


@njit(cache=True, inline="always", error_model="numpy")
def _x_faces(h0, z0, qo, qn, uo, n0, nstep, count, n2s, dt, dx, theta, hmin, vel_depth):
    """Faces k = 0..count-1 of a row: cells (k, k+1) of the views; theta neighbours qo[k], qo[k+2].
    ``uo[k]`` gets the velocity of the state the step starts from (old flux over face depth).

    Views start one face to the left, so every index is >= 0 and LLVM vectorises the loop
    (a negative index would make numba emit a wrap-around select per access).
    """
    for k in range(count):
        n2 = n2s if nstep == 0 else 0.5 * (np.float64(n0[k]) + np.float64(n0[k + 1]))
        hc = h0[k]
        he = h0[k + 1]
        zc = np.float64(z0[k])
        ze = np.float64(z0[k + 1])
        q0 = np.float64(qo[k + 1])
        qn[k] = _face_flux_regular(hc, zc, he, ze, q0, np.float64(qo[k]),
                                   np.float64(qo[k + 2]), n2, dt, dx, theta, hmin)
        hf = max(hc + zc, he + ze) - max(zc, ze)
        uo[k] = q0 / hf if hf > vel_depth else 0.0


@njit(cache=True, inline="always", error_model="numpy")
def _y_faces(h0, h1, z0, z1, qom, qo0, qop, qn, vo, n0, n1, nstep, count, n2s, dt, dx, theta,
             hmin, vel_depth):
    """South faces k = 0..count-1 between rows 0 and 1 of the views (and their velocities)."""
    for k in range(count):
        n2 = n2s if nstep == 0 else 0.5 * (np.float64(n0[k]) + np.float64(n1[k]))
        hc = h0[k]
        he = h1[k]
        zc = np.float64(z0[k])
        ze = np.float64(z1[k])
        q0 = np.float64(qo0[k])
        qn[k] = _face_flux_regular(hc, zc, he, ze, q0, np.float64(qom[k]), np.float64(qop[k]),
                                   n2, dt, dx, theta, hmin)
        hf = max(hc + zc, he + ze) - max(zc, ze)
        vo[k] = q0 / hf if hf > vel_depth else 0.0


@njit(cache=True, inline="always", error_model="numpy")
def _row_velocity(hm, h0, hp, zm, z0, zp, qw, qn, qs, vm, count, hmin, vel_depth):
    """Running max of the cell speed from face velocities ``q / h_face`` (views: ``h0``, ``z0``
    and ``qw`` start one cell/face to the west; ``hm``/``hp`` are the rows above/below).

    ``h_face`` comes from the depths the fluxes were computed for (the state before the step).
    """
    for k in range(count):
        zc = np.float64(z0[k + 1])
        etac = h0[k + 1] + zc
        zw = np.float64(z0[k])
        ze = np.float64(z0[k + 2])
        zn = np.float64(zm[k])
        zs = np.float64(zp[k])
        hw = max(h0[k] + zw, etac) - max(zw, zc)
        he = max(h0[k + 2] + ze, etac) - max(ze, zc)
        hn = max(hm[k] + zn, etac) - max(zn, zc)
        hs = max(hp[k] + zs, etac) - max(zs, zc)
        # faces shallower than vel_depth (thin films over steps) carry no velocity estimate
        uw = np.float64(qw[k]) / hw if hw > vel_depth else 0.0
        ue = np.float64(qw[k + 1]) / he if he > vel_depth else 0.0
        vn = np.float64(qn[k]) / hn if hn > vel_depth else 0.0
        vs = np.float64(qs[k]) / hs if hs > vel_depth else 0.0
        u = 0.5 * (uw + ue)
        v = 0.5 * (vn + vs)
        sp = math.sqrt(u * u + v * v) if h0[k + 1] > vel_depth else 0.0
        vm[k] = max(np.float64(vm[k]), sp)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _fluxes_row(j, h, z, qxo, qxn, qyo, qyn, nsq, msk, lo, hi, flags, sinkrow, ux, vy, dt, dx,
                theta, hmin, vel_depth):
    """Pass 1 for row ``j``: new fluxes on its east faces and on the south faces below it; flag
    the rows that may over-drain; face velocities (old flux / face depth) of the state the step
    starts from into ``ux``/``vy`` (pass 3 turns them into cell speeds)."""
    ny = h.shape[0] - 2
    nx = h.shape[1] - 2
    quarter = 0.25 * dx / dt
    n2s = np.float64(nsq[0, 0])
    nstep = 0 if msk == 0 else 1
    a = lo[j]
    b = hi[j]
    fj = False
    fj1 = False
    if a < b:
        # east faces a-1 .. b-1: the first one alone (its left neighbour may not exist)
        i0 = a - 1
        n2 = 0.5 * (np.float64(nsq[j & msk, i0 & msk]) + np.float64(nsq[j & msk, a & msk]))
        qxn[j, i0] = _face_flux(h[j, i0], z[j, i0], h[j, a], z[j, a], qxo[j, i0],
                                qxo[j, i0 - 1] if i0 >= 1 else 0.0, qxo[j, a], n2, dt, dx,
                                theta, hmin)
        ux[j, i0] = _face_vel(h[j, i0], z[j, i0], h[j, a], z[j, a], qxo[j, i0], vel_depth)
        nrow = nsq[j & msk, (a & msk):]
        _x_faces(h[j, a:], z[j, a:], qxo[j, i0:], qxn[j, a:], ux[j, a:], nrow, nstep, b - a,
                 n2s, dt, dx, theta, hmin, vel_depth)
        # faces touching sinks (ring, NaN cells): critical-depth outflow
        if b - 1 == nx:
            ux[j, nx] = _face_vel(h[j, nx], z[j, nx], h[j, nx + 1], z[j, nx + 1], qxo[j, nx],
                                  vel_depth)
            qxn[j, nx] = _face_flux(h[j, nx], z[j, nx], h[j, nx + 1], z[j, nx + 1], 0.0,
                                    0.0, 0.0, 0.0, dt, dx, theta, hmin)
        if sinkrow[j]:
            for i in range(a - 1, b):
                if z[j, i] < _SINK_TEST or z[j, i + 1] < _SINK_TEST:
                    ux[j, i] = _face_vel(h[j, i], z[j, i], h[j, i + 1], z[j, i + 1], qxo[j, i],
                                         vel_depth)
                    qxn[j, i] = _face_flux(h[j, i], z[j, i], h[j, i + 1], z[j, i + 1], 0.0,
                                           0.0, 0.0, 0.0, dt, dx, theta, hmin)
        hv = h[j, i0:]
        qv = qxn[j, i0:]
        m = -1.0
        for k in range(b - i0):  # a max-reduction (vectorises) instead of a boolean 'or'
            q = np.float64(qv[k])
            m = max(m, max(q - quarter * hv[k], -q - quarter * hv[k + 1]))
        fj = m > 0.0
    # south faces over the union of this row's and the next row's spans
    a2 = min(a, lo[j + 1])
    b2 = max(b, hi[j + 1])
    if a2 < b2:
        if j == 0 or j == ny:  # faces to the ring row
            for i in range(a2, b2):
                n2 = 0.5 * (np.float64(nsq[j & msk, i & msk])
                            + np.float64(nsq[(j + 1) & msk, i & msk]))
                qa = np.float64(qyo[j - 1, i]) if j >= 1 else 0.0
                qb = np.float64(qyo[j + 1, i]) if j + 1 <= ny else 0.0
                vy[j, i] = _face_vel(h[j, i], z[j, i], h[j + 1, i], z[j + 1, i], qyo[j, i],
                                     vel_depth)
                qyn[j, i] = _face_flux(h[j, i], z[j, i], h[j + 1, i], z[j + 1, i],
                                       np.float64(qyo[j, i]), qa, qb, n2, dt, dx, theta, hmin)
        else:
            _y_faces(h[j, a2:], h[j + 1, a2:], z[j, a2:], z[j + 1, a2:], qyo[j - 1, a2:],
                     qyo[j, a2:], qyo[j + 1, a2:], qyn[j, a2:], vy[j, a2:],
                     nsq[j & msk, (a2 & msk):], nsq[(j + 1) & msk, (a2 & msk):], nstep,
                     b2 - a2, n2s, dt, dx, theta, hmin, vel_depth)
            if sinkrow[j] or sinkrow[j + 1]:  # redo the faces touching NaN cells
                for i in range(a2, b2):
                    if z[j, i] < _SINK_TEST or z[j + 1, i] < _SINK_TEST:
                        vy[j, i] = _face_vel(h[j, i], z[j, i], h[j + 1, i], z[j + 1, i],
                                             qyo[j, i], vel_depth)
                        qyn[j, i] = _face_flux(h[j, i], z[j, i], h[j + 1, i], z[j + 1, i], 0.0,
                                               0.0, 0.0, 0.0, dt, dx, theta, hmin)
        h0 = h[j, a2:]
        h1 = h[j + 1, a2:]
        qv = qyn[j, a2:]
        m0 = -1.0
        m1 = -1.0
        for k in range(b2 - a2):
            q = np.float64(qv[k])
            m0 = max(m0, q - quarter * h0[k])
            m1 = max(m1, -q - quarter * h1[k])
        fj = fj or m0 > 0.0
        fj1 = m1 > 0.0
    if fj:
        flags[j] = 1
    if fj1:
        flags[j + 1] = 1


@njit(cache=True, parallel=True, fastmath=_FM, error_model="numpy")
def _fluxes_par(h, z, qxo, qxn, qyo, qyn, nsq, msk, lo, hi, flags, sinkrow, ux, vy, dt, dx,
                theta, hmin, vel_depth, j0, j1):
    """Pass 1 over all rows, in parallel."""
    for j in prange(j0, j1):
        _fluxes_row(j, h, z, qxo, qxn, qyo, qyn, nsq, msk, lo, hi, flags, sinkrow, ux, vy, dt, dx,
                    theta, hmin, vel_depth)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _fluxes_ser(h, z, qxo, qxn, qyo, qyn, nsq, msk, lo, hi, flags, sinkrow, ux, vy, dt, dx,
                theta, hmin, vel_depth, j0, j1):
    """Pass 1 over all rows, one thread (small active areas: no fork/join per step)."""
    for j in range(j0, j1):
        _fluxes_row(j, h, z, qxo, qxn, qyo, qyn, nsq, msk, lo, hi, flags, sinkrow, ux, vy, dt, dx,
                    theta, hmin, vel_depth)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _velocity_pass(h, z, qx, qy, lo, hi, vmax, hmin, vel_depth):
    """Speeds of the final state (pass 1 records those of the state before each step)."""
    for j in range(1, h.shape[0] - 1):
        a = lo[j]
        b = hi[j]
        if a < b:
            _row_velocity(h[j - 1, a:], h[j, a - 1:], h[j + 1, a:], z[j - 1, a:], z[j, a - 1:],
                          z[j + 1, a:], qx[j, a - 1:], qy[j - 1, a:], qy[j, a:], vmax[j, a:],
                          b - a, hmin, vel_depth)


@njit(cache=True, inline="always", error_model="numpy")
def _limit_factors(hr, zr, qxw, qn, qs, fb, count, c):
    """Scale factor per cell (1, or avail/outflow for a cell that would drain below zero);
    ``fb[k+1]`` for cell k, ``fb[0]`` and ``fb[count+1]`` (the row's neighbours) set to 1."""
    fb[0] = 1.0
    fb[count + 1] = 1.0
    for k in range(count):
        qw = np.float64(qxw[k])
        qe = np.float64(qxw[k + 1])
        qnk = np.float64(qn[k])
        qsk = np.float64(qs[k])
        out = (max(qe, 0.0) - min(qw, 0.0) + max(qsk, 0.0) - min(qnk, 0.0)) * c
        avail = hr[k] * (1.0 - _LIMIT_EPS)
        zc = zr[k]
        normal = zc > _SINK_TEST and zc < _WALL_TEST
        fb[k + 1] = avail / out if (normal and out > avail) else 1.0


@njit(cache=True, inline="always", error_model="numpy")
def _limit_apply(qxw, qn, qs, fb, count):
    """Scale each face by its upstream cell's factor: the row's x faces (one writer each), its
    south faces flowing south and its north faces flowing north (the other rows write the
    opposite directions, so no face has two writers)."""
    for k in range(count + 1):  # x faces west of cell 0 .. east of cell count-1
        q = np.float64(qxw[k])
        qxw[k] = q * fb[k] if q > 0.0 else q * fb[k + 1]
    for k in range(count):
        q = np.float64(qs[k])
        if q > 0.0:
            qs[k] = q * fb[k + 1]
        q = np.float64(qn[k])
        if q < 0.0:
            qn[k] = q * fb[k + 1]


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _limit_row(j, h, z, qx, qy, lo, hi, flags, fbuf, dt, dx):
    """Pass 2 for a flagged row ``j``: scale the outgoing fluxes of cells that would drain
    below zero (two vectorised sweeps through a per-thread row buffer)."""
    if flags[j] == 0:
        return
    a = lo[j]
    b = hi[j]
    if a >= b:
        return
    fb = fbuf[numba.get_thread_id()]
    # the x face west of cell a belongs to cell a-1 too: include it (outside the span it is dry)
    _limit_factors(h[j, a:], z[j, a:], qx[j, a - 1:], qy[j - 1, a:], qy[j, a:], fb, b - a,
                   dt / dx)
    if a >= 2 and qx[j, a - 1] > 0.0:  # cell a-1 may be outside the span: it is dry then
        fb[0] = 1.0 if h[j, a - 1] > 0.0 else 0.0
    if b <= h.shape[1] - 2 and qx[j, b - 1] < 0.0:
        fb[b - a + 1] = 1.0 if h[j, b] > 0.0 else 0.0
    _limit_apply(qx[j, a - 1:], qy[j - 1, a:], qy[j, a:], fb, b - a)


@njit(cache=True, parallel=True, fastmath=_FM, error_model="numpy")
def _limit_par(h, z, qx, qy, lo, hi, flags, fbuf, dt, dx, j0, j1):
    for j in prange(j0, j1):
        _limit_row(j, h, z, qx, qy, lo, hi, flags, fbuf, dt, dx)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _limit_ser(h, z, qx, qy, lo, hi, flags, fbuf, dt, dx, j0, j1):
    for j in range(j0, j1):
        _limit_row(j, h, z, qx, qy, lo, hi, flags, fbuf, dt, dx)


@njit(cache=True, inline="always", error_model="numpy")
def _row_update(hr, zr, qxw, qn, qs, rr, rstep, r0, hmr, arr, uw, vn, vs, vmr, count, c, dt,
                t_new, wet_threshold, vel_depth, first):
    """Continuity over ``count`` cells of a row (views start at the first cell; ``qxw`` at its
    west face). Returns (max depth, volume into sinks / dx^2, first wet, last wet column)."""
    out = 0.0
    for k in range(count):  # kept free of other reductions and branches so it vectorises
        zc = zr[k]
        net = (np.float64(qxw[k]) - np.float64(qxw[k + 1]) + np.float64(qn[k])
               - np.float64(qs[k])) * c
        sink = zc < _SINK_TEST
        normal = (not sink) and zc < _WALL_TEST
        src = r0 if rstep == 0 else rr[k] * dt
        hk = hr[k]
        # speed of the state the step started from: mean face velocities (pass 1)
        u = 0.5 * (np.float64(uw[k]) + np.float64(uw[k + 1]))
        v = 0.5 * (np.float64(vn[k]) + np.float64(vs[k]))
        sp = math.sqrt(u * u + v * v) if hk > vel_depth else 0.0
        vmr[k] = max(np.float64(vmr[k]), sp)
        hn = max(hk + net + src, 0.0)
        hn = hn if normal else 0.0
        hr[k] = hn
        out += net if sink else 0.0
        hm = np.float64(hmr[k])
        if (hn > wet_threshold) & (hm <= wet_threshold):
            arr[k] = t_new
        hmr[k] = max(hm, hn)
    rhm = 0.0
    for k in range(count):
        rhm = max(rhm, hr[k])
    wlo = 0
    while wlo < count and hr[wlo] <= 0.0:
        wlo += 1
    whi = count - 1
    while whi >= 0 and hr[whi] <= 0.0:
        whi -= 1
    return rhm, out, wlo + first, whi + first


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _continuity_row(j, h, z, qx, qy, rain, rmsk, lo, hi, hmax, arrival, ux, vy, vmax, row_hmax,
                    row_out, row_wlo, row_whi, dt, dx, t_new, wet_threshold, vel_depth):
    """Pass 3 for row ``j``: depth update, rain, maxima, arrival, boundary outflow, wet extent."""
    ny = h.shape[0] - 2
    nx = h.shape[1] - 2
    c = dt / dx
    a = lo[j]
    b = hi[j]
    rhm = 0.0
    out = 0.0
    wlo = nx + 2
    whi = -1
    if a < b:
        rhm, out, wlo, whi = _row_update(
            h[j, a:], z[j, a:], qx[j, a - 1:], qy[j - 1, a:], qy[j, a:],
            rain[j & rmsk, (a & rmsk):], 0 if rmsk == 0 else 1, rain[0, 0] * dt, hmax[j, a:],
            arrival[j, a:], ux[j, a - 1:], vy[j - 1, a:], vy[j, a:], vmax[j, a:], b - a, c, dt,
            t_new, wet_threshold, vel_depth, a)
        if whi < a:
            wlo = nx + 2
        # faces to the ring (open boundary): flux leaving the grid
        if a == 1:
            out -= qx[j, 0] * c
        if b == nx + 1:
            out += qx[j, nx] * c
        if j == 1:
            for i in range(a, b):
                out -= qy[0, i] * c
        if j == ny:
            for i in range(a, b):
                out += qy[ny, i] * c
    row_hmax[j] = rhm
    row_out[j] = out
    row_wlo[j] = wlo
    row_whi[j] = whi


@njit(cache=True, parallel=True, fastmath=_FM, error_model="numpy")
def _continuity_par(h, z, qx, qy, rain, rmsk, lo, hi, hmax, arrival, ux, vy, vmax, row_hmax,
                    row_out, row_wlo, row_whi, dt, dx, t_new, wet_threshold, vel_depth, j0, j1):
    for j in prange(j0, j1):
        _continuity_row(j, h, z, qx, qy, rain, rmsk, lo, hi, hmax, arrival, ux, vy, vmax,
                        row_hmax, row_out, row_wlo, row_whi, dt, dx, t_new, wet_threshold,
                        vel_depth)


@njit(cache=True, fastmath=_FM, error_model="numpy")
def _continuity_ser(h, z, qx, qy, rain, rmsk, lo, hi, hmax, arrival, ux, vy, vmax, row_hmax,
                    row_out, row_wlo, row_whi, dt, dx, t_new, wet_threshold, vel_depth, j0, j1):
    for j in range(j0, j1):
        _continuity_row(j, h, z, qx, qy, rain, rmsk, lo, hi, hmax, arrival, ux, vy, vmax,
                        row_hmax, row_out, row_wlo, row_whi, dt, dx, t_new, wet_threshold,
                        vel_depth)


@njit(cache=True)
def _grow_spans(lo, hi, row_wlo, row_whi, nx, j0, j1):
    """Spans (never shrinking) cover wet cells dilated by one cell in all eight directions
    (rows ``j0 .. j1-1`` hold the wet cells; their neighbours grow too)."""
    ny = lo.shape[0] - 2
    for j in range(max(j0 - 1, 1), min(j1 + 1, ny + 1)):
        wl = row_wlo[j]
        wh = row_whi[j]
        for k in (j - 1, j + 1):
            if 1 <= k <= ny:
                wl = min(wl, row_wlo[k])
                wh = max(wh, row_whi[k])
        if wh >= wl:
            nlo = max(1, wl - 1)
            nhi = min(nx + 1, wh + 2)
            if lo[j] >= hi[j]:
                lo[j] = nlo
                hi[j] = nhi
            else:
                lo[j] = min(lo[j], nlo)
                hi[j] = max(hi[j], nhi)


@njit(cache=True)
def _inflow_add(h, cells_j, cells_i, cells_w, src_of, q_now, dt, area):
    """Add each inflow's volume ``Q dt`` to its cells by weight; returns the max depth touched."""
    m = 0.0
    for k in range(cells_j.shape[0]):
        j = cells_j[k]
        i = cells_i[k]
        h[j, i] += q_now[src_of[k]] * dt * cells_w[k] / area
        if h[j, i] > m:
            m = h[j, i]
    return m


@njit(cache=True)
def _interp(tab_t, tab_q, start, stop, t):
    if stop - start == 1:
        return tab_q[start]
    if t <= tab_t[start]:
        return tab_q[start]
    if t >= tab_t[stop - 1]:
        return tab_q[stop - 1]
    k = start
    while tab_t[k + 1] < t:
        k += 1
    w = (t - tab_t[k]) / (tab_t[k + 1] - tab_t[k])
    return tab_q[k] * (1.0 - w) + tab_q[k + 1] * w


@njit(cache=True)
def _qmax(tab_t, tab_q, start, stop, t0, t1):
    """Largest discharge of a hydrograph table over [t0, t1]."""
    m = max(_interp(tab_t, tab_q, start, stop, t0), _interp(tab_t, tab_q, start, stop, t1))
    for k in range(start, stop):
        if t0 < tab_t[k] < t1:
            m = max(m, tab_q[k])
    return m


@njit(cache=True)
def _advance(h, z, qx2, qy2, ux, vy, nsq, msk, rain, rmsk, lo, hi, flags, sinkrow, hmax, vmax,
             arrival,
             row_hmax, row_out, row_wlo, row_whi, cells_j, cells_i, cells_w, src_of, tab_t, tab_q,
             tab_off, acc, t, t_end, h_peak, max_steps, dx, alpha, theta, hmin, dt_max,
             wet_threshold, vel_depth, par_min, fbuf):
    """Advance from ``t`` towards ``t_end`` for at most ``max_steps`` steps.

    ``acc`` (float64) accumulates [boundary outflow volume, inflow volume, simulated time, steps,
    active cell-steps, parity of the flux buffers, limited steps, limited rows].
    Returns (t, h_peak).
    """
    nx = h.shape[1] - 2
    ny = h.shape[0] - 2
    area = dx * dx
    nsrc = tab_off.shape[0] - 1
    q_now = np.zeros(max(nsrc, 1))
    steps = 0
    active = 0
    r0 = ny + 1  # rows r0 .. r1-1 hold every non-empty span
    r1 = 1
    for j in range(1, ny + 1):
        if hi[j] > lo[j]:
            active += hi[j] - lo[j]
            r0 = min(r0, j)
            r1 = j + 1
    if r1 < r0:
        r1 = r0
    while t < t_end and steps < max_steps:
        dt = dt_max
        if h_peak > hmin:
            dt = min(dt, alpha * dx / math.sqrt(G * h_peak))
        if nsrc > 0:
            # depth the inflows add during the step counts towards the Courant limit
            src_rate = 0.0
            for k in range(cells_j.shape[0]):
                s = src_of[k]
                qk = _qmax(tab_t, tab_q, tab_off[s], tab_off[s + 1], t, t + dt) * cells_w[k]
                src_rate = max(src_rate, qk / area)
            for _ in range(3):
                hp = h_peak + src_rate * dt
                if hp > hmin:
                    dt = min(dt, alpha * dx / math.sqrt(G * hp))
        last = t + dt >= t_end or t_end - (t + dt) < 1e-6 * dt
        if last:
            dt = t_end - t
        parity = int(acc[5])
        qxo = qx2[parity]
        qxn = qx2[1 - parity]
        qyo = qy2[parity]
        qyn = qy2[1 - parity]
        par = active >= par_min
        if par:
            _fluxes_par(h, z, qxo, qxn, qyo, qyn, nsq, msk, lo, hi, flags, sinkrow, ux, vy, dt, dx,
                        theta, hmin, vel_depth, max(r0 - 1, 0), r1)
        else:
            _fluxes_ser(h, z, qxo, qxn, qyo, qyn, nsq, msk, lo, hi, flags, sinkrow, ux, vy, dt, dx,
                        theta, hmin, vel_depth, max(r0 - 1, 0), r1)
        anyflag = False
        for j in range(max(r0 - 1, 0), min(r1 + 1, ny + 2)):
            if flags[j] != 0:
                anyflag = True
                break
        if anyflag:
            acc[6] += 1
            for j in range(max(r0 - 1, 0), min(r1 + 1, ny + 2)):
                acc[7] += flags[j]
            if par:
                _limit_par(h, z, qxn, qyn, lo, hi, flags, fbuf, dt, dx, r0, r1)
            else:
                _limit_ser(h, z, qxn, qyn, lo, hi, flags, fbuf, dt, dx, r0, r1)
            flags[max(r0 - 1, 0):min(r1 + 1, ny + 2)] = 0
        if nsrc > 0:
            tm = t + 0.5 * dt
            for s in range(nsrc):
                q_now[s] = _interp(tab_t, tab_q, tab_off[s], tab_off[s + 1], tm)
                acc[1] += q_now[s] * dt
            _inflow_add(h, cells_j, cells_i, cells_w, src_of, q_now, dt, area)
        t_new = t_end if last else t + dt
        if par:
            _continuity_par(h, z, qxn, qyn, rain, rmsk, lo, hi, hmax, arrival, ux, vy, vmax,
                            row_hmax, row_out, row_wlo, row_whi, dt, dx, t_new, wet_threshold,
                            vel_depth, r0, r1)
        else:
            _continuity_ser(h, z, qxn, qyn, rain, rmsk, lo, hi, hmax, arrival, ux, vy, vmax,
                            row_hmax, row_out, row_wlo, row_whi, dt, dx, t_new, wet_threshold,
                            vel_depth, r0, r1)
        acc[5] = 1.0 - acc[5]
        out = 0.0
        peak = 0.0
        for j in range(r0, r1):
            out += row_out[j]
            if row_hmax[j] > peak:
                peak = row_hmax[j]
        acc[0] += out * area
        acc[4] += active
        if nsrc > 0:
            for k in range(cells_j.shape[0]):
                jj = cells_j[k]
                ii = cells_i[k]
                if h[jj, ii] > 0.0:
                    row_wlo[jj] = min(row_wlo[jj], ii)
                    row_whi[jj] = max(row_whi[jj], ii)
                    peak = max(peak, h[jj, ii])
        acc[2] += dt
        _grow_spans(lo, hi, row_wlo, row_whi, nx, r0, r1)
        if r0 > 1 and hi[r0 - 1] > lo[r0 - 1]:
            r0 -= 1
        if r1 <= ny and hi[r1] > lo[r1]:
            r1 += 1
        active = 0
        for j in range(r0, r1):
            if hi[j] > lo[j]:
                active += hi[j] - lo[j]
        h_peak = peak
        t = t_new
        steps += 1
        acc[3] += 1
    return t, h_peak


# --------------------------------------------------------------------------------------------
# Python driver
# --------------------------------------------------------------------------------------------

@dataclass
class VolumeBalance:
    """Water volumes over the run, m^3 (float64 sums).

    ``error`` = (stored_end - stored_start - rain_excess - inflow + boundary_out) divided by
    (stored_start + rain_excess + inflow); ``losses`` is rain that infiltrated (gross rain on the
    domain minus the excess routed).
    """

    rain_gross: float = 0.0
    rain_excess: float = 0.0
    losses: float = 0.0
    rain_on_blocked: float = 0.0
    inflow: float = 0.0
    boundary_out: float = 0.0
    stored_start: float = 0.0
    stored_end: float = 0.0

    @property
    def error(self) -> float:
        inputs = self.stored_start + self.rain_excess + self.inflow
        resid = self.stored_end - self.stored_start - self.rain_excess - self.inflow \
            + self.boundary_out
        return float(resid / inputs) if inputs > 0 else float(resid)

    def as_dict(self) -> dict:
        d = {k: float(v) for k, v in self.__dict__.items()}
        d["relative_error"] = self.error
        return d


@dataclass
class RunStats:
    """How the run went: steps, cells processed and speed."""

    steps: int = 0
    limited_steps: int = 0  # steps where the positivity limiter ran
    limited_rows: int = 0  # rows it ran on, summed over steps
    cell_steps: int = 0  # cells processed (active spans) summed over steps
    grid_cell_steps: int = 0  # all grid cells x steps (what a model without a wet list would do)
    wall_s: float = 0.0  # whole call: set-up, time loop, outputs
    loop_s: float = 0.0  # the time loop alone
    loop_cpu_s: float = 0.0  # CPU seconds of the process (all threads) in the time loop

    @property
    def cell_steps_per_s(self) -> float:
        """Active cells processed per second of the time loop."""
        return self.cell_steps / self.loop_s if self.loop_s > 0 else 0.0

    @property
    def grid_cell_steps_per_s(self) -> float:
        """Grid cells (wet or dry) advanced per second of the time loop."""
        return self.grid_cell_steps / self.loop_s if self.loop_s > 0 else 0.0

    def as_dict(self) -> dict:
        d = {k: (float(v) if isinstance(v, float) else v) for k, v in self.__dict__.items()}
        d["cell_steps_per_s"] = self.cell_steps_per_s
        d["grid_cell_steps_per_s"] = self.grid_cell_steps_per_s
        return d


@dataclass
class FloodResult:
    """Outputs of :func:`simulate` on the input grid (float32; NaN where the DEM is NaN).

    Attributes:
        max_depth: Maximum depth over the run, m (0 where never wet; 0 in blocked cells).
        max_wse: Maximum water-surface elevation, m (bed + max depth; NaN where never wet).
        max_velocity: Maximum cell-centred speed, m/s: the mean of the two x-face and the two
            y-face velocities ``q / h_face``, faces and cells deeper than ``velocity_depth``.
        arrival_time: First time (s) the depth exceeded ``wet_threshold``; NaN if never.
        final_depth: Depth at the end, m.
        snapshots: {time_s: depth array} at the requested times.
        volume: The volume balance.
        stats: Run statistics.
    """

    max_depth: np.ndarray
    max_wse: np.ndarray
    max_velocity: np.ndarray
    arrival_time: np.ndarray
    final_depth: np.ndarray
    snapshots: dict[float, np.ndarray] = field(default_factory=dict)
    volume: VolumeBalance = field(default_factory=VolumeBalance)
    stats: RunStats = field(default_factory=RunStats)
    wet_threshold: float = 0.05
    duration_s: float = 0.0

    def summary(self) -> dict:
        """JSON-ready figures: peak depth/velocity, wet area cells, volume balance, run stats."""
        md = self.max_depth
        return {
            "duration_s": self.duration_s,
            "max_depth_m": float(np.nanmax(md)) if np.isfinite(md).any() else 0.0,
            "max_velocity_m_s": float(np.nanmax(self.max_velocity))
            if np.isfinite(self.max_velocity).any() else 0.0,
            "cells_wet": int(np.count_nonzero(md > self.wet_threshold)),
            "wet_threshold_m": self.wet_threshold,
            "volume": self.volume.as_dict(),
            "stats": self.stats.as_dict(),
        }


def _padded(a: np.ndarray, fill, dtype) -> np.ndarray:
    out = np.full((a.shape[0] + 2, a.shape[1] + 2), fill, dtype=dtype)
    out[1:-1, 1:-1] = a
    return out


def _row_spans(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per padded row: first and one-past-last padded column where ``mask`` (unpadded) is set."""
    ny, nx = mask.shape
    lo = np.full(ny + 2, nx + 2, dtype=np.int64)
    hi = np.zeros(ny + 2, dtype=np.int64)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size:
        first = mask[rows].argmax(axis=1)
        last = nx - 1 - mask[rows][:, ::-1].argmax(axis=1)
        lo[rows + 1] = first + 1
        hi[rows + 1] = last + 2
    return lo, hi


def _merge_spans(lo, hi, lo2, hi2) -> None:
    np.minimum(lo, lo2, out=lo)
    np.maximum(hi, hi2, out=hi)


def _dilate_spans(lo: np.ndarray, hi: np.ndarray, nx: int) -> None:
    """Grow spans by one cell in every direction (Chebyshev), in place."""
    ny = lo.shape[0] - 2
    l0, h0 = lo.copy(), hi.copy()
    nonempty = h0 > l0
    l1 = np.where(nonempty, np.maximum(l0 - 1, 1), nx + 2)
    h1 = np.where(nonempty, np.minimum(h0 + 1, nx + 1), 0)
    for k in (-1, 1):
        l2 = np.roll(l1, k)
        h2 = np.roll(h1, k)
        l2[[0, -1]] = nx + 2
        h2[[0, -1]] = 0
        l1 = np.minimum(l1, l2)
        h1 = np.maximum(h1, h2)
    l1[[0, ny + 1]] = nx + 2
    h1[[0, ny + 1]] = 0
    lo[:] = l1
    hi[:] = h1


def _forcing_edges(hyeto, duration_s: float, forcing_dt: float) -> np.ndarray:
    edges = np.asarray(hyeto.edges_s, dtype="float64")
    out = [0.0]
    for t0, t1 in zip(edges[:-1], edges[1:]):
        if t0 >= duration_s:
            break
        t1 = min(t1, duration_s)
        n = max(1, int(np.ceil((t1 - t0) / forcing_dt - 1e-9)))
        out.extend(np.linspace(t0, t1, n + 1)[1:])
    if out[-1] < duration_s:
        out.append(duration_s)
    return np.unique(np.asarray(out))


def simulate(z: np.ndarray, dx: float, duration_s: float, *, manning: float | np.ndarray = 0.03,
             rain=None, loss=None, inflows: Sequence = (), transform=None,
             blocked: np.ndarray | None = None, h0: np.ndarray | None = None,
             uv0: tuple[np.ndarray, np.ndarray] | None = None, boundary: str = "open", snapshot_times: Sequence[float] = (),
             wet_threshold: float = 0.05, alpha: float = 0.7, theta: float = 0.8,
             depth_threshold: float = 1e-4, velocity_depth: float = 0.01, dt_max: float = 10.0,
             forcing_dt: float = 60.0, parallel: bool | None = None,
             parallel_min_cells: int = 1_000_000, progress: Callable[[float], None] | None = None) -> FloodResult:
    """Run the 2D local-inertial model; see the module and package docstrings.

    Args:
        z: Bed elevation (ny, nx), metres; NaN cells are outside the domain and act as open
            boundaries (free outflow at critical depth) whatever ``boundary`` says.
        dx: Cell size, m (square cells).
        duration_s: Simulated time, s.
        manning: Manning's n, scalar or (ny, nx) array.
        rain: A :class:`gis.io.hyetograph.Hyetograph` (spatially uniform rain) or None.
        loss: A :mod:`models.flood.runoff` loss model (``CurveNumber``, ``ConstantLoss``); None
            routes all rain.
        inflows: :class:`models.flood.forcing.Inflow` point sources (map coordinates).
        transform: Affine of the grid, needed to place inflows; default has the grid's lower-left
            corner at (0, 0) with y up: ``Affine(dx, 0, 0, 0, -dx, ny * dx)``.
        blocked: Bool (ny, nx): cells water cannot enter (buildings as walls).
        h0: Initial depth (ny, nx), m.
        uv0: Initial cell velocities ``(u, v)`` (ny, nx), m/s, along +x (columns) and +y (map
            north, i.e. up the rows); turned into face discharges with the face depth.
        boundary: ``"open"`` (free outflow at critical depth across the grid edge) or
            ``"closed"`` (walls).
        snapshot_times: Times (s) at which to keep the depth.
        wet_threshold: Depth (m) defining arrival.
        alpha: Courant factor of the adaptive step.
        theta: de Almeida's weighting (1 = Bates 2010 without diffusion; 0.7-0.9 typical).
        depth_threshold: Face depth (m) below which no flux passes.
        velocity_depth: Depth (m) of cells and faces below which velocity is not evaluated.
        dt_max: Largest step, s (dry or very shallow domains).
        forcing_dt: Longest interval (s) over which rainfall excess is held constant.
        parallel: Run large steps on all numba threads: True, False, or None (auto: only when
            the 1-minute load average leaves a core idle per thread; on a busy machine the
            threads' fork/join per pass costs more than the second core gives).
        parallel_min_cells: Active cells from which a step runs on all threads. Below it the
            fork/join of the parallel passes costs more than it saves, badly so on a busy
            machine (a 360k-cell rain run here: 24 ns per cell-step on one thread against
            108 ns on two contended ones).
        progress: Called with the simulated time (s) now and then.

    Returns:
        A :class:`FloodResult`.
    """
    from affine import Affine

    from gis.errors import DataError
    from models.flood.forcing import inflow_cells

    t_wall = time.perf_counter()
    if parallel is None:
        threads = numba.get_num_threads()
        parallel = threads > 1 and os.getloadavg()[0] < threads - 0.5
    if not parallel:
        parallel_min_cells = np.iinfo(np.int64).max
    z = np.asarray(z)
    if z.ndim != 2 or min(z.shape) < 1:
        raise DataError("the DEM must be a 2D grid", field="dem")
    if not (dx > 0 and np.isfinite(dx)):
        raise DataError(f"cell size must be > 0, got {dx}", field="dx")
    if not (duration_s > 0 and np.isfinite(duration_s)):
        raise DataError(f"duration must be > 0 s, got {duration_s}", field="duration")
    if boundary not in ("open", "closed"):
        raise DataError(f"boundary must be 'open' or 'closed', not {boundary!r}",
                        field="boundary")
    if not 0 <= theta <= 1:
        raise DataError(f"theta must be in [0, 1], got {theta}", field="theta")
    if not 0 < alpha <= 1:
        raise DataError(f"alpha must be in (0, 1], got {alpha}", field="alpha")
    ny, nx = z.shape
    nodata = ~np.isfinite(z)
    block = np.zeros(z.shape, bool) if blocked is None else np.asarray(blocked, bool) & ~nodata
    if block.shape != z.shape:
        raise DataError("blocked mask shape differs from the DEM", field="blocked")
    normal = ~nodata & ~block
    if not normal.any():
        raise DataError("the DEM has no valid cells", field="dem")
    if transform is None:
        transform = Affine(dx, 0, 0, 0, -dx, ny * dx)

    zp = _padded(np.where(normal, z, 0.0).astype(np.float32), SINK if boundary == "open"
                 else WALL, np.float32)
    zp[1:-1, 1:-1][nodata] = SINK
    zp[1:-1, 1:-1][block] = WALL

    if np.ndim(manning) == 0:
        n = float(manning)
        if not (0 <= n <= 1):
            raise DataError(f"Manning's n must be in [0, 1], got {n}", field="manning")
        nsq = np.full((1, 1), n * n, np.float32)
        msk = 0
    else:
        n_arr = np.asarray(manning, dtype="float64")
        if n_arr.shape != z.shape:
            raise DataError("Manning grid shape differs from the DEM", field="manning")
        bad = normal & ~((n_arr >= 0) & (n_arr <= 1))
        if bad.any():
            raise DataError("Manning's n must be in [0, 1] on every valid cell", field="manning")
        nsq = _padded(np.where(normal, n_arr, 0.0) ** 2, 0.0, np.float32)
        msk = -1

    h = np.zeros((ny + 2, nx + 2), np.float64)
    if h0 is not None:
        h0a = np.asarray(h0, dtype="float64")
        if h0a.shape != z.shape or not np.all(np.isfinite(h0a[normal])) or (h0a[normal] < 0).any():
            raise DataError("initial depth must be finite, >= 0, on the DEM's grid", field="h0")
        h[1:-1, 1:-1] = np.where(normal, h0a, 0.0)
    qx2 = np.zeros((2, ny + 2, nx + 2), np.float32)  # old/new buffers, swapped every step
    qy2 = np.zeros((2, ny + 2, nx + 2), np.float32)
    ux = np.zeros((ny + 2, nx + 2), np.float32)  # face velocities (pass 1 -> pass 3)
    vy = np.zeros((ny + 2, nx + 2), np.float32)
    sinkrow = np.zeros(ny + 2, np.uint8)
    fbuf = np.empty((numba.config.NUMBA_NUM_THREADS, nx + 4))  # limiter factors, row per thread
    sinkrow[1:-1] = nodata.any(axis=1)
    if uv0 is not None:
        u0 = _padded(np.where(normal, np.asarray(uv0[0], dtype="float64"), 0.0), 0.0, np.float64)
        v0 = _padded(np.where(normal, np.asarray(uv0[1], dtype="float64"), 0.0), 0.0, np.float64)
        eta = h + np.where(np.abs(zp) < _WALL_TEST, zp, 0.0)
        zz = zp.astype(np.float64)
        ok = (np.abs(zz[:, :-1]) < _WALL_TEST) & (np.abs(zz[:, 1:]) < _WALL_TEST)
        hfx = np.maximum(eta[:, :-1], eta[:, 1:]) - np.maximum(zz[:, :-1], zz[:, 1:])
        qx2[:, :, :-1] = np.where(ok & (hfx > depth_threshold),
                                  0.5 * (u0[:, :-1] + u0[:, 1:]) * hfx, 0)
        ok = (np.abs(zz[:-1]) < _WALL_TEST) & (np.abs(zz[1:]) < _WALL_TEST)
        hfy = np.maximum(eta[:-1], eta[1:]) - np.maximum(zz[:-1], zz[1:])
        qy0 = np.where(ok & (hfy > depth_threshold), -0.5 * (v0[:-1] + v0[1:]) * hfy, 0)
        qy2[:, :-1] = qy0
    hmax = h.astype(np.float32)
    vmax = np.zeros((ny + 2, nx + 2), np.float32)
    arrival = np.full((ny + 2, nx + 2), np.nan, np.float32)
    arrival[hmax > wet_threshold] = 0.0
    flags = np.zeros(ny + 2, np.uint8)
    row_hmax = np.zeros(ny + 2)
    row_out = np.zeros(ny + 2)
    row_wlo = np.full(ny + 2, nx + 2, np.int64)
    row_whi = np.full(ny + 2, -1, np.int64)

    lo, hi = _row_spans(h[1:-1, 1:-1] > 0)

    # inflows
    cj, ci, cw, src = [], [], [], []
    tab_t, tab_q, tab_off = [], [], [0]
    for k, inf in enumerate(inflows):
        rr, cc, ww = inflow_cells(inf, transform, normal)
        cj.append(rr + 1)
        ci.append(cc + 1)
        cw.append(ww)
        src.append(np.full(rr.size, k, np.int64))
        t_, q_ = inf.table()
        tab_t.append(t_)
        tab_q.append(q_)
        tab_off.append(tab_off[-1] + t_.size)
        m = np.zeros(z.shape, bool)
        m[rr, cc] = True
        _merge_spans(lo, hi, *_row_spans(m))
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    cells_j, cells_i = cat(cj, np.int64), cat(ci, np.int64)
    cells_w, src_of = cat(cw, np.float64), cat(src, np.int64)
    tab_t_a, tab_q_a = cat(tab_t, np.float64), cat(tab_q, np.float64)
    tab_off_a = np.asarray(tab_off, np.int64)
    _dilate_spans(lo, hi, nx)

    # events: forcing intervals, snapshots, the end
    runner = loss.runner() if (rain is not None and loss is not None) else None
    edges = _forcing_edges(rain, duration_s, forcing_dt) if rain is not None else \
        np.array([0.0, duration_s])
    snaps = sorted({float(s) for s in snapshot_times if 0 <= s <= duration_s})
    events = np.unique(np.concatenate([edges, snaps, [duration_s]]))
    events = events[(events > 0) & (events <= duration_s)]

    area = dx * dx
    n_normal = int(normal.sum())
    vol = VolumeBalance(stored_start=float(h.sum() * area))
    stats = RunStats()
    acc = np.zeros(8)
    snapshots: dict[float, np.ndarray] = {}
    if 0.0 in snaps:
        snapshots[0.0] = h[1:-1, 1:-1].astype(np.float32)
    rain_arr = np.zeros((1, 1))
    rmsk = 0
    full_spans = False
    t = 0.0
    h_peak = float(h.max())
    edge_idx = 0
    cells_budget = 2.0e7  # cell-steps between returns to Python (progress)
    last_progress = time.perf_counter()
    for t_event in events:
        # rain rate for the forcing interval containing [t, t_event)
        if rain is not None:
            while edge_idx + 1 < len(edges) and edges[edge_idx + 1] <= t + 1e-9:
                edge_idx += 1
        rate_sum = 0.0
        if rain is not None and edge_idx + 1 < len(edges) and t < edges[edge_idx + 1] - 1e-9:
            e0, e1 = edges[edge_idx], edges[edge_idx + 1]
            if t <= e0 + 1e-9:  # a new forcing interval: evaluate its excess once
                p_mm = float(rain.cumulative_mm(e1) - rain.cumulative_mm(e0))
                ex_mm = runner.step(p_mm, e1 - e0) if runner is not None else p_mm
                gross = p_mm / 1000.0 * area
                vol.rain_gross += gross * n_normal
                vol.rain_on_blocked += gross * int(block.sum())
                if np.ndim(ex_mm) == 0:
                    rate = float(ex_mm) / 1000.0 / (e1 - e0)
                    rain_arr = np.full((1, 1), rate)
                    rmsk = 0
                    excess_vol = float(ex_mm) / 1000.0 * area * n_normal
                else:
                    ex = np.asarray(ex_mm, dtype="float64")
                    if ex.shape != z.shape:
                        raise DataError(f"loss parameters have shape {ex.shape}, the DEM "
                                        f"{z.shape}", field="loss")
                    if not np.all(np.isfinite(ex[normal])):
                        raise DataError("loss parameters must be finite on every valid cell",
                                        field="loss")
                    ex = np.where(normal, ex, 0.0)
                    rain_arr = _padded(ex / 1000.0 / (e1 - e0), 0.0, np.float64)
                    rmsk = -1
                    excess_vol = float(ex.sum()) / 1000.0 * area
                vol.losses += gross * n_normal - excess_vol
                if not full_spans and excess_vol > 0:
                    if rmsk == 0:
                        lo[1:-1] = 1
                        hi[1:-1] = nx + 1
                        full_spans = True
                    else:
                        _merge_spans(lo, hi, *_row_spans(rain_arr[1:-1, 1:-1] > 0))
                        _dilate_spans(lo, hi, nx)
            rate_sum = float(rain_arr[0, 0]) * n_normal if rmsk == 0 else float(rain_arr.sum())
        while t < t_event:
            active = max(1, int(np.sum(np.maximum(hi - lo, 0))))
            max_steps = max(1, int(cells_budget / active))
            t0 = t
            t_loop = time.perf_counter()
            c_loop = time.process_time()
            t, h_peak = _advance(h, zp, qx2, qy2, ux, vy, nsq, msk, rain_arr, rmsk, lo, hi, flags,
                                 sinkrow,
                                 hmax, vmax, arrival, row_hmax, row_out, row_wlo, row_whi,
                                 cells_j, cells_i, cells_w, src_of, tab_t_a, tab_q_a, tab_off_a,
                                 acc, t, float(t_event), h_peak, max_steps, float(dx),
                                 float(alpha), float(theta), float(depth_threshold),
                                 float(dt_max), float(wet_threshold), float(velocity_depth),
                                 int(parallel_min_cells), fbuf)
            stats.loop_s += time.perf_counter() - t_loop
            stats.loop_cpu_s += time.process_time() - c_loop
            vol.rain_excess += rate_sum * (t - t0) * area
            if progress is not None and time.perf_counter() - last_progress > 0.2:
                progress(t)
                last_progress = time.perf_counter()
        if t_event in snaps:
            snapshots[float(t_event)] = h[1:-1, 1:-1].astype(np.float32)
    if progress is not None:
        progress(t)

    parity = int(acc[5])
    _velocity_pass(h, zp, qx2[parity], qy2[parity], lo, hi, vmax, float(depth_threshold),
                   float(velocity_depth))
    del qx2, qy2, ux, vy  # lower the peak while the outputs are built
    vol.boundary_out = float(acc[0])
    vol.inflow = float(acc[1])
    vol.stored_end = float(h.sum() * area)
    stats.steps = int(acc[3])
    stats.limited_steps = int(acc[6])
    stats.limited_rows = int(acc[7])
    stats.cell_steps = int(acc[4])
    stats.grid_cell_steps = stats.steps * ny * nx
    stats.wall_s = time.perf_counter() - t_wall

    inner = (slice(1, -1), slice(1, -1))
    md = hmax[inner].copy()
    md[nodata] = np.nan
    md[block] = 0.0
    wse = np.where(md > 0, np.where(normal, z, np.nan) + md, np.nan).astype(np.float32)
    vm = vmax[inner].copy()
    vm[nodata] = np.nan
    fd = h[inner].astype(np.float32)
    fd[nodata] = np.nan
    arr = arrival[inner].copy()
    for k in list(snapshots):
        snapshots[k][nodata] = np.nan
    return FloodResult(max_depth=md, max_wse=wse, max_velocity=vm, arrival_time=arr,
                       final_depth=fd, snapshots=snapshots, volume=vol, stats=stats,
                       wet_threshold=wet_threshold, duration_s=float(duration_s))
