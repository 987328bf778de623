"""Metering: exact totals per key, resource and day, across processes, after flush."""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from collections import Counter

import pytest

from gis.server.access.metering import Meter, access_paths, read_usage


class Clock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_counts_aggregate_per_key_resource_and_month(access_target, tmp_path):
    db = access_target
    with Meter(db) as m:
        m.record("k1", "commercial", "buildings", "2026-11-01", features=10, bytes_=1000)
        m.record("k1", "commercial", "buildings", "2026-11-30", features=5, bytes_=500, tiles=0)
        m.record("k1", "commercial", "roads", "2026-11-02", tiles=3, bytes_=7)
        m.record("k2", "public", "exposure", "2026-11-02", processes=1)
        m.record("k1", "commercial", "buildings", "2026-12-01", features=99)   # next month
        m.record("k1", "commercial", "buildings", "2026-10-31", features=99)   # last month
        rows = m.usage("2026-11")
        assert rows == [
            {"key_id": "k1", "user_class": "commercial", "resource": "buildings", "requests": 2,
             "features": 15, "bytes": 1500, "tiles": 0, "processes": 0},
            {"key_id": "k1", "user_class": "commercial", "resource": "roads", "requests": 1,
             "features": 0, "bytes": 7, "tiles": 3, "processes": 0},
            {"key_id": "k2", "user_class": "public", "resource": "exposure", "requests": 1,
             "features": 0, "bytes": 0, "tiles": 0, "processes": 1},
        ]
        days = m.usage("2026-11", by_day=True)
        assert [(r["resource"], r["day"], r["requests"]) for r in days] == [
            ("buildings", "2026-11-01", 1), ("buildings", "2026-11-30", 1),
            ("roads", "2026-11-02", 1), ("exposure", "2026-11-02", 1)]
    assert read_usage(db, "2026-11") == rows
    with pytest.raises(ValueError):
        read_usage(db, "2026-13")
    with pytest.raises(FileNotFoundError):
        read_usage(tmp_path / "nope.db", "2026-11")


def test_reading_an_empty_postgresql_database_creates_nothing(postgis_url):
    import psycopg2

    assert read_usage(f"{postgis_url}?schema=ngis_never_created", "2026-11") == []
    with psycopg2.connect(postgis_url) as con, con.cursor() as cur:
        cur.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s",
                    ("ngis_never_created",))
        assert cur.fetchone()[0] == 0


def test_buffered_until_interval_or_flush(tmp_path):
    db, clock = tmp_path / "access.db", Clock()
    m = Meter(db, flush_ms=1000, background=False, clock=clock)
    m.record("k", "public", "roads", "2026-11-05")
    assert read_usage(db, "2026-11") == []          # still in this process
    clock.t += 0.999
    m.record("k", "public", "roads", "2026-11-05")
    assert read_usage(db, "2026-11") == []
    clock.t += 0.001
    m.record("k", "public", "roads", "2026-11-05")  # interval reached: written
    assert read_usage(db, "2026-11")[0]["requests"] == 3
    m.record("k", "public", "roads", "2026-11-05")
    m.flush()
    assert read_usage(db, "2026-11")[0]["requests"] == 4
    m.close()


def test_background_thread_flushes_an_idle_process(tmp_path):
    db = tmp_path / "access.db"
    m = Meter(db, flush_ms=50)
    m.record("k", "public", "roads", "2026-11-05", features=3)
    deadline = time.monotonic() + 10
    while not read_usage(db, "2026-11") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert read_usage(db, "2026-11")[0]["features"] == 3
    m.close()


def test_access_paths_defaults_and_overrides():
    cfg = {"ngis": {"cache": "build/demo/cache", "access": {
        "buildings": {"access_grade": "public", "charge_class": "free"}}}}
    db, audit = access_paths(cfg)
    assert str(db) == "build/demo/cache/access.db" and str(audit) == "build/demo/cache/audit"
    cfg["ngis"]["access"].update(db="/var/ngis/access.db", audit="/var/log/ngis/audit")
    assert tuple(map(str, access_paths(cfg))) == ("/var/ngis/access.db", "/var/log/ngis/audit")
    assert str(access_paths({})[0]) == "build/server-cache/access.db"


def _events(seed: int, n: int):
    rng = random.Random(seed)
    keys = [("k1", "commercial"), ("k2", "academic"), ("k3", "public")]
    resources = ["buildings", "roads", "pipelines", "3dtiles/buildings"]
    days = ["2026-11-01", "2026-11-15", "2026-11-30"]
    for _ in range(n):
        key, cls = rng.choice(keys)
        yield (key, cls, rng.choice(resources), rng.choice(days), rng.randint(0, 500),
               rng.randint(0, 100_000), rng.randint(0, 3), rng.randint(0, 1))


def _record(db, seed, n, flush_ms, start):
    m = Meter(db, flush_ms=flush_ms, background=flush_ms != 5)
    start.wait(60)
    for key, cls, res, day, features, nbytes, tiles, procs in _events(seed, n):
        m.record(key, cls, res, day, features=features, bytes_=nbytes, tiles=tiles,
                 processes=procs)
    if seed == 2:
        return          # no close(): collecting the Meter must flush
    if seed == 4:
        _KEEP.append(m)     # no close() and still referenced: the child's exit must flush
        return
    m.close()


_KEEP: list[Meter] = []


def test_totals_exact_across_processes(access_target):
    db = access_target
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    # PostgreSQL's write-through process makes one round trip per record: fewer events there.
    n, seeds = (20_000 if "://" not in db else 3_000), [1, 2, 3, 4]
    flushes = [0, 1, 5, 1000]           # write-through, and buffered at several intervals
    procs = [ctx.Process(target=_record, args=(str(db), s, n, f, start))
             for s, f in zip(seeds, flushes)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    start.set()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    expected: dict[tuple, Counter] = {}
    for s in seeds:
        for key, cls, res, day, features, nbytes, tiles, procs_ in _events(s, n):
            c = expected.setdefault((key, cls, res), Counter())
            c.update(requests=1, features=features, bytes=nbytes, tiles=tiles,
                     processes=procs_)
    got = {(r["key_id"], r["user_class"], r["resource"]):
           {k: r[k] for k in ("requests", "features", "bytes", "tiles", "processes")}
           for r in read_usage(db, "2026-11")}
    want = {k: {c: v[c] for c in ("requests", "features", "bytes", "tiles", "processes")}
            for k, v in expected.items()}
    assert got == want
    assert sum(r["requests"] for r in got.values()) == n * len(seeds)


def test_timing_record(tmp_path):
    n = 50_000
    with Meter(tmp_path / "buffered.db", flush_ms=1000) as m:
        t = time.perf_counter()
        for i in range(n):
            m.record(f"k{i % 20}", "public", f"r{i % 7}", "2026-11-05", features=10,
                     bytes_=1000)
        buffered = (time.perf_counter() - t) / n
    with Meter(tmp_path / "direct.db", flush_ms=0) as m:
        t = time.perf_counter()
        for i in range(n // 10):
            m.record(f"k{i % 20}", "public", f"r{i % 7}", "2026-11-05", features=10,
                     bytes_=1000)
        direct = (time.perf_counter() - t) / (n // 10)
    print(f"\nMeter.record: {buffered * 1e6:.2f} µs per call buffered (1 s flushes), "
          f"{direct * 1e6:.1f} µs write-through (one UPSERT transaction per call)")
