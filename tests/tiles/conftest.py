"""Fixtures of the tiles tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiles.validate import validate_gltf

#: Validator messages we accept: extensions it cannot check (EXT_mesh_features,
#: EXT_structural_metadata, EXT_meshopt_compression) and, as a consequence, buffer views and
#: buffers that only those extensions use (property tables; meshopt-only GLB buffer of a b3dm).
ACCEPTED_INFOS = {"UNSUPPORTED_EXTENSION", "UNUSED_OBJECT"}


@pytest.fixture
def assert_valid():
    """Run the Khronos validator on files; assert zero errors and zero warnings, and only the
    expected informational messages. Returns the reports."""

    def check(paths: list[Path]) -> list[dict]:
        reports = validate_gltf(paths)
        assert len(reports) == len(paths)
        for r in reports:
            assert r["errors"] == 0, r
            assert r["warnings"] == 0, r
            codes = {m["code"] for m in r["messages"]}
            assert codes <= ACCEPTED_INFOS, r
            for m in r["messages"]:
                if m["code"] == "UNUSED_OBJECT":
                    assert m["pointer"].startswith(("/bufferViews/", "/buffers/")), r
        return reports

    return check
