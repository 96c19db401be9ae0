"""Checking credentials: the minimal call with every endpoint and every key, naming the one that fails,
after the gateway's model list where it has one."""

from __future__ import annotations

import pytest
from dify_plugin.errors.model import CredentialsValidateFailedError

from tests.conftest import OTHER_KEY, TEST_KEY, adapter


def _posts(gateway) -> list[tuple[str, str, str]]:
    return [
        (r.path.removesuffix("/chat/completions"), r.headers["authorization"], str(r.status))
        for r in gateway.emulator.received
        if r.method == "POST"
    ]


def test_every_endpoint_and_every_key_is_checked_once(llm, gateway) -> None:
    credentials = gateway.credentials(api_key=f"{TEST_KEY},{OTHER_KEY}")
    credentials["endpoint_url"] = f"{gateway.base_url}/region-a/v1, {gateway.base_url}/region-b/v1"
    llm.validate_credentials("qwen-plus", credentials)
    assert _posts(gateway) == [
        ("/region-a/v1", f"Bearer {TEST_KEY}", "200"),
        ("/region-b/v1", f"Bearer {TEST_KEY}", "200"),
        ("/region-a/v1", f"Bearer {OTHER_KEY}", "200"),
    ]


def test_a_broken_second_endpoint_fails_the_check_and_is_named(llm, gateway) -> None:
    credentials = gateway.credentials(max_retries="2")
    credentials["endpoint_url"] = f"{gateway.base_url}/v1,{gateway.base_url}/_fault/status-503/v1"
    with pytest.raises(CredentialsValidateFailedError) as caught:
        llm.validate_credentials("qwen-plus", credentials)
    message = str(caught.value)
    assert message.startswith(f"Model 'qwen-plus' (endpoint 2 of 2 ({gateway.base_url}/_fault/status-503/v1)): ")
    assert "HTTP 503" in message
    # Pinned: the failing endpoint was retried where it is, never failed over to the first.
    assert [path for path, _, _ in _posts(gateway)] == ["/v1"] + ["/_fault/status-503/v1"] * 3


def test_a_wrong_second_key_is_named_by_its_place_only(llm, gateway) -> None:
    credentials = gateway.credentials(api_key=f"{TEST_KEY}, sk-wrong-9f3")
    with pytest.raises(CredentialsValidateFailedError) as caught:
        llm.validate_credentials("qwen-plus", credentials)
    message = str(caught.value)
    assert message.startswith("Model 'qwen-plus' (API key 2 of 2): ") and "Unauthorized consumer" in message
    assert "sk-wrong-9f3" not in message and "endpoint" not in message.split(":")[0]


def test_a_model_the_gateway_does_not_list_fails_with_the_closest_names(llm, gateway) -> None:
    gateway.emulator.serve_models(["qwen-plus", "qwen-plus-latest", "qwen-max", "text-embedding-v4"])
    with pytest.raises(CredentialsValidateFailedError) as caught:
        llm.validate_credentials("qwen-pluss", gateway.credentials())
    message = str(caught.value)
    assert "does not list model 'qwen-pluss'" in message and "closest listed: qwen-plus, qwen-plus-latest" in message
    assert [r.method for r in gateway.emulator.received] == ["GET"]  # no call for a model that is not there


def test_a_listed_model_is_then_called_and_the_name_sent_is_the_one_looked_up(llm, gateway) -> None:
    gateway.emulator.serve_models(["Qwen/Qwen3-32B"])
    credentials = gateway.credentials(endpoint_model_name="Qwen/Qwen3-32B")
    llm.validate_credentials("team-qwen", credentials)
    listing, call = gateway.emulator.received
    assert (listing.method, listing.path, listing.consumer) == ("GET", "/v1/models", "team-a")  # authenticated
    assert call.json()["model"] == "Qwen/Qwen3-32B"
    with pytest.raises(CredentialsValidateFailedError, match="does not list model 'team-qwen'"):
        llm.validate_credentials("team-qwen", gateway.credentials())


@pytest.mark.parametrize("model_type", ["text-embedding", "rerank", "tts"])
def test_every_model_type_looks_its_model_up(gateway, model_type: str) -> None:
    gateway.emulator.serve_models(["something-else"])
    model = {"text-embedding": "text-embedding-v4", "rerank": "gte-rerank-v2", "tts": "tts-1"}[model_type]
    with pytest.raises(CredentialsValidateFailedError, match=f"does not list model '{model}'"):
        adapter(model_type).validate_credentials(model, gateway.credentials())


def test_without_a_model_list_route_the_call_alone_decides(llm, gateway) -> None:
    llm.validate_credentials("any-name-at-all", gateway.credentials())
    listing, call = gateway.emulator.received
    assert (listing.path, listing.status, call.status) == ("/v1/models", 404, 200)
