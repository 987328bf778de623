"""SINMAP calibration regions: TauDEM's parameter tables as they are, a region raster, recharge.

TauDEM's ``SinmapSI`` reads a text table with one header line and one line per calibration
region::

    SiID,tmin,tmax,cmin,cmax,phimin,phimax,SoilDens
    1,2.708,2.708,0,0.25,30,45,2000

* ``tmin``/``tmax``: transmissivity T bounds (m^2/h);
* ``cmin``/``cmax``: dimensionless cohesion C = (Cr + Cs) / (h rho_s g) bounds;
* ``phimin``/``phimax``: friction angle bounds (degrees);
* ``SoilDens``: soil density rho_s (kg/m^3).

The steady recharge R (m/h) is given separately as a range (TauDEM's ``-par Rmin Rmax g rhow``),
so the wetness ratio R/T spans [Rmin/Tmax, Rmax/Tmin] (Pack, Tarboton & Goodwin 1998). The region
raster holds a region id per cell; cells whose id is not in the table have no result.

TauDEM reads the numbers as single-precision floats; :func:`parse_calibration` does the same so
that the parameters match TauDEM's to the last bit. Models never read files: the CLI reads the
text and calls :func:`parse_calibration`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from gis.errors import DataError

#: TauDEM's SINMAP example (and the SINMAP manual's defaults): T/R 2006-3009 m with R below.
DEFAULT_TABLE = "SiID,tmin,tmax,cmin,cmax,phimin,phimax,SoilDens\n1,2.708,2.708,0,0.25,30,45,2000\n"
#: Default steady recharge range (m/h), TauDEM's SINMAP example ``-par 0.0009 0.00135``.
DEFAULT_RECHARGE = (0.0009, 0.00135)
RHO_WATER = 1000.0

_FIELDS = ("id", "tmin", "tmax", "cmin", "cmax", "phimin", "phimax", "density")


@dataclass(frozen=True)
class Region:
    """One calibration region's parameter bounds (TauDEM table units)."""

    id: int
    tmin: float
    tmax: float
    cmin: float
    cmax: float
    phimin: float
    phimax: float
    density: float

    def as_dict(self) -> dict:
        """The values as written in the table (single precision shown to 7 digits)."""
        return {k: (v if isinstance(v, int) else float(f"{v:.7g}"))
                for k, v in asdict(self).items()}


def parse_calibration(text: str, *, path: str | None = None) -> list[Region]:
    """Parse a TauDEM SINMAP calibration table (see the module docstring).

    Raises:
        DataError: Naming the file, line and field, for a missing header, a short row, a
            non-number, a duplicate id, reversed bounds or out-of-range values.
    """
    lines = [ln.strip() for ln in text.replace("\r", "\n").split("\n")]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise DataError("empty SINMAP calibration table", path=path)
    header = [h.strip().lower() for h in lines[0].split(",")]
    try:
        [float(h) for h in header]
        raise DataError("the first line must be the header "
                        "(SiID,tmin,tmax,cmin,cmax,phimin,phimax,SoilDens)", path=path,
                        record="line 1")
    except ValueError:
        pass
    if len(header) < 8:
        raise DataError(f"header has {len(header)} columns, expected 8 "
                        "(SiID,tmin,tmax,cmin,cmax,phimin,phimax,SoilDens)",
                        path=path, record="line 1")
    regions: list[Region] = []
    seen: set[int] = set()
    for n, line in enumerate(lines[1:], start=2):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 8:
            raise DataError(f"{len(cells)} values, expected 8", path=path, record=f"line {n}")
        values = []
        for name, raw in zip(_FIELDS, cells[:8]):
            try:
                v = float(raw)
            except ValueError:
                raise DataError(f"not a number: {raw!r}", path=path, record=f"line {n}",
                                field=name) from None
            if not np.isfinite(v):
                raise DataError(f"not a finite number: {raw!r}", path=path, record=f"line {n}",
                                field=name)
            values.append(v)
        rid = values[0]
        if rid != int(rid):
            raise DataError(f"region id must be an integer: {cells[0]!r}", path=path,
                            record=f"line {n}", field="id")
        rid = int(rid)
        if rid in seen:
            raise DataError(f"region {rid} appears twice", path=path, record=f"line {n}",
                            field="id")
        seen.add(rid)
        # single precision, as TauDEM's fscanf("%f") reads them
        f32 = [float(np.float32(v)) for v in values[1:]]
        reg = Region(rid, *f32)
        _check_region(reg, path=path, record=f"line {n}")
        regions.append(reg)
    if not regions:
        raise DataError("no region rows after the header", path=path)
    return regions


def _check_region(reg: Region, *, path: str | None, record: str) -> None:
    for lo, hi in (("tmin", "tmax"), ("cmin", "cmax"), ("phimin", "phimax")):
        if getattr(reg, lo) > getattr(reg, hi):
            raise DataError(f"{lo} {getattr(reg, lo)} is above {hi} {getattr(reg, hi)}",
                            path=path, record=record, field=lo)
    if reg.tmin <= 0:
        raise DataError("transmissivity must be > 0", path=path, record=record, field="tmin")
    if reg.cmin < 0:
        raise DataError("cohesion must be >= 0", path=path, record=record, field="cmin")
    if not (0 < reg.phimin and reg.phimax < 90):
        raise DataError("friction angles must lie in (0, 90) degrees", path=path,
                        record=record, field="phimin")
    if reg.density <= RHO_WATER:
        raise DataError("soil density must exceed water's (1000 kg/m^3)", path=path,
                        record=record, field="density")


def parse_recharge(text: str | tuple[float, float] | None) -> tuple[float, float]:
    """``"MIN,MAX"`` (m/h) -> (min, max); a single value gives a zero-width range."""
    if text is None:
        return DEFAULT_RECHARGE
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise DataError(f"recharge must be MIN,MAX in m/h, got {text!r}",
                            field="recharge") from None
    else:
        vals = [float(v) for v in text]
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or not all(np.isfinite(vals)) or vals[0] < 0 or vals[0] > vals[1]:
        raise DataError(f"recharge must be MIN,MAX with 0 <= MIN <= MAX (m/h), got {text!r}",
                        field="recharge")
    return vals[0], vals[1]


def region_tables(regions: list[Region], region_raster: np.ndarray | None, shape: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Index of each cell's region in ``regions`` (-1 = none) and the (n, 7) parameter array
    (tmin, tmax, cmin, cmax, phimin, phimax, density) the kernels use.

    Without a region raster, every cell belongs to the first region.
    """
    params = np.array([[r.tmin, r.tmax, r.cmin, r.cmax, r.phimin, r.phimax, r.density]
                       for r in regions], dtype=np.float64)
    if region_raster is None:
        return np.zeros(shape, dtype=np.int32), params
    ras = np.asarray(region_raster)
    if ras.shape != tuple(shape):
        raise DataError(f"the region raster is {ras.shape[1]}x{ras.shape[0]} cells, the DEM "
                        f"{shape[1]}x{shape[0]}: they must share the grid", field="regions")
    index = np.full(ras.shape, -1, dtype=np.int32)
    valid = np.isfinite(ras) if np.issubdtype(ras.dtype, np.floating) else np.ones(ras.shape, bool)
    for k, reg in enumerate(regions):
        index[valid & (ras == reg.id)] = k
    return index, params
