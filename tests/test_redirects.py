"""A redirect from the gateway is never followed and ends in an error that says where it points.

Following one would send the prompt and the consumer's credentials to an address nobody configured;
the usual cause is an http:// endpoint the gateway moves to https://, or a moved base path, which
the user fixes in endpoint_url. The answers are served through vcrpy (tests/real_traces.py): a
second request, to the redirect target, would find no answer and fail the test.
"""

from __future__ import annotations

import io

import pytest
from dify_plugin.entities.model.message import UserPromptMessage
from dify_plugin.errors.model import InvokeBadRequestError

from adapters.models.audio import silence_wav
from tests.cassettes import REPLAY_ENDPOINT
from tests.conftest import adapter
from tests.real_traces import Served, replayed

_HTML = b"<html><body>Moved</body></html>"
_GATEWAY = REPLAY_ENDPOINT.removesuffix("/v1")  # http://aigw.invalid


def _chat(stream: bool):
    return lambda c: list(adapter("llm").invoke("qwen-max", c, [UserPromptMessage(content="hi")], {}, stream=stream))


CALLS = {
    "llm-stream": ("/v1/chat/completions", _chat(True)),
    "llm-blocking": ("/v1/chat/completions", _chat(False)),
    "embedding": ("/v1/embeddings", lambda c: adapter("text-embedding").invoke("text-embedding-v3", c, ["hi"])),
    "rerank-dashscope": (
        "/api/v1/services/rerank/text-rerank/text-rerank",
        lambda c: adapter("rerank").invoke("gte-rerank-v2", c, "q", ["doc"], None, None),
    ),
    "speech2text": (
        "/v1/audio/transcriptions",
        lambda c: adapter("speech2text").invoke("whisper-large-v3", c, io.BytesIO(silence_wav(0.01))),
    ),
    "tts": ("/v1/audio/speech", lambda c: list(adapter("tts").invoke("tts-1", "tenant", c, "hello", "alloy"))),
}


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("call", CALLS)
def test_a_redirect_names_its_target_and_the_endpoint_that_reaches_it(call: str, status: int) -> None:
    path, invoke = CALLS[call]
    location = f"https://gw.example.com/team-b{path}?apikey=sk-secret-in-the-query"
    with (
        replayed(Served(path, status, "text/html", _HTML, {"Location": location})) as credentials,
        pytest.raises(InvokeBadRequestError) as caught,
    ):
        invoke(credentials)
    message = str(caught.value)
    assert f"HTTP {status}" in message
    assert f"redirect to https://gw.example.com/team-b{path}," in message
    assert "set endpoint_url to https://gw.example.com/team-b/v1" in message
    assert "sk-secret" not in message and "not JSON" not in message


def test_a_relative_redirect_is_resolved_against_the_gateway() -> None:
    path, invoke = CALLS["llm-blocking"]
    with (
        replayed(Served(path, 308, "text/html", _HTML, {"Location": f"/moved{path}"})) as credentials,
        pytest.raises(InvokeBadRequestError, match=f"redirect to {_GATEWAY}/moved{path},") as caught,
    ):
        invoke(credentials)
    assert f"set endpoint_url to {_GATEWAY}/moved/v1" in str(caught.value)


def test_a_redirect_elsewhere_names_the_target_and_asks_to_check_the_endpoint() -> None:
    path, invoke = CALLS["llm-stream"]
    answer = Served(path, 302, "text/html", _HTML, {"Location": "https://sso.example.com/login?next=%2Fv1"})
    with replayed(answer) as credentials, pytest.raises(InvokeBadRequestError) as caught:
        invoke(credentials)
    assert "redirect to https://sso.example.com/login, which the plugin does not follow" in str(caught.value)
    assert "check endpoint_url" in str(caught.value)


def test_a_redirect_without_a_location_says_so() -> None:
    path, invoke = CALLS["embedding"]
    with (
        replayed(Served(path, 301, "text/html", _HTML)) as credentials,
        pytest.raises(InvokeBadRequestError, match="a redirect without a Location header; check endpoint_url"),
    ):
        invoke(credentials)
