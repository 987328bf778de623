"""Charges: the charging schedule (``standards/charging_schedule.yml``) applied to metered usage.

The schedule prices each pair *user class* (of the key) x *charge class* (of the resource, from
the server config) with:

- ``per_request``: per successful request;
- ``per_1000_features``: per 1,000 features returned, pro rata (1,500 features = 1.5 x price);
- ``per_mb``: per megabyte sent, MB = 1,000,000 bytes, pro rata;
- ``per_process_run``: per process run;
- ``monthly_free_requests`` (optional): requests per calendar month that are not charged
  ``per_request``. The allowance belongs to one key and one charge class and is shared by all
  resources of that class: it is used up in resource-name order, so the rows of one client add
  up to ``max(0, requests - allowance)`` billable requests for that class.

Tiles are metered but the schedule has no tile price: a tile costs what its request and bytes
cost. Each amount (requests, features, bytes, process runs) is rounded to the currency's cent
(``0.01``, half up) and a row's amount is the sum of its rounded parts; a client's total is the
sum of its rows. Service endpoints (landing page, ``/conformance``, ``/openapi``, lists) are
priced as ``free`` resources. Usage of a resource that is not in the server config any more has
no charge class: pass ``default_charge_class`` to price it, otherwise it is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

__all__ = ["charges", "totals", "resource_charge_classes", "ChargingError", "BYTES_PER_MB",
           "CENT", "SERVICE_ENDPOINTS"]

BYTES_PER_MB = 1_000_000
CENT = Decimal("0.01")
_COUNTERS = ("requests", "features", "bytes", "tiles", "processes")


class ChargingError(ValueError):
    """Usage that the schedule cannot price (unknown user class, resource or charge class)."""


def _dec(value: Any) -> Decimal:
    # str() keeps 0.1 as 0.1 (Decimal(0.1) would carry the binary error).
    return Decimal(str(value))


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


#: Metered "resources" that are service endpoints rather than data (the server meters a request
#: to ``/``, ``/conformance``, ``/collections``... under the first path segment): charged as
#: ``free`` resources (they count towards a free-class allowance and cost nothing).
SERVICE_ENDPOINTS = frozenset({"", "collections", "conformance", "openapi", "processes", "jobs",
                               "3dtiles", "viewer", "cesium", "static", "stac",
                               "TileMatrixSets", "tileMatrixSets", "favicon.ico", "robots.txt"})
SERVICE_CHARGE_CLASS = "free"


def resource_charge_classes(config: Mapping[str, Any]) -> dict[str, str | None]:
    """Charge class of every metered resource name of a server config.

    The names are those the server meters (``gis.server.app``): a collection by its id, a
    process as ``processes/<id>`` (and its bare id), a 3D tileset as ``3dtiles/<name>`` (from
    ``ngis.access.tilesets``, or the older layout with the tilesets directly under
    ``ngis.access``), and the service endpoints (``SERVICE_ENDPOINTS``) as ``free``. A resource
    without ``charge_class`` maps to ``None`` (priced only with a default).
    """
    out: dict[str, str | None] = {name: SERVICE_CHARGE_CLASS for name in SERVICE_ENDPOINTS}
    for rid, res in (config.get("resources") or {}).items():
        cls = res.get("charge_class") if isinstance(res, Mapping) else None
        out[rid] = cls
        if isinstance(res, Mapping) and res.get("type") == "process":
            out[f"processes/{rid}"] = cls
    access = (config.get("ngis") or {}).get("access") or {}
    tilesets = access.get("tilesets")
    if not isinstance(tilesets, Mapping):   # older layout: tilesets beside db/audit paths
        tilesets = {k: v for k, v in access.items() if isinstance(v, Mapping)}
    for name, spec in tilesets.items():
        out[f"3dtiles/{name}"] = spec.get("charge_class") if isinstance(spec, Mapping) else None
    return out


def _price_table(schedule: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {(p["user_class"], p["charge_class"]): p for p in schedule["prices"]}


def charges(usage_rows: Iterable[Mapping[str, Any]], schedule: Mapping[str, Any],
            resource_charge_classes: Mapping[str, str | None], *,
            clients: Mapping[str, str] | None = None,
            default_charge_class: str | None = None) -> list[dict[str, Any]]:
    """Price a month of usage.

    Args:
        usage_rows: One month's usage per key, user class and resource (``Meter.usage``):
            ``key_id``, ``user_class``, ``resource`` and the counters ``requests``,
            ``features``, ``bytes``, ``tiles``, ``processes``. Rows of the same triple are added.
        schedule: The charging schedule (``standards.charging_schedule()``).
        resource_charge_classes: Resource id -> charge class (``resource_charge_classes``).
        clients: Key id -> client name, for the ``client`` column (default: the key id).
        default_charge_class: Charge class of resources missing from the mapping.

    Returns:
        One dict per key, user class and resource, sorted by client, key id, user class and
        resource: ``client``, ``key_id``, ``user_class``, ``resource``, ``charge_class``, the
        counters, ``free_requests`` (allowance used by this row), ``billable_requests``, the
        parts ``amount_requests``, ``amount_features``, ``amount_bytes``, ``amount_processes``,
        ``amount`` (``Decimal``, in cents) and ``currency``.

    Raises:
        ChargingError: A user class or charge class the schedule does not price, or a resource
            without a charge class (and no default).
    """
    prices = _price_table(schedule)
    currency = schedule["currency"]
    clients = clients or {}
    merged: dict[tuple[str, str, str], list[int]] = {}
    for row in usage_rows:
        k = (str(row["key_id"]), str(row["user_class"]), str(row["resource"]))
        cur = merged.setdefault(k, [0] * len(_COUNTERS))
        for i, c in enumerate(_COUNTERS):
            cur[i] += int(row.get(c) or 0)

    unknown = sorted({r for _, _, r in merged
                      if resource_charge_classes.get(r) is None and default_charge_class is None})
    if unknown:
        raise ChargingError(f"no charge class for resource(s) {', '.join(map(repr, unknown))}: "
                            "not in the server config (give a default charge class to price "
                            "them)")
    bad_users = sorted({u for _, u, _ in merged} - set(schedule["user_classes"]))
    if bad_users:
        raise ChargingError(f"user class(es) {', '.join(map(repr, bad_users))} not in the "
                            f"charging schedule ({', '.join(schedule['user_classes'])})")

    allowance_left: dict[tuple[str, str, str], int] = {}
    out = []
    for (key_id, user_class, resource), counts in sorted(merged.items()):
        charge_class = resource_charge_classes.get(resource) or default_charge_class
        price = prices.get((user_class, charge_class))
        if price is None:
            raise ChargingError(f"resource {resource!r}: charge class {charge_class!r} is not in "
                                f"the charging schedule ({', '.join(schedule['charge_classes'])})")
        requests, features, nbytes, tiles, processes = counts
        pool = (key_id, user_class, charge_class)
        left = allowance_left.setdefault(pool, int(price.get("monthly_free_requests") or 0))
        free = min(left, requests)
        allowance_left[pool] = left - free
        billable = requests - free
        a_req = _cents(billable * _dec(price["per_request"]))
        a_feat = _cents(features * _dec(price["per_1000_features"]) / 1000)
        a_bytes = _cents(nbytes * _dec(price["per_mb"]) / BYTES_PER_MB)
        a_proc = _cents(processes * _dec(price["per_process_run"]))
        out.append({
            "client": clients.get(key_id, key_id), "key_id": key_id, "user_class": user_class,
            "resource": resource, "charge_class": charge_class,
            "requests": requests, "features": features, "bytes": nbytes, "tiles": tiles,
            "processes": processes, "free_requests": free, "billable_requests": billable,
            "amount_requests": a_req, "amount_features": a_feat, "amount_bytes": a_bytes,
            "amount_processes": a_proc, "amount": a_req + a_feat + a_bytes + a_proc,
            "currency": currency,
        })
    out.sort(key=lambda r: (r["client"], r["key_id"], r["user_class"], r["resource"]))
    return out


def totals(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per client (key id and user class): summed counters and amount of ``charges`` rows."""
    acc: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        k = (r["client"], r["key_id"], r["user_class"])
        t = acc.get(k)
        if t is None:
            t = acc[k] = {"client": r["client"], "key_id": r["key_id"],
                          "user_class": r["user_class"], "resources": 0,
                          **{c: 0 for c in _COUNTERS}, "free_requests": 0,
                          "billable_requests": 0, "amount": Decimal("0.00"),
                          "currency": r["currency"]}
        t["resources"] += 1
        for c in (*_COUNTERS, "free_requests", "billable_requests", "amount"):
            t[c] += r[c]
    return [acc[k] for k in sorted(acc)]
