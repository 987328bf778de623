"""OGC API - Records: the store's map-asset catalogue.

A pygeoapi ``record`` provider over the catalogue table ``ngis_catalog`` of a store (a GeoPackage
path or a ``postgresql://...?schema=NAME`` URL)::

    - type: record
      name: gis.server.providers.records.CatalogRecordsProvider
      data: /srv/ngis/basemap.gpkg
      id_field: id
      time_field: updated
      title_field: title
      options:                                   # optional
        base_url: ${NGIS_SERVER_URL:-http://127.0.0.1:5000}   # for record links (default: the
                                                              # NGIS_SERVER_URL variable, else
                                                              # root-relative links)
        grades: [public, agency, restricted]     # records listed (default: all)

Each map-asset record becomes an OGC API - Records GeoJSON record: ``id``; ``geometry`` the WGS84
bounding box as a polygon; ``time`` the temporal extent; ``properties`` with ``type`` (dataset),
``title``, ``description`` (the abstract), ``keywords``, ``themes`` (ISO topic category),
``contacts``, ``rights``, ``created``/``updated`` and the NGIS fields under ``ngis:`` (access grade,
charge class, CRS, lineage, feature count, resolution...); ``links`` to the OGC API collection the
record describes.

Searching: ``q`` (every term, case-insensitive, as a substring of the title, abstract or a
keyword), ``bbox`` (intersects the record's box), ``datetime`` (on ``time_field``), property
filters (scalars: case-insensitive equality; ``keywords``: every comma-separated value present),
``sortby``, ``limit``/``offset``, ``resulttype=hits``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sqlite3
import threading
import time
from datetime import datetime, timezone
from typing import Any

from pygeoapi.provider.base import (BaseProvider, ProviderConnectionError,
                                    ProviderInvalidQueryError, ProviderItemNotFoundError)

from gis.server.providers.tiles import (PG_TTL, _file_key, gpkg_connect, is_postgres, pg_cursor,
                                        pg_split, redact)

CATALOG_TABLE = "ngis_catalog"
RECORD_CORE = "http://www.opengis.net/spec/ogcapi-records-1/1.0/req/record-core"
TOPIC_SCHEME = "https://standards.iso.org/iso/19139/resources/gmxCodelists.xml#MD_TopicCategoryCode"
URL_VAR = "NGIS_SERVER_URL"

FIELDS: dict[str, dict[str, Any]] = {
    "type": {"type": "string", "title": "Resource type"},
    "title": {"type": "string", "title": "Title"},
    "description": {"type": "string", "title": "Abstract"},
    "keywords": {"type": "array", "items": {"type": "string"}, "title": "Keywords"},
    "created": {"type": "string", "format": "date-time", "title": "Created"},
    "updated": {"type": "string", "format": "date-time", "title": "Last update"},
    "rights": {"type": "string", "title": "Licence or use constraints"},
    "ngis:layer": {"type": "string", "title": "Store table"},
    "ngis:access_grade": {"type": "string", "title": "Access grade",
                          "enum": ["public", "agency", "restricted"]},
    "ngis:charge_class": {"type": "string", "title": "Charge class",
                          "enum": ["free", "standard", "premium"]},
    "ngis:topic_category": {"type": "string", "title": "ISO 19115 topic category"},
    "ngis:crs": {"type": "string", "title": "Storage CRS"},
    "ngis:standard": {"type": "string", "title": "Data standard"},
    "ngis:update_frequency": {"type": "string", "title": "Maintenance frequency"},
    "ngis:feature_count": {"type": "integer", "title": "Features"},
    "ngis:resolution": {"type": "number", "title": "Ground resolution (m)"},
    "ngis:scale_denominator": {"type": "integer", "title": "Scale denominator"},
    "ngis:accuracy": {"type": "number", "title": "Positional accuracy (m)"},
}
"""Queryable record properties (pygeoapi passes only these as property filters)."""

_CATALOGS: dict[str, tuple[Any, float, list[dict[str, Any]]]] = {}
_LOCK = threading.Lock()


# -- the catalogue ----------------------------------------------------------------------------
def _read_gpkg(path: str) -> list[dict[str, Any]]:
    with contextlib.closing(gpkg_connect(path)) as con:
        try:
            con.execute("SELECT 1 FROM gpkg_contents LIMIT 1")
        except sqlite3.DatabaseError as err:
            raise ProviderConnectionError(user_msg=f"not a GeoPackage store: {err}") from err
        try:
            rows = con.execute(f"SELECT record FROM {CATALOG_TABLE} ORDER BY id").fetchall()
        except sqlite3.OperationalError:
            return []
    return [json.loads(r[0]) for r in rows]


def _read_pg(url: str) -> list[dict[str, Any]]:
    from psycopg2 import sql

    _, schema = pg_split(url)
    with pg_cursor(url) as cur:
        cur.execute("SELECT to_regclass(%s)", (f'"{schema}"."{CATALOG_TABLE}"',))
        if cur.fetchone()[0] is None:
            return []
        cur.execute(sql.SQL("SELECT record FROM {}.{} ORDER BY id").format(
            sql.Identifier(schema), sql.Identifier(CATALOG_TABLE)))
        return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in cur.fetchall()]


def catalog_records(data: str) -> list[dict[str, Any]]:
    """The store's map-asset records, cached (GeoPackage: until the file changes; PostGIS: for
    ``PG_TTL`` seconds)."""
    data = str(data)
    cached = _CATALOGS.get(data)
    if is_postgres(data):
        if cached is not None and time.monotonic() - cached[1] < PG_TTL:
            return cached[2]
        records = _read_pg(data)
        key = None
    else:
        key = _file_key(data)
        if cached is not None and cached[0] == key:
            return cached[2]
        records = _read_gpkg(data)
    with _LOCK:
        _CATALOGS[data] = (key, time.monotonic(), records)
    return records


def _is_raster(rec: dict[str, Any]) -> bool:
    return rec.get("feature_count") is None and rec.get("resolution") is not None


def to_record(rec: dict[str, Any], base_url: str = "") -> dict[str, Any]:
    """One map-asset record as an OGC API - Records GeoJSON record."""
    extent = rec.get("extent") or {}
    bbox = extent.get("bbox")
    geometry = None
    if bbox and len(bbox) == 4 and any(bbox):
        w, s, e, n = (float(v) for v in bbox)
        geometry = {"type": "Polygon",
                    "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    temporal = extent.get("temporal")
    custodian = rec.get("custodian") or {}
    contact = {"name": custodian.get("name"),
               "roles": [custodian.get("role") or "custodian"]}
    if custodian.get("email"):
        contact["emails"] = [{"value": custodian["email"]}]
    layer = rec.get("layer") or rec["id"]
    props: dict[str, Any] = {
        "type": "dataset",
        "title": rec.get("title"),
        "description": rec.get("abstract"),
        "keywords": list(rec.get("keywords") or []),
        "themes": ([{"concepts": [{"id": rec["topic_category"]}], "scheme": TOPIC_SCHEME}]
                   if rec.get("topic_category") else []),
        "contacts": [contact],
        "rights": rec.get("licence"),
        "created": rec.get("created"),
        "updated": rec.get("updated"),
        "formats": ([{"name": "CoverageJSON", "mediaType": "application/prs.coverage+json"},
                     {"name": "GeoTIFF", "mediaType": "image/tiff"}] if _is_raster(rec) else
                    [{"name": "GeoJSON", "mediaType": "application/geo+json"},
                     {"name": "MVT", "mediaType": "application/vnd.mapbox-vector-tile"}]),
        "ngis:layer": layer,
        "ngis:access_grade": rec.get("access_grade"),
        "ngis:charge_class": rec.get("charge_class"),
        "ngis:topic_category": rec.get("topic_category"),
        "ngis:crs": rec.get("crs"),
        "ngis:vertical_datum": rec.get("vertical_datum"),
        "ngis:vertical_extent": extent.get("vertical"),
        "ngis:lineage": rec.get("lineage"),
        "ngis:standard": rec.get("standard"),
        "ngis:update_frequency": rec.get("update_frequency"),
        "ngis:feature_count": rec.get("feature_count"),
        "ngis:resolution": rec.get("resolution"),
        "ngis:scale_denominator": rec.get("scale_denominator"),
        "ngis:accuracy": rec.get("accuracy"),
    }
    collection = f"{base_url.rstrip('/')}/collections/{layer}"
    links = [{"rel": "describes", "type": "application/json",
              "title": f"The collection this record describes: {rec.get('title')}",
              "href": collection}]
    if _is_raster(rec):
        links.append({"rel": "http://www.opengis.net/def/rel/ogc/1.0/coverage",
                      "type": "application/prs.coverage+json", "title": "Coverage data",
                      "href": f"{collection}/coverage"})
    else:
        links += [{"rel": "items", "type": "application/geo+json", "title": "Features",
                   "href": f"{collection}/items"},
                  {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
                   "type": "application/json", "title": "Vector tiles",
                   "href": f"{collection}/tiles"}]
    return {
        "id": rec["id"],
        "type": "Feature",
        "conformsTo": [RECORD_CORE],
        "time": {"interval": list(temporal)} if temporal else None,
        "geometry": geometry,
        "properties": props,
        "links": links,
    }


# -- matching ---------------------------------------------------------------------------------
def search_text(rec: dict[str, Any]) -> str:
    """What ``q`` searches: title, abstract and keywords, case-folded."""
    parts = [rec.get("title"), rec.get("abstract"), *(rec.get("keywords") or [])]
    return "\n".join(str(p) for p in parts if p).casefold()


def q_terms(q: str | None) -> list[str]:
    """The terms of a ``q`` value (split on commas and white space)."""
    return [t for t in (q or "").replace(",", " ").casefold().split() if t]


def _intersects(box: list[float] | None, query: list[float]) -> bool:
    if not box or len(box) != 4 or not any(box):
        return False
    if len(query) == 6:
        query = [query[0], query[1], query[3], query[4]]
    w, s, e, n = (float(v) for v in query)
    return not (box[0] > e or box[2] < w or box[1] > n or box[3] < s)


def _parse_time(value: Any) -> datetime | None:
    if value in (None, "", ".."):
        return None
    text = str(value).strip().replace("Z", "+00:00")
    try:
        out = datetime.fromisoformat(text)
    except ValueError as err:
        raise ProviderInvalidQueryError(user_msg=f"bad datetime {value!r}") from err
    return out if out.tzinfo else out.replace(tzinfo=timezone.utc)


def _in_time(value: Any, datetime_: str) -> bool:
    when = _parse_time(value) if value else None
    if when is None:
        return False
    if "/" in datetime_:
        start, end = (_parse_time(p) for p in datetime_.split("/", 1))
        return (start is None or when >= start) and (end is None or when <= end)
    instant = _parse_time(datetime_)
    if instant is None:
        return True
    if len(datetime_.strip()) == 10:  # a date: the whole day
        return when.date() == instant.date()
    return when == instant


def _matches_property(props: dict[str, Any], name: str, value: Any) -> bool:
    have = props.get(name)
    if have is None:
        return False
    if isinstance(have, list):
        wanted = [v.strip().casefold() for v in str(value).split(",") if v.strip()]
        present = {str(h).casefold() for h in have}
        return all(w in present for w in wanted)
    if isinstance(have, bool):
        return str(value).strip().lower() in (("true", "1") if have else ("false", "0"))
    if isinstance(have, (int, float)):
        try:
            return float(value) == float(have)
        except (TypeError, ValueError):
            return False
    return str(have).casefold() == str(value).strip().casefold()


def _sort_key(value: Any):
    if value is None:
        return (1, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    if isinstance(value, list):
        return (0, ",".join(map(str, value)).casefold())
    return (0, str(value).casefold())


# -- the provider -----------------------------------------------------------------------------
class CatalogRecordsProvider(BaseProvider):
    """The store's map-asset catalogue for OGC API - Records."""

    def __init__(self, provider_def: dict[str, Any]):
        super().__init__(provider_def)
        self.data = str(self.data)
        options = dict(self.options or {})
        self.options = options
        self.id_field = self.id_field or "id"
        self.title_field = self.title_field or "title"
        self.base_url = str(options.get("base_url") or os.environ.get(URL_VAR, ""))
        grades = options.get("grades")
        self.grades = None if grades is None else {str(g) for g in grades}
        try:
            catalog_records(self.data)
        except ProviderConnectionError:
            raise
        except Exception as err:  # noqa: BLE001 - whatever the backend raises: no connection
            raise ProviderConnectionError(
                user_msg=f"cannot read the catalogue of {redact(self.data)}: {err}") from err

    def __repr__(self) -> str:
        return f"<CatalogRecordsProvider> {redact(self.data)}"

    def get_fields(self) -> dict[str, dict[str, Any]]:
        # A fresh copy each time: pygeoapi's OpenAPI builder edits the dicts it is given.
        return copy.deepcopy(FIELDS)

    @property
    def fields(self) -> dict[str, dict[str, Any]]:
        return self.get_fields()

    def _records(self) -> list[dict[str, Any]]:
        recs = catalog_records(self.data)
        if self.grades is not None:
            recs = [r for r in recs if r.get("access_grade") in self.grades]
        return recs

    def get_domains(self, properties=None, current=False):
        domains: dict[str, list] = {}
        keys = properties or list(FIELDS)
        for rec in self._records():
            props = to_record(rec)["properties"]
            for k in keys:
                v = props.get(k)
                for item in (v if isinstance(v, list) else [v]):
                    seen = domains.setdefault(k, [])
                    if isinstance(item, (str, int, float)) and item not in seen:
                        seen.append(item)
        return {k: sorted(v, key=_sort_key) for k, v in domains.items() if v}, True

    def query(self, offset=0, limit=10, resulttype="results", bbox=None, datetime_=None,
              properties=None, sortby=None, select_properties=None, skip_geometry=False, q=None,
              filterq=None, **kwargs) -> dict[str, Any]:
        """Search the catalogue."""
        if filterq is not None:
            raise ProviderInvalidQueryError(
                user_msg="CQL2 filters are not supported by the catalogue; use q, bbox, "
                         "datetime and property parameters")
        for name, _ in properties or []:
            if name not in FIELDS:
                raise ProviderInvalidQueryError(user_msg=f"unknown property {name!r}")
        terms = q_terms(q)
        out = []
        for rec in self._records():
            if terms:
                text = search_text(rec)
                if not all(t in text for t in terms):
                    continue
            if bbox and not _intersects((rec.get("extent") or {}).get("bbox"), list(bbox)):
                continue
            feature = to_record(rec, self.base_url)
            if datetime_ and not _in_time(feature["properties"].get(self.time_field or
                                                                     "updated"), datetime_):
                continue
            if not all(_matches_property(feature["properties"], k, v)
                       for k, v in properties or []):
                continue
            out.append(feature)
        for sort in reversed(sortby or []):
            prop = sort["property"]
            out.sort(key=lambda f: _sort_key(f["id"] if prop == self.id_field else
                                             f["properties"].get(prop)),
                     reverse=sort.get("order") == "-")
        matched = len(out)
        result: dict[str, Any] = {"type": "FeatureCollection", "features": [],
                                  "numberMatched": matched, "numberReturned": 0}
        if resulttype == "hits":
            return result
        page = out[int(offset):int(offset) + int(limit)]
        for feature in page:
            self._shape(feature, select_properties, skip_geometry)
        result["features"] = page
        result["numberReturned"] = len(page)
        return result

    def get(self, identifier, **kwargs) -> dict[str, Any]:
        """One record by id."""
        for rec in self._records():
            if str(rec.get("id")) == str(identifier):
                return to_record(rec, self.base_url)
        raise ProviderItemNotFoundError(user_msg=f"no catalogue record {identifier!r}")

    @staticmethod
    def _shape(feature: dict[str, Any], select_properties, skip_geometry) -> None:
        if select_properties:
            keep = set(select_properties)
            feature["properties"] = {k: v for k, v in feature["properties"].items() if k in keep}
        if skip_geometry:
            feature["geometry"] = None


__all__ = ["CatalogRecordsProvider", "to_record", "catalog_records", "search_text", "q_terms",
           "FIELDS"]
