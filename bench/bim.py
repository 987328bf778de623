"""Benchmark: CityJSON buildings/s and IFC elements/s into 3D Tiles (issue 11), end to end
(source file -> ``ngis ingest`` -> ``ngis tiles build --lod 2`` -> finished tileset).

CityJSON: the Zürich LOD2 sample (49 Buildings, 161 BuildingParts) copied ``--copies`` times on a
12 km grid west and south of Zürich (all inside CH1903+/LV95, EPSG:2056, at their real place: the
worldwide geoid grid), as one CityJSONSeq; read (``gis.io.cityjson.read_cityjson``), ingested
into a GeoPackage and built into LOD2 3D Tiles. The Zurich model has one self-intersecting roof
polygon, so its Building is left out at ingest (``--skip-invalid``) in every copy. Also the
Delft 3dfier LOD1 sample (160 buildings, EPSG:7415) once. Peer: cjio 0.10's reader (parse +
decompress; cjio's glb export needs the ``triangle`` package, not installed, and py3dtiles reads
no CityJSON) on the original Zurich file, in a subprocess because importing cjio changes
``json`` float formatting process-wide; the ratio compares read rates on that same file.

IFC: the FZK-Haus (IFC4, 82 elements with geometry, UTM 32N from its IfcSite) and the Duplex
(IFC2x3, 215 elements, EPSG:9897 from its map conversion) samples, read
(``gis.io.ifc.read_ifc``: tessellation, placement, envelope, property sets), ingested and
built (envelope tile + element detail tile). Peers: py3dtiles 12's IFC tiler
(``py3dtiles convert FILE --jobs 1``, b3dm, not georeferenced) on the same file in a subprocess
(wall time, including its start-up; it fails on FZK-Haus with "No suitable IfcRepresentation
found"), and IfcOpenShell's geometry iterator alone on the same elements (the tessellation
share).

Prints medians of ``--repeat`` runs, the ratios, and memory: tracemalloc peak of the read (bytes
per building / element), the peak RSS of this process and of the peer subprocesses.

    .venv/bin/python -m bench.bim --repeat 3
    .venv/bin/python -m bench.bim --copies 20 --repeat 1 --only cityjson
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ZURICH = DATA / "cityjson-samples" / "zurich_subset_lod2.city.json"
DELFT = DATA / "cityjson-samples" / "delft_3dfier_lod1.city.json"
FZK = DATA / "ifc-samples" / "AC20-FZK-Haus.ifc"
DUPLEX = DATA / "ifc-samples" / "Duplex_A_20110907_georeferenced.ifc"
#: Copies of the Zurich model per row of the grid (12 km apart, westwards; rows go south).
COLUMNS = 5

CJIO_PEER = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
from cjio import cityjson
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    with open(sys.argv[1]) as fh:
        cm = cityjson.reader(fh)
    cm.decompress()
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def zurich_seq(copies: int, out: Path) -> int:
    """The Zürich buildings ``copies`` times on a 12 km grid (:data:`COLUMNS` westwards per row,
    rows southwards), as one CityJSONSeq in EPSG:2056; returns the number of Buildings."""
    doc = json.loads(ZURICH.read_text())
    tr = doc["transform"]
    header = {"type": "CityJSON", "version": "2.0",
              "transform": {"scale": tr["scale"], "translate": tr["translate"]},
              "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/2056"},
              "CityObjects": {}, "vertices": []}
    objs, verts = doc["CityObjects"], doc["vertices"]
    lines, n = [json.dumps(header)], 0
    step = round(12000 / tr["scale"][0])
    for c in range(copies):
        dx, dy = -(c % COLUMNS) * step, -(c // COLUMNS) * step
        for oid, obj in objs.items():
            if obj["type"] != "Building":
                continue
            tree = {f"{oid}#{c}": dict(obj, children=[f"{k}#{c}" for k in obj.get("children", [])])}
            used: dict[int, int] = {}
            for kid in obj.get("children", []):
                part = json.loads(json.dumps(objs[kid]))
                part["parents"] = [f"{oid}#{c}"]
                for g in part.get("geometry", []):
                    g["boundaries"] = _remap(g["boundaries"], used)
                tree[f"{kid}#{c}"] = part
            vs = [None] * len(used)
            for old, new in used.items():
                x, y, z = verts[old]
                vs[new] = [x + dx, y + dy, z]
            lines.append(json.dumps({"type": "CityJSONFeature", "id": f"{oid}#{c}",
                                     "CityObjects": tree, "vertices": vs}))
            n += 1
    out.write_text("\n".join(lines) + "\n")
    return n


def _remap(b, used: dict[int, int]):
    if isinstance(b, int):
        return used.setdefault(b, len(used))
    return [_remap(x, used) for x in b]


def _build(src: Path, work: Path, crs: str) -> tuple[float, float, dict]:
    """ingest (--skip-invalid: the Zurich model has one self-intersecting roof) into ``crs`` +
    tiles build --lod 2: (ingest s, tiles s, tileset_info of the result)."""
    from click.testing import CliRunner

    from gis.cli.main import cli
    from tiles.info import tileset_info

    store = work / "s.gpkg"
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["-q", "ingest", "--skip-invalid", "--store", str(store),
                                 "--target-crs", crs, str(src)])
    t1 = time.perf_counter()
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["-q", "tiles", "build", "--store", str(store), "--layer",
                                 "buildings", "--lod", "2", "--out", str(work / "tiles")])
    t2 = time.perf_counter()
    assert r.exit_code == 0, r.output
    return t1 - t0, t2 - t1, tileset_info(work / "tiles")


def _read_timed(fn, *args) -> tuple[float, int, object]:
    """Time one read, then its tracemalloc peak in a second, untimed read (tracing slows it)."""
    t = time.perf_counter()
    out = fn(*args)
    dt = time.perf_counter() - t
    tracemalloc.start()
    fn(*args)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return dt, peak, out


def _timed_run(cmd: list[str]) -> tuple[subprocess.CompletedProcess, float | None]:
    """Run ``cmd`` under /usr/bin/time (when there is one) for its own peak RSS in MB (the
    children's ru_maxrss would include this process's size at the fork: it survives exec)."""
    import shutil

    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists()
                                        else None)
    if gnu_time is None:
        return subprocess.run(cmd, capture_output=True, text=True), None
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as fh:
        proc = subprocess.run([gnu_time, "-f", "%M", "-o", fh.name, *cmd], capture_output=True,
                              text=True)
        text = Path(fh.name).read_text().strip().splitlines()
    try:
        return proc, int(text[-1]) / 1024
    except (IndexError, ValueError):
        return proc, None


def bench_cityjson(args) -> None:
    from gis.io.cityjson import read_cityjson

    reads, ingests, builds, peaks, n, kept = [], [], [], [], 0, 0
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            src = work / "zurich_grid.city.jsonl"
            n = zurich_seq(args.copies, src)
            dt, peak, lyr = _read_timed(read_cityjson, src)
            assert len(lyr.frame) == n
            reads.append(dt)
            peaks.append(peak)
            ing, til, info = _build(src, work, "EPSG:2056")
            kept = n - len({rec for rec, _, _ in lyr.problems})
            assert info["features"] == kept and info["ok"], info["problems"][:3]
            ingests.append(ing)
            builds.append(til)
    r, i, b = (statistics.median(x) for x in (reads, ingests, builds))
    print(f"CityJSON  {n} buildings ({args.copies} x Zurich LOD2, EPSG:2056), {kept} into the "
          f"tiles: read {n / r:,.0f} buildings/s ({r:.2f} s), ingest {i:.2f} s (reads again), "
          f"tiles --lod 2 {b:.2f} s ({kept / b:,.0f} buildings/s); into 3D Tiles end to end "
          f"(ingest + tiles) {kept / (i + b):,.0f} buildings/s")
    print(f"          read memory: tracemalloc peak {statistics.median(peaks) / 1e6:.1f} MB "
          f"({statistics.median(peaks) / n / 1e3:.1f} kB/building)")
    times = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            ing, til, info = _build(DELFT, Path(tmp), "EPSG:7415")
            times.append((ing, til))
    i, b = (statistics.median(x) for x in zip(*times, strict=True))
    nd = info["features"]
    print(f"CityJSON  Delft 3dfier LOD1 ({nd} buildings, EPSG:7415): ingest {i:.2f} s, tiles "
          f"{b:.2f} s; into 3D Tiles end to end {nd / (i + b):,.0f} buildings/s")
    # peer on the original file
    ours = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        read_cityjson(ZURICH)
        ours.append(time.perf_counter() - t)
    proc, rss = _timed_run([sys.executable, "-c", CJIO_PEER, str(ZURICH), str(args.repeat)])
    assert proc.returncode == 0, proc.stderr
    peer = statistics.median(json.loads(proc.stdout.strip().splitlines()[-1]))
    mine = statistics.median(ours)
    print(f"          peer cjio reader on zurich (49 buildings): {49 / peer:,.0f} buildings/s "
          f"({peer * 1e3:.0f} ms) vs ours {49 / mine:,.0f} buildings/s ({mine * 1e3:.0f} ms, "
          f"with footprints and surfaces): ours/peer time {mine / peer:.2f} (peer peak RSS "
          f"{rss or float('nan'):.0f} MB); no peer writes CityJSON into 3D Tiles here")


def _py3dtiles(src: Path, work: Path) -> tuple[float | None, str, float | None]:
    """py3dtiles' IFC tiler on ``src`` in a subprocess: (wall s or None, error line, RSS MB)."""
    import shutil

    exe = Path(sys.executable).with_name("py3dtiles")
    if not exe.exists() and shutil.which("py3dtiles") is None:
        return None, "py3dtiles not installed", None
    out = work / "p3d"
    t = time.perf_counter()
    proc, rss = _timed_run([str(exe if exe.exists() else "py3dtiles"), "convert", str(src),
                            "--out", str(out), "--overwrite", "--jobs", "1",
                            "--disable-processpool"])
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        err = [ln for ln in proc.stderr.splitlines() if ln and not ln.startswith(" ")]
        return None, err[-1] if err else f"exit {proc.returncode}", rss
    return dt, "", rss


def bench_ifc(args) -> None:
    import ifcopenshell
    import ifcopenshell.geom

    from gis.io.ifc import read_ifc

    for src, crs in ((FZK, "EPSG:32632"), (DUPLEX, "EPSG:9897")):
        reads, ingests, builds, peaks, iters, p3d, n = [], [], [], [], [], [], 0
        p3d_error, p3d_rss = "", None
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                dt, pk, (lyr,) = _read_timed(read_ifc, src)
                n = len(lyr.extras["surfaces"])
                reads.append(dt)
                peaks.append(pk)
                ing, til, info = _build(src, work, crs)
                assert info["features"] == 1 + n and info["ok"], info["problems"][:3]
                ingests.append(ing)
                builds.append(til)
                model = ifcopenshell.open(str(src))
                els = [e for e in model.by_type("IfcElement")
                       if not e.is_a("IfcFeatureElement") and e.Representation is not None]
                s = ifcopenshell.geom.settings()
                s.set("use-world-coords", True)
                t = time.perf_counter()
                it = ifcopenshell.geom.iterator(s, model, 1, include=els)
                ok = it.initialize()
                while ok:
                    it.get()
                    ok = it.next()
                iters.append(time.perf_counter() - t)
                wall, p3d_error, p3d_rss = _py3dtiles(src, work)
                if wall is not None:
                    p3d.append(wall)
        r, i, b, g = (statistics.median(x) for x in (reads, ingests, builds, iters))
        print(f"IFC       {src.name}: {n} elements ({crs}): read {n / r:,.1f} elements/s "
              f"({r:.2f} s), ingest {i:.2f} s (reads again), tiles --lod 2 {b:.2f} s "
              f"({n / b:,.0f} elements/s); into 3D Tiles end to end (ingest + tiles) "
              f"{n / (i + b):,.1f} elements/s ({i + b:.2f} s)")
        print(f"          read memory: tracemalloc peak {statistics.median(peaks) / 1e6:.1f} MB "
              f"({statistics.median(peaks) / n / 1e3:.0f} kB/element; IfcOpenShell's C++ heap "
              "not counted)")
        print(f"          IfcOpenShell geometry iterator alone: {n / g:,.1f} elements/s "
              f"({g:.2f} s): our read / iterator time {r / g:.2f}")
        if p3d:
            w = statistics.median(p3d)
            print(f"          peer py3dtiles convert (IFC tiler, 1 job, wall incl. start-up): "
                  f"{n / w:,.1f} elements/s ({w:.2f} s): ours (ingest + tiles) / peer time "
                  f"{(i + b) / w:.2f}; peer peak RSS {p3d_rss or float('nan'):.0f} MB")
        else:
            print(f"          peer py3dtiles convert: failed ({p3d_error})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    ap.add_argument("--copies", type=int, default=10, help="copies of the Zurich buildings")
    ap.add_argument("--only", choices=["cityjson", "ifc"], default=None)
    args = ap.parse_args(argv)
    if args.only in (None, "cityjson"):
        bench_cityjson(args)
    if args.only in (None, "ifc"):
        bench_ifc(args)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {rss:.0f} MB")


if __name__ == "__main__":
    main()
