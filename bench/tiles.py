"""Benchmark: buildings into 3D Tiles, end to end (store -> finished tileset), against the peer:
the same tiles (same tree, same LOD1 meshes) encoded through py3dtiles' own b3dm writer.

Prints buildings/s for LOD1 and LOD2 (roof types), bytes per building raw and gzipped, the
encode-time ratio against py3dtiles, and peak memory (this process and the dask workers).

    .venv/bin/python -m bench.tiles [--scale 0.3] [--workers 2] [--repeat 1]

``--scale`` sizes the generated national region (0.3 ~ 100k buildings, 1.0 ~ 1.16M).
"""

from __future__ import annotations

import argparse
import gzip
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from gis.demo import generate_region
from gis.etl.ingest import ingest, load_manifest
from gis.etl.tiles_job import FeatureContent, TilesOptions, build_mesh, build_tiles, prepare
from gis.store import open_store
from tiles.tiling import build_tileset


def _sizes(out: Path) -> tuple[int, int]:
    raw = packed = 0
    for f in (out / "content").rglob("*.*"):
        data = f.read_bytes()
        raw += len(data)
        packed += len(gzip.compress(data, 6))
    return raw, packed


def _ours(store, out, lod, workers, repeat, compress="none"):
    times = []
    for i in range(repeat):
        target = out / f"lod{lod}-{compress}-{i}"
        t = time.perf_counter()
        st = open_store(str(store))
        frame, dem = st.read("buildings"), st.read_raster("dem")
        summary = build_tiles(frame, "building", target, dem=dem,
                              options=TilesOptions(lod=lod, workers=workers, compress=compress))
        times.append(time.perf_counter() - t)
    return statistics.median(times), summary, target


def _peer(store, lod1_dir):
    """Same tree and meshes, encoded with py3dtiles.B3dm.from_numpy_arrays + batch table."""
    from py3dtiles.tileset.content import B3dm
    from py3dtiles.tileset.content.batch_table import BatchTable

    st = open_store(str(store))
    frame, dem = st.read("buildings"), st.read_raster("dem")
    frame, bounds, dem = prepare(frame, "building", dem, [])
    centroids = np.c_[(bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2]
    tree = build_tileset(centroids, bounds, "EPSG:3826", max_features_per_tile=1000)
    content = FeatureContent(frame, "building", "building", TilesOptions(), "buildings",
                             "EPSG:3826", dem, None)
    mesh_s = enc_s = 0.0
    size = 0
    columns = [c for c in frame.columns if not c.startswith("_") and c != "geometry"]
    for tile in tree.root.walk():
        if not tile.has_content:
            continue
        t = time.perf_counter()
        mesh, _ = build_mesh(content.tile_input(tile.features))
        mesh_s += time.perf_counter() - t
        t = time.perf_counter()
        centre = mesh.positions.mean(axis=0)
        pos = (mesh.positions - centre).astype(np.float32)
        bt = BatchTable()
        sub = frame.iloc[tile.features]
        for c in columns:
            bt.add_property_as_json(c, [None if v != v else v for v in sub[c].tolist()])
        b3dm = B3dm.from_numpy_arrays(pos, mesh.indices.astype(np.uint32), batch_table=bt,
                                      batchids=mesh.feature_ids.astype(np.uint32))
        size += len(b3dm.to_array().tobytes())
        enc_s += time.perf_counter() - t
    return mesh_s, enc_s, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = generate_region(tmp / "src", seed=5, size="national", scale=args.scale)
        store = tmp / "basemap.gpkg"
        specs = [s for s in load_manifest(tmp / "src" / "manifest.json")
                 if s.layer in ("buildings", "dem")]
        ingest(str(store), specs)
        n = next(s["count"] for s in manifest["sources"] if s["layer"] == "buildings")
        print(f"buildings: {n:,} (national region at scale {args.scale}), "
              f"{args.workers} worker(s)")
        results = {}
        for lod, compress in ((1, "none"), (1, "meshopt"), (2, "none"), (2, "meshopt")):
            secs, summary, out = _ours(store, tmp, lod, args.workers, args.repeat, compress)
            raw, packed = _sizes(out)
            results[lod, compress] = secs
            print(f"ngis LOD{lod} compress={compress}: {secs:.1f} s end to end, "
                  f"{n / secs:,.0f} buildings/s, {summary.tiles} tiles, {raw / n:.0f} B/building "
                  f"as written, {packed / n:.0f} B gzipped")
        mesh_s, enc_s, size = _peer(store, tmp / "lod1-0")
        print(f"py3dtiles b3dm (peer): meshes {mesh_s:.1f} s + encode {enc_s:.1f} s "
              f"(one process), {size / n:.0f} B/building raw")
        ours = results[1, "none"]
        print(f"ratio: ngis LOD1 end to end ({ours:.1f} s, store to tileset) vs our meshes + "
              f"py3dtiles b3dm encoding only ({mesh_s + enc_s:.1f} s, no store read, no "
              f"tileset): {(mesh_s + enc_s) / ours:.2f}x")
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: {self_mb:.0f} MB (driver), {child_mb:.0f} MB (largest worker)")


if __name__ == "__main__":
    main()
