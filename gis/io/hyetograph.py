"""Hyetographs: rain depth per time step from a gauge CSV, for the flood and landslide models.

A CSV has a time column and a rain column (mm per step). Time is either a date-time (ISO 8601,
with or without offset) or a number whose unit the header names (``t_s``, ``seconds``, ``minutes``,
``hours``, ``t_h``...). A depth is, by default, the accumulation over the step **ending** at its
time stamp (the convention of Taiwan's CWA and of most gauge networks); a time column named
``time_start``/``start`` means the step **starting** there. Steps may be irregular; the first
step of an end-stamped series is taken as long as the second.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gis.errors import DataError

_TIME_NAMES = re.compile(r"^(time|date|datetime|timestamp|t|hour|hours|minutes?|seconds?|start|"
                         r"end|time_start|time_end|time_local.*|time_utc.*|t_[smh]|t_min)$", re.I)
_RAIN_NAMES = re.compile(r"(mm|rain|precip|depth|prcp)", re.I)
_UNITS = (("min", 60.0), ("sec", 1.0), ("_s", 1.0), ("hour", 3600.0), ("_h", 3600.0),
          ("day", 86400.0))


@dataclass
class Hyetograph:
    """Rain as steps: ``depth_mm[i]`` falls uniformly between ``edges_s[i]`` and ``edges_s[i+1]``.

    Attributes:
        edges_s: Step boundaries, seconds from the start of the first step (n+1 values).
        depth_mm: Rain depth per step, mm (n values, >= 0).
        start: Time of the first step's start, when the file gives date-times.
        source: Where it came from (file name), for summaries.
    """

    edges_s: np.ndarray
    depth_mm: np.ndarray
    start: pd.Timestamp | None = None
    source: str = ""

    @property
    def total_mm(self) -> float:
        return float(self.depth_mm.sum())

    @property
    def duration_s(self) -> float:
        return float(self.edges_s[-1])

    @property
    def intensity_mm_h(self) -> np.ndarray:
        """Mean intensity of each step, mm/h."""
        return self.depth_mm / (np.diff(self.edges_s) / 3600.0)

    def cumulative_mm(self, t_s: float | np.ndarray) -> np.ndarray:
        """Rain fallen by time ``t_s`` (seconds), linear within each step."""
        cum = np.concatenate([[0.0], np.cumsum(self.depth_mm)])
        return np.interp(t_s, self.edges_s, cum)

    def rate_m_s(self, t_s: float) -> float:
        """Rain rate at time ``t_s`` in metres per second (0 outside the series)."""
        i = int(np.searchsorted(self.edges_s, t_s, side="right")) - 1
        if i < 0 or i >= len(self.depth_mm):
            return 0.0
        return float(self.depth_mm[i] / 1000.0 / (self.edges_s[i + 1] - self.edges_s[i]))

    def wettest(self, duration_s: float) -> Hyetograph:
        """The consecutive whole steps, lasting at most ``duration_s``, with the most rain (the
        storm's core, for a 2D run that cannot afford the whole event)."""
        edges, cum = self.edges_s, np.concatenate([[0.0], np.cumsum(self.depth_mm)])
        best, best_i, best_j = -1.0, 0, 1
        for i in range(len(self.depth_mm)):
            j = int(np.searchsorted(edges, edges[i] + duration_s + 1e-9, side="right")) - 1
            j = max(j, i + 1)
            if cum[j] - cum[i] > best:
                best, best_i, best_j = cum[j] - cum[i], i, j
        start = None if self.start is None else self.start + pd.Timedelta(
            seconds=float(edges[best_i]))
        return Hyetograph(edges[best_i:best_j + 1] - edges[best_i],
                          self.depth_mm[best_i:best_j].copy(), start, self.source)

    @classmethod
    def uniform(cls, depth_mm: float, duration_s: float) -> Hyetograph:
        """A single step of ``depth_mm`` over ``duration_s``."""
        return cls(np.array([0.0, float(duration_s)]), np.array([float(depth_mm)]))


def read_hyetograph(path: str | os.PathLike, *, stamp: str | None = None) -> Hyetograph:
    """Read a rain-gauge CSV (see the module docstring).

    Args:
        path: The CSV (UTF-8 or Big5).
        stamp: ``"end"`` or ``"start"``: override what each time stamp marks.

    Raises:
        DataError: Missing columns, unparsable or non-increasing times, negative or missing
            depths (naming the row and column).
    """
    path = str(path)
    frame = _read_csv(path)
    if len(frame.columns) < 2:
        raise DataError("a hyetograph needs a time column and a rain column (mm)", path=path)
    tcol = next((c for c in frame.columns if _TIME_NAMES.match(str(c).strip())), frame.columns[0])
    rcol = next((c for c in frame.columns if c != tcol and _RAIN_NAMES.search(str(c))), None)
    if rcol is None:
        rcol = next(c for c in frame.columns if c != tcol)
    if stamp is None:
        stamp = "start" if re.match(r"^(time_)?start$", str(tcol).strip(), re.I) else "end"
    if stamp not in ("start", "end"):
        raise DataError(f"stamp must be 'start' or 'end', not {stamp!r}", path=path)
    if len(frame) < 1:
        raise DataError("the hyetograph has no rows", path=path)

    depth = pd.to_numeric(frame[rcol], errors="coerce").to_numpy(dtype="float64")
    bad = np.flatnonzero(~np.isfinite(depth) | (depth < 0))
    if bad.size:
        i = int(bad[0])
        raise DataError(f"rain must be a number >= 0, got {frame[rcol].iloc[i]!r}", path=path,
                        record=f"row {i + 2}", field=str(rcol))
    seconds, start = _times(frame[tcol], str(tcol), path)
    steps = np.diff(seconds)
    bad = np.flatnonzero(steps <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise DataError("times must increase", path=path, record=f"row {i + 2}", field=str(tcol))
    if len(seconds) == 1:
        raise DataError("a single row gives no time step; add the step's other end", path=path)
    if stamp == "end":
        edges = np.concatenate([[seconds[0] - steps[0]], seconds])
        if start is not None:
            start = start - pd.Timedelta(seconds=float(steps[0]))
    else:
        edges = np.concatenate([seconds, [seconds[-1] + steps[-1]]])
    return Hyetograph(edges_s=edges - edges[0], depth_mm=depth, start=start,
                      source=os.path.basename(path))


def _read_csv(path: str) -> pd.DataFrame:
    for encoding in ("utf-8-sig", "big5"):
        try:
            return pd.read_csv(path, encoding=encoding, skipinitialspace=True)
        except UnicodeDecodeError:
            continue
        except FileNotFoundError as err:
            raise DataError("no such file", path=path) from err
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise DataError(f"not a readable CSV: {err}", path=path) from err
    raise DataError("not UTF-8 or Big5 text", path=path)


def _times(col: pd.Series, name: str, path: str) -> tuple[np.ndarray, pd.Timestamp | None]:
    numeric = pd.to_numeric(col, errors="coerce")
    if numeric.notna().all():
        lname = name.lower()
        factor = next((f for key, f in _UNITS if key in lname or lname.endswith(key)), None)
        if factor is None:
            raise DataError("numeric times need a unit in the column name (t_s, seconds, "
                            "minutes, hours)", path=path, field=name)
        return numeric.to_numpy(dtype="float64") * factor, None
    stamps = pd.to_datetime(col, errors="coerce", utc=False, format="mixed")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise DataError(f"not a date-time: {col.iloc[i]!r}", path=path, record=f"row {i + 2}",
                        field=name)
    first = stamps.iloc[0]
    seconds = np.array([(s - first).total_seconds() for s in stamps], dtype="float64")
    return seconds, first
