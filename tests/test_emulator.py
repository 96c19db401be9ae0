"""Tests of the gateway emulator itself (tests/emulator), against its real loopback server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import ssl
import struct
import subprocess
import sys
import threading
import time
import uuid
import wave
from collections.abc import Iterator
from email.utils import formatdate
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx
import jwt
import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.emulator import (
    DEFAULT_MODELS,
    DENY_MESSAGE,
    Consumer,
    GatewayEmulator,
    Headers,
    Request,
    embedding_vector,
    overlap_score,
    serve,
    string_to_sign_text,
)
from tests.emulator.faults import parse_faults
from tests.emulator.hmac_auth import HmacCredential, HmacVerifier
from tests.emulator.wire import Pause

ROOT = Path(__file__).resolve().parent.parent
MODEL = "qwen-max"

# --- reference signer (written from Higress hmac_auth README_EN.md), the independent client side

_FIXED = ("accept", "content-md5", "content-type", "date")
_SKIP = {"x-ca-signature", "x-ca-signature-headers", *_FIXED}


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def ref_string_to_sign(method, path, query, headers, signed_names, form_params=()):
    h = {k.lower(): v for k, v in headers.items()}
    sts = "\n".join([method.upper()] + [h.get(k, "") for k in _FIXED]) + "\n"
    for n in sorted({n.strip().lower() for n in signed_names if n.strip()} - _SKIP):
        sts += f"{n}:{h.get(n, '')}\n"
    params: dict[str, str] = {}
    for k, v in list(query) + list(form_params):
        params.setdefault(k, v)
    sts += path
    if params:
        sts += "?" + "&".join(f"{k}={params[k]}" for k in sorted(params))
    return sts


def sign_headers(
    method,
    url_path,
    app_key,
    app_secret,
    body=b"",
    headers=None,
    signature_method="HmacSHA256",
    with_content_md5=True,
    timestamp_ms=None,
    nonce=None,
    date=None,
):
    headers = dict(headers or {})
    if "accept" not in {k.lower() for k in headers}:
        headers["Accept"] = "application/json"
    if date is not None:
        headers["Date"] = date
    ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    is_form = "application/x-www-form-urlencoded" in ctype.lower()
    form = parse_qsl(body.decode(), keep_blank_values=True) if is_form and body else []
    if body and not is_form and with_content_md5:
        headers["Content-MD5"] = content_md5(body)
    headers.update(
        {
            "X-Ca-Key": app_key,
            "X-Ca-Timestamp": str(timestamp_ms or int(time.time() * 1000)),
            "X-Ca-Nonce": nonce or str(uuid.uuid4()),
            "X-Ca-Signature-Method": signature_method,
        }
    )
    signed = ["x-ca-key", "x-ca-nonce", "x-ca-signature-method", "x-ca-timestamp"]
    headers["X-Ca-Signature-Headers"] = ",".join(signed)
    path, _, qs = url_path.partition("?")
    query = [(unquote(k), unquote(v)) for k, _, v in (p.partition("=") for p in qs.split("&") if p)]
    sts = ref_string_to_sign(method, path, query, headers, signed, form)
    alg = hashlib.sha1 if signature_method == "HmacSHA1" else hashlib.sha256
    headers["X-Ca-Signature"] = base64.b64encode(hmac.new(app_secret.encode(), sts.encode(), alg).digest()).decode()
    return headers, sts


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_gateway() -> Iterator[tuple[GatewayEmulator, httpx.Client]]:
    """An emulator without consumer auth, shared by the content tests of this module."""
    emulator = GatewayEmulator(models=DEFAULT_MODELS)
    with serve(emulator) as base_url, httpx.Client(base_url=base_url, timeout=5) as client:
        yield emulator, client


@pytest.fixture
def gw(open_gateway: tuple[GatewayEmulator, httpx.Client]) -> tuple[GatewayEmulator, httpx.Client]:
    open_gateway[0].clear()
    return open_gateway


def chat_body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def sse_events(raw: bytes) -> list[str]:
    """data payloads of an SSE body, accepting `data:` with or without the space."""
    out = []
    for block in raw.decode("utf-8").split("\n\n"):
        if block.startswith("data:"):
            out.append(block[len("data:") :].lstrip(" "))
    return out


def chunks_of(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(e) for e in sse_events(raw) if e != "[DONE]"]


# --- HMAC ------------------------------------------------------------------------------------

V1_BODY = b'{"model":"qwen-max","messages":[{"role":"user","content":"hi"}],"stream":false}'
V2_BODY = json.dumps(
    {
        "model": "gte-rerank-v2",
        "input": {"query": "什么是文本排序", "documents": ["a", "b"]},
        "parameters": {"top_n": 1},
    },
    ensure_ascii=False,
    separators=(",", ":"),
).encode("utf-8")

VECTORS = [
    pytest.param(
        "POST",
        "/v1/chat/completions",
        "test-ak",
        "test-sk",
        V1_BODY,
        {"Content-Type": "application/json"},
        "Tue, 14 Nov 2023 22:13:20 GMT",
        1700000000000,
        "11111111-2222-3333-4444-555555555555",
        "cM1DsFt+1IdKM6PBKcjpmQ==",
        "Zzat44JyCJmjaDpbRCjQsr6jRpTf1Nz/zwYz67vjB/o=",
        id="V1",
    ),
    pytest.param(
        "POST",
        "/ai/api/v1/services/rerank/text-rerank/text-rerank?a=1&b=x%20y",
        "203753385",
        "123456",
        V2_BODY,
        {"Content-Type": "application/json; charset=utf-8"},
        "Wed, 09 May 2018 13:30:29 GMT",
        1525872629832,
        "c9f15cbf-f4ac-4a6c-b54d-f51abf4b5b44",
        "5LhhaJ1a41D80c8pPKlVAA==",
        "xXsMyj5PIzOdDleh20jKsmGSMnaQbWshjruUZoYCx9w=",
        id="V2",
    ),
    pytest.param(
        "GET",
        "/v1/models",
        "appKey",
        "appSecret",
        b"",
        {},
        "Fri, 04 Mar 2022 03:41:31 GMT",
        1646365291734,
        "787dd0c2-7bd8-41cd-9c19-62c05ea524a2",
        None,
        "nxjyROgReF3j1xTK2lFTgx1nX9xKX4FpXkuLlo3T1Tc=",
        id="V3",
    ),
]


@pytest.mark.parametrize(
    ("method", "target", "ak", "sk", "body", "extra", "date", "ts", "nonce", "md5", "sig"), VECTORS
)
def test_hmac_vectors(method, target, ak, sk, body, extra, date, ts, nonce, md5, sig) -> None:
    headers, ref_sts = sign_headers(method, target, ak, sk, body, extra, timestamp_ms=ts, nonce=nonce, date=date)
    assert headers.get("Content-MD5") == md5
    assert headers["X-Ca-Signature"] == sig
    assert string_to_sign_text(method, target, headers, body) == ref_sts
    verifier = HmacVerifier({ak: HmacCredential("c", sk)}, date_offset=None, clock=time.time)
    assert verifier.verify(Request(method, target, Headers(headers), body)) == "c"


def test_hmac_v1_string_to_sign_exact() -> None:
    headers, _ = sign_headers(
        "POST",
        "/v1/chat/completions",
        "test-ak",
        "test-sk",
        V1_BODY,
        {"Content-Type": "application/json"},
        timestamp_ms=1700000000000,
        nonce="11111111-2222-3333-4444-555555555555",
        date="Tue, 14 Nov 2023 22:13:20 GMT",
    )
    expected = (
        "POST\napplication/json\ncM1DsFt+1IdKM6PBKcjpmQ==\napplication/json\nTue, 14 Nov 2023 22:13:20 GMT\n"
        "x-ca-key:test-ak\nx-ca-nonce:11111111-2222-3333-4444-555555555555\nx-ca-signature-method:HmacSHA256\n"
        "x-ca-timestamp:1700000000000\n/v1/chat/completions"
    )
    assert string_to_sign_text("POST", "/v1/chat/completions", headers, V1_BODY) == expected


def test_hmac_higress_quirks() -> None:
    # Zero signed headers: Date line straight into the path (Higress SignWithoutDynamicHeader).
    hdrs = {"Accept": "application/json"}
    assert (
        string_to_sign_text("GET", "/Third/Tools/checkSign", hdrs)
        == "GET\napplication/json\n\n\n\n/Third/Tools/checkSign"
    )
    # Query decoded ('+' kept), sorted; first value wins; a bare key keeps its raw text.
    sts = string_to_sign_text("GET", "/p?b=2&a=x%2By+z&b=9&c%41", {})
    assert sts.endswith("/p?a=x+y+z&b=2&c%41=")
    # Form params join the query; query values win over form values.
    form_hdrs = {"Content-Type": "application/x-www-form-urlencoded"}
    assert string_to_sign_text("POST", "/f?k=q", form_hdrs, b"k=f&z=1").endswith("/f?k=q&z=1")


HMAC_AK, HMAC_SK = "ak-live", "sk-live-secret"


@pytest.fixture(scope="module")
def hmac_gateway() -> Iterator[tuple[GatewayEmulator, str]]:
    emulator = GatewayEmulator(
        [Consumer("team-h", hmac_access_key=HMAC_AK, hmac_secret_key=HMAC_SK)], models=DEFAULT_MODELS
    )
    with serve(emulator) as base_url:
        yield emulator, base_url


def test_hmac_signed_request_accepted_and_tampering_rejected(hmac_gateway: tuple[GatewayEmulator, str]) -> None:
    emulator, base_url = hmac_gateway
    path = "/team-h/v1/chat/completions?stage=RELEASE"
    body = json.dumps(chat_body("signed hello")).encode()
    headers, _ = sign_headers("POST", path, HMAC_AK, HMAC_SK, body, {"Content-Type": "application/json"})
    ok = httpx.post(base_url + path, content=body, headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["choices"][0]["message"]["content"] == "echo: signed hello"
    assert emulator.received[-1].consumer == "team-h"
    assert emulator.received[-1].body == body

    tampered = httpx.post(base_url + path, content=body.replace(b"hello", b"HELLO"), headers=headers)
    assert (tampered.status_code, tampered.text) == (400, "Invalid Content-MD5")
    assert emulator.received[-1].consumer is None

    bad_sig = httpx.post(base_url + path, content=body, headers={**headers, "X-Ca-Signature": "AAAA"})
    assert (bad_sig.status_code, bad_sig.text) == (400, "Invalid Signature")
    tip = bad_sig.headers["X-Ca-Error-Message"]
    assert tip.startswith("Server StringToSign:`POST#application/json#") and tip.endswith(
        "#/team-h/v1/chat/completions?stage=RELEASE`"
    )


def test_hmac_denials(hmac_gateway: tuple[GatewayEmulator, str]) -> None:
    _, base_url = hmac_gateway
    path = "/v1/models"
    headers, _ = sign_headers("GET", path, HMAC_AK, HMAC_SK)
    assert httpx.get(base_url + path, headers=headers).status_code == 200
    no_key = httpx.get(base_url + path)
    assert (no_key.status_code, no_key.text) == (401, "Invalid Key")
    unknown = httpx.get(base_url + path, headers={**headers, "X-Ca-Key": "nope"})
    assert (unknown.status_code, unknown.text) == (401, "Invalid Key")
    no_sig = {k: v for k, v in headers.items() if k != "X-Ca-Signature"}
    assert httpx.get(base_url + path, headers=no_sig).text == "Empty Signature"
    bad_date, _ = sign_headers("GET", path, HMAC_AK, HMAC_SK, date="2024-01-01 00:00:00")
    r = httpx.get(base_url + path, headers=bad_date)
    assert (r.status_code, r.text) == (400, "Invalid Date")
    good_date, _ = sign_headers("GET", path, HMAC_AK, HMAC_SK, date=formatdate(usegmt=True))
    assert httpx.get(base_url + path, headers=good_date).status_code == 200
    old, _ = sign_headers("GET", path, HMAC_AK, HMAC_SK, timestamp_ms=int((time.time() - 3600) * 1000))
    assert httpx.get(base_url + path, headers=old).text == "Invalid Date"


# --- API key ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key_gateway() -> Iterator[tuple[GatewayEmulator, str]]:
    emulator = GatewayEmulator(
        [
            Consumer("team-a", api_key="sk-test-a"),
            Consumer("team-x", api_key="sk-test-x", api_key_header="X-API-Key"),
            Consumer("team-q", api_key="sk-test-q", api_key_query="apikey"),
        ]
    )
    with serve(emulator) as base_url:
        yield emulator, base_url


def test_api_key_sources(key_gateway: tuple[GatewayEmulator, str]) -> None:
    emulator, base_url = key_gateway
    url = base_url + "/team/v1/chat/completions"
    body = chat_body("hi")
    r = httpx.post(url, json=body, headers={"Authorization": "Bearer sk-test-a"})
    assert r.status_code == 200 and emulator.received[-1].consumer == "team-a"
    r = httpx.post(url, json=body, headers={"X-API-Key": "sk-test-x"})
    assert r.status_code == 200 and emulator.received[-1].consumer == "team-x"
    r = httpx.post(url + "?apikey=sk-test-q", json=body)
    assert r.status_code == 200 and emulator.received[-1].consumer == "team-q"
    assert emulator.received[-1].query == "apikey=sk-test-q"


def test_api_key_denials(key_gateway: tuple[GatewayEmulator, str]) -> None:
    emulator, base_url = key_gateway
    emulator.clear()
    url = base_url + "/v1/chat/completions"
    missing = httpx.post(url, json=chat_body("hi"))
    assert missing.status_code == 401
    assert missing.text == "Request denied by Key Auth check. No Key Authentication information found."
    assert missing.headers["WWW-Authenticate"] == "Key realm=MSE Gateway"
    unknown = httpx.post(url, json=chat_body("hi"), headers={"Authorization": "Bearer sk-nope"})
    assert (unknown.status_code, unknown.text) == (403, "Request denied by Key Auth check. Unauthorized consumer.")
    bare = httpx.post(url, json=chat_body("hi"), headers={"Authorization": "sk-test-a"})  # verbatim: no Bearer
    assert bare.status_code == 403
    both = httpx.post(
        url, json=chat_body("hi"), headers={"Authorization": "Bearer sk-test-a", "X-API-Key": "sk-test-x"}
    )
    assert both.status_code == 401 and "Muti Key" in both.text
    assert emulator.hits("/v1/chat/completions") == 4  # rejected requests are recorded too
    assert all(r.consumer is None for r in emulator.received)


# --- JWT -------------------------------------------------------------------------------------

HS_SECRET = b"an-hs256-secret-of-32-bytes-ok!!"
_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwt_gateway() -> Iterator[str]:
    hs_jwks = {"keys": [{"kty": "oct", "kid": "hs", "alg": "HS256", "k": base64.urlsafe_b64encode(HS_SECRET).decode()}]}
    rs_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(_RSA_KEY.public_key(), as_dict=True)
    emulator = GatewayEmulator([Consumer("team-j", jwt_jwks=hs_jwks, jwt_claim_value="uid-1", jwt_issuer="dify")])
    rs_emulator = GatewayEmulator(
        [Consumer("team-r", jwt_jwks={"keys": [{**rs_jwk, "kid": "r1"}]}, jwt_claim_value="uid-2")]
    )
    with serve(emulator) as hs_url, serve(rs_emulator) as rs_url:
        yield hs_url, rs_url


def _jwt_post(url: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(url + "/v1/chat/completions", json=chat_body("jwt"), headers=headers)


def test_jwt_hs256_and_rs256_accepted(jwt_gateway: tuple[str, str]) -> None:
    hs_url, rs_url = jwt_gateway
    now = int(time.time())
    hs = jwt.encode({"uid": "uid-1", "iss": "dify", "exp": now + 60}, HS_SECRET, "HS256", headers={"kid": "hs"})
    assert _jwt_post(hs_url, hs).status_code == 200
    rs = jwt.encode({"uid": "uid-2", "iat": now}, _RSA_KEY, "RS256", headers={"kid": "r1"})
    assert _jwt_post(rs_url, rs).status_code == 200


def test_jwt_denials(jwt_gateway: tuple[str, str]) -> None:
    hs_url, _ = jwt_gateway
    now = int(time.time())
    expired = jwt.encode({"uid": "uid-1", "iss": "dify", "exp": now - 120}, HS_SECRET, "HS256")
    r = _jwt_post(hs_url, expired)
    assert (r.status_code, r.text) == (401, "Request denied by JWT Auth check. JWT is expired.")
    assert r.headers["WWW-Authenticate"] == "JWT realm=MSE Gateway"
    within_skew = jwt.encode({"uid": "uid-1", "iss": "dify", "exp": now - 30}, HS_SECRET, "HS256")
    assert _jwt_post(hs_url, within_skew).status_code == 200
    wrong_claim = jwt.encode({"uid": "someone-else", "iss": "dify"}, HS_SECRET, "HS256")
    r = _jwt_post(hs_url, wrong_claim)
    assert (r.status_code, r.text) == (403, "Request denied by JWT Auth check. Unauthorized consumer.")
    wrong_key = jwt.encode({"uid": "uid-1", "iss": "dify"}, b"x" * 32, "HS256")
    assert _jwt_post(hs_url, wrong_key).text == "Request denied by JWT Auth check. JWT verification fails"
    wrong_iss = jwt.encode({"uid": "uid-1", "iss": "other"}, HS_SECRET, "HS256")
    assert _jwt_post(hs_url, wrong_iss).status_code == 401
    assert _jwt_post(hs_url, None).text == "Request denied by JWT Auth check. JWT is missing."


# --- chat ------------------------------------------------------------------------------------


def test_chat_json(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    emulator, client = gw
    body = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "what is"}, {"type": "image_url", "image_url": {}}]},
        ],
    }
    data = client.post("/base/path/v1/chat/completions", json=body).json()
    assert data["id"] == "chatcmpl-1" and data["model"] == MODEL and data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"] == "echo: what is [images: 1]"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 5,
        "total_tokens": 9,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert data["system_fingerprint"] is None and data["choices"][0]["logprobs"] is None
    assert emulator.received[-1].path == "/base/path/v1/chat/completions"
    minimal = client.post("/_fault/minimal-shapes/v1/chat/completions", json=body).json()
    assert minimal["usage"] == {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}
    assert "system_fingerprint" not in minimal and next(iter(minimal)) == "id"
    stopped = client.post("/v1/chat/completions", json=chat_body("one two three", stop=["two"])).json()
    assert stopped["choices"][0]["message"]["content"] == "echo: one "


def test_chat_stream(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    _, client = gw
    r = client.post("/v1/chat/completions", json=chat_body("hello big world", stream=True))
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.content)
    assert events[-1] == "[DONE]"
    chunks = chunks_of(r.content)
    assert chunks[0]["choices"][0]["delta"] == {"content": "", "role": "assistant"}
    assert all(c["usage"] is None and c["system_fingerprint"] is None for c in chunks[:-1])
    content = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert "".join(x for x in content if x) == "echo: hello big world"
    assert [x for x in content if x] == ["echo: ", "hello ", "big ", "world"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
    minimal = chunks_of(
        client.post("/_fault/minimal-shapes/v1/chat/completions", json=chat_body("hi", stream=True)).content
    )
    assert minimal[0]["choices"][0]["delta"] == {"role": "assistant", "content": "echo: "}
    assert all("usage" not in c for c in minimal[:-1])
    no_usage = client.post(
        "/v1/chat/completions", json=chat_body("x", stream=True, stream_options={"include_usage": False})
    )
    assert all(c["choices"] for c in chunks_of(no_usage.content))


def test_chat_tool_call_stream_fragments(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    _, client = gw
    tools = [{"type": "function", "function": {"name": "search", "parameters": {}}}]
    r = client.post("/v1/chat/completions", json=chat_body("weather in paris", stream=True, tools=tools))
    deltas = [c["choices"][0] for c in chunks_of(r.content) if c["choices"]]
    assert deltas[0]["delta"]["role"] == "assistant"  # the call's first fragment opens the answer
    first = deltas[0]["delta"]["tool_calls"][0]
    assert first["id"].startswith("call_") and first["function"] == {"name": "search", "arguments": ""}
    fragments = [d["delta"]["tool_calls"][0] for d in deltas[1:-1]]
    # DashScope repeats id "" and the type on every later fragment, and ends with an empty one.
    assert all(
        f["id"] == ""
        and f["type"] == "function"
        and "name" not in f["function"]
        and len(f["function"]["arguments"]) <= 5
        for f in fragments
    )
    assert fragments[-1]["function"]["arguments"] == "" and "finish_reason" not in deltas[-2]
    assert "".join(f["function"]["arguments"] for f in fragments) == json.dumps({"query": "weather in paris"})
    assert deltas[-1]["finish_reason"] == "tool_calls" and deltas[-1]["delta"] == {}
    minimal = client.post(
        "/_fault/minimal-shapes/v1/chat/completions", json=chat_body("weather in paris", stream=True, tools=tools)
    )
    minimal_fragments = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks_of(minimal.content)[1:-2]]
    assert minimal_fragments and all(set(f) == {"index", "function"} for f in minimal_fragments)
    follow_up = {
        "model": MODEL,
        "tools": tools,
        "messages": [
            {"role": "user", "content": "weather in paris"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function"}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
    }
    reply = client.post("/v1/chat/completions", json=follow_up).json()["choices"][0]["message"]
    assert reply["content"] == "echo: tool result: sunny"


def test_chat_reasoning_and_json_mode(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    _, client = gw
    msg = client.post("/v1/chat/completions", json=chat_body("why", enable_thinking=True)).json()["choices"][0][
        "message"
    ]
    assert (msg["reasoning_content"], msg["content"]) == ("thinking about: why", "echo: why")
    body = {**chat_body("why", stream=True), "model": "qwq-plus"}
    deltas = [
        c["choices"][0]["delta"]
        for c in chunks_of(client.post("/v1/chat/completions", json=body).content)
        if c["choices"]
    ]
    kinds = [
        next(k for k in ("reasoning_content", "content") if d.get(k))
        for d in deltas
        if any(d.values()) and "role" not in d
    ]
    assert kinds == ["reasoning_content"] * 3 + ["content"] * 2
    # content null beside each reasoning delta, reasoning_content null beside each answer delta
    assert [d["content"] for d in deltas[1:4]] == [None] * 3 and [d["reasoning_content"] for d in deltas[4:6]] == [
        None
    ] * 2
    fmt = chat_body("hi", response_format={"type": "json_object"})
    assert json.loads(client.post("/v1/chat/completions", json=fmt).json()["choices"][0]["message"]["content"]) == {
        "echo": "hi"
    }


def test_strict_fields() -> None:
    emulator = GatewayEmulator(strict_fields=True)
    ok = emulator.handle("POST", "/v1/chat/completions", json_body=chat_body("hi", enable_thinking=False, top_k=3))
    assert ok.status == 200
    bad = emulator.handle("POST", "/v1/chat/completions", json_body=chat_body("hi", foo=1))
    assert bad.status == 400
    assert json.loads(bad.read()) == {
        "error": {
            "message": "Unrecognized request argument supplied: foo",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    assert emulator.received[-1].json()["foo"] == 1


def test_content_security_block(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    _, client = gw
    blocked = client.post("/v1/chat/completions", json=chat_body("please BLOCK_ME")).json()
    assert blocked["model"] == "from-security-guard"
    deny = json.loads(blocked["choices"][0]["message"]["content"])
    assert deny["blockedDetails"] == [{"Suggestion": "block", "Type": "contentModeration", "Level": "high"}]
    assert deny["requestId"] and deny["guardCode"] == 200 and "denyMessage" not in deny
    older = client.post("/_fault/guard-deny-text/v1/chat/completions", json=chat_body("please BLOCK_ME")).json()
    assert older["choices"][0]["message"]["content"] == DENY_MESSAGE

    r = client.post("/v1/chat/completions", json=chat_body("please BLOCK_ME", stream=True))
    assert r.headers["content-type"] == "text/event-stream;charset=UTF-8"
    assert r.content.startswith(b'data:{"id":"chatcmpl-')
    assert r.content.count(b"\n\ndata:{") == 1 and r.content.endswith(b"\n\ndata: [DONE]")

    mid = client.post("/v1/chat/completions", json=chat_body("a b BLOCK_MIDSTREAM", stream=True)).content
    chunks = chunks_of(mid)
    assert [c["model"] for c in chunks] == [MODEL, MODEL, "from-security-guard", "from-security-guard"]
    assert chunks[0]["id"] != chunks[2]["id"] and b"}\n\ndata:{" in mid


def test_legacy_completions(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    _, client = gw
    data = client.post("/v1/completions", json={"model": MODEL, "prompt": "say this"}).json()
    assert data["choices"][0]["text"] == "echo: say this" and data["usage"]["total_tokens"] == 5
    chunks = chunks_of(client.post("/v1/completions", json={"model": MODEL, "prompt": "a b", "stream": True}).content)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "echo: a b"
    assert chunks[-1]["usage"]["completion_tokens"] == 3


# --- embeddings and rerank -------------------------------------------------------------------


def test_embeddings(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    _, client = gw
    floats = client.post(
        "/v1/embeddings", json={"model": "text-embedding-v3", "input": ["a b", "c"], "dimensions": 4}
    ).json()
    assert [d["index"] for d in floats["data"]] == [0, 1] and floats["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    vector = floats["data"][0]["embedding"]
    assert vector == list(embedding_vector("a b", 4)) and abs(sum(v * v for v in vector) - 1) < 1e-5
    b64 = client.post(
        "/v1/embeddings", json={"model": "m", "input": "a b", "dimensions": 4, "encoding_format": "base64"}
    )
    assert list(struct.unpack("<4f", base64.b64decode(b64.json()["data"][0]["embedding"]))) == vector
    too_many = client.post("/v1/embeddings", json={"model": "m", "input": ["x"] * 11})
    assert too_many.status_code == 400
    assert too_many.json()["message"] == "batch size is invalid, it should not be larger than 10."
    native = client.post(
        "/api/v1/services/embeddings/text-embedding/text-embedding",
        json={"model": "text-embedding-v3", "input": {"texts": ["a b"]}, "parameters": {"dimension": 4}},
    ).json()
    assert native["output"]["embeddings"][0] == {"text_index": 0, "embedding": vector}
    assert native["usage"] == {"total_tokens": 2} and native["request_id"]


DOCS = ["cats purr", "dogs bark loudly", "the quick fox"]


def test_rerank_dialects(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    _, client = gw
    query = "do dogs bark"
    cohere = client.post(
        "/v1/rerank", json={"model": "m", "query": query, "documents": DOCS, "top_n": 2, "return_documents": True}
    )
    results = cohere.json()["results"]
    assert [r["index"] for r in results] == [1, 0] and results[0]["relevance_score"] == overlap_score(query, DOCS[1])
    assert results[0]["document"] == {"text": DOCS[1]} and 0 < results[0]["relevance_score"] <= 1

    compat = client.post(
        "/compatible-api/v1/reranks", json={"model": "qwen3-rerank", "query": query, "documents": DOCS[1:2]}
    )
    assert compat.json()["results"] == [{"index": 0, "relevance_score": overlap_score(query, DOCS[1])}]

    native = client.post(
        "/api/v1/services/rerank/text-rerank/text-rerank",
        json={"model": "gte-rerank-v2", "input": {"query": query, "documents": DOCS}, "parameters": {"top_n": 1}},
    ).json()
    assert native["output"]["results"][0]["index"] == 1 and native["usage"]["total_tokens"] == 3 + 2 + 3 + 3
    bad = client.post("/compatible-api/v1/reranks", json={"model": "m", "query": query, "documents": []})
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidParameter"


# --- audio -----------------------------------------------------------------------------------


def test_transcription_records_exact_file_bytes(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    emulator, client = gw
    audio = bytes(range(256)) * 3 + b"\r\n--not-a-boundary\r\n"
    r = client.post(
        "/v1/audio/transcriptions",
        files={"file": ("clip.wav", audio, "audio/wav")},
        data={"model": "paraformer", "language": "zh"},
    )
    digest = hashlib.sha256(audio).hexdigest()[:12]
    assert r.json() == {"text": f"transcript of clip.wav: {len(audio)} bytes, sha256 {digest}"}
    form = emulator.received[-1].multipart()
    assert form["file"].data == audio and form["file"].filename == "clip.wav" and form["language"] == "zh"
    text = client.post(
        "/v1/audio/transcriptions", files={"file": ("a.mp3", b"x")}, data={"model": "m", "response_format": "text"}
    )
    assert text.headers["content-type"].startswith("text/plain") and text.text.startswith(
        "transcript of a.mp3: 1 bytes"
    )


def test_speech_and_dashscope_tts(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    _, client = gw
    mp3 = client.post("/v1/audio/speech", json={"model": "tts", "input": "你好 world", "voice": "alloy"})
    assert mp3.headers["content-type"] == "audio/mpeg" and mp3.content[:2] == b"\xff\xfb"
    assert "你好 world".encode() in mp3.content
    wav = client.post(
        "/v1/audio/speech", json={"model": "tts", "input": "hi there", "voice": "a", "response_format": "wav"}
    )
    with wave.open(BytesIO(wav.content)) as w:
        assert w.getframerate() == 16000 and w.readframes(w.getnframes()) == b"hi there"

    tts = client.post(
        "/gw/api/v1/services/aigc/multimodal-generation/generation",
        json={"model": "qwen-tts", "input": {"text": "hello", "voice": "Cherry"}},
    ).json()
    url = tts["output"]["audio"]["url"]
    assert url.startswith(str(client.base_url).rstrip("/") + "/_files/") and tts["request_id"]
    audio = httpx.get(url)
    assert (
        audio.headers["content-type"] == "audio/wav" and audio.content.startswith(b"RIFF") and b"hello" in audio.content
    )


# --- faults ----------------------------------------------------------------------------------


def test_status_faults(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    _, client = gw
    r = client.post("/_fault/status-429/v1/chat/completions", json=chat_body("x"))
    assert (r.status_code, r.text, r.headers["X-TokenRateLimit-Reset"]) == (429, "Too many requests", "7")
    r = client.post("/_fault/status-429-retry-after/v1/chat/completions", json=chat_body("x"))
    assert r.headers["Retry-After"] == "3" and "X-TokenRateLimit-Reset" not in r.headers
    r = client.post("/_fault/status-429-bare/v1/chat/completions", json=chat_body("x"))
    assert r.status_code == 429 and "Retry-After" not in r.headers and "X-TokenRateLimit-Reset" not in r.headers
    assert client.post("/_fault/status-503/v1/embeddings", json={}).text == "no healthy upstream"
    assert (
        client.post("/_fault/status-400/v1/chat/completions", json={}).json()["error"]["type"]
        == "invalid_request_error"
    )
    ds = client.post("/_fault/dserror-429/v1/chat/completions", json={}).json()
    assert ds["code"] == "Throttling.RateQuota" and ds["request_id"]
    html = client.post("/_fault/html-502/v1/chat/completions", json={})
    assert html.status_code == 502 and html.headers["content-type"] == "text/html" and "<html>" in html.text
    bad = client.post("/_fault/badjson/v1/chat/completions", json=chat_body("x"))
    assert bad.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        bad.json()


def test_stream_faults(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    _, client = gw
    cut = client.post("/_fault/ssecut/v1/chat/completions", json=chat_body("a b c d", stream=True))
    assert len(sse_events(cut.content)) == 2 and b"[DONE]" not in cut.content
    err = client.post("/_fault/sseerror/v1/chat/completions", json=chat_body("a b c d", stream=True))
    assert json.loads(sse_events(err.content)[-1])["error"]["type"] == "server_error"
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/_fault/ssereset/v1/chat/completions", json=chat_body("a b c d", stream=True))
    chunks = chunks_of(client.post("/_fault/chunks-50/v1/chat/completions", json=chat_body("x", stream=True)).content)
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) == 50
    assert (
        client.post("/_fault/chunks-3/v1/chat/completions", json=chat_body("x")).json()["usage"]["completion_tokens"]
        == 3
    )
    start = time.monotonic()
    client.post("/_fault/slow-chunks-20/_fault/chunks-5/v1/chat/completions", json=chat_body("x", stream=True))
    assert time.monotonic() - start >= 0.12  # 5 content + finish + usage + [DONE]: 7 gaps of 20 ms
    faults, _ = parse_faults("/_fault/slow-chunks-10-40/v1/chat/completions")
    gaps = [item.seconds for item in faults.shape_stream([b"e"] * 50) if isinstance(item, Pause)]
    assert len(gaps) == 49 and all(0.010 <= g <= 0.040 for g in gaps) and max(gaps) - min(gaps) > 0.02
    assert gaps == [item.seconds for item in faults.shape_stream([b"e"] * 50) if isinstance(item, Pause)]


def test_connection_faults_and_retries(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    emulator, client = gw
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/_fault/close/v1/chat/completions", json=chat_body("x"))
    with pytest.raises(httpx.ReadTimeout):
        client.post("/_fault/stall-0.5/v1/chat/completions", json=chat_body("x"), timeout=0.1)
    stall = "/_fault/stall-midstream-0.5/v1/chat/completions"
    with client.stream("POST", stall, json=chat_body("a b c", stream=True), timeout=0.1) as r:
        assert r.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            for _ in r.iter_bytes():
                pass
    # The timeout test closed client connections; use a fresh one for the retry sequence.
    path = "/_fault/fail-first-2-status-503/v1/chat/completions"
    statuses = [httpx.post(str(client.base_url).rstrip("/") + path, json=chat_body("x")).status_code for _ in range(3)]
    assert statuses == [503, 503, 200] and emulator.hits("fail-first-2") == 3
    assert emulator.received[-1].status == 200 and emulator.received[0].status is None  # `close` sent nothing
    assert client.post("/_fault/no-such-fault/v1/chat/completions").status_code == 400


# --- server behaviour ------------------------------------------------------------------------


def test_keep_alive_routing_and_methods(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    _, client = gw
    host, port = client.base_url.host, client.base_url.port
    conn = http.client.HTTPConnection(host, port, timeout=5)
    conn.request(
        "POST", "/v1/chat/completions", body=json.dumps(chat_body("one")), headers={"Content-Type": "application/json"}
    )
    first = conn.getresponse()
    assert first.status == 200 and int(first.headers["Content-Length"]) == len(first.read())
    sock = conn.sock
    conn.request("GET", "/v1/models")
    assert conn.getresponse().status == 200 and conn.sock is sock
    conn.close()
    missing = client.post("/v1/unknown")
    assert missing.status_code == 404 and missing.headers["X-Emulator-Error"] == "no route for /v1/unknown"
    assert client.get("/v1/chat/completions").status_code == 405


def test_chunked_request_body_recorded(gw: tuple[GatewayEmulator, httpx.Client]) -> None:
    emulator, client = gw
    payload = json.dumps(chat_body("streamed upload")).encode()
    r = client.post(
        "/v1/chat/completions", content=iter([payload[:10], payload[10:]]), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 200 and emulator.received[-1].body == payload
    assert emulator.received[-1].headers["transfer-encoding"] == "chunked"


def test_tls_with_trustme() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with serve(GatewayEmulator(), ssl_context=server_ctx) as base_url:
        assert base_url.startswith("https://127.0.0.1:")
        r = httpx.post(base_url + "/v1/chat/completions", json=chat_body("tls"), verify=client_ctx)
        assert r.json()["choices"][0]["message"]["content"] == "echo: tls"


def test_shutdown_does_not_wait_for_stalled_requests() -> None:
    emulator = GatewayEmulator()
    errors: list[BaseException] = []
    with serve(emulator) as base_url:

        def stalled() -> None:
            try:
                httpx.post(base_url + "/_fault/stall-30/v1/chat/completions", json=chat_body("x"), timeout=10)
            except httpx.HTTPError as exc:
                errors.append(exc)

        worker = threading.Thread(target=stalled)
        worker.start()
        deadline = time.monotonic() + 2
        while not emulator.received and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
    worker.join(timeout=5)
    assert time.monotonic() - started < 2 and len(errors) == 1


def test_cli_prints_ready_and_stops_on_stdin_close() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.emulator", "--port", "0", "--auth", "api_key", "--api-key", "sk-cli"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:")
        base_url = line.split(" ", 1)[1]
        r = httpx.post(
            base_url + "/v1/chat/completions", json=chat_body("cli"), headers={"Authorization": "Bearer sk-cli"}
        )
        assert r.status_code == 200
        assert httpx.post(base_url + "/v1/chat/completions", json=chat_body("cli")).status_code == 401
        proc.stdin.close()
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_mock_transport_runs_the_same_app_in_process() -> None:
    emulator = GatewayEmulator([Consumer("team-a", api_key="sk-a")], created=1700000000)
    with httpx.Client(transport=emulator.mock_transport(), base_url="http://gw.test") as client:
        r = client.post("/v1/chat/completions", json=chat_body("in process"), headers={"Authorization": "Bearer sk-a"})
        assert r.json()["created"] == 1700000000 and emulator.received[-1].consumer == "team-a"
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(
                "/_fault/close/v1/chat/completions", json=chat_body("x"), headers={"Authorization": "Bearer sk-a"}
            )
