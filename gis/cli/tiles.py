"""``ngis tiles``: build and inspect 3D Tiles."""

from __future__ import annotations

import json
import os
import sys

import click
from pyproj import CRS

from gis.cli.main import progress_enabled
from gis.errors import DataError, LayerNotFoundError


@click.group("tiles")
def command():
    """Build 3D Tiles from the base map, and check them."""


@command.command("build")
@click.option("--store", default=None, metavar="STORE", help="Base-map store to read LAYER from.")
@click.option("--layer", default=None, help="Store layer (buildings, roads, rail, pipelines...).")
@click.option("--input", "input_", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Build straight from a source file instead of a store layer.")
@click.option("--lod", type=click.IntRange(1, 2), default=1, show_default=True,
              help="1: prisms; 2: roofs from roof types (or CityGML surfaces).")
@click.option("--dem", default=None, help="DEM file, or a raster layer of the store (default: "
              "the store's 'dem' layer when it has one).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Tileset folder.")
@click.option("--tiles-version", type=click.Choice(["1.1", "1.0"]), default="1.1",
              show_default=True, help="1.1: glb + EXT_mesh_features; 1.0: b3dm + batch table.")
@click.option("--implicit", is_flag=True, help="Implicit quadtree tiling (1.1 only).")
@click.option("--compress", type=click.Choice(["none", "quantize", "meshopt", "draco"]),
              default="none", show_default=True, help="Mesh compression (keeps feature ids).")
@click.option("--gzip", "gzip_", is_flag=True, help="Store contents gzipped (serve with "
              "Content-Encoding: gzip).")
@click.option("--max-features", type=click.IntRange(1), default=1000, show_default=True,
              help="Features per tile before it splits.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Local dask worker processes.")
@click.option("--scheduler", default=None, help="Address of a running dask scheduler (its "
              "workers read the store themselves: PostGIS, or a GeoPackage on a shared disk).")
@click.option("--target-crs", default="EPSG:3826", show_default=True,
              help="CRS to build --input in (projected).")
@click.pass_context
def build(ctx, store, layer, input_, lod, dem, out, tiles_version, implicit, compress, gzip_,
          max_features, workers, scheduler, target_crs):
    """Build a tileset (OUT/tileset.json) from a store layer or a source file.

    \b
    $ ngis tiles build --store basemap.gpkg --layer buildings --lod 2 --out build/tiles/buildings
    $ ngis tiles build --store basemap.gpkg --layer roads --out build/tiles/roads
    $ ngis tiles build --input guangfu_buildings_3d.geojson --out build/tiles/hsinchu
    """
    from gis.etl.tiles_job import TilesOptions, build_tiles

    if compress == "draco":
        raise click.BadParameter("Draco is not available here (no encoder that keeps feature ids "
                                 "is installed); use meshopt", param_hint="--compress")
    if implicit and tiles_version == "1.0":
        raise click.BadParameter("implicit tiling needs --tiles-version 1.1",
                                 param_hint="--implicit")
    if bool(input_) == bool(store):
        raise click.UsageError("give either --store (with --layer) or --input")
    if store and not layer:
        raise click.UsageError("--store needs --layer")
    layer_in, standard, surfaces, dem_source, name = _load(store, layer, input_, dem, target_crs)
    options = TilesOptions(lod=lod, version=tiles_version, implicit=implicit, compress=compress,
                           gzip=gzip_, max_features=max_features, workers=workers,
                           scheduler=scheduler)
    from tqdm import tqdm

    with tqdm(total=None, unit="feature", desc=f"tiles {name}", file=sys.stderr,
              disable=not progress_enabled(ctx)) as bar:
        def planned(n):
            bar.total = n
            bar.refresh()

        summary = build_tiles(layer_in, standard, out, dem=dem_source, surfaces=surfaces,
                              class_name=name if name in ("buildings", "roads", "rail",
                                                          "pipelines") else standard,
                              options=options, progress=bar.update, on_plan=planned)
    for note in summary.notes:
        click.echo(f"note: {note}", err=True)
    if not (ctx.find_root().obj or {}).get("quiet"):
        rate = summary.features / summary.seconds if summary.seconds else 0
        click.echo(f"{summary.path}/tileset.json: {summary.features} features, {summary.tiles} "
                   f"tiles ({summary.written} written, {summary.reused} reused), "
                   f"{summary.bytes / 1e6:.2f} MB, {summary.seconds:.1f} s ({rate:,.0f} features/s)")


def _load(store, layer, input_, dem, target_crs):
    """(layer, standard, surfaces, dem, name) from a store layer (read tile by tile by the job;
    the DEM is loaded only if the job needs it) or a source file (read here)."""
    import standards
    from gis.etl.tiles_job import StoreLayer
    from gis.io import read_source
    from gis.store import open_store
    from gis.validate import validate_layer

    surfaces = dem_source = None
    if store:
        st = open_store(store)
        crs = st.read_fids(layer, []).crs  # checks the layer is features; reads no row
        rec = st.record(layer)
        standard = (rec.get("standard") or "").split(" ")[0] or None
        if standard is None:
            raise DataError(f"layer {layer!r} follows no standard; 3D Tiles need one",
                            path=store)
        layers = st.layers()
        uri = store if "://" in store else os.path.abspath(store)  # workers may run elsewhere
        source = StoreLayer(uri, layer, f"{layer}_surfaces"
                            if f"{layer}_surfaces" in layers else None)
        crs_text = None if crs is None else CRS.from_user_input(crs).to_string()
        if dem is None and "dem" in layers and st.record("dem").get("crs") == crs_text:
            dem_source = lambda: st.read_raster("dem")  # noqa: E731 - loaded when needed
        elif dem is not None and not os.path.exists(dem):
            dem_source = _store_raster(st, layers, dem)
        return source, standard, surfaces, dem_source or _file_dem(dem, crs), layer
    layers = read_source(input_)
    lyr = layers[0]
    report = validate_layer(lyr)
    if report.issues:
        for line in report.lines()[:20]:
            click.echo(line)
        raise DataError(f"{len(report.issues)} problem(s): fix them or ingest with "
                        "--skip-invalid first", path=input_)
    standard = report.standard
    frame = lyr.frame.to_crs(target_crs)
    if "surfaces" in lyr.extras:
        surfaces = lyr.extras["surfaces"].to_crs(target_crs)
    name = standards.load(standard).layer
    return frame, standard, surfaces, _file_dem(dem, frame.crs), name


def _file_dem(dem, crs):
    """A DEM file reprojected to the layer CRS (None without --dem)."""
    from gis.io import read_dem

    if dem is None or not os.path.exists(dem):
        return None
    return read_dem(dem, target_crs=CRS.from_user_input(crs))


def _store_raster(st, layers, name):
    """The store's raster ``name``, loaded when the job needs it (errors now if it is none)."""
    kind = getattr(st, "layer_kind", lambda _: "2d-gridded-coverage")
    if name not in layers or kind(name) != "2d-gridded-coverage":
        raise DataError(f"--dem {name!r} is neither a file nor a raster layer of the store")

    def load():
        try:
            return st.read_raster(name)
        except LayerNotFoundError as err:
            raise DataError(f"--dem {name!r} is neither a file nor a raster layer of the "
                            "store") from err

    return load


@command.command("info")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--validate", is_flag=True, help="Also run the glTF validator on every content.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
def info(directory, validate, as_json):
    """Summarise and check a tileset: structure, volumes, errors, contents (exit 1 on problems).

    \b
    $ ngis tiles info build/demo/tiles/buildings --validate
    """
    from tiles.info import tileset_info

    if not os.path.isfile(os.path.join(directory, "tileset.json")):
        raise DataError("no tileset.json here", path=directory)
    report = tileset_info(directory, validate=validate)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        for key in ("version", "tiles", "contents", "features", "depth", "bytes_stored",
                    "bytes_raw", "gzip", "implicit"):
            if key in report:
                click.echo(f"{key:<13} {report[key]}")
        if validate and "validator" in report:
            click.echo(f"{'validator':<13} {report['validator']}")
        for problem in report.get("problems", []):
            click.echo(f"problem: {problem}")
    sys.exit(0 if report.get("ok") else 1)
