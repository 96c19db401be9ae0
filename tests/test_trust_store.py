"""The trust store: certifi plus the system store plus what SSL_CERT_FILE, SSL_CERT_DIR and
REQUESTS_CA_BUNDLE add; a certificate that fails verification is reported at once, not retried.

Every case has a CA of its own (trustme), so a trust store cached from another case cannot make
it pass.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest
import trustme
from dify_plugin.entities.model.message import UserPromptMessage
from dify_plugin.errors.model import CredentialsValidateFailedError, InvokeConnectionError

from adapters.gateway import tls
from adapters.gateway.config import GatewayConfig
from tests.conftest import TEST_KEY
from tests.emulator import Consumer, GatewayEmulator, serve


def _chat(llm, base_url: str, **fields: str) -> str:
    credentials = {"endpoint_url": f"{base_url}/v1", "api_key": TEST_KEY, **fields}
    chunks = list(llm.invoke("qwen-max", credentials, [UserPromptMessage(content="hi")], {}, stream=False))
    return chunks[0].delta.message.content


def _server_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def private_gateway(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS gateway whose certificate a CA of its own issued; yields its URL and the CA's PEM."""
    authority = trustme.CA()
    bundle = tmp_path / "private-ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    emulator = GatewayEmulator(consumers=[Consumer(name="tls", api_key=TEST_KEY)])
    with serve(emulator, ssl_context=_server_context(authority)) as base_url:
        yield base_url, bundle


def _hashed_directory(bundle: Path, directory: Path) -> Path:
    """`directory` holding `bundle` under its OpenSSL subject hash, as c_rehash names CA files."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to name a CA file by its subject hash")
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(bundle)], capture_output=True, text=True, check=True
    ).stdout.strip()
    directory.mkdir()
    shutil.copy(bundle, directory / f"{subject_hash}.0")
    return directory


def test_untrusted_until_ssl_cert_file_names_the_ca(llm, private_gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, bundle = private_gateway
    with pytest.raises(InvokeConnectionError, match="is not trusted"):
        _chat(llm, base_url, max_retries="0")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert _chat(llm, base_url) == "echo: hi"


def test_requests_ca_bundle_as_a_file(llm, private_gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, bundle = private_gateway
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert _chat(llm, base_url) == "echo: hi"


def test_requests_ca_bundle_as_a_hashed_directory(llm, private_gateway, tmp_path, monkeypatch) -> None:
    base_url, bundle = private_gateway
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(_hashed_directory(bundle, tmp_path / "requests-cas")))
    assert _chat(llm, base_url) == "echo: hi"


def test_ssl_cert_dir_with_several_directories(llm, private_gateway, tmp_path, monkeypatch) -> None:
    base_url, bundle = private_gateway
    empty = tmp_path / "empty"
    empty.mkdir()
    hashed = _hashed_directory(bundle, tmp_path / "cas")
    monkeypatch.setenv("SSL_CERT_DIR", f"{empty}{os.pathsep}{hashed}")
    assert _chat(llm, base_url) == "echo: hi"


def test_the_system_store_is_trusted(llm, private_gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    base_url, bundle = private_gateway
    real = ssl.get_default_verify_paths()
    system = ssl.DefaultVerifyPaths(
        real.cafile, real.capath, real.openssl_cafile_env, str(bundle), real.openssl_capath_env, real.openssl_capath
    )
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: system)
    monkeypatch.setattr(tls, "_stores", {})  # stores built before this host "installed" the CA
    assert tls.system_store()[0] == str(bundle)
    assert _chat(llm, base_url) == "echo: hi"


def test_a_private_ca_is_added_to_the_public_roots_not_instead_of_them(private_gateway, monkeypatch) -> None:
    _, bundle = private_gateway
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    config = GatewayConfig.from_credentials({"endpoint_url": "https://gw.example.com/v1", "api_key": "k"})
    trusted = {cert["serialNumber"] for cert in tls.trust_store(config.tls).get_ca_certs()}
    public = ssl.create_default_context(cafile=certifi.where()).get_ca_certs()
    assert {cert["serialNumber"] for cert in public} <= trusted
    assert len(trusted) > len(public), "the private CA came on top"


@pytest.mark.parametrize("variable", tls.CA_ENVIRONMENT)
def test_a_ca_path_that_cannot_be_used_names_the_variable(variable: str, tmp_path, monkeypatch) -> None:
    credentials = {"endpoint_url": "https://gw.example.com/v1", "api_key": "k"}
    monkeypatch.setenv(variable, str(tmp_path / "missing.pem"))
    with pytest.raises(CredentialsValidateFailedError, match=f"Environment variable {variable}: .* does not exist"):
        GatewayConfig.from_credentials(credentials)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n", encoding="utf-8")
    if variable != "SSL_CERT_DIR":
        monkeypatch.setenv(variable, str(garbage))
        config = GatewayConfig.from_credentials(credentials)
        with pytest.raises(CredentialsValidateFailedError, match=f"Environment variable {variable}: .*garbage.pem"):
            tls.trust_store(config.tls)


@pytest.fixture
def untrusted_tls_listener() -> Iterator[tuple[str, list[int]]]:
    """A TLS port with a certificate nobody trusts, counting the connections it accepts."""
    context = _server_context(trustme.CA())
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve_forever() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            try:
                context.wrap_socket(connection, server_side=True).close()
            except (OSError, ssl.SSLError):
                connection.close()  # the client refused the certificate

    threading.Thread(target=serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        listener.close()


def test_an_untrusted_certificate_is_not_retried(llm, untrusted_tls_listener, caplog) -> None:
    base_url, accepted = untrusted_tls_listener
    caplog.set_level(logging.WARNING)
    with pytest.raises(InvokeConnectionError, match="is not trusted") as caught:
        _chat(llm, base_url, max_retries="2", retry_backoff="0")
    assert len(accepted) == 1, "one attempt: verification fails the same way every time"
    assert "attempts" not in str(caught.value)
    assert [r.getMessage().split(" attempt=")[1].split()[0] for r in caplog.records] == ["1/3"]
    assert "status=tls_untrusted" in caplog.records[0].getMessage()
