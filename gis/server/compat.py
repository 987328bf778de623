"""Narrow fixes to pygeoapi 0.24, applied when the server starts (found by schemathesis, see
tests/server/test_openapi_fuzz.py). Each keeps pygeoapi's behaviour except where it answers a
client's mistake with a server error:

- ``execute_process`` reads ``data.get('inputs')`` from any JSON body: a body that is JSON but
  not an object (``[]``, ``"x"``) raised AttributeError, a 500. Now 400.
- ``get_collection_items`` with ``f=csv`` on a record collection fails with UnboundLocalError
  (no CRS for records), a 500. CSV is offered for features only: now 400 for records.
- ``delete_job`` returns no headers on success, and the Starlette glue then fails looking up
  ``Content-Type``: every successful job deletion was a 500. Now 200 with the usual headers.
- ``get_collection_coverage`` answers an invalid ``bbox`` with HTTP 500 and the exception code
  ``InvalidParameterValue``, which OGC API Common defines as a 400. Now 400.

Job endpoints learn which client is asking (:func:`gis.server.jobs.owned`), so that each client
sees only its own jobs.

And one for speed and exactness: item queries convert ``bbox`` to the storage CRS with a new
pyproj transformer per request (~17 ms of a ~22 ms request) and by its two corners only (a CRS84
box is not a rectangle in TWD97: 2-13 m off at the edges of a 1-2 km box). The replacement caches
transformers, gives stock providers the same corners, and lets ours see the box the client sent
(:class:`gis.server.providers.features.SourceBBox`). Item pages are serialised with orjson
(about 5x faster than the json module on 100 polygons), with pygeoapi's own escaping of < and >.
"""

from __future__ import annotations

import functools
import json
from http import HTTPStatus

_APPLIED = False


def apply() -> None:
    """Patch pygeoapi's API functions in place (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    import pygeoapi.api.coverages as coverages_api
    import pygeoapi.api.processes as processes_api

    import pygeoapi.api.itemtypes as itemtypes_api

    from gis.server.providers.features import transform_bbox_exact

    itemtypes_api.transform_bbox = transform_bbox_exact
    itemtypes_api.to_json = fast_to_json
    itemtypes_api.get_collection_items = _no_csv_records(itemtypes_api.get_collection_items)
    from gis.server.jobs import owned

    processes_api.execute_process = owned(_object_body(processes_api.execute_process))
    for name in ("get_jobs", "get_job_result"):  # per-client jobs
        setattr(processes_api, name, owned(getattr(processes_api, name)))
    processes_api.delete_job = owned(_response_headers(processes_api.delete_job))
    coverages_api.get_collection_coverage = _client_errors_are_400(
        coverages_api.get_collection_coverage)
    _APPLIED = True


def _object_body(execute):
    @functools.wraps(execute)
    def wrapper(api, request, *args, **kwargs):
        try:
            body = json.loads(request.data) if request.data else {}
        except (ValueError, TypeError):
            body = {}  # not JSON: pygeoapi answers that itself (400)
        if not isinstance(body, dict):
            headers = request.get_response_headers(**api.api_headers)
            return api.get_exception(HTTPStatus.BAD_REQUEST, headers, request.format,
                                     "InvalidParameterValue",
                                     "the request body must be a JSON object")
        return execute(api, request, *args, **kwargs)

    return wrapper


def fast_to_json(dict_, pretty: bool = False) -> str:
    """``pygeoapi.util.to_json`` with orjson (NaN becomes null, which is valid JSON)."""
    import orjson
    from pygeoapi.util import json_serial

    option = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
    if pretty:
        option |= orjson.OPT_INDENT_2
    text = orjson.dumps(dict_, default=json_serial, option=option).decode()
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _response_headers(handler):
    @functools.wraps(handler)
    def wrapper(api, request, *args, **kwargs):
        headers, status, content = handler(api, request, *args, **kwargs)
        if "Content-Type" not in headers:
            headers = {**request.get_response_headers(**api.api_headers), **headers}
        return headers, status, content

    return wrapper


def _no_csv_records(handler):
    @functools.wraps(handler)
    def wrapper(api, request, dataset=None, *args, **kwargs):
        if request.format == "csv" and dataset is not None:
            providers = api.config["resources"].get(dataset, {}).get("providers", [])
            if any(p.get("type") == "record" for p in providers):
                headers = request.get_response_headers(**api.api_headers)
                return api.get_exception(HTTPStatus.BAD_REQUEST, headers, "json",
                                         "InvalidParameterValue",
                                         "CSV is offered for feature collections only")
        return handler(api, request, dataset, *args, **kwargs)

    return wrapper


def _client_errors_are_400(handler):
    @functools.wraps(handler)
    def wrapper(api, request, *args, **kwargs):
        from pygeoapi.api import validate_bbox

        bbox = request.params.get("bbox")
        if bbox is not None:
            try:
                validate_bbox(bbox)
            except ValueError as err:
                headers = request.get_response_headers(**api.api_headers)
                return api.get_exception(HTTPStatus.BAD_REQUEST, headers, request.format,
                                         "InvalidParameterValue", str(err))
        return handler(api, request, *args, **kwargs)

    return wrapper
