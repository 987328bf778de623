"""NGIS data standards, as data.

Each standard is a versioned JSON Schema document in ``standards/schemas/`` describing one record
(the attributes of a feature), plus an ``x-ngis`` block with what JSON Schema cannot say (the
geometry types, the layer name, the id field, units). Access grades and the charging schedule are
YAML documents checked against their schemas.

This package imports nothing of ours: the readers, the CLI and the server all depend on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

__all__ = ["Standard", "load", "names", "load_document", "access_grades", "charging_schedule",
           "UnknownStandardError"]

#: Standards that describe feature records (one per store layer kind).
FEATURE_STANDARDS = ("building", "road", "rail", "pipeline", "crash")
#: Standards that describe documents.
DOCUMENT_STANDARDS = ("map_asset", "access_grades", "charging")


class UnknownStandardError(KeyError):
    """No standard of that name."""

    def __str__(self) -> str:
        return f"unknown standard {self.args[0]!r}; known: {', '.join(names())}"


@dataclass(frozen=True)
class Standard:
    """One data standard.

    Attributes:
        name: Short name (``building``).
        version: Semantic version of the standard.
        schema: The JSON Schema document.
    """

    name: str
    version: str
    schema: dict[str, Any]

    @property
    def title(self) -> str:
        """Human title (``Building``)."""
        return self.schema.get("title", self.name)

    @property
    def meta(self) -> dict[str, Any]:
        """The ``x-ngis`` block."""
        return self.schema.get("x-ngis", {})

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        """Field name -> field schema."""
        return self.schema.get("properties", {})

    @property
    def required(self) -> tuple[str, ...]:
        """Fields every record must have (non-null)."""
        return tuple(self.schema.get("required", ()))

    @property
    def any_of_required(self) -> tuple[tuple[str, ...], ...]:
        """Alternative groups of fields of which at least one group must be complete."""
        return tuple(tuple(alt.get("required", ())) for alt in self.schema.get("anyOf", ()))

    @property
    def layer(self) -> str | None:
        """Default store layer name."""
        return self.meta.get("layer")

    @property
    def id_field(self) -> str:
        """Field holding the record identifier."""
        return self.meta.get("id_field", "id")

    @property
    def geometry_types(self) -> tuple[str, ...]:
        """Allowed geometry types (empty for attribute-only records)."""
        return tuple(self.meta.get("geometry", ()))

    @property
    def urn(self) -> str:
        """``urn:ngis3d:standard:NAME:VERSION``."""
        return self.schema["$id"]


def names() -> list[str]:
    """Names of all standards."""
    return [*FEATURE_STANDARDS, *DOCUMENT_STANDARDS]


@cache
def load(name: str) -> Standard:
    """Load a standard by name.

    Raises:
        UnknownStandardError: There is no such standard.
    """
    if name not in names():
        raise UnknownStandardError(name)
    text = resources.files(__package__).joinpath("schemas", f"{name}.json").read_text("utf-8")
    schema = json.loads(text)
    return Standard(name=name, version=schema["x-ngis"]["version"], schema=schema)


def load_document(name: str) -> dict[str, Any]:
    """Load a YAML document standard (``access_grades`` or ``charging``), validated.

    Raises:
        ValueError: The document breaks its schema or its own rules.
    """
    import jsonschema

    std = load(name)
    text = resources.files(__package__).joinpath(std.meta["document"]).read_text("utf-8")
    doc = yaml.safe_load(text)
    jsonschema.Draft202012Validator(std.schema).validate(doc)
    _check_document_rules(name, doc)
    return doc


def _check_document_rules(name: str, doc: dict[str, Any]) -> None:
    if name == "access_grades":
        ranks = [g["rank"] for g in doc["grades"]]
        if ranks != sorted(set(ranks)):
            raise ValueError("access grades: ranks must be unique and listed in increasing order")
        if doc["default_asset_grade"] not in {g["name"] for g in doc["grades"]}:
            raise ValueError("access grades: default_asset_grade is not a grade")
    elif name == "charging":
        seen: dict[tuple[str, str], int] = {}
        for row in doc["prices"]:
            key = (row["user_class"], row["charge_class"])
            if row["user_class"] not in doc["user_classes"]:
                raise ValueError(f"charging: unknown user class {row['user_class']!r}")
            if row["charge_class"] not in doc["charge_classes"]:
                raise ValueError(f"charging: unknown charge class {row['charge_class']!r}")
            seen[key] = seen.get(key, 0) + 1
        want = {(u, c) for u in doc["user_classes"] for c in doc["charge_classes"]}
        missing = sorted(want - set(seen))
        doubled = sorted(k for k, n in seen.items() if n > 1)
        if missing or doubled:
            raise ValueError(f"charging: each user class x charge class needs exactly one row "
                             f"(missing {missing}, repeated {doubled})")


def access_grades() -> list[str]:
    """Grade names, lowest first."""
    return [g["name"] for g in load_document("access_grades")["grades"]]


def charging_schedule() -> dict[str, Any]:
    """The validated charging schedule."""
    return load_document("charging")
