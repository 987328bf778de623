"""Rainfall excess (the part of rain that runs off) for the 2D flood model.

Two loss models, each applied per cell to a spatially uniform hyetograph:

* :class:`CurveNumber` — the SCS/NRCS curve-number method (USDA-NRCS 2004, National Engineering
  Handbook Part 630, ch. 10): with cumulative rain ``P`` (mm), potential retention
  ``S = 25400/CN - 254`` (mm) and initial abstraction ``Ia = lambda S``, the cumulative excess is
  ``Q = (P - Ia)^2 / (P - Ia + S)`` for ``P > Ia``, else 0 (``lambda = 0.2`` gives the textbook
  ``(P - 0.2S)^2 / (P + 0.8S)``). ``ia_ratio=0.05`` follows Hawkins et al. (2002, "Runoff curve
  number method: examination of the initial abstraction ratio"), converting the tabulated
  0.2-based retention with ``S_0.05 = 1.33 S_0.2^1.15`` (S in inches). ``CN`` may be a scalar or
  an array (one per cell).
* :class:`ConstantLoss` — initial and continuing loss (the ARR / HEC-HMS "initial and constant"
  method): the first ``initial_mm`` of rain is lost, then ``rate_mm_h`` is lost while it rains;
  rain intensity is constant within each step, so the excess of a step is exact.

Both are used through :meth:`runner` which returns a stateful object whose ``step(rain_mm, dt_s)``
gives the excess depth (mm; scalar or per-cell array) of the next step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gis.errors import DataError


def scs_retention_mm(cn, ia_ratio: float = 0.2) -> np.ndarray | float:
    """Potential maximum retention S (mm) for curve number(s) ``cn`` (0 < CN <= 100)."""
    cn_arr = np.asarray(cn, dtype="float64")
    s = 25400.0 / cn_arr - 254.0
    if ia_ratio == 0.05:
        s = 1.33 * (s / 25.4) ** 1.15 * 25.4
    elif ia_ratio != 0.2:
        raise DataError(f"ia_ratio must be 0.2 or 0.05, not {ia_ratio}", field="ia_ratio")
    return s if np.ndim(cn) else float(s)


def scs_excess_mm(p_mm, cn, ia_ratio: float = 0.2):
    """Cumulative SCS-CN runoff ``Q`` (mm) for cumulative rain ``p_mm`` (broadcasts)."""
    s = np.asarray(scs_retention_mm(cn, ia_ratio))
    p = np.asarray(p_mm, dtype="float64")
    ia = ia_ratio * s
    pe = np.maximum(p - ia, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(pe > 0.0, pe * pe / (pe + s), 0.0)
    q = np.where(np.isnan(pe), np.nan, q)  # a missing CN stays missing (simulate rejects it)
    return q if q.ndim else float(q)


@dataclass
class CurveNumber:
    """SCS curve-number loss. ``cn``: scalar or per-cell array (grid shape), 0 < CN <= 100."""

    cn: float | np.ndarray
    ia_ratio: float = 0.2

    def __post_init__(self):
        cn = np.asarray(self.cn, dtype="float64")
        finite = cn[np.isfinite(cn)]
        if finite.size and (finite.min() <= 0 or finite.max() > 100):
            raise DataError("curve numbers must be in (0, 100]", field="cn")
        scs_retention_mm(50.0, self.ia_ratio)  # validates ia_ratio

    def runner(self) -> _CNRunner:
        return _CNRunner(self)


class _CNRunner:
    def __init__(self, model: CurveNumber):
        self.cn = model.cn if np.ndim(model.cn) else float(model.cn)
        self.ia_ratio = model.ia_ratio
        self.p = 0.0
        self.q = scs_excess_mm(0.0, self.cn, self.ia_ratio)

    def step(self, rain_mm: float, dt_s: float):
        self.p += float(rain_mm)
        q = scs_excess_mm(self.p, self.cn, self.ia_ratio)
        out = q - self.q
        self.q = q
        return out


@dataclass
class ConstantLoss:
    """Initial and continuing loss: ``initial_mm`` lost first, then ``rate_mm_h`` while raining.

    Either may be a scalar or a per-cell array.
    """

    rate_mm_h: float | np.ndarray = 0.0
    initial_mm: float | np.ndarray = 0.0

    def __post_init__(self):
        for name in ("rate_mm_h", "initial_mm"):
            v = np.asarray(getattr(self, name), dtype="float64")
            if np.any(v[np.isfinite(v)] < 0):
                raise DataError(f"{name} must be >= 0", field=name)

    def runner(self) -> _CLRunner:
        return _CLRunner(self)


class _CLRunner:
    def __init__(self, model: ConstantLoss):
        self.rate = np.asarray(model.rate_mm_h, dtype="float64") / 3600.0  # mm/s
        self.remaining = np.array(model.initial_mm, dtype="float64")
        self.scalar = self.rate.ndim == 0 and self.remaining.ndim == 0

    def step(self, rain_mm: float, dt_s: float):
        rain_mm = float(rain_mm)
        if rain_mm <= 0.0 or dt_s <= 0.0:
            z = np.zeros(np.broadcast(self.rate, self.remaining).shape)
            return float(z) if self.scalar else z
        i = rain_mm / dt_s  # mm/s, constant within the step
        t_fill = np.minimum(self.remaining / i, dt_s)
        self.remaining = np.maximum(self.remaining - rain_mm, 0.0)
        excess = np.maximum(i - self.rate, 0.0) * (dt_s - t_fill)
        return float(excess) if self.scalar else excess


def excess_series(edges_s: np.ndarray, depth_mm: np.ndarray, loss) -> np.ndarray:
    """Excess per step (mm) of a hyetograph for a scalar loss model (for summaries and tests)."""
    run = loss.runner()
    return np.array([run.step(d, t1 - t0) for d, t0, t1 in
                     zip(depth_mm, edges_s[:-1], edges_s[1:])], dtype="float64")
