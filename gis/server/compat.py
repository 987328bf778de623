"""Narrow fixes to pygeoapi 0.24, applied when the server starts (found by schemathesis, see
tests/server/test_openapi_fuzz.py). Each keeps pygeoapi's behaviour except where it answers a
client's mistake with a server error:

- ``execute_process`` reads ``data.get('inputs')`` from any JSON body: a body that is JSON but
  not an object (``[]``, ``"x"``) raised AttributeError, a 500. Now 400.
- ``get_collection_coverage`` answers an invalid ``bbox`` with HTTP 500 and the exception code
  ``InvalidParameterValue``, which OGC API Common defines as a 400. Now 400.

And one for speed and exactness: item queries convert ``bbox`` to the storage CRS with a new
pyproj transformer per request (~17 ms of a ~22 ms request) and by its two corners only (a CRS84
box is not a rectangle in TWD97: 2-13 m off at the edges of a 1-2 km box). The replacement caches
transformers, gives stock providers the same corners, and lets ours see the box the client sent
(:class:`gis.server.providers.features.SourceBBox`).
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
    processes_api.execute_process = _object_body(processes_api.execute_process)
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
