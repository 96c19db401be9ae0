"""Every text Dify shows from this plugin is written in English, Simplified Chinese, Japanese and Portuguese.

The SDK and Dify quietly fill a missing language with the English text, so a forgotten translation
never fails anywhere else. This walks the raw YAML instead: the generated provider YAML (every form
label, help and placeholder, the route presets, the generated labels), the manifest, and every
parameter rule with its SDK template applied, as Dify resolves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from dify_plugin.entities.model import PARAMETER_RULE_TEMPLATE

from tests.conftest import PLUGIN_ROOT

LANGUAGES = ("en_US", "zh_Hans", "ja_JP", "pt_BR")
# Asset file names, not text: Dify falls back to the en_US icon.
NOT_TEXT = {"icon", "icon_dark", "icon_small", "icon_large", "icon_small_dark", "icon_large_dark"}
_TEMPLATES = {name.value: rule for name, rule in PARAMETER_RULE_TEMPLATE.items()}


def _yaml(relative: str) -> Any:
    return yaml.safe_load((PLUGIN_ROOT / relative).read_text(encoding="utf-8"))


def i18n_objects(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every mapping with an en_US key (Dify's I18nObject), with a path to name it by."""
    if isinstance(node, dict):
        if "en_US" in node:
            yield where, node
            return
        for key, value in node.items():
            if key not in NOT_TEXT:
                yield from i18n_objects(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            name = value.get("variable") or value.get("name") or value.get("value") if isinstance(value, dict) else None
            yield from i18n_objects(value, f"{where}[{name or index}]")


def resolved_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A parameter rule as Dify sees it: its template's fields, overridden by its own."""
    return {**_TEMPLATES.get(rule.get("use_template", ""), {}), **rule}


def _parameter_rules() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, rule in _yaml("provider_configs/parameters.yaml")["rules"].items():
        yield f"parameters.yaml rules.{name}", resolved_rule({"name": name, **rule})
    for path in sorted((PLUGIN_ROOT / "provider_configs/dify/models").rglob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for rule in document.get("parameter_rules", []) if isinstance(document, dict) else []:
            yield f"{path.relative_to(PLUGIN_ROOT)} {rule['name']}", resolved_rule(rule)


def _texts() -> list[tuple[str, dict[str, Any]]]:
    found = list(i18n_objects(_yaml("manifest.yaml"), "manifest.yaml"))
    found += i18n_objects(_yaml("provider_configs/dify/provider.yaml"), "provider_configs/dify/provider.yaml")
    for where, rule in _parameter_rules():
        found += [(f"{where}.{key}", rule[key]) for key in ("label", "help") if rule.get(key)]
    return found


TEXTS = _texts()


def test_the_walk_finds_the_forms_the_rules_and_the_manifest() -> None:
    places = " ".join(where for where, _ in TEXTS)
    for expected in (
        "manifest.yaml.label",
        "provider_credential_schema.credential_form_schemas[endpoint_url].placeholder",
        "model_credential_schema.model.placeholder",
        "credential_form_schemas[route_preset].options[openai-rerank].label",
        "parameters.yaml rules.temperature.help",
        "qwen-plus.yaml enable_thinking.label",
    ):
        assert expected in places
    assert len(TEXTS) > 200


def test_every_text_is_in_every_language() -> None:
    problems = []
    for where, text in TEXTS:
        if missing := [lang for lang in LANGUAGES if not isinstance(text.get(lang), str) or not text[lang].strip()]:
            problems.append(f"{where} lacks {missing}")
        if unknown := set(text) - set(LANGUAGES):
            problems.append(f"{where} has keys Dify does not read: {sorted(unknown)}")
    assert problems == []


def test_japanese_is_not_english_left_in_place() -> None:
    # Identifiers (HS256, Top P, JSON Schema, uid...) read the same everywhere; sentences do not.
    copied = [where for where, text in TEXTS if text.get("ja_JP") == text["en_US"] and len(text["en_US"].split()) > 2]
    assert copied == []


def test_the_readme_has_a_chinese_translation_dify_can_serve() -> None:
    readme = PLUGIN_ROOT / "readme" / "README_zh_Hans.md"
    text = readme.read_text(encoding="utf-8")
    english = (PLUGIN_ROOT / "README.md").read_text(encoding="utf-8")
    # Same structure: one heading per English heading, and the same commands.
    assert text.count("\n## ") == english.count("\n## ")
    for command in ("make test", "make demo", "make package", "FORCE_VERIFYING_SIGNATURE=false"):
        assert command in text
    assert Path(readme).stat().st_size > 0.5 * len(english.encode("utf-8"))


def _symptoms(readme: str, heading: str) -> list[str]:
    """The first quoted message in the symptom cell of each row of a README's troubleshooting table."""
    table = readme.partition(heading)[2].partition("\n## ")[0]
    cells = [row.split(" | ")[0] for row in table.splitlines() if row.startswith("| ")]
    return [cell.split("`")[1] for cell in cells if "`" in cell]


def test_the_chinese_readme_explains_every_error_message_the_english_one_does() -> None:
    english = _symptoms((PLUGIN_ROOT / "README.md").read_text(encoding="utf-8"), "\n## Troubleshooting")
    chinese = _symptoms((PLUGIN_ROOT / "readme" / "README_zh_Hans.md").read_text(encoding="utf-8"), "\n## 故障排查")
    assert len(english) > 10
    assert [message for message in english if message not in chinese] == []


def test_the_chinese_readme_lists_the_models_generated_like_the_english_one() -> None:
    from adapters.catalog.generator import README_END, README_START, README_TABLES, catalog_table
    from adapters.catalog.loader import default_catalog

    for name, header in README_TABLES.items():
        text = (PLUGIN_ROOT / name).read_text(encoding="utf-8")
        table = text.partition(README_START)[2].partition(README_END)[0].strip()
        assert table == catalog_table(default_catalog(), header), name
    assert "readme/README_zh_Hans.md" in README_TABLES
