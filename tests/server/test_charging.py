"""Charging: the schedule applied to a small synthetic month, against charges computed here
from the schedule document itself (not through gis.server.access.charging)."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import standards
from gis.cli.usage import command as usage_cli
from gis.server.access.charging import (ChargingError, charges, resource_charge_classes,
                                        totals)
from gis.server.access.metering import Meter

SCHEDULE_FILE = Path(standards.__file__).with_name("charging_schedule.yml")

CONFIG = """\
server: {url: http://127.0.0.1:5000}
resources:
  buildings: {type: collection, access_grade: public, charge_class: free}
  crashes: {type: collection, access_grade: agency, charge_class: standard}
  pipelines: {type: collection, access_grade: restricted, charge_class: premium}
  exposure: {type: process, access_grade: public, charge_class: standard}
ngis:
  cache: CACHE
  access:
    anonymous: public
    tilesets:
      buildings-lod1: {access_grade: public, charge_class: free}
      pipelines: {access_grade: restricted, charge_class: premium}
"""

# (key, user class, resource, day, requests, features, bytes, tiles, process runs)
MONTH = [
    ("c1", "commercial", "buildings", "2026-11-01", 60_000, 600_000, 90_000_000, 0, 0),
    ("c1", "commercial", "buildings", "2026-11-02", 50_000, 0, 0, 0, 0),
    ("c1", "commercial", "crashes", "2026-11-03", 1_234, 56_789, 12_345_678, 0, 0),
    ("c1", "commercial", "3dtiles/pipelines", "2026-11-04", 10, 0, 5_000_000, 10, 0),
    ("c2", "academic", "processes/exposure", "2026-11-05", 3, 0, 0, 0, 3),
    ("c2", "academic", "conformance", "2026-11-05", 2, 0, 3_000, 0, 0),
    ("c2", "academic", "pipelines", "2026-11-06", 60, 1_500, 400_000, 0, 0),
    ("c2", "academic", "pipelines", "2026-11-30", 40, 1_000, 600_000, 0, 0),
    ("c3", "government", "pipelines", "2026-11-07", 7, 1_000, 3_000_000, 0, 0),
    ("c4", "public", "buildings", "2026-11-08", 20_000, 0, 0, 0, 0),
    ("c4", "public", "buildings", "2026-10-31", 99_999, 0, 0, 0, 0),     # another month
    ("c4", "public", "crashes", "2026-12-01", 99_999, 0, 0, 0, 0),       # another month
]
CHARGE_CLASS = {"buildings": "free", "crashes": "standard", "pipelines": "premium",
                "processes/exposure": "standard", "3dtiles/pipelines": "premium",
                "conformance": "free"}


def half_up_cents(x: Fraction) -> Fraction:
    return Fraction(int(x * 100 + Fraction(1, 2)), 100)


def expected_charges(schedule_doc: dict) -> dict[tuple[str, str], tuple[int, Fraction]]:
    """(key, resource) -> (billable requests, amount), from the YAML document: prices per
    request, per 1,000 features, per MB (10^6 bytes) and per process run; the monthly free
    requests of a (user class, charge class) row are used up in resource-name order."""
    price = {(p["user_class"], p["charge_class"]): p for p in schedule_doc["prices"]}
    used: dict[tuple[str, str, str], list[int]] = {}
    for key, cls, res, day, req, feat, nbytes, tiles, runs in MONTH:
        if day.startswith("2026-11"):
            u = used.setdefault((key, cls, res), [0, 0, 0, 0])
            for i, v in enumerate((req, feat, nbytes, runs)):
                u[i] += v
    out = {}
    allowance: dict[tuple[str, str, str], int] = {}
    for (key, cls, res), (req, feat, nbytes, runs) in sorted(used.items()):
        p = price[(cls, CHARGE_CLASS[res])]
        pool = (key, cls, CHARGE_CLASS[res])
        left = allowance.setdefault(pool, p.get("monthly_free_requests", 0))
        free = min(left, req)
        allowance[pool] = left - free
        f = lambda v: Fraction(str(v))  # noqa: E731
        amount = (half_up_cents((req - free) * f(p["per_request"]))
                  + half_up_cents(feat * f(p["per_1000_features"]) / 1000)
                  + half_up_cents(nbytes * f(p["per_mb"]) / 1_000_000)
                  + half_up_cents(runs * f(p["per_process_run"])))
        out[(key, res)] = (req - free, amount)
    return out


@pytest.fixture
def server(tmp_path):
    cache = tmp_path / "cache"
    cfg = tmp_path / "server_config.yml"
    cfg.write_text(CONFIG.replace("CACHE", str(cache)))
    with Meter(cache / "access.db") as m:
        for key, cls, res, day, req, feat, nbytes, tiles, runs in MONTH:
            m.record(key, cls, res, day, requests=req, features=feat, bytes_=nbytes,
                     tiles=tiles, processes=runs)
    return cfg


def test_hand_computed_amounts():
    # A few lines worked by hand from charging_schedule.yml (TWD), as a check on the oracle.
    exp = expected_charges(yaml.safe_load(SCHEDULE_FILE.read_text()))
    # commercial x standard: 1234 x 0.05 + 56.789 x 2 + 12.345678 MB x 1 = 61.70+113.58+12.35
    assert exp[("c1", "crashes")] == (1234, Fraction("187.63"))
    # commercial x premium: 10 x 0.1 + 5 MB x 3
    assert exp[("c1", "3dtiles/pipelines")] == (10, Fraction("16.00"))
    # commercial x free: 110,000 requests, 100,000 free, all prices 0
    assert exp[("c1", "buildings")] == (10_000, 0)
    # academic x standard: 3 runs x 10; academic x premium: 100 x 0.01 + 2.5 x 1 + 1 MB x 0.5
    assert exp[("c2", "processes/exposure")] == (3, Fraction(30))
    assert exp[("c2", "conformance")] == (2, 0)
    assert exp[("c2", "pipelines")] == (100, Fraction("4.00"))
    # government x premium: 1 x 0.5 + 3 MB x 0.2
    assert exp[("c3", "pipelines")] == (7, Fraction("1.10"))
    assert exp[("c4", "buildings")] == (10_000, 0)


def test_charges_match_the_schedule(server):
    from gis.server.access.metering import read_usage
    from gis.server.config import load_config

    config = load_config(server)
    rows = charges(read_usage(server.parent / "cache" / "access.db", "2026-11"),
                   standards.charging_schedule(), resource_charge_classes(config))
    expected = expected_charges(yaml.safe_load(SCHEDULE_FILE.read_text()))
    got = {(r["key_id"], r["resource"]): (r["billable_requests"], Fraction(r["amount"]))
           for r in rows}
    assert got == expected
    assert {r["currency"] for r in rows} == {"TWD"}
    c1 = {r["resource"]: r for r in rows if r["key_id"] == "c1"}
    assert c1["buildings"]["requests"] == 110_000 and c1["buildings"]["free_requests"] == 100_000
    assert c1["3dtiles/pipelines"]["tiles"] == 10
    assert c1["crashes"]["amount_features"] == Decimal("113.58")
    per_client = {t["key_id"]: t["amount"] for t in totals(rows)}
    assert per_client == {"c1": Decimal("203.63"), "c2": Decimal("34.00"),
                          "c3": Decimal("1.10"), "c4": Decimal("0.00")}


def test_free_allowance_is_shared_by_the_resources_of_a_charge_class():
    schedule = standards.charging_schedule()
    schedule = {**schedule, "prices": [
        {**p, "per_request": 0.001} if (p["user_class"], p["charge_class"]) ==
        ("commercial", "free") else p for p in schedule["prices"]]}
    usage = [{"key_id": "c1", "user_class": "commercial", "resource": "buildings",
              "requests": 110_000},
             {"key_id": "c1", "user_class": "commercial", "resource": "3dtiles/buildings-lod1",
              "requests": 5_000},
             {"key_id": "c9", "user_class": "commercial", "resource": "buildings",
              "requests": 99_000}]
    classes = {"buildings": "free", "3dtiles/buildings-lod1": "free"}
    rows = {(r["key_id"], r["resource"]): r for r in charges(usage, schedule, classes)}
    assert rows[("c1", "3dtiles/buildings-lod1")]["free_requests"] == 5_000
    assert rows[("c1", "buildings")]["free_requests"] == 95_000
    assert rows[("c1", "buildings")]["amount"] == Decimal("15.00")    # 15,000 x 0.001
    assert rows[("c9", "buildings")]["amount"] == 0                   # within its allowance


def test_unpriceable_usage_is_an_error():
    schedule = standards.charging_schedule()
    row = {"key_id": "k", "user_class": "public", "resource": "gone", "requests": 1}
    with pytest.raises(ChargingError, match="'gone'"):
        charges([row], schedule, {})
    assert charges([row], schedule, {}, default_charge_class="premium")[0]["amount"] == \
        Decimal("0.10")
    with pytest.raises(ChargingError, match="'alien'"):
        charges([{**row, "user_class": "alien"}], schedule, {"gone": "free"})
    with pytest.raises(ChargingError, match="'gold'"):
        charges([row], schedule, {"gone": "gold"})


def test_resource_charge_classes_of_the_demo_config():
    from gis.server.config import load_config

    root = Path(__file__).resolve().parents[2]
    classes = resource_charge_classes(load_config(root / "server_config.yml"))
    assert classes["pipelines"] == "premium" and classes["3dtiles/pipelines"] == "premium"
    assert classes["3dtiles/buildings-lod1"] == "free" and classes["crashes"] == "standard"
    assert classes["processes/exposure"] == "free" and classes["conformance"] == "free"
    assert classes[""] == "free"    # the landing page


def test_resource_charge_classes_older_access_layout():
    classes = resource_charge_classes({"ngis": {"access": {
        "db": "x.db", "pipelines": {"access_grade": "restricted", "charge_class": "premium"}}}})
    assert classes["3dtiles/pipelines"] == "premium" and "3dtiles/db" not in classes


def test_usage_report_cli(server):
    runner = CliRunner()   # a key's id is its name (ngis keys create --name)
    res = runner.invoke(usage_cli, ["report", "--month", "2026-11", "--config", str(server),
                                    "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    expected = expected_charges(yaml.safe_load(SCHEDULE_FILE.read_text()))
    assert {(r["key_id"], r["resource"]): Fraction(str(r["amount"])) for r in doc["rows"]} == \
        {k: v[1] for k, v in expected.items()}
    assert doc["currency"] == "TWD" and doc["total"] == pytest.approx(203.63 + 34 + 1.10)
    assert {c["client"] for c in doc["clients"]} == {"c1", "c2", "c3", "c4"}

    res = runner.invoke(usage_cli, ["report", "--month", "2026-11", "--config", str(server),
                                    "--format", "csv"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.output)))
    total = {r["key_id"]: r["amount"] for r in rows if r["resource"] == "(total)"}
    assert total == {"c1": "203.63", "c2": "34.00", "c3": "1.10", "c4": "0.00"}

    res = runner.invoke(usage_cli, ["report", "--month", "2026-11", "--config", str(server)])
    assert res.exit_code == 0, res.output
    assert "c1" in res.output and "total 238.73 TWD" in res.output
    print("\n" + res.output)

    res = runner.invoke(usage_cli, ["report", "--month", "2026-09", "--config", str(server)])
    assert res.exit_code == 0 and "no usage recorded in 2026-09" in res.output
    res = runner.invoke(usage_cli, ["report", "--month", "2026-9", "--config", str(server)])
    assert res.exit_code == 2


def test_usage_report_without_database(tmp_path):
    cfg = tmp_path / "server_config.yml"
    cfg.write_text(f"ngis:\n  cache: {tmp_path / 'cache'}\n")
    res = CliRunner().invoke(usage_cli, ["report", "--month", "2026-11", "--config", str(cfg)])
    assert res.exit_code == 1 and "no metering database" in res.output
