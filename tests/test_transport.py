"""The HTTP layer: pooled per gateway configuration, never mixing credentials, trusting a private CA, bounded reads."""

from __future__ import annotations

import ssl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType

import pytest
import trustme
from dify_plugin.entities.model.message import UserPromptMessage
from dify_plugin.errors.model import InvokeConnectionError

from adapters.gateway.config import GatewayConfig
from adapters.gateway.transport import session_for
from tests.conftest import OTHER_KEY, TEST_KEY
from tests.emulator import Consumer, GatewayEmulator, serve


def _chat(llm, credentials, text: str = "hi", model: str = "qwen-max") -> str:
    chunks = list(llm.invoke(model, credentials, [UserPromptMessage(content=text)], {}, stream=False))
    return chunks[0].delta.message.content


def test_one_session_and_one_connection_per_gateway_configuration(llm, gateway) -> None:
    # A gateway configuration of its own: other tests' concurrent calls on the shared one leave more connections.
    credentials = gateway.credentials(timeout="64")
    for _ in range(10):
        _chat(llm, credentials)
    session = session_for(dict(credentials))
    assert session is session_for(dict(credentials))
    assert session is not session_for({**credentials, "api_key": OTHER_KEY})
    # Keep-alive: ten sequential calls went over one pooled connection.
    assert len(session.client._transport._pool.connections) == 1


def test_customizable_models_on_the_same_gateway_credentials_share_one_session(llm, gateway) -> None:
    credentials = gateway.credentials(timeout="62")  # a gateway configuration (so a pool) of its own
    small = {**credentials, "context_size": "4096", "input_price": "1", "currency": "USD"}
    large = {**credentials, "context_size": "32768", "max_tokens_to_sample": "8192", "endpoint_model_name": "qwen-max"}
    assert _chat(llm, small, model="my-small") == _chat(llm, large, model="my-large") == "echo: hi"
    session = session_for(small)
    assert session is session_for(large) is session_for(credentials)
    assert len(session.client._transport._pool.connections) == 1, "the second model reused the first one's connection"
    assert session is not session_for({**small, "timeout": "63"})


def test_concurrent_requests_with_different_credentials_keep_their_own(llm, gateway) -> None:
    keys = {TEST_KEY: "team-a", OTHER_KEY: "team-b"}
    jobs = [(key, f"question {i} from {keys[key]}") for i in range(20) for key in keys]

    def run(job: tuple[str, str]) -> str:
        key, text = job
        # Dify builds a model object per request; the shared state is the transport's.
        model = type(llm)(llm.model_schemas)
        return _chat(model, MappingProxyType({**gateway.credentials(), "api_key": key}), text)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(run, jobs))
    assert answers == [f"echo: {text}" for _, text in jobs]
    by_consumer = {r.json()["messages"][0]["content"]: r.consumer for r in gateway.emulator.received}
    assert all(by_consumer[text] == keys[key] for key, text in jobs)


def test_credentials_are_not_mutated(llm, gateway) -> None:
    credentials = gateway.credentials(endpoint_model_name="qwen-max-latest")
    before = dict(credentials)
    _chat(llm, credentials)
    assert credentials == before


def test_custom_api_key_header(llm) -> None:
    emulator = GatewayEmulator(consumers=[Consumer(name="ops", api_key="sk-ops", api_key_header="X-API-Key")])
    with serve(emulator) as base_url:
        answer = _chat(llm, {"endpoint_url": f"{base_url}/v1", "api_key": "sk-ops", "api_key_header": "X-API-Key"})
    assert answer == "echo: hi"
    assert emulator.received[-1].headers["x-api-key"] == "sk-ops"
    assert "authorization" not in emulator.received[-1].headers


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory: pytest.TempPathFactory):
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    bundle = Path(tmp_path_factory.mktemp("ca")) / "private-ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    emulator = GatewayEmulator(consumers=[Consumer(name="tls", api_key=TEST_KEY)])
    with serve(emulator, ssl_context=context) as base_url:
        yield base_url, bundle


def test_a_private_ca_from_ssl_cert_file_is_trusted(llm, tls_gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, bundle = tls_gateway
    assert base_url.startswith("https://")
    credentials = {"endpoint_url": f"{base_url}/v1", "api_key": TEST_KEY}
    with pytest.raises(InvokeConnectionError, match="not trusted"):
        _chat(llm, credentials)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert _chat(llm, credentials) == "echo: hi"


def test_requests_ca_bundle_is_honoured_too(llm, tls_gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, bundle = tls_gateway
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert _chat(llm, {"endpoint_url": f"{base_url}/v1", "api_key": TEST_KEY}) == "echo: hi"


def _read_timeout(**fields: str) -> float:
    return GatewayConfig.from_credentials({"endpoint_url": "https://gw/v1", "api_key": "k", **fields}).timeouts.read


def test_read_timeout_comes_from_dify_unless_the_form_sets_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _read_timeout() == 300
    monkeypatch.setenv("MAX_REQUEST_TIMEOUT", "42")
    assert _read_timeout() == 42
    assert _read_timeout(timeout="7.5") == 7.5


def test_endpoint_base_path_is_kept() -> None:
    config = GatewayConfig.from_credentials({"endpoint_url": "https://gw.example.com/team-a/v1/", "api_key": "k"})
    assert config.endpoint.base_url == "https://gw.example.com/team-a"


def test_a_finished_stream_hands_its_connection_back_for_the_next_one(llm, gateway) -> None:
    credentials = gateway.credentials(timeout="61")  # a credential set (so a pool) of its own
    for _ in range(3):
        chunks = list(llm.invoke("qwen-max", credentials, [UserPromptMessage(content="a b c")], {}, stream=True))
        assert chunks[-1].delta.finish_reason == "stop"
    pool = session_for(dict(credentials)).client._transport._pool
    assert len(pool.connections) == 1 and pool.connections[0].is_idle()
