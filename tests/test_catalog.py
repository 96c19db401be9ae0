"""provider_configs/ loads, rejects what it cannot use with file/model/field, and the Dify YAML follows it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from dify_plugin.entities.model.provider import ModelProviderConfiguration

from adapters.catalog.dify_schema import model_entity, stale_files
from adapters.catalog.loader import CONFIG_ROOT, CatalogError, default_catalog, load_catalog
from tests.conftest import PLUGIN_ROOT


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """A writable copy of provider_configs/ (without the generated folder)."""
    root = tmp_path / "provider_configs"
    shutil.copytree(CONFIG_ROOT, root, ignore=shutil.ignore_patterns("dify"))
    return root


def _edit_llm(root: Path, change) -> None:
    path = root / "models" / "llm.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data["models"])
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_the_shipped_catalog_loads_with_every_model_type() -> None:
    catalog = default_catalog()
    types = {m.model_type for m in catalog.models}
    assert types == {"llm", "text-embedding", "rerank", "speech2text", "tts"}
    assert all(m.gateway_model for m in catalog.models)


def test_generated_dify_yaml_matches_provider_configs() -> None:
    assert stale_files(PLUGIN_ROOT) == [], "run `make generate`"


def test_generated_provider_yaml_loads_as_the_sdk_loads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK resolves the model globs from the plugin directory, as the daemon does at start-up.
    monkeypatch.chdir(PLUGIN_ROOT)
    document = yaml.safe_load((PLUGIN_ROOT / "provider_configs/dify/provider.yaml").read_text(encoding="utf-8"))
    provider = ModelProviderConfiguration(**document)
    listed = {(m.model_type.value, m.model) for m in provider.models}
    assert listed == {(m.model_type, m.name) for m in default_catalog().models}


def test_every_secret_form_field_is_a_secret_input() -> None:
    source = yaml.safe_load((CONFIG_ROOT / "provider.yaml").read_text(encoding="utf-8"))
    fields = source["gateway_fields"] + source["provider_fields"] + source["model_fields"]
    secrets = {"api_key", "jwt_jwks", "hmac_access_key", "hmac_secret_key"}
    assert {f["variable"]: f["type"] for f in fields if f["variable"] in secrets} == dict.fromkeys(
        secrets, "secret-input"
    )


def test_non_standard_parameters_are_offered_only_to_models_that_declare_them() -> None:
    catalog = default_catalog()
    for model in catalog.of_type("llm"):
        names = {rule.name for rule in model_entity(model, catalog).parameter_rules}
        for extra in ("enable_thinking", "thinking_budget", "top_k", "enable_search", "repetition_penalty"):
            assert (extra in names) == (extra in model.info.extra_params), (model.name, extra)


def test_prices_reach_dify_per_million_tokens_with_their_currency() -> None:
    catalog = default_catalog()
    model = next(m for m in catalog.of_type("llm") if m.info.input_cost_per_token)
    pricing = model_entity(model, catalog).pricing
    assert pricing is not None
    assert pricing.input * pricing.unit == model.info.input_cost_per_token
    assert pricing.currency == model.info.currency


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m[0].update(colour="blue"), "field 'colour': unknown key"),
        (lambda m: m[0]["model_info"].update(context_size="lots"), "field 'model_info.context_size'"),
        (lambda m: m[0].update(route="no-such-route"), "field 'route': unknown route preset"),
        (lambda m: m.append(dict(m[0])), "field 'model_name': duplicate model id"),
        (lambda m: m[0]["model_info"].update(supports_vision="yes"), "expected true or false"),
        (lambda m: m[0]["model_info"].update(extra_params=["warp_speed"]), "unknown parameter 'warp_speed'"),
        (lambda m: m[0]["model_info"].pop("currency"), "field 'model_info.currency'"),
        (lambda m: m[0]["model_info"].update(mode="embedding"), "field 'model_info.mode'"),
    ],
)
def test_catalog_errors_name_the_file_the_model_and_the_field(configs: Path, change, expected: str) -> None:
    first = yaml.safe_load((configs / "models" / "llm.yaml").read_text(encoding="utf-8"))["models"][0]["model_name"]
    _edit_llm(configs, change)
    with pytest.raises(CatalogError) as caught:
        load_catalog(configs)
    message = str(caught.value)
    assert "llm.yaml" in message and f"model {first!r}" in message and expected in message


def test_a_capability_the_route_cannot_serve_is_rejected(configs: Path) -> None:
    def completion_with_tools(models: list) -> None:
        entry = next(m for m in models if m["route"] == "openai-completion")
        entry["model_info"]["supports_function_calling"] = True

    _edit_llm(configs, completion_with_tools)
    with pytest.raises(CatalogError, match="route 'openai-completion' cannot serve this capability"):
        load_catalog(configs)


def test_broken_yaml_names_the_file(configs: Path) -> None:
    (configs / "routes.yaml").write_text("routes: [unclosed\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"routes\.yaml: not valid YAML"):
        load_catalog(configs)


def test_a_route_with_a_dialect_its_model_type_cannot_speak_is_rejected(configs: Path) -> None:
    path = configs / "routes.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["routes"]["openai-rerank"]["dialect"] = "openai"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(CatalogError, match=r"field 'routes\.openai-rerank\.dialect': dialect not spoken"):
        load_catalog(configs)
