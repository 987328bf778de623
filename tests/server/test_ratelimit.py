"""Rate limiter: token-bucket semantics on an injected clock, and exactness across processes."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest

from gis.server.access.ratelimit import RateLimiter


class Clock:
    """A settable clock (seconds)."""

    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def db(tmp_path):
    return tmp_path / "access.db"


def test_burst_up_to_capacity_then_refused_with_retry_after(db):
    clock = Clock()
    rl = RateLimiter(db, clock=clock)
    assert [rl.allow("k", 120)[0] for _ in range(120)] == [True] * 120
    allowed, retry = rl.allow("k", 120)
    assert not allowed
    assert retry == pytest.approx(0.5)          # 2 tokens/s: one token in 0.5 s
    clock.t += 0.2
    allowed, retry = rl.allow("k", 120)
    assert not allowed and retry == pytest.approx(0.3)
    clock.t += 0.3
    assert rl.allow("k", 120) == (True, 0.0)
    assert not rl.allow("k", 120)[0]


def test_refill_over_time_and_capacity_cap(db):
    clock = Clock()
    rl = RateLimiter(db, clock=clock)
    for _ in range(60):
        assert rl.allow("k", 60)[0]
    assert not rl.allow("k", 60)[0]
    clock.t += 10                       # 1 token/s: 10 tokens back
    assert sum(rl.allow("k", 60)[0] for _ in range(50)) == 10
    clock.t += 3600                     # a long pause refills to capacity, not beyond
    assert sum(rl.allow("k", 60)[0] for _ in range(500)) == 60


def test_keys_are_independent_and_rate_per_key(db):
    clock = Clock()
    rl = RateLimiter(db, clock=clock)
    assert sum(rl.allow("a", 5)[0] for _ in range(20)) == 5
    assert sum(rl.allow("b", 10)[0] for _ in range(20)) == 10
    allowed, retry = rl.allow("a", 5)
    assert not allowed and retry == pytest.approx(12.0)   # 5/min: a token every 12 s


def test_clock_going_backwards_refills_nothing(db):
    clock = Clock()
    rl = RateLimiter(db, clock=clock)
    assert sum(rl.allow("k", 60)[0] for _ in range(100)) == 60
    clock.t -= 30                       # another process read the clock earlier
    assert not rl.allow("k", 60)[0]
    clock.t += 31                       # one second after the latest update
    assert sum(rl.allow("k", 60)[0] for _ in range(10)) == 1


def test_zero_rate_fails_closed(db):
    rl = RateLimiter(db)
    assert rl.allow("k", 0) == (False, 60.0)


def test_state_is_shared_between_instances(db):
    clock = Clock()
    a, b = RateLimiter(db, clock=clock), RateLimiter(db, clock=clock)
    assert sum(a.allow("k", 10)[0] for _ in range(6)) == 6
    assert sum(b.allow("k", 10)[0] for _ in range(6)) == 4
    a.close()
    b.close()


class StepClock:
    """Each call advances this process's clock by ``step`` seconds (picklable)."""

    def __init__(self, t0: float, step: float):
        self.t, self.step = t0 - step, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def _hammer(db, clock, calls, per_minute, queue, start):
    rl = RateLimiter(db, clock=clock)
    start.wait(60)      # all processes hammer at the same time
    allowed = sum(rl.allow("shared", per_minute)[0] for _ in range(calls))
    rl.close()
    queue.put(allowed)


def _run(db, clocks, calls, per_minute):
    ctx = mp.get_context("spawn")
    queue, start = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_hammer, args=(str(db), c, calls, per_minute, queue, start))
             for c in clocks]
    for p in procs:
        p.start()
    time.sleep(0.5)     # let them reach the start line (correctness does not depend on it)
    start.set()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def test_processes_share_one_bucket_exactly(db):
    # Frozen time: however the processes interleave, exactly the capacity gets through.
    results = _run(db, [Clock(5000.0)] * 4, 2000, 120)
    assert sum(results) == 120


def test_processes_total_is_capacity_plus_refill(db):
    # Each process's clock runs from t0 in steps of 1/32 s (its 4000 calls span 124.97 s), the
    # processes interleave arbitrarily; 1 token/s. A final drain at t0 + 125 s collects what is
    # left: everything allowed = capacity + refill over 125 s, exactly. (Binary fractions keep
    # the float arithmetic exact.)
    t0, per_minute = 10_000.0, 60
    results = _run(db, [StepClock(t0, 1 / 32) for _ in range(4)], 4000, per_minute)
    rl = RateLimiter(db, clock=Clock(t0 + 125))
    drained = 0
    while rl.allow("shared", per_minute)[0]:
        drained += 1
    assert sum(results) + drained == per_minute + 125


def test_timing_allow(db):
    rl = RateLimiter(db)
    n = 5000
    for i in range(200):
        rl.allow(f"k{i % 20}", 600)
    t = time.perf_counter()
    for i in range(n):
        rl.allow(f"k{i % 20}", 600)
    per_call = (time.perf_counter() - t) / n
    print(f"\nRateLimiter.allow: {per_call * 1e6:.1f} µs per call (SQLite WAL, {n} calls)")
