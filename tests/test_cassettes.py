"""Recorded cassettes hold no credential, signature or token, and the scrubbers that ensure it work."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from tests.cassettes import CASSETTE_DIR, SECRET_REQUEST_HEADERS, _scrub_request, _scrub_response
from tests.conftest import OTHER_KEY, TEST_KEY

CASSETTES = sorted(CASSETTE_DIR.rglob("*.yaml"))
_LEAK_PATTERNS = [
    re.compile(r"Bearer\s+\S+"),
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}"),  # a JWT
    re.compile(r"x-ca-signature", re.I),
    re.compile(r"x-ca-nonce", re.I),
]
_KNOWN_SECRETS = [TEST_KEY, OTHER_KEY, *filter(None, [os.environ.get("AIGW_LIVE_API_KEY")])]


def test_there_are_cassettes_to_check() -> None:
    assert len(CASSETTES) >= 5


@pytest.mark.parametrize("path", CASSETTES, ids=lambda p: str(p.relative_to(CASSETTE_DIR)))
def test_cassette_holds_no_secret(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for pattern in _LEAK_PATTERNS:
        assert not pattern.search(text), f"{pattern.pattern} in {path.name}"
    for secret in _KNOWN_SECRETS:
        assert secret not in text
    for interaction in yaml.safe_load(text)["interactions"]:
        headers = {name.lower() for name in interaction["request"]["headers"]}
        assert not headers & set(SECRET_REQUEST_HEADERS)
        assert "apikey=" not in interaction["request"]["uri"].lower()


class _Request:
    def __init__(self, uri: str) -> None:
        self.uri = uri


def test_scrubbers_remove_key_query_parameters_and_volatile_headers() -> None:
    request = _scrub_request(_Request("https://gw/v1/chat/completions?apikey=sk-live&stage=RELEASE"))
    assert request.uri == "https://gw/v1/chat/completions?stage=RELEASE"
    response = _scrub_response({"headers": {"Date": ["x"], "Set-Cookie": ["s"], "Content-Type": ["application/json"]}})
    assert response["headers"] == {"Content-Type": ["application/json"]}
