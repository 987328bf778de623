"""Benchmark: CityJSON buildings/s and IFC elements/s into 3D Tiles (issue 11).

CityJSON: the Zürich LOD2 sample (49 Buildings, 161 BuildingParts) copied ``--copies`` times side
by side into one CityJSONSeq placed in Taiwan (EPSG:3826; the tiles geoid grid covers East Asia
only), then read (``gis.io.cityjson.read_cityjson``), ingested into a GeoPackage and built into
LOD2 3D Tiles (``ngis tiles build --lod 2``). Peer: cjio 0.10's reader (parse + decompress, no
meshing: cjio's glb export needs the ``triangle`` package) on the original file, in a subprocess
because importing cjio changes ``json`` float formatting process-wide; the ratio compares read
rates on that same file.

The Zurich model has one self-intersecting roof polygon, so its Building is left out at ingest
(``--skip-invalid``) in every copy.

IFC: the FZK-Haus sample (IFC4, 82 elements with geometry) with its IfcSite moved to Taiwan, read
(``gis.io.ifc.read_ifc``: tessellation, placement, envelope, property sets), ingested and built.
Peer: IfcOpenShell's geometry iterator alone on the same elements (the tessellation share).

Prints medians of ``--repeat`` runs, the ratio against the peer, and memory: tracemalloc peak of
the read (bytes per building / element) and the process's peak RSS.

    .venv/bin/python -m bench.bim --repeat 3
    .venv/bin/python -m bench.bim --copies 20 --repeat 1
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
FZK = DATA / "ifc-samples" / "AC20-FZK-Haus.ifc"

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


def taiwan_seq(copies: int, out: Path) -> int:
    """The Zürich buildings ``copies`` times, 12 km apart, as one CityJSONSeq in EPSG:3826;
    returns the number of Buildings."""
    doc = json.loads(ZURICH.read_text())
    tr = doc["transform"]
    header = {"type": "CityJSON", "version": "2.0",
              "transform": {"scale": tr["scale"], "translate": [200000.0, 2600000.0, 0.0]},
              "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/3826"},
              "CityObjects": {}, "vertices": []}
    # the same integer vertices under a Taiwan translate: the layout moves as a whole
    objs, verts = doc["CityObjects"], doc["vertices"]
    lines, n = [json.dumps(header)], 0
    step = round(12000 / tr["scale"][0])
    for c in range(copies):
        dx = c * step
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
                vs[new] = [x + dx, y, z]
            lines.append(json.dumps({"type": "CityJSONFeature", "id": f"{oid}#{c}",
                                     "CityObjects": tree, "vertices": vs}))
            n += 1
    out.write_text("\n".join(lines) + "\n")
    return n


def _remap(b, used: dict[int, int]):
    if isinstance(b, int):
        return used.setdefault(b, len(used))
    return [_remap(x, used) for x in b]


def _build(src: Path, work: Path) -> tuple[float, float, int]:
    """ingest (--skip-invalid: the Zurich model has one self-intersecting roof) + tiles build
    --lod 2: (ingest s, tiles s, tileset features)."""
    from click.testing import CliRunner

    from gis.cli.main import cli
    from tiles.info import tileset_info

    store = work / "s.gpkg"
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["-q", "ingest", "--skip-invalid", "--store", str(store),
                                 str(src)])
    t1 = time.perf_counter()
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["-q", "tiles", "build", "--store", str(store), "--layer",
                                 "buildings", "--lod", "2", "--out", str(work / "tiles")])
    t2 = time.perf_counter()
    assert r.exit_code == 0, r.output
    return t1 - t0, t2 - t1, tileset_info(work / "tiles")["features"]


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


def bench_cityjson(args) -> None:
    from gis.io.cityjson import read_cityjson

    reads, ingests, builds, peaks, n = [], [], [], [], 0
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            src = work / "zurich_tw.city.jsonl"
            n = taiwan_seq(args.copies, src)
            dt, peak, lyr = _read_timed(read_cityjson, src)
            assert len(lyr.frame) == n
            reads.append(dt)
            peaks.append(peak)
            ing, til, feats = _build(src, work)
            assert feats == n - len({rec for rec, _, _ in lyr.problems})
            ingests.append(ing)
            builds.append(til)
    r, i, b = (statistics.median(x) for x in (reads, ingests, builds))
    print(f"CityJSON  {n} buildings ({args.copies} x Zurich LOD2): read {n / r:,.0f} buildings/s "
          f"({r:.2f} s), ingest {i:.2f} s (reads again), tiles --lod 2 {b:.2f} s; end to end "
          f"(ingest + tiles) {n / (i + b):,.0f} buildings/s")
    print(f"          read memory: tracemalloc peak {statistics.median(peaks) / 1e6:.1f} MB "
          f"({statistics.median(peaks) / n / 1e3:.1f} kB/building)")
    # peer on the original file
    ours = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        read_cityjson(ZURICH)
        ours.append(time.perf_counter() - t)
    proc = subprocess.run([sys.executable, "-c", CJIO_PEER, str(ZURICH), str(args.repeat)],
                          capture_output=True, text=True, check=True)
    peer = statistics.median(json.loads(proc.stdout.strip().splitlines()[-1]))
    mine = statistics.median(ours)
    print(f"          peer cjio reader on zurich (49 buildings): {49 / peer:,.0f} buildings/s "
          f"({peer * 1e3:.0f} ms) vs ours {49 / mine:,.0f} buildings/s ({mine * 1e3:.0f} ms, "
          f"with footprints and surfaces): ours/peer time {mine / peer:.2f}")


def bench_ifc(args) -> None:
    import ifcopenshell
    import ifcopenshell.geom

    from gis.io.ifc import read_ifc

    reads, ingests, builds, peaks, peer, n = [], [], [], [], [], 0
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            src = work / "fzk_tw.ifc"
            src.write_text(FZK.read_text().replace("(49,6,1,566000),(8,26,11,540400)",
                                                   "(24,48,0,0),(121,0,0,0)"))
            dt, pk, (lyr,) = _read_timed(read_ifc, src)
            n = len(lyr.extras["surfaces"])
            reads.append(dt)
            peaks.append(pk)
            ing, til, feats = _build(src, work)
            assert feats == 1
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
            peer.append(time.perf_counter() - t)
    r, i, b, p = (statistics.median(x) for x in (reads, ingests, builds, peer))
    print(f"IFC       {n} elements (FZK-Haus): read {n / r:,.1f} elements/s ({r:.2f} s), ingest "
          f"{i:.2f} s (reads again), tiles --lod 2 {b:.2f} s; end to end (ingest + tiles) "
          f"{n / (i + b):,.1f} elements/s")
    print(f"          read memory: tracemalloc peak {statistics.median(peaks) / 1e6:.1f} MB "
          f"({statistics.median(peaks) / n / 1e3:.0f} kB/element; IfcOpenShell's C++ heap not "
          "counted)")
    print(f"          peer IfcOpenShell geometry iterator alone: {n / p:,.1f} elements/s "
          f"({p:.2f} s): ours/peer time {r / p:.2f}")


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
