"""``ngis model landslide``: shallow-landslide hazard on a DEM.

Methods: SINMAP stability index (default), SHALSTAB critical rainfall, infinite-slope factor of
safety with Monte Carlo probability of failure, transient rainfall infiltration (Iverson 2000 /
TRIGRS) from a rain-gauge hyetograph, and statistical susceptibility from an inventory. See
:mod:`models.landslide`. This module reads the inputs, calls
:func:`models.landslide.run.run_landslide` and writes the results (Cloud-Optimised GeoTIFFs on
the DEM grid, ``warning_areas.gpkg``, ``summary.json``, ``map.png``) through
:func:`gis.io.outputs.output_dir`, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from gis.cli.main import progress_enabled
from gis.errors import DataError

METHOD_CHOICES = ["sinmap", "shalstab", "fs", "transient", "susceptibility"]
LABEL_COLUMNS = ("lslpts", "landslide", "label", "presence")
ASSET_LAYERS = ("buildings", "roads", "rail", "pipelines")


@click.command("landslide")
@click.option("--dem", required=True, help="DEM raster (GeoTIFF, netCDF, ESRI ASCII...), metres; "
              "a geographic DEM is warped to TWD97/TM2 in Taiwan, else UTM.")
@click.option("--dem-crs", default=None, help="CRS of a DEM whose file has none (e.g. EPSG:26909).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--method", type=click.Choice(METHOD_CHOICES), default="sinmap", show_default=True)
@click.option("--params", "params_path", type=click.Path(dir_okay=False), default=None,
              help="SINMAP calibration table (TauDEM: id,Tmin,Tmax,Cmin,Cmax,phimin,phimax,"
              "density) for sinmap/shalstab/fs; a JSON of soil parameters for transient.")
@click.option("--regions", type=click.Path(dir_okay=False), default=None,
              help="Calibration-region raster (ids of the --params table).")
@click.option("--recharge", default=None, metavar="MIN,MAX",
              help="Steady recharge range, m/h [default: 0.0009,0.00135].")
@click.option("--slope", "slope_path", type=click.Path(dir_okay=False), default=None,
              help="Slope raster (tan) to use instead of computing it.")
@click.option("--sca", "sca_path", type=click.Path(dir_okay=False), default=None,
              help="Specific catchment area raster (m) to use instead of the hydrology core.")
@click.option("--rain", type=click.Path(dir_okay=False), default=None,
              help="Rain-gauge CSV (time, mm per step) for --method transient.")
@click.option("--drain-hours", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Hours followed after the rain ends (transient).")
@click.option("--report-hours", default=None, metavar="H,H,...",
              help="Transient: also write fs_over_time.tif, FS at these hours (one band each).")
@click.option("--inventory", type=click.Path(dir_okay=False), default=None,
              help="Landslide inventory (points with a 0/1 label column, or presence points "
              "or polygons) for --method susceptibility.")
@click.option("--label", default=None, help="Inventory column with 1 = landslide, 0 = none.")
@click.option("--factors", multiple=True, help="Factor raster(s) for susceptibility (repeat, "
              "or comma-separated; every band is a factor).")
@click.option("--model", type=click.Choice(["logistic", "forest"]), default="logistic",
              show_default=True, help="Susceptibility classifier that makes the map.")
@click.option("--cv-repeats", type=click.IntRange(1), default=5, show_default=True,
              help="Spatial cross-validation partitions (susceptibility).")
@click.option("--compare/--no-compare", default=True, show_default=True,
              help="Cross-validate both classifiers (susceptibility), not only --model.")
@click.option("--draws", type=click.IntRange(1), default=1000, show_default=True,
              help="Monte Carlo draws per cell (fs).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option("--terrain", is_flag=True, help="Also write slope, aspect, curvatures, sca, twi.")
@click.option("--edge-contamination/--no-edge-contamination", default=True, show_default=True,
              help="SCA undefined where the catchment may reach off the grid (TauDEM's rule).")
@click.option("--min-cells", type=click.IntRange(1), default=4, show_default=True,
              help="Warning areas: patches (and holes) smaller than this many cells are merged "
              "into their surroundings.")
@click.option("--store", default=None, help="Base-map store: warning areas list the buildings, "
              "roads, rail and pipelines they touch.")
@click.option("--chunk", type=click.IntRange(16), default=None, metavar="N",
              help="Run the local models (slope, aspect, curvatures, sinmap, shalstab, fs) in "
                   "N x N chunks with dask; results identical to the in-memory run.")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="With --chunk: a local dask cluster of N worker processes.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="With --chunk: address of a running dask scheduler (tcp://host:8786).")
@click.pass_context
def command(ctx, dem, dem_crs, out, method, params_path, regions, recharge, slope_path, sca_path,
            rain, drain_hours, report_hours, inventory, label, factors, model, cv_repeats, compare,
            draws, seed, terrain, edge_contamination, min_cells, store, chunk, workers, scheduler):
    """Landslide hazard: stability rasters, warning areas, summary and map in OUT.

    \b
    $ ngis model landslide --dem dem.tif --out build/ls --params dempar.csv --regions reg.tif
    $ ngis model landslide --dem dem.tif --out build/ls-mc --method fs --draws 200 --seed 1
    $ ngis model landslide --dem tw_sw40.tif --out build/morakot --method transient \\
          --rain jiaxian_hourly.csv
    $ ngis model landslide --dem elev.tif --out build/lsl --method susceptibility \\
          --inventory lsl.geojson --factors ta.tif
    """
    from tqdm import tqdm

    from gis.io.outputs import output_dir
    from gis.io.raster import read_projected_dem
    from models.landslide.calibration import parse_calibration, parse_recharge
    from models.landslide.run import run_landslide

    src = read_projected_dem(dem, crs=dem_crs)
    kwargs: dict = {"method": method, "seed": seed, "n_draws": draws, "terrain": terrain,
                    "model": model, "drain_h": drain_hours, "cv_repeats": cv_repeats,
                    "min_cells": min_cells, "compare": compare,
                    "edge_contamination": edge_contamination}
    kwargs["recharge"] = parse_recharge(recharge)
    if params_path and method in ("sinmap", "shalstab", "fs"):
        kwargs["regions"] = parse_calibration(_read_text(params_path, "params"),
                                              path=params_path)
    if regions:
        kwargs["region_raster"] = _on_grid(regions, src, "regions", categorical=True)
    if slope_path:
        kwargs["slope"] = _on_grid(slope_path, src, "slope")
    if sca_path:
        kwargs["sca"] = _on_grid(sca_path, src, "sca")
    if method == "transient":
        if not rain:
            raise click.UsageError("--method transient needs --rain CSV")
        from gis.io.hyetograph import read_hyetograph

        h = read_hyetograph(rain)
        kwargs["rain"] = (h.edges_s, h.depth_mm)
        kwargs["rain_start"] = h.start
        kwargs["transient_params"] = _transient_params(params_path)
        if report_hours:
            try:
                kwargs["report_h"] = tuple(float(v) for v in report_hours.split(",") if v)
            except ValueError:
                raise click.BadParameter("hours must be numbers, e.g. 24,48,72",
                                         param_hint="--report-hours") from None
    if method == "susceptibility":
        if not inventory or not factors:
            raise click.UsageError("--method susceptibility needs --inventory and --factors")
        stack, names = _factor_stack(factors, src)
        kwargs["factors"] = (stack, names)
        kwargs["observations"] = _observations(inventory, label, stack, src, seed)
    assets = _assets(store, src) if store else None
    if (workers or scheduler) and not chunk:
        raise click.UsageError("--workers/--scheduler need --chunk")
    if workers and scheduler:
        raise click.UsageError("give --workers or --scheduler, not both")
    from models.chunked import dask_client

    with dask_client(workers, scheduler) as client, tqdm(
            total=None, desc=f"landslide {method}", file=sys.stderr, unit="step",
            disable=not progress_enabled(ctx)) as bar:
        def progress(stage, done, total):
            bar.set_description(f"landslide {stage}")
            if total > 1:
                bar.total = total
                bar.n = done
            else:
                bar.update(1)
            bar.refresh()

        result = run_landslide(src.data, src.transform, src.crs, assets=assets,
                               progress=progress, chunk=chunk, client=client, **kwargs)
    result.summary["inputs"] = {"dem": str(dem), "params": params_path, "regions": regions,
                                "slope": slope_path, "sca": sca_path, "rain": rain,
                                "inventory": inventory, "factors": list(factors),
                                "store": store}
    with output_dir(out) as tmp:
        _write(tmp, result, src, method)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    if not (ctx.find_root().obj or {}).get("quiet"):
        lv = result.summary["hazard_levels"]
        msg = (f"{out}: {method}, high {lv['high']['area_km2']} km2, very high "
               f"{lv['very high']['area_km2']} km2, {len(result.areas)} warning areas")
        if "auc" in result.summary:
            a = result.summary["auc"][model]
            msg += f", spatial-CV AUC {a['mean']:.3f} +- {a['std']:.3f}"
        if "transient" in result.summary and "first_failure_time" in result.summary["transient"]:
            msg += f", first failure {result.summary['transient']['first_failure_time']}"
        click.echo(msg)


def _read_text(path: str, field: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read: {err}", path=path, field=field) from None


def _transient_params(path: str | None):
    from models.landslide.transient import TransientParams

    if path is None:
        return TransientParams()
    try:
        obj = json.loads(_read_text(path, "params"))
    except json.JSONDecodeError as err:
        raise DataError(f"transient parameters must be a JSON object: {err}", path=path,
                        field="params") from None
    if not isinstance(obj, dict):
        raise DataError("transient parameters must be a JSON object", path=path, field="params")
    known = set(TransientParams.__dataclass_fields__)
    for key in obj:
        if key not in known:
            raise DataError(f"unknown parameter (known: {', '.join(sorted(known))})",
                            path=path, field=key)
    try:
        tp = TransientParams(**obj)
        tp.check()
    except (TypeError, ValueError) as err:
        raise DataError(str(err), path=path, field="params") from None
    return tp


def _on_grid(path: str, src, field: str, *, categorical: bool = False,
             band: int | None = 1) -> np.ndarray:
    """A raster resampled onto the DEM grid (as is when it already shares it; a file without a
    CRS is taken to be in the DEM's CRS)."""
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.warp import Resampling, reproject

    try:
        with rasterio.open(path) as ds:
            bands = list(range(1, ds.count + 1)) if band is None else [band]
            data = ds.read(bands, masked=True)
            crs = ds.crs or src.crs
            transform = ds.transform
    except RasterioIOError as err:
        raise DataError(f"not a readable raster: {err}", path=path, field=field) from None
    dtype = np.float64
    arr = data.astype(dtype).filled(np.nan)
    if arr.shape[1:] == src.data.shape and transform.almost_equals(src.transform) and (
            crs == src.crs):
        out = arr
    else:
        out = np.full((arr.shape[0], *src.data.shape), np.nan)
        for b in range(arr.shape[0]):
            reproject(arr[b], out[b], src_transform=transform, src_crs=crs, src_nodata=np.nan,
                      dst_transform=src.transform, dst_crs=src.crs, dst_nodata=np.nan,
                      resampling=Resampling.nearest if categorical else Resampling.bilinear)
        if not np.isfinite(out).any():
            raise DataError("does not overlap the DEM", path=path, field=field)
    if categorical:
        out = np.where(np.isfinite(out), out, -1).astype(np.int64)
    return out if band is None else out[0]


def _factor_stack(factors, src) -> tuple[np.ndarray, list[str]]:
    import rasterio

    paths = [p for item in factors for p in item.split(",") if p]
    layers, names = [], []
    for p in paths:
        if not Path(p).exists():
            raise DataError("no such file", path=p, field="factors")
        stack = _on_grid(p, src, "factors", band=None)
        with rasterio.open(p) as ds:
            desc = list(ds.descriptions)
        for b in range(stack.shape[0]):
            layers.append(stack[b])
            names.append(desc[b] or (Path(p).stem if stack.shape[0] == 1
                                     else f"{Path(p).stem}_{b + 1}"))
    return np.stack(layers), names


def _observations(path, label, stack, src, seed):
    """(X, y, xy) from the inventory: labelled points, or presences (points/polygons) with
    absences sampled outside them."""
    import geopandas as gpd
    from rasterio.features import rasterize

    from models.landslide.susceptibility import check_inventory, sample_absences, sample_stack

    try:
        inv = gpd.read_file(path)
    except Exception as err:  # noqa: BLE001 - any reader failure is a bad input file
        raise DataError(f"not a readable vector file: {err}", path=path,
                        field="inventory") from None
    if inv.empty:
        raise DataError("the inventory is empty", path=path, field="inventory")
    if inv.crs is None:
        raise DataError("the inventory has no CRS", path=path, field="inventory")
    inv = inv.to_crs(src.crs)
    if label is None:
        label = next((c for c in inv.columns if c.lower() in LABEL_COLUMNS), None)
    elif label not in inv.columns:
        raise DataError(f"no column {label!r} (has: {', '.join(map(str, inv.columns))})",
                        path=path, field="label")
    valid = np.isfinite(stack).all(axis=0)
    rows_n, cols_n = valid.shape
    inv_t = ~src.transform
    if label is not None:
        if not inv.geom_type.isin(["Point"]).all():
            raise DataError("a labelled inventory must hold points", path=path, field=label)
        try:
            y = inv[label].astype(str).str.lower().map(
                {"1": 1, "0": 0, "true": 1, "false": 0, "1.0": 1, "0.0": 0}).to_numpy()
        except Exception:  # noqa: BLE001
            y = None
        if y is None or np.isnan(y.astype(float)).any():
            raise DataError("labels must be 0/1 or true/false", path=path, field=label)
        xs, ys = inv.geometry.x.to_numpy(), inv.geometry.y.to_numpy()
        c, r = inv_t @ (xs, ys)
        r, c = np.floor(r).astype(int), np.floor(c).astype(int)
        inside = (r >= 0) & (r < rows_n) & (c >= 0) & (c < cols_n)
        r, c, y, xs, ys = r[inside], c[inside], y[inside].astype(int), xs[inside], ys[inside]
        return sample_stack(stack, r, c), y, np.column_stack([xs, ys])
    # presences only: points -> their cells; polygons -> the cells they cover
    shapes = [(g, 1) for g in inv.geometry if g is not None and not g.is_empty]
    check_inventory(len(shapes), int(valid.sum()))            # landslides, not their cells
    pres = rasterize(shapes, out_shape=valid.shape, transform=src.transform, fill=0,
                     all_touched=True, dtype="uint8").astype(bool) & valid
    pr, pc = np.nonzero(pres)
    if pr.size > 5000:
        pick = np.random.default_rng(seed).choice(pr.size, 5000, replace=False)
        pr, pc = pr[pick], pc[pick]
    ar, ac = sample_absences(valid, pres, pr.size, seed)
    r = np.r_[pr, ar]
    c = np.r_[pc, ac]
    x, yy = src.transform @ (c + 0.5, r + 0.5)
    y = np.r_[np.ones(pr.size, int), np.zeros(ar.size, int)]
    return sample_stack(stack, r, c), y, np.column_stack([x, yy])


def _assets(uri, src) -> dict:
    """The store's asset layers near the DEM (read by bounding box in each layer's CRS)."""
    from pyproj import Transformer

    from gis.errors import LayerNotFoundError
    from gis.store import open_store

    store = open_store(uri)
    names = [n for n in ASSET_LAYERS if n in store.layers()]
    out = {}
    for name in names:
        try:
            probe = store.read(name, bbox=(0.0, 0.0, 0.0, 0.0))
            bbox = None
            if probe.crs is not None and src.crs is not None:
                bbox = Transformer.from_crs(src.crs, probe.crs, always_xy=True
                                            ).transform_bounds(*src.bounds)
            out[name] = store.read(name, bbox=bbox)
        except LayerNotFoundError:
            continue
    return out


def _write(tmp: Path, result, src, method: str) -> None:
    from gis.io.outputs import write_cog, write_json
    from gis.maps import MapClass, MapVectors, hazard_map

    for name, (arr, tags) in result.rasters.items():
        nodata = 0 if np.issubdtype(arr.dtype, np.integer) else None
        write_cog(tmp / f"{name}.tif", arr, src.transform, src.crs, nodata=nodata, tags=tags)
    areas = result.areas
    areas.to_file(tmp / "warning_areas.gpkg", layer="warning_areas", driver="GPKG")
    for name, frame in result.assets.items():
        if len(frame):
            frame.to_file(tmp / "warning_areas.gpkg", layer=f"{name}_touched", driver="GPKG")
    write_json(tmp / "summary.json", result.summary)
    levels = np.where(result.levels > 0, result.levels, np.nan).astype(np.float32)
    classes = [MapClass(0.5, 1.5, "#1a9850", "low"), MapClass(1.5, 2.5, "#fee08b", "moderate"),
               MapClass(2.5, 3.5, "#f46d43", "high"), MapClass(3.5, 4.5, "#a50026", "very high")]
    import shapely

    vertices = int(shapely.get_num_coordinates(areas.geometry.values).sum()) if len(areas) else 0
    width = 0.6 if vertices < 20_000 else 0.08        # a national map: hairlines, not ink
    vectors = [MapVectors(areas, "warning areas", {"facecolor": "none", "edgecolor": "#202020",
                                                    "linewidth": width})]
    colours = {"buildings": "#4b0082", "roads": "#333333", "rail": "#8b4513",
               "pipelines": "#0057b8"}
    for name, frame in result.assets.items():
        if len(frame):
            vectors.append(MapVectors(frame, f"{name} touched ({len(frame)})",
                                      {"color": colours.get(name, "k"), "linewidth": 0.8}))
    titles = {"sinmap": "SINMAP stability (hazard level)", "shalstab": "SHALSTAB critical "
              "rainfall (hazard level)", "fs": "Probability of failure (hazard level)",
              "transient": "Transient stability through the storm (hazard level)",
              "susceptibility": "Landslide susceptibility (quantile classes)"}
    hazard_map(tmp / "map.png", src.data, src.transform, src.crs, levels,
               title=titles[method], label="hazard", classes=classes, vectors=vectors,
               note=f"ngis model landslide --method {method}; warning areas = high + very high")
