"""The audio URL of a qwen-tts answer is fetched only where it may be (adapters/gateway/download.py).

A front before the emulator replaces the URL in the answer with the one a test names, as a hostile
or misconfigured gateway could: a metadata address, a private one, another loopback service.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dify_plugin.errors.model import InvokeBadRequestError, InvokeServerUnavailableError

from adapters.gateway import download
from adapters.gateway.limits import DOWNLOAD_LIMIT, MIB, describe
from adapters.gateway.transport import session_for
from tests.conftest import TEST_KEY, Gateway, adapter
from tests.emulator import Request, Response, make_wav, serve
from tests.emulator.bounds import mib_pieces

QWEN_PATH = "/api/v1/services/aigc/multimodal-generation/generation"


@dataclass
class UrlFront:
    """The emulator, with the audio URL of every qwen-tts answer replaced by `url`, in which {port} is
    the front's port and {path} the original URL's path."""

    gateway: Gateway
    url: str = ""
    base_url: str = ""

    def __call__(self, request: Request) -> Response:
        response = self.gateway.emulator(request)
        if request.path.endswith(QWEN_PATH) and response.status == 200 and self.url:
            path = re.search(rb'"url":"http://[^/"]*(/[^"]*)"', response.body).group(1).decode()
            url = self.url.format(port=self.base_url.rsplit(":", 1)[1], path=path).encode()
            response.body = re.sub(rb'"url":"[^"]*"', b'"url":"' + url + b'"', response.body)
        return response

    def speak(self) -> bytes:
        credentials = {"endpoint_url": f"{self.base_url}/v1", "api_key": TEST_KEY, "max_retries": "0"}
        return b"".join(adapter("tts").invoke("qwen-tts", "tenant", credentials, "Hello.", "Cherry"))


@pytest.fixture
def front(gateway) -> Iterator[UrlFront]:
    front = UrlFront(gateway)
    with serve(front) as base_url:
        front.base_url = base_url
        yield front


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud's metadata (carrier-grade NAT range)
        "http://10.0.0.7/a.wav",
        "http://172.16.3.4/a.wav",
        "http://192.168.1.1/a.wav",
        "http://0.0.0.0/a.wav",
        "http://[::1]/a.wav",
        "http://[fd00::1]/a.wav",
        "http://[fe80::1]/a.wav",
        "http://[::ffff:127.0.0.1]/a.wav",
        "http://localhost:9/a.wav",  # a name that resolves to loopback
    ],
)
def test_non_public_addresses_are_never_fetched(front, url: str) -> None:
    front.url = url
    with pytest.raises(InvokeBadRequestError, match="non-public address, not fetched") as caught:
        front.speak()
    assert "AIGW_DOWNLOAD_HOSTS" in str(caught.value)
    assert not [r for r in front.gateway.emulator.received if r.method == "GET"]


def test_an_operator_listed_network_is_fetched(front, monkeypatch) -> None:
    """127.0.0.0/8 listed: the audio on 'localhost' (the gateway's server under another name) is fetched."""
    monkeypatch.setenv("AIGW_DOWNLOAD_HOSTS", "oss.internal, 127.0.0.0/8")
    front.url = "http://localhost:{port}{path}"
    assert front.speak() == make_wav(b"Hello.")


def test_the_gateways_own_host_is_fetched_on_any_port_without_its_credentials(front, gateway) -> None:
    """The emulator's port differs from the front's: same host, another origin, so no auth goes."""
    front.url = ""
    original = front.gateway.emulator

    def moved(request: Request) -> Response:
        response = original(request)
        if request.path.endswith(QWEN_PATH) and response.status == 200:
            response.body = response.body.replace(front.base_url.encode(), gateway.base_url.encode())
        return response

    front.gateway = Gateway(moved, gateway.base_url)  # type: ignore[arg-type]
    assert front.speak() == make_wav(b"Hello.")
    download_request = gateway.emulator.received[-1]
    assert download_request.method == "GET" and "authorization" not in download_request.headers


def test_a_redirect_is_not_followed(front) -> None:
    with serve(lambda request: Response(302, [("Location", "http://169.254.169.254/")])) as other:
        front.url = other + "/a.wav"  # 127.0.0.1: the gateway's own host, so only the redirect stops it
        with pytest.raises(InvokeServerUnavailableError, match="answered a redirect, which is not followed"):
            front.speak()


def test_an_answer_that_is_not_audio_is_an_error(front) -> None:
    """Another service on the gateway's host answers with a text page: not returned as audio."""
    page = Response(200, [("Content-Type", "text/html")], b"<html><body>internal dashboard</body></html>")
    with serve(lambda request: page) as other:
        front.url = other + "/status"
        with pytest.raises(
            InvokeServerUnavailableError, match=r"the audio from http://127\.0\.0\.1/status is not audio \(text/html"
        ):
            front.speak()


def test_a_url_with_credentials_is_refused(front) -> None:
    front.url = "http://user:pw@example.com/a.wav"
    with pytest.raises(InvokeServerUnavailableError, match="carries a user name or password") as caught:
        front.speak()
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/a.wav", "gopher://127.0.0.1:6379/_INFO"])
def test_only_http_and_https_urls_are_fetched(front, url: str) -> None:
    front.url = url
    with pytest.raises(InvokeServerUnavailableError, match=r"the URL of the audio is not an http\(s\) URL"):
        front.speak()


def _past_the_download_bound(request: Request) -> Response:
    """Audio that goes on a MiB past the bound (generated as it is sent)."""
    return Response(200, [("Content-Type", "audio/wav")], mib_pieces(DOWNLOAD_LIMIT // MIB + 1))


def test_audio_past_the_download_bound_is_cut_on_another_origin(front) -> None:
    with serve(_past_the_download_bound) as other:
        front.url = other + "/a.wav"
        with pytest.raises(InvokeBadRequestError, match=f"larger than the {describe(DOWNLOAD_LIMIT)} the plugin reads"):
            front.speak()


def test_audio_past_the_download_bound_is_cut_on_the_gateways_origin(front) -> None:
    """The gateway's own origin is read with its auth and retries, and within the same bound."""
    emulator = front.gateway.emulator

    def gateway_with_big_files(request: Request) -> Response:
        return _past_the_download_bound(request) if request.path == "/big.wav" else emulator(request)

    front.gateway = Gateway(gateway_with_big_files, front.gateway.base_url)  # type: ignore[arg-type]
    front.url = "http://127.0.0.1:{port}/big.wav"
    with pytest.raises(InvokeBadRequestError, match=f"larger than the {describe(DOWNLOAD_LIMIT)} the plugin reads"):
        front.speak()


def test_a_public_name_is_connected_to_the_address_that_was_checked(gateway, monkeypatch) -> None:
    """Resolved once: the request goes to the checked address, the name only in Host and the TLS
    server name, so a second lookup answering 127.0.0.1 (DNS rebinding) is never made."""
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))]])
    monkeypatch.setattr(download.socket, "getaddrinfo", lambda *args, **kwargs: next(answers))
    session = session_for(gateway.credentials())
    url = download.httpx.URL("https://files.example.com/audio.wav?Signature=x")
    request = download._pinned_request(session, url, [], "the audio", QWEN_PATH)
    assert request.url.host == "93.184.215.14" and request.url.query == b"Signature=x"
    assert request.headers["host"] == "files.example.com"
    assert request.extensions["sni_hostname"] == "files.example.com"
