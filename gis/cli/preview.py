"""``ngis preview``: a PNG of a store, to look at rather than read."""

from __future__ import annotations

import click

from gis.cli.options import store_opt
from gis.preview import render


@click.command("preview")
@store_opt
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG to write.")
@click.option("--width", type=click.IntRange(64, 8000), default=1600, show_default=True,
              help="Width in pixels.")
@click.option("--dem-layer", default="dem", show_default=True, help="Raster layer to shade.")
def command(store, out, width, dem_layer):
    """Draw the store: hillshaded DEM, buildings, roads, rail, pipes by utility, crashes.

    \b
    $ ngis preview --store build/demo/basemap.gpkg --out build/demo/preview.png
    """
    click.echo(f"wrote {render(store, out, width=width, dem_layer=dem_layer)}")
