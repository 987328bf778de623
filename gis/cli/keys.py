"""``ngis keys``: API keys of the server (create, list, revoke).

Keys live hashed in the access database named by the server config (``ngis.access.db``; without
it, ``<cache>/access.db``). ``create`` prints the key once, on stdout: it is not
stored and cannot be shown again.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

DEFAULT_CONFIG = "server_config.yml"


def access_db(config_path: str) -> Path:
    """The key database of the server config at ``config_path``."""
    from gis.server.access.grades import access_paths
    from gis.server.config import load_config
    from gis.server.run import ServerConfigError

    path = Path(config_path)
    if not path.is_file():
        raise ServerConfigError(f"no server config at {path} (give --config)")
    return access_paths(load_config(path))[0]


def _store(config_path: str):
    from gis.server.access.keys import KeyStore

    return KeyStore(access_db(config_path))


config_option = click.option("--config", "config", default=DEFAULT_CONFIG, show_default=True,
                             type=click.Path(dir_okay=False), help="The server config.")


@click.group("keys")
def command():
    """API keys: create (shown once), list (no secrets), revoke.

    \b
    $ ngis keys create --name city-gis --grade agency --user-class government
    $ ngis keys list
    $ ngis keys revoke city-gis
    """


@command.command("create")
@click.option("--name", required=True, help="Unique, not secret (the key id in logs and usage).")
@click.option("--grade", required=True, help="Access grade (public, agency, restricted).")
@click.option("--user-class", "user_class", required=True,
              type=click.Choice(["government", "academic", "commercial", "public"]))
@click.option("--expires", help="Last valid day, YYYY-MM-DD (UTC).")
@click.option("--rate", type=click.IntRange(1), help="Requests per minute (default: the grade's).")
@config_option
def create(name, grade, user_class, expires, rate, config):
    """Create a key and print it (once: only its hash is stored)."""
    key, record = _store(config).create(name, grade, user_class, expires=expires, rate=rate)
    click.echo(key)
    click.echo(f"created key {record.name!r}: grade {record.grade}, {record.user_class}"
               + (f", expires after {record.expires}" if record.expires else "")
               + (f", {record.rate}/min" if record.rate else "")
               + " (the key above is not stored: keep it now)", err=True)


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@config_option
def list_keys(as_json, config):
    """The keys, without secrets."""
    keys = _store(config).list()
    if as_json:
        for k in keys:
            click.echo(json.dumps({"name": k.name, "grade": k.grade, "user_class": k.user_class,
                                   "expires": k.expires, "rate": k.rate, "created": k.created,
                                   "revoked": k.revoked, "status": k.status()}))
        return
    rows = [("NAME", "GRADE", "USER CLASS", "EXPIRES", "RATE", "CREATED", "STATUS")]
    rows += [(k.name, k.grade, k.user_class, k.expires or "-", str(k.rate or "-"), k.created,
              k.status()) for k in keys]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


@command.command("revoke")
@click.argument("name")
@config_option
def revoke(name, config):
    """Revoke key NAME (servers refuse it within a few seconds)."""
    from gis.server.access.keys import CACHE_TTL

    record = _store(config).revoke(name)
    click.echo(f"revoked key {record.name!r} at {record.revoked} (servers stop accepting it "
               f"within {CACHE_TTL:g} s)", err=True)
