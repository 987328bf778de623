"""Access grades and the server configuration projected per grade.

Grades come from ``standards/access_grades.yml`` (``public`` < ``agency`` < ``restricted``). Every
resource of ``server_config.yml`` (collection, coverage, tiles, records, process) carries an
``access_grade``; every 3D tileset one under ``ngis.access.tilesets``. A resource without a grade
has ``default_asset_grade`` (restricted: fail closed); an unknown grade is a configuration error
that names the resource (the server does not start).

:func:`project` builds, for one grade, a pygeoapi configuration holding only the resources of that
grade or lower: the collections, the catalogue records (the records provider's ``options.grades``),
the processes (the exposure process's ``allowed_layers``), the links between them and the 3D
tilesets. The server runs one pygeoapi application per projection, so whatever a grade may not
see answers exactly as something that never existed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from gis.server.access.metering import access_paths  # noqa: F401  (one definition)

from gis.errors import NgisError

#: ``ngis.access.anonymous`` value meaning "no anonymous access" (401 without a key).
NO_ANONYMOUS = "none"


class GradeError(NgisError):
    """A configuration names an unknown grade, or turns on something graded access forbids."""


@dataclass(frozen=True)
class Grades:
    """The grades of the standard: name → rank, default grade, default rate limits."""

    ranks: dict[str, int]
    default: str
    rate_limits: dict[str, int]

    @classmethod
    def load(cls) -> "Grades":
        import standards

        doc = standards.load_document("access_grades")
        return cls(ranks={g["name"]: int(g["rank"]) for g in doc["grades"]},
                   default=doc["default_asset_grade"],
                   rate_limits={g["name"]: int(g["rate_limit_per_minute"])
                                for g in doc["grades"]})

    @property
    def names(self) -> list[str]:
        """Grade names, lowest rank first."""
        return sorted(self.ranks, key=self.ranks.__getitem__)

    def check(self, grade: Any, where: str) -> str:
        if not isinstance(grade, str) or grade not in self.ranks:
            raise GradeError(f"{where}: unknown access grade {grade!r} (known: "
                             f"{', '.join(self.names)})")
        return grade

    def visible(self, resource_grade: str, client_grade: str) -> bool:
        return self.ranks[resource_grade] <= self.ranks[client_grade]

    def up_to(self, client_grade: str) -> list[str]:
        """The grades a client of ``client_grade`` may see."""
        return [g for g in self.names if self.visible(g, client_grade)]


def access_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The ``ngis.access`` section (may be absent)."""
    return dict((config.get("ngis") or {}).get("access") or {})


def resource_grade(resource: dict[str, Any], grades: Grades) -> str:
    return resource.get("access_grade") or grades.default


def tileset_grades(config: dict[str, Any], grades: Grades) -> dict[str, str]:
    """Grade of each 3D tileset of ``ngis.tilesets`` (from ``ngis.access.tilesets``)."""
    ngis = config.get("ngis") or {}
    declared = (access_settings(config).get("tilesets") or {})
    return {name: (declared.get(name) or {}).get("access_grade") or grades.default
            for name in (ngis.get("tilesets") or {})}


def check_config(config: dict[str, Any], grades: Grades | None = None) -> Grades:
    """Every grade named in ``config`` is known; ``server.admin`` is off.

    Raises :class:`GradeError` with one line naming the offending resource.
    """
    grades = grades or Grades.load()
    if (config.get("server") or {}).get("admin"):
        raise GradeError("server.admin is on: pygeoapi's admin API returns and edits the whole "
                         "configuration, every grade included; turn it off")
    for name, res in (config.get("resources") or {}).items():
        if "access_grade" in res:
            grades.check(res["access_grade"], f"resource {name!r}")
    declared = access_settings(config).get("tilesets") or {}
    for name, entry in declared.items():
        if "access_grade" in (entry or {}):
            grades.check(entry["access_grade"], f"tileset {name!r}")
    anonymous = access_settings(config).get("anonymous", "public")
    if anonymous != NO_ANONYMOUS:
        grades.check(anonymous, "ngis.access.anonymous")
    return grades


def anonymous_grade(config: dict[str, Any]) -> str | None:
    """The grade of requests without a key (None: they are refused)."""
    value = access_settings(config).get("anonymous", "public")
    return None if value == NO_ANONYMOUS else value


def _is_feature_collection(res: dict[str, Any]) -> list[str]:
    return [p.get("table") for p in res.get("providers") or []
            if p.get("type") == "feature" and p.get("table")]


def project(config: dict[str, Any], grade: str, grades: Grades | None = None) -> dict[str, Any]:
    """The configuration ``grade`` sees (a deep copy; ``config`` is left as it is).

    Works on raw configs (``${VAR}`` not expanded) as well as loaded ones.
    """
    grades = grades or Grades.load()
    grades.check(grade, "projection")
    out = copy.deepcopy(config)
    resources = out.get("resources") or {}
    hidden = {name for name, res in resources.items()
              if not grades.visible(resource_grade(res, grades), grade)}
    tiles = tileset_grades(config, grades)
    hidden_tilesets = {t for t, g in tiles.items() if not grades.visible(g, grade)}
    kept = {name: res for name, res in resources.items() if name not in hidden}
    layers = sorted({table for res in kept.values() for table in _is_feature_collection(res)})
    for res in kept.values():
        res["links"] = [link for link in res.get("links") or []
                        if not _links_to(link.get("href", ""), hidden, hidden_tilesets)]
        for provider in res.get("providers") or []:
            if provider.get("type") == "record":
                provider["options"] = {**(provider.get("options") or {}),
                                       "grades": grades.up_to(grade)}
        if res.get("type") == "process":
            res["processor"] = {**res["processor"], "allowed_layers": layers}
    out["resources"] = kept
    ngis = out.get("ngis") or {}
    if ngis:
        ngis["tilesets"] = {t: p for t, p in (ngis.get("tilesets") or {}).items()
                            if t not in hidden_tilesets}
        access = dict(ngis.get("access") or {})
        access["tilesets"] = {t: v for t, v in (access.get("tilesets") or {}).items()
                              if t not in hidden_tilesets}
        ngis["access"] = access
        ngis["grade"] = grade
    return out


def _links_to(href: str, hidden: set[str], hidden_tilesets: set[str]) -> bool:
    """Does ``href`` point at a hidden collection, record or tileset?"""
    path = href.split("?", 1)[0]
    for name in hidden:
        if f"/collections/{name}" in path and (path.endswith(f"/collections/{name}") or
                                               f"/collections/{name}/" in path):
            return True
        if path.endswith(f"/items/{name}"):
            return True
    return any(f"/3dtiles/{t}/" in path or path.endswith(f"/3dtiles/{t}")
               for t in hidden_tilesets)
