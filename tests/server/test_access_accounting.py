"""Rate limits, metering and audit through a real server (two worker processes): a burst past a
key's limit gets 429 with Retry-After; what the meter recorded equals what the client was served;
the audit log has one line per request, verifies, and fails verification once tampered with."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request

from click.testing import CliRunner

from gis.cli.main import cli
from gis.server.access.audit import verify
from gis.server.access.metering import access_paths, read_usage
from gis.server.config import load_config
from server_helpers import create_key, start_server, stop_server

RATE = 20  # per minute: the bucket holds 20, refills one every 3 s


def _get(url, key):
    req = urllib.request.Request(url, headers={"X-API-Key": key})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def test_limits_usage_and_audit(demo_store, demo_tilesets, tmp_path):
    config = tmp_path / "server_config.yml"
    r = CliRunner().invoke(cli, ["config", "--store", str(demo_store), "--tiles",
                                 str(demo_tilesets), "--out", str(config), "--cache",
                                 str(tmp_path / "cache")])
    assert r.exit_code == 0, r.output
    key = create_key(config, "meter-client", "agency", "--rate", str(RATE))
    url, proc = start_server(config, workers=2, graded=True)
    served = {"requests": 0, "features": 0, "bytes": 0}
    statuses = []
    try:
        for i in range(30):
            status, headers, body = _get(f"{url}/collections/crashes/items?f=json&limit=7"
                                         f"&offset={i}", key)
            statuses.append(status)
            if status == 200:
                served["requests"] += 1
                served["features"] += json.loads(body)["numberReturned"]
                served["bytes"] += len(body)
            else:
                assert status == 429, (status, body[:200])
                assert float(headers["retry-after"]) > 0
    finally:
        stop_server(proc)  # workers flush their meters on the way out
    # The burst: the bucket's 20, plus at most one refilled while the 30 requests ran.
    assert RATE <= served["requests"] <= RATE + 1 and 429 in statuses

    db, audit_dir = access_paths(load_config(config))
    month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    rows = [r for r in read_usage(db, month) if r["key_id"] == "meter-client"]
    assert len(rows) == 1 and rows[0]["resource"] == "crashes", read_usage(db, month)
    assert {k: rows[0][k] for k in served} == served

    lines = [json.loads(x) for f in sorted(audit_dir.glob("*.jsonl"))
             for x in f.read_text().splitlines()]
    mine = [x for x in lines if x.get("key_id") == "meter-client"]
    assert [x["status"] for x in mine] == statuses
    assert all(key not in json.dumps(x) for x in lines)  # the key itself is never written
    assert verify(audit_dir) == []
    r = CliRunner().invoke(cli, ["audit", "verify", "--path", str(audit_dir)])
    assert r.exit_code == 0 and "intact" in r.output

    r = CliRunner().invoke(cli, ["usage", "report", "--month", month, "--format", "json",
                                 "--config", str(config)])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    rows = report if isinstance(report, list) else report.get("rows", report)
    assert any("meter-client" in json.dumps(row) for row in rows)

    # Tamper with one line (a 429 turned into a 200): verification names it.
    log = sorted(audit_dir.glob("*.jsonl"))[-1]
    text = log.read_text().splitlines()
    i = next(n for n, x in enumerate(text) if '"status": 429' in x or '"status":429' in x)
    text[i] = text[i].replace("429", "200", 1)
    log.write_text("\n".join(text) + "\n")
    problems = verify(audit_dir)
    assert problems and any(log.name in p and f":{i + 1}" in p for p in problems), problems
    r = CliRunner().invoke(cli, ["audit", "verify", "--path", str(audit_dir)])
    assert r.exit_code == 1
