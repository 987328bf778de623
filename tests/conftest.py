"""Shared fixtures. Real data sets are read from ../shared/data beside the clone, never copied."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared" / "data").resolve()


def shared(*parts: str) -> Path:
    """Path of a real data file; skips the test when ../shared/data is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"../shared/data absent: {path} (real-data tests need the shared data sets)")
    return path


@pytest.fixture(scope="session")
def shared_data():
    """The ``shared`` helper as a fixture."""
    return shared


@pytest.fixture(scope="session")
def postgis_url():
    """URL of a real PostGIS (``NGIS_TEST_POSTGIS_URL``; .ci/run starts one).

    Skips where none is configured, unless ``NGIS_REQUIRE_POSTGIS=1`` (set by CI), where a missing
    server is a failure.
    """
    import os

    url = os.environ.get("NGIS_TEST_POSTGIS_URL")
    if not url:
        if os.environ.get("NGIS_REQUIRE_POSTGIS") == "1":
            pytest.fail("NGIS_REQUIRE_POSTGIS=1 but NGIS_TEST_POSTGIS_URL is not set")
        pytest.skip("no PostGIS: set NGIS_TEST_POSTGIS_URL (scripts/start-postgis prints one)")
    return url


@pytest.fixture
def postgis_store_url(postgis_url, request):
    """A fresh schema per test, dropped afterwards."""
    import re

    import psycopg2

    schema = "t_" + re.sub(r"\W", "_", request.node.name)[:50].lower()
    con = psycopg2.connect(postgis_url)
    con.autocommit = True
    with con.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    yield f"{postgis_url}?schema={schema}"
    with con.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    con.close()


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """A generated small region ingested into a GeoPackage store (built once per session)."""
    from gis.demo import generate_region
    from gis.etl.ingest import ingest, load_manifest

    d = tmp_path_factory.mktemp("demo")
    generate_region(d / "source", seed=42, size="small")
    ingest(str(d / "basemap.gpkg"), load_manifest(d / "source" / "manifest.json"))
    return d / "basemap.gpkg"
