"""``ngis model flood``: flood hazard from rain, inflows or a river stage, tied to the base map.

Reads the inputs (DEM, hyetograph, inflows, Manning zones, buildings, the store's layers), runs
:func:`models.flood.run.run_flood`, and writes, into ``--out`` (atomically: the folder appears
whole or not at all):

- ``max_depth.tif``, ``max_wse.tif``, ``max_velocity.tif``, ``arrival_time.tif`` (2D modes) or
  ``hand.tif`` (HAND mode): Cloud-Optimised GeoTIFFs on the DEM's grid and CRS;
- ``snapshots/depth_<seconds>s.tif`` for ``--snapshot`` times;
- ``warning_areas.gpkg`` (depth classes over 0.3 m), ``impacts.gpkg`` (buildings over 0.3 m,
  impassable roads, pipelines under water, shelters and their status);
- ``summary.json`` and ``map.png`` (depth over a hillshade, impacts drawn on it);
- HAND mode: ``rating_curves.csv`` (stage, section, discharge per reach) and ``reaches.csv``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from gis.cli.main import progress_enabled
from gis.errors import DataError


def _inflow(text: str):
    from models.flood import Inflow

    parts = text.split(",")
    try:
        x, y, radius, q = (float(p) for p in parts)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected X,Y,RADIUS,Q (numbers)",
                                 param_hint="--inflow") from None
    return Inflow(x, y, radius, q)


def read_inflow_csv(path: str) -> list:
    """Inflows from a CSV: ``x,y,radius,q`` per row (constant), or with ``id`` and ``t_s``
    columns: the rows of one id form its hydrograph ``(t_s, q)``."""
    import pandas as pd

    from models.flood import Inflow

    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"cannot read inflows: {err}", path=path) from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    for col in ("x", "y", "radius", "q"):
        if col not in frame:
            raise DataError(f"inflow CSV needs the column {col!r}", path=path, field=col)
    for col in ("x", "y", "radius", "q", *(["t_s"] if "t_s" in frame else [])):
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = np.flatnonzero(~np.isfinite(values.to_numpy(dtype="float64")))
        if bad.size:
            raise DataError(f"not a number: {frame[col].iloc[bad[0]]!r}", path=path,
                            record=f"row {bad[0] + 2}", field=col)
        frame[col] = values
    if "t_s" not in frame:
        return [Inflow(r.x, r.y, r.radius, r.q) for r in frame.itertuples()]
    key = "id" if "id" in frame else None
    groups = frame.groupby(key, sort=False) if key else [(0, frame)]
    out = []
    for _, g in groups:
        first = g.iloc[0]
        out.append(Inflow(float(first.x), float(first.y), float(first.radius),
                          g[["t_s", "q"]].to_numpy(dtype="float64").tolist()))
    return out


def _loss(text: str | None):
    from models.flood import ConstantLoss, CurveNumber

    if text is None or text == "none":
        return None
    kind, _, args = text.partition(":")
    try:
        values = [float(v) for v in args.split(",") if v]
    except ValueError:
        values = []
    if kind == "cn" and len(values) == 1:
        return CurveNumber(values[0])
    if kind == "constant" and len(values) in (1, 2):
        return ConstantLoss(*values)
    raise click.BadParameter(f"{text!r}: none, cn:NUMBER or constant:MM_PER_H[,INITIAL_MM]",
                             param_hint="--loss")


def _read_frame(path: str, crs):
    from gis.io.vector import read_vector

    layers = read_vector(path)
    if not layers:
        raise DataError("no vector layer", path=path)
    frame = layers[0].frame
    if frame.crs is None:
        raise DataError("no CRS", path=path)
    return frame.to_crs(crs)


def store_layers(store_uri: str, bounds, crs, names=("buildings", "roads", "pipelines")):
    """The store's layers that meet ``bounds`` (in ``crs``), reprojected to ``crs``. Each
    layer's CRS comes from its catalogue record."""
    from pyproj import CRS, Transformer

    from gis.store import open_store

    store = open_store(store_uri)
    present = set(store.layers())
    records = {r["id"]: r for r in store.catalog()}
    out = {}
    for name in names:
        if name not in present:
            continue
        layer_crs = (records.get(name) or {}).get("crs")
        box = None
        if layer_crs:
            box = Transformer.from_crs(crs, CRS.from_user_input(layer_crs),
                                       always_xy=True).transform_bounds(*bounds)
        frame = store.read(name, bbox=box)
        out[name] = frame.to_crs(crs) if frame.crs is not None else frame
    return out


@click.command("flood")
@click.option("--dem", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Ground elevation; geographic DEMs are warped to TWD97 / TM2 in Taiwan, else "
                   "to UTM.")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--mode", type=click.Choice(["rain", "inflow", "hand"]), default="rain",
              show_default=True)
@click.option("--rain", "rain_csv", type=click.Path(exists=True, dir_okay=False),
              help="Hyetograph CSV: time and mm per step (CWA hour-ending stamps by default).")
@click.option("--rain-window", type=float,
              help="Simulate only the wettest HOURS of the hyetograph (the storm's core).")
@click.option("--loss", default="none", show_default=True,
              help="Rainfall losses: none, cn:CURVE_NUMBER, constant:MM_PER_H[,INITIAL_MM].")
@click.option("--inflow", "inflows", multiple=True, help="X,Y,RADIUS,Q (m, m^3/s), repeatable.")
@click.option("--inflow-csv", type=click.Path(exists=True, dir_okay=False),
              help="Inflows: x,y,radius,q rows, or id,x,y,radius,t_s,q hydrographs.")
@click.option("--duration", type=float, help="Simulated seconds (default: rain + 2 h, or 6 h).")
@click.option("--manning", type=float, default=0.03, show_default=True, help="Manning's n.")
@click.option("--manning-zones", type=click.Path(exists=True, dir_okay=False),
              help="Polygons with their own Manning's n.")
@click.option("--manning-field", help="Field of --manning-zones holding n.")
@click.option("--manning-zone-value", type=float, help="One n for all --manning-zones.")
@click.option("--buildings", type=click.Path(exists=True, dir_okay=False),
              help="Building footprints as obstacles (default with --building-mode: the store's).")
@click.option("--building-mode", type=click.Choice(["raise", "block"]),
              help="Buildings raise the ground by --building-height, or block water entirely.")
@click.option("--building-height", type=float, default=3.0, show_default=True)
@click.option("--boundary", type=click.Choice(["open", "closed"]), default="open",
              show_default=True, help="Grid edge: free outflow or wall.")
@click.option("--snapshot", "snapshots", type=float, multiple=True,
              help="Also write the depth at this time (s), repeatable.")
@click.option("--stage", type=float, help="HAND mode: river stage above the channel (m).")
@click.option("--discharge", type=float,
              help="HAND mode: discharge (m^3/s) through every reach's rating curve.")
@click.option("--stream-area", type=float, default=1.0, show_default=True,
              help="HAND mode: drainage area (km^2) that starts a stream.")
@click.option("--store", help="Base-map store: buildings, roads and pipelines for the impacts.")
@click.option("--crs", help="CRS of the DEM when the file has none.")
@click.pass_context
def command(ctx, dem, out, mode, rain_csv, rain_window, loss, inflows, inflow_csv, duration,
            manning, manning_zones, manning_field, manning_zone_value, buildings, building_mode,
            building_height, boundary, snapshots, stage, discharge, stream_area, store, crs):
    """Flood hazard: maximum depth, water level, velocity and arrival time, warning areas and
    the buildings, roads, pipelines and shelters affected.

    \b
    $ ngis model flood --dem dem.tif --rain rain_gauge.csv --loss cn:80 \\
        --store basemap.gpkg --building-mode block --out build/flood
    $ ngis model flood --dem merewether.tif --mode inflow --inflow 382300,6354290,15,19.7 \\
        --buildings houses.gpkg --building-mode block --duration 900 --out build/merewether
    $ ngis model flood --dem dem.tif --mode hand --stage 3 --store basemap.gpkg --out build/hand
    """
    from tqdm import tqdm

    from gis.io.hyetograph import read_hyetograph
    from gis.io.raster import read_projected_dem
    from models.flood import building_mask, manning_grid, raise_buildings
    from models.flood.run import run_flood

    demsrc = read_projected_dem(dem, crs)
    z = demsrc.data
    transform, grid_crs = demsrc.transform, demsrc.crs
    rain = read_hyetograph(rain_csv) if rain_csv else None
    if rain is not None and rain_window:
        rain = rain.wettest(rain_window * 3600)
    flows = [_inflow(t) for t in inflows] + (read_inflow_csv(inflow_csv) if inflow_csv else [])
    if mode == "rain" and rain is None:
        raise click.UsageError("--mode rain needs --rain CSV (or use --mode inflow)")
    n = manning
    if manning_zones:
        if (manning_field is None) == (manning_zone_value is None):
            raise click.UsageError("--manning-zones needs --manning-field or "
                                   "--manning-zone-value")
        n = manning_grid(_read_frame(manning_zones, grid_crs), transform, z.shape,
                         default=manning, field=manning_field, value=manning_zone_value)
    layers = store_layers(store, demsrc.bounds, grid_crs) if store else {}
    blocked = None
    if building_mode:
        obstacles = _read_frame(buildings, grid_crs) if buildings else layers.get("buildings")
        if obstacles is None:
            raise click.UsageError("--building-mode needs --buildings FILE or a --store with "
                                   "buildings")
        mask = building_mask(obstacles, transform, z.shape)
        if building_mode == "raise":
            z = raise_buildings(z, mask, building_height)
        else:
            blocked = mask
    elif buildings:
        raise click.UsageError("--buildings needs --building-mode raise|block")
    if buildings and "buildings" not in layers:
        layers["buildings"] = _read_frame(buildings, grid_crs)

    total = duration or ((rain.duration_s + 7200.0) if rain is not None else 6 * 3600.0)
    with tqdm(total=round(total), unit="s", desc=f"flood {mode} (simulated time)",
              file=sys.stderr, disable=not progress_enabled(ctx) or mode == "hand") as bar:
        def progress(t_s: float) -> None:
            bar.update(max(0, round(t_s) - bar.n))

        result = run_flood(z, transform, grid_crs, mode=mode, duration_s=duration, rain=rain,
                           loss=_loss(loss), inflows=flows, manning=n, blocked=blocked,
                           boundary=boundary, snapshot_times=snapshots, stage=stage,
                           discharge=discharge, stream_threshold_km2=stream_area,
                           layers=layers, progress=progress)
    out_path = write_result(result, out, dem=z, title_note=f"{Path(dem).name}, mode {mode}")
    s = result.summary
    if not (ctx.find_root().obj or {}).get("quiet"):
        imp = s["impacts"]
        click.echo(f"{out_path}: max depth {s['max_depth_m']:.2f} m, "
                   f"{s['flooded_area_m2']['over_0.3m'] / 1e6:.3f} km^2 over 0.3 m"
                   + (f"; buildings over 0.5 m: {imp['buildings']['over_0.5m']}"
                      if "buildings" in imp else "")
                   + (f"; roads impassable: {imp['roads']['impassable']}" if "roads" in imp
                      else "")
                   + (f"; shelters flooded/cut off: {imp['shelters']['flooded']}/"
                      f"{imp['shelters']['cut_off']}" if "shelters" in imp else ""), err=True)


def write_result(result, out: str, *, dem: np.ndarray, title_note: str = "") -> Path:
    """Write a :class:`models.flood.run.FloodRun` into ``out`` (atomically)."""
    import pyogrio

    from gis.io.outputs import output_dir, write_cog, write_json
    from gis.maps import MapClass, MapVectors, hazard_map
    from models.flood.run import DEPTH_CLASSES, DEPTH_COLOURS

    units = {"max_depth": "m", "max_wse": "m", "max_velocity": "m/s", "arrival_time": "s",
             "hand": "m"}
    with output_dir(out) as tmp:
        for name, arr in result.rasters.items():
            write_cog(tmp / f"{name}.tif", np.asarray(arr, dtype="float32"), result.transform,
                      result.crs, tags={"units": units.get(name, ""), "model": "ngis flood"})
        for t, arr in sorted(result.snapshots.items()):
            write_cog(tmp / "snapshots" / f"depth_{int(round(t))}s.tif",
                      np.asarray(arr, dtype="float32"), result.transform, result.crs,
                      tags={"units": "m", "time_s": t})
        areas = result.warning_areas
        pyogrio.write_dataframe(areas, tmp / "warning_areas.gpkg", layer="warning_areas",
                                driver="GPKG")
        for name, frame in result.impacts.items():
            pyogrio.write_dataframe(_plain_columns(frame), tmp / "impacts.gpkg", layer=name,
                                    driver="GPKG", append=(tmp / "impacts.gpkg").exists())
        write_json(tmp / "summary.json", result.summary)
        for name, table in result.tables.items():
            table.to_csv(tmp / f"{name}.csv", index=False, float_format="%.6g")
        depth = result.rasters["max_depth"]
        shown = np.where(np.nan_to_num(depth) >= DEPTH_CLASSES[0][0], depth, np.nan)
        bounds = [b for b, _ in DEPTH_CLASSES] + [np.inf]
        classes = [MapClass(bounds[k], bounds[k + 1], DEPTH_COLOURS[k], label)
                   for k, (_, label) in enumerate(DEPTH_CLASSES)]
        vectors = []
        imp = result.impacts
        if "roads" in imp and len(imp["roads"]):
            vectors.append(MapVectors(imp["roads"], "impassable road (>0.3 m)",
                                      {"color": "#d7301f", "linewidth": 1.6}))
        if "buildings" in imp and len(imp["buildings"]):
            vectors.append(MapVectors(imp["buildings"], "building flooded (>0.3 m)",
                                      {"facecolor": "#fdae6b", "edgecolor": "#a63603",
                                       "linewidth": 0.3}))
        if "shelters" in imp and len(imp["shelters"]):
            sh = imp["shelters"]
            bad = sh[sh["flooded"] | sh["cut_off"]]
            ok = sh[~(sh["flooded"] | sh["cut_off"])]
            for frame, label, colour in ((ok, "shelter reachable", "#1a9850"),
                                         (bad, "shelter flooded or cut off", "#d73027")):
                if len(frame):
                    pts = frame.copy()
                    pts["geometry"] = frame.geometry.centroid
                    vectors.append(MapVectors(pts, label, {"color": colour, "markersize": 40,
                                                           "marker": "^"}))
        s = result.summary
        hazard_map(tmp / "map.png", dem, result.transform, result.crs, shown,
                   title=f"Flood hazard: maximum depth ({s['model']['mode']} mode)",
                   label="maximum depth", classes=classes, vectors=vectors,
                   note=f"NGIS 3D flood model; {title_note}; max depth "
                        f"{s['max_depth_m']:.2f} m")
    return Path(out)


def _plain_columns(frame):
    """GeoPackage-friendly columns: objects that are not strings become strings."""
    out = frame.copy()
    for col in out.columns:
        if col != out.geometry.name and out[col].dtype == object:
            out[col] = out[col].astype("str").where(out[col].notna(), None)
    return out
