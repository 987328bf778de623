"""``ngis ingest``: load sources into the base-map store."""

from __future__ import annotations

import sys

import click

import standards
from gis.cli.main import progress_enabled
from gis.cli.options import store_opt
from gis.etl.ingest import NATIONAL_CRS, IngestValidationError, SourceSpec, ingest, load_manifest


@click.command("ingest")
@store_opt
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False),
              help="JSON/YAML list of sources with their layers and catalogue metadata.")
@click.option("--layer", default=None, help="Store layer to load SOURCES into (default: the "
              "standard's layer, e.g. buildings; dem for DEMs).")
@click.option("--standard", type=click.Choice(list(standards.FEATURE_STANDARDS)), default=None,
              help="Standard the SOURCES follow (default: detected).")
@click.option("--crs", default=None, help="CRS of SOURCES that carry none, or override theirs.")
@click.option("--target-crs", default=NATIONAL_CRS, show_default=True,
              help="CRS of the store layers.")
@click.option("--access-grade", type=click.Choice(["public", "agency", "restricted"]),
              default=None, help="Access grade of the layers (default: restricted).")
@click.option("--charge-class", type=click.Choice(["free", "standard", "premium"]), default=None,
              help="Charge class of the layers (default: standard).")
@click.option("--title", default=None, help="Catalogue title of the layer.")
@click.option("--lod", default=None, help="CityJSON: the LOD to read (e.g. 2.2; default the "
              "highest up to 2.x).")
@click.option("--origin", default=None, metavar="E,N,H",
              help="IFC without usable georeferencing: map coordinates of the model origin "
                   "(in --crs).")
@click.option("--rotation", type=float, default=0.0, show_default=True, metavar="DEG",
              help="IFC with --origin: model x axis from grid east, counter-clockwise.")
@click.option("--skip-invalid", is_flag=True,
              help="Load the valid records and leave the invalid ones out, with the rows of "
                   "their extras tables, e.g. a left-out building's surfaces (default: refuse "
                   "all).")
@click.option("--repair", is_flag=True,
              help="CityJSON: repair surface polygons that are invalid in their own plane "
                   "(self-intersecting, hole outside its shell) with make_valid in that plane, "
                   "and keep their buildings (each building's lineage says so), instead of "
                   "reporting them as problems. Other formats: no effect.")
@click.argument("sources", nargs=-1, type=click.Path(exists=True))
@click.pass_context
def command(ctx, store, manifest, layer, standard, crs, target_crs, access_grade, charge_class,
            title, lod, origin, rotation, skip_invalid, repair, sources):
    """Load SOURCES (or a --manifest) into the store, atomically.

    Every record is checked against its standard first; any problem stops the ingest with one
    line per problem and leaves the store as it was (unless --skip-invalid, which leaves the
    invalid records out, or --repair, which repairs CityJSON surfaces that it can).

    \b
    $ ngis ingest --store basemap.gpkg --manifest build/demo/source/manifest.json
    $ ngis ingest --store basemap.gpkg --access-grade public guangfu_buildings_3d.geojson
    $ ngis ingest --store basemap.gpkg --layer plateau_buildings --target-crs EPSG:6677 \\
        52397519_bldg_6697_op.gml
    $ ngis ingest --store basemap.gpkg --lod 2.2 3dbag_delft.city.jsonl
    $ ngis ingest --store basemap.gpkg --target-crs EPSG:2056 --repair zurich_lod2.city.json
    $ ngis ingest --store basemap.gpkg --origin 250000,2650000,12 --rotation 30 \\
        --crs EPSG:3826 new_school.ifc
    """
    if not manifest and not sources:
        raise click.UsageError("give SOURCES or --manifest")
    specs = load_manifest(manifest) if manifest else []
    metadata = {k: v for k, v in {"access_grade": access_grade, "charge_class": charge_class,
                                  "title": title}.items() if v}
    specs += [SourceSpec(path=p, layer=layer, standard=standard, crs=crs, metadata=metadata,
                         lod=lod, origin=origin, rotation=rotation) for p in sources]
    quiet = (ctx.find_root().obj or {}).get("quiet")
    with click.progressbar(length=len(specs), label="ingest", file=sys.stderr,
                           hidden=not progress_enabled(ctx)) as bar:
        try:
            summaries = ingest(store, specs, target_crs=target_crs, skip_invalid=skip_invalid,
                               repair=repair, progress=lambda _msg: bar.update(1))
        except IngestValidationError as err:
            for report in err.reports:
                for line in report.lines():
                    click.echo(line)
            click.echo(f"error: {err}", err=True)
            sys.exit(1)
    if not quiet:
        for s in summaries:
            dropped = "".join(f", {n} {table} row(s) with them"
                              for table, n in s.extras_dropped.items() if n)
            extra = f" ({s.rejected} invalid left out{dropped})" if s.rejected else ""
            unit = "cells" if s.kind == "dem" else "records"
            click.echo(f"{s.name}: {s.records} {unit}{extra}")
        click.echo(f"store: {store}", err=True)
