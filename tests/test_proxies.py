"""Proxies from the environment: HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY (CIDR entries too),
and a failure at the proxy reported as the proxy's, naming it without its credentials.

The gateway and the proxy (tests/loopback_proxy.py) both listen on 127.0.0.1, so what decides the
way a request took is what the proxy saw.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from dify_plugin.entities.model.message import UserPromptMessage
from dify_plugin.errors.model import CredentialsValidateFailedError, InvokeConnectionError, InvokeError

from adapters.gateway.config import GatewayConfig
from adapters.gateway.proxy import proxy_config
from tests.conftest import TEST_KEY
from tests.emulator import Consumer, GatewayEmulator, serve
from tests.loopback_proxy import loopback_proxy

PROXY_PASSWORD = "proxy-pass-0042"


def _chat(llm, base_url: str, **fields: str) -> str:
    credentials = {"endpoint_url": f"{base_url}/v1", "api_key": TEST_KEY, "max_retries": "0", **fields}
    chunks = list(llm.invoke("qwen-max", credentials, [UserPromptMessage(content="hi")], {}, stream=False))
    return chunks[0].delta.message.content


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path_factory.mktemp("proxy-ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    with serve(GatewayEmulator(consumers=[Consumer(name="p", api_key=TEST_KEY)]), ssl_context=context) as url:
        yield url, bundle


def test_https_goes_through_https_proxy_in_a_tunnel(llm, tls_gateway, monkeypatch) -> None:
    base_url, bundle = tls_gateway
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    with loopback_proxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        assert _chat(llm, base_url) == "echo: hi"
    assert proxy.seen == [f"CONNECT {base_url.removeprefix('https://')} HTTP/1.1"]


def test_http_goes_through_http_proxy_as_a_forwarded_request(llm, gateway, monkeypatch) -> None:
    with loopback_proxy() as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)  # lowercase, as curl and urllib read it too
        assert _chat(llm, gateway.base_url) == "echo: hi"
    assert proxy.seen == [f"POST {gateway.base_url}/v1/chat/completions HTTP/1.1"]


def test_all_proxy_serves_when_no_scheme_proxy_is_set(llm, gateway, monkeypatch) -> None:
    with loopback_proxy() as proxy:
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        assert _chat(llm, gateway.base_url) == "echo: hi"
    assert len(proxy.seen) == 1


@pytest.mark.parametrize(
    ("no_proxy", "direct"),
    [
        ("127.0.0.0/8", True),
        ("10.0.0.0/8, 127.0.0.1/32", True),
        ("10.0.0.0/8", False),
        ("127.0.0.1", True),
        ("*", True),
        ("example.com,.internal", False),
    ],
)
def test_no_proxy_entries_including_cidr_ranges(llm, gateway, monkeypatch, no_proxy: str, direct: bool) -> None:
    with loopback_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", no_proxy)
        assert _chat(llm, gateway.base_url) == "echo: hi"
    assert (proxy.seen == []) is direct, proxy.seen


def test_no_proxy_matching_rules() -> None:
    config = proxy_config(
        {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": ".corp.example, fd00::/8, 192.168.0.0/16:8443, [::1]:9000"}
    )

    def direct(url: str) -> bool:
        return config.proxy_for(httpx.URL(url)) is None

    assert direct("https://gw.corp.example/v1") and direct("https://corp.example/v1")
    assert not direct("https://notcorp.example/v1")
    assert direct("https://[fd00::12]/v1") and not direct("https://[fe80::1]/v1")
    assert direct("https://192.168.3.4:8443/v1") and not direct("https://192.168.3.4/v1")
    assert direct("https://[::1]:9000/v1") and not direct("https://[::1]:9001/v1")
    assert not direct("https://10.1.2.3/v1"), "an address outside every range goes through the proxy"


def test_an_unreachable_proxy_is_named_not_the_gateway(llm, gateway, monkeypatch, caplog) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://ops:{PROXY_PASSWORD}@127.0.0.1:{port}")
    caplog.set_level(logging.WARNING)
    with pytest.raises(InvokeConnectionError) as caught:
        _chat(llm, gateway.base_url)
    message = str(caught.value)
    assert message.startswith(f"Could not connect to the proxy 127.0.0.1:{port} (HTTP_PROXY) for the AI Gateway at")
    shown = message + " ".join(r.getMessage() for r in caplog.records)
    assert PROXY_PASSWORD not in shown and "ops:" not in shown
    assert f"proxy=127.0.0.1:{port}" in caplog.records[-1].getMessage()


def test_a_proxy_that_refuses_the_tunnel_is_named(llm, tls_gateway, monkeypatch) -> None:
    base_url, bundle = tls_gateway
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    with loopback_proxy(refuse_with=403) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        with pytest.raises(InvokeConnectionError) as caught:
            _chat(llm, base_url)
    port = proxy.url.rsplit(":", 1)[1]
    assert f"The proxy 127.0.0.1:{port} (HTTPS_PROXY) did not open the way to the AI Gateway" in str(caught.value)
    assert "403" in str(caught.value)


def test_an_error_answer_through_a_forwarding_proxy_mentions_it(llm, gateway, monkeypatch) -> None:
    with loopback_proxy(refuse_with=502) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        with pytest.raises(InvokeError) as caught:
            _chat(llm, gateway.base_url)
    assert f"through the proxy {proxy.url.removeprefix('http://')} (HTTP_PROXY)" in str(caught.value)


@pytest.mark.parametrize("value", ["ftp://proxy:21", "http://", f"http://ops:{PROXY_PASSWORD}@proxy:notaport"])
def test_a_bad_proxy_variable_is_refused_without_echoing_it(value: str, monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", value)
    with pytest.raises(
        CredentialsValidateFailedError, match="Environment variable HTTPS_PROXY: must be a proxy URL"
    ) as caught:
        GatewayConfig.from_credentials({"endpoint_url": "https://gw.example.com/v1", "api_key": "k"})
    assert PROXY_PASSWORD not in str(caught.value)
