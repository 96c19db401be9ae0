"""Consumer auth at the plugin level: every auth method, model type and request kind, via the gateway emulator.

The emulator enforces key-auth, jwt-auth and hmac-auth as Higress does, so a request it attributes
to a consumer passed that consumer's check. On top of the attribution each test looks at what
arrived: the exact header or query parameter that carried the credential (and that no other one
did), the JWT's claims verified with the consumer's public key, the HMAC headers with Content-MD5
recomputed over the bytes received (multipart uploads included) and the signature recomputed
independently, and that no credential, token or signature ever travels in a request body.

Every test uses the public `invoke` / `validate_credentials` of a new adapter instance, as Dify
does. Keys are generated per test session; none is real. Each code path runs once: every consumer
set-up on one route, every route and validation call under one set-up, and the set-ups whose work
depends on the request (HMAC over the body, an API key in the query) on every kind of request.

The shared pieces (`auth_methods`, `check_wire`, ...) are reused by tests/test_auth_e2e.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import parse_qsl

# dify_plugin applies gevent's monkey-patching on import: before the emulator's server threads start.
import dify_plugin  # noqa: F401
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from dify_plugin.entities.model.message import UserPromptMessage
from dify_plugin.errors.model import CredentialsValidateFailedError, InvokeAuthorizationError
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from adapters.models.base import _catalog_entities
from adapters.models.llm.llm import AIGatewayLargeLanguageModel
from adapters.models.rerank.rerank import AIGatewayRerankModel
from adapters.models.speech2text.speech2text import AIGatewaySpeech2TextModel
from adapters.models.text_embedding.text_embedding import AIGatewayTextEmbeddingModel
from adapters.models.tts.tts import AIGatewayText2SpeechModel
from adapters.models.validation import MODELS_PATH
from tests.emulator import (
    Consumer,
    GatewayEmulator,
    ReceivedRequest,
    Request,
    embedding_vector,
    make_wav,
    overlap_score,
    serve,
    string_to_sign,
)
from tests.emulator.audio import encode_audio
from tests.emulator.auth import Authenticator

BASE_PATH = "/ai/team-a"  # a base path in front of /v1: signed and routed like any other path segment
SIGNED_HEADERS = "x-ca-key,x-ca-nonce,x-ca-signature-method,x-ca-timestamp"
JWT_LIFETIME = 3600  # the plugin's default
ISSUER = "dify-auth-matrix"
# Headers that carry consumer credentials; a request must carry exactly those of its own method.
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "x-gateway-token"})

# ---------------------------------------------------------------------------------------------
# The consumers: one per auth method, generated once per test session
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthMethod:
    """One consumer as the gateway knows it (`consumer`) and as the plugin's form holds it (`fields`)."""

    id: str
    consumer: Consumer
    fields: Mapping[str, str]
    secrets: tuple[str, ...]  # configured values that must never show up in a body, a log or an error
    jwt_algorithm: str | None = None
    jwt_verify_key: Any = None
    jwt_claim: str = "uid"
    jwt_kid: str | None = None
    jwt_header: str = "authorization"
    jwt_prefix: str = "Bearer "
    jwt_lifetime: int = JWT_LIFETIME

    @property
    def kind(self) -> str:
        return self.fields["auth_method"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _pem_body(pem: str) -> str:
    """A long piece of a PEM's base64 body: what a leaked key would show."""
    return "".join(pem.strip().splitlines()[1:-1])[40:120]


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def auth_methods() -> dict[str, AuthMethod]:
    """The eight consumer set-ups the plugin's form offers, with fresh keys (cached per test process)."""
    token = secrets.token_hex
    methods: list[AuthMethod] = []

    for id_, extra in (
        ("key-bearer", {}),
        ("key-verbatim", {"api_key_prefix": "none"}),  # open-source Higress: Authorization read verbatim
        ("key-header", {"api_key_header": "X-API-Key"}),
        ("key-query", {"api_key_query": "apikey"}),
    ):
        key = f"sk-{id_}-{token(12)}"
        consumer = Consumer(
            name=f"c-{id_}",
            api_key=key,
            api_key_header=extra.get("api_key_header", "Authorization"),
            api_key_prefix="" if "api_key_prefix" in extra else "Bearer",
            api_key_query=extra.get("api_key_query"),
        )
        methods.append(AuthMethod(id_, consumer, {"auth_method": "api_key", "api_key": key, **extra}, (key,)))

    # Symmetric, as the console generates it: a JWK set with one oct key; the plugin gets the same set.
    secret = secrets.token_bytes(32)
    oct_jwk = {"kty": "oct", "kid": "console-hs256", "use": "sig", "alg": "HS256", "k": _b64url(secret)}
    uid = token(16)
    methods.append(
        AuthMethod(
            "jwt-hs256",
            Consumer(name="c-jwt-hs256", jwt_jwks={"keys": [oct_jwk]}, jwt_claim_value=uid),
            {
                "auth_method": "jwt",
                "jwt_jwks": json.dumps({"keys": [oct_jwk]}),
                "jwt_algorithm": "HS256",
                "jwt_consumer_id": uid,
            },
            (oct_jwk["k"],),
            jwt_algorithm="HS256",
            jwt_verify_key=secret,
            jwt_kid="console-hs256",
        )
    )

    # Asymmetric: the gateway holds the public JWKS; the plugin signs with the private key as PEM.
    private = rsa_key()
    public_jwk = {**RSAAlgorithm.to_jwk(private.public_key(), as_dict=True), "kid": "team-rsa", "alg": "RS256"}
    uid = token(16)
    pem = _pem(private)
    methods.append(
        AuthMethod(
            "jwt-rs256",
            Consumer(name="c-jwt-rs256", jwt_jwks={"keys": [public_jwk]}, jwt_claim_value=uid, jwt_issuer=ISSUER),
            {
                "auth_method": "jwt",
                "jwt_jwks": pem,
                "jwt_algorithm": "RS256",
                "jwt_consumer_id": uid,
                "jwt_issuer": ISSUER,
            },
            (_pem_body(pem),),
            jwt_algorithm="RS256",
            jwt_verify_key=private.public_key(),
        )
    )

    # Asymmetric as a private JWK (with kid), a non-default identity claim and a second key in the set.
    ec_key = ec.generate_private_key(ec.SECP256R1())
    private_jwk = {**ECAlgorithm.to_jwk(ec_key, as_dict=True), "kid": "team-ec", "alg": "ES256"}
    public_ec = {**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "kid": "team-ec", "alg": "ES256"}
    decoy = {**ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True), "kid": "old"}
    uid = token(16)
    methods.append(
        AuthMethod(
            "jwt-es256",
            Consumer(
                name="c-jwt-es256", jwt_jwks={"keys": [decoy, public_ec]}, jwt_claim="consumer", jwt_claim_value=uid
            ),
            {
                "auth_method": "jwt",
                "jwt_jwks": json.dumps(private_jwk),
                "jwt_algorithm": "ES256",
                "jwt_consumer_id": uid,
                "jwt_consumer_claim": "consumer",
            },
            (private_jwk["d"],),
            jwt_algorithm="ES256",
            jwt_verify_key=ec_key.public_key(),
            jwt_claim="consumer",
            jwt_kid="team-ec",
        )
    )

    # The token elsewhere than "Authorization: Bearer": a custom header and prefix, and a shorter lifetime.
    secret = secrets.token_bytes(32)
    oct_jwk = {"kty": "oct", "k": _b64url(secret), "alg": "HS256"}
    uid = token(16)
    methods.append(
        AuthMethod(
            "jwt-header",
            Consumer(
                name="c-jwt-header",
                jwt_jwks={"keys": [oct_jwk]},
                jwt_claim_value=uid,
                jwt_header="X-Gateway-Token",
                jwt_prefix="Token ",
            ),
            {
                "auth_method": "jwt",
                "jwt_jwks": json.dumps({"keys": [oct_jwk]}),
                "jwt_consumer_id": uid,
                "jwt_header_name": "X-Gateway-Token",
                "jwt_header_prefix": "Token",
                "jwt_expiration": "600",
            },
            (oct_jwk["k"],),
            jwt_algorithm="HS256",
            jwt_verify_key=secret,
            jwt_header="x-gateway-token",
            jwt_prefix="Token ",
            jwt_lifetime=600,
        )
    )

    for id_, signature_method in (("hmac-sha256", None), ("hmac-sha1", "HmacSHA1")):
        access_key, secret_key = f"ak-{id_}-{token(6)}", f"sk-{id_}-{token(16)}"
        fields = {"auth_method": "hmac", "hmac_access_key": access_key, "hmac_secret_key": secret_key}
        if signature_method:
            fields["hmac_signature_method"] = signature_method
        methods.append(
            AuthMethod(
                id_,
                Consumer(name=f"c-{id_}", hmac_access_key=access_key, hmac_secret_key=secret_key),
                fields,
                (secret_key,),
            )
        )
    return {m.id: m for m in methods}


METHOD_IDS = (
    "key-bearer",
    "key-verbatim",
    "key-header",
    "key-query",
    "jwt-hs256",
    "jwt-rs256",
    "jwt-es256",
    "jwt-header",
    "hmac-sha256",
    "hmac-sha1",
)


def all_secrets() -> list[str]:
    return [s for m in auth_methods().values() for s in m.secrets]


# ---------------------------------------------------------------------------------------------
# What arrived at the gateway, checked
# ---------------------------------------------------------------------------------------------


def verdict_authenticator() -> Authenticator:
    """A second, Higress-equivalent verdict, also for requests the emulator does not authenticate (audio GETs)."""
    return Authenticator(
        [m.consumer for m in auth_methods().values()],
        mode="auto",
        hmac_date_offset=900.0,
        jwt_clock_skew=60.0,
        clock=time.time,
    )


def credential_values(received: ReceivedRequest, *, access_key: bool = True) -> list[str]:
    """Every credential-carrying value the request had: header values, key query values, tokens, signatures.

    The HMAC access key is an identifier, not a secret (the gateway quotes it back); `access_key=False` omits it.
    """
    values = [received.headers[name] for name in CREDENTIAL_HEADERS if name in received.headers]
    values += [v.split(" ", 1)[1] for v in values if " " in v]  # the token or key after a scheme word
    names = ("x-ca-signature", "x-ca-key") if access_key else ("x-ca-signature",)
    values += [received.headers[name] for name in names if name in received.headers]
    values += [v for k, v in parse_qsl(received.query, keep_blank_values=True) if k == "apikey"]
    return [v for v in values if v]


def _check_jwt(method: AuthMethod, received: ReceivedRequest) -> None:
    value = received.headers[method.jwt_header]
    assert value.startswith(method.jwt_prefix), f"the token is in {method.jwt_header} after {method.jwt_prefix!r}"
    token = value[len(method.jwt_prefix) :]
    assert " " not in token, "exactly one space after the prefix (Higress strips the prefix literally)"
    header = jwt.get_unverified_header(token)
    assert header["alg"] == method.jwt_algorithm
    assert header.get("kid") == method.jwt_kid
    claims = jwt.decode(token, method.jwt_verify_key, algorithms=[method.jwt_algorithm], options={"verify_aud": False})
    assert claims[method.jwt_claim] == method.consumer.jwt_claim_value
    assert claims.get("iss") == method.consumer.jwt_issuer
    assert claims["exp"] - claims["iat"] == method.jwt_lifetime and claims["nbf"] == claims["iat"]
    assert abs(claims["iat"] - time.time()) < 120


def _check_hmac(method: AuthMethod, received: ReceivedRequest) -> None:
    headers = received.headers
    assert headers["x-ca-key"] == method.consumer.hmac_access_key
    expected_method = method.fields.get("hmac_signature_method", "HmacSHA256")
    assert headers["x-ca-signature-method"] == expected_method
    assert headers["x-ca-signature-headers"] == SIGNED_HEADERS
    assert headers["x-ca-nonce"] and headers["x-ca-timestamp"].isdigit() and headers["date"].endswith(" GMT")
    if received.body:
        # Over the bytes that arrived (for multipart: boundary, part headers and audio included).
        assert headers["content-md5"] == base64.b64encode(hashlib.md5(received.body).digest()).decode()
    else:
        assert "content-md5" not in headers  # Higress answers 400 to a Content-MD5 on an empty body
    # The signature, recomputed from what arrived (raw path with the base path, received headers).
    text = string_to_sign(received.method, received.target, headers)
    digest = hashlib.sha1 if expected_method == "HmacSHA1" else hashlib.sha256
    secret = method.consumer.hmac_secret_key or ""
    expected = base64.b64encode(hmac.new(secret.encode(), text, digest).digest()).decode()
    assert headers["x-ca-signature"] == expected


def check_wire(method: AuthMethod, received: ReceivedRequest, verdict: Authenticator, status: int = 200) -> None:
    """The request carried `method`'s credential, in exactly the right place, and nothing else."""
    headers = received.headers
    assert received.status == status, f"{received.method} {received.target} answered {received.status}"
    request = Request(received.method, received.target, headers, received.body)
    assert verdict.authenticate(request) == method.consumer.name
    if received.method == "POST":
        assert received.consumer == method.consumer.name  # the emulator's own attribution
    query_keys = [k for k, _ in parse_qsl(received.query, keep_blank_values=True)]
    credential_headers = {name for name in headers if name in CREDENTIAL_HEADERS or name.startswith("x-ca-")}
    match method.id:
        case "key-bearer":
            assert headers["authorization"] == f"Bearer {method.consumer.api_key}"
            assert credential_headers == {"authorization"} and query_keys == []
        case "key-verbatim":
            assert headers["authorization"] == method.consumer.api_key  # the key alone, no scheme word
            assert credential_headers == {"authorization"} and query_keys == []
        case "key-header":
            assert headers["x-api-key"] == method.consumer.api_key  # as-is, no scheme word
            assert credential_headers == {"x-api-key"} and query_keys == []
        case "key-query":
            assert parse_qsl(received.query, keep_blank_values=True) == [("apikey", method.consumer.api_key)]
            assert credential_headers == set()
        case _ if method.kind == "jwt":
            _check_jwt(method, received)
            assert credential_headers == {method.jwt_header} and query_keys == []
        case _:
            _check_hmac(method, received)
            assert "authorization" not in credential_headers and query_keys == []
    if method.kind != "hmac":
        assert "content-md5" not in headers
    # Bodies never carry auth: not this request's credentials, not any configured secret, no JWT.
    for value in [*credential_values(received), *all_secrets()]:
        assert value.encode() not in received.body, f"a credential travelled in the body of {received.path}"
    assert b"eyJ" not in received.body


# ---------------------------------------------------------------------------------------------
# The model types: one operation per route (all dialects), each through a new adapter instance
# ---------------------------------------------------------------------------------------------

MODEL_CLASSES = {
    "llm": AIGatewayLargeLanguageModel,
    "text-embedding": AIGatewayTextEmbeddingModel,
    "rerank": AIGatewayRerankModel,
    "speech2text": AIGatewaySpeech2TextModel,
    "tts": AIGatewayText2SpeechModel,
}


def new_model(model_type: str) -> Any:
    """A fresh adapter instance, as Dify builds one per request."""
    return MODEL_CLASSES[model_type](list(_catalog_entities(model_type)))


def transcript(audio: bytes, name: str = "audio.wav") -> str:
    return f"transcript of {name}: {len(audio)} bytes, sha256 {hashlib.sha256(audio).hexdigest()[:12]}"


def audio_file_id(text: str) -> str:
    """The emulator's id of the qwen-tts audio for `text` (its download path is /_files/<id>.wav)."""
    return hashlib.sha256(make_wav(text.encode())).hexdigest()[:16]


@dataclass(frozen=True)
class Op:
    """One call of one model type: `run(credentials, marker)` invokes it and checks the answer."""

    id: str
    model_type: str
    model: str
    path: str  # the route path after the base path
    run: Callable[[Mapping[str, str], str], None]
    validates: bool = False
    downloads: bool = False  # qwen-tts: the POST is followed by a GET of the audio on the gateway

    def __str__(self) -> str:
        return self.id


def _chat(model: str, stream: bool) -> Callable[[Mapping[str, str], str], None]:
    def run(credentials: Mapping[str, str], marker: str) -> None:
        text = f"hello {marker}"
        # The SDK's invoke yields chunks either way; a blocking answer is one chunk.
        chunks = list(
            new_model("llm").invoke(model, dict(credentials), [UserPromptMessage(content=text)], {}, stream=stream)
        )
        assert len(chunks) > 2 if stream else len(chunks) == 1
        answer = "".join(c.delta.message.content or "" for c in chunks)
        assert answer == f"echo: {text}"

    return run


def _embed(model: str) -> Callable[[Mapping[str, str], str], None]:
    def run(credentials: Mapping[str, str], marker: str) -> None:
        texts = [f"embed {marker}", "a second text"]
        result = new_model("text-embedding").invoke(model, dict(credentials), texts)
        assert len(result.embeddings) == len(texts)
        for text, vector in zip(texts, result.embeddings, strict=True):
            assert vector == pytest.approx(list(embedding_vector(text, len(vector))))

    return run


def _rerank(model: str) -> Callable[[Mapping[str, str], str], None]:
    def run(credentials: Mapping[str, str], marker: str) -> None:
        query = f"red apple {marker}"
        docs = ["a red car", f"apple {marker}", "nothing here"]
        result = new_model("rerank").invoke(model, dict(credentials), query, docs)
        expected = sorted(((i, overlap_score(query, d)) for i, d in enumerate(docs)), key=lambda p: (-p[1], p[0]))
        assert [(d.index, d.score) for d in result.docs] == expected

    return run


def _transcribe(credentials: Mapping[str, str], marker: str) -> None:
    audio = make_wav(f"speech {marker}".encode())
    text = new_model("speech2text").invoke("whisper-large-v3", dict(credentials), io.BytesIO(audio))
    assert text == transcript(audio)


def _speak(model: str) -> Callable[[Mapping[str, str], str], None]:
    def run(credentials: Mapping[str, str], marker: str) -> None:
        text = f"Say {marker}."
        result = new_model("tts").invoke(model, "tenant", dict(credentials), text, "")
        assert not isinstance(result, bytes), "TTS yields chunks"
        expected = make_wav(text.encode()) if model == "qwen-tts" else encode_audio(text, "mp3")[1]
        assert b"".join(result) == expected

    return run


def _validate(model_type: str, model: str) -> Callable[[Mapping[str, str], str], None]:
    def run(credentials: Mapping[str, str], marker: str) -> None:
        new_model(model_type).validate_credentials(model, dict(credentials))

    return run


CHAT = "/v1/chat/completions"
INVOKES = (
    Op("llm-blocking", "llm", "qwen-max", CHAT, _chat("qwen-max", stream=False)),
    Op("llm-stream", "llm", "qwen-max", CHAT, _chat("qwen-max", stream=True)),
    Op("embedding-openai", "text-embedding", "text-embedding-v3", "/v1/embeddings", _embed("text-embedding-v3")),
    Op(
        "embedding-dashscope",
        "text-embedding",
        "text-embedding-v4",
        "/api/v1/services/embeddings/text-embedding/text-embedding",
        _embed("text-embedding-v4"),
    ),
    Op(
        "rerank-dashscope",
        "rerank",
        "gte-rerank-v2",
        "/api/v1/services/rerank/text-rerank/text-rerank",
        _rerank("gte-rerank-v2"),
    ),
    Op("rerank-compatible", "rerank", "qwen3-rerank", "/compatible-api/v1/reranks", _rerank("qwen3-rerank")),
    Op("rerank-cohere", "rerank", "bge-reranker-v2-m3", "/v1/rerank", _rerank("bge-reranker-v2-m3")),
    Op("speech2text-multipart", "speech2text", "whisper-large-v3", "/v1/audio/transcriptions", _transcribe),
    Op("tts-openai", "tts", "tts-1", "/v1/audio/speech", _speak("tts-1")),
    Op(
        "tts-dashscope",
        "tts",
        "qwen-tts",
        "/api/v1/services/aigc/multimodal-generation/generation",
        _speak("qwen-tts"),
        downloads=True,
    ),
)
VALIDATIONS = tuple(
    Op(f"validate-{op.id}", op.model_type, op.model, op.path, _validate(op.model_type, op.model), True, op.downloads)
    for op in INVOKES
    if op.id != "llm-stream"  # validation is one call per model; the LLM's is a blocking chat
)
OPS = {op.id: op for op in INVOKES + VALIDATIONS}


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@dataclass
class AuthGateway:
    """One emulator with every consumer configured, and credentials for each of them."""

    emulator: GatewayEmulator
    base_url: str
    verdict: Authenticator = field(default_factory=verdict_authenticator)

    def credentials(self, method: AuthMethod | str, base_path: str = BASE_PATH, **overrides: str) -> dict[str, str]:
        if isinstance(method, str):
            method = auth_methods()[method]
        return {"endpoint_url": f"{self.base_url}{base_path}/v1", "max_retries": "0", **method.fields, **overrides}

    def check_all(self, method: AuthMethod, op: Op, base_path: str = BASE_PATH) -> list[ReceivedRequest]:
        """Every request of one call went to the op's route, as `method`'s consumer, correctly authenticated."""
        received = list(self.emulator.received)
        posts = [r for r in received if r.method == "POST"]
        gets = [r for r in received if r.method == "GET"]
        listings = [r for r in gets if r.path == base_path + MODELS_PATH]  # a validation asks for the model list
        assert posts and all(r.path == base_path + op.path for r in posts)
        assert len(listings) == (1 if op.validates else 0)
        assert len(gets) - len(listings) == (len(posts) if op.downloads else 0)
        for r in received:
            check_wire(method, r, self.verdict, status=404 if r in listings else 200)  # no model list here
        return received


@pytest.fixture(scope="module")
def _auth_gateway() -> Iterator[AuthGateway]:
    emulator = GatewayEmulator(consumers=[m.consumer for m in auth_methods().values()])
    with serve(emulator) as base_url:
        yield AuthGateway(emulator, base_url)


@pytest.fixture
def gw(_auth_gateway: AuthGateway) -> AuthGateway:
    _auth_gateway.emulator.clear()
    return _auth_gateway


def _marker() -> str:
    return f"mk{secrets.token_hex(4)}"


# ---------------------------------------------------------------------------------------------
# 1. Every method, every route, every validation call: one case per code path
# ---------------------------------------------------------------------------------------------
# Every model type sends through the same transport, so an auth method is exercised once per kind of
# request where the kind changes what it does: HMAC signs the body (JSON, a streamed chat, a
# multipart upload, the empty-bodied audio download) and an API key in the query rides on every URL
# (the download's too). Header-only methods (key in a header, JWT) add the same header everywhere.

REQUEST_KINDS = ("llm-blocking", "llm-stream", "speech2text-multipart", "tts-dashscope")


def _rotated(ops: tuple[Op, ...]) -> list[Any]:
    """Each op once, under the methods in turn: no path twice, and every method seen on some op."""
    return [
        pytest.param(METHOD_IDS[i % len(METHOD_IDS)], op, id=f"{op}-{METHOD_IDS[i % len(METHOD_IDS)]}")
        for i, op in enumerate(ops)
    ]


@pytest.mark.parametrize("method_id", METHOD_IDS)
def test_every_auth_method_on_a_streamed_chat(gw: AuthGateway, method_id: str) -> None:
    method = auth_methods()[method_id]
    op = OPS["llm-stream"]
    op.run(gw.credentials(method), _marker())
    gw.check_all(method, op)


@pytest.mark.parametrize("op", INVOKES, ids=str)
def test_every_model_type_and_dialect_signed_with_hmac(gw: AuthGateway, op: Op) -> None:
    method = auth_methods()["hmac-sha256"]
    op.run(gw.credentials(method), _marker())
    gw.check_all(method, op)


@pytest.mark.parametrize("op", [OPS[o] for o in REQUEST_KINDS if o != "llm-stream"], ids=str)
def test_an_api_key_in_the_query_on_every_request_kind(gw: AuthGateway, op: Op) -> None:
    method = auth_methods()["key-query"]
    op.run(gw.credentials(method), _marker())
    gw.check_all(method, op)


@pytest.mark.parametrize(("method_id", "op"), _rotated(VALIDATIONS))
def test_every_validation_call_is_authenticated(gw: AuthGateway, method_id: str, op: Op) -> None:
    method = auth_methods()[method_id]
    op.run(gw.credentials(method), _marker())
    gw.check_all(method, op)


# The Accept header the transport sets per kind of answer (adapters/gateway/transport.py `Answer`).
EXPECTED_ACCEPT = {"llm-stream": "text/event-stream", "tts-openai": "*/*", "tts-dashscope": "*/*"}


@pytest.mark.parametrize("op", INVOKES, ids=str)
def test_the_same_call_sends_the_same_accept_under_every_auth_scheme(gw: AuthGateway, op: Op) -> None:
    accepts = {}
    for method_id in ("key-bearer", "jwt-rs256", "hmac-sha256"):
        gw.emulator.clear()
        op.run(gw.credentials(method_id), _marker())
        accepts[method_id] = [(r.method, r.headers.get("accept")) for r in gw.emulator.received]
    assert accepts["key-bearer"] == accepts["jwt-rs256"] == accepts["hmac-sha256"]
    posts = [accept for method, accept in accepts["key-bearer"] if method == "POST"]
    assert posts and set(posts) == {EXPECTED_ACCEPT.get(op.id, "application/json")}


@pytest.mark.parametrize(
    "op", [OPS[o] for o in ("llm-stream", "speech2text-multipart", "tts-dashscope", "validate-llm-blocking")], ids=str
)
def test_hmac_without_a_base_path(gw: AuthGateway, op: Op) -> None:
    method = auth_methods()["hmac-sha256"]
    op.run(gw.credentials(method, base_path=""), _marker())
    received = gw.check_all(method, op, base_path="")
    assert all(r.query == "" for r in received) and received[0].path.startswith(("/v1/", "/api/"))


# One set-up per auth scheme: the scheme chosen decides which fields are read.
@pytest.mark.parametrize("method_id", ["key-query", "jwt-header", "hmac-sha1"])
def test_fields_of_the_other_methods_left_in_the_form_are_ignored(gw: AuthGateway, method_id: str) -> None:
    """Dify keeps hidden fields: a consumer switched to JWT may still hold an API key and HMAC keys."""
    method = auth_methods()[method_id]
    stale = {
        k: v
        for other in METHOD_IDS
        if auth_methods()[other].kind != method.kind
        for k, v in auth_methods()[other].fields.items()
    }
    OPS["llm-stream"].run(gw.credentials(method, **{**stale, **method.fields}), _marker())
    gw.check_all(method, OPS["llm-stream"])


RETRIED = "/_fault/fail-first-1-status-503"


# HMAC re-signs the whole body on each attempt (JSON, multipart, and the download after a retried
# POST); an API key and a JWT are attached again.
RETRIES = [
    *(pytest.param("hmac-sha256", OPS[o], id=f"hmac-sha256-{o}") for o in REQUEST_KINDS[1:]),
    pytest.param("key-bearer", OPS["llm-stream"], id="key-bearer-llm-stream"),
    pytest.param("jwt-rs256", OPS["llm-stream"], id="jwt-rs256-llm-stream"),
]


@pytest.mark.parametrize(("method_id", "op"), RETRIES)
def test_a_retried_request_is_authenticated_again(gw: AuthGateway, method_id: str, op: Op) -> None:
    method = auth_methods()[method_id]
    op.run(gw.credentials(method, BASE_PATH + RETRIED, max_retries="1", retry_backoff="0.01"), _marker())
    first, retry, *download = gw.emulator.received
    assert first.path == retry.path == f"{BASE_PATH}{RETRIED}{op.path}" and len(download) == op.downloads
    # The fault acts after authentication: each attempt passed the consumer check on its own.
    check_wire(method, first, gw.verdict, status=503)
    for r in (retry, *download):
        check_wire(method, r, gw.verdict)
    if method.kind == "hmac":
        assert first.headers["x-ca-nonce"] != retry.headers["x-ca-nonce"]
        assert first.headers["content-md5"] == retry.headers["content-md5"]  # the same bytes, re-sent whole


# ---------------------------------------------------------------------------------------------
# 2. Rejected credentials: the gateway's reason reaches Dify, the secret never does
# ---------------------------------------------------------------------------------------------


def _error_text(error: BaseException) -> str:
    """Everything Dify could show or log about an error: message, repr and the whole traceback chain."""
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


ONE_VALIDATION_PER_TYPE = [op for op in VALIDATIONS if op.id in {
    "validate-llm-blocking",
    "validate-embedding-openai",
    "validate-rerank-dashscope",
    "validate-speech2text-multipart",
    "validate-tts-openai",
}]  # fmt: skip
# Each model type maps a rejection in its own invoke (the LLM twice: blocking and streamed) and in
# its validation call.
ONE_INVOKE_PER_TYPE = [OPS[o] for o in ("llm-blocking", "llm-stream", "embedding-dashscope", "rerank-compatible")] + [
    OPS[o] for o in ("speech2text-multipart", "tts-dashscope")
]


@pytest.mark.parametrize("op", ONE_INVOKE_PER_TYPE + ONE_VALIDATION_PER_TYPE, ids=str)
def test_a_rejected_hmac_signature_quotes_the_gateways_string_to_sign(gw: AuthGateway, op: Op) -> None:
    method = auth_methods()["hmac-sha256"]
    wrong = f"wrong-{secrets.token_hex(12)}"
    expected_error = CredentialsValidateFailedError if op.validates else InvokeAuthorizationError
    with pytest.raises(expected_error) as caught:
        op.run(gw.credentials(method, hmac_secret_key=wrong), _marker())
    *listing, received = gw.emulator.received  # a validation asked for the model list first: refused too
    assert [r.status for r in listing] == ([400] if op.validates else [])
    assert received.status == 400 and received.consumer is None
    text = _error_text(caught.value)
    gateway_sts = string_to_sign(received.method, received.target, received.headers).replace(b"\n", b"#")
    # The gateway's string-to-sign, with the access key masked (a credential value of the request).
    access_key = method.consumer.hmac_access_key
    shown_sts = gateway_sts.decode("latin-1").replace(f"x-ca-key:{access_key}#", "x-ca-key:[hmac_access_key]#")
    assert f"Invalid Signature (gateway Server StringToSign:`{shown_sts}`" in str(caught.value)
    assert "x-ca-key:[hmac_access_key]#" in str(caught.value) and access_key not in text
    assert f"#{BASE_PATH}{op.path}`" in str(caught.value)
    if op.validates:
        assert str(caught.value).startswith(f"Model {op.model!r}: ")
    for leaked in (wrong, *all_secrets(), received.headers["x-ca-signature"]):
        assert leaked not in text


WRONG = {
    "key-bearer": lambda: {"api_key": f"sk-nobody-{secrets.token_hex(8)}"},
    "key-header": lambda: {"api_key": f"sk-nobody-{secrets.token_hex(8)}"},
    "key-query": lambda: {"api_key": f"sk-nobody-{secrets.token_hex(8)}"},
    "jwt-hs256": lambda: {"jwt_jwks": json.dumps({"keys": [{"kty": "oct", "k": _b64url(secrets.token_bytes(32))}]})},
    "jwt-rs256": lambda: {"jwt_consumer_id": f"nobody-{secrets.token_hex(8)}"},
    "jwt-header": lambda: {"jwt_jwks": json.dumps({"kty": "oct", "k": _b64url(secrets.token_bytes(32))})},
    "jwt-es256": lambda: {"jwt_jwks": json.dumps(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), True))},
    "hmac-sha256": lambda: {"hmac_secret_key": f"wrong-{secrets.token_hex(8)}"},
    "hmac-sha1": lambda: {"hmac_secret_key": f"wrong-{secrets.token_hex(8)}"},
}


# The gateway's rejections differ by set-up: key-auth 401 (the key in a header or in the URL), jwt-auth
# 401 (bad signature) or 403 (unknown consumer), hmac-auth 400.
@pytest.mark.parametrize("method_id", ["key-bearer", "key-query", "jwt-hs256", "jwt-rs256", "hmac-sha256"])
def test_rejected_credentials_are_authorization_errors_without_any_secret(gw: AuthGateway, method_id: str) -> None:
    method = auth_methods()[method_id]
    wrong = WRONG[method_id]()
    with pytest.raises(InvokeAuthorizationError, match=r"AI Gateway answered HTTP (400|401|403)") as caught:
        OPS["llm-stream"].run(gw.credentials(method, **wrong), _marker())
    [received] = gw.emulator.received
    assert received.consumer is None
    text = _error_text(caught.value)
    sent = credential_values(received, access_key=False)
    assert sent, "the rejected request did carry a credential"
    for leaked in (*wrong.values(), *all_secrets(), *sent):
        assert leaked not in text
    assert "eyJ" not in text


# ---------------------------------------------------------------------------------------------
# 3. Bad auth input: refused offline, naming the field, before anything is sent
# ---------------------------------------------------------------------------------------------


def _ec_pem() -> str:
    return _pem(ec.generate_private_key(ec.SECP256R1()))


HS_JWKS = json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0LXZhbHVlLWZvci10ZXN0cw"}]})
# (case id, the auth fields, the field the error must name, a secret the error must not echo)
BAD_INPUT: tuple[tuple[str, Callable[[], dict[str, str]], str, str | None], ...] = (
    (
        "jwks-invalid-json",
        lambda: {
            "auth_method": "jwt",
            "jwt_jwks": '{"keys": [{"kty": "oct", "k": "c2VjcmV0LXBhcnQ"',
            "jwt_consumer_id": "u",
        },
        "jwt_jwks",
        "c2VjcmV0LXBhcnQ",
    ),
    (
        "jwks-no-keys",
        lambda: {"auth_method": "jwt", "jwt_jwks": '{"keys": []}', "jwt_consumer_id": "u"},
        "jwt_jwks",
        None,
    ),
    (
        "oct-key-for-rs256",
        lambda: {"auth_method": "jwt", "jwt_jwks": HS_JWKS, "jwt_algorithm": "RS256", "jwt_consumer_id": "u"},
        "jwt_jwks",
        "c2VjcmV0LXZhbHVlLWZvci10ZXN0cw",
    ),
    (
        "rsa-pem-for-es256",
        lambda: {"auth_method": "jwt", "jwt_jwks": _pem(rsa_key()), "jwt_algorithm": "ES256", "jwt_consumer_id": "u"},
        "jwt_jwks",
        _pem_body(_pem(rsa_key())),
    ),
    (
        "p256-pem-for-es384",
        lambda: {"auth_method": "jwt", "jwt_jwks": _ec_pem(), "jwt_algorithm": "ES384", "jwt_consumer_id": "u"},
        "jwt_jwks",
        None,
    ),
    (
        "declared-alg-mismatch",
        lambda: {
            "auth_method": "jwt",
            "jwt_jwks": auth_methods()["jwt-hs256"].fields["jwt_jwks"],
            "jwt_algorithm": "HS512",
            "jwt_consumer_id": "u",
        },
        "jwt_algorithm",
        auth_methods()["jwt-hs256"].secrets[0],
    ),
    (
        "public-key-only",
        lambda: {
            "auth_method": "jwt",
            "jwt_jwks": json.dumps(auth_methods()["jwt-rs256"].consumer.jwt_jwks),
            "jwt_consumer_id": "u",
        },
        "jwt_jwks",
        None,
    ),
    (
        "missing-consumer-id",
        lambda: {**auth_methods()["jwt-hs256"].fields, "jwt_consumer_id": "  "},
        "jwt_consumer_id",
        auth_methods()["jwt-hs256"].secrets[0],
    ),
    (
        "empty-hmac-secret",
        lambda: {**auth_methods()["hmac-sha256"].fields, "hmac_secret_key": ""},
        "hmac_secret_key",
        None,
    ),
    (
        "empty-hmac-access-key",
        lambda: {**auth_methods()["hmac-sha256"].fields, "hmac_access_key": ""},
        "hmac_access_key",
        auth_methods()["hmac-sha256"].secrets[0],
    ),
    (
        "unknown-signature-method",
        lambda: {**auth_methods()["hmac-sha256"].fields, "hmac_signature_method": "HmacMD5"},
        "hmac_signature_method",
        auth_methods()["hmac-sha256"].secrets[0],
    ),
    ("empty-api-key", lambda: {"auth_method": "api_key", "api_key": ""}, "api_key", None),
    ("unknown-auth-method", lambda: {"auth_method": "oauth2", "api_key": "sk-x"}, "auth_method", None),
)
BAD_INPUT_IDS = [case[0] for case in BAD_INPUT]


def bad_credentials(base_url: str, fields: Mapping[str, str]) -> dict[str, str]:
    """Only the case's auth fields over the endpoint: nothing of a working method leaks in."""
    return {"endpoint_url": f"{base_url}{BASE_PATH}/v1", "max_retries": "0", **fields}


# The credentials are parsed before any model type's code runs: every bad input on the LLM's validation,
# and each other type's validation once, with the cases in turn.
BAD_INPUT_CALLS = [
    pytest.param(OPS["validate-llm-blocking"], *case, id=f"validate-llm-blocking-{case[0]}") for case in BAD_INPUT
] + [pytest.param(op, *BAD_INPUT[i], id=f"{op}-{BAD_INPUT[i][0]}") for i, op in enumerate(ONE_VALIDATION_PER_TYPE[1:])]


@pytest.mark.parametrize(("op", "case", "fields", "field_name", "secret"), BAD_INPUT_CALLS)
def test_bad_auth_input_fails_validation_naming_the_field_before_any_request(
    gw: AuthGateway, op: Op, case: str, fields: Callable[[], dict[str, str]], field_name: str, secret: str | None
) -> None:
    with pytest.raises(CredentialsValidateFailedError) as caught:
        op.run(bad_credentials(gw.base_url, fields()), _marker())
    assert f"Credential field '{field_name}'" in str(caught.value)
    assert gw.emulator.received == []
    if secret:
        assert secret not in _error_text(caught.value)


ON_INVOKE = [c for c in BAD_INPUT if c[0] in {"jwks-invalid-json", "empty-hmac-secret", "unknown-signature-method"}]
INVOKE_CALLS = [
    pytest.param(OPS[o], *ON_INVOKE[i % len(ON_INVOKE)], id=f"{o}-{ON_INVOKE[i % len(ON_INVOKE)][0]}")
    for i, o in enumerate(("llm-stream", "embedding-openai", "rerank-cohere", "speech2text-multipart", "tts-dashscope"))
]


@pytest.mark.parametrize(("op", "case", "fields", "field_name", "secret"), INVOKE_CALLS)
def test_bad_auth_input_on_invoke_is_an_authorization_error_before_any_request(
    gw: AuthGateway, op: Op, case: str, fields: Callable[[], dict[str, str]], field_name: str, secret: str | None
) -> None:
    with pytest.raises(InvokeAuthorizationError, match=f"Credential field '{field_name}'") as caught:
        op.run(bad_credentials(gw.base_url, fields()), _marker())
    assert gw.emulator.received == []
    if secret:
        assert secret not in _error_text(caught.value)


# ---------------------------------------------------------------------------------------------
# 4. Concurrency: mixed consumers and model types at once, each request keeps its own auth
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    method: AuthMethod
    op: Op
    marker: str

    def owns(self, received: ReceivedRequest) -> bool:
        if received.method == "GET":  # the qwen-tts audio download: named after the audio's content
            return audio_file_id(f"Say {self.marker}.") in received.path
        return self.marker.encode() in received.body


class InFlight:
    """A front for the emulator that records how many requests it was handling at once."""

    def __init__(self, app: Callable[[Request], Any]) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._now = 0
        self.peak = 0

    def __call__(self, request: Request) -> Any:
        with self._lock:
            self._now += 1
            self.peak = max(self.peak, self._now)
        try:
            time.sleep(0.002)  # long enough for requests sent at the same time to meet here
            return self._app(request)
        finally:
            with self._lock:
                self._now -= 1


def test_ninety_concurrent_mixed_credential_requests_keep_their_own_auth(gw: AuthGateway) -> None:
    front = InFlight(gw.emulator)
    with serve(front) as front_url:
        _run_concurrently(AuthGateway(gw.emulator, front_url, gw.verdict))
    assert front.peak >= 3, "the requests really were in flight together"


def _run_concurrently(gw: AuthGateway) -> None:
    methods = [auth_methods()[m] for m in METHOD_IDS]
    # 9 methods x 10 routes: every (method, route) pair exactly once.
    jobs = [
        Job(
            methods[i % len(methods)], INVOKES[(i // len(methods)) % len(INVOKES)], f"job{i:03d}z{secrets.token_hex(3)}"
        )
        for i in range(90)
    ]

    def run(job: Job) -> None:
        # A fresh credentials dict and (inside `run`) a fresh adapter instance per request, as Dify does.
        job.op.run(gw.credentials(job.method), job.marker)

    with ThreadPoolExecutor(max_workers=30) as pool:
        list(pool.map(run, jobs))  # each run asserts its own answer (echo, vectors, scores, transcript, audio)

    received = list(gw.emulator.received)
    per_job: dict[str, int] = dict.fromkeys((j.marker for j in jobs), 0)
    for r in received:
        [owner] = [j for j in jobs if j.owns(r)]
        assert r.path.startswith(BASE_PATH) or r.method == "GET"
        check_wire(owner.method, r, gw.verdict)
        per_job[owner.marker] += 1
    expected = {j.marker: 2 if j.op.downloads else 1 for j in jobs}
    assert per_job == expected
    assert {r.consumer for r in received if r.method == "POST"} == {m.consumer.name for m in methods}
