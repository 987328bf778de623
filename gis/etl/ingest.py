"""``ngis ingest``: sources -> standards check -> national CRS -> base-map store + catalogue.

Invalid records: by default one invalid record refuses the whole batch (nothing is written);
with ``skip_invalid`` the invalid records are left out, and so are the rows of the layer's
extras tables (e.g. ``buildings_surfaces``) that belong to them (their ``<standard>_id``,
``building_id`` for buildings), so no extras row is left pointing at a record that is not in
the store. The summary and the catalogue lineage count both.

Repairs: ``repair`` (``--repair``, or ``repair: true`` in a manifest source) asks the reader to
repair what it knows how to repair instead of reporting it. CityJSON: every surface polygon that
is invalid in its own plane is repaired there with ``make_valid``
(:func:`gis.io.cityjson.repair_surfaces`) and the Building kept, its ``lineage`` saying so; other
formats have no repairs and read as usual.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import yaml
from pyproj import CRS

import standards
from gis import __version__
from gis.errors import CRSError, DataError, NgisError
from gis.etl.catalog import make_record
from gis.io import parse_crs, read_source
from gis.io.raster import is_raster_path, iter_blocks, open_dem
from gis.store import RasterLayer, VectorLayer, open_store
from gis.store.base import conform
from gis.validate import LayerReport, validate_layer

log = logging.getLogger(__name__)

NATIONAL_CRS = "EPSG:3826"


@dataclass
class SourceSpec:
    """One source to ingest.

    Attributes:
        path: The file.
        layer: Store table to load it into (default: the standard's layer, e.g. ``buildings``;
            ``dem`` for DEMs). Several sources with one target layer are concatenated.
        standard: The standard it follows (default: what the reader or a profile says).
        source_layer: One layer of a multi-layer source (default: all).
        crs: The source CRS, overriding the file's.
        kind: ``vector`` or ``dem`` (default: from the file).
        target_crs: CRS of this source's store layer (default: the ingest's, EPSG:3826); lets
            one store hold Taiwanese layers in TWD97 and, say, PLATEAU layers in JGD2011.
        skip_invalid: Leave this source's invalid records out (default: the ingest's setting).
        metadata: Catalogue fields to set (title, abstract, access_grade, charge_class, licence...).
        lod: CityJSON sources: the LOD to read (``2.2``; default the highest up to 2.x).
        origin: IFC sources without usable georeferencing: ``"E,N,H"`` of the model origin in
            ``crs``; ``rotation``: its x axis from grid east, counter-clockwise, degrees.
        repair: Repair what the reader can repair (CityJSON: surface polygons invalid in their
            plane) instead of reporting it (default: the ingest's setting).
    """

    path: str
    layer: str | None = None
    standard: str | None = None
    source_layer: str | None = None
    crs: str | None = None
    kind: str | None = None
    target_crs: str | None = None
    skip_invalid: bool | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    lod: str | None = None
    origin: str | None = None
    rotation: float | None = None
    repair: bool | None = None


@dataclass
class LayerSummary:
    """What one store layer got.

    Attributes:
        name, kind: Store layer and ``vector`` or ``dem``.
        records: Records (cells for a DEM) written.
        rejected: Invalid records left out (``skip_invalid``).
        sources: The source files.
        extras_dropped: Extras table (e.g. ``buildings_surfaces``) -> rows left out with the
            rejected records they belong to.
    """

    name: str
    kind: str
    records: int
    rejected: int
    sources: list[str]
    extras_dropped: dict[str, int] = field(default_factory=dict)


class IngestValidationError(DataError):
    """Sources break the standard; nothing was written."""

    def __init__(self, reports: list[LayerReport]):
        n = sum(len(r.issues) for r in reports)
        super().__init__(f"{n} problem(s) in the sources; nothing was written "
                         "(fix them, or pass --skip-invalid to load only the valid records)")
        self.reports = reports


def load_manifest(path: str | os.PathLike) -> list[SourceSpec]:
    """Read a manifest (JSON or YAML) listing sources; paths are relative to the manifest.

    Raises:
        DataError: The manifest is malformed.
    """
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text("utf-8"))  # JSON is YAML
    except (OSError, yaml.YAMLError) as err:
        raise DataError(f"cannot read manifest: {err}", path=str(p)) from err
    if not isinstance(doc, dict) or not isinstance(doc.get("sources"), list):
        raise DataError("manifest needs a 'sources' list", path=str(p))
    known = set(SourceSpec.__dataclass_fields__) - {"metadata"}
    specs = []
    for i, entry in enumerate(doc["sources"], 1):
        if not isinstance(entry, dict) or "path" not in entry:
            raise DataError(f"source #{i} needs a 'path'", path=str(p))
        fields = {k: v for k, v in entry.items() if k in known}
        metadata = {k: v for k, v in entry.items() if k not in known and k != "count"}
        fields["path"] = str((p.parent / entry["path"]).resolve()) if not os.path.isabs(
            entry["path"]) else entry["path"]
        specs.append(SourceSpec(**fields, metadata=metadata))
    return specs


def ingest(store_uri: str, specs: list[SourceSpec], *, target_crs: str = NATIONAL_CRS,
           skip_invalid: bool = False, repair: bool = False,
           progress: Callable[[str], None] | None = None) -> list[LayerSummary]:
    """Load sources into the store in one atomic write.

    Args:
        store_uri: GeoPackage path or postgresql:// URL.
        specs: The sources.
        target_crs: The store CRS for these layers.
        skip_invalid: Load the valid records and leave out the others (reported in the
            lineage), with the rows of extras tables that belong to them, instead of refusing
            the whole batch.
        repair: Have the readers repair what they can (CityJSON surfaces invalid in their
            plane) instead of reporting it; a source's own ``repair`` wins.
        progress: Called with a short message as each source is done.

    Returns:
        One summary per store layer written.

    Raises:
        IngestValidationError: Records break the standards (and ``skip_invalid`` is off).
        DataError, CRSError: A source is unreadable or in the wrong place.
    """
    default_target = parse_crs(target_crs)
    pending: dict[str, dict[str, Any]] = {}
    rasters: list[tuple[SourceSpec, RasterLayer, dict]] = []
    failed: list[LayerReport] = []
    for spec in specs:
        target = parse_crs(spec.target_crs) if spec.target_crs else default_target
        if spec.kind == "dem" or (spec.kind is None and is_raster_path(spec.path)):
            rasters.append(_prepare_dem(spec, target))
        else:
            skip = skip_invalid if spec.skip_invalid is None else spec.skip_invalid
            fix = repair if spec.repair is None else bool(spec.repair)
            for lyr, report, frame in _prepare_vector(spec, target, skip, fix):
                if report.issues and not skip:
                    failed.append(report)
                    continue
                name = spec.layer or standards.load(report.standard).layer or lyr.name
                slot = pending.setdefault(name, {"frames": [], "extras": {}, "specs": [],
                                                 "standard": report.standard, "rejected": 0,
                                                 "files": [], "crs": target, "dropped": {}})
                if slot["standard"] != report.standard:
                    raise DataError(f"layer {name!r} gets both {slot['standard']} and "
                                    f"{report.standard} records", path=spec.path)
                if slot["crs"] != target:
                    raise CRSError(f"layer {name!r} gets sources for two CRSs "
                                   f"({slot['crs'].to_string()} and {target.to_string()})",
                                   path=spec.path)
                slot["frames"].append(frame)
                slot["specs"].append(spec)
                slot["rejected"] += report.bad_records
                slot["files"].append(_describe_file(spec.path, len(lyr.frame), lyr.crs, lyr))
                for key, extra in lyr.extras.items():
                    if len(frame) < len(lyr.frame):  # records left out: their rows go too
                        extra, n = _drop_orphans(extra, lyr.frame, frame, report.standard)
                        if n:
                            table = f"{name}_{key}"
                            slot["dropped"][table] = slot["dropped"].get(table, 0) + n
                    slot["extras"].setdefault(key, []).append(_to_crs(extra, target, spec.path))
        if progress:
            progress(os.path.basename(spec.path))
    if failed:
        raise IngestValidationError(failed)

    vectors, records, summaries = [], [], []
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    for name, slot in pending.items():
        target = slot["crs"]
        frame = conform(pd.concat(slot["frames"], ignore_index=True), slot["standard"])
        frame = gpd.GeoDataFrame(frame, geometry="geometry", crs=target)
        vectors.append(VectorLayer(name, frame, slot["standard"]))
        for key, parts in slot["extras"].items():
            vectors.append(VectorLayer(f"{name}_{key}", gpd.GeoDataFrame(
                pd.concat(parts, ignore_index=True), geometry="geometry", crs=target), None))
        meta = _merge_metadata(slot["specs"])
        lineage = _lineage(slot["files"], slot["standard"], target, slot["rejected"],
                           dropped=slot["dropped"])
        records.append(make_record(name, frame=frame, standard=slot["standard"], crs=target,
                                   lineage=lineage, metadata=meta, when=now))
        summaries.append(LayerSummary(name, "vector", len(frame), slot["rejected"],
                                      [s.path for s in slot["specs"]], dict(slot["dropped"])))
    for _spec, raster, _ in rasters:
        summaries.append(LayerSummary(raster.name, "dem", raster.shape[0] * raster.shape[1], 0,
                                      [spec.path]))

    def all_records():  # raster statistics exist once the store has written the blocks
        return records + [
            make_record(raster.name, raster=raster, crs=raster.crs, metadata=spec.metadata,
                        when=now, lineage=_lineage([info["file"]], None, raster.crs, 0,
                                                   info.get("note")))
            for spec, raster, info in rasters]

    open_store(store_uri).write(vectors, [r for _, r, _ in rasters], all_records)
    return summaries


def _prepare_vector(spec: SourceSpec, target: CRS, skip_invalid: bool, repair: bool = False):
    layers = read_source(spec.path, standard=spec.standard, layer=spec.source_layer, crs=spec.crs,
                         lod=None if spec.lod is None else str(spec.lod),
                         origin=_origin(spec), rotation=float(spec.rotation or 0.0),
                         repair=repair)
    for lyr in layers:
        report = validate_layer(lyr, spec.standard)
        if any(i.row < 0 for i in report.issues):  # layer-wide (no CRS): never skippable
            report.issues = [i for i in report.issues if i.row < 0]
            if skip_invalid:
                raise IngestValidationError([report])
        frame = lyr.frame
        if report.issues and skip_invalid:
            bad = sorted({i.row for i in report.issues})
            frame = frame.drop(index=frame.index[bad])
            log.warning("%s: left out %d invalid record(s)", spec.path, len(bad))
        if not report.issues or skip_invalid:
            _check_area(frame, target, spec.path)
            frame = _to_crs(frame, target, spec.path)
        yield lyr, report, frame


def _drop_orphans(extra: gpd.GeoDataFrame, read: gpd.GeoDataFrame, kept: gpd.GeoDataFrame,
                  standard: str) -> tuple[gpd.GeoDataFrame, int]:
    """An extras table without the rows of records that were read but left out.

    The rows point at their record through ``<standard>_id`` (``building_id``: the Building's
    ``id``); a table without that column is kept whole. An id that is both left out and kept
    (duplicate ids in one source) keeps its rows: they still have a record to belong to.

    Returns:
        (the table, the number of rows dropped).
    """
    column = f"{standard}_id"
    id_field = standards.load(standard).id_field
    if column not in extra.columns or id_field not in read.columns:
        return extra, 0
    gone = set(read[id_field].dropna()) - set(kept[id_field].dropna())
    if not gone:
        return extra, 0
    drop = extra[column].isin(gone).to_numpy()
    return (extra[~drop] if drop.any() else extra), int(drop.sum())


def _to_crs(frame: gpd.GeoDataFrame, target: CRS, path: str) -> gpd.GeoDataFrame:
    if frame.crs is None:
        raise CRSError("no CRS", path=path)
    if CRS.from_user_input(frame.crs) == target:
        return frame
    return frame.to_crs(target)


def _check_area(frame: gpd.GeoDataFrame, target: CRS, path: str) -> None:
    """Refuse sources that lie outside the target CRS's area of use (e.g. Japan in TWD97)."""
    aou = target.area_of_use
    if aou is None or frame.empty or frame.crs is None:
        return
    to_ll = pyproj.Transformer.from_crs(frame.crs, 4326, always_xy=True)
    w, s, e, n = to_ll.transform_bounds(*frame.total_bounds)
    slack = 1.0
    if w < aou.west - slack or e > aou.east + slack or s < aou.south - slack or n > aou.north + slack:
        hint = _suggest_crs(w, s, e, n)
        raise CRSError(f"data ({w:.3f}, {s:.3f}, {e:.3f}, {n:.3f}) lies outside the area of "
                       f"{target.to_string()} ({aou.name}); ingest it with --target-crs {hint}",
                       path=path)


def _suggest_crs(w: float, s: float, e: float, n: float) -> str:
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    infos = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(w, s, e, n))
    return f"EPSG:{infos[0].code}" if infos else "a CRS that covers it"


def _prepare_dem(spec: SourceSpec, target: CRS) -> tuple[SourceSpec, RasterLayer, dict]:
    name = spec.layer or "dem"
    with open_dem(spec.path, spec.crs, target) as (ds, src_crs, assumed):
        shape, transform = (ds.height, ds.width), ds.transform
    stats: dict[str, float] = {}

    def blocks():
        lo, hi, valid = np.inf, -np.inf, 0
        with open_dem(spec.path, spec.crs, target, quiet=True) as (ds, _, _):
            for offset, block in iter_blocks(ds):
                finite = block[np.isfinite(block)]
                if finite.size:
                    lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
                    valid += finite.size
                yield offset, block
        stats.update(min=lo, max=hi, valid_cells=valid)

    raster = RasterLayer(name, target, transform, shape, blocks, stats)
    note = "source CRS assumed EPSG:4326 (none in the file)" if assumed else None
    info = {"file": _describe_file(spec.path, shape[0] * shape[1], src_crs, None, "cells"),
            "note": note}
    return spec, raster, info


def _describe_file(path: str, count: int, crs, layer, unit: str = "records") -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    crs_text = CRS.from_user_input(crs).to_string() if crs is not None else "no CRS"
    profile = f", {layer.name}" if layer is not None else ""
    return (f"{os.path.basename(path)}{profile} (sha256 {digest.hexdigest()[:16]}, {count} {unit}, "
            f"{crs_text})")


def _lineage(files: list[str], standard: str | None, target: CRS, rejected: int,
             note: str | None = None, dropped: dict[str, int] | None = None) -> str:
    parts = [f"Sources: {'; '.join(files)}."]
    if standard:
        parts.append(f"Checked against {standards.load(standard).urn}.")
    if rejected:
        extra = ", ".join(f"{n} {table} row(s)" for table, n in (dropped or {}).items() if n)
        parts.append(f"{rejected} invalid record(s) left out"
                     + (f", with their {extra}." if extra else "."))
    if note:
        parts.append(note[0].upper() + note[1:] + ".")
    parts.append(f"Reprojected to {target.to_string()} with PROJ {pyproj.proj_version_str}; "
                 f"heights kept as the source gives them (orthometric). "
                 f"Loaded by ngis {__version__}.")
    return " ".join(parts)


def _merge_metadata(specs: list[SourceSpec]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for spec in specs:
        for k, v in spec.metadata.items():
            meta.setdefault(k, v)
    return meta


def summary_json(summaries: list[LayerSummary]) -> str:
    """Summaries as JSON (for --json output)."""
    return json.dumps([s.__dict__ for s in summaries], ensure_ascii=False, indent=2)


__all__ = ["SourceSpec", "LayerSummary", "IngestValidationError", "ingest", "load_manifest",
           "NATIONAL_CRS", "NgisError"]


def _origin(spec: SourceSpec) -> tuple[float, float, float] | None:
    """``SourceSpec.origin`` (``"E,N,H"`` or a 3-sequence) as numbers."""
    if spec.origin is None:
        return None
    parts = spec.origin.split(",") if isinstance(spec.origin, str) else list(spec.origin)
    try:
        values = tuple(float(v) for v in parts)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise DataError(f"origin must be E,N,H (three numbers), not {spec.origin!r}",
                        path=spec.path, field="origin")
    if spec.crs is None:
        raise DataError("an origin needs the CRS it is in (crs, e.g. EPSG:3826)", path=spec.path,
                        field="crs")
    return values

