"""``ngis model hotspots``: traffic-crash hot spots on the road network.

Reads crash points (an NPA A1/A2 CSV as published, any point file with time and severity, or the
store's ``crashes`` layer) and a road network (a vector file, or the store's ``roads`` layer;
without either, crashes are aggregated to hexagons), runs
:func:`models.hotspots.model.run_hotspots`, and writes into ``--out`` atomically:

- ``hotspots.gpkg``: layer ``hotspots`` (lixels or hexagons with ``count``, ``value``, ``z``,
  ``p``, ``q``, ``class``, ``class_name`` and the method's own columns) and layer ``crashes``
  (the crashes used, with their lixel and snapping distance; ``cell`` -1 = unsnapped);
- ``summary.json``: crashes read, skipped with reasons, snapped and unsnapped, hot spots per
  class, network, weights, parameters, timings;
- ``map.png``: the classes over the store's DEM hillshade when it has one, else a plain ground.
"""

from __future__ import annotations

import sys

import click

from gis.cli.main import progress_enabled
from gis.errors import DataError

STAGES = {"network": ["lixels", "snap", "weights", "statistics"],
          "grid": ["hexagons", "statistics"]}
CLASS_COLOURS = {3: "#b2182b", 2: "#e34a33", 1: "#fdae61", -1: "#abd9e9", -2: "#4393c3",
                 -3: "#2166ac"}
QUAD_COLOURS = {1: "#d7191c", 2: "#abd9e9", 3: "#2c7bb6", 4: "#fdae61"}


def _bbox(text: str | None):
    if text is None:
        return None
    try:
        v = [float(p) for p in text.split(",")]
    except ValueError:
        v = []
    if len(v) != 4 or v[0] >= v[2] or v[1] >= v[3]:
        raise click.BadParameter(f"{text!r}: expected MINLON,MINLAT,MAXLON,MAXLAT",
                                 param_hint="--bbox")
    return tuple(v)


def _severity_weights(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    out = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        try:
            out[k.strip().lower()] = float(v)
        except ValueError:
            raise click.BadParameter(f"{part!r}: expected SEVERITY=WEIGHT",
                                     param_hint="--severity-weights") from None
    return out


@click.command("hotspots")
@click.option("--crashes", "crash_files", multiple=True, type=click.Path(exists=True,
              dir_okay=False), help="Crash file(s): NPA A1/A2 CSV or a point layer (repeatable; "
              "default: the store's 'crashes' layer).")
@click.option("--roads", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Road network file (any vector format GDAL reads, e.g. GMT, GeoPackage).")
@click.option("--store", default=None, metavar="STORE", help="Base-map store: its 'roads' "
              "layer (and 'crashes' without --crashes, 'dem' for the map).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--method", type=click.Choice(["gi", "moran", "nkde", "emerging"]), default="gi",
              show_default=True, help="Gi*, local Moran, network KDE or emerging hot spots.")
@click.option("--lixel", type=click.FloatRange(min=1.0), default=100.0, show_default=True,
              help="Lixel length, metres.")
@click.option("--bandwidth", type=click.FloatRange(min=1.0), default=300.0, show_default=True,
              help="Network distance band of the weights and NKDE bandwidth, metres.")
@click.option("--snap", "snap_tolerance", type=click.FloatRange(min=0.0), default=50.0,
              show_default=True, help="Crashes farther than this from a road are unsnapped (m).")
@click.option("--permutations", type=click.IntRange(0, 99_999), default=999, show_default=True,
              help="Conditional permutations (0: analytic p-values).")
@click.option("--seed", type=int, default=0, show_default=True, help="Permutation seed.")
@click.option("--null", type=click.Choice(["conditional", "total"]), default="conditional",
              show_default=True, help="Gi* permutation null: the lixel keeps its count "
              "(conditional, as esda) or is permuted too (total, as the analytic z).")
@click.option("--weights", type=click.Choice(["count", "severity"]), default="count",
              show_default=True, help="Count crashes, or weight them by severity.")
@click.option("--severity-weights", default=None, metavar="K=V,...",
              help="Severity weights (default fatal=10,injury=3,property=1).")
@click.option("--fdr", type=click.Choice(["bh", "by", "none"]), default="bh", show_default=True,
              help="False discovery rate correction before classifying.")
@click.option("--time-bin", type=click.Choice(["month", "quarter", "year"]), default=None,
              help="Time bins of the emerging hot spots (default quarter).")
@click.option("--kernel", type=click.Choice(["quartic", "epanechnikov", "triangular", "uniform",
              "gaussian"]), default="quartic", show_default=True, help="NKDE kernel.")
@click.option("--hex-size", type=click.FloatRange(min=1.0), default=500.0, show_default=True,
              help="Hexagon circumradius (m) when there are no roads.")
@click.option("--speed", "speed_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Speed observations (points or lines with 'speed' km/h, "
              "optional 'free_flow'): marks jam-prone corridors beside the hot spots.")
@click.option("--bbox", default=None, metavar="MINLON,MINLAT,MAXLON,MAXLAT",
              help="Only crashes and roads in this box (CRS84).")
@click.pass_context
def command(ctx, crash_files, roads, store, out, method, lixel, bandwidth, snap_tolerance,
            permutations, seed, null, weights, severity_weights, fdr, time_bin, kernel, hex_size, speed_file, bbox):
    """Crash hot spots on road lixels: Gi*, local Moran, network KDE, emerging hot spots.

    \b
    $ ngis model hotspots --crashes A1_2018_roc107.csv --crashes A1_2019_roc108.csv \\
        --roads Freeway_Nat.gmt --out build/hotspots --permutations 9999
    $ ngis model hotspots --store basemap.gpkg --out build/hotspots --method emerging \\
        --time-bin quarter
    """
    from tqdm import tqdm

    from gis.io.outputs import output_dir, write_json
    from models.hotspots.model import DEFAULT_SEVERITY, HotspotParams, run_hotspots

    box = _bbox(bbox)
    crashes_in, read_summary = load_crashes(crash_files, store, box)
    roads_in = load_roads(roads, store, box)
    speed = None
    if speed_file:
        import geopandas as gpd

        try:
            speed = gpd.read_file(speed_file)
        except Exception as err:
            raise DataError(f"cannot read the speed layer: {err}", path=speed_file) from err
        if speed.crs is None:
            raise DataError("the speed layer has no CRS", path=speed_file)
    params = HotspotParams(method=method, lixel=lixel, bandwidth=bandwidth,
                           snap_tolerance=snap_tolerance, permutations=permutations, seed=seed,
                           null=null,
                           weights=weights,
                           severity_weights=_severity_weights(severity_weights)
                           or dict(DEFAULT_SEVERITY),
                           fdr=fdr, time_bin=time_bin, kernel=kernel, hex_size=hex_size)
    stages = list(STAGES["network" if roads_in is not None else "grid"])
    if method in ("nkde", "emerging"):
        stages.append("kernel density" if method == "nkde" else "emerging")
    if speed_file:
        stages.append("jams")
    with tqdm(total=len(stages), desc="hotspots", unit="step", file=sys.stderr,
              disable=not progress_enabled(ctx)) as bar:
        def progress(name):
            if bar.n or name != stages[0]:
                bar.update(1)
            bar.set_postfix_str(name)

        result = run_hotspots(crashes_in, roads_in, params, progress=progress,
                              read_summary=read_summary, speed=speed)
        bar.update(bar.total - bar.n)
    result.summary["inputs"] = {"crashes": list(crash_files) or f"{store}:crashes",
                                "roads": roads or (f"{store}:roads" if store else None),
                                "bbox": list(box) if box else None}
    with output_dir(out) as tmp:
        result.cells.to_file(tmp / "hotspots.gpkg", layer="hotspots", driver="GPKG")
        result.crashes.drop(columns=["time"]).assign(
            time=result.crashes["time"].astype(str)).to_file(
            tmp / "hotspots.gpkg", layer="crashes", driver="GPKG")
        write_json(tmp / "summary.json", result.summary)
        write_map(tmp / "map.png", result, store)
    classes = result.summary.get("classes", {})
    hot = sum(v for k, v in classes.items() if k.startswith(("hot", "HH")))
    click.echo(f"{result.summary['crashes']['snapped']} crashes on "
               f"{len(result.cells)} cells, {result.summary['crashes']['unsnapped']} unsnapped; "
               f"{hot} hot-spot cells -> {out}")


def load_crashes(files, store: str | None, bbox):
    """Crash records from files or the store, clipped to ``bbox`` (CRS84)."""
    from gis.io.crashes import crashes_from_frame, read_crashes

    if files:
        rec = read_crashes(list(files))
    elif store:
        from gis.store import open_store

        st = open_store(store)
        if "crashes" not in st.layers():
            raise DataError("the store has no 'crashes' layer; give --crashes", path=store)
        rec = crashes_from_frame(st.read("crashes", bbox=_layer_bbox(st, "crashes", bbox)),
                                 source=f"{store}:crashes")
    else:
        raise click.UsageError("give --crashes FILE, or --store with a 'crashes' layer")
    frame = rec.frame
    summary = rec.summary()
    if bbox is not None:
        import shapely

        box = shapely.box(*bbox)
        inside = frame.to_crs("OGC:CRS84").geometry.intersects(box).to_numpy()
        summary["outside_bbox"] = int((~inside).sum())
        frame = frame[inside]
    if len(frame) == 0:
        raise DataError("no crash points to analyse (after clipping)")
    return frame, summary


def load_roads(path: str | None, store: str | None, bbox):
    """Road lines from a file or the store (None: hexagon grid)."""
    import geopandas as gpd

    if path:
        try:
            frame = gpd.read_file(path)
        except Exception as err:
            raise DataError(f"cannot read roads: {err}", path=path) from err
        if frame.crs is None:
            raise DataError("the road file has no CRS", path=path)
    elif store:
        from gis.store import open_store

        st = open_store(store)
        if "roads" not in st.layers():
            raise DataError("the store has no 'roads' layer", path=store)
        frame = st.read("roads", bbox=_layer_bbox(st, "roads", bbox))
    else:
        return None
    if bbox is not None and path:
        import shapely

        frame = frame[frame.to_crs("OGC:CRS84").geometry.intersects(shapely.box(*bbox))
                      .to_numpy()]
    if len(frame) == 0:
        raise DataError("no roads (in the box)", path=path or store)
    return frame


def _layer_bbox(st, name: str, bbox):
    if bbox is None:
        return None
    from pyproj import CRS, Transformer

    crs = CRS.from_user_input(st.record(name)["crs"])
    tr = Transformer.from_crs("OGC:CRS84", crs, always_xy=True)
    return tr.transform_bounds(*bbox, densify_pts=21)


def write_map(path, result, store: str | None) -> None:
    """The classes over the store's DEM hillshade (or a plain ground), crashes as dots."""
    import numpy as np
    from affine import Affine

    from gis.maps import MapVectors, hazard_map

    cells = result.cells
    crs = cells.crs
    x0, y0, x1, y1 = cells.total_bounds
    pad = max(x1 - x0, y1 - y0) * 0.03 + 50
    x0, y0, x1, y1 = x0 - pad, y0 - pad, x1 + pad, y1 + pad
    dem, transform = _store_dem(store, crs, (x0, y0, x1, y1))
    if dem is None:  # plain ground: a flat surface shades evenly
        transform = Affine(x1 - x0, 0, x0, 0, -(y1 - y0), y1)
        dem = np.zeros((1, 1), np.float32)
    moran = "quadrant" in cells.columns
    colours = QUAD_COLOURS if moran else CLASS_COLOURS
    vectors = [MapVectors(cells, "roads (lixels)", {"color": "#9a9a9a", "linewidth": 0.5})]
    title = "Crash hot spots"
    if "density_per_km" in cells.columns:  # network KDE: density along the roads
        dense = cells[cells["density_per_km"] > 0]
        if len(dense):
            vectors.append(MapVectors(dense, "crash density (darker = denser)",
                                      {"column": "density_per_km", "cmap": "YlOrRd",
                                       "linewidth": 2.0}))
        title = "Crash density on the network (equal-split NKDE)"
    elif "category" in cells.columns:  # emerging hot spots: one colour per category
        from matplotlib import colormaps

        cats = [c for c in dict.fromkeys(cells["category"]) if c != "no pattern detected"]
        for n, cat in enumerate(sorted(cats)):
            cmap = colormaps["Reds" if "hot" in cat else "Blues"]
            colour = cmap(0.45 + 0.55 * (n % 8) / 8)
            vectors.append(MapVectors(cells[cells["category"] == cat], cat,
                                      {"color": colour, "linewidth": 2.2}))
        title = "Emerging crash hot spots"
    else:
        for value in sorted(colours, key=lambda v: abs(v)):
            part = cells[cells["class"] == value]
            if len(part):
                vectors.append(MapVectors(part, part["class_name"].iloc[0],
                                          {"color": colours[value], "linewidth": 2.2,
                                           "edgecolor": colours[value],
                                           "facecolor": colours[value]}))
    if "jam_corridor" in cells.columns:
        jams = cells[cells["jam_corridor"] >= 0]
        if len(jams):
            vectors.insert(1, MapVectors(jams, "jam-prone corridor",
                                         {"color": "#7b3294", "linewidth": 5.0, "alpha": 0.35}))
    pts = result.crashes[result.crashes["cell"] >= 0]
    if len(pts):
        vectors.append(MapVectors(pts, "crashes", {"color": "k", "markersize": 2}))
    s = result.summary
    p = s["parameters"]
    note = (f"method {p['method']}, lixel {p['lixel']} m, band {p['bandwidth']} m, "
            f"{p['permutations']} permutations (seed {p['seed']}), FDR {p['fdr']}; "
            f"{s['crashes']['snapped']} crashes, {s['crashes']['unsnapped']} unsnapped")
    hazard_map(path, dem, transform, crs, None, title=title, label="class",
               vectors=vectors, note=note)


def _store_dem(store: str | None, crs, bounds):
    if not store:
        return None, None
    from gis.store import open_store

    st = open_store(store)
    if "dem" not in st.layers() or not hasattr(st, "read_raster"):
        return None, None
    try:
        dem = st.read_raster("dem")
    except Exception:  # the map is a courtesy: a DEM that will not read leaves a plain ground
        return None, None
    if dem.crs is None or not crs.equals(dem.crs):
        return None, None
    import rasterio.windows

    win = rasterio.windows.from_bounds(*bounds, transform=dem.transform).round_offsets() \
        .round_lengths()
    r0, c0 = max(0, int(win.row_off)), max(0, int(win.col_off))
    r1 = min(dem.data.shape[0], int(win.row_off + win.height))
    c1 = min(dem.data.shape[1], int(win.col_off + win.width))
    if r1 - r0 < 2 or c1 - c0 < 2:
        return None, None
    from affine import Affine

    return dem.data[r0:r1, c0:c1], dem.transform @ Affine.translation(c0, r0)
