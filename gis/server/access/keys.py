"""API keys: created once, stored hashed, verified fast.

A key is ``ngis_`` followed by 43 URL-safe characters (32 random bytes). The access database
(``ngis.access.db`` of the server config: an SQLite file, or a PostgreSQL URL shared by several
server machines; see :mod:`gis.server.access.db`) stores only HMAC-SHA256(pepper, key), where the
pepper is 32 random bytes drawn when the database is created; a copy of the database alone does not
let anyone check guesses against a leaked key list from elsewhere, and the key itself is printed
once, by ``ngis keys create``, and never stored.

Each key has a name (unique, not secret: it is the ``key_id`` of the audit log and the usage
meter), a grade, a user class (government, academic, commercial, public), an optional expiry date
(the key works through that day, UTC) and an optional rate limit (requests per minute; default:
its grade's).

:class:`KeyVerifier` is what the server uses: a per-process cache of lookups keyed by the hash,
each entry trusted for :data:`CACHE_TTL` seconds, so a revoked key stops working within that time
in every worker without a database read per request.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone

from gis.errors import NgisError
from gis.server.access.db import INTEGRITY_ERRORS, AccessDb

PREFIX = "ngis_"
KEY_RE = re.compile(r"^ngis_[A-Za-z0-9_-]{43}$")
USER_CLASSES = ("government", "academic", "commercial", "public")
#: Seconds a verified (or refused) key is trusted without reading the database again.
CACHE_TTL = 5.0
_CACHE_MAX = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    grade TEXT NOT NULL,
    user_class TEXT NOT NULL,
    expires TEXT,
    rate INTEGER,
    created TEXT NOT NULL,
    revoked TEXT
);
"""


class KeyStoreError(NgisError):
    """A key operation the database refuses (unknown name, duplicate name, bad value)."""


@dataclass(frozen=True)
class Key:
    """A key's record (never the key itself)."""

    name: str
    grade: str
    user_class: str
    expires: str | None
    rate: int | None
    created: str
    revoked: str | None

    @property
    def key_id(self) -> str:
        return self.name

    def usable(self, today: date | None = None) -> bool:
        if self.revoked:
            return False
        if self.expires:
            today = today or datetime.now(timezone.utc).date()
            return today <= date.fromisoformat(self.expires)
        return True

    def status(self) -> str:
        if self.revoked:
            return "revoked"
        return "active" if self.usable() else "expired"


class KeyStore:
    """The key table of the access database (an SQLite path or a PostgreSQL URL; created on
    first use)."""

    def __init__(self, target: str | os.PathLike):
        self.db = AccessDb(target, SCHEMA)
        self.target = self.db.target
        self._pepper: bytes | None = None

    def _execute(self, sql: str, params=()):
        return self.db.execute(sql, params)

    def pepper(self) -> bytes:
        if self._pepper is None:
            row = self._execute("SELECT value FROM meta WHERE name = 'pepper'").fetchone()
            if row is None:   # first use: draw it (the first writer wins; all read the winner)
                self._execute("INSERT INTO meta VALUES ('pepper', ?) ON CONFLICT DO NOTHING",
                              (secrets.token_bytes(32),))
                row = self._execute("SELECT value FROM meta WHERE name = 'pepper'").fetchone()
            self._pepper = bytes(row[0])
        return self._pepper

    def hash(self, key: str) -> str:
        return hmac.new(self.pepper(), key.encode(), hashlib.sha256).hexdigest()

    def create(self, name: str, grade: str, user_class: str, *, expires: str | None = None,
               rate: int | None = None) -> tuple[str, Key]:
        """A new key: returns (the key, shown once; its record)."""
        from gis.server.access.grades import Grades

        Grades.load().check(grade, f"key {name!r}")
        if not name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}", name):
            raise KeyStoreError(f"key name {name!r}: use 1-64 letters, digits, '.', '_', '@', '-'")
        if user_class not in USER_CLASSES:
            raise KeyStoreError(f"user class {user_class!r}: one of {', '.join(USER_CLASSES)}")
        if expires is not None:
            try:
                expires = date.fromisoformat(expires).isoformat()
            except ValueError:
                raise KeyStoreError(f"expiry {expires!r} is not a date (YYYY-MM-DD)") from None
        if rate is not None and rate < 1:
            raise KeyStoreError(f"rate {rate}: at least 1 request per minute")
        key = PREFIX + secrets.token_urlsafe(32)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        try:
            self._execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                          (name, self.hash(key), grade, user_class, expires, rate, created))
        except INTEGRITY_ERRORS:
            raise KeyStoreError(f"a key named {name!r} already exists (names are never reused; "
                            "revoke it and choose another name)") from None
        return key, Key(name, grade, user_class, expires, rate, created, None)

    def list(self) -> list[Key]:
        rows = self._execute(
            "SELECT name, grade, user_class, expires, rate, created, revoked FROM api_keys "
            "ORDER BY name").fetchall()
        return [Key(*row) for row in rows]

    def revoke(self, name: str) -> Key:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        cur = self._execute(
            "UPDATE api_keys SET revoked = ? WHERE name = ? AND revoked IS NULL", (now, name))
        if cur.rowcount == 0:
            if not any(k.name == name for k in self.list()):
                raise KeyStoreError(f"no key named {name!r}")
        return next(k for k in self.list() if k.name == name)

    def lookup_hash(self, digest: str) -> Key | None:
        row = self._execute(
            "SELECT name, grade, user_class, expires, rate, created, revoked FROM api_keys "
            "WHERE hash = ?", (digest,)).fetchone()
        return Key(*row) if row else None

    def lookup(self, key: str) -> Key | None:
        """The usable key record of ``key``, or None (malformed, unknown, revoked, expired)."""
        if not KEY_RE.match(key):
            return None
        found = self.lookup_hash(self.hash(key))
        return found if found is not None and found.usable() else None


class KeyVerifier:
    """``verify(key)`` with a per-process cache: entries live :data:`CACHE_TTL` seconds."""

    def __init__(self, store: KeyStore, ttl: float = CACHE_TTL):
        self.store = store
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Key | None]] = {}

    def verify(self, key: str) -> Key | None:
        if not KEY_RE.match(key):
            return None
        digest = self.store.hash(key)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self.ttl:
            found = hit[1]
        else:
            found = self.store.lookup_hash(digest)
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[digest] = (now, found)
        return found if found is not None and found.usable() else None
