"""provider_configs/ loads, rejects what it cannot use with file/model/field, and the Dify YAML follows it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from dify_plugin.entities.model.provider import ModelProviderConfiguration

from adapters.catalog.dify_schema import model_entity
from adapters.catalog.generator import stale_files
from adapters.catalog.loader import CONFIG_ROOT, CatalogError, default_catalog, load_catalog
from tests.conftest import PLUGIN_ROOT


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """A writable copy of provider_configs/ (without the generated folder)."""
    root = tmp_path / "provider_configs"
    shutil.copytree(CONFIG_ROOT, root, ignore=shutil.ignore_patterns("dify"))
    return root


def _edit(root: Path, change, file: str = "llm") -> None:
    path = root / "models" / f"{file}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data["models"])
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _edit_llm(root: Path, change) -> None:
    _edit(root, change)


def _refused(root: Path) -> str:
    with pytest.raises(CatalogError) as caught:
        load_catalog(root)
    return str(caught.value)


def test_the_shipped_catalog_loads_with_every_model_type() -> None:
    catalog = default_catalog()
    types = {m.model_type for m in catalog.models}
    assert types == {"llm", "text-embedding", "rerank", "speech2text", "tts"}
    assert all(m.gateway_model for m in catalog.models)


def test_generated_dify_yaml_matches_provider_configs() -> None:
    assert stale_files(PLUGIN_ROOT) == [], "run `make generate`"


def test_an_edited_source_makes_its_record_stale_for_make_check(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    shutil.copytree(CONFIG_ROOT, plugin / "provider_configs")
    shutil.copy(PLUGIN_ROOT / "README.md", plugin / "README.md")
    assert stale_files(plugin) == []
    routes = plugin / "provider_configs" / "routes.yaml"
    routes.write_text(routes.read_text(encoding="utf-8") + "# a comment changes no generated YAML\n", encoding="utf-8")
    assert stale_files(plugin) == ["provider_configs/dify/sources.sha256"]


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


def test_a_route_whose_dialect_does_not_serve_its_modes_is_rejected(configs: Path) -> None:
    path = configs / "routes.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["routes"]["openai-completion"]["dialect"] = "openai"  # the chat wire format
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(
        CatalogError, match=r"field 'routes\.openai-completion\.modes': dialect 'openai' serves mode chat"
    ):
        load_catalog(configs)


def test_a_yml_file_is_refused_rather_than_ignored(configs: Path) -> None:
    (configs / "models" / "team.yml").write_text("models: []\n", encoding="utf-8")
    message = _refused(configs)
    assert "models/team.yml" in message and "rename it to .yaml" in message


@pytest.mark.parametrize(
    ("file", "find", "field", "model"),
    [
        ("models/llm.yaml", "      max_output_tokens: 8192\n", "model_info.max_output_tokens", "qwen-max"),
        ("models/tts.yaml", "      word_limit: 4096\n", "model_info.word_limit", "tts-1"),
        ("routes.yaml", "    path: /v1/rerank\n", "routes.openai-rerank.path", None),
    ],
)
def test_a_duplicate_yaml_key_is_refused_naming_file_model_and_field(
    configs: Path, file: str, find: str, field: str, model: str | None
) -> None:
    path = configs / file
    text = path.read_text(encoding="utf-8")
    assert find in text
    path.write_text(text.replace(find, find * 2, 1), encoding="utf-8")
    message = _refused(configs)
    assert file in message and f"field {field!r}" in message and "duplicate key" in message
    assert (f"model {model!r}" in message) if model else "model " not in message


@pytest.mark.parametrize(
    ("file", "key", "value", "expected"),
    [
        ("rerank", "max_chunks", 10, "it applies to text-embedding models, not rerank"),
        ("tts", "context_size", 8192, "it applies to llm and text-embedding and rerank models, not tts"),
        ("text_embedding", "supports_vision", True, "it applies to llm models, not text-embedding"),
        ("speech2text", "timeout", 30, "unknown key"),
    ],
)
def test_a_key_that_does_not_apply_to_the_model_type_is_refused(
    configs: Path, file: str, key: str, value: object, expected: str
) -> None:
    _edit(configs, lambda models: models[0]["model_info"].update({key: value}), file)
    message = _refused(configs)
    assert f"{file}.yaml" in message and f"field 'model_info.{key}'" in message and expected in message


@pytest.mark.parametrize(
    ("file", "price", "expected"),
    [
        ("tts", {"input_cost_per_character": "0.00001", "currency": "USD"}, "model_info.input_cost_per_character"),
        ("speech2text", {"input_cost_per_second": "0.0001", "currency": "USD"}, "model_info.input_cost_per_second"),
        ("rerank", {"input_cost_per_query": "0.001"}, "model_info.input_cost_per_query"),
        ("text_embedding", {"output_cost_per_token": "0.000001"}, "model_info.output_cost_per_token"),
    ],
)
def test_a_price_the_adapters_ignore_is_refused(configs: Path, file: str, price: dict, expected: str) -> None:
    _edit(configs, lambda models: models[0]["model_info"].update(price), file)
    message = _refused(configs)
    assert f"{file}.yaml" in message and f"field {expected!r}" in message


def test_an_output_price_without_an_input_price_is_refused(configs: Path) -> None:
    _edit_llm(configs, lambda models: models[0]["model_info"].pop("input_cost_per_token"))
    message = _refused(configs)
    assert "field 'model_info.output_cost_per_token'" in message and "give input_cost_per_token too" in message


def test_a_cache_price_without_an_input_price_is_refused(configs: Path) -> None:
    def cache_price_only(models: list) -> None:
        info = models[0]["model_info"]
        for price in ("input_cost_per_token", "output_cost_per_token"):
            info.pop(price)
        info["cache_read_input_token_cost"] = "0.0000001"

    _edit_llm(configs, cache_price_only)
    message = _refused(configs)
    assert "field 'model_info.cache_read_input_token_cost'" in message and "give input_cost_per_token too" in message


def test_a_currency_without_a_price_is_refused(configs: Path) -> None:
    _edit(configs, lambda models: models[0]["model_info"].update(currency="USD"), "speech2text")
    assert "field 'model_info.currency'" in _refused(configs)


def test_max_output_tokens_above_the_context_size_is_refused(configs: Path) -> None:
    _edit_llm(configs, lambda models: models[0]["model_info"].update(context_size=4096, max_output_tokens=8192))
    message = _refused(configs)
    assert "model 'qwen-max'" in message and "field 'model_info.max_output_tokens'" in message
    assert "above the context size (4096" in message


def test_cny_is_read_as_rmb(configs: Path) -> None:
    _edit_llm(configs, lambda models: models[0]["model_info"].update(currency="CNY"))
    catalog = load_catalog(configs)
    model = catalog.models[0]
    assert model.info.currency == "RMB"
    assert model_entity(model, catalog).pricing.currency == "RMB"


def test_a_currency_dify_does_not_know_is_refused(configs: Path) -> None:
    _edit_llm(configs, lambda models: models[0]["model_info"].update(currency="EUR"))
    message = _refused(configs)
    assert "field 'model_info.currency'" in message and "'EUR'" in message and "CNY (= RMB)" in message


def _edit_parameters(root: Path, change) -> None:
    path = root / "parameters.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data["rules"])
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        (lambda rules: rules["seed"].update(type="flaot"), "rules.seed.type", "Dify's schema refuses it"),
        (lambda rules: rules["top_k"].update(use_template="topk"), "rules.top_k.use_template", "unknown template"),
        (lambda rules: rules["seed"].update(mni=1), "rules.seed.mni", "not a parameter rule key"),
        (lambda rules: rules["seed"].update(min="zero"), "rules.seed.min", "Dify's schema refuses it"),
        (lambda rules: rules["seed"].update(label=["Seed"]), "rules.seed.label", "Dify's schema refuses it"),
    ],
)
def test_a_parameter_rule_dify_would_refuse_is_refused_when_the_catalog_loads(
    configs: Path, change, field: str, expected: str
) -> None:
    _edit_parameters(configs, change)
    message = _refused(configs)
    assert "parameters.yaml" in message and f"field {field!r}" in message and expected in message


def test_a_route_serving_a_capability_its_model_type_lacks_is_refused(configs: Path) -> None:
    path = configs / "routes.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["routes"]["openai-rerank"]["serves"] = ["supports_vision"]
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert "field 'routes.openai-rerank.serves'" in _refused(configs)


@pytest.mark.parametrize("drop", ["output_vector_size", "dimensions"])
def test_embedding_dimensions_and_vector_size_come_together(configs: Path, drop: str) -> None:
    _edit(configs, lambda models: models[0]["model_info"].pop(drop), "text_embedding")
    kept = {"output_vector_size": "dimensions", "dimensions": "output_vector_size"}[drop]
    message = _refused(configs)
    assert f"field 'model_info.{kept}'" in message and f"only together with model_info.{drop}" in message
