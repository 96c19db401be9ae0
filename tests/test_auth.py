"""Tests for adapters.gateway.auth: what each consumer auth scheme puts on the wire.

Every request goes through a real `httpx.Client(auth=...)` into an `httpx.MockTransport` that
snapshots the request as it would be sent. HMAC signatures are checked by `higress_verify`, an
independent port of the Higress `hmac_auth` verifier (alibaba/higress
`plugins/wasm-cpp/extensions/hmac_auth/plugin.cc`), never by asking
the signer for its own string-to-sign.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import logging
import re
import threading
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from dify_plugin.errors.model import CredentialsValidateFailedError
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from adapters.gateway.auth import auth_config
from adapters.gateway.auth.api_key import ApiKeyConfig
from adapters.gateway.auth.hmac import (
    HMAC_SIGNED_HEADERS,
    HmacAuth,
    HmacConfig,
    content_md5,
    hmac_signature,
    parse_params,
    string_to_sign,
)
from adapters.gateway.auth.jwt import JwtAuth, JwtConfig

BASE_URL = "https://gw.example.com"
CHAT = "/v1/chat/completions"
CHAT_BODY = {"model": "qwen-max", "messages": [{"role": "user", "content": "hi"}]}
SIGNED = ",".join(HMAC_SIGNED_HEADERS)

# ---------------------------------------------------------------------------------------------
# Capturing what is sent
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wire:
    """One request as the transport received it (a snapshot: retries mutate the live request)."""

    method: str
    url: httpx.URL
    headers: httpx.Headers
    body: bytes

    @property
    def raw_path(self) -> bytes:
        return self.url.raw_path

    def header_count(self, name: str) -> int:
        return sum(1 for key, _ in self.headers.raw if key.lower() == name.lower().encode())


class Recorder:
    """A MockTransport handler that snapshots every request and answers 200 (SSE when asked)."""

    def __init__(self) -> None:
        self.sent: list[Wire] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        wire = Wire(request.method, request.url, httpx.Headers(request.headers), b"".join(request.stream))
        with self._lock:
            self.sent.append(wire)
        if request.headers.get("accept") == "text/event-stream":
            return httpx.Response(200, text="data: [DONE]\n\n", headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json={"ok": True})

    @property
    def last(self) -> Wire:
        return self.sent[-1]


def make_client(auth: httpx.Auth | None, recorder: Recorder) -> httpx.Client:
    return httpx.Client(base_url=BASE_URL, transport=httpx.MockTransport(recorder), auth=auth)


def auth_from_credentials(credentials: Mapping[str, Any]) -> httpx.Auth:
    """The auth object the transport would build from these credential fields."""
    return auth_config(credentials).client_auth()


def send(auth: httpx.Auth, method: str = "POST", url: str = CHAT, **kwargs: Any) -> Wire:
    recorder = Recorder()
    with make_client(auth, recorder) as client:
        client.request(method, url, **kwargs).raise_for_status()
    return recorder.last


# ---------------------------------------------------------------------------------------------
# Independent Higress hmac_auth verifier (port of plugin.cc + http_util.cc, bytes throughout)
# ---------------------------------------------------------------------------------------------

_CHECK_HEADERS = (b"accept", b"content-md5", b"content-type", b"date")


def _higress_header(wire: Wire, name: bytes) -> bytes:
    return next((value for key, value in wire.headers.raw if key.lower() == name), b"")


def _higress_decode(data: bytes) -> bytes:
    """PercentEncoding::decode: `%XX` only (no `+`), no hex validation."""

    def nibble(ch: int) -> int:
        return ch - 0x30 if 0x30 <= ch <= 0x39 else (chr(ch).upper().encode()[0] - 0x41 + 10)

    out, i = bytearray(), 0
    while i < len(data):
        ch = data[i]
        if ch == 0x25 and i + 2 < len(data):
            ch = (nibble(data[i + 1]) * 16 + nibble(data[i + 2])) & 0xFF
            i += 2
        out.append(ch)
        i += 1
    return bytes(out)


def _higress_params(data: bytes, params: dict[bytes, bytes]) -> None:
    """parseParameters(decode=true) into a std::map with emplace (first value wins)."""
    start = 0
    while start < len(data):
        end = data.find(b"&", start)
        end = len(data) if end < 0 else end
        piece = data[start:end]
        if b"=" in piece:
            name, value = piece.split(b"=", 1)
            params.setdefault(_higress_decode(name), _higress_decode(value))
        else:
            params.setdefault(piece, b"")
        start = end + 1


def higress_verify(wire: Wire, secrets: Mapping[str, str]) -> tuple[str, bytes]:
    """Return (verdict, server string-to-sign); verdict is "ok" or the Higress denial text."""
    ca_key = _higress_header(wire, b"x-ca-key").decode()
    signature = _higress_header(wire, b"x-ca-signature").decode()
    if not ca_key or ca_key not in secrets:
        return "401 Invalid Key", b""
    sts = wire.method.encode() + b"\n"
    sts += b"".join(_higress_header(wire, name) + b"\n" for name in _CHECK_HEADERS)
    dynamic = []
    for name in _higress_header(wire, b"x-ca-signature-headers").split(b","):
        lower = name.lower()
        if lower in (b"x-ca-signature", b"x-ca-signature-headers", b":method", *_CHECK_HEADERS):
            continue
        dynamic.append(lower)
    for name in sorted(dynamic):
        sts += name + b":" + _higress_header(wire, name) + b"\n"
    if not signature:
        return "401 Empty Signature", sts
    body_md5 = _higress_header(wire, b"content-md5").decode()
    if body_md5 and (not wire.body or base64.b64encode(hashlib.md5(wire.body).digest()).decode() != body_md5):
        return "400 Invalid Content-MD5", sts
    path = wire.raw_path
    params: dict[bytes, bytes] = {}
    if b"?" in path:
        _higress_params(path.split(b"?", 1)[1], params)
    if b"application/x-www-form-urlencoded" in _higress_header(wire, b"content-type").lower():
        _higress_params(wire.body, params)
    sts += path.split(b"?", 1)[0]
    if params:
        sts += b"?" + b"&".join(k + b"=" + params[k] for k in sorted(params))
    digest = hashlib.sha1 if _higress_header(wire, b"x-ca-signature-method") == b"HmacSHA1" else hashlib.sha256
    expected = base64.b64encode(hmac.new(secrets[ca_key].encode(), sts, digest).digest()).decode()
    return ("ok" if expected == signature else "400 Invalid Signature"), sts


def assert_signed(wire: Wire, secrets: Mapping[str, str]) -> bytes:
    verdict, sts = higress_verify(wire, secrets)
    assert verdict == "ok", sts.replace(b"\n", b"#")
    return sts


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------

HS_SECRET = b"0123456789abcdef" * 4  # 64 bytes: long enough for HS512 without warnings


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# Generated once per test run (2048-bit RSA: PyJWT warns below that).
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def private_jwk(key: Any) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        return json.loads(RSAAlgorithm.to_jwk(key))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return json.loads(ECAlgorithm.to_jwk(key))
    return json.loads(OKPAlgorithm.to_jwk(key))


def public_jwk(key: Any) -> dict[str, Any]:
    return {k: v for k, v in private_jwk(key).items() if k not in ("d", "p", "q", "dp", "dq", "qi")}


def jwt_credentials(jwks: str, algorithm: str, **extra: Any) -> dict[str, Any]:
    return {
        "auth_method": "jwt",
        "jwt_jwks": jwks,
        "jwt_algorithm": algorithm,
        "jwt_consumer_id": "c-42",
    } | extra


def token_from(wire: Wire, header: str = "Authorization", prefix: str = "Bearer ") -> str:
    value = wire.headers[header]
    assert value.startswith(prefix)
    token = value[len(prefix) :]
    assert token and " " not in token
    return token


# ---------------------------------------------------------------------------------------------
# API key
# ---------------------------------------------------------------------------------------------


def test_api_key_defaults_to_bearer_authorization() -> None:
    wire = send(auth_from_credentials({"api_key": "sk-abc"}), json=CHAT_BODY)
    assert wire.headers["authorization"] == "Bearer sk-abc"
    assert json.loads(wire.body) == CHAT_BODY  # body untouched, no credential in it


def test_api_key_custom_header_is_sent_verbatim() -> None:
    auth = auth_from_credentials({"auth_method": "api_key", "api_key": "sk-abc", "api_key_header": "X-API-Key"})
    wire = send(auth, json=CHAT_BODY)
    assert wire.headers["x-api-key"] == "sk-abc"
    assert "authorization" not in wire.headers


def test_api_key_lowercase_authorization_still_gets_bearer() -> None:
    wire = send(auth_from_credentials({"api_key": "sk-abc", "api_key_header": "authorization"}), json={})
    assert wire.headers["authorization"] == "Bearer sk-abc"


@pytest.mark.parametrize("pasted", ["Bearer sk-abc", "bearer  sk-abc", "BEARER sk-abc"])
def test_api_key_pasted_with_its_scheme_word_is_sent_with_it_once(pasted: str) -> None:
    wire = send(auth_from_credentials({"api_key": pasted}), json={})
    assert wire.headers["authorization"] == "Bearer sk-abc"


@pytest.mark.parametrize(
    ("prefix", "sent"), [("none", "sk-abc"), ("NONE", "sk-abc"), ("", "sk-abc"), ("Token", "Token sk-abc")]
)
def test_api_key_prefix_sets_the_word_before_the_key(prefix: str, sent: str) -> None:
    # Open-source Higress key-auth compares the header value verbatim: `none` sends the key alone.
    wire = send(auth_from_credentials({"api_key": "sk-abc", "api_key_prefix": prefix}), json={})
    assert wire.headers["authorization"] == sent


def test_api_key_prefix_on_a_custom_header_and_a_pasted_key_with_another_word() -> None:
    fields = {"api_key": "Bearer sk-abc", "api_key_header": "X-API-Key", "api_key_prefix": "Token"}
    assert send(auth_from_credentials(fields), json={}).headers["x-api-key"] == "Token Bearer sk-abc"


@pytest.mark.parametrize("prefix", ["Bear er", "Bearer:", "Bé"])
def test_api_key_prefix_that_is_not_one_word_is_refused(prefix: str) -> None:
    with pytest.raises(CredentialsValidateFailedError, match=r"^Credential field 'api_key_prefix': must be one word"):
        auth_from_credentials({"api_key": "sk-abc", "api_key_prefix": prefix})


def test_api_key_in_query_replaces_header_and_keeps_other_params() -> None:
    auth = auth_from_credentials({"api_key": "sk-abc", "api_key_query": "apikey", "api_key_header": "X-Ignored"})
    wire = send(auth, "GET", "/v1/models?x=1&apikey=stale")
    assert wire.url.params.get_list("apikey") == ["sk-abc"]
    assert wire.url.params["x"] == "1"
    assert "authorization" not in wire.headers and "x-ignored" not in wire.headers


# ---------------------------------------------------------------------------------------------
# JWT
# ---------------------------------------------------------------------------------------------


def decode(token: str, key: Any, algorithm: str, **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    claims = jwt.decode(token, key, algorithms=[algorithm], options=options or None)
    return jwt.get_unverified_header(token), claims


def assert_fresh_claims(claims: Mapping[str, Any], lifetime: int = 3600) -> None:
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == lifetime
    assert abs(claims["iat"] - time.time()) < 30


def test_jwt_hs256_from_oct_jwk() -> None:
    jwk = json.dumps({"kty": "oct", "k": b64url(HS_SECRET)})
    wire = send(auth_from_credentials(jwt_credentials(jwk, "HS256")), json=CHAT_BODY)
    header, claims = decode(token_from(wire), HS_SECRET, "HS256")
    assert header["alg"] == "HS256" and "kid" not in header
    assert claims["uid"] == "c-42" and "iss" not in claims
    assert_fresh_claims(claims)
    assert json.loads(wire.body) == CHAT_BODY


def test_jwt_hs256_from_jwk_set_uses_first_key_kid_and_custom_header() -> None:
    jwks = json.dumps(
        {
            "keys": [
                {"kty": "oct", "kid": "k-first", "alg": "HS256", "k": b64url(HS_SECRET)},
                {"kty": "oct", "kid": "k-second", "alg": "HS256", "k": b64url(b"other" * 8)},
            ]
        }
    )
    credentials = jwt_credentials(
        jwks,
        "HS256",
        jwt_issuer="dify",
        jwt_consumer_claim="sub",
        jwt_header_name="X-Token",
        jwt_header_prefix="Token ",
        jwt_expiration="600",
    )
    wire = send(auth_from_credentials(credentials), json=CHAT_BODY)
    assert "authorization" not in wire.headers
    assert re.fullmatch(r"Token [A-Za-z0-9_\-.]+", wire.headers["x-token"])  # exactly one space
    header, claims = decode(token_from(wire, "X-Token", "Token "), HS_SECRET, "HS256")
    assert header["kid"] == "k-first"
    assert claims["sub"] == "c-42" and claims["iss"] == "dify" and "uid" not in claims
    assert_fresh_claims(claims, lifetime=600)


@pytest.mark.parametrize("prefix", ["", "   ", "none", "None"])
def test_jwt_empty_or_none_prefix_sends_token_only(prefix: str) -> None:
    jwk = json.dumps({"kty": "oct", "k": b64url(HS_SECRET)})
    wire = send(auth_from_credentials(jwt_credentials(jwk, "HS256", jwt_header_prefix=prefix)), json={})
    token = wire.headers["authorization"]
    assert token.count(".") == 2 and " " not in token
    decode(token, HS_SECRET, "HS256")


@pytest.mark.parametrize(
    ("algorithm", "key", "form"),
    [
        ("RS256", RSA_KEY, "pem"),
        ("RS256", RSA_KEY, "jwk"),
        ("RS512", RSA_KEY, "jwks"),
        ("PS256", RSA_KEY, "pem"),
        ("PS384", RSA_KEY, "jwk"),
        ("ES256", EC_KEY, "jwk"),
        ("ES256", EC_KEY, "pem"),
        ("EdDSA", ED_KEY, "jwk"),
        ("EdDSA", ED_KEY, "pem"),
    ],
)
def test_jwt_asymmetric_tokens_verify_with_public_key(algorithm: str, key: Any, form: str) -> None:
    material = {
        "pem": lambda: pem(key),
        "jwk": lambda: json.dumps(private_jwk(key)),
        "jwks": lambda: json.dumps({"keys": [private_jwk(key) | {"kid": "rsa-1"}]}),
    }[form]()
    wire = send(auth_from_credentials(jwt_credentials(material, algorithm, jwt_issuer="iss-x")), json=CHAT_BODY)
    header, claims = decode(token_from(wire), key.public_key(), algorithm)
    assert header["alg"] == algorithm
    assert header.get("kid") == ("rsa-1" if form == "jwks" else None)
    assert claims["uid"] == "c-42" and claims["iss"] == "iss-x"
    assert_fresh_claims(claims)


def test_jwt_algorithm_inferred_from_key_when_left_empty() -> None:
    wire = send(auth_from_credentials(jwt_credentials(json.dumps(private_jwk(EC_KEY)), "")), json={})
    assert jwt.get_unverified_header(token_from(wire))["alg"] == "ES256"
    jwk = json.dumps({"kty": "oct", "k": b64url(HS_SECRET), "alg": "HS384"})
    wire = send(auth_from_credentials(jwt_credentials(jwk, "")), json={})
    decode(token_from(wire), HS_SECRET, "HS384")


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_jwt_token_reused_then_renewed_before_expiry() -> None:
    start = float(int(time.time()))
    clock = FakeClock(start)
    auth = JwtAuth(JwtConfig(HS_SECRET, "HS256", "c-1", lifetime=600), clock=clock)
    recorder = Recorder()
    with make_client(auth, recorder) as client:
        client.post(CHAT, json={})
        clock.now = start + 500  # 100 s left: more than 10% of 600 s and more than 60 s
        client.post(CHAT, json={})
        clock.now = start + 545  # 55 s left: inside the renewal margin
        client.post(CHAT, json={})
        clock.now = start + 545 + 601  # long past expiry
        client.post(CHAT, json={})
    first, second, third, fourth = (token_from(w) for w in recorder.sent)
    assert first == second
    assert third != second and fourth != third
    unverified = {"verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False}
    assert decode(third, HS_SECRET, "HS256", **unverified)[1]["iat"] == int(start + 545)
    assert decode(fourth, HS_SECRET, "HS256", **unverified)[1]["exp"] == int(start + 545 + 601 + 600)


def test_jwt_concurrent_first_use_issues_one_token() -> None:
    auth = JwtAuth(JwtConfig(HS_SECRET, "HS256", "c-1"), clock=FakeClock(time.time()))
    recorder = Recorder()
    with make_client(auth, recorder) as client, ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda _: client.post(CHAT, json={}), range(32)))
    assert len({token_from(w) for w in recorder.sent}) == 1


# ---------------------------------------------------------------------------------------------
# HMAC: vectors through the pure functions. Each signature was computed three ways with the same
# result: the reference signer in tests/test_emulator.py, alibabacloud_apigateway_util 0.0.2
# (`Client.get_signature`, on PyPI) and a port of the Higress hmac_auth verifier (tests/emulator/).
# ---------------------------------------------------------------------------------------------

V1_BODY = b'{"model":"qwen-max","messages":[{"role":"user","content":"hi"}],"stream":false}'
V2_BODY = (
    '{"model":"gte-rerank-v2","input":{"query":"什么是文本排序","documents":["a","b"]},"parameters":{"top_n":1}}'
).encode()
VECTORS = {
    "V1": {
        "method": "POST",
        "url": "/v1/chat/completions",
        "key": "test-ak",
        "secret": "test-sk",
        "body": V1_BODY,
        "content_type": "application/json",
        "date": "Tue, 14 Nov 2023 22:13:20 GMT",
        "ts": 1700000000000,
        "nonce": "11111111-2222-3333-4444-555555555555",
        "md5": "cM1DsFt+1IdKM6PBKcjpmQ==",
        "signature": "Zzat44JyCJmjaDpbRCjQsr6jRpTf1Nz/zwYz67vjB/o=",
    },
    "V2": {
        "method": "POST",
        "url": "/ai/api/v1/services/rerank/text-rerank/text-rerank?a=1&b=x%20y",
        "key": "203753385",
        "secret": "123456",
        "body": V2_BODY,
        "content_type": "application/json; charset=utf-8",
        "date": "Wed, 09 May 2018 13:30:29 GMT",
        "ts": 1525872629832,
        "nonce": "c9f15cbf-f4ac-4a6c-b54d-f51abf4b5b44",
        "md5": "5LhhaJ1a41D80c8pPKlVAA==",
        "signature": "xXsMyj5PIzOdDleh20jKsmGSMnaQbWshjruUZoYCx9w=",
    },
    "V3": {
        "method": "GET",
        "url": "/v1/models",
        "key": "appKey",
        "secret": "appSecret",
        "body": b"",
        "content_type": None,
        "date": "Fri, 04 Mar 2022 03:41:31 GMT",
        "ts": 1646365291734,
        "nonce": "787dd0c2-7bd8-41cd-9c19-62c05ea524a2",
        "md5": None,
        "signature": "nxjyROgReF3j1xTK2lFTgx1nX9xKX4FpXkuLlo3T1Tc=",
    },
}
V1_STRING_TO_SIGN = (
    "POST\napplication/json\ncM1DsFt+1IdKM6PBKcjpmQ==\napplication/json\nTue, 14 Nov 2023 22:13:20 GMT\n"
    "x-ca-key:test-ak\nx-ca-nonce:11111111-2222-3333-4444-555555555555\n"
    "x-ca-signature-method:HmacSHA256\nx-ca-timestamp:1700000000000\n/v1/chat/completions"
)


def vector_headers(v: Mapping[str, Any]) -> dict[str, str]:
    headers = {
        "Accept": "application/json",
        "Date": v["date"],
        "X-Ca-Key": v["key"],
        "X-Ca-Timestamp": str(v["ts"]),
        "X-Ca-Nonce": v["nonce"],
        "X-Ca-Signature-Method": "HmacSHA256",
    }
    if v["content_type"]:
        headers["Content-Type"] = v["content_type"]
    if v["md5"]:
        headers["Content-MD5"] = v["md5"]
    return headers


@pytest.mark.parametrize("name", VECTORS)
def test_hmac_vector_pure_functions(name: str) -> None:
    v = VECTORS[name]
    if v["md5"]:
        assert content_md5(v["body"]) == v["md5"]
    path, _, query = v["url"].partition("?")
    sts = string_to_sign(v["method"], path, parse_params(query), vector_headers(v), HMAC_SIGNED_HEADERS)
    if name == "V1":
        assert sts == V1_STRING_TO_SIGN
    if name == "V2":
        assert sts.endswith("\n/ai/api/v1/services/rerank/text-rerank/text-rerank?a=1&b=x y")
    assert hmac_signature(v["secret"], sts) == v["signature"]


@pytest.mark.parametrize("name", VECTORS)
def test_hmac_vector_end_to_end_through_httpx(name: str) -> None:
    v = VECTORS[name]
    auth = HmacAuth(HmacConfig(v["key"], v["secret"]), clock=lambda: v["ts"] / 1000, nonce_factory=lambda: v["nonce"])
    headers = {"Content-Type": v["content_type"]} if v["content_type"] else {}
    headers["Accept"] = "application/json"  # as the published examples were signed
    wire = send(auth, v["method"], v["url"], content=v["body"] or None, headers=headers)
    assert wire.headers["x-ca-signature"] == v["signature"]
    assert wire.headers["date"] == v["date"]
    assert wire.headers.get("content-md5") == v["md5"]
    assert wire.body == v["body"]
    assert_signed(wire, {v["key"]: v["secret"]})


def test_hmac_higress_sign_without_dynamic_header_has_no_blank_line() -> None:
    sts = string_to_sign("GET", "/Third/Tools/checkSign", [], {"Accept": "application/json"}, [])
    assert sts == "GET\napplication/json\n\n\n\n/Third/Tools/checkSign"
    assert hmac_signature("appSecret", sts) == "ZpJhkHdtjLTJiR6CJWHL8ikLtPB2z6CoztG21wG3PT4="


HIGRESS_UNIT_VECTORS = [
    pytest.param(  # plugin_test.cc Sign
        "GET",
        "/Third/Tools/checkSign",
        {
            "accept": "application/json",
            "content-type": "application/json",
            "x-ca-timestamp": "1646365291734",
            "x-ca-nonce": "787dd0c2-7bd8-41cd-9c19-62c05ea524a2",
            "x-ca-key": "appKey",
            "x-ca-signature-headers": "x-ca-key,x-ca-nonce,x-ca-timestamp",
        },
        b"",
        "appSecret",
        "EdJSFAMOWyXZOpXhevZnjuS0ZafnwnCqaSk5hz+tXo8=",
        id="Sign",
    ),
    pytest.param(  # plugin_test.cc ParamInBody
        "POST",
        "/Third/User/getNyAccessToken",
        {
            "accept": "application/json",
            "content-type": "application/x-www-form-urlencoded",
            "x-ca-timestamp": "1646646682418",
            "x-ca-nonce": "ca5a6753-b76c-4fff-a9d9-e5bb643e8cdf",
            "x-ca-key": "appKey",
            "x-ca-signature-headers": "x-ca-key,x-ca-nonce,x-ca-timestamp",
        },
        b"nickname=nickname&room_id=6893&uuid=uuid&photo=photo",
        "appSecret",
        "gmf9xq0hc95Hmt+7G+OocS009ka3v1v0rvfshKzYc3w=",
        id="ParamInBody",
    ),
    pytest.param(  # plugin_test.cc DateCheck
        "POST",
        "/http2test/test?param1=test&username=xiaoming&password=123456789",
        {
            "accept": "application/json; charset=utf-8",
            "content-type": "application/x-www-form-urlencoded; charset=utf-8",
            "x-ca-timestamp": "1525872629832",
            "date": "Wed, 09 May 2018 13:30:29 GMT+00:00",
            "x-ca-nonce": "c9f15cbf-f4ac-4a6c-b54d-f51abf4b5b44",
            "x-ca-key": "203753385",
            "x-ca-signature-method": "HmacSHA256",
            "x-ca-signature-headers": "x-ca-timestamp,x-ca-key,x-ca-nonce,x-ca-signature-method",
        },
        b"",
        "123456",
        "FJbhmAFYz9zfl1FrThxzxBt79BvaHQIzy8Wpctn+xXE=",
        id="DateCheck",
    ),
]


@pytest.mark.parametrize(("method", "url", "headers", "body", "secret", "signature"), HIGRESS_UNIT_VECTORS)
def test_higress_unit_vectors_with_pure_functions_and_test_verifier(
    method: str, url: str, headers: dict[str, str], body: bytes, secret: str, signature: str
) -> None:
    path, _, query = url.partition("?")
    form = parse_params(body.decode()) if "form-urlencoded" in headers["content-type"] else []
    sts = string_to_sign(method, path, parse_params(query), headers, headers["x-ca-signature-headers"].split(","), form)
    assert hmac_signature(secret, sts) == signature
    # The same vectors validate the test's own verifier port.
    wire = Wire(method, httpx.URL(BASE_URL + url), httpx.Headers(headers | {"x-ca-signature": signature}), body)
    assert_signed(wire, {headers["x-ca-key"]: secret})


# ---------------------------------------------------------------------------------------------
# HMAC: real requests
# ---------------------------------------------------------------------------------------------

AK, SK = "ak-test-0001", "sk-very-secret-0001"


def hmac_auth(**extra: Any) -> httpx.Auth:
    return auth_from_credentials({"auth_method": "hmac", "hmac_access_key": AK, "hmac_secret_key": SK} | extra)


def test_hmac_signed_json_request() -> None:
    wire = send(hmac_auth(), json=CHAT_BODY)
    assert_signed(wire, {AK: SK})
    assert json.loads(wire.body) == CHAT_BODY
    assert wire.headers["content-md5"] == content_md5(wire.body)
    assert wire.headers["x-ca-key"] == AK
    assert wire.headers["x-ca-signature-method"] == "HmacSHA256"
    assert wire.headers["x-ca-signature-headers"] == SIGNED
    assert re.fullmatch(r"\d{13}", wire.headers["x-ca-timestamp"])
    assert uuid.UUID(wire.headers["x-ca-nonce"]).version == 4
    date = wire.headers["date"]
    assert re.fullmatch(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT", date)
    assert abs(parsedate_to_datetime(date).timestamp() - int(wire.headers["x-ca-timestamp"]) / 1000) < 1


@pytest.mark.parametrize("accept", ["application/json", "text/event-stream", "*/*", None])
def test_hmac_signs_the_accept_it_is_given_and_changes_it_not(accept: str | None) -> None:
    """The transport sets Accept for every scheme; HMAC covers it in the signature as it is."""
    headers = {"Accept": accept} if accept else {}
    wire = send(hmac_auth(), json=CHAT_BODY | {"stream": True}, headers=headers)
    assert wire.headers["accept"] == (accept or "*/*")  # httpx's own default when none is set
    assert_signed(wire, {AK: SK})


def test_hmac_sha1_signature_method() -> None:
    wire = send(hmac_auth(hmac_signature_method="HmacSHA1"), json=CHAT_BODY)
    assert wire.headers["x-ca-signature-method"] == "HmacSHA1"
    assert len(base64.b64decode(wire.headers["x-ca-signature"])) == 20
    assert_signed(wire, {AK: SK})


def test_hmac_multipart_upload_md5_covers_received_bytes() -> None:
    audio = bytes(range(256)) * 64
    wire = send(
        hmac_auth(),
        url="/v1/audio/transcriptions",
        files={"file": ("a.wav", audio, "audio/wav")},
        data={"model": "asr"},
    )
    assert wire.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert audio in wire.body
    assert wire.headers["content-md5"] == base64.b64encode(hashlib.md5(wire.body).digest()).decode()
    assert_signed(wire, {AK: SK})


def test_hmac_base_path_and_query_sorted_and_decoded() -> None:
    url = "/my-base/v1/chat/completions?z=1&a=b%20c&a=second&plus=x+y&u=%E4%B8%AD"
    wire = send(hmac_auth(), url=url, json=CHAT_BODY)
    sts = assert_signed(wire, {AK: SK})
    assert sts.endswith("\n/my-base/v1/chat/completions?a=b c&plus=x+y&u=中&z=1".encode())


def test_hmac_form_body_is_signed_as_parameters_without_md5() -> None:
    wire = send(hmac_auth(), url="/v1/form?q=1", data={"b": "2", "a": "x y", "q": "form-loses"})
    assert "content-md5" not in wire.headers
    sts = assert_signed(wire, {AK: SK})
    assert sts.endswith(b"\n/v1/form?a=x+y&b=2&q=1")


def test_hmac_empty_body_has_no_content_md5() -> None:
    for method in ("GET", "POST"):
        wire = send(hmac_auth(), method, "/v1/models")
        assert "content-md5" not in wire.headers
        assert_signed(wire, {AK: SK})


def test_hmac_fresh_nonce_per_request() -> None:
    recorder = Recorder()
    with make_client(hmac_auth(), recorder) as client:
        for _ in range(5):
            client.post(CHAT, json=CHAT_BODY)
    assert len({w.headers["x-ca-nonce"] for w in recorder.sent}) == 5
    for wire in recorder.sent:
        assert_signed(wire, {AK: SK})


def test_hmac_resending_the_same_request_re_signs_it() -> None:
    recorder = Recorder()
    with make_client(hmac_auth(), recorder) as client:
        request = client.build_request("POST", CHAT + "?x=1", json=CHAT_BODY)
        # Stale values a previous attempt (or a caller) may have left behind.
        request.headers["X-Ca-Signature"] = "stale"
        request.headers["Content-MD5"] = "stale"
        request.headers["Date"] = "2024-01-01 00:00:00"
        client.send(request)
        client.send(request)
    first, second = recorder.sent
    assert first.headers["x-ca-nonce"] != second.headers["x-ca-nonce"]
    for wire in (first, second):
        assert_signed(wire, {AK: SK})
        for name in (*HMAC_SIGNED_HEADERS, "x-ca-signature", "x-ca-signature-headers", "content-md5", "date"):
            assert wire.header_count(name) == 1, name


@pytest.mark.parametrize("kwargs", [{}, {"data": {"a": "1"}}], ids=["empty-body", "form-body"])
def test_hmac_drops_stale_content_md5_where_none_belongs(kwargs: dict[str, Any]) -> None:
    # Higress answers 400 to a Content-MD5 on an empty body, and form bodies are signed as params.
    recorder = Recorder()
    with make_client(hmac_auth(), recorder) as client:
        request = client.build_request("POST", "/v1/form", **kwargs)
        request.headers["Content-MD5"] = "stale"
        client.send(request)
    assert "content-md5" not in recorder.last.headers
    assert_signed(recorder.last, {AK: SK})


def test_hmac_async_client() -> None:
    async def run() -> Wire:
        recorder = Recorder()
        transport = httpx.MockTransport(recorder)
        async with httpx.AsyncClient(base_url=BASE_URL, transport=transport, auth=hmac_auth()) as client:
            await client.post(CHAT, json=CHAT_BODY | {"stream": True}, headers={"Accept": "text/event-stream"})
        return recorder.last

    wire = asyncio.run(run())
    assert wire.headers["accept"] == "text/event-stream"
    assert_signed(wire, {AK: SK})


# ---------------------------------------------------------------------------------------------
# Validation: every problem names its field, before any request, without echoing secrets
# ---------------------------------------------------------------------------------------------

SECRET_MARK = "S3CRET-VALUE-Zq9"
OCT = {"kty": "oct", "k": b64url(SECRET_MARK.encode() * 3)}


def invalid_cases() -> list[tuple[str, dict[str, Any], str]]:
    rsa_public_pem = (
        RSA_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    jwt_base = {
        "auth_method": "jwt",
        "jwt_consumer_id": "c-1",
        "jwt_jwks": json.dumps(OCT),
        "jwt_algorithm": "HS256",
    }
    hmac_base = {"auth_method": "hmac", "hmac_access_key": "ak-1", "hmac_secret_key": SECRET_MARK}
    return [
        ("unknown-method", {"auth_method": "oauth", "api_key": SECRET_MARK}, "auth_method"),
        ("api-key-missing", {}, "api_key"),
        ("api-key-blank", {"auth_method": "api_key", "api_key": "   "}, "api_key"),
        # A line break separates several keys (failover), so it can no longer smuggle a header in.
        ("api-key-control-character", {"api_key": SECRET_MARK + "\x00X-Evil: 1"}, "api_key"),
        ("api-key-non-ascii", {"api_key": SECRET_MARK + "é"}, "api_key"),
        ("api-key-bad-header", {"api_key": SECRET_MARK, "api_key_header": "Bad Header"}, "api_key_header"),
        ("api-key-host-header", {"api_key": SECRET_MARK, "api_key_header": "Host"}, "api_key_header"),
        ("jwks-missing", jwt_base | {"jwt_jwks": ""}, "jwt_jwks"),
        ("jwks-not-json", jwt_base | {"jwt_jwks": '{"kty": "oct", "k": "' + SECRET_MARK}, "jwt_jwks"),
        ("jwks-empty-set", jwt_base | {"jwt_jwks": '{"keys": []}'}, "jwt_jwks"),
        ("jwks-no-kty", jwt_base | {"jwt_jwks": json.dumps({"k": SECRET_MARK})}, "jwt_jwks"),
        ("oct-without-k", jwt_base | {"jwt_jwks": '{"kty": "oct"}'}, "jwt_jwks"),
        (
            "oct-bad-base64",
            jwt_base | {"jwt_jwks": json.dumps({"kty": "oct", "k": SECRET_MARK + "!*"})},
            "jwt_jwks",
        ),
        (
            "rsa-key-es256",
            jwt_base | {"jwt_jwks": json.dumps(private_jwk(RSA_KEY)), "jwt_algorithm": "ES256"},
            "jwt_jwks",
        ),
        ("oct-key-rs256", jwt_base | {"jwt_algorithm": "RS256"}, "jwt_jwks"),
        (
            "rsa-public-jwk",
            jwt_base | {"jwt_jwks": json.dumps(public_jwk(RSA_KEY)), "jwt_algorithm": "RS256"},
            "jwt_jwks",
        ),
        (
            "ec-public-jwk",
            jwt_base | {"jwt_jwks": json.dumps(public_jwk(EC_KEY)), "jwt_algorithm": "ES256"},
            "jwt_jwks",
        ),
        (
            "ec-wrong-curve",
            jwt_base | {"jwt_jwks": json.dumps(private_jwk(EC_KEY)), "jwt_algorithm": "ES384"},
            "jwt_jwks",
        ),
        ("ec-pem-as-rs256", jwt_base | {"jwt_jwks": pem(EC_KEY), "jwt_algorithm": "RS256"}, "jwt_jwks"),
        ("public-pem", jwt_base | {"jwt_jwks": rsa_public_pem, "jwt_algorithm": "RS256"}, "jwt_jwks"),
        ("pem-with-hs256", jwt_base | {"jwt_jwks": pem(RSA_KEY), "jwt_algorithm": "HS256"}, "jwt_jwks"),
        ("broken-pem", jwt_base | {"jwt_jwks": pem(RSA_KEY)[:200], "jwt_algorithm": "RS256"}, "jwt_jwks"),
        (
            "rsa-jwk-broken-d",
            jwt_base | {"jwt_jwks": json.dumps(private_jwk(RSA_KEY) | {"d": SECRET_MARK})},
            "jwt_jwks",
        ),
        ("unknown-algorithm", jwt_base | {"jwt_algorithm": "RS999"}, "jwt_algorithm"),
        ("alg-mismatch", jwt_base | {"jwt_jwks": json.dumps(OCT | {"alg": "HS512"})}, "jwt_algorithm"),
        ("consumer-missing", jwt_base | {"jwt_consumer_id": ""}, "jwt_consumer_id"),
        ("expiration-text", jwt_base | {"jwt_expiration": "soon"}, "jwt_expiration"),
        ("expiration-zero", jwt_base | {"jwt_expiration": "0"}, "jwt_expiration"),
        ("expiration-negative", jwt_base | {"jwt_expiration": "-5"}, "jwt_expiration"),
        ("expiration-fraction", jwt_base | {"jwt_expiration": 1.5}, "jwt_expiration"),
        ("expiration-too-long", jwt_base | {"jwt_expiration": 7 * 24 * 3600 + 1}, "jwt_expiration"),
        ("expiration-bool", jwt_base | {"jwt_expiration": True}, "jwt_expiration"),
        ("jwt-bad-header", jwt_base | {"jwt_header_name": "X Token"}, "jwt_header_name"),
        ("jwt-bad-prefix", jwt_base | {"jwt_header_prefix": "Bea\rrer"}, "jwt_header_prefix"),
        ("jwt-time-claim", jwt_base | {"jwt_consumer_claim": "exp"}, "jwt_consumer_claim"),
        ("hmac-ak-missing", hmac_base | {"hmac_access_key": ""}, "hmac_access_key"),
        ("hmac-sk-empty", hmac_base | {"hmac_secret_key": "  "}, "hmac_secret_key"),
        (
            "hmac-sk-missing",
            {k: v for k, v in hmac_base.items() if k != "hmac_secret_key"},
            "hmac_secret_key",
        ),
        ("hmac-unknown-method", hmac_base | {"hmac_signature_method": "HmacMD5"}, "hmac_signature_method"),
    ]


def secret_fragments(credentials: Mapping[str, Any]) -> list[str]:
    """Every secret value, plus the private members / PEM lines of any key material."""
    fragments = [SECRET_MARK]
    for field in ("api_key", "hmac_secret_key", "jwt_jwks"):
        value = str(credentials.get(field) or "").strip()
        if len(value) >= 8:
            fragments.append(value)
    raw = str(credentials.get("jwt_jwks") or "")
    fragments += [line for line in raw.splitlines() if len(line) >= 16 and "-----" not in line]
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    keys = document.get("keys", [document]) if isinstance(document, dict) else []
    for jwk in keys:
        if isinstance(jwk, dict):
            fragments += [str(jwk[m]) for m in ("k", "d", "p", "q", "dp", "dq", "qi") if m in jwk]
    return fragments


@pytest.mark.parametrize(
    ("case", "credentials", "field"), invalid_cases(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_invalid_credentials_name_the_field_and_hide_secrets(
    case: str, credentials: dict[str, Any], field: str
) -> None:
    frozen = MappingProxyType(copy.deepcopy(credentials))
    with pytest.raises(CredentialsValidateFailedError) as caught:
        auth_config(frozen)  # no client exists: the error comes before any request
    message = str(caught.value)
    assert message.startswith(f"Credential field '{field}': "), message
    rendered = "".join(traceback.format_exception(caught.value))  # chained causes included
    for fragment in secret_fragments(credentials):
        assert fragment not in rendered
    assert dict(frozen) == credentials


@pytest.mark.parametrize(
    ("value", "lifetime"),
    [(None, 3600), ("", 3600), ("7200", 7200), (60, 60), (60.0, 60), ("604800", 604800)],
)
def test_jwt_expiration_accepted_forms(value: Any, lifetime: int) -> None:
    credentials = jwt_credentials(json.dumps(OCT), "HS256", jwt_expiration=value)
    wire = send(auth_from_credentials(credentials), json={})
    _, claims = decode(token_from(wire), base64.urlsafe_b64decode(OCT["k"] + "=" * (-len(OCT["k"]) % 4)), "HS256")
    assert claims["exp"] - claims["iat"] == lifetime


def test_auth_method_is_case_insensitive_and_defaults_to_api_key() -> None:
    assert isinstance(auth_config({"api_key": "k"}), ApiKeyConfig)
    assert isinstance(auth_config({"auth_method": "", "api_key": "k"}), ApiKeyConfig)
    assert isinstance(auth_config({"auth_method": "HMAC", "hmac_access_key": "a", "hmac_secret_key": "s"}), HmacConfig)


# ---------------------------------------------------------------------------------------------
# Secrets stay out of repr, logs, bodies; credentials are never mutated
# ---------------------------------------------------------------------------------------------


def all_scheme_credentials() -> dict[str, dict[str, Any]]:
    return {
        "api_key": {"auth_method": "api_key", "api_key": "sk-" + SECRET_MARK},
        "api_key_header": {
            "auth_method": "api_key",
            "api_key": "sk-" + SECRET_MARK,
            "api_key_header": "X-Key",
        },
        "jwt_hs": jwt_credentials(json.dumps(OCT | {"kid": "kid-1"}), "HS256"),
        "jwt_rs": jwt_credentials(pem(RSA_KEY), "RS256"),
        "hmac": {
            "auth_method": "hmac",
            "hmac_access_key": "ak-" + SECRET_MARK,
            "hmac_secret_key": "sk-" + SECRET_MARK,
        },
    }


def test_no_secret_in_repr_logs_or_body(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name, credentials in all_scheme_credentials().items():
        frozen = MappingProxyType(copy.deepcopy(credentials))
        config = auth_config(frozen)
        auth = config.client_auth()
        wire = send(auth, json=CHAT_BODY)
        sent_secrets = [
            value
            for key, value in wire.headers.items()
            if key in ("authorization", "x-key", "x-ca-signature", "x-ca-key")
        ]
        tokens = [v.split(" ")[-1] for v in sent_secrets]
        forbidden = [*secret_fragments(credentials), *sent_secrets, *tokens, "sk-" + SECRET_MARK]
        assert json.loads(wire.body) == CHAT_BODY, name
        for text in (repr(config), str(config), repr(auth), str(auth), caplog.text):
            for fragment in forbidden:
                assert fragment not in text, (name, text)
        assert type(auth).__name__ in repr(auth)
        assert dict(frozen) == credentials
    assert not [r for r in caplog.records if r.name.startswith("adapters")]


# ---------------------------------------------------------------------------------------------
# Concurrency: one shared auth object per credential set, many threads
# ---------------------------------------------------------------------------------------------


def test_concurrent_requests_carry_their_own_credentials() -> None:
    credential_sets = [
        {"auth_method": "api_key", "api_key": "key-set-0"},
        jwt_credentials(json.dumps({"kty": "oct", "k": b64url(HS_SECRET)}), "HS256", jwt_consumer_id="consumer-1"),
        {"auth_method": "hmac", "hmac_access_key": "ak-set-2", "hmac_secret_key": "sk-set-2"},
    ]
    auths = [auth_from_credentials(c) for c in credential_sets]
    mismatches: list[str] = []

    def identify(request: httpx.Request) -> int | None:
        wire = Wire(request.method, request.url, httpx.Headers(request.headers), request.content)
        authorization = request.headers.get("authorization", "")
        if "x-ca-key" in request.headers:
            ok = higress_verify(wire, {"ak-set-2": "sk-set-2"})[0] == "ok" and not authorization
            return 2 if ok else None
        if authorization == "Bearer key-set-0":
            return 0
        claims = jwt.decode(authorization.removeprefix("Bearer "), HS_SECRET, algorithms=["HS256"])
        return 1 if claims["uid"] == "consumer-1" else None

    recorder = Recorder()

    def handler(request: httpx.Request) -> httpx.Response:
        expected = json.loads(request.content)["set"]
        if identify(request) != expected:
            mismatches.append(f"request for set {expected} carried other credentials")
        return recorder(request)

    barrier = threading.Barrier(10)

    def call(i: int) -> int:
        if i < 10:
            barrier.wait(timeout=5)  # make the first wave start together
        return client.post(CHAT, json={"set": i % 3, "n": i}, auth=auths[i % 3]).status_code

    transport = httpx.MockTransport(handler)
    with httpx.Client(base_url=BASE_URL, transport=transport) as client, ThreadPoolExecutor(25) as pool:
        statuses = list(pool.map(call, range(50)))
    assert statuses == [200] * 50
    assert not mismatches
    nonces = [w.headers["x-ca-nonce"] for w in recorder.sent if "x-ca-nonce" in w.headers]
    assert len(nonces) == len(set(nonces)) == 16  # i % 3 == 2 for 16 of 0..49


# ---------------------------------------------------------------------------------------------
# Small pure helpers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        ("", []),
        ("a=1&b=x%20y", [("a", "1"), ("b", "x y")]),
        ("plus=x+y", [("plus", "x+y")]),  # Higress decodes %XX only
        ("flag&k=", [("flag", ""), ("k", "")]),
        ("a=1&", [("a", "1")]),
        ("u=%E4%B8%AD", [("u", "中")]),
    ],
)
def test_parse_params_mirrors_higress(encoded: str, expected: Iterable[tuple[str, str]]) -> None:
    assert parse_params(encoded) == list(expected)


def test_query_first_value_wins_and_beats_form() -> None:
    sts = string_to_sign("POST", "/p", [("a", "1"), ("a", "2")], {}, [], [("a", "form"), ("b", "f")])
    assert sts.endswith("\n/p?a=1&b=f")


def test_content_md5_matches_definition() -> None:
    assert content_md5(b"abc") == "kAFQmDzST7DWlj99KOF/cg=="  # Higress BodyMD5 unit test
