"""API keys in the access database (SQLite and PostgreSQL): created once, stored only hashed,
listed, revoked, expired; a revocation reaches every verifier within the cache time."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest

from gis.server.access.keys import KEY_RE, KeyStore, KeyStoreError, KeyVerifier


def _stored_text(target: str) -> str:
    """Everything the database holds, as text (to look for a leaked key)."""
    if "://" not in target:
        import sqlite3

        con = sqlite3.connect(target)
        rows = [r for t in ("api_keys", "meta") for r in con.execute(f"SELECT * FROM {t}")]
        con.close()
        return repr(rows)
    import psycopg2

    from gis.server.access.db import _split_url

    dsn, schema = _split_url(target)
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        cur.execute(f'SELECT * FROM "{schema}".api_keys')
        rows = cur.fetchall()
        cur.execute(f'SELECT name, encode(value, \'hex\') FROM "{schema}".meta')
        rows += cur.fetchall()
    return repr(rows)


def test_create_list_revoke_and_lookup(access_target):
    store = KeyStore(access_target)
    key, rec = store.create("planning-dept", "agency", "government", rate=120)
    assert KEY_RE.match(key) and rec.grade == "agency" and rec.rate == 120
    assert store.lookup(key) == rec
    # Only a hash is stored: neither the key nor its random part appears anywhere.
    text = _stored_text(access_target)
    assert key not in text and key[5:] not in text
    # A second store on the same database (another worker, another machine) shares the pepper.
    other = KeyStore(access_target)
    assert other.lookup(key) == rec and other.hash(key) == store.hash(key)

    expired_key, _ = store.create("old-contract", "restricted", "commercial",
                                  expires=(date.today() - timedelta(days=2)).isoformat())
    assert store.lookup(expired_key) is None
    assert {k.name: k.status() for k in store.list()} == {"old-contract": "expired",
                                                          "planning-dept": "active"}
    assert store.revoke("planning-dept").status() == "revoked"
    assert store.lookup(key) is None and other.lookup(key) is None
    assert store.lookup("ngis_" + "A" * 43) is None and store.lookup("not a key") is None


@pytest.mark.parametrize("kwargs,message", [
    ({"name": "bad name!", "grade": "agency", "user_class": "public"}, "key name"),
    ({"name": "x", "grade": "secret", "user_class": "public"}, "grade"),
    ({"name": "x", "grade": "agency", "user_class": "tourist"}, "user class"),
    ({"name": "x", "grade": "agency", "user_class": "public", "expires": "31/12/2030"}, "expiry"),
    ({"name": "x", "grade": "agency", "user_class": "public", "rate": 0}, "rate"),
])
def test_bad_key_requests_are_refused(tmp_path, kwargs, message):
    with pytest.raises(Exception, match=message):
        KeyStore(tmp_path / "a.db").create(**kwargs)


def test_names_are_never_reused_and_unknown_names_refused(access_target):
    store = KeyStore(access_target)
    store.create("gis-team", "public", "academic")
    store.revoke("gis-team")
    with pytest.raises(KeyStoreError, match="already exists"):
        store.create("gis-team", "public", "academic")
    with pytest.raises(KeyStoreError, match="no key named"):
        store.revoke("nobody")


def test_verifier_sees_a_revocation_within_its_cache_time(access_target):
    store = KeyStore(access_target)
    key, _ = store.create("field-crew", "agency", "government")
    verifier = KeyVerifier(KeyStore(access_target), ttl=0.2)
    assert verifier.verify(key).name == "field-crew"
    store.revoke("field-crew")
    deadline = time.monotonic() + 5
    while verifier.verify(key) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert verifier.verify(key) is None
