"""``ngis standards``: list, show and document the data standards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

import standards
from standards.docs import render_all


@click.group("standards")
def command():
    """The NGIS data standards (building, road, rail, pipeline, crash, map_asset, ...)."""


@command.command("list")
def list_():
    """Name, version and title of each standard."""
    for name in standards.names():
        std = standards.load(name)
        click.echo(f"{name:<14} {std.version:<8} {std.title}")


@command.command("show")
@click.argument("name", type=click.Choice(standards.names()))
def show(name):
    """Print the JSON Schema of standard NAME."""
    click.echo(json.dumps(standards.load(name).schema, ensure_ascii=False, indent=2))


@command.command("docs")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Folder for the Markdown files.")
def docs(out):
    """Write Markdown documentation generated from the standards."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, folder / name)
    click.echo(f"wrote {len(render_all())} files to {folder}")
