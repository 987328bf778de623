"""Benchmark: `ngis ingest` of a generated region into a GeoPackage store, against the peer: the
same layers read and written by plain geopandas/pyogrio (no checks, no reprojection, no catalogue,
not atomic). The ratio is what the standards checks, lineage and atomic write cost. Also times
`ngis demo-data` itself. Medians of --repeat runs, peak RSS.

    .venv/bin/python -m bench.ingest [--size small|city] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import pyogrio

from gis.demo import generate_region
from gis.etl.ingest import ingest, load_manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="city", choices=["small", "city"])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        t = time.perf_counter()
        manifest = generate_region(src, seed=11, size=args.size)
        gen = time.perf_counter() - t
        specs = [s for s in load_manifest(src / "manifest.json") if s.kind != "dem"]
        n = sum(pyogrio.read_info(s.path)["features"] for s in specs)
        ours, peer = [], []
        for i in range(args.repeat):
            t = time.perf_counter()
            ingest(str(Path(tmp) / f"ours{i}.gpkg"), specs)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            for s in specs:
                frame = pyogrio.read_dataframe(s.path)
                pyogrio.write_dataframe(frame, Path(tmp) / f"peer{i}.gpkg", layer=s.layer)
            peer.append(time.perf_counter() - t)
    o, p = statistics.median(ours), statistics.median(peer)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"region {args.size}: {manifest['sources'][0]['count']} buildings, {n} vector records; "
          f"demo-data took {gen:.1f} s")
    print(f"ngis ingest (checked, atomic, catalogued): {o:.2f} s median ({n / o:,.0f} records/s)")
    print(f"plain pyogrio read+write (peer):           {p:.2f} s median ({n / p:,.0f} records/s)")
    print(f"ratio: ngis takes {o / p:.2f}x the peer's time; peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
