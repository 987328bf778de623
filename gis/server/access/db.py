"""The access database: API keys and the usage meter, in SQLite (default) or PostgreSQL.

``ngis.access.db`` in the server config is either a file path (SQLite, WAL mode; one machine) or a
``postgresql://user:password@host:port/database?schema=NAME`` URL (the same URL form as the
PostGIS store), so that several server machines share one key table and one meter. The schema is
created on first use (``CREATE SCHEMA/TABLE IF NOT EXISTS`` under an advisory lock, so workers
starting together do not race).

:class:`AccessDb` hides the two dialects behind one small interface: statements are written with
``?`` placeholders (translated to ``%s`` for PostgreSQL), ``transaction()`` is a write transaction
(``BEGIN IMMEDIATE`` in SQLite), and :data:`INTEGRITY_ERRORS` catches a duplicate key in either.
Connections are per thread and per process (a worker forked from the parent opens its own).

The rate limiter stays on a local SQLite file even when this is PostgreSQL: its buckets are
per-request hot state, kept across the workers of one machine (see ``ratelimit``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg2
import psycopg2.errors

INTEGRITY_ERRORS = (sqlite3.IntegrityError, psycopg2.IntegrityError)
DB_ERRORS = (sqlite3.Error, psycopg2.Error)


def is_url(target: str | os.PathLike) -> bool:
    """Whether an access-database setting names PostgreSQL (else it is an SQLite path)."""
    return str(target).startswith(("postgresql://", "postgres://"))


def redact(target: str | os.PathLike) -> str:
    """The setting without its password (for messages and logs)."""
    text = str(target)
    if not is_url(text):
        return text
    parts = urlsplit(text)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return text


def _split_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", "public")
    return urlunsplit(parts._replace(query=urlencode(query))), schema


class AccessDb:
    """A connection per thread to the access database at ``target`` (path or URL).

    Args:
        target: SQLite file path or PostgreSQL URL (``?schema=NAME`` picks the schema).
        schema_sql: ``CREATE TABLE IF NOT EXISTS`` statements (``;``-separated), SQLite syntax;
            ``BLOB`` becomes ``BYTEA`` and ``WITHOUT ROWID`` is dropped for PostgreSQL.
        busy_timeout_ms: How long SQLite waits for another writer.
        wal: Put an SQLite database in WAL mode.
    """

    def __init__(self, target: str | os.PathLike, schema_sql: str = "", *,
                 busy_timeout_ms: int = 30000, wal: bool = True):
        self.target = str(target)
        self.kind = "postgresql" if is_url(self.target) else "sqlite"
        self.schema_sql = schema_sql
        self.busy_timeout_ms = busy_timeout_ms
        self.wal = wal
        self._local = threading.local()
        if self.kind == "postgresql":
            self.dsn, self.schema = _split_url(self.target)
        else:
            self.path = Path(self.target)

    def __repr__(self) -> str:
        return f"AccessDb({redact(self.target)!r})"

    # --- connections -------------------------------------------------------------------------

    def connection(self):
        """This thread's (and process's) connection, opened and prepared on first use."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            return conn
        conn = self._open_pg() if self.kind == "postgresql" else self._open_sqlite()
        local.conn, local.pid = conn, os.getpid()
        return conn

    def _open_sqlite(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000,
                               isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        if self.wal:
            with contextlib.suppress(sqlite3.OperationalError):  # another process switching it
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        if self.schema_sql:
            conn.executescript(self.schema_sql)
        return conn

    def _open_pg(self):
        conn = psycopg2.connect(self.dsn, connect_timeout=10,
                                application_name="ngis-access")
        conn.autocommit = True
        with conn.cursor() as cur:
            if not self.schema_sql:   # a reader: create nothing
                cur.execute(f'SET search_path TO "{self.schema}"')
                return conn
            cur.execute("BEGIN")
            # One creator at a time across processes and machines.
            cur.execute("SELECT pg_advisory_xact_lock(%s)",
                        (zlib.crc32(f"ngis-access:{self.schema}".encode()),))
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            cur.execute(f'SET search_path TO "{self.schema}"')
            for statement in self._pg_schema():
                cur.execute(statement)
            cur.execute("COMMIT")
            cur.execute(f'SET search_path TO "{self.schema}"')
        return conn

    def _pg_schema(self) -> list[str]:
        text = self.schema_sql.replace("BLOB", "BYTEA").replace("WITHOUT ROWID", "")
        return [s.strip() for s in text.split(";") if s.strip()]

    # --- statements --------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()):
        """Run one statement; returns a cursor (``fetchone``, ``fetchall``, ``rowcount``)."""
        conn = self.connection()
        if self.kind == "sqlite":
            return conn.execute(sql, params)
        cur = conn.cursor()
        cur.execute(self._sql(sql), tuple(params))
        return cur

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        conn = self.connection()
        if self.kind == "sqlite":
            conn.executemany(sql, rows)
            return
        with conn.cursor() as cur:
            cur.executemany(self._sql(sql), [tuple(r) for r in rows])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction: committed on success, rolled back on error."""
        conn = self.connection()
        begin = "BEGIN IMMEDIATE" if self.kind == "sqlite" else "BEGIN"
        if self.kind == "sqlite":
            conn.execute(begin)
        else:
            with conn.cursor() as cur:
                cur.execute(begin)
        try:
            yield
        except BaseException:
            self._end("ROLLBACK")
            raise
        self._end("COMMIT")

    def _end(self, word: str) -> None:
        conn = self.connection()
        if self.kind == "sqlite":
            conn.execute(word)
        else:
            with conn.cursor() as cur:
                cur.execute(word)

    def has_table(self, name: str) -> bool:
        if self.kind == "sqlite":
            return self.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                (name,)).fetchone() is not None
        return self.execute("SELECT to_regclass(?)", (f'"{self.schema}"."{name}"',)
                            ).fetchone()[0] is not None

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None
