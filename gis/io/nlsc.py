"""NLSC (Taiwan National Land Surveying and Mapping Center) 3D building model attribute points.

The NLSC 3D-maps service exposes one record per building model: its id, height (``BUILD_H``),
floors (``BUILD_NO``), structure code (``BUILD_STR``: R reinforced concrete, B brick, M metal/steel,
D wood and other) and centroid in TWD97 TM2 (``CENT_E_97``, ``CENT_N_97``). Files are JSON, either an
object with a ``buildings`` list or a bare list of records.
"""

from __future__ import annotations

import json
import os

import geopandas as gpd
import numpy as np
import pandas as pd

from gis.errors import MalformedFileError
from gis.io.model import SourceLayer

NLSC_KEYS = {"BUILD_ID", "BUILD_H", "CENT_E_97", "CENT_N_97"}


def is_nlsc_points(path: str | os.PathLike) -> bool:
    """Whether a .json file holds NLSC building records (looks at the first 64 KB)."""
    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.read(65536)
    except (OSError, UnicodeDecodeError):
        return False
    return all(f'"{k}"' in head for k in NLSC_KEYS) and '"FeatureCollection"' not in head


def read_nlsc_points(path: str | os.PathLike) -> SourceLayer:
    """Read NLSC building records as points in EPSG:3826, with the building standard's fields.

    Raises:
        MalformedFileError: Not JSON, or not a list of NLSC records.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as err:
        raise MalformedFileError(f"malformed JSON at line {err.lineno}: {err.msg}",
                                 path=str(path)) from err
    records = doc.get("buildings") if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise MalformedFileError("expected a JSON list of NLSC building records", path=str(path))
    raw = pd.DataFrame.from_records(records)
    missing = NLSC_KEYS - set(raw.columns)
    if missing:
        raise MalformedFileError(f"NLSC records lack {', '.join(sorted(missing))}", path=str(path))
    east = pd.to_numeric(raw["CENT_E_97"], errors="coerce")
    north = pd.to_numeric(raw["CENT_N_97"], errors="coerce")
    geometry = gpd.points_from_xy(east, north)
    geometry[np.asarray(east.isna() | north.isna())] = None
    source = "NLSC 3D building models" + raw.get("SOURCE_DES", pd.Series("", index=raw.index)).map(
        lambda s: f" ({s})" if s else "")
    frame = gpd.GeoDataFrame({
        "id": raw["BUILD_ID"].astype(str),
        "height": pd.to_numeric(raw["BUILD_H"], errors="coerce"),
        "storeys": pd.to_numeric(raw.get("BUILD_NO"), errors="coerce").astype("Int64"),
        "structure": raw.get("BUILD_STR"),
        "lod": pd.to_numeric(raw.get("MODEL_LOD"), errors="coerce").astype("Int64"),
        "source": source,
        "lineage": f"NLSC 3D-maps building attributes read from {os.path.basename(path)}; "
                   "point at the model centroid (CENT_E_97, CENT_N_97)",
        "model_date": raw.get("MDATE"),
    }, geometry=geometry, crs="EPSG:3826")
    return SourceLayer(path=str(path), name="nlsc_buildings", frame=frame, standard="building",
                       field_sources={"id": "BUILD_ID", "height": "BUILD_H", "storeys": "BUILD_NO",
                                      "structure": "BUILD_STR", "lod": "MODEL_LOD",
                                      "geometry": "CENT_E_97/CENT_N_97"})
