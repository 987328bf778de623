"""``ngis``: the NGIS 3D command group.

Exit codes: 0 ok, 1 data or run error (one line on stderr; ``--verbose`` adds the traceback),
2 usage error (click's own).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import traceback

import click

from gis.errors import NgisError

# One module per job; each exposes a click command named ``command``.
SUBCOMMANDS = {
    "validate": "gis.cli.validate",
    "ingest": "gis.cli.ingest",
    "demo-data": "gis.cli.demo_data",
    "catalog": "gis.cli.catalog",
    "standards": "gis.cli.standards",
    "preview": "gis.cli.preview",
    "tiles": "gis.cli.tiles",
    "view": "gis.cli.view",
    "serve": "gis.cli.serve",
    "config": "gis.cli.serve:config_command",
    "keys": "gis.cli.keys",
    "usage": "gis.cli.usage",
    "audit": "gis.cli.audit",
    "model": "gis.cli.model",
    "terrain": "gis.cli.terrain",
}


class NgisGroup(click.Group):
    """A group that loads subcommands lazily (fast ``--help``) and turns NGIS errors into
    one-line messages with exit code 1."""

    def list_commands(self, ctx):
        # A command whose module is not there (yet) is left out of --help, not an error.
        return sorted(name for name, module in SUBCOMMANDS.items()
                      if importlib.util.find_spec(module.partition(":")[0]) is not None)

    def get_command(self, ctx, name):
        module = SUBCOMMANDS.get(name)
        if module is None:
            return None
        module, _, attr = module.partition(":")
        return getattr(importlib.import_module(module), attr or "command")

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except NgisError as err:
            _fail(ctx, f"error: {err}")
        except (OSError, MemoryError) as err:
            _fail(ctx, f"error: {err}")
        except Exception as err:  # a bug of ours: still one line, the traceback with -v
            _fail(ctx, f"internal error: {type(err).__name__}: {err} (ngis -v shows the "
                       "traceback; please report it)")


def _fail(ctx, message: str) -> None:
    obj = ctx.find_root().obj or {}
    if obj.get("verbose"):
        traceback.print_exc()
    click.echo(message, err=True)
    sys.exit(1)


@click.group(cls=NgisGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="More output, and tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress bars.")
@click.version_option(package_name="ngis3d", prog_name="ngis")
@click.pass_context
def cli(ctx, verbose: bool, quiet: bool):
    """NGIS 3D: national 3D base map, OGC API server and hazard decision models.

    \b
    $ ngis demo-data --out build/demo/source
    $ ngis ingest --store build/demo/basemap.gpkg --manifest build/demo/source/manifest.json
    $ ngis validate --standard building buildings.gpkg
    """
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # dask.distributed sets its loggers from its config when first imported (INFO: cluster
    # start and stop chatter); the environment overrides that config.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", logging.getLevelName(level).lower())
    ctx.obj = {"verbose": verbose, "quiet": quiet}


def progress_enabled(ctx: click.Context | None = None) -> bool:
    """Whether long jobs should draw a progress bar (not with --quiet, not when piped)."""
    ctx = ctx or click.get_current_context(silent=True)
    obj = (ctx.find_root().obj if ctx else None) or {}
    return not obj.get("quiet") and sys.stderr.isatty()
