"""Translates provider_configs/ into the schemas Dify reads: model entities and the provider YAML.

Dify lists models from static YAML inside the package, and asks the running plugin for each model's
schema. Both come from here, so they cannot drift: `python -m adapters.catalog.dify_schema` writes the YAML
(provider_configs/dify/), `--check` fails when the committed YAML is stale, and the running plugin
builds its entities from the catalog through the same `model_document` function.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from dify_plugin.entities.model import AIModelEntity

from adapters.catalog.loader import CONFIG_ROOT, Catalog, CatalogError, CatalogModel, load_catalog, read_config
from adapters.catalog.model_info import LLMInfo, ModelInfo, RerankInfo, Speech2TextInfo, TextEmbeddingInfo, TTSInfo
from adapters.catalog.yaml_reader import YAML_DUMPER

PLUGIN_ROOT = CONFIG_ROOT.parent
GENERATED_DIR = "provider_configs/dify"
PROVIDER_FILE = f"{GENERATED_DIR}/provider.yaml"
_HEADER = "# Generated from provider_configs/ by `make generate`; edit those files, not this one.\n"

# Dify's folder name for each model type, and the adapter module that serves it.
TYPE_FOLDERS = {
    "llm": "llm",
    "text-embedding": "text_embedding",
    "rerank": "rerank",
    "speech2text": "speech2text",
    "tts": "tts",
}
ADAPTER_SOURCES = {
    "llm": "adapters/models/llm/llm.py",
    "text-embedding": "adapters/models/text_embedding/text_embedding.py",
    "rerank": "adapters/models/rerank/rerank.py",
    "speech2text": "adapters/models/speech2text/speech2text.py",
    "tts": "adapters/models/tts/tts.py",
}
_PER_MILLION = Decimal("0.000001")

# model_info capability → Dify model feature.
_FEATURES = (
    ("supports_function_calling", "tool-call"),
    ("supports_parallel_function_calling", "multi-tool-call"),
    ("supports_function_calling", "stream-tool-call"),
    ("supports_reasoning", "agent-thought"),
    ("supports_vision", "vision"),
    ("supports_pdf_input", "document"),
    ("supports_video_input", "video"),
    ("supports_audio_input", "audio"),
    ("supports_response_schema", "structured-output"),
)


def _decimal_text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".") or "0"


def _parameter_rules(model: CatalogModel, catalog: Catalog) -> list[dict[str, Any]]:
    rules = []
    for spec in catalog.parameters_for(model):
        rule = dict(spec.rule)
        if spec.name == "max_tokens" and isinstance(model.info, LLMInfo) and model.info.max_output_tokens:
            rule.update(min=1, max=model.info.max_output_tokens, default=model.info.max_output_tokens)
        rules.append(rule)
    return rules


def features(info: ModelInfo) -> list[str]:
    """Dify's model features for what an LLM's model_info says it supports (other types have none)."""
    if not isinstance(info, LLMInfo):
        return []
    return [name for key, name in _FEATURES if getattr(info, key)]


def _pricing(info: ModelInfo) -> dict[str, str] | None:
    """Dify's pricing per million tokens (LLMs, text embedding and rerank are billed per token)."""
    if not isinstance(info, LLMInfo | TextEmbeddingInfo | RerankInfo) or info.input_cost_per_token is None:
        return None
    pricing = {"input": _decimal_text(info.input_cost_per_token * 1_000_000), "unit": str(_PER_MILLION)}
    if isinstance(info, LLMInfo) and info.output_cost_per_token is not None:
        pricing["output"] = _decimal_text(info.output_cost_per_token * 1_000_000)
    return {**pricing, "currency": str(info.currency)}


def _properties(info: ModelInfo) -> dict[str, Any]:
    match info:
        case LLMInfo():
            return {"mode": info.mode, "context_size": info.context_size}
        case TextEmbeddingInfo():
            return {"context_size": info.context_size, "max_chunks": info.max_chunks}
        case RerankInfo():
            return {"context_size": info.context_size}
        case Speech2TextInfo():
            props: dict[str, Any] = {"file_upload_limit": info.file_upload_limit}
            if info.supported_file_extensions:
                props["supported_file_extensions"] = ",".join(info.supported_file_extensions)
            return props
        case TTSInfo():
            return {
                "default_voice": info.default_voice or (info.voices[0].mode if info.voices else "default"),
                "voices": [{"mode": v.mode, "name": v.name, "language": list(v.language)} for v in info.voices],
                "audio_type": info.audio_type,
                "word_limit": info.word_limit,
                "max_workers": info.max_workers,
            }


def model_document(model: CatalogModel, catalog: Catalog, *, customizable: bool = False) -> dict[str, Any]:
    """The Dify model YAML for one catalog model, as plain data."""
    document: dict[str, Any] = {
        "model": model.name,
        "label": dict(model.label),
        "model_type": model.model_type,
        "features": features(model.info),
        "fetch_from": "customizable-model" if customizable else "predefined-model",
        "model_properties": _properties(model.info),
        "parameter_rules": _parameter_rules(model, catalog),
    }
    if model.deprecated:
        document["deprecated"] = True
    if pricing := _pricing(model.info):
        document["pricing"] = pricing
    return document


def model_entity(model: CatalogModel, catalog: Catalog, *, customizable: bool = False) -> AIModelEntity:
    return AIModelEntity.model_validate(model_document(model, catalog, customizable=customizable))


# ---------------------------------------------------------------------------------------------
# The provider YAML


def _route_preset_fields(catalog: Catalog) -> list[dict[str, Any]]:
    """A route-preset select for each model type whose routes a mode alone cannot tell apart."""
    fields = []
    for model_type in TYPE_FOLDERS:
        routes = [r for r in catalog.routes_for(model_type) if r.customizable_label]
        modes = {m for r in routes for m in r.modes}
        if len(routes) <= len(modes):
            continue
        fields.append(
            {
                "variable": "route_preset",
                "type": "select",
                "required": False,
                "default": routes[0].name,
                "show_on": [{"variable": "__model_type", "value": model_type}],
                "label": {
                    "en_US": "Gateway route",
                    "zh_Hans": "网关路由",
                    "ja_JP": "ゲートウェイのルート",
                    "pt_BR": "Rota do gateway",
                },
                "options": [{"value": r.name, "label": dict(r.customizable_label or {})} for r in routes],
            }
        )
    return fields


def provider_document(catalog: Catalog, source: Mapping[str, Any]) -> dict[str, Any]:
    """The provider YAML Dify reads, from provider.yaml's identity and forms plus the catalog."""
    model_types = [t for t in TYPE_FOLDERS if catalog.routes_for(t)]
    model_fields = list(source["model_fields"])
    document = {
        k: source[k] for k in ("provider", "label", "description", "icon_small", "icon_large", "background", "help")
    }
    document.update(
        supported_model_types=model_types,
        configurate_methods=["predefined-model", "customizable-model"],
        provider_credential_schema={
            "credential_form_schemas": [*source["gateway_fields"], *source["provider_fields"]],
        },
        model_credential_schema={
            "model": {
                "label": {"en_US": "Model name", "zh_Hans": "模型名称", "ja_JP": "モデル名", "pt_BR": "Nome do modelo"},
                "placeholder": {
                    "en_US": "The model name as Dify shows it",
                    "zh_Hans": "在 Dify 中显示的模型名称",
                    "ja_JP": "Dify に表示するモデル名",
                    "pt_BR": "O nome do modelo como o Dify o mostra",
                },
            },
            "credential_form_schemas": [
                *model_fields[:1],
                *source["gateway_fields"],
                *_route_preset_fields(catalog),
                *model_fields[1:],
            ],
        },
        models={
            TYPE_FOLDERS[t]: {
                "position": f"{GENERATED_DIR}/models/{TYPE_FOLDERS[t]}/_position.yaml",
                "predefined": [f"{GENERATED_DIR}/models/{TYPE_FOLDERS[t]}/*.yaml"],
            }
            for t in model_types
        },
        extra={
            "python": {
                "provider_source": "adapters/provider.py",
                "model_sources": [ADAPTER_SOURCES[t] for t in model_types],
            }
        },
    )
    return document


README_START = "<!-- catalog:start (generated by `make generate`) -->"
README_END = "<!-- catalog:end -->"


def catalog_table(catalog: Catalog) -> str:
    """The README's model table: one row per catalog model."""
    rows = [
        "| model | type | route | sent as | context | capabilities | price per 1M tokens (in / out) |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in catalog.models:
        info = model.info
        shown = [name for name in features(info) if name != "stream-tool-call"]
        pricing = _pricing(info)
        price = ""
        if pricing:
            price = pricing["input"] + (f" / {pricing['output']}" if "output" in pricing else "")
            price += f" {pricing['currency']}"
        sent = model.gateway_model if model.gateway_model != model.name else ""
        context = _properties(info).get("context_size")
        context_text = f"{context:,}" if context else ""
        rows.append(
            f"| {model.name} | {model.model_type} | {model.route.name} | {sent} | {context_text} | "
            f"{', '.join(shown)} | {price} |"
        )
    return "\n".join(rows)


def _with_catalog_table(readme: str, catalog: Catalog) -> str:
    head, start, rest = readme.partition(README_START)
    _, end, tail = rest.partition(README_END)
    if not start or not end:
        return readme
    return f"{head}{README_START}\n{catalog_table(catalog)}\n{README_END}{tail}"


def _file_name(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", model_name) + ".yaml"


def render(root: Path = CONFIG_ROOT) -> dict[str, str]:
    """Every generated file, relative path → text, for the provider_configs/ under `root`."""
    catalog = load_catalog(root)
    source = read_config(root / "provider.yaml")

    def dump(data: object) -> str:
        return _HEADER + yaml.dump(data, Dumper=YAML_DUMPER, allow_unicode=True, sort_keys=False, width=120)

    files = {PROVIDER_FILE: dump(provider_document(catalog, source))}
    readme = root.parent / "README.md"
    if readme.exists():
        files["README.md"] = _with_catalog_table(readme.read_text(encoding="utf-8"), catalog)
    for model_type, folder in TYPE_FOLDERS.items():
        models = catalog.of_type(model_type)
        if not catalog.routes_for(model_type):
            continue
        base = f"{GENERATED_DIR}/models/{folder}"
        files[f"{base}/_position.yaml"] = dump([m.name for m in models])
        for model in models:
            files[f"{base}/{_file_name(model.name)}"] = dump(model_document(model, catalog))
    return files


def write(plugin_root: Path = PLUGIN_ROOT) -> list[str]:
    """Regenerate provider_configs/dify/ under `plugin_root`; returns the files written."""
    files = render(plugin_root / "provider_configs")
    out = plugin_root / GENERATED_DIR
    for stale in sorted(out.rglob("*.yaml")) if out.exists() else []:
        if str(stale.relative_to(plugin_root)) not in files:
            stale.unlink()
    for relative, text in files.items():
        path = plugin_root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return sorted(files)


def stale_files(plugin_root: Path = PLUGIN_ROOT) -> list[str]:
    """Generated files that are missing, differ from provider_configs/, or should not exist."""
    files = render(plugin_root / "provider_configs")
    out = plugin_root / GENERATED_DIR
    present = {str(p.relative_to(plugin_root)) for p in out.rglob("*.yaml")} if out.exists() else set()
    problems = [f for f in sorted(present - set(files))]
    for relative, text in files.items():
        path = plugin_root / relative
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            problems.append(relative)
    return sorted(problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the generated YAML is stale")
    parser.add_argument("--root", type=Path, default=PLUGIN_ROOT, help="plugin root (default: this checkout)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = stale_files(args.root)
            if stale:
                print("Generated Dify YAML is out of date; run `make generate`:", *stale, sep="\n  ", file=sys.stderr)
                return 1
            print("provider_configs/ is valid and provider_configs/dify/ is up to date.")
            return 0
        written = write(args.root)
    except CatalogError as exc:
        print(f"provider_configs error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files under {GENERATED_DIR}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
