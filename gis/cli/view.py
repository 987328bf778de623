"""``ngis view``: the CesiumJS viewer with local tilesets, on loopback."""

from __future__ import annotations

from pathlib import Path

import click

from gis.viewer import make_server


@click.command("view")
@click.argument("tilesets", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True)
def command(tilesets, host, port):
    """Serve TILESETS (folders with tileset.json) in the CesiumJS viewer until Ctrl-C.

    \b
    $ ngis view build/demo/tiles/buildings build/demo/tiles/roads
    """
    named = {Path(t).name: Path(t) for t in tilesets}
    for name, folder in named.items():
        if not (folder / "tileset.json").is_file():
            raise click.BadParameter(f"{folder} has no tileset.json", param_hint="TILESETS")
    server = make_server(named, host, port)
    click.echo(f"viewer: http://{host}:{server.server_address[1]}/viewer/index.html  (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
