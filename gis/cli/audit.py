"""``ngis audit``: the request audit log (hash-chained JSON lines)."""

from __future__ import annotations

from pathlib import Path

import click

DEFAULT_CONFIG = "server_config.yml"


@click.group("audit")
def command():
    """The audit log of the server's requests."""


@command.command("verify")
@click.option("--config", "config", type=click.Path(dir_okay=False),
              help=f"Server config whose audit folder to check (default {DEFAULT_CONFIG}).")
@click.option("--path", "path", type=click.Path(),
              help="The audit folder itself (instead of --config).")
def verify(config, path):
    """Check the audit chain: exit 0 if intact, 1 listing every problem (file:line: what).

    \b
    $ ngis audit verify
    $ ngis audit verify --path build/demo/cache/audit
    """
    from gis.server.access.audit import check

    if config and path:
        raise click.UsageError("give --config or --path, not both")
    if path:
        folder = Path(path)
    else:
        from gis.server.access.metering import access_paths
        from gis.server.config import load_config

        config = config or DEFAULT_CONFIG
        if not Path(config).is_file():
            raise click.BadParameter(f"{config}: no such file", param_hint="--config")
        _, folder = access_paths(load_config(config))
    result = check(folder)
    if result.ok:
        click.echo(f"intact: {result.lines} lines in {result.files} files")
        return
    base = folder.parent if folder.suffix == ".jsonl" else folder
    for problem in result.problems:
        click.echo(f"{base}/{problem}")
    click.echo(f"{len(result.problems)} problem(s) in {result.lines} lines in {result.files} "
               "files", err=True)
    click.get_current_context().exit(1)
