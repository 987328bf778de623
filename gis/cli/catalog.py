"""``ngis catalog``: the map-asset catalogue of a store."""

from __future__ import annotations

import json

import click

from gis.cli.options import store_opt
from gis.store import open_store


@click.group("catalog")
def command():
    """List and show the map-asset catalogue records of a store."""


@command.command("list")
@store_opt
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def list_(store, as_json):
    """One line per layer: id, grade, charge class, count, title.

    \b
    $ ngis catalog list --store build/demo/basemap.gpkg
    """
    records = open_store(store).catalog()
    if as_json:
        click.echo(json.dumps(records, ensure_ascii=False, indent=2))
        return
    if not records:
        click.echo("(empty catalogue)")
    for r in records:
        count = r.get("feature_count")
        size = f"{count} features" if count is not None else f"{r.get('resolution', 0):.1f} m grid"
        click.echo(f"{r['id']:<20} {r['access_grade']:<10} {r['charge_class']:<8} {size:<16} "
                   f"{r['title']}")


@command.command("show")
@store_opt
@click.argument("layer")
def show(store, layer):
    """The whole record of LAYER, as JSON.

    \b
    $ ngis catalog show --store build/demo/basemap.gpkg buildings
    """
    click.echo(json.dumps(open_store(store).record(layer), ensure_ascii=False, indent=2))
