"""Per-key rate limits: a token bucket shared by every worker process of one server.

Each key owns a bucket of ``capacity = per_minute`` tokens that refills continuously at
``per_minute / 60`` tokens per second. A request takes one token; with less than one token left
it is refused with the time until the next token (the ``Retry-After`` of a 429).

Storage: one SQLite table in WAL mode (``synchronous=OFF``: losing the buckets on a power cut
only forgives some requests). Each call is a single ``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING`` statement inside ``BEGIN IMMEDIATE``, so the read-refill-take step is atomic across
processes (SQLite's write lock serialises them) and costs one short write transaction, about
20-30 µs here (see ``tests/server/test_ratelimit.py`` for the printed timing). No fsync happens
on the request path. The limiters of all processes first queue on an ``flock`` of
``<db>.ratelimit.lock``: the kernel hands it over as soon as it is released, where SQLite's own
busy handler would sleep 1, 2, 5, 10... ms between retries (measured: p99.9 of 8-30 ms with 2-4
busy processes without it).

Clocks: the bucket is driven by an injectable ``clock`` (wall-clock seconds, ``time.time`` by
default, shared by all processes of the machine). A clock reading older than the bucket's last
update (another process read the clock earlier but committed later) refills nothing and never
moves the bucket back in time, so the total allowed over any period is exactly
``capacity + refill`` whatever the interleaving.

Example:
    >>> limiter = RateLimiter(db_path)                       # doctest: +SKIP
    >>> allowed, retry_after = limiter.allow("k_42", 120)    # doctest: +SKIP
    >>> if not allowed: respond(429, headers={"Retry-After": str(math.ceil(retry_after))})
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["RateLimiter"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_buckets (
    key_id TEXT PRIMARY KEY,
    tokens REAL NOT NULL,     -- tokens left after the last call
    ts REAL NOT NULL,         -- clock of the last refill (never decreases)
    ok INTEGER NOT NULL       -- whether the last call was allowed
) WITHOUT ROWID
"""

# :now, :cap (tokens), :rate (tokens per second). The refilled level is
# min(cap, tokens + max(0, now - ts) * rate); every SET expression reads the old row, so it is
# repeated rather than stored.
_REFILLED = "min(:cap, tokens + max(0.0, :now - ts) * :rate)"
_UPSERT = f"""
INSERT INTO rate_buckets (key_id, tokens, ts, ok) VALUES (:key, :cap - 1.0, :now, 1)
ON CONFLICT (key_id) DO UPDATE SET
    tokens = CASE WHEN {_REFILLED} >= 1.0 THEN {_REFILLED} - 1.0 ELSE {_REFILLED} END,
    ok = {_REFILLED} >= 1.0,
    ts = max(ts, :now)
RETURNING tokens, ok
"""


class RateLimiter:
    """Token buckets per key, in SQLite, shared by all processes using the same ``db_path``.

    Args:
        db_path: SQLite database (created if missing; may be the access database shared with
            keys and metering: the table is ``rate_buckets``).
        clock: Seconds, the same origin in every process (``time.time``); injectable for tests.
        busy_timeout_ms: How long a call waits for another process's write lock.

    Safe to share between threads of one process (a lock serialises calls) and to create before
    a fork (the connection is reopened in the child).
    """

    def __init__(self, db_path: str | os.PathLike, *, clock: Callable[[], float] = time.time,
                 busy_timeout_ms: int = 5000):
        self.db_path = Path(db_path)
        self.clock = clock
        self.busy_timeout_ms = busy_timeout_ms
        self._lock = threading.Lock()
        self._pid = -1
        self._conn: sqlite3.Connection | None = None
        self._connect()

    def _connect(self) -> sqlite3.Connection:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False,
                               timeout=self.busy_timeout_ms / 1000)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        conn.execute(_SCHEMA)
        self._lock_fd = os.open(f"{self.db_path}.ratelimit.lock",
                                os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._conn, self._pid = conn, os.getpid()
        return conn

    def allow(self, key_id: str, per_minute: int) -> tuple[bool, float]:
        """Take one token from ``key_id``'s bucket.

        Args:
            key_id: The key's id (never the key itself); anonymous clients may share one id.
            per_minute: Capacity of the bucket and tokens refilled per minute (the grade's
                default or the key's own rate). Below 1, every request is refused (fail closed).

        Returns:
            ``(allowed, retry_after)``: ``retry_after`` is 0.0 when allowed, else the seconds
            until one whole token is back (a 429's ``Retry-After``, to be rounded up).
        """
        if per_minute < 1:
            return False, 60.0
        rate = per_minute / 60.0
        params = {"key": key_id, "cap": float(per_minute), "rate": rate, "now": self.clock()}
        with self._lock:
            conn = self._conn if self._pid == os.getpid() else self._connect()
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    tokens, ok = conn.execute(_UPSERT, params).fetchone()
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        if ok:
            return True, 0.0
        return False, round(max(0.0, (1.0 - tokens) / rate), 6)

    def reset(self, key_id: str | None = None) -> None:
        """Forget one key's bucket (or all): the next request starts with a full bucket."""
        with self._lock:
            conn = self._conn if self._pid == os.getpid() else self._connect()
            if key_id is None:
                conn.execute("DELETE FROM rate_buckets")
            else:
                conn.execute("DELETE FROM rate_buckets WHERE key_id = ?", (key_id,))

    def close(self) -> None:
        """Close the connection (the object must not be used afterwards)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
                os.close(self._lock_fd)
            self._conn = None
            self._pid = -1

    def __enter__(self) -> RateLimiter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
