"""The standards: documents validate, examples validate, docs are current, and the vectorised
record checker agrees with jsonschema."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import jsonschema
import numpy as np
import pandas as pd
import pytest

import standards
from standards.docs import render_all
from standards.records import check_records

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "standards" / "examples"


@pytest.mark.parametrize("name", standards.names())
def test_schema_is_valid_json_schema(name):
    std = standards.load(name)
    jsonschema.Draft202012Validator.check_schema(std.schema)
    assert std.urn.endswith(std.version)


@pytest.mark.parametrize("name", standards.FEATURE_STANDARDS)
def test_examples_validate_with_jsonschema(name):
    std = standards.load(name)
    doc = json.loads((EXAMPLES / f"{name}.geojson").read_text())
    validator = jsonschema.Draft202012Validator(std.schema,
                                                format_checker=jsonschema.FormatChecker())
    assert doc["features"]
    for feature in doc["features"]:
        assert feature["geometry"]["type"] in std.geometry_types
        errors = list(validator.iter_errors(feature["properties"]))
        assert errors == []


def test_map_asset_example_validates():
    record = json.loads((EXAMPLES / "map_asset.json").read_text())
    jsonschema.Draft202012Validator(standards.load("map_asset").schema).validate(record)


def test_grades_are_ordered_and_fail_closed():
    assert standards.access_grades() == ["public", "agency", "restricted"]
    assert standards.load_document("access_grades")["default_asset_grade"] == "restricted"


def test_charging_schedule_covers_every_pair():
    doc = standards.charging_schedule()
    pairs = {(r["user_class"], r["charge_class"]) for r in doc["prices"]}
    assert pairs == {(u, c) for u in doc["user_classes"] for c in doc["charge_classes"]}


def test_charging_rules_catch_a_missing_row(monkeypatch):
    doc = standards.charging_schedule()
    doc["prices"] = doc["prices"][1:]
    with pytest.raises(ValueError, match="missing"):
        standards._check_document_rules("charging", doc)


def test_unknown_standard_is_a_clear_error():
    with pytest.raises(standards.UnknownStandardError, match="known: building"):
        standards.load("bridge")


def test_generated_docs_are_current():
    """docs/standards is generated; regenerate with `make docs` when a schema changes."""
    for name, text in render_all().items():
        path = ROOT / "docs" / "standards" / name
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run make docs"


# -- the vectorised checker against jsonschema -------------------------------------------------

def _random_records(std, n: int, seed: int) -> pd.DataFrame:
    """Records with a mix of good, missing, wrong-type, out-of-range and off-list values."""
    rng = np.random.default_rng(seed)
    cols = {}
    for field, spec in std.properties.items():
        types = spec.get("type")
        types = [types] if isinstance(types, str) else types
        values = []
        for _ in range(n):
            roll = rng.random()
            if roll < 0.15:
                values.append(None)
            elif roll < 0.22:
                values.append("abc" if "string" not in types else 17)
            elif "integer" in types:
                lo, hi = spec.get("minimum", -5), spec.get("maximum", 5000)
                values.append(int(rng.integers(lo - 3, hi + 3)) if rng.random() < 0.9
                              else float(rng.integers(0, 9)) + 0.5)
            elif "number" in types:
                lo = spec.get("minimum", spec.get("exclusiveMinimum", -10))
                hi = spec.get("maximum", spec.get("exclusiveMaximum", 1000))
                values.append(float(rng.uniform(lo - 5, hi + 5)))
            elif "boolean" in types:
                values.append(bool(rng.random() < 0.5))
            elif "enum" in spec:
                opts = [e for e in spec["enum"] if e is not None] + ["bogus"]
                values.append(str(rng.choice(opts)))
            elif spec.get("format") == "date-time":
                values.append(str(rng.choice(["2021-05-01T10:00:00+08:00", "yesterday",
                                              "2021-05-01T10:00:00"])))
            else:
                values.append(str(rng.choice(["x", "", "abc" * 100, "B-1"])))
        cols[field] = pd.Series(values, dtype=object)
    return pd.DataFrame(cols)


def _is_string_field(std, field) -> bool:
    types = std.properties.get(field, {}).get("type", [])
    return "string" in ([types] if isinstance(types, str) else types)


def _jsonschema_bad_rows(std, df) -> set[int]:
    validator = jsonschema.Draft202012Validator(std.schema,
                                                format_checker=jsonschema.FormatChecker())
    bad = set()
    for i, row in enumerate(df.to_dict("records")):
        record = {k: v for k, v in row.items() if v is not None}
        # Two documented leniencies of ours: empty strings are missing values (CSV and
        # GeoPackage cells), and numbers in string fields are read as their text (numeric ids).
        record = {k: v for k, v in record.items() if v != ""}
        record = {k: str(v) if _is_string_field(std, k) and isinstance(v, int) else v
                  for k, v in record.items()}
        if any(True for _ in validator.iter_errors(record)):
            bad.add(i)
    return bad


@pytest.mark.parametrize("name", standards.FEATURE_STANDARDS)
@pytest.mark.parametrize("seed", [1, 2])
def test_checker_agrees_with_jsonschema(name, seed):
    std = standards.load(name)
    df = _random_records(std, 300, seed)
    df[std.id_field] = [f"r{i}" for i in range(len(df))]  # uniqueness is not JSON Schema's job
    ours = {i.row for i in check_records(std, df)}
    theirs = _jsonschema_bad_rows(std, df)
    assert theirs, "the generator must make some bad records"
    assert ours == theirs


def test_checker_messages_name_field_and_problem():
    std = standards.load("building")
    df = pd.DataFrame({"id": ["a", "a", None], "height": [10, "tall", None],
                       "roof_type": ["flat", "curved", None], "source": ["s", "s", "s"]})
    lines = {(i.record, i.field, i.problem) for i in check_records(std, df)}
    assert ("a", "height", "wrong type: expected number, got 'tall'") in lines
    assert ("a", "roof_type",
            "'curved' not one of: flat, shed, gable, hip, pyramid, mansard, dome") in lines
    assert ("a", "id", "duplicate id (first at record #1)") in lines
    assert ("#3", "id", "missing (required)") in lines
    assert ("#3", None, "needs height or storeys") in lines


def test_geodataframe_from_example_checks_clean():
    std = standards.load("pipeline")
    frame = gpd.read_file(EXAMPLES / "pipeline.geojson")
    assert check_records(std, frame.drop(columns="geometry")) == []
