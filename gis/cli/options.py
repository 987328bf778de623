"""Options shared by several ``ngis`` subcommands.

Users: ``store_opt`` (ingest, catalog), ``seed_opt`` (demo-data).
"""

from __future__ import annotations

import click

store_opt = click.option(
    "--store", "store", required=True, metavar="STORE",
    help="Base-map store: a GeoPackage path (embedded default) or a postgresql:// URL.")

seed_opt = click.option("--seed", type=int, default=42, show_default=True,
                        help="Random seed: the same seed gives the same data.")
