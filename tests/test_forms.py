"""The credential forms as Dify's daemon and API take them, and what a saved form means to the plugin.

`dify_saves` does what Dify's API does with a submitted form before it stores it and hands it to
the plugin (api `core/model_runtime/schema_validators/common_validator.py`): it keeps the fields
whose show_on conditions all match, fills in a field's default when its value is empty, drops
empty values, and refuses a select value that is not one of the field's options. The tests save
forms through it, so they see the credentials a real Dify would send.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest
import yaml
from dify_plugin.entities.model import ModelPropertyKey
from dify_plugin.errors.model import CredentialsValidateFailedError

from adapters.catalog.loader import default_catalog
from adapters.catalog.resolver import (
    DEFAULT_ROUTE,
    MODEL_OPTIONS,
    customizable_model,
    is_model_form,
    resolve_model,
)
from tests.conftest import PLUGIN_ROOT, adapter

LANGUAGES = ("en_US", "zh_Hans", "ja_JP", "pt_BR")
MODEL_TYPES = ("llm", "text-embedding", "rerank", "speech2text", "tts")
# The daemon's limits on a provider declaration (langgenius/dify-plugin-daemon, the struct tags of
# pkg/entities/plugin_entities/model_declaration.go: credential_form_schemas lte=32, show_on lte=16).
MAX_FIELDS = 32
MAX_SHOW_ON = 16
FORM_TYPES = {"text-input", "secret-input", "select", "radio", "switch"}
GATEWAY = {"endpoint_url": "https://gw.example.com/v1", "auth_method": "api_key", "api_key": "sk-test"}


def provider_yaml() -> dict[str, Any]:
    return yaml.safe_load((PLUGIN_ROOT / "provider_configs/dify/provider.yaml").read_text(encoding="utf-8"))


def developing_md() -> str:
    return " ".join((PLUGIN_ROOT / "DEVELOPING.md").read_text(encoding="utf-8").split())


def forms() -> dict[str, list[dict[str, Any]]]:
    document = provider_yaml()
    return {
        "provider": document["provider_credential_schema"]["credential_form_schemas"],
        "model": document["model_credential_schema"]["credential_form_schemas"],
    }


def _matches(show_on: list[dict[str, str]], values: Mapping[str, Any]) -> bool:
    return all(values.get(c["variable"]) == c["value"] for c in show_on)


def dify_saves(form: list[dict[str, Any]], submitted: Mapping[str, Any], model_type: str | None = None) -> dict:
    """The credentials Dify stores from `submitted` (see the module docstring)."""
    values = {**submitted, "__model_type": model_type} if model_type else dict(submitted)
    saved: dict[str, Any] = {}
    for field in form:
        if not _matches(field.get("show_on") or [], values):
            continue
        value = values.get(field["variable"]) or field.get("default")
        if not value:
            continue
        if field["type"] in ("select", "radio") and value not in {o["value"] for o in field["options"]}:
            raise ValueError(f"Variable {field['variable']} is not in options")
        saved[field["variable"]] = value
    return saved


def _fields() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, form in forms().items():
        for field in form:
            yield name, field


# ---------------------------------------------------------------------------------------------
# What the daemon accepts


@pytest.mark.parametrize("form", ["provider", "model"])
def test_each_form_has_at_most_32_fields(form: str) -> None:
    # The daemon counts entries: a variable repeated with another show_on counts each time.
    assert len(forms()[form]) <= MAX_FIELDS


def test_developing_md_gives_the_forms_field_counts_as_they_are() -> None:
    stated = re.search(r"the provider form has (\d+) fields and the model form (\d+)", developing_md())
    assert stated, "DEVELOPING.md no longer says how many fields each form has"
    assert (int(stated[1]), int(stated[2])) == (len(forms()["provider"]), len(forms()["model"]))


def test_every_show_on_has_at_most_16_conditions_and_names_a_field_of_its_form() -> None:
    for name, form in forms().items():
        variables = {f["variable"] for f in form} | {"__model_type"}
        for field in form:
            conditions = [field.get("show_on") or [], *(o.get("show_on") or [] for o in field.get("options", []))]
            for show_on in conditions:
                assert len(show_on) <= MAX_SHOW_ON, field["variable"]
                assert {c["variable"] for c in show_on} <= variables, (name, field["variable"])


def test_every_field_is_of_a_type_dify_has_and_every_select_default_is_an_option() -> None:
    for _, field in _fields():
        assert field["type"] in FORM_TYPES, field["variable"]
        if field["type"] in ("select", "radio"):
            assert field["options"], field["variable"]
            if "default" in field:
                assert field["default"] in {o["value"] for o in field["options"]}, field["variable"]


def test_a_variable_appears_once_in_each_form() -> None:
    for name, form in forms().items():
        variables = [f["variable"] for f in form]
        assert len(variables) == len(set(variables)), name


def test_every_field_a_user_types_into_says_what_to_type_in_its_placeholder() -> None:
    """Dify's credential form drops `help`: a text field, and a required field left empty, need a placeholder."""
    for name, field in _fields():
        typed = field["type"] in ("text-input", "secret-input")
        needs = typed or (field.get("required") and not field.get("default"))
        if needs:
            placeholder = field.get("placeholder") or {}
            assert all(placeholder.get(lang) for lang in LANGUAGES), f"{name} form, {field['variable']}"


def _shown(field: dict[str, Any], lang: str = "en_US") -> str:
    """What Dify's form shows of a field: its label, placeholder and option labels (never its help)."""
    texts = [(field.get("label") or {}).get(lang, ""), (field.get("placeholder") or {}).get(lang, "")]
    return " ".join([*texts, *((o.get("label") or {}).get(lang, "") for o in field.get("options", []))])


def test_a_field_with_help_shows_something_without_it() -> None:
    """A help text is a bonus: each field with one has a label, and the two options fields point at the README."""
    for _, field in _fields():
        help_text = (field.get("help") or {}).get("en_US")
        if not help_text:
            continue
        shown = _shown(field)
        assert shown.strip(), field["variable"]
        if field["variable"].endswith("_options"):
            assert "name=value" in shown and "README" in shown, field["variable"]


# What a user cannot get right from the label alone, and Dify drops help: in words each language has.
MUST_SHOW = {
    "jwt_jwks": {"en_US": "private key", "zh_Hans": "私钥", "ja_JP": "秘密鍵", "pt_BR": "chave privada"},
    "model_options": {
        "en_US": "per 1M tokens",
        "zh_Hans": "每百万 token",
        "ja_JP": "100 万トークン",
        "pt_BR": "1M tokens",
    },
}


def test_what_a_help_text_says_a_user_must_know_is_shown_without_it() -> None:
    """An asymmetric JWT consumer signs with its private key, not the JWKS it uploaded; prices are per 1M tokens."""
    seen = set()
    for form, field in _fields():
        for lang, words in MUST_SHOW.get(field["variable"], {}).items():
            assert words in _shown(field, lang), f"{form} form, {field['variable']}, {lang}"
            seen.add(field["variable"])
    assert seen == set(MUST_SHOW)


# ---------------------------------------------------------------------------------------------
# Telling a model's own credentials from the provider's


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_any_model_saved_through_the_model_form_is_recognised_as_its_own(model_type: str) -> None:
    saved = dify_saves(forms()["model"], GATEWAY, model_type)
    assert saved["route_preset"] == DEFAULT_ROUTE
    assert is_model_form(saved)


def test_the_provider_form_never_looks_like_a_model_form() -> None:
    everything = {f["variable"]: "x" for f in forms()["model"]} | {"validate_model": "qwen-plus"}
    for field in forms()["provider"]:
        if field["type"] in ("select", "radio"):
            everything[field["variable"]] = field["options"][0]["value"]
    assert not is_model_form(dify_saves(forms()["provider"], everything))


@pytest.mark.parametrize("route", ["openai-embeddings", "openai-rerank", "openai-speech"])
def test_a_route_an_earlier_version_saved_as_its_default_still_saves_and_resolves(route: str) -> None:
    model_type = default_catalog().routes[route].model_type
    saved = dify_saves(forms()["model"], GATEWAY | {"route_preset": route}, model_type)
    assert customizable_model("m", model_type, saved, default_catalog()).route.name == route


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_each_type_sees_its_own_routes_and_the_default_is_the_first(model_type: str) -> None:
    (field,) = [f for f in forms()["model"] if f["variable"] == "route_preset"]
    values = {"__model_type": model_type, "mode": "chat", "route_preset": DEFAULT_ROUTE}
    shown = [o["value"] for o in field["options"] if _matches(o["show_on"], values)]
    routes = [r.name for r in default_catalog().routes_for(model_type) if r.customizable_label]
    expected = [r for r in routes if model_type != "llm" or r == "openai-chat"]
    assert shown == [DEFAULT_ROUTE, *expected[1:]]
    saved = dify_saves(forms()["model"], GATEWAY, model_type)
    assert customizable_model("m", model_type, saved, default_catalog()).route.name == expected[0]


# ---------------------------------------------------------------------------------------------
# The model form's packed options, and the fields of earlier versions they replace


def _entry(model_type: str, submitted: Mapping[str, Any], name: str = "my-model"):
    return customizable_model(
        name, model_type, dify_saves(forms()["model"], GATEWAY | submitted, model_type), default_catalog()
    )


@pytest.mark.parametrize(
    ("model_type", "options", "legacy"),
    [
        (
            "llm",
            "input_price=0.8; output_price=2; currency=USD",
            {"input_price": "0.8", "output_price": "2", "currency": "USD"},
        ),
        (
            "text-embedding",
            "context_size=512; max_chunks=32; dimensions=256; supports_input_type=supported; input_price=0.1",
            {"context_size": "512", "max_chunks": "32", "dimensions": "256", "supports_input_type": "supported",
             "input_price": "0.1"},
        ),
        ("rerank", "context_size=2048; input_price=0.2; currency=USD",
         {"context_size": "2048", "input_price": "0.2", "currency": "USD"}),
        ("speech2text", "prompt=Higress, DashScope; file_upload_limit=10",
         {"prompt": "Higress, DashScope", "file_upload_limit": "10"}),
        ("tts", "default_voice=echo; audio_type=wav; word_limit=100",
         {"default_voice": "echo", "audio_type": "wav", "word_limit": "100"}),
    ],
)  # fmt: skip
def test_model_options_mean_what_the_fields_of_earlier_versions_meant(model_type: str, options: str, legacy) -> None:
    packed = _entry(model_type, {"model_options": options})
    # An install of an earlier version hands over its own fields, saved with that version's form.
    earlier = customizable_model(
        "my-model", model_type, GATEWAY | {"route_preset": DEFAULT_ROUTE} | legacy, default_catalog()
    )
    assert packed.info == earlier.info
    assert packed.info != _entry(model_type, {}).info, "the options change something"


def test_an_option_wins_over_the_field_an_earlier_version_stored() -> None:
    stored = GATEWAY | {"route_preset": DEFAULT_ROUTE, "max_chunks": "4", "model_options": "max_chunks=8"}
    assert customizable_model("e", "text-embedding", stored, default_catalog()).info.max_chunks == 8


def test_llm_prices_and_the_thinking_switch_of_an_earlier_form() -> None:
    info = _entry("llm", {"model_options": "input_price=0.8; output_price=2"}).info
    assert (info.input_cost_per_token, info.output_cost_per_token, info.currency) == (
        Decimal("0.8") / 1_000_000,
        Decimal("2") / 1_000_000,
        "RMB",
    )
    assert _entry("llm", {"agent_though_support": "supported_chat_template"}).info.extra_params == (
        "chat_template_enable_thinking",
    )
    earlier = {
        "route_preset": DEFAULT_ROUTE,
        "agent_though_support": "supported",
        "thinking_param": "chat_template_enable_thinking",
    }
    assert customizable_model("m", "llm", GATEWAY | earlier, default_catalog()).info.extra_params == (
        "chat_template_enable_thinking",
    )
    assert _entry("llm", {"agent_though_support": "supported"}).info.extra_params == ("enable_thinking",)


@pytest.mark.parametrize(
    ("model_type", "options", "problem"),
    [
        ("llm", "max_chunks=8", "'max_chunks' applies to text-embedding models, not llm (options: input_price, "),
        ("tts", "input_price=1", "'input_price' applies to llm and text-embedding and rerank models, not tts"),
        ("llm", "input_price", "'input_price' is not name=value"),
        ("llm", "temperature=0.2", "unknown option 'temperature'"),
        ("rerank", "context_size=1; context_size=2", "'context_size' is given twice"),
    ],
)
def test_a_bad_model_option_names_the_field(model_type: str, options: str, problem: str) -> None:
    with pytest.raises(CredentialsValidateFailedError) as caught:
        _entry(model_type, {"model_options": options})
    assert str(caught.value).startswith("Credential field 'model_options': ") and problem in str(caught.value)


def test_a_bad_option_value_names_the_option() -> None:
    with pytest.raises(CredentialsValidateFailedError, match=r"^Credential field 'max_chunks': must be a positive"):
        _entry("text-embedding", {"model_options": "max_chunks=lots"})


def test_every_option_is_documented_in_both_readmes() -> None:
    from adapters.gateway.config import GATEWAY_OPTIONS

    names = {*GATEWAY_OPTIONS, *(n for names in MODEL_OPTIONS.values() for n in names)}
    for readme in ("README.md", "readme/README_zh_Hans.md"):
        text = (PLUGIN_ROOT / readme).read_text(encoding="utf-8")
        assert {n for n in names if f"`{n}`" not in text} == set(), readme


# ---------------------------------------------------------------------------------------------
# The user's own form wins over a catalog entry of the same name


def test_a_model_added_under_a_catalog_name_is_built_from_its_own_form() -> None:
    catalog = default_catalog()
    listed = catalog.get("text-embedding", "text-embedding-v4")
    assert listed is not None and listed.route.name == "dashscope-embeddings"
    own = resolve_model("text-embedding", "text-embedding-v4", dify_saves(forms()["model"], GATEWAY, "text-embedding"))
    assert own.route.name == "openai-embeddings"
    assert (own.info.context_size, own.info.max_chunks, own.info.dimensions, own.info.input_cost_per_token) == (
        8192,
        10,
        (),
        None,
    )
    # With the provider's credentials the same name is the catalog's entry.
    assert resolve_model("text-embedding", "text-embedding-v4", dify_saves(forms()["provider"], GATEWAY)) == listed


def test_the_schema_of_a_model_added_under_a_catalog_name_shows_its_own_form() -> None:
    saved = dify_saves(
        forms()["model"],
        GATEWAY | {"context_size": "8192", "max_tokens_to_sample": "1024", "function_calling_type": "no_call"},
        "llm",
    )
    schema = adapter("llm").get_model_schema("qwen-plus", saved)
    assert schema.model_properties[ModelPropertyKey.CONTEXT_SIZE] == 8192
    assert schema.features == [] and schema.pricing is None
    assert {r.name for r in schema.parameter_rules} & {"enable_thinking", "enable_search"} == set()
    assert schema.fetch_from.value == "customizable-model"
    catalog = adapter("llm").get_model_schema("qwen-plus", dify_saves(forms()["provider"], GATEWAY))
    assert catalog.model_properties[ModelPropertyKey.CONTEXT_SIZE] == 1_000_000 and catalog.pricing is not None


# ---------------------------------------------------------------------------------------------
# Text-to-speech voices default per route


def test_voices_default_to_the_routes_when_the_form_names_none() -> None:
    openai = _entry("tts", {}, name="tts-1").info  # a catalog name: the form, not the catalog's six voices
    assert [v.mode for v in openai.voices] == list(default_catalog().routes["openai-speech"].voices)
    assert [v.mode for v in openai.voices][:3] == ["alloy", "ash", "ballad"] and openai.default_voice == "alloy"
    dashscope = _entry("tts", {"route_preset": "dashscope-tts"}).info
    assert [v.mode for v in dashscope.voices] == ["Cherry", "Serena", "Ethan", "Chelsie"]  # the catalog's shared ones
    assert (dashscope.default_voice, dashscope.audio_type) == ("Cherry", "wav")
    typed = _entry("tts", {"voices": "v1, v2"}).info
    assert [v.mode for v in typed.voices] == ["v1", "v2"] and typed.default_voice == "v1"
