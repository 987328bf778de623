"""``ngis terrain``: Cesium quantized-mesh terrain from DEMs."""

from __future__ import annotations

import sys

import click

from gis.cli.main import progress_enabled


@click.group("terrain")
def command():
    """Build terrain tiles (quantized-mesh-1.0) for the 3D base map."""


@command.command("build")
@click.option("--dem", "dems", multiple=True, required=True, metavar="DEM",
              help="DEM file (GeoTIFF, netCDF, any GDAL raster); repeat to mosaic several "
              "(the first with data wins).")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Terrain folder (layer.json + {z}/{x}/{y}.terrain).")
@click.option("--max-zoom", type=click.IntRange(0, 22), default=None,
              help="Finest level [default: the DEM's resolution].")
@click.option("--max-error", type=click.FloatRange(0, min_open=True), default=0.5,
              show_default=True, help="Vertical error bound (m) at the finest level; doubles "
              "per coarser level.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Worker threads (one per core).")
@click.option("--sea", type=click.Choice(["auto", "nodata", "none"]), default="auto",
              show_default=True, help="Which no data is sea (water in the watermask): auto = "
              "no-data regions reaching the DEM's border along a low shore (<= 10 m median); "
              "nodata = all no data inside the DEMs; none. Outside the DEMs: never water.")
@click.option("--no-gzip", is_flag=True, help="Store tiles uncompressed (default: gzip at rest, "
              "served with Content-Encoding: gzip).")
@click.pass_context
def build(ctx, dems, out, max_zoom, max_error, workers, sea, no_gzip):
    """Build OUT/layer.json and OUT/{z}/{x}/{y}.terrain, heights ellipsoidal (EGM96 geoid, as
    the 3D Tiles).

    \b
    $ ngis terrain build --dem build/demo/source/dem.tif --out build/terrain
    $ ngis terrain build --dem tw_sw40.tif --out build/terrain --max-zoom 11 --workers 2
    """
    from tqdm import tqdm

    from tiles.terrain import TerrainOptions, build_terrain

    options = TerrainOptions(max_zoom=max_zoom, max_error=max_error, workers=workers,
                             gzip=not no_gzip, sea=sea)
    with tqdm(total=None, unit="tile", desc="terrain", file=sys.stderr,
              disable=not progress_enabled(ctx)) as bar:
        def planned(n):
            bar.total = n
            bar.refresh()

        summary = build_terrain(list(dems), out, options, progress=bar.update, on_plan=planned)
    if not (ctx.find_root().obj or {}).get("quiet"):
        rate = summary.cells / summary.seconds if summary.seconds else 0
        click.echo(f"{summary.path}/layer.json: {summary.tiles} tiles, levels 0-"
                   f"{summary.max_zoom} (max error {options.max_error:g} m at {summary.max_zoom}), "
                   f"{summary.bytes / 1e6:.2f} MB, {summary.seconds:.1f} s "
                   f"({rate:,.0f} DEM cells/s)")
