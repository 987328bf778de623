"""Signed tokens (JWT) from an identity provider, as an alternative to API keys.

An agency that already runs single sign-on can hand its users JSON Web Tokens instead of our API
keys. ``ngis.access.jwt`` in the server config names the trusted issuer and a **local** JWKS file
(the provider's public keys, copied to the server: the server fetches nothing at run time):

.. code-block:: yaml

    ngis:
      access:
        jwt:
          issuer: https://sso.example.gov.tw/realms/ngis
          jwks: /etc/ngis/jwks.json        # re-read when the file changes (key rotation)
          audience: ngis3d                 # optional: required "aud"
          grade_claim: ngis_grade          # default
          user_class_claim: ngis_user_class  # default; absent means "public"
          leeway: 30                       # seconds of clock skew allowed

A token is accepted when its signature verifies with the JWKS key named by its ``kid`` (only
asymmetric algorithms: RS*, PS*, ES*, EdDSA; the algorithm is the key's, never the header's
choice), ``iss`` is the issuer, ``exp`` is in the future (``nbf``/``iat`` respected), ``aud``
matches when configured, ``sub`` is present and the grade claim names a known grade. Anything
else is refused exactly like a bad API key (401, one body). The client's id in the usage meter
and the audit log is ``jwt:<sub>``; its rate limit is its grade's, or the ``ngis_rate`` claim.
Tokens cannot be revoked before they expire: keep them short-lived.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from gis.errors import NgisError

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
              "EdDSA")
_CACHE_MAX = 10_000


class TokenConfigError(NgisError):
    """The ``ngis.access.jwt`` settings or the JWKS file are unusable."""


@dataclass(frozen=True)
class TokenClient:
    """The identity a verified token carries."""

    key_id: str
    grade: str
    user_class: str
    rate: int | None
    expires: float


def looks_like_jwt(credential: str) -> bool:
    """Three base64url parts (an API key never has a dot)."""
    return credential.count(".") == 2 and len(credential) > 20


class TokenVerifier:
    """Verifies JWTs against the configured issuer and local JWKS file.

    Args:
        settings: The ``ngis.access.jwt`` mapping.
        grades: Known grade names.
        user_classes: Known user classes.
        clock: Seconds since the epoch (for tests).
    """

    def __init__(self, settings: Mapping[str, Any], grades, user_classes, *,
                 clock=time.time):
        issuer, jwks = settings.get("issuer"), settings.get("jwks")
        if not isinstance(issuer, str) or not issuer:
            raise TokenConfigError("ngis.access.jwt.issuer: the trusted issuer is required")
        if not isinstance(jwks, str) or not jwks:
            raise TokenConfigError("ngis.access.jwt.jwks: a local JWKS file is required")
        self.issuer = issuer
        self.jwks_path = Path(jwks)
        self.audience = settings.get("audience")
        self.grade_claim = settings.get("grade_claim", "ngis_grade")
        self.user_class_claim = settings.get("user_class_claim", "ngis_user_class")
        self.leeway = float(settings.get("leeway", 30))
        self.grades = frozenset(grades)
        self.user_classes = frozenset(user_classes)
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._mtime: float | None = None
        self._checked = 0.0
        self._cache: dict[str, TokenClient | None] = {}
        self._load_keys()

    def _load_keys(self) -> None:
        try:
            stat = self.jwks_path.stat()
            data = json.loads(self.jwks_path.read_text(encoding="utf-8"))
            keyset = jwt.PyJWKSet.from_dict(data)
        except FileNotFoundError:
            raise TokenConfigError("no such JWKS file", path=str(self.jwks_path)) from None
        except (ValueError, jwt.PyJWKSetError, jwt.InvalidKeyError) as err:
            raise TokenConfigError(f"not a usable JWKS: {err}", path=str(self.jwks_path)) \
                from None
        keys = {}
        for key in keyset.keys:
            if key.key_id and key.algorithm_name in ALGORITHMS:
                keys[key.key_id] = key
        if not keys:
            raise TokenConfigError("the JWKS has no key with a 'kid' and an asymmetric "
                                   f"algorithm ({', '.join(ALGORITHMS)})",
                                   path=str(self.jwks_path))
        self._keys, self._mtime = keys, stat.st_mtime
        self._cache.clear()

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < 5.0:
            return
        self._checked = now
        try:
            mtime = os.stat(self.jwks_path).st_mtime
        except OSError:
            return  # keep the keys we have; the file may be being replaced
        if mtime != self._mtime:
            try:
                self._load_keys()
            except TokenConfigError:
                pass  # a half-written rotation: keep the old keys, try again later

    def verify(self, token: str) -> TokenClient | None:
        """The client of a valid token, or None."""
        with self._lock:
            self._maybe_reload()
            digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
            if digest in self._cache:
                hit = self._cache[digest]
                if hit is None or hit.expires + self.leeway > self.clock():
                    return hit
            found = self._verify(token)
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[digest] = found
            return found

    def _verify(self, token: str) -> TokenClient | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        key = self._keys.get(header.get("kid"))
        if key is None or header.get("alg") != key.algorithm_name:
            return None
        options: dict[str, Any] = {"require": ["exp", "iss", "sub"]}
        if self.audience is None:
            options["verify_aud"] = False  # none configured: any audience
        try:
            claims = jwt.decode(token, key, algorithms=[key.algorithm_name], issuer=self.issuer,
                                audience=self.audience, leeway=self.leeway, options=options)
        except jwt.PyJWTError:
            return None
        grade = claims.get(self.grade_claim)
        user_class = claims.get(self.user_class_claim, "public")
        sub = claims.get("sub")
        if grade not in self.grades or user_class not in self.user_classes:
            return None
        if not isinstance(sub, str) or not sub or len(sub) > 200:
            return None
        rate = claims.get("ngis_rate")
        if rate is not None and (not isinstance(rate, int) or isinstance(rate, bool) or rate < 1):
            return None
        return TokenClient(f"jwt:{sub}", grade, user_class, rate, float(claims["exp"]))
