"""``ngis usage``: metered usage and the charges of the charging schedule.

The metering database and every resource's charge class come from the server config
(``ngis.access.db``, default ``<ngis.cache>/access.db``; ``charge_class`` of each resource and
3D tileset).
"""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal

import click

DEFAULT_CONFIG = "server_config.yml"
ROW_FIELDS = ("client", "key_id", "user_class", "resource", "charge_class", "requests",
              "features", "bytes", "tiles", "processes", "free_requests", "billable_requests",
              "amount_requests", "amount_features", "amount_bytes", "amount_processes", "amount",
              "currency")
TOTAL_RESOURCE = "(total)"


@click.group("usage")
def command():
    """Metered usage per client, and what it costs."""


def build_report(config_path: str, month: str, *,
                 default_charge_class: str | None = None) -> tuple[list[dict], list[dict], str]:
    """(rows, client totals, currency) of ``month`` for the server of ``config_path``."""
    import standards
    from gis.server.access.charging import charges, resource_charge_classes, totals
    from gis.server.access.metering import access_paths, read_usage
    from gis.server.config import load_config

    config = load_config(config_path)
    db_path, _ = access_paths(config)
    schedule = standards.charging_schedule()
    usage = read_usage(db_path, month)
    # A key's id is its name (``ngis keys``), so the client column needs no lookup.
    rows = charges(usage, schedule, resource_charge_classes(config),
                   default_charge_class=default_charge_class)
    return rows, totals(rows), schedule["currency"]


def _plain(value):
    return f"{value:.2f}" if isinstance(value, Decimal) else value


@command.command("report")
@click.option("--month", required=True, help="Calendar month, YYYY-MM (UTC days).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True)
@click.option("--config", "config", default=DEFAULT_CONFIG, show_default=True,
              type=click.Path(dir_okay=False, exists=True), help="Server config.")
@click.option("--default-charge-class",
              help="Charge class of metered resources no longer in the config (else an error).")
def report(month, fmt, config, default_charge_class):
    """Each client's usage of MONTH and its charges under the charging schedule.

    \b
    $ ngis usage report --month 2026-11
    $ ngis usage report --month 2026-11 --format csv > charges-2026-11.csv
    """
    from gis.server.access.charging import ChargingError

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise click.BadParameter("must be YYYY-MM", param_hint="--month")
    try:
        rows, clients, currency = build_report(config, month,
                                               default_charge_class=default_charge_class)
    except (ChargingError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from err
    if fmt == "json":
        def num(v):
            return float(v) if isinstance(v, Decimal) else v
        doc = {"month": month, "currency": currency,
               "rows": [{k: num(v) for k, v in r.items()} for r in rows],
               "clients": [{k: num(v) for k, v in t.items()} for t in clients],
               "total": num(sum((t["amount"] for t in clients), Decimal("0.00")))}
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=ROW_FIELDS, extrasaction="ignore",
                           lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: _plain(v) for k, v in r.items()})
        for t in clients:
            w.writerow({k: _plain(v) for k, v in t.items()} | {"resource": TOTAL_RESOURCE})
        click.echo(buf.getvalue(), nl=False)
    else:
        click.echo(_table(rows, clients, month, currency))


def _table(rows, clients, month, currency) -> str:
    head = ("client", "user class", "resource", "charge", "requests", "features", "MB", "tiles",
            "runs", f"amount {currency}")
    body = [(r["client"], r["user_class"], r["resource"], r["charge_class"], r["requests"],
             r["features"], f"{r['bytes'] / 1e6:.3f}", r["tiles"], r["processes"],
             f"{r['amount']:.2f}") for r in rows]
    body += [(t["client"], t["user_class"], TOTAL_RESOURCE, "", t["requests"], t["features"],
              f"{t['bytes'] / 1e6:.3f}", t["tiles"], t["processes"], f"{t['amount']:.2f}")
             for t in clients]
    if not body:
        return f"no usage recorded in {month}"
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    numeric = set(range(4, len(head)))

    def fmt(cells):
        return "  ".join(str(c).rjust(w) if i in numeric else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    total = sum((t["amount"] for t in clients), Decimal("0.00"))
    lines = [f"usage {month}", fmt(head), fmt(["-" * w for w in widths])]
    lines += [fmt(b) for b in body[:len(rows)]]
    lines.append(fmt(["-" * w for w in widths]))
    lines += [fmt(b) for b in body[len(rows):]]
    lines.append(f"total {total:.2f} {currency}")
    return "\n".join(lines)
