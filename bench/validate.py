"""Benchmark: checking building records against the standard.

Ours (standards.records, a column at a time) against the peer, jsonschema's Draft 2020-12
validator record by record, on the same generated buildings, in the same process. Prints medians,
the ratio, and peak memory.

    .venv/bin/python -m bench.validate [--size small|city] [--repeat 3]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time

import jsonschema
import numpy as np
import pyogrio

import standards
from gis.demo import generate_region
from standards.records import check_records


def _records(frame):
    out = []
    for row in frame.to_dict("records"):
        rec = {}
        for k, v in row.items():
            if v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            rec[k] = v.item() if isinstance(v, np.generic) else v
        out.append(rec)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="city", choices=["small", "city"])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate_region(tmp, seed=7, size=args.size)
        frame = pyogrio.read_dataframe(f"{tmp}/buildings.gpkg").drop(columns="geometry")
    std = standards.load("building")
    validator = jsonschema.Draft202012Validator(std.schema)
    records = _records(frame)

    ours, peer = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        issues = check_records(std, frame)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        bad = sum(1 for r in records if not validator.is_valid(r))
        peer.append(time.perf_counter() - t)
    assert len(issues) == bad == 0, (len(issues), bad)
    o, p = statistics.median(ours), statistics.median(peer)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"buildings: {len(frame)}")
    print(f"ngis check_records: {o:.3f} s median ({len(frame) / o:,.0f} records/s)")
    print(f"jsonschema (peer):  {p:.3f} s median ({len(frame) / p:,.0f} records/s)")
    print(f"ratio: ngis is {p / o:.1f}x the peer's speed; peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
