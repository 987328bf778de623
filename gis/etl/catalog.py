"""Map-asset catalogue records (ISO 19115 core + access grade and charge class) for store layers."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import jsonschema
import numpy as np
import pyproj
import shapely
from pyproj import CRS

import standards
from gis.errors import DataError

TOPICS = {"building": "structure", "road": "transportation", "rail": "transportation",
          "pipeline": "utilitiesCommunication", "crash": "transportation", None: "elevation"}
KEYWORDS = {"building": ["buildings", "3D city model"], "road": ["roads", "transport network"],
            "rail": ["railways", "metro", "transport network"],
            "pipeline": ["underground utilities", "pipelines"],
            "crash": ["traffic crashes", "road safety"], None: ["elevation", "DEM", "terrain"]}


def make_record(name: str, *, crs: CRS, lineage: str, metadata: dict[str, Any], when: str,
                frame: gpd.GeoDataFrame | None = None, standard: str | None = None,
                raster=None) -> dict[str, Any]:
    """Build and check the catalogue record of a store layer.

    Unset access grades default to ``restricted``: what nobody graded stays closed.

    Raises:
        DataError: The metadata given makes an invalid record (e.g. an unknown grade).
    """
    std = standards.load(standard) if standard else None
    if frame is not None:
        bbox = _bbox_wgs84(frame.total_bounds, crs) if len(frame) else None
        count = int(len(frame))
        zs = shapely.get_coordinates(frame.geometry.array, include_z=True)[:, 2] if len(frame) else []
        zs = np.asarray(zs)[np.isfinite(zs)] if len(zs) else np.array([])
        vertical = [float(zs.min()), float(zs.max())] if zs.size else None
        resolution = None
        what = std.title if std else name
    else:
        rows, cols = raster.shape
        left, top = raster.transform @ (0, 0)
        right, bottom = raster.transform @ (cols, rows)
        bbox = _bbox_wgs84((min(left, right), min(top, bottom), max(left, right),
                            max(top, bottom)), crs)
        count = None
        stats = raster.stats
        vertical = [stats["min"], stats["max"]] if stats.get("valid_cells") else None
        resolution = float(abs(raster.transform.a))
        what = "Digital elevation model"
    record = {
        "id": name,
        "layer": name,
        "title": metadata.get("title") or f"{what} ({name})",
        "abstract": metadata.get("abstract") or f"{what} layer '{name}' of the NGIS 3D base map.",
        "keywords": list(metadata.get("keywords") or [*KEYWORDS[standard], "NGIS 3D"]),
        "topic_category": metadata.get("topic_category") or TOPICS[standard],
        "extent": {"bbox": bbox or [0.0, 0.0, 0.0, 0.0], "vertical": vertical,
                   "temporal": metadata.get("temporal")},
        "crs": _crs_code(crs),
        "vertical_datum": metadata.get("vertical_datum", "orthometric heights as the source gives "
                                       "them (TWVD2001 for Taiwanese sources)"),
        "lineage": lineage,
        "resolution": resolution,
        "scale_denominator": metadata.get("scale_denominator"),
        "accuracy": metadata.get("accuracy"),
        "custodian": metadata.get("custodian") or {"name": "NGIS 3D base-map programme",
                                                   "role": "custodian"},
        "update_frequency": metadata.get("update_frequency", "asNeeded"),
        "licence": metadata.get("licence", "not stated by the source: ask the custodian"),
        "access_grade": metadata.get("access_grade", "restricted"),
        "charge_class": metadata.get("charge_class", "standard"),
        "feature_count": count,
        "standard": f"{std.name} {std.version}" if std else None,
        "created": metadata.get("created", when),
        "updated": when,
    }
    if isinstance(record["custodian"], str):
        record["custodian"] = {"name": record["custodian"]}
    validator = jsonschema.Draft202012Validator(standards.load("map_asset").schema)
    errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "/".join(map(str, e.path)) or "record"
        raise DataError(f"catalogue record: {where}: {e.message}", layer=name)
    return record


def _crs_code(crs: CRS) -> str:
    auth = crs.to_authority() or crs.to_authority(min_confidence=90)
    if auth is None:
        raise DataError(f"store CRS has no EPSG or OGC code: {crs.name}")
    return f"{auth[0]}:{auth[1]}"


def _bbox_wgs84(bounds, crs: CRS) -> list[float]:
    to_ll = pyproj.Transformer.from_crs(crs, 4326, always_xy=True)
    w, s, e, n = to_ll.transform_bounds(*map(float, bounds), densify_pts=21)
    return [round(w, 7), round(s, 7), round(e, 7), round(n, 7)]
