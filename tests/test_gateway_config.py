"""The gateway configuration: parsed once from the form's gateway fields, typed, one error phrasing, no secret shown."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from dify_plugin.errors.model import CredentialsValidateFailedError

from adapters.catalog.loader import default_catalog
from adapters.gateway.auth.api_key import ApiKeyConfig
from adapters.gateway.auth.hmac import HmacConfig
from adapters.gateway.auth.jwt import JwtConfig
from adapters.gateway.config import GATEWAY_FIELDS, GATEWAY_FORM_FIELDS, GATEWAY_OPTIONS, GatewayConfig, config_key
from adapters.gateway.transport import open_session
from tests.conftest import PLUGIN_ROOT

SECRET = "S3CRET-gw-7f2"
ENDPOINT = {"endpoint_url": "https://gw.example.com/team-a/v1"}
OCT_JWKS = json.dumps({"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0LWZvci10aGUtZ2F0ZXdheS1jb25maWctdGVzdCE"}]})
SCHEMES: dict[str, dict[str, Any]] = {
    "api_key": {"api_key": f"sk-{SECRET}", "api_key_header": "X-API-Key"},
    "jwt": {"auth_method": "jwt", "jwt_jwks": OCT_JWKS, "jwt_consumer_id": f"uid-{SECRET}"},
    "hmac": {"auth_method": "hmac", "hmac_access_key": f"ak-{SECRET}", "hmac_secret_key": f"sk-{SECRET}"},
}


def _form_fields(section: str) -> list[dict[str, Any]]:
    source = yaml.safe_load((PLUGIN_ROOT / "provider_configs" / "provider.yaml").read_text(encoding="utf-8"))
    return source[section]


def test_the_gateway_fields_are_the_forms_gateway_fields() -> None:
    assert tuple(f["variable"] for f in _form_fields("gateway_fields")) == GATEWAY_FORM_FIELDS
    assert not set(GATEWAY_OPTIONS) & set(GATEWAY_FORM_FIELDS)


def test_gateway_options_set_what_their_own_fields_set_in_earlier_versions() -> None:
    packed = GatewayConfig.from_credentials(
        ENDPOINT | SCHEMES["api_key"] | {"gateway_options": " max_retries = 1 ;retry_backoff=0.25;\napi_key_query=key;"}
    )
    legacy = GatewayConfig.from_credentials(
        ENDPOINT | SCHEMES["api_key"] | {"max_retries": "1", "retry_backoff": "0.25", "api_key_query": "key"}
    )
    assert packed == legacy
    assert (packed.retry.max_retries, packed.retry.backoff, packed.auth.query_param) == (1, 0.25, "key")
    # The option wins over the value an earlier version stored in a field of its own.
    both = ENDPOINT | SCHEMES["api_key"] | {"max_retries": "4", "gateway_options": "max_retries=0"}
    assert GatewayConfig.from_credentials(both).retry.max_retries == 0
    jwt = ENDPOINT | SCHEMES["jwt"] | {"gateway_options": "jwt_issuer=dify; jwt_header_prefix=; jwt_expiration=60"}
    auth = GatewayConfig.from_credentials(jwt).auth
    assert isinstance(auth, JwtConfig) and (auth.issuer, auth.prefix, auth.lifetime) == ("dify", "", 60)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ("max_retries", "'max_retries' is not name=value; separate options with ';'"),
        ("max_retries=1, retry_backoff=2", "must be a number from 0 to 5, got '1, retry_backoff=2'"),
        ("max_retries=1; max_retries=2", "'max_retries' is given twice"),
        ("timeout=30", "unknown option 'timeout'; options are api_key_query, "),
        ("jwt_issuer=dify", "'jwt_issuer' applies to auth_method jwt, not api_key"),
    ],
)
def test_a_bad_gateway_option_names_the_field_and_the_option(options: str, problem: str) -> None:
    with pytest.raises(CredentialsValidateFailedError) as caught:
        GatewayConfig.from_credentials(ENDPOINT | SCHEMES["api_key"] | {"gateway_options": options})
    assert problem in str(caught.value)
    field = "max_retries" if "number" in problem else "gateway_options"
    assert str(caught.value).startswith(f"Credential field '{field}': ")


def test_a_config_holds_every_part_typed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("", encoding="utf-8")
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    config = GatewayConfig.from_credentials(
        ENDPOINT | SCHEMES["api_key"] | {"timeout": "30", "max_retries": "1", "retry_backoff": "0.25"}
    )
    assert [e.base_url for e in config.endpoints] == ["https://gw.example.com/team-a"]
    assert config.auth == ApiKeyConfig((f"sk-{SECRET}",), header="X-API-Key")
    assert (config.retry.max_retries, config.retry.backoff) == (1, 0.25)
    assert (config.timeouts.read, config.timeouts.connect) == (30, 10)
    assert config.tls.extra_cas == (("SSL_CERT_FILE", str(tmp_path / "ca.pem")),)
    assert config.extra_headers == ()
    assert isinstance(GatewayConfig.from_credentials(ENDPOINT | SCHEMES["jwt"]).auth, JwtConfig)
    assert isinstance(GatewayConfig.from_credentials(ENDPOINT | SCHEMES["hmac"]).auth, HmacConfig)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_repr_and_str_never_show_a_secret(scheme: str) -> None:
    config = GatewayConfig.from_credentials(ENDPOINT | SCHEMES[scheme])
    config = replace(config, extra_headers=(("X-Team-Token", f"tok-{SECRET}"),))
    for shown in (repr(config), str(config)):
        assert SECRET not in shown and "c2VjcmV0" not in shown  # keys, ids, JWK secret, header values
        assert "gw.example.com" in shown and type(config.auth).__name__ in shown


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"endpoint_url": ""}, "endpoint_url", "is required"),
        ({"endpoint_url": "gw.example.com/v1"}, "endpoint_url", "must be an http:// or https:// URL with a host"),
        ({"endpoint_url": "https://u:p@gw.example.com/v1"}, "endpoint_url", "must not carry a user name"),
        ({"endpoint_url": "https://gw.example.com/v1?x=1"}, "endpoint_url", "must not have a query string"),
        ({"endpoint_url": "https://gw.example.com/v1/embeddings"}, "endpoint_url", "not a full route"),
        ({"timeout": "0"}, "timeout", "between 0 and 86400"),
        ({"max_retries": "6"}, "max_retries", "from 0 to 5"),
        ({"max_retries": "1.5"}, "max_retries", "a whole number"),
        ({"retry_backoff": "x"}, "retry_backoff", "from 0 to 5"),
        ({"auth_method": "oauth"}, "auth_method", "unknown value 'oauth'"),
        ({"api_key": ""}, "api_key", "is required"),
    ],
)
def test_every_bad_gateway_field_fails_in_one_phrasing(fields: dict[str, str], field: str, problem: str) -> None:
    with pytest.raises(CredentialsValidateFailedError) as caught:
        GatewayConfig.from_credentials(ENDPOINT | SCHEMES["api_key"] | fields)
    assert str(caught.value).startswith(f"Credential field '{field}': "), caught.value
    assert problem in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_bad_max_request_timeout_names_the_field_it_stands_in_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_REQUEST_TIMEOUT", "soon")
    with pytest.raises(CredentialsValidateFailedError, match=r"^Credential field 'timeout': .*MAX_REQUEST_TIMEOUT"):
        GatewayConfig.from_credentials(ENDPOINT | SCHEMES["api_key"])
    assert GatewayConfig.from_credentials(ENDPOINT | SCHEMES["api_key"] | {"timeout": "5"}).timeouts.read == 5


@pytest.mark.parametrize("value", ["soon", "0", "-3", "1e9"])
def test_a_bad_invocation_timeout_is_named_like_any_other_environment_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AIGW_INVOCATION_TIMEOUT", value)
    problem = f"must be a number of seconds between 0 and 86400, got '{value}'."
    expected = f"^{re.escape(f'Environment variable AIGW_INVOCATION_TIMEOUT: {problem}')}$"
    with pytest.raises(CredentialsValidateFailedError, match=expected):
        GatewayConfig.from_credentials(ENDPOINT | SCHEMES["api_key"])


def test_the_config_key_follows_the_gateway_fields_and_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = ENDPOINT | SCHEMES["hmac"]
    key = config_key(credentials)
    model_form = {"context_size": "8192", "mode": "completion", "endpoint_model_name": "m", "voices": "a"}
    assert config_key(credentials | model_form) == key
    for name in GATEWAY_FIELDS:
        assert config_key(credentials | {name: "changed"}) != key, name
    assert config_key(credentials | {"timeout": 60}) != config_key(credentials | {"timeout": "60"})
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/private-ca.pem")
    assert config_key(credentials) != key


def test_extra_headers_of_a_config_go_with_every_request(gateway) -> None:
    """Where a later `extra_headers` field lands: the config's headers ride on the session's client."""
    config = GatewayConfig.from_credentials(gateway.credentials())
    session = open_session(replace(config, extra_headers=(("X-Team", "team-a"),)))
    route = default_catalog().get("llm", "qwen-max").route
    body = {"model": "qwen-max", "messages": [{"role": "user", "content": "hi"}]}
    answer = session.send(route.path, json=body, budget=session.budget("llm")).json()
    assert answer["choices"][0]["message"]["content"] == "echo: hi"
    assert gateway.emulator.received[-1].headers["x-team"] == "team-a"
