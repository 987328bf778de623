"""schemathesis over the server's own OpenAPI document (OGC schemas inlined from
../shared/schemas, no network): generated requests for every operation, and no answer may be a
server error (5xx).

Driven through schemathesis' Python API with hypothesis directly (its lazy pytest plugin does not
run under pytest 9)."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from openapi_offline import inline

# Deterministic in CI (the same cases every run); NGIS_FUZZ_EXAMPLES=200 NGIS_FUZZ_RANDOM=1
# explores further.
EXAMPLES = int(os.environ.get("NGIS_FUZZ_EXAMPLES", "12"))
RANDOM = os.environ.get("NGIS_FUZZ_RANDOM") == "1"


@pytest.fixture(scope="module")
def api_schema(server, shared_data):
    document, missing = inline(server.json("/openapi?f=json"),
                               shared_data("..", "schemas", "ogcapi"))
    # Features Part 1 must inline fully; other fragments we do not hold become placeholders.
    assert not [m for m in missing if "/ogcapi/features/" in m], missing
    return schemathesis.openapi.from_dict(document)


def test_no_server_errors(api_schema, server):
    errors: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not RANDOM,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            response = case.call(base_url=server.url, timeout=120)
            if response.status_code >= 500:
                errors.append(f"{response.status_code} {case.method} "
                              f"{response.request.url}\n  {response.text[:300]}")

        run()
    assert operations >= 40
    assert errors == [], f"{len(errors)} server errors:\n" + "\n".join(errors[:20])
