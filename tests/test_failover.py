"""Failover across gateway endpoints and consumer keys: the next one at once when one fails, only before
anything reached Dify, within the retry budget, every attempt signed for where it goes."""

from __future__ import annotations

import logging
import socket

import pytest
from dify_plugin.entities.model.message import UserPromptMessage
from dify_plugin.errors.model import (
    CredentialsValidateFailedError,
    InvokeAuthorizationError,
    InvokeRateLimitError,
    InvokeServerUnavailableError,
)

from adapters.gateway.failover import REST_BASE, REST_MAX, Part, Rotation
from tests.conftest import OTHER_KEY, TEST_KEY
from tests.emulator import Consumer, GatewayEmulator, serve


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _ask(llm, credentials, *, stream: bool = False, text: str = "hi") -> str:
    chunks = list(llm.invoke("qwen-max", credentials, [UserPromptMessage(content=text)], {}, stream=stream))
    return "".join(c.delta.message.content for c in chunks)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every pause the transport makes between attempts (none is waited for here)."""
    waited: list[float] = []
    monkeypatch.setattr("adapters.gateway.transport.time.sleep", waited.append)
    return waited


def _refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


def _endpoints(gateway, *base_paths: str) -> str:
    return ",".join(f"{gateway.base_url}{path}/v1" for path in base_paths)


# --- which one the next attempt uses -------------------------------------------------------------


def test_the_first_ready_one_is_used_and_a_failing_one_rests_for_a_doubling_backoff() -> None:
    clock = FakeClock()
    rotation = Rotation(endpoints=2, keys=3, clock=clock)
    assert rotation.choose() == (0, 0)
    assert rotation.rest(Part.KEY, 0) is True
    assert rotation.choose() == (0, 1)
    clock.now += REST_BASE
    assert rotation.choose() == (0, 0)  # back to the first once its rest is over
    rotation.rest(Part.KEY, 0)
    clock.now += REST_BASE
    assert rotation.choose() == (0, 1)  # second failure in a row: twice as long
    clock.now += REST_BASE
    assert rotation.choose() == (0, 0)
    rotation.succeeded(0, 0)
    rotation.rest(Part.KEY, 0)
    clock.now += REST_BASE
    assert rotation.choose() == (0, 0)  # the success cleared the record


def test_a_reset_hint_sets_the_rest_and_the_backoff_has_a_cap() -> None:
    clock = FakeClock()
    rotation = Rotation(endpoints=2, keys=1, clock=clock)
    rotation.rest(Part.ENDPOINT, 0, hint=30)
    clock.now += 29
    assert rotation.choose() == (1, 0)
    clock.now += 1
    assert rotation.choose() == (0, 0)
    for _ in range(20):
        rotation.rest(Part.ENDPOINT, 0)
    clock.now += REST_MAX
    assert rotation.choose() == (0, 0)


def test_when_every_one_rests_the_soonest_back_is_used_and_a_single_one_never_rests() -> None:
    clock = FakeClock()
    rotation = Rotation(endpoints=2, keys=1, clock=clock)
    rotation.rest(Part.ENDPOINT, 0, hint=50)
    assert rotation.rest(Part.ENDPOINT, 1, hint=10) is False  # nothing else is ready
    assert rotation.choose() == (1, 0)
    assert rotation.rest(Part.KEY, 0, hint=10) is False  # one key: nothing to move to, nothing recorded
    assert rotation.choose() == (1, 0)


# --- through the gateway -------------------------------------------------------------------------


def test_an_endpoint_answering_503_is_left_for_the_next_at_once(llm, gateway, sleeps: list[float]) -> None:
    credentials = gateway.credentials(max_retries="1", retry_backoff="5")
    credentials["endpoint_url"] = _endpoints(gateway, "/_fault/status-503", "/second")
    assert _ask(llm, credentials) == "echo: hi"
    assert sleeps == []  # no backoff before moving on
    assert [r.path.split("/v1")[0] for r in gateway.emulator.received] == ["/_fault/status-503", "/second"]
    assert _ask(llm, credentials, stream=True) == "echo: hi"  # the next request skips the resting one
    assert gateway.emulator.hits("/_fault/status-503") == 1


@pytest.mark.parametrize("fault", ["status-502", "status-504"])
def test_every_gateway_unavailable_status_moves_on(llm, gateway, fault: str) -> None:
    credentials = gateway.credentials(max_retries="1")
    credentials["endpoint_url"] = _endpoints(gateway, f"/_fault/{fault}", "")
    assert _ask(llm, credentials) == "echo: hi"


def test_a_refused_connection_moves_to_the_next_endpoint(llm, gateway) -> None:
    credentials = gateway.credentials(max_retries="1")
    credentials["endpoint_url"] = f"{_refused_url()}, {gateway.base_url}/v1"
    assert _ask(llm, credentials) == "echo: hi"
    assert gateway.emulator.hits("/v1/chat/completions") == 1


def test_an_endpoint_that_sends_nothing_before_the_read_timeout_is_left(llm, gateway, sleeps: list[float]) -> None:
    credentials = gateway.credentials(max_retries="1", timeout="0.5")
    credentials["endpoint_url"] = _endpoints(gateway, "/_fault/stall-3", "")
    assert _ask(llm, credentials) == "echo: hi"
    assert [r.path for r in gateway.emulator.received][-1] == "/v1/chat/completions"
    assert sleeps == []


def test_a_key_whose_quota_is_spent_rests_for_the_reset_hint_and_the_next_key_is_used(
    llm, gateway, sleeps: list[float]
) -> None:
    gateway.emulator.fault_consumer("team-a", "status-429")  # X-TokenRateLimit-Reset: 7
    credentials = gateway.credentials(api_key=f"{TEST_KEY},{OTHER_KEY}", max_retries="2")
    assert _ask(llm, credentials) == "echo: hi"
    assert _ask(llm, credentials) == "echo: hi"
    assert [r.consumer for r in gateway.emulator.received] == ["team-a", "team-b", "team-b"]
    assert [r.status for r in gateway.emulator.received] == [429, 200, 200]
    assert sleeps == []


@pytest.mark.parametrize("bad_first", ["sk-nobody", "disabled"])
def test_a_refused_key_is_left_for_the_next(llm, gateway, bad_first: str) -> None:
    if bad_first == "disabled":
        gateway.emulator.fault_consumer("team-a", "status-403")
        bad_first = TEST_KEY
    credentials = gateway.credentials(api_key=f"{bad_first}\n{OTHER_KEY}", max_retries="1")
    assert _ask(llm, credentials, stream=True) == "echo: hi"
    assert gateway.emulator.received[-1].headers["authorization"] == f"Bearer {OTHER_KEY}"


def test_failover_is_bounded_by_the_retry_budget(llm, gateway) -> None:
    credentials = gateway.credentials(api_key=f"sk-nobody,{TEST_KEY}")  # max_retries 0: one attempt
    with pytest.raises(InvokeAuthorizationError, match="Unauthorized consumer"):
        _ask(llm, credentials)
    assert gateway.emulator.hits("/chat/completions") == 1


def test_every_key_rate_limited_ends_in_a_rate_limit_error_with_the_hint(llm, gateway) -> None:
    for consumer in ("team-a", "team-b"):
        gateway.emulator.fault_consumer(consumer, "status-429")
    credentials = gateway.credentials(api_key=f"{TEST_KEY},{OTHER_KEY}", max_retries="3")
    with pytest.raises(InvokeRateLimitError, match="retry after 7 s"):
        _ask(llm, credentials)
    assert gateway.emulator.hits("/chat/completions") == 2  # each key once; the 7 s hint is too long to wait


def test_nothing_moves_once_a_stream_has_delivered(llm, gateway) -> None:
    credentials = gateway.credentials(max_retries="2")
    credentials["endpoint_url"] = _endpoints(gateway, "/_fault/ssereset", "/second")
    with pytest.raises(Exception, match=r"(?i)connection|incomplete"):
        _ask(llm, credentials, stream=True, text="a b c d e f")
    assert gateway.emulator.hits("/second") == 0


def test_a_bad_request_does_not_move(llm, gateway) -> None:
    credentials = gateway.credentials(max_retries="2", api_key=f"{TEST_KEY},{OTHER_KEY}")
    credentials["endpoint_url"] = _endpoints(gateway, "/_fault/status-400", "/second")
    with pytest.raises(Exception, match="HTTP 400"):
        _ask(llm, credentials)
    assert gateway.emulator.hits("/chat/completions") == 1


def test_each_attempt_is_signed_for_the_endpoint_it_goes_to(llm) -> None:
    emulator = GatewayEmulator(consumers=[Consumer(name="signer", hmac_access_key="ak-1", hmac_secret_key="sk-1")])
    with serve(emulator) as base_url:
        credentials = {
            "auth_method": "hmac",
            "hmac_access_key": "ak-1",
            "hmac_secret_key": "sk-1",
            "max_retries": "1",
            "endpoint_url": f"{base_url}/_fault/status-502/v1,{base_url}/region-b/v1",
        }
        assert _ask(llm, credentials) == "echo: hi"
    first, second = emulator.received
    # The signature covers the path: the second passed the check with its own path and nonce.
    assert (first.consumer, second.consumer) == ("signer", "signer")
    assert second.path == "/region-b/v1/chat/completions"
    assert first.headers["x-ca-nonce"] != second.headers["x-ca-nonce"]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("endpoint_url", "https://a.example.com/v1, gw.example.com/v1", "URL 2 of 2 must be an http:// or https://"),
        ("endpoint_url", "https://a.example.com/v1\nhttps://a.example.com/v1/", "URL 2 repeats URL 1"),
        ("api_key", "sk-one,sk-twö", "key 2 of 2 contains characters that cannot be sent"),
        ("api_key", "sk-one, sk-one", "key 2 repeats key 1"),
        ("api_key", " , ", "holds no key"),
    ],
)
def test_a_bad_url_or_key_among_several_is_named_by_its_place(llm, field: str, value: str, problem: str) -> None:
    credentials = {"endpoint_url": "https://a.example.com/v1", "api_key": "sk-one", field: value}
    with pytest.raises(CredentialsValidateFailedError) as caught:
        llm.validate_credentials("qwen-max", credentials)
    assert f"Credential field '{field}'" in str(caught.value) and problem in str(caught.value)
    assert "sk-one" not in str(caught.value)


def test_several_keys_all_reach_the_gateway_as_pasted(llm, gateway) -> None:
    gateway.emulator.fault_consumer("team-a", "status-401")
    credentials = gateway.credentials(api_key=f"Bearer {TEST_KEY}, Bearer {OTHER_KEY}", max_retries="1")
    assert _ask(llm, credentials) == "echo: hi"
    assert [r.headers["authorization"] for r in gateway.emulator.received] == [
        f"Bearer {TEST_KEY}",
        f"Bearer {OTHER_KEY}",
    ]


def test_an_unavailable_endpoint_among_keys_is_retried_not_rotated(llm, gateway) -> None:
    credentials = gateway.credentials(api_key=f"{TEST_KEY},{OTHER_KEY}", max_retries="1", retry_backoff="0.05")
    credentials["endpoint_url"] = _endpoints(gateway, "/_fault/fail-first-1-status-503")
    assert _ask(llm, credentials) == "echo: hi"
    assert [r.consumer for r in gateway.emulator.received] == ["team-a", "team-a"]  # the key is not to blame


def test_a_failover_that_finds_no_healthy_endpoint_reports_the_last_error(llm, gateway) -> None:
    credentials = gateway.credentials(max_retries="1")
    credentials["endpoint_url"] = _endpoints(gateway, "/_fault/status-503", "/_fault/status-502")
    with pytest.raises(InvokeServerUnavailableError, match=r"HTTP 502.*after 2 attempts"):
        _ask(llm, credentials)


def test_a_failover_is_one_log_line_naming_what_rested_by_its_place(llm, gateway, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="adapters.gateway")
    gateway.emulator.fault_consumer("team-a", "status-429")
    assert _ask(llm, gateway.credentials(api_key=f"{TEST_KEY},{OTHER_KEY}", max_retries="1")) == "echo: hi"
    (line,) = [r.getMessage() for r in caplog.records if r.name == "adapters.gateway"]
    assert line.startswith("AI Gateway failover: method=POST route=/v1/chat/completions status=429 ")
    assert line.endswith(" rested=key_1/2") and TEST_KEY not in line and OTHER_KEY not in line
