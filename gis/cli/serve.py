"""``ngis serve`` and ``ngis config``: the OGC API server and its configuration."""

from __future__ import annotations

from pathlib import Path

import click

DEFAULT_CONFIG = "server_config.yml"


def _write(store: str, tiles: str | None, out: str, cache: str | None, **access) -> Path:
    from gis.server.config import build_config, write_config

    path = write_config(build_config(store, tiles_dir=tiles, cache_dir=cache, **access), out)
    click.echo(f"wrote {path}", err=True)
    return path


@click.command("config")
@click.option("--store", required=True, help="GeoPackage path or postgresql:// URL.")
@click.option("--tiles", "tiles", type=click.Path(file_okay=False),
              help="Folder of 3D tilesets (one subfolder per tileset).")
@click.option("--out", default=DEFAULT_CONFIG, show_default=True, type=click.Path(dir_okay=False))
@click.option("--cache", type=click.Path(file_okay=False),
              help="Server cache (vector tiles, OpenAPI); default beside the store.")
@click.option("--access-db", help="Keys and usage meter: an SQLite path or a "
              "postgresql://user:pass@host/db?schema=NAME URL shared by several servers "
              "(default: access.sqlite beside the cache).")
@click.option("--jwt-issuer", help="Also accept signed tokens (JWT) from this issuer "
              "(needs --jwks).")
@click.option("--jwks", type=click.Path(dir_okay=False),
              help="Local JWKS file of the issuer's public keys (never fetched).")
@click.option("--jwt-audience", help="Required 'aud' of the tokens.")
def config_command(store, tiles, out, cache, access_db, jwt_issuer, jwks, jwt_audience):
    """Write the pygeoapi server config for every layer of STORE (and its 3D tilesets).

    \b
    $ ngis config --store build/demo/basemap.gpkg --tiles build/demo/tiles
    $ ngis config --store postgresql://ngis@db/ngis --access-db \\
        'postgresql://ngis@db/ngis?schema=access' --jwt-issuer https://sso.example.gov.tw \\
        --jwks /etc/ngis/jwks.json
    """
    if bool(jwt_issuer) != bool(jwks):
        raise click.UsageError("--jwt-issuer and --jwks go together")
    jwt = None
    if jwt_issuer:
        jwt = {"issuer": jwt_issuer, "jwks": str(jwks)}
        if jwt_audience:
            jwt["audience"] = jwt_audience
    _write(store, tiles, out, cache, access_db=access_db, jwt=jwt)


@click.command("serve")
@click.option("--config", "config", default=DEFAULT_CONFIG, show_default=True,
              type=click.Path(dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Server processes (one per core is a good start).")
@click.option("--url", help="Public base URL, when behind a proxy (default http://HOST:PORT).")
@click.option("--init", is_flag=True, help="(Re)write --config from --store and --tiles first.")
@click.option("--store", help="With --init: the store to serve.")
@click.option("--tiles", type=click.Path(file_okay=False), help="With --init: 3D tilesets.")
def command(config, host, port, workers, url, init, store, tiles):
    """Serve the base map: OGC API Features, Tiles, Coverages, Records and Processes (pygeoapi),
    the 3D Tiles under /3dtiles/ and the CesiumJS viewer under /viewer/.

    \b
    $ ngis serve --init --store build/demo/basemap.gpkg --tiles build/demo/tiles
    $ ngis serve --config server_config.yml --port 5000 --workers 2
    """
    from gis.server.run import serve

    if init:
        if not store:
            raise click.UsageError("--init needs --store")
        _write(store, tiles, config, None)
    base = url or f"http://{host}:{port}"
    click.echo(f"NGIS 3D server: {base}/  (OGC API landing page)\n"
               f"viewer:         {base}/viewer/\n"
               f"OpenAPI:        {base}/openapi\n(Ctrl-C stops)", err=True)
    serve(config, host=host, port=port, workers=workers, url=url)
