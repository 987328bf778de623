"""Check feature records against a standard, a column at a time.

A pandas-vectorised reading of the subset of JSON Schema our standards use (type, required,
anyOf-required, enum, minimum/maximum, exclusive bounds, minLength/maxLength, pattern, date-time).
The tests check it against ``jsonschema`` on the same records: two implementations, one answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from standards import Standard

_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")


@dataclass(frozen=True, order=True)
class Issue:
    """One problem with one record.

    Attributes:
        row: Position of the record in the layer (0-based).
        record: The record's id, or ``#N`` (1-based position) when it has none.
        field: The standard field (``geometry`` for geometry problems), or None for the record.
        problem: What is wrong, in a few words.
    """

    row: int
    record: str
    field: str | None
    problem: str


def record_labels(df: pd.DataFrame, id_field: str = "id") -> pd.Series:
    """The label each record is reported under: its id, or ``#N`` when it has none."""
    pos = pd.Series([f"#{i + 1}" for i in range(len(df))], index=df.index, dtype=object)
    if id_field not in df.columns:
        return pos
    ids = df[id_field]
    ok = ids.notna() & (ids.astype(str).str.len() > 0)
    return pos.where(~ok, ids.astype(str))


def _is_null(col: pd.Series) -> pd.Series:
    null = col.isna()
    if col.dtype == object or pd.api.types.is_string_dtype(col):
        null |= col.astype(str).str.strip().eq("") & col.notna().to_numpy()
    return null


def _types(spec: dict) -> set[str]:
    t = spec.get("type", [])
    return {t} if isinstance(t, str) else set(t)


def _fmt(v) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return repr(v) if isinstance(v, str) else str(v)


class _Checker:
    def __init__(self, std: Standard, df: pd.DataFrame):
        self.std = std
        self.df = df
        self.labels = record_labels(df, std.id_field).to_numpy()
        self.issues: list[Issue] = []
        self.null: dict[str, np.ndarray] = {}

    def add(self, mask: np.ndarray, field: str | None, problem) -> None:
        """Record ``problem`` (a string, or a function of the row) for each row in ``mask``."""
        for row in np.flatnonzero(mask):
            text = problem(int(row)) if callable(problem) else problem
            self.issues.append(Issue(int(row), str(self.labels[row]), field, text))

    def column(self, name: str) -> pd.Series:
        if name in self.df.columns:
            return self.df[name].reset_index(drop=True)
        return pd.Series([None] * len(self.df), dtype=object)

    def check_field(self, name: str, spec: dict, required: bool) -> None:
        col = self.column(name)
        null = _is_null(col).to_numpy()
        types = _types(spec) - {"null"}
        if required:
            self.add(null, name, "missing (required)")
        present = ~null
        if not present.any():
            self.null[name] = null
            return
        values = col.to_numpy(dtype=object)
        bad = np.zeros(len(col), bool)
        if types & {"number", "integer"}:
            is_bool = np.array([isinstance(v, (bool, np.bool_)) for v in values]) & present
            num = pd.to_numeric(col.where(~is_bool), errors="coerce").to_numpy(dtype=float)
            wrong = present & (np.isnan(num) | is_bool)
            want = "integer" if "integer" in types and "number" not in types else "number"
            self.add(wrong, name, lambda r: f"wrong type: expected {want}, got {_fmt(values[r])}")
            bad |= wrong
            ok = present & ~wrong
            inf = ok & ~np.isfinite(np.where(ok, num, 0.0))
            self.add(inf, name, "not a finite number")
            bad |= inf
            ok &= ~inf
            if want == "integer":
                frac = ok & (np.where(ok, num, 0.0) % 1 != 0)
                self.add(frac, name, lambda r: f"wrong type: expected integer, got {_fmt(values[r])}")
                bad |= frac
                ok &= ~frac
            bad |= self._bounds(name, spec, num, ok)
        elif "boolean" in types:
            good = {True, False, 0, 1, "true", "false", "True", "False", "0", "1"}
            wrong = present & np.array([not isinstance(v, (bool, np.bool_)) and v not in good
                                        for v in values])
            self.add(wrong, name, lambda r: f"wrong type: expected boolean, got {_fmt(values[r])}")
            bad |= wrong
        elif "string" in types:
            text = col.astype(str).where(present.tolist(), None)
            bad |= self._strings(name, spec, text, present)
        if "enum" in spec:
            allowed = [e for e in spec["enum"] if e is not None]
            text = col.astype(str)
            off = present & ~bad & ~text.isin([str(a) for a in allowed]).to_numpy()
            self.add(off, name, lambda r: f"{_fmt(values[r])} not one of: {', '.join(map(str, allowed))}")
            bad |= off
        self.null[name] = null | bad

    def _bounds(self, name: str, spec: dict, num: np.ndarray, ok: np.ndarray) -> np.ndarray:
        bad = np.zeros(len(num), bool)
        v = np.where(ok, num, 0.0)
        for key, op, rule in (("minimum", np.less, ">="), ("exclusiveMinimum", np.less_equal, ">"),
                              ("maximum", np.greater, "<="),
                              ("exclusiveMaximum", np.greater_equal, "<")):
            if key in spec:
                limit = spec[key]
                out = ok & op(v, limit)
                self.add(out, name, lambda r, lim=limit, rule=rule:
                         f"out of range: {_fmt(float(num[r]))} (must be {rule} {_fmt(lim)})")
                bad |= out
        return bad

    def _strings(self, name: str, spec: dict, text: pd.Series, present: np.ndarray) -> np.ndarray:
        bad = np.zeros(len(text), bool)
        lengths = text.str.len().fillna(0).to_numpy()
        if "minLength" in spec:
            short = present & (lengths < spec["minLength"])
            self.add(short, name, f"too short (at least {spec['minLength']} characters)")
            bad |= short
        if "maxLength" in spec:
            long_ = present & (lengths > spec["maxLength"])
            self.add(long_, name, f"too long (at most {spec['maxLength']} characters)")
            bad |= long_
        if "pattern" in spec:
            nomatch = present & ~bad & ~text.fillna("").str.contains(spec["pattern"], regex=True).to_numpy()
            self.add(nomatch, name, f"does not match {spec['pattern']}")
            bad |= nomatch
        if spec.get("format") == "date-time":
            ok = present & ~bad
            parsed = pd.to_datetime(text.where(ok.tolist(), None), errors="coerce", format="ISO8601",
                                    utc=True)
            offset = text.fillna("").str.contains(_OFFSET).to_numpy()
            wrong = ok & (parsed.isna().to_numpy() | ~offset)
            self.add(wrong, name, lambda r: f"not an ISO 8601 date-time with offset: {text.iloc[r]!r}")
            bad |= wrong
        return bad

    def check_any_of(self) -> None:
        groups = self.std.any_of_required
        if not groups:
            return
        satisfied = np.zeros(len(self.df), bool)
        for group in groups:
            complete = np.ones(len(self.df), bool)
            for f in group:
                complete &= ~self.null.get(f, np.ones(len(self.df), bool))
            satisfied |= complete
        message = self.std.schema.get("x-anyOf-message", "needs one of " + " or ".join(
            "+".join(g) for g in groups))
        # Rows whose alternative fields are present but wrong were already reported.
        fields = {f for g in groups for f in g}
        reported = {i.row for i in self.issues if i.field in fields}
        missing = ~satisfied & ~np.isin(np.arange(len(self.df)), list(reported))
        self.add(missing, None, message)

    def check_unique_ids(self) -> None:
        name = self.std.id_field
        if name not in self.df.columns:
            return
        ids = self.column(name)
        present = ~_is_null(ids).to_numpy()
        text = ids.astype(str)
        dup = present & text.duplicated(keep="first").to_numpy()
        first = {}
        for row, value in enumerate(text):
            if present[row]:
                first.setdefault(value, row)
        self.add(dup, name, lambda r: f"duplicate id (first at record #{first[text.iloc[r]] + 1})")


def check_records(std: Standard, df: pd.DataFrame) -> list[Issue]:
    """Check every record of ``df`` (one row per record, columns = fields) against ``std``.

    Geometry is not looked at here. Columns the standard does not name are ignored.

    Args:
        std: The standard.
        df: The records.

    Returns:
        The issues, ordered by record then by the standard's field order.
    """
    checker = _Checker(std, df)
    required = set(std.required)
    for name, spec in std.properties.items():
        checker.check_field(name, spec, name in required)
    checker.check_any_of()
    checker.check_unique_ids()
    order = {name: i for i, name in enumerate(std.properties)}
    return sorted(checker.issues, key=lambda i: (i.row, order.get(i.field, -1)))
