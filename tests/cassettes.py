"""Recorded gateway conversations (vcrpy cassettes) that replay offline.

By default a cassette only replays: recording is off and any socket connect fails, so a test that
would reach the network breaks loudly. To re-record:

    AIGW_RECORD=1 make test                      # against the embedded gateway emulator
    AIGW_RECORD=1 AIGW_LIVE_ENDPOINT=https://gw.example.com/v1 AIGW_LIVE_API_KEY=... make test
                                                 # against a real AI Gateway

Whatever was recorded, the cassette is scrubbed first: auth headers, signatures, nonces, key query
parameters and volatile response headers never reach the file (tests/test_cassettes.py checks).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import vcr
from vcr import matchers
from vcr.matchers import read_body

CASSETTE_DIR = Path(__file__).resolve().parent / "cassettes"
RECORDING = os.environ.get("AIGW_RECORD") == "1"
LIVE_ENDPOINT = os.environ.get("AIGW_LIVE_ENDPOINT", "")
REPLAY_ENDPOINT = "http://aigw.invalid/v1"
REPLAY_KEY = "replay-placeholder-key"

# Request headers that carry a credential or a signature (plus a custom key header, if configured).
SECRET_REQUEST_HEADERS = [
    "authorization",
    "x-api-key",
    "api-key",
    "x-ca-key",
    "x-ca-signature",
    "x-ca-signature-headers",
    "x-ca-nonce",
    "x-ca-timestamp",
    "content-md5",
    "date",
    "cookie",
    *filter(None, [os.environ.get("AIGW_LIVE_API_KEY_HEADER", "").lower()]),
]
SECRET_QUERY_PARAMETERS = ["apikey", "api_key", "key", "access_token", "signature", "token"]
VOLATILE_RESPONSE_HEADERS = {"date", "server", "set-cookie", "x-ca-error-message", "x-envoy-upstream-service-time"}
_ROUTE = re.compile(r"/(?:api/|compatible-api/)?v1/.*$")


def route_of(path: str) -> str:
    """The gateway route with any base path removed, so a cassette replays under any base path."""
    match = _ROUTE.search(path)
    return match.group(0) if match else path


def _route_matcher(first: Any, second: Any) -> None:
    assert route_of(urlsplit(first.uri).path) == route_of(urlsplit(second.uri).path)


def _without_boundary(request: Any) -> bytes:
    """The body with a multipart boundary (random per request) replaced by a fixed token."""
    body = read_body(request)
    content_type = next((v for k, v in request.headers.items() if k.lower() == "content-type"), "")
    match = re.search(r"boundary=([^;\s]+)", content_type if isinstance(content_type, str) else content_type[0])
    return body.replace(match.group(1).encode(), b"BOUNDARY") if match else body


def _body_matcher(first: Any, second: Any) -> None:
    """vcrpy's body matcher (JSON compared parsed), with multipart uploads compared boundary-free."""
    if b"BOUNDARY" in _without_boundary(first) or b"BOUNDARY" in _without_boundary(second):
        assert _without_boundary(first) == _without_boundary(second)
    else:
        matchers.body(first, second)


def _scrub_request(request: Any) -> Any:
    parts = urlsplit(request.uri)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in SECRET_QUERY_PARAMETERS
    ]
    request.uri = urlunsplit(parts._replace(query=urlencode(query)))
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    response["headers"] = {k: v for k, v in response["headers"].items() if k.lower() not in VOLATILE_RESPONSE_HEADERS}
    return response


def gateway_vcr(record_mode: str) -> vcr.VCR:
    recorder = vcr.VCR(
        cassette_library_dir=str(CASSETTE_DIR),
        record_mode=record_mode,
        match_on=["method", "route", "gateway_body"],
        filter_headers=SECRET_REQUEST_HEADERS,
        before_record_request=_scrub_request,
        before_record_response=_scrub_response,
        decode_compressed_response=True,
    )
    recorder.register_matcher("route", _route_matcher)
    recorder.register_matcher("gateway_body", _body_matcher)
    return recorder


def live_credentials() -> dict[str, str]:
    """Credentials for a real gateway from the environment (documented in DEVELOPING.md)."""
    fields = {"endpoint_url": LIVE_ENDPOINT, "api_key": os.environ.get("AIGW_LIVE_API_KEY", "")}
    if header := os.environ.get("AIGW_LIVE_API_KEY_HEADER"):
        fields["api_key_header"] = header
    return fields


def _refuse_connect(*args: object, **kwargs: object) -> None:
    raise OSError("network access during cassette replay: the cassette is missing this request")


@contextmanager
def sockets_blocked() -> Iterator[None]:
    """Every socket connect fails: a replay that would reach the network breaks loudly."""
    with (
        mock.patch.object(socket.socket, "connect", _refuse_connect),
        mock.patch.object(socket, "create_connection", _refuse_connect),
    ):
        yield


@contextmanager
def recorded(name: str, emulator_credentials: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Credentials to call the plugin with while cassette `name` records or replays.

    Recording goes to the live gateway when AIGW_LIVE_ENDPOINT is set, else to the emulator whose
    credentials the test passes; replay needs neither and blocks every socket.
    """
    path = f"{name}.yaml"
    if RECORDING:
        credentials = live_credentials() if LIVE_ENDPOINT else emulator_credentials
        assert credentials, "recording needs the emulator's credentials or AIGW_LIVE_ENDPOINT"
        with gateway_vcr("all").use_cassette(path):
            yield credentials
        return
    with gateway_vcr("none").use_cassette(path), sockets_blocked():
        yield {"endpoint_url": REPLAY_ENDPOINT, "api_key": REPLAY_KEY}
