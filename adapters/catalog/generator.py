"""The build tool that writes provider_configs/dify/ (and the READMEs' model tables) from provider_configs/.

`python -m adapters.catalog.generator` (`make generate`) writes the files; `--check` (`make check`)
fails when any committed file differs from what it would write. The running plugin never imports
this module: it is left out of the package, and start-up checks freshness from the source digests
recorded here (adapters/catalog/freshness.py) instead of rendering everything.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from adapters.catalog.dify_schema import features, model_document, model_properties, pricing
from adapters.catalog.freshness import GENERATED_DIR, PLUGIN_ROOT, RECORD_FILE, source_record
from adapters.catalog.loader import CONFIG_ROOT, Catalog, CatalogError, load_catalog, read_config
from adapters.catalog.resolver import DEFAULT_ROUTE
from adapters.catalog.yaml_reader import YAML_DUMPER

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


# ---------------------------------------------------------------------------------------------
# The provider YAML


def _route_preset_field(catalog: Catalog) -> dict[str, Any]:
    """One route-preset select for every model type: each option shows for its type (and LLM mode) only.

    Dify counts a field repeated per type once per repetition against the daemon's 32, but filters a
    select's options by their own show_on, so one field serves all types. Its default, `default`,
    is a valid value for every type (the first route serving the type and mode, which each type
    labels as that route), so Dify stores it for every model added by name; the resolver reads that
    as the mark of a model's own credentials. Earlier versions had the select only for types whose
    routes a mode cannot tell apart, and stored the first route's own name as its default: that
    value stays a valid option there (Dify checks a saved select against its options), shown only
    while it is the one selected.
    """
    options: list[dict[str, Any]] = []
    for model_type in TYPE_FOLDERS:
        routes = [r for r in catalog.routes_for(model_type) if r.customizable_label]
        modes = list(dict.fromkeys(m for r in routes for m in r.modes))
        for mode in modes:
            when = [{"variable": "__model_type", "value": model_type}]
            if len(modes) > 1:
                when.append({"variable": "mode", "value": mode})  # LLM: the form's mode is LiteLLM's
            first, *others = [r for r in routes if mode in r.modes]
            options.append({"value": DEFAULT_ROUTE, "label": dict(first.customizable_label or {}), "show_on": when})
            options += [{"value": r.name, "label": dict(r.customizable_label or {}), "show_on": when} for r in others]
            if len(routes) > len(modes):
                selected = [*when, {"variable": "route_preset", "value": first.name}]
                options.append(
                    {"value": first.name, "label": dict(first.customizable_label or {}), "show_on": selected}
                )
    return {
        "variable": "route_preset",
        "type": "select",
        "required": False,
        "default": DEFAULT_ROUTE,
        "label": {
            "en_US": "Gateway route",
            "zh_Hans": "网关路由",
            "ja_JP": "ゲートウェイのルート",
            "pt_BR": "Rota do gateway",
        },
        "options": options,
    }


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
                _route_preset_field(catalog),
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


# The READMEs that carry the model table, with its header in their language.
README_TABLES = {
    "README.md": ("model", "type", "route", "sent as", "context", "capabilities", "price per 1M tokens (in / out)"),
    "readme/README_zh_Hans.md": (
        "模型",
        "类型",
        "路由",
        "实际发送的名称",
        "上下文",
        "能力",
        "每百万 token 价格（输入 / 输出）",
    ),
}


def catalog_table(catalog: Catalog, header: tuple[str, ...] = README_TABLES["README.md"]) -> str:
    """A README's model table: one row per catalog model."""
    rows = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    for model in catalog.models:
        info = model.info
        shown = [name for name in features(info) if name != "stream-tool-call"]
        price = ""
        if per_million := pricing(info):
            price = per_million["input"] + (f" / {per_million['output']}" if "output" in per_million else "")
            price += f" {per_million['currency']}"
        sent = model.gateway_model if model.gateway_model != model.name else ""
        context = model_properties(info).get("context_size")
        context_text = f"{context:,}" if context else ""
        rows.append(
            f"| {model.name} | {model.model_type} | {model.route.name} | {sent} | {context_text} | "
            f"{', '.join(shown)} | {price} |"
        )
    return "\n".join(rows)


def _with_catalog_table(readme: str, catalog: Catalog, header: tuple[str, ...]) -> str:
    head, start, rest = readme.partition(README_START)
    _, end, tail = rest.partition(README_END)
    if not start or not end:
        return readme
    return f"{head}{README_START}\n{catalog_table(catalog, header)}\n{README_END}{tail}"


def _file_name(model_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", model_name) + ".yaml"


def render(root: Path = CONFIG_ROOT) -> dict[str, str]:
    """Every generated file, relative path → text, for the provider_configs/ under `root`."""
    catalog = load_catalog(root)
    source = read_config(root / "provider.yaml")

    def dump(data: object) -> str:
        return _HEADER + yaml.dump(data, Dumper=YAML_DUMPER, allow_unicode=True, sort_keys=False, width=120)

    files = {PROVIDER_FILE: dump(provider_document(catalog, source)), RECORD_FILE: source_record(root.parent)}
    for name, header in README_TABLES.items():
        readme = root.parent / name
        if readme.exists():
            files[name] = _with_catalog_table(readme.read_text(encoding="utf-8"), catalog, header)
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
