"""Metering: what each key used, per resource and UTC day.

Counted per ``(day, key_id, user_class, resource)``: requests, features returned, bytes sent,
tiles and process runs. The caller counts successful responses only.

Storage and cost: ``record`` only adds to a per-process dictionary (about a microsecond); the
dictionary is flushed to the table ``usage_daily`` of the access database (SQLite in WAL mode, or
PostgreSQL; see :mod:`gis.server.access.db`) in one short write transaction of UPSERTs that *add*
to the stored counts: every ``flush_ms`` milliseconds by a daemon thread of each process
(``background=False``: by the first ``record`` after the interval instead), on
``flush()``/``close()``, and at process exit (``atexit``, and the ``multiprocessing`` finalizers
that uvicorn's worker processes run instead). Several processes (uvicorn workers) flush into the
same database, and because every flush adds its deltas inside a write transaction, the totals are
exact once each process has flushed: at most ``flush_ms`` after the last request, and at once after
``flush()``. A process killed with SIGKILL loses at most its last ``flush_ms`` of counts; a flush
that fails (database locked beyond the busy timeout) keeps its counts for the next one.

The database and audit locations come from the server config (``access_paths``).
"""

from __future__ import annotations

import logging
import multiprocessing.util as mp_util
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gis.server.access.db import AccessDb, is_url

__all__ = ["Meter", "access_paths", "ratelimit_path", "read_usage", "COUNTERS", "DEFAULT_DB_NAME",
           "DEFAULT_AUDIT_DIR"]

#: Counter columns, in order.
COUNTERS = ("requests", "features", "bytes", "tiles", "processes")
#: File name of the access database under ``ngis.cache`` when ``ngis.access.db`` is not set.
DEFAULT_DB_NAME = "access.db"
#: Folder of the audit log under ``ngis.cache`` when ``ngis.access.audit`` is not set.
DEFAULT_AUDIT_DIR = "audit"
#: Cache folder when the config has no ``ngis.cache`` (as ``build_config`` does for PostGIS).
DEFAULT_CACHE = Path("build") / "server-cache"

log = logging.getLogger(__name__)

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage_daily (
    day TEXT NOT NULL,            -- UTC date, YYYY-MM-DD
    key_id TEXT NOT NULL,
    user_class TEXT NOT NULL,
    resource TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    features INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    tiles INTEGER NOT NULL DEFAULT 0,
    processes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, key_id, user_class, resource)
) WITHOUT ROWID
"""

_UPSERT = """
INSERT INTO usage_daily (day, key_id, user_class, resource, requests, features, bytes, tiles,
                         processes)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (day, key_id, user_class, resource) DO UPDATE SET
    requests = usage_daily.requests + excluded.requests,
    features = usage_daily.features + excluded.features,
    bytes = usage_daily.bytes + excluded.bytes,
    tiles = usage_daily.tiles + excluded.tiles,
    processes = usage_daily.processes + excluded.processes
"""


def access_paths(config: Mapping[str, Any]) -> tuple[Path | str, Path]:
    """``(db_path, audit_dir)`` of a server config (as read by ``load_config``).

    ``ngis.access.db`` and ``ngis.access.audit`` when set (strings); otherwise
    ``<ngis.cache>/access.db`` and ``<ngis.cache>/audit/``. A ``postgresql://`` URL for ``db``
    is returned as the string it is. ``ngis.access`` also holds the grades
    of the 3D tilesets (name -> mapping), so only string values of ``db``/``audit`` count. Relative
    paths resolve against the working directory, like every path of the config.
    """
    ngis = config.get("ngis") or {}
    access = ngis.get("access") or {}
    cache = Path(ngis.get("cache") or DEFAULT_CACHE)
    db = access.get("db")
    audit = access.get("audit")
    if isinstance(db, str) and is_url(db):
        return db, Path(audit) if isinstance(audit, str) and audit else cache / DEFAULT_AUDIT_DIR
    return (Path(db) if isinstance(db, str) and db else cache / DEFAULT_DB_NAME,
            Path(audit) if isinstance(audit, str) and audit else cache / DEFAULT_AUDIT_DIR)


def ratelimit_path(config: Mapping[str, Any]) -> Path:
    """The SQLite file of the rate limiter's buckets: the access database itself when that is
    SQLite, else ``<ngis.cache>/ratelimit.db`` (buckets are per-request state shared by the
    workers of one machine; a PostgreSQL round trip per request would cost more than it buys)."""
    db, _ = access_paths(config)
    if isinstance(db, Path):
        return db
    cache = Path((config.get("ngis") or {}).get("cache") or DEFAULT_CACHE)
    return cache / "ratelimit.db"


def _check_month(month: str) -> str:
    if not isinstance(month, str) or not _MONTH.match(month):
        raise ValueError(f"month must be YYYY-MM, not {month!r}")
    return month


def _query_usage(conn, month: str, by_day: bool) -> list[dict[str, Any]]:
    group = "key_id, user_class, resource" + (", day" if by_day else "")
    sums = ", ".join(f"SUM({c}) AS {c}" for c in COUNTERS)
    sql = (f"SELECT {group}, {sums} FROM usage_daily WHERE day >= ? AND day < ? "
           f"GROUP BY {group} ORDER BY {group}")
    cur = conn.execute(sql, (f"{month}-01", f"{month}-99"))  # sqlite3 or AccessDb
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def read_usage(db_path: str | os.PathLike, month: str, *,
               by_day: bool = False) -> list[dict[str, Any]]:
    """``Meter.usage`` for readers (reports): opens ``db_path`` read-only, creates nothing.

    Raises:
        FileNotFoundError: No database at ``db_path``.
    """
    _check_month(month)
    if is_url(db_path):
        db = AccessDb(db_path)
        try:
            return _pg_rows(_query_usage(db, month, by_day)) if db.has_table("usage_daily") \
                else []
        finally:
            db.close()
    path = Path(db_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metering database (has the server run with the "
                                "access layer?)")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                 "name = 'usage_daily'").fetchone()
        return _query_usage(conn, month, by_day) if has_table else []
    finally:
        conn.close()


def _pg_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PostgreSQL's SUM of integers is numeric (Decimal): back to int like SQLite's."""
    return [{k: int(v) if k in COUNTERS else v for k, v in row.items()} for row in rows]


class _Sink:
    """The state a Meter writes from: pending counts and the connection. Kept apart from the
    Meter so that exit hooks and the flushing thread can hold it without keeping the Meter
    alive (a Meter that is garbage-collected still writes its counts)."""

    def __init__(self, db_path: Path | str, busy_timeout_ms: int):
        self.db_path = db_path
        self.db = AccessDb(db_path, _SCHEMA, busy_timeout_ms=busy_timeout_ms)
        self.lock = threading.Lock()          # guards pending
        self.db_lock = threading.Lock()       # guards the connection
        self.pending: dict[tuple[str, str, str, str], list[int]] = {}
        self.pid = os.getpid()
        self.stop = threading.Event()         # stops the flushing thread
        self.thread_pid = -1
        self.db.connection()                  # fail early on a bad database

    def connection(self) -> AccessDb:
        if self.pid != os.getpid():
            # Created before a fork: the parent's unflushed counts are the parent's to write.
            with self.lock:
                self.pending.clear()
            self.pid = os.getpid()
        return self.db

    def flush(self) -> None:
        db = self.connection()
        with self.lock:
            pending, self.pending = self.pending, {}
        if not pending:
            return
        # Sorted: concurrent flushes lock rows in one order (PostgreSQL would otherwise find
        # deadlocks between workers writing the same keys).
        rows = sorted((*k, *c) for k, c in pending.items())
        try:
            with self.db_lock, db.transaction():
                db.executemany(_UPSERT, rows)
        except BaseException:
            with self.lock:   # keep them for the next flush
                for k, c in pending.items():
                    cur = self.pending.setdefault(k, [0] * len(COUNTERS))
                    for i, v in enumerate(c):
                        cur[i] += v
            raise

    def flush_quietly(self) -> None:
        try:
            self.flush()
        except Exception as err:
            log.warning("usage meter: flush to %s failed (%s); counts kept", self.db_path, err)

    def start_flusher(self, interval: float) -> None:
        """A daemon thread of this process writing the counts every ``interval`` seconds."""
        self.thread_pid = os.getpid()
        self.stop = stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval):
                self.flush_quietly()

        threading.Thread(target=run, name="ngis-meter-flush", daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.flush_quietly()
        with self.db_lock:
            if self.pid == os.getpid():
                self.db.close()


class Meter:
    """Usage counters per key, resource and day, shared by all processes using ``db_path``.

    Args:
        db_path: The access database: SQLite path or PostgreSQL URL (the table
            ``usage_daily`` is created if missing).
        flush_ms: Longest time counts stay in this process (0: written on every call).
        background: Flush from a daemon thread (else from the first ``record`` after
            ``flush_ms``, which leaves an idle process's counts unwritten until it records).
        clock: Monotonic seconds for the flush interval without ``background`` (for tests).
        busy_timeout_ms: How long a flush waits for another process's write lock.

    Thread-safe; may be created before a fork (the child starts with no pending counts and its
    own connection and thread).
    """

    def __init__(self, db_path: str | os.PathLike, *, flush_ms: float = 1000,
                 background: bool = True, clock: Callable[[], float] = time.monotonic,
                 busy_timeout_ms: int = 10000):
        self.db_path = db_path if is_url(db_path) else Path(db_path)
        self.flush_s = flush_ms / 1000
        self.background = background and flush_ms > 0
        self.clock = clock
        self._last_flush = clock()
        self._sink = sink = _Sink(self.db_path, busy_timeout_ms)
        # Counts are written when the Meter is collected, at interpreter exit (weakref.finalize
        # runs at exit), and when a multiprocessing child (a uvicorn worker) ends: those leave
        # through os._exit, skipping atexit, but run multiprocessing's finalizers first.
        self._finalize = weakref.finalize(self, sink.close)
        self._mp_finalize = mp_util.Finalize(None, sink.flush_quietly, exitpriority=10)

    def record(self, key_id: str, user_class: str, resource: str, day: str, requests: int = 1,
               features: int = 0, bytes_: int = 0, tiles: int = 0, processes: int = 0) -> None:
        """Count one successful response (or several, with ``requests``).

        Args:
            key_id: The key's id (never the key); anonymous clients share one id.
            user_class: The key's user class (``government``, ``academic``, ``commercial``,
                ``public``): the charging schedule prices by it.
            resource: The metered resource name (a collection id, ``processes/<id>``,
                ``3dtiles/<name>``; see ``charging.resource_charge_classes``).
            day: UTC date, ``YYYY-MM-DD``.
            requests, features, bytes_, tiles, processes: Amounts to add.
        """
        sink = self._sink
        k = (day, key_id, user_class, resource)
        with sink.lock:
            c = sink.pending.get(k)
            if c is None:
                sink.pending[k] = [requests, features, bytes_, tiles, processes]
            else:
                c[0] += requests
                c[1] += features
                c[2] += bytes_
                c[3] += tiles
                c[4] += processes
        if self.background:
            if sink.thread_pid != os.getpid():
                sink.start_flusher(self.flush_s)
        elif self.clock() - self._last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        """Write this process's pending counts (added to the stored ones) and clear them.

        Raises:
            sqlite3.Error, psycopg2.Error: The database stayed locked or failed; the counts are
                kept.
        """
        self._last_flush = self.clock()
        self._sink.flush()

    def usage(self, month: str, *, by_day: bool = False) -> list[dict[str, Any]]:
        """Stored usage of one month (this process's pending counts are flushed first).

        Args:
            month: ``YYYY-MM``.
            by_day: One row per day too (adds ``day``), instead of the month's sums.

        Returns:
            Dicts with ``key_id``, ``user_class``, ``resource`` (and ``day``) and the counters
            ``requests``, ``features``, ``bytes``, ``tiles``, ``processes``, sorted by key id,
            user class, resource (and day).
        """
        _check_month(month)
        self.flush()
        with self._sink.db_lock:
            rows = _query_usage(self._sink.connection(), month, by_day)
        return _pg_rows(rows) if self._sink.db.kind == "postgresql" else rows

    def close(self) -> None:
        """Flush, stop the flushing thread and close the connection."""
        self._mp_finalize.cancel()
        self._finalize()

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
