"""``ngis validate``: check files against a data standard, one line per problem."""

from __future__ import annotations

import sys

import click

import standards
from gis.errors import NgisError
from gis.io import read_source
from gis.validate import validate_layer


@click.command("validate")
@click.option("--standard", "standard", type=click.Choice(list(standards.FEATURE_STANDARDS)),
              default=None, help="Standard to check against (default: what each file is known to "
              "follow).")
@click.option("--layer", default=None, help="Only this layer of multi-layer files.")
@click.option("--crs", default=None, help="CRS of files that carry none (e.g. EPSG:3826).")
@click.option("--max-lines", type=click.IntRange(min=0), default=0,
              help="Print at most this many problem lines per file (0: all).")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=True))
@click.pass_context
def command(ctx, standard, layer, crs, max_lines, paths):
    """Check PATHS against a data standard.

    Every failing record gives one line `file:layer:feature-id: field: problem`; a summary
    follows. Exit status 1 when anything fails.

    \b
    $ ngis validate --standard building buildings.gpkg footprints.geojson
    $ ngis validate --standard pipeline water_53403039_unf_6697.gml
    """
    quiet = (ctx.find_root().obj or {}).get("quiet")
    totals = {"files": 0, "records": 0, "bad": 0, "issues": 0, "unreadable": 0}
    for path in paths:
        totals["files"] += 1
        try:
            layers = read_source(path, standard=standard, layer=layer, crs=crs)
            reports = [validate_layer(lyr, standard) for lyr in layers]
        except NgisError as err:
            click.echo(str(err), err=False)
            totals["unreadable"] += 1
            continue
        for report in reports:
            lines = report.lines()
            shown = lines[:max_lines] if max_lines else lines
            for line in shown:
                click.echo(line)
            if len(shown) < len(lines):
                click.echo(f"{report.path}:{report.layer}: ... {len(lines) - len(shown)} more")
            totals["records"] += report.records
            totals["bad"] += report.bad_records
            totals["issues"] += len(report.issues)
    ok = totals["issues"] == 0 and totals["unreadable"] == 0
    if not quiet:
        click.echo(f"{'OK' if ok else 'FAILED'}: {totals['files']} file(s), {totals['records']} "
                   f"record(s), {totals['bad']} with problems, {totals['issues']} problem(s)"
                   + (f", {totals['unreadable']} unreadable file(s)" if totals["unreadable"] else ""),
                   err=True)
    sys.exit(0 if ok else 1)
