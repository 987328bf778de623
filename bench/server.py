"""Benchmark: the OGC API server against stock pygeoapi, on the same GeoPackage, same machine.

    .venv/bin/python -m bench.server [--buildings 100000] [--duration 20] [--long 60]

Both servers run pygeoapi's Starlette app under uvicorn with the same number of worker
processes; ours with :class:`gis.server.providers.features.StoreFeatureProvider`, the peer with
pygeoapi's own ``SQLiteGPKG`` provider (stock pygeoapi, untouched; it needs SQLite with extension
loading and mod_spatialite, which this Python's sqlite3 lacks, so the peer process runs with
``pysqlite3`` standing in for ``sqlite3`` — see bench/_stock_server.py).

The load: ``wrk`` (Debian) with a Lua script cycling through the same 1,000 random bbox queries
(100-item pages, boxes centred on random buildings, sized to hold >= 100 of them) at concurrency
1, 4 and 16; then ``--long`` seconds at concurrency 16 for errors; then warm vector tiles
(WebMercatorQuad z15-16 over the town, fetched once before timing). Prints requests/s, p50/p99
latency, non-2xx + socket errors, the ratio ours/stock, and the servers' peak RSS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("NGIS_BENCH_CACHE", "/tmp/ngis-bench/server"))
PY = sys.executable
# generate_region(size="national", scale=s) makes about 360k * s buildings near s = 0.28.
BUILDINGS_PER_SCALE = 360_000


def make_store(n_buildings: int) -> Path:
    """A generated region of about ``n_buildings`` buildings, ingested once and cached."""
    from gis.demo import generate_region
    from gis.etl.ingest import ingest, load_manifest

    scale = round(n_buildings / BUILDINGS_PER_SCALE, 4)
    d = CACHE / f"national-{scale}"
    store = d / "basemap.gpkg"
    if not store.is_file():
        shutil.rmtree(d, ignore_errors=True)
        print(f"generating a region at scale {scale} (cached in {d}) ...", flush=True)
        generate_region(d / "source", seed=7, size="national", scale=scale)
        ingest(str(store), load_manifest(d / "source" / "manifest.json"))
    return store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/conformance?f=json", timeout=5):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"server did not start:\n{log.read_text()[-3000:]}")


def start_ours(store: Path, work: Path, workers: int, access: str = "anonymous",
               name: str = "ours") -> tuple[str, subprocess.Popen, str | None]:
    """Our server; returns (URL, process, API key or None).

    ``access``: ``anonymous`` (graded access on, requests without a key, no rate limit),
    ``key`` (graded access on, a public key with no practical rate limit: the request pays for
    key verification, rate limiting, metering and the audit log) or ``off``
    (``ngis.access.enabled: false``: no access layer at all).
    """
    from gis.server.access.keys import KeyStore
    from gis.server.config import build_config, write_config

    config = build_config(str(store), cache_dir=work / f"cache-{name}")
    settings = config["ngis"]["access"]
    settings.update(db=str(work / f"{name}-access.sqlite"), audit=str(work / f"{name}-audit"),
                    anonymous_rate=100_000_000)
    key = None
    if access == "off":
        settings["enabled"] = False
    elif access == "key":
        key, _ = KeyStore(settings["db"]).create("bench", "public", "public", rate=100_000_000)
    write_config(config, work / f"{name}.yml")
    port = free_port()
    log = work / f"{name}.log"
    proc = subprocess.Popen([PY, "-m", "gis", "serve", "--config", str(work / f"{name}.yml"),
                             "--port", str(port), "--workers", str(workers)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_up(url, proc, log)
    return url, proc, key


def start_stock(store: Path, work: Path, workers: int) -> tuple[str, subprocess.Popen]:
    """Stock pygeoapi: the same config, the buildings collection on the SQLiteGPKG provider."""
    from gis.server.config import build_config, write_config

    config = build_config(str(store), cache_dir=work / "cache-stock")
    buildings = config["resources"]["buildings"]
    ours = buildings["providers"][0]
    buildings["providers"] = [{"type": "feature", "name": "SQLiteGPKG", "data": str(store),
                               "id_field": "fid", "table": "buildings",
                               "storage_crs": ours["storage_crs"], "crs": ours["crs"]}]
    config["resources"] = {"buildings": buildings}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cfg = write_config(config, work / "stock.yml")
    env = {**os.environ, "PYGEOAPI_CONFIG": str(cfg), "NGIS_SERVER_URL": url,
           "PYGEOAPI_OPENAPI": str(work / "stock-openapi.json")}
    # The OpenAPI document is written by the stock process too (it needs pysqlite3).
    log = work / "stock.log"
    proc = subprocess.Popen([PY, "-m", "bench._stock_server", str(port), str(workers)],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_up(url, proc, log)
    return url, proc


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def peak_rss_mb(proc: subprocess.Popen) -> float:
    """Sum of VmHWM over the server's process group (master and workers)."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            pid = int(status.parent.name)
            if os.getpgid(pid) != proc.pid:
                continue
        except (OSError, ProcessLookupError):
            continue
        m = re.search(r"VmHWM:\s+(\d+) kB", text)
        total += int(m.group(1)) if m else 0
    return total / 1024


def bbox_paths(store: Path, n: int = 1000, per_page: int = 100, seed: int = 1) -> list[str]:
    """Item queries with bboxes (CRS84) centred on random buildings, each holding >= per_page."""
    import pyogrio
    import shapely
    from pyproj import Transformer

    frame = pyogrio.read_dataframe(store, layer="buildings", columns=[])
    centres = shapely.get_coordinates(shapely.centroid(frame.geometry.values))
    rng = random.Random(seed)
    tr = Transformer.from_crs(frame.crs, "OGC:CRS84", always_xy=True)
    x0, y0, x1, y1 = frame.total_bounds
    density = len(frame) / ((x1 - x0) * (y1 - y0))
    half = math.sqrt(per_page * 4 / density) / 2  # 4x the mean need: towns are patchy
    tree = shapely.STRtree(shapely.points(centres))
    paths = []
    while len(paths) < n:
        cx, cy = centres[rng.randrange(len(centres))]
        inner = shapely.box(cx - half * 0.9, cy - half * 0.9, cx + half * 0.9, cy + half * 0.9)
        if len(tree.query(inner)) < per_page:
            continue
        lon0, lat0 = tr.transform(cx - half, cy - half)
        lon1, lat1 = tr.transform(cx + half, cy + half)
        paths.append(f"/collections/buildings/items?f=json&limit={per_page}"
                     f"&bbox={lon0:.6f},{lat0:.6f},{lon1:.6f},{lat1:.6f}")
    return paths


def tile_paths(store: Path, zooms=(15, 16), limit: int = 400) -> list[str]:
    import pyogrio
    from pyproj import Transformer

    info = pyogrio.read_info(store, layer="buildings")
    tr = Transformer.from_crs(info["crs"], "OGC:CRS84", always_xy=True)
    x0, y0, x1, y1 = info["total_bounds"]
    (lon0, lon1), (lat0, lat1) = tr.transform([x0, x1], [y0, y1])
    # Use the middle of the region, where the town is.
    cx, cy = (lon0 + lon1) / 2, (lat0 + lat1) / 2
    paths = []
    for z in zooms:
        n = 2 ** z
        tx = int((cx + 180) / 360 * n)
        ty = int((1 - math.asinh(math.tan(math.radians(cy))) / math.pi) / 2 * n)
        r = int(math.sqrt(limit / len(zooms)) / 2)
        for y in range(ty - r, ty + r):
            for x in range(tx - r, tx + r):
                paths.append(f"/collections/buildings/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt")
    return paths


LUA = """
local paths = {%s}
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def wrk(url: str, paths: list[str], connections: int, seconds: int, work: Path,
        headers: dict[str, str] | None = None) -> dict:
    script = work / f"paths-{abs(hash(tuple(paths)))}.lua"
    script.write_text(LUA % ",".join(json.dumps(p) for p in paths))
    extra = [a for k, v in (headers or {}).items() for a in ("-H", f"{k}: {v}")]
    out = subprocess.run(["wrk", "-t", str(min(connections, 2)), "-c", str(connections),
                          "-d", f"{seconds}s", "--latency", "--timeout", "30s", "-s", str(script),
                          *extra, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def ms(label):
        m = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)\b", out)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "p50": ms("50"), "p99": ms("99"), "errors": errors, "requests": total}


def check_same_answers(ours: str, stock: str, paths: list[str]) -> None:
    """Both servers answer the sample queries alike. Not identically: stock pygeoapi converts the
    CRS84 box by its two corners, ours tests the exact box, so edge buildings may differ."""
    for p in paths[:10]:
        a = json.load(urllib.request.urlopen(ours + p, timeout=120))
        b = json.load(urllib.request.urlopen(stock + p, timeout=120))
        na, nb = a.get("numberMatched"), b.get("numberMatched")
        if nb is not None and abs(na - nb) > max(2, 0.01 * nb):
            raise SystemExit(f"servers disagree on {p}: numberMatched {na} vs {nb}")
        if len(a["features"]) != len(b["features"]):
            raise SystemExit(f"servers disagree on {p}: {len(a['features'])} vs "
                             f"{len(b['features'])} features")


def access_overhead(store: Path, work: Path, workers: int, paths: list[str],
                    seconds: int, rounds: int = 3) -> float:
    """Requests/s at concurrency 4 with the access layer on (a public key: verification, rate
    limit, metering, audit) and off, two servers up at once, loaded in turn for ``rounds``
    alternations; prints both medians and returns the overhead (1 - on/off)."""
    off_url, off, _ = start_ours(store, work, workers, access="off", name="access-off")
    try:
        on_url, on, key = start_ours(store, work, workers, access="key", name="access-on")
        try:
            headers = {"X-API-Key": key}
            for p in paths[:50]:  # warm both alike
                urllib.request.urlopen(off_url + p, timeout=120).read()
                req = urllib.request.Request(on_url + p, headers=headers)
                urllib.request.urlopen(req, timeout=120).read()
            runs = {"off": [], "on": []}
            each = max(3, seconds // 2)
            for _ in range(rounds):
                runs["off"].append(wrk(off_url, paths, 4, each, work))
                runs["on"].append(wrk(on_url, paths, 4, each, work, headers))
        finally:
            stop(on)
    finally:
        stop(off)
    med = {k: sorted(r["rps"] for r in v)[len(v) // 2] for k, v in runs.items()}
    errors = {k: sum(r["errors"] for r in v) for k, v in runs.items()}
    overhead = 1 - med["on"] / med["off"]
    print(f"access layer off: {med['off']:.1f} req/s, on (public key): {med['on']:.1f} req/s "
          f"(medians of {rounds} x {each} s at concurrency 4; errors off {errors['off']}, "
          f"on {errors['on']}); overhead {overhead:+.1%}, on/off = {med['on'] / med['off']:.3f}",
          flush=True)
    return overhead


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--buildings", type=int, default=100_000)
    ap.add_argument("--duration", type=int, default=20, help="seconds per load level")
    ap.add_argument("--long", type=int, default=60, help="seconds at concurrency 16 (ours)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-stock", action="store_true", help="skip the peer")
    ap.add_argument("--access-only", action="store_true",
                    help="only the access-layer overhead (access on with a key vs off)")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (apt-get install wrk)")

    store = make_store(args.buildings)
    import pyogrio

    n = pyogrio.read_info(store, layer="buildings")["features"]
    work = Path(tempfile.mkdtemp(prefix="ngis-bench-server-"))
    paths = bbox_paths(store)
    print(f"{n:,} buildings in {store}; {len(paths)} bbox queries of 100 items; "
          f"{args.workers} worker processes each; {os.cpu_count()} cores", flush=True)
    results: dict[str, dict] = {}
    rss: dict[str, float] = {}
    overhead = access_overhead(store, work, args.workers, paths, args.duration)
    if args.access_only:
        shutil.rmtree(work, ignore_errors=True)
        return
    ours_url, ours, _ = start_ours(store, work, args.workers)
    try:
        stock_url, stock = (None, None) if args.no_stock else start_stock(store, work, args.workers)
        try:
            if stock_url:
                check_same_answers(ours_url, stock_url, paths)
            for c in (1, 4, 16):
                results[f"ours c{c}"] = wrk(ours_url, paths, c, args.duration, work)
                print("ours ", c, results[f"ours c{c}"], flush=True)
                if stock_url:
                    results[f"stock c{c}"] = wrk(stock_url, paths, c, args.duration, work)
                    print("stock", c, results[f"stock c{c}"], flush=True)
            if stock:
                rss["stock"] = peak_rss_mb(stock)
        finally:
            if stock:
                stop(stock)
        if args.long:
            results["ours c16 long"] = wrk(ours_url, paths, 16, args.long, work)
        tiles = tile_paths(store)
        for p in tiles:  # warm the cache
            urllib.request.urlopen(ours_url + p, timeout=120).read()
        results["ours tiles warm c4"] = wrk(ours_url, tiles, 4, args.duration, work)
        results["ours tiles warm c16"] = wrk(ours_url, tiles, 16, args.duration, work)
        rss["ours"] = peak_rss_mb(ours)
    finally:
        stop(ours)

    print(f"\n{'run':24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'requests':>9}")
    for k, r in results.items():
        print(f"{k:24} {r['rps']:9.1f} {r['p50']:8.1f} {r['p99']:8.1f} {r['errors']:7d} "
              f"{r['requests']:9d}")
    if not args.no_stock:
        for c in (1, 4, 16):
            o, s = results[f"ours c{c}"], results[f"stock c{c}"]
            print(f"ratio ours/stock req/s at concurrency {c}: {o['rps'] / max(s['rps'], 1e-9):.1f}x")
    print("peak RSS (all processes of each server): " +
          ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()))
    print(f"access layer overhead at concurrency 4: {overhead:+.1%} of req/s (target <= 10%)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
