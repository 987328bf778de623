"""Check source layers against the data standards: attributes, geometry and CRS.

Every problem becomes one line ``file:layer:feature-id: field: problem``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from pyproj import CRS, Transformer

import standards
from gis.errors import NgisError
from gis.io.model import SourceLayer
from standards.records import Issue, check_records, record_labels

#: Slack around a CRS's area of use, in degrees, before a coordinate counts as outside.
AREA_TOLERANCE_DEG = 0.5


@dataclass
class LayerReport:
    """What validation found in one layer."""

    path: str
    layer: str
    standard: str
    records: int
    issues: list[Issue] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One ``file:layer:feature-id: field: problem`` line per issue."""
        out = []
        for i in self.issues:
            where = f"{self.path}:{self.layer}:{i.record}"
            out.append(f"{where}: {i.field}: {i.problem}" if i.field else f"{where}: {i.problem}")
        return out

    @property
    def bad_records(self) -> int:
        """Records with at least one issue (layer-wide issues count against no record)."""
        return len({i.row for i in self.issues if i.row >= 0})


def validate_layer(layer: SourceLayer, standard: str | None = None) -> LayerReport:
    """Check a layer's records against a standard.

    Args:
        layer: The layer, as a reader returned it.
        standard: The standard to check against; the layer's own when None.

    Raises:
        NgisError: No standard given and the layer has none.
    """
    name = standard or layer.standard
    if name is None:
        raise NgisError("cannot tell which standard this layer follows; pass --standard",
                        path=layer.path, layer=layer.name)
    std = standards.load(name)
    report = LayerReport(layer.path, layer.name, name, len(layer.frame))
    report.issues.extend(check_records(std, layer.frame.drop(columns="geometry", errors="ignore")))
    if std.geometry_types:
        report.issues.extend(check_geometry(layer, std.geometry_types, std.id_field))
    # problems the reader found in the source itself (IFC georeferencing, units, empty geometry;
    # CityJSON self-intersecting surfaces): against their record when it is a row, else layer-wide
    problems = getattr(layer, "problems", ())
    if problems:
        rows = {str(v): i for i, v in enumerate(layer.frame[std.id_field])} \
            if std.id_field in layer.frame else {}
        report.issues.extend(Issue(rows.get(record, -1), record, fld, problem)
                             for record, fld, problem in problems)
    order = {name: i for i, name in enumerate(["geometry", *std.properties])}
    report.issues.sort(key=lambda i: (i.row, order.get(i.field, -1)))
    return report


def check_geometry(layer: SourceLayer, allowed: tuple[str, ...], id_field: str = "id") -> list[Issue]:
    """Geometry problems: missing, empty, wrong type, invalid, no CRS, outside the CRS's area."""
    frame = layer.frame
    labels = record_labels(frame, id_field).to_numpy()
    issues: list[Issue] = []

    def add(mask, problem):
        for row in np.flatnonzero(mask):
            text = problem(row) if callable(problem) else problem
            issues.append(Issue(int(row), str(labels[row]), "geometry", text))

    if frame.crs is None:
        issues.append(Issue(-1, "*", "geometry", "no CRS (pass --crs, or fix the file)"))
    geoms = np.asarray(frame.geometry.array, dtype=object) if len(frame) else np.array([], object)
    missing = shapely.is_missing(geoms)
    add(missing, "missing geometry")
    empty = ~missing & shapely.is_empty(geoms)
    add(empty, "empty geometry")
    present = ~missing & ~empty
    types = np.array(shapely.get_type_id(geoms))
    names = np.array(["Point", "LineString", "LinearRing", "Polygon", "MultiPoint",
                      "MultiLineString", "MultiPolygon", "GeometryCollection"])
    type_names = np.where(types >= 0, names[np.clip(types, 0, 7)], "")
    wrong = present & ~np.isin(type_names, allowed)
    add(wrong, lambda r: f"wrong geometry type {type_names[r]} (expected {', '.join(allowed)})")
    ok = present & ~wrong
    coords, index = shapely.get_coordinates(geoms[ok], return_index=True)
    nan = np.zeros(len(geoms), bool)
    nan[np.flatnonzero(ok)[np.unique(index[np.isnan(coords).any(axis=1)])]] = True
    add(nan, "coordinates are not numbers (NaN)")
    ok &= ~nan
    invalid = ok & ~shapely.is_valid(geoms)
    if invalid.any():
        reasons = shapely.is_valid_reason(geoms[invalid])
        reason_of = dict(zip(np.flatnonzero(invalid), reasons, strict=True))
        add(invalid, lambda r: f"invalid geometry: {reason_of[r]}")
    ok &= ~invalid
    if frame.crs is not None and ok.any():
        outside = ok & _outside_area(geoms, ok, CRS.from_user_input(frame.crs))
        crs_name = frame.crs.to_string()
        add(outside, lambda r: f"coordinates outside the area of {crs_name} "
                               f"(bounds {_fmt_bounds(geoms[r])}): wrong CRS or swapped axes?")
    return issues


def _fmt_bounds(geom) -> str:
    return ", ".join(f"{v:.10g}" for v in shapely.bounds(geom))


def _outside_area(geoms: np.ndarray, ok: np.ndarray, crs: CRS) -> np.ndarray:
    """Rows whose bounds fall outside the CRS's area of use (in lon/lat, with slack)."""
    bounds = shapely.bounds(geoms)  # minx, miny, maxx, maxy; NaN for empty
    out = np.zeros(len(geoms), bool)
    aou = crs.area_of_use
    if crs.is_geographic:
        lon = bounds[:, [0, 2]]
        lat = bounds[:, [1, 3]]
        out |= ok & ((np.abs(lat) > 90).any(axis=1) | (lon < -180).any(axis=1)
                     | (lon > 360).any(axis=1))
    if aou is None:
        return out
    w, s, e, n = aou.bounds
    t = AREA_TOLERANCE_DEG
    if crs.is_geographic:
        lon, lat = bounds[:, [0, 2]], bounds[:, [1, 3]]
    else:
        to_ll = Transformer.from_crs(crs, 4326, always_xy=True)
        lon, lat = to_ll.transform(bounds[:, [0, 2]], bounds[:, [1, 3]], errcheck=False)
    with np.errstate(invalid="ignore"):
        bad = ((lon < w - t) | (lon > e + t) | (lat < s - t) | (lat > n + t) | ~np.isfinite(lon)
               | ~np.isfinite(lat)).any(axis=1)
    return out | (ok & bad)
