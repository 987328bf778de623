"""Traffic crash records: the National Police Agency A1/A2 CSV, or any point layer with a time and a
severity, read into one frame for the hot-spot model (:mod:`models.hotspots`).

The NPA open data (內政部警政署「A1類/A2類道路交通事故資料」, data.gov.tw) is a CSV with the columns
``發生時間`` (ROC date-time ``107年01月01日 05時12分00秒``), ``發生地點``, ``死亡受傷人數``
(``死亡1;受傷0``), ``車種``, ``經度`` (longitude) and ``緯度`` (latitude), WGS84. As published it

* ends with footer rows (``資料提供日期：...``, ``事故類別：A1類``) that are not records;
* is UTF-8 (with a BOM) in recent years and Big5 (cp950) in older releases;
* has a few rows whose longitude and latitude are swapped (2018: longitude 24.14), and rows
  without coordinates.

The reader drops the footer, swaps the swapped pairs back and reports each one, and counts every
row it skips with its reason, so a summary can say exactly how many of the published records made
it onto the map. A1 rows are fatal crashes (death within 24 h); A2 rows carry injuries (deaths
after 24 h count as A2 too): the severity is ``fatal`` when the row names a death, else ``injury``
when it names an injury, else ``property``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.errors import DataError

#: Longitude/latitude box of Taiwan with Kinmen, Matsu, Penghu and the outlying islets.
TAIWAN_LON = (116.0, 123.0)
TAIWAN_LAT = (20.0, 27.0)

_LON_NAMES = ("經度", "lon", "longitude", "x", "gps經度")
_LAT_NAMES = ("緯度", "lat", "latitude", "y", "gps緯度")
_TIME_NAMES = ("發生時間", "time", "datetime", "date_time", "occurred")
_DATE_NAMES = ("發生日期", "date")
_CASUALTY_NAMES = ("死亡受傷人數",)
_FOOTER = re.compile(r"^\s*(資料提供日期|事故類別|資料來源|備註|註[:：])")
_ROC = re.compile(r"^\s*(\d{2,3})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"
                  r"(?:\s*(\d{1,2})\s*時\s*(\d{1,2})\s*分(?:\s*(\d{1,2})\s*秒)?)?")
_CASUALTIES = re.compile(r"死亡\s*(\d+)\D+受傷\s*(\d+)")
SEVERITIES = ("fatal", "injury", "property")


@dataclass
class CrashRecords:
    """Crash points with what happened to the rows that did not become points.

    Attributes:
        frame: GeoDataFrame with ``time`` (datetime64, local time, may be NaT), ``severity``
            (fatal / injury / property), ``deaths``, ``injuries``, ``row`` (1-based line number in
            the file, or the layer's index) and Point geometry.
        source: File or layer name.
        encoding: Text encoding the file was read with (None for layers).
        rows: Data rows in the source (footer rows excluded).
        footer: Footer rows dropped.
        skipped: Rows dropped, by reason (``no coordinates``, ``outside Taiwan``...).
        swapped: Line numbers of rows whose longitude/latitude were swapped (and fixed).
    """

    frame: gpd.GeoDataFrame
    source: str = ""
    encoding: str | None = None
    rows: int = 0
    footer: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    swapped: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts for ``summary.json``."""
        return {"source": self.source, "encoding": self.encoding, "rows": self.rows,
                "footer_rows": self.footer, "read": int(len(self.frame)),
                "skipped": dict(self.skipped), "skipped_total": int(sum(self.skipped.values())),
                "swapped_lon_lat": len(self.swapped), "swapped_rows": list(self.swapped),
                "by_severity": {k: int(v) for k, v in
                                self.frame["severity"].value_counts().items()}}

    def __add__(self, other: CrashRecords) -> CrashRecords:
        """Records of two sources together (e.g. three years of A1 files)."""
        frame = pd.concat([self.frame, other.frame.to_crs(self.frame.crs)], ignore_index=True)
        skipped = Counter(self.skipped)
        skipped.update(other.skipped)
        encodings = {e for e in (self.encoding, other.encoding) if e}
        return CrashRecords(gpd.GeoDataFrame(frame, geometry="geometry", crs=self.frame.crs),
                            source=f"{self.source}; {other.source}" if self.source else
                            other.source,
                            encoding=",".join(sorted(encodings)) or None,
                            rows=self.rows + other.rows, footer=self.footer + other.footer,
                            skipped=dict(skipped), swapped=self.swapped + [
                                f"{other.source}:{r}" for r in other.swapped])


def read_crashes(path: str | os.PathLike | list, encoding: str | None = None) -> CrashRecords:
    """Read crash points from an NPA CSV (or several), or any vector file of points.

    Args:
        path: A CSV (NPA layout, or any CSV with lon/lat, time and severity columns), a vector
            file of points (GeoPackage, GeoJSON...), or a list of them (read and concatenated).
        encoding: Force a text encoding; by default UTF-8 (with or without BOM), else Big5/cp950.

    Raises:
        DataError: unreadable file, no coordinate columns, or no usable row at all.
    """
    if isinstance(path, (list, tuple)):
        if not path:
            raise DataError("no crash files given")
        out = read_crashes(path[0], encoding)
        for p in path[1:]:
            out = out + read_crashes(p, encoding)
        return out
    p = Path(path)
    if not p.exists():
        raise DataError("no such file", path=str(p))
    if p.suffix.lower() in (".csv", ".txt"):
        return read_crash_csv(p, encoding)
    try:
        frame = gpd.read_file(p)
    except Exception as err:  # pyogrio raises several kinds
        raise DataError(f"cannot read crash points: {err}", path=str(p)) from err
    return crashes_from_frame(frame, source=p.name)


def read_crash_csv(path: str | os.PathLike, encoding: str | None = None) -> CrashRecords:
    """Read an NPA A1/A2 CSV (or a CSV with the same kind of columns). See the module docstring."""
    path = Path(path)
    raw = path.read_bytes()
    text, used = _decode(raw, encoding, path)
    import csv
    import io

    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        raise DataError("empty file", path=str(path)) from None
    lon_c = _find(header, _LON_NAMES)
    lat_c = _find(header, _LAT_NAMES)
    if lon_c is None or lat_c is None:
        raise DataError(f"no longitude/latitude columns (looked for {_LON_NAMES[0]}/"
                        f"{_LAT_NAMES[0]}, lon/lat); header: {header}", path=str(path),
                        field="經度/緯度")
    time_c = _find(header, _TIME_NAMES)
    date_c = _find(header, _DATE_NAMES)
    cas_c = _find(header, _CASUALTY_NAMES)
    sev_c = _find(header, ("severity", "事故類別"))
    dth_c = _find(header, ("deaths", "死亡人數"))
    inj_c = _find(header, ("injuries", "受傷人數"))

    rows = footer = 0
    skipped: Counter[str] = Counter()
    swapped: list[int] = []
    recs: dict[str, list] = {k: [] for k in ("row", "lon", "lat", "time", "deaths", "injuries",
                                             "severity")}
    for lineno, rec in enumerate(reader, start=2):
        if not rec or all(not v.strip() for v in rec):
            continue
        if _FOOTER.match(rec[0]) and all(not v.strip() for v in rec[1:]):
            footer += 1
            continue
        rows += 1
        lon, lat = _num(_get(rec, lon_c)), _num(_get(rec, lat_c))
        if lon is None or lat is None:
            skipped["no coordinates"] += 1
            continue
        if _in_taiwan(lat, lon) and not _in_taiwan(lon, lat):
            lon, lat = lat, lon
            swapped.append(lineno)
        elif not _in_taiwan(lon, lat):
            skipped["outside Taiwan"] += 1
            continue
        deaths = injuries = None
        if cas_c is not None:
            m = _CASUALTIES.search(_get(rec, cas_c))
            if m:
                deaths, injuries = int(m.group(1)), int(m.group(2))
        if dth_c is not None:
            deaths = _int(_get(rec, dth_c))
        if inj_c is not None:
            injuries = _int(_get(rec, inj_c))
        severity = _severity(_get(rec, sev_c) if sev_c is not None else "", deaths, injuries)
        if severity is None:
            skipped["no severity"] += 1
            continue
        stamp = _get(rec, time_c) if time_c is not None else ""
        if date_c is not None and date_c != time_c:
            stamp = f"{_get(rec, date_c)} {stamp}".strip()
        recs["row"].append(lineno)
        recs["lon"].append(lon)
        recs["lat"].append(lat)
        recs["time"].append(_parse_time(stamp))
        recs["deaths"].append(-1 if deaths is None else deaths)
        recs["injuries"].append(-1 if injuries is None else injuries)
        recs["severity"].append(severity)
    if rows == 0:
        raise DataError("no crash records in the file", path=str(path))
    if not recs["row"]:
        raise DataError(f"none of the {rows} rows has usable coordinates ({dict(skipped)})",
                        path=str(path))
    geoms = shapely.points(np.column_stack([recs.pop("lon"), recs.pop("lat")]))
    frame = gpd.GeoDataFrame(pd.DataFrame(recs), geometry=geoms, crs="EPSG:4326")
    frame["time"] = pd.to_datetime(frame["time"])
    return CrashRecords(frame, source=path.name, encoding=used, rows=rows, footer=footer,
                        skipped=dict(skipped), swapped=swapped)


def crashes_from_frame(frame: gpd.GeoDataFrame, *, source: str = "layer",
                       time: str | None = None, severity: str | None = None) -> CrashRecords:
    """Crash records from any point layer (a store's ``crashes`` layer, a GeoPackage...).

    The time column (``time`` by default) may be ISO text with an offset; times are converted to
    local wall-clock time of their offset (Taiwan +08:00) and stored naive. Severity comes from a
    ``severity`` column, else from ``deaths``/``injuries`` columns, else every crash counts as
    ``injury``. Rows with empty or non-point geometry are skipped and counted.
    """
    if frame.crs is None:
        raise DataError("the crash layer has no CRS", path=source)
    names = {c.lower(): c for c in frame.columns}
    time = time or next((names[n] for n in ("time", "datetime", "date", "發生時間")
                         if n in names), None)
    severity = severity or names.get("severity")
    geoms = frame.geometry.values
    kinds = shapely.get_type_id(geoms)
    multi = kinds == 4
    if multi.any():  # a one-point MultiPoint is a point
        geoms = geoms.copy()
        geoms[multi] = shapely.get_geometry(geoms[multi], 0)
        kinds = shapely.get_type_id(geoms)
    ok = (kinds == 0) & ~shapely.is_empty(geoms)
    skipped: Counter[str] = Counter()
    if (~ok).any():
        skipped["no point geometry"] = int((~ok).sum())
    sub = frame.loc[ok]
    deaths = (pd.to_numeric(sub[names["deaths"]], errors="coerce").fillna(-1).astype(int)
              if "deaths" in names else pd.Series(-1, index=sub.index))
    injuries = (pd.to_numeric(sub[names["injuries"]], errors="coerce").fillna(-1).astype(int)
                if "injuries" in names else pd.Series(-1, index=sub.index))
    if severity is not None:
        sev = sub[severity].astype(str).str.strip().str.lower()
        bad = ~sev.isin(SEVERITIES)
        if bad.any():
            skipped["unknown severity"] = int(bad.sum())
    else:
        sev = pd.Series(np.where(deaths > 0, "fatal", np.where(injuries > 0, "injury",
                                 np.where((deaths == 0) & (injuries == 0), "property",
                                          "injury"))), index=sub.index)
        bad = pd.Series(False, index=sub.index)
    keep = ~bad.to_numpy()
    if time is not None:
        t = _local_times(sub[time])
    else:
        t = pd.Series(pd.NaT, index=sub.index, dtype="datetime64[ns]")
    out = gpd.GeoDataFrame({"row": np.asarray(sub.index)[keep],
                            "time": np.asarray(t)[keep].astype("datetime64[ns]"),
                            "deaths": deaths.to_numpy()[keep],
                            "injuries": injuries.to_numpy()[keep],
                            "severity": sev.to_numpy()[keep]},
                           geometry=np.asarray(geoms[ok])[keep], crs=frame.crs)
    return CrashRecords(out, source=source, rows=len(frame), skipped=dict(skipped))


# --- helpers -------------------------------------------------------------------------------------


def _decode(raw: bytes, encoding: str | None, path: Path) -> tuple[str, str]:
    if encoding:
        try:
            return raw.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError) as err:
            raise DataError(f"cannot decode as {encoding}: {err}", path=str(path)) from err
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp950"), "big5"
    except UnicodeDecodeError as err:
        raise DataError(f"neither UTF-8 nor Big5 text: {err}", path=str(path)) from err


def _find(header: list[str], names: tuple[str, ...]) -> int | None:
    low = [h.lower() for h in header]
    for n in names:
        if n.lower() in low:
            return low.index(n.lower())
    return None


def _get(rec: list[str], i: int | None) -> str:
    return rec[i].strip() if i is not None and i < len(rec) else ""


def _num(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if np.isfinite(v) and v != 0.0 else None


def _int(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


def _in_taiwan(lon: float, lat: float) -> bool:
    return TAIWAN_LON[0] <= lon <= TAIWAN_LON[1] and TAIWAN_LAT[0] <= lat <= TAIWAN_LAT[1]


def _severity(text: str, deaths: int | None, injuries: int | None) -> str | None:
    t = text.strip().lower()
    if t in SEVERITIES:
        return t
    if t in ("a1", "a1類"):
        return "fatal"
    if deaths is not None and deaths > 0:
        return "fatal"
    if injuries is not None and injuries > 0:
        return "injury"
    if t in ("a2", "a2類"):
        return "injury"
    if deaths == 0 and injuries == 0:
        return "property"
    return None


def _local_times(values: pd.Series) -> pd.Series:
    """Times as naive Taiwan wall-clock: values with an offset are converted, others kept."""
    if pd.api.types.is_datetime64_any_dtype(values):
        t = values
        if t.dt.tz is not None:
            t = t.dt.tz_convert("Asia/Taipei").dt.tz_localize(None)
        return t.astype("datetime64[ns]")
    text = values.astype(str).str.strip()
    aware = text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True)
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    if aware.any():
        t = pd.to_datetime(text[aware], errors="coerce", utc=True, format="mixed")
        out[aware] = t.dt.tz_convert("Asia/Taipei").dt.tz_localize(None).astype("datetime64[ns]")
    if (~aware).any():
        out[~aware] = pd.to_datetime(text[~aware], errors="coerce", format="mixed")
    return out


def _parse_time(text: str):
    if not text:
        return pd.NaT
    m = _ROC.match(text)
    if m:
        y, mo, d = int(m.group(1)) + 1911, int(m.group(2)), int(m.group(3))
        hh, mm, ss = (int(g) if g else 0 for g in m.group(4, 5, 6))
        try:
            return pd.Timestamp(y, mo, d, hh, mm, ss)
        except ValueError:
            return pd.NaT
    t = pd.to_datetime(text, errors="coerce")
    if t is not pd.NaT and t.tzinfo is not None:
        t = t.tz_convert("Asia/Taipei").tz_localize(None)
    return t
