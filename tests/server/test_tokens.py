"""Signed tokens (JWT): accepted only from the configured issuer, with a key of the local JWKS,
the key's own algorithm, a known grade and an unexpired lifetime; keys rotate with the file."""

from __future__ import annotations

import json
import os
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gis.server.access.keys import USER_CLASSES
from gis.server.access.tokens import TokenConfigError, TokenVerifier, looks_like_jwt

ISSUER = "https://sso.example.gov.tw/realms/ngis"
GRADES = ("public", "agency", "restricted")


def _jwk(private, kid: str, alg: str) -> dict:
    algo = jwt.algorithms.get_default_algorithms()[alg]
    jwk = json.loads(algo.to_jwk(private.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


@pytest.fixture(scope="module")
def keys():
    return {"rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec": ec.generate_private_key(ec.SECP256R1()),
            "other": rsa.generate_private_key(public_exponent=65537, key_size=2048)}


@pytest.fixture
def jwks(tmp_path, keys):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [_jwk(keys["rsa"], "k1", "RS256"),
                                         _jwk(keys["ec"], "k2", "ES256")]}))
    return path


def _token(private, kid="k1", alg="RS256", **claims):
    now = int(time.time())
    body = {"iss": ISSUER, "sub": "alice@city.gov.tw", "iat": now, "exp": now + 300,
            "ngis_grade": "agency", "ngis_user_class": "government", **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, private, algorithm=alg, headers={"kid": kid})


def _verifier(jwks, **settings):
    return TokenVerifier({"issuer": ISSUER, "jwks": str(jwks), **settings}, GRADES, USER_CLASSES)


def test_valid_tokens_give_their_grade_and_identity(jwks, keys):
    v = _verifier(jwks)
    client = v.verify(_token(keys["rsa"]))
    assert (client.key_id, client.grade, client.user_class, client.rate) == \
        ("jwt:alice@city.gov.tw", "agency", "government", None)
    client = v.verify(_token(keys["ec"], kid="k2", alg="ES256", ngis_grade="restricted",
                             ngis_user_class=None, ngis_rate=30))
    assert (client.grade, client.user_class, client.rate) == ("restricted", "public", 30)
    assert looks_like_jwt(_token(keys["rsa"])) and not looks_like_jwt("ngis_" + "a" * 43)


@pytest.mark.parametrize("case", [
    "expired", "wrong issuer", "no exp", "no sub", "unknown grade", "no grade", "bad class",
    "unknown kid", "foreign key", "alg none", "hs256 with the public key", "alg swap",
    "not yet valid", "tampered", "garbage", "bad rate"])
def test_bad_tokens_are_refused(jwks, keys, case):
    now = int(time.time())
    rsa_key = keys["rsa"]
    if case == "expired":
        token = _token(rsa_key, exp=now - 120)          # beyond the 30 s leeway
    elif case == "wrong issuer":
        token = _token(rsa_key, iss="https://evil.example.com")
    elif case == "no exp":
        token = _token(rsa_key, exp=None)
    elif case == "no sub":
        token = _token(rsa_key, sub=None)
    elif case == "unknown grade":
        token = _token(rsa_key, ngis_grade="secret")
    elif case == "no grade":
        token = _token(rsa_key, ngis_grade=None)
    elif case == "bad class":
        token = _token(rsa_key, ngis_user_class="tourist")
    elif case == "unknown kid":
        token = _token(rsa_key, kid="k9")
    elif case == "foreign key":                         # right kid, signed by someone else
        token = _token(keys["other"])
    elif case == "alg none":
        token = jwt.encode({"iss": ISSUER, "sub": "x", "exp": now + 60, "ngis_grade": "agency"},
                           None, algorithm="none", headers={"kid": "k1"})
    elif case == "hs256 with the public key":          # the classic algorithm confusion
        pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        import base64
        import hashlib
        import hmac
        header = base64.urlsafe_b64encode(json.dumps(
            {"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode()).rstrip(b"=")
        body = base64.urlsafe_b64encode(json.dumps(
            {"iss": ISSUER, "sub": "x", "exp": now + 60, "ngis_grade": "restricted"}
        ).encode()).rstrip(b"=")
        sig = base64.urlsafe_b64encode(hmac.new(pem, header + b"." + body,
                                                hashlib.sha256).digest()).rstrip(b"=")
        token = (header + b"." + body + b"." + sig).decode()
    elif case == "alg swap":                            # the EC key's kid with an RSA signature
        token = _token(rsa_key, kid="k2", alg="RS256")
    elif case == "not yet valid":
        token = _token(rsa_key, nbf=now + 3600)
    elif case == "tampered":
        head, body, sig = _token(rsa_key).split(".")
        import base64
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        claims["ngis_grade"] = "restricted"
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        token = f"{head}.{body}.{sig}"
    elif case == "garbage":
        token = "abc.def.ghi"
    else:
        token = _token(rsa_key, ngis_rate="fast")
    assert _verifier(jwks).verify(token) is None


def test_audience_when_configured(jwks, keys):
    v = _verifier(jwks, audience="ngis3d")
    assert v.verify(_token(keys["rsa"], aud="ngis3d")) is not None
    assert v.verify(_token(keys["rsa"], aud="another-app")) is None
    assert v.verify(_token(keys["rsa"])) is None            # required when configured
    assert _verifier(jwks).verify(_token(keys["rsa"], aud="anything")) is not None


def test_keys_rotate_with_the_file(jwks, keys, monkeypatch):
    v = _verifier(jwks)
    new_token = _token(keys["other"], kid="k3")
    assert v.verify(new_token) is None
    jwks.write_text(json.dumps({"keys": [_jwk(keys["other"], "k3", "RS256")]}))
    os.utime(jwks, (time.time() + 10, time.time() + 10))
    v._checked = 0.0                                         # skip the 5 s re-check interval
    assert v.verify(new_token) is not None
    assert v.verify(_token(keys["rsa"])) is None             # the retired key no longer works


@pytest.mark.parametrize("settings,message", [
    ({"jwks": "x.json"}, "issuer"),
    ({"issuer": ISSUER}, "JWKS"),
    ({"issuer": ISSUER, "jwks": "/nonexistent/jwks.json"}, "no such JWKS"),
])
def test_bad_settings_stop_the_start(settings, message):
    with pytest.raises(TokenConfigError, match=message):
        TokenVerifier(settings, GRADES, USER_CLASSES)


def test_a_jwks_without_usable_keys_is_refused(tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s",
                                          "alg": "HS256"}]}))
    with pytest.raises(TokenConfigError, match="asymmetric"):
        TokenVerifier({"issuer": ISSUER, "jwks": str(path)}, GRADES, USER_CLASSES)
