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
