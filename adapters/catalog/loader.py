"""Loads provider_configs/ (route presets, parameter rules, the model catalog) into frozen dataclasses.

provider_configs/ is the single source of truth for routes and models: the Dify YAML in
provider_configs/dify/ is generated from what this module loads, and the adapters read models only
through it. Each model's `model_info` follows the schema of its model type (model_info.py). The
loader refuses anything it does not understand or would not use, naming the file, the model and the
field, so a typo in the catalog fails at start-up (and in `make check`) instead of on a request.
"""

from __future__ import annotations

import dataclasses
import functools
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_args, get_origin, get_type_hints

import yaml
from dify_plugin.entities.model import DefaultParameterName, ParameterRule
from pydantic import ValidationError

from adapters.catalog.model_info import (
    SCHEMAS,
    LLMInfo,
    ModelInfo,
    Speech2TextInfo,
    TextEmbeddingInfo,
    TTSInfo,
    Voice,
    capabilities,
)
from adapters.catalog.model_info import field_names as schema_fields
from adapters.catalog.yaml_reader import DuplicateKeyError, load_yaml
from adapters.dialects.kinds import TranscriptionDialect
from adapters.dialects.registry import dialect, dialect_modes

CONFIG_ROOT = Path(__file__).resolve().parents[2] / "provider_configs"

# LiteLLM's model_info `mode` decides the Dify model type.
MODE_TO_MODEL_TYPE: Mapping[str, str] = MappingProxyType(
    {
        "chat": "llm",
        "completion": "llm",
        "embedding": "text-embedding",
        "rerank": "rerank",
        "audio_transcription": "speech2text",
        "audio_speech": "tts",
    }
)
CURRENCIES = frozenset({"RMB", "USD"})
# The parameter rules offered to every LLM with supports_response_schema.
RESPONSE_SCHEMA_PARAMETERS = ("response_format", "json_schema")
# Other spellings of a currency, stored as the one Dify shows.
CURRENCY_ALIASES: Mapping[str, str] = MappingProxyType({"CNY": "RMB"})


class CatalogError(ValueError):
    """provider_configs/ holds something the plugin cannot use; the message says where."""

    def __init__(self, file: Path | str, problem: str, model: str | None = None, field: str | None = None):
        path = Path(file)
        if path.is_absolute() and path.is_relative_to(Path.cwd()):
            path = path.relative_to(Path.cwd())
        where = [str(path)]
        if model:
            where.append(f"model {model!r}")
        if field:
            where.append(f"field {field!r}")
        super().__init__(f"{': '.join(where)}: {problem}")


@dataclass(frozen=True, slots=True)
class Route:
    """A route preset: how one model type reaches the gateway over one protocol."""

    name: str
    model_type: str
    modes: tuple[str, ...]
    path: str
    litellm: str
    dialect: str
    serves: frozenset[str] = frozenset()
    customizable_label: Mapping[str, str] | None = None
    voices: tuple[str, ...] = ()  # text-to-speech: voice ids a customizable model gets when its form names none


@dataclass(frozen=True, slots=True)
class ParameterSpec:
    """A Dify parameter rule plus where its value goes in the request body, and how."""

    name: str
    rule: Mapping[str, Any]
    send_as: tuple[str, ...]
    parse: str | None = None  # "json_object": the text is a JSON object, sent as one
    only_with_tools: bool = False  # sent only with a call that offers tools


@dataclass(frozen=True, slots=True)
class CatalogModel:
    name: str
    route: Route
    info: ModelInfo
    gateway_model: str
    label: Mapping[str, str] = field(default_factory=dict)
    deprecated: bool = False

    @property
    def model_type(self) -> str:
        return self.route.model_type

    def with_gateway_model(self, gateway_model: str) -> CatalogModel:
        return dataclasses.replace(self, gateway_model=gateway_model)


@dataclass(frozen=True)
class Catalog:
    routes: Mapping[str, Route]
    parameters: Mapping[str, ParameterSpec]
    standard_parameters: Mapping[str, tuple[str, ...]]
    models: tuple[CatalogModel, ...]

    def __post_init__(self) -> None:
        index = {(m.model_type, m.name): m for m in self.models}
        object.__setattr__(self, "_index", index)

    def get(self, model_type: str, name: str) -> CatalogModel | None:
        return self._index.get((model_type, name))  # type: ignore[attr-defined]

    def of_type(self, model_type: str) -> list[CatalogModel]:
        return [m for m in self.models if m.model_type == model_type]

    def routes_for(self, model_type: str) -> list[Route]:
        return [r for r in self.routes.values() if r.model_type == model_type]

    def default_voices(self, route: Route) -> tuple[Voice, ...]:
        """The voices of a text-to-speech model on `route` whose form names none.

        The route's own (`voices` in routes.yaml), else the voices every catalog model on the route
        offers, in the first such model's order: a voice all of them have is one the route serves.
        """
        if route.voices:
            return tuple(Voice(mode=v, name=v) for v in route.voices)
        infos = [m.info for m in self.models if m.route.name == route.name and isinstance(m.info, TTSInfo)]
        if not infos:
            return ()
        shared = set.intersection(*({v.mode for v in info.voices} for info in infos))
        return tuple(v for v in infos[0].voices if v.mode in shared)

    def parameters_for(self, model: CatalogModel) -> list[ParameterSpec]:
        """The parameter rules Dify shows for an LLM: standard ones for its mode, then its extras."""
        info = model.info
        if not isinstance(info, LLMInfo):
            return []
        names = list(self.standard_parameters.get(info.mode, ()))
        if info.supports_response_schema:
            names += list(RESPONSE_SCHEMA_PARAMETERS)
        names += [n for n in info.extra_params if n not in names]
        return [self.parameters[n] for n in names]


# ---------------------------------------------------------------------------------------------
# Reading and checking the YAML


def read_config(path: Path) -> Any:
    """One provider_configs/ YAML file; a missing file, bad YAML or a duplicate key is a CatalogError."""
    try:
        with path.open(encoding="utf-8") as handle:
            return load_yaml(handle)
    except FileNotFoundError as exc:
        raise CatalogError(path, "file is missing") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(path, f"not valid YAML: {exc}") from exc
    except DuplicateKeyError as exc:
        problem = f"duplicate key (lines {exc.first_line} and {exc.line}); YAML would keep only the last"
        raise CatalogError(path, problem, exc.model, exc.field) from exc


def _mapping(value: Any, file: Path, what: str, model: str | None = None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CatalogError(file, f"expected a mapping, got {type(value).__name__}", model, what)
    return value


def _check_keys(
    data: Mapping[str, Any], allowed: set[str], required: set[str], file: Path, model: str | None, prefix: str = ""
) -> None:
    for key in data:
        if key not in allowed:
            raise CatalogError(file, f"unknown key (allowed: {', '.join(sorted(allowed))})", model, prefix + str(key))
    for key in sorted(required - set(data)):
        raise CatalogError(file, "required key is missing", model, prefix + key)


def _i18n(value: Any, file: Path, model: str | None, name: str) -> Mapping[str, str]:
    if isinstance(value, str):
        return MappingProxyType({"en_US": value})
    data = _mapping(value, file, name, model)
    if "en_US" not in data or not all(isinstance(v, str) for v in data.values()):
        raise CatalogError(file, "expected text or a mapping of language → text with en_US", model, name)
    return MappingProxyType(dict(data))


# ---------------------------------------------------------------------------------------------
# model_info: one schema per model type (adapters/catalog/model_info.py)


@functools.cache
def _annotations(schema: type[ModelInfo]) -> dict[str, Any]:
    return get_type_hints(schema)


def _voices(value: Any, file: Path, model: str, name: str) -> tuple[Voice, ...]:
    if not isinstance(value, list) or not value:
        raise CatalogError(file, "expected a non-empty list of voices", model, name)
    voices = []
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        voice = _mapping(item, file, where, model)
        _check_keys(voice, {"mode", "name", "language"}, {"mode", "name"}, file, model, where + ".")
        languages = voice.get("language", [])
        if not isinstance(languages, list) or not all(isinstance(x, str) for x in languages):
            raise CatalogError(file, "expected a list of language tags", model, where + ".language")
        voices.append(Voice(str(voice["mode"]), str(voice["name"]), tuple(languages)))
    return tuple(voices)


def _coerce(value: Any, annotation: Any, file: Path, model: str, name: str) -> Any:
    """Check one model_info value against its schema annotation, converting where YAML cannot."""
    if get_origin(annotation) is types.UnionType:  # `X | None`: None is the default, never written
        (annotation,) = (a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is tuple:
        (item,) = get_args(annotation)[:1]
        if item is Voice:
            return _voices(value, file, model, name)
        wanted = int if item is int else str
        if not isinstance(value, list) or not all(isinstance(x, wanted) and not isinstance(x, bool) for x in value):
            raise CatalogError(file, f"expected a list of {wanted.__name__}s, got {value!r}", model, name)
        return tuple(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise CatalogError(file, f"expected true or false, got {value!r}", model, name)
        return value
    if annotation is Decimal:
        try:
            amount = Decimal(str(value))
        except InvalidOperation as exc:
            raise CatalogError(file, f"expected a decimal number, got {value!r}", model, name) from exc
        if isinstance(value, bool) or not amount.is_finite() or amount < 0:
            raise CatalogError(file, f"expected a non-negative decimal number, got {value!r}", model, name)
        return amount
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CatalogError(file, f"expected a positive integer, got {value!r}", model, name)
        return value
    if not isinstance(value, str) or not value:
        raise CatalogError(file, f"expected text, got {value!r}", model, name)
    return value


def _refuse_foreign_keys(data: Mapping[str, Any], model_type: str, file: Path, model: str) -> None:
    """A key outside the type's schema is refused, saying which model types it belongs to, if any."""
    own = schema_fields(SCHEMAS[model_type])
    for key in data:
        if key in own:
            continue
        owners = [t for t, schema in SCHEMAS.items() if key in schema_fields(schema)]
        belongs = f"it applies to {' and '.join(owners)} models, not {model_type}" if owners else "unknown key"
        raise CatalogError(file, f"{belongs} ({model_type} keys: {', '.join(own)})", model, f"model_info.{key}")
    if "mode" not in data:
        raise CatalogError(file, "required key is missing", model, "model_info.mode")


def _check_prices(data: Mapping[str, Any], info: ModelInfo, file: Path, model: str) -> None:
    prices = [k for k in data if k.endswith("_cost_per_token") or k == "cache_read_input_token_cost"]
    currency = getattr(info, "currency", None)
    if prices and currency is None:
        raise CatalogError(file, "a price is given without a currency", model, "model_info.currency")
    if currency is not None and not prices:
        raise CatalogError(file, "a currency without a price is used nowhere", model, "model_info.currency")
    if currency is not None and currency not in CURRENCIES:
        known = [*sorted(CURRENCIES), *(f"{a} (= {c})" for a, c in CURRENCY_ALIASES.items())]
        raise CatalogError(file, f"expected one of {', '.join(known)}, got {currency!r}", model, "model_info.currency")
    for price in ("output_cost_per_token", "cache_read_input_token_cost"):
        if price in data and "input_cost_per_token" not in data:
            raise CatalogError(
                file,
                "Dify's pricing has no form without an input price: give input_cost_per_token too",
                model,
                f"model_info.{price}",
            )


def _check_llm(info: LLMInfo, params: Mapping[str, ParameterSpec], file: Path, model: str) -> None:
    for name in info.extra_params:
        if name not in params:
            raise CatalogError(
                file, f"unknown parameter {name!r} (see parameters.yaml)", model, "model_info.extra_params"
            )
    if info.max_output_tokens and info.max_output_tokens > info.context_size:
        raise CatalogError(
            file,
            f"{info.max_output_tokens} is above the context size ({info.context_size}, model_info.context_size)",
            model,
            "model_info.max_output_tokens",
        )


def _check_embedding(info: TextEmbeddingInfo, file: Path, model: str) -> None:
    if bool(info.output_vector_size) != bool(info.dimensions):
        given, missing = (
            ("output_vector_size", "dimensions") if info.output_vector_size else ("dimensions", "output_vector_size")
        )
        raise CatalogError(
            file,
            f"is used only together with model_info.{missing} (the sizes the model returns and the one asked for)",
            model,
            f"model_info.{given}",
        )
    if info.output_vector_size not in (None, *info.dimensions):
        raise CatalogError(
            file, "the vector size asked for is not one of `dimensions`", model, "model_info.output_vector_size"
        )


def _check_default_voice(info: TTSInfo, file: Path, model: str) -> None:
    if info.default_voice not in {v.mode for v in info.voices}:
        raise CatalogError(file, "default voice is not one of the voices", model, "model_info.default_voice")


def _model_info(raw: Any, route: Route, params: Mapping[str, ParameterSpec], file: Path, model: str) -> ModelInfo:
    data = _mapping(raw, file, "model_info", model)
    schema = SCHEMAS[route.model_type]
    _refuse_foreign_keys(data, route.model_type, file, model)
    hints = _annotations(schema)
    values = {k: _coerce(v, hints[k], file, model, f"model_info.{k}") for k, v in data.items()}
    if "currency" in values:
        values["currency"] = CURRENCY_ALIASES.get(values["currency"], values["currency"])
    info = schema(**values)
    if info.mode not in route.modes:
        raise CatalogError(
            file,
            f"mode {info.mode!r} is not served by route {route.name!r} (it serves {', '.join(route.modes)})",
            model,
            "model_info.mode",
        )
    for name in data:
        if name.startswith("supports_") and values[name] and name not in route.serves:
            raise CatalogError(file, f"route {route.name!r} cannot serve this capability", model, f"model_info.{name}")
    _check_prices(data, info, file, model)
    if isinstance(info, LLMInfo):
        _check_llm(info, params, file, model)
    elif isinstance(info, TextEmbeddingInfo):
        _check_embedding(info, file, model)
    elif isinstance(info, TTSInfo) and info.default_voice and info.voices:
        _check_default_voice(info, file, model)
    elif isinstance(info, Speech2TextInfo) and info.stream_only and not streams(route):
        raise CatalogError(file, f"route {route.name!r} cannot stream its answer", model, "model_info.stream_only")
    return info


def streams(route: Route) -> bool:
    """Whether a speech-to-text route's dialect can stream its answer."""
    return dialect(TranscriptionDialect, route.dialect).can_stream


def _load_routes(root: Path) -> dict[str, Route]:
    file = root / "routes.yaml"
    data = _mapping(read_config(file), file, "routes.yaml")
    routes: dict[str, Route] = {}
    allowed = {"model_type", "modes", "path", "litellm", "dialect", "serves", "customizable_label", "voices"}
    for name, raw in _mapping(data.get("routes"), file, "routes").items():
        spec = _mapping(raw, file, f"routes.{name}")
        _check_keys(spec, allowed, allowed - {"serves", "customizable_label", "voices"}, file, None, f"routes.{name}.")
        modes = tuple(spec["modes"])
        bad = [m for m in modes if m not in MODE_TO_MODEL_TYPE or MODE_TO_MODEL_TYPE[m] != spec["model_type"]]
        if bad:
            raise CatalogError(file, f"modes {bad} do not belong to {spec['model_type']}", None, f"routes.{name}.modes")
        # The wire formats adapters/dialects/ holds for the model type (a route with another fails here).
        spoken = dialect_modes(str(spec["model_type"]))
        if spec["dialect"] not in spoken:
            known = ", ".join(sorted(spoken)) or "none: unknown model type"
            raise CatalogError(
                file, f"dialect not spoken for this model type (known: {known})", None, f"routes.{name}.dialect"
            )
        if not set(modes) <= spoken[spec["dialect"]]:
            served = ", ".join(sorted(spoken[spec["dialect"]]))
            raise CatalogError(
                file, f"dialect {spec['dialect']!r} serves mode {served} only", None, f"routes.{name}.modes"
            )
        if not str(spec["path"]).startswith("/"):
            raise CatalogError(file, "path must start with '/'", None, f"routes.{name}.path")
        serves = spec.get("serves") or []
        switches = capabilities(SCHEMAS[str(spec["model_type"])])
        if not isinstance(serves, list) or any(s not in switches for s in serves):
            problem = f"expected a list of {spec['model_type']} capabilities ({', '.join(sorted(switches)) or 'none'})"
            raise CatalogError(file, f"{problem}, got {serves!r}", None, f"routes.{name}.serves")
        label = spec.get("customizable_label")
        voices = spec.get("voices", [])
        if voices and spec["model_type"] != "tts":
            raise CatalogError(file, "only text-to-speech routes have voices", None, f"routes.{name}.voices")
        if not isinstance(voices, list) or not all(isinstance(v, str) and v.strip() for v in voices):
            raise CatalogError(file, f"expected a list of voice ids, got {voices!r}", None, f"routes.{name}.voices")
        routes[name] = Route(
            name=name,
            model_type=str(spec["model_type"]),
            modes=modes,
            path=str(spec["path"]),
            litellm=str(spec["litellm"]),
            dialect=str(spec["dialect"]),
            serves=frozenset(serves),
            customizable_label=_i18n(label, file, None, f"routes.{name}.customizable_label") if label else None,
            voices=tuple(voices),
        )
    return routes


_RULE_KEYS = frozenset(ParameterRule.model_fields) - {"name"}
_TEMPLATES = frozenset(member.value for member in DefaultParameterName)


def _check_rule(rule: Mapping[str, Any], file: Path, where: str) -> None:
    """Refuse a rule Dify's own ParameterRule model would refuse (or whose keys it would drop)."""
    for key in rule:
        if key not in _RULE_KEYS:
            known = ", ".join(sorted(_RULE_KEYS | {"send_as", "parse", "only_with_tools"}))
            raise CatalogError(
                file, f"not a parameter rule key (a rule's name is its key; keys: {known})", None, f"{where}.{key}"
            )
    template = rule.get("use_template")
    if template is not None and template not in _TEMPLATES:
        raise CatalogError(
            file, f"unknown template (known: {', '.join(sorted(_TEMPLATES))})", None, f"{where}.use_template"
        )
    try:
        ParameterRule.model_validate({"name": where.rpartition(".")[2], **rule})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise CatalogError(file, f"Dify's schema refuses it: {error['msg']}", None, f"{where}.{field}") from exc


def _load_parameters(root: Path) -> tuple[dict[str, ParameterSpec], dict[str, tuple[str, ...]]]:
    file = root / "parameters.yaml"
    data = _mapping(read_config(file), file, "parameters.yaml")
    specs: dict[str, ParameterSpec] = {}
    for name, raw in _mapping(data.get("rules"), file, "rules").items():
        rule = dict(_mapping(raw, file, f"rules.{name}"))
        send_as = str(rule.pop("send_as", name))
        parse = rule.pop("parse", None)
        if parse not in (None, "json_object") or (parse and rule.get("type") != "text"):
            raise CatalogError(
                file, "the only parse is json_object, for a rule of type text", None, f"rules.{name}.parse"
            )
        only_with_tools = rule.pop("only_with_tools", False)
        if not isinstance(only_with_tools, bool):
            raise CatalogError(
                file, f"expected true or false, got {only_with_tools!r}", None, f"rules.{name}.only_with_tools"
            )
        _check_rule(rule, file, f"rules.{name}")
        specs[name] = ParameterSpec(
            name, MappingProxyType({"name": name, **rule}), tuple(send_as.split(".")), parse, only_with_tools
        )
    standard: dict[str, tuple[str, ...]] = {}
    for mode, names in _mapping(data.get("standard"), file, "standard").items():
        if MODE_TO_MODEL_TYPE.get(str(mode)) != "llm":
            raise CatalogError(
                file, "standard rules are given per LLM mode: chat or completion", None, f"standard.{mode}"
            )
        unknown = [n for n in names if n not in specs]
        if unknown:
            raise CatalogError(file, f"unknown rules {unknown}", None, f"standard.{mode}")
        standard[str(mode)] = tuple(names)
    return specs, standard


def _load_models(
    root: Path, routes: Mapping[str, Route], params: Mapping[str, ParameterSpec]
) -> tuple[CatalogModel, ...]:
    models: list[CatalogModel] = []
    seen: dict[tuple[str, str], Path] = {}
    allowed = {"model_name", "label", "route", "gateway_model", "deprecated", "model_info"}
    for file in sorted((root / "models").glob("*.yaml")):
        data = _mapping(read_config(file) or {}, file, "top level")
        _check_keys({k: v for k, v in data.items() if not str(k).startswith("x-")}, {"models"}, set(), file, None)
        entries = data.get("models") or []
        if not isinstance(entries, list):
            raise CatalogError(file, "expected a list", None, "models")
        for i, raw in enumerate(entries):
            entry = _mapping(raw, file, f"models[{i}]")
            name = entry.get("model_name")
            if not isinstance(name, str) or not name.strip():
                raise CatalogError(file, "expected a non-empty model name", f"#{i + 1}", "model_name")
            _check_keys(entry, allowed, {"model_name", "route", "model_info"}, file, name)
            route = routes.get(str(entry["route"]))
            if route is None:
                raise CatalogError(file, f"unknown route preset (known: {', '.join(sorted(routes))})", name, "route")
            key = (route.model_type, name)
            if key in seen:
                raise CatalogError(file, f"duplicate model id (also in {seen[key]})", name, "model_name")
            seen[key] = file
            gateway_model = entry.get("gateway_model", name)
            if not isinstance(gateway_model, str) or not gateway_model.strip():
                raise CatalogError(file, "expected a non-empty model name", name, "gateway_model")
            deprecated = entry.get("deprecated", False)
            if not isinstance(deprecated, bool):
                raise CatalogError(file, "expected true or false", name, "deprecated")
            models.append(
                CatalogModel(
                    name=name,
                    route=route,
                    info=_model_info(entry["model_info"], route, params, file, name),
                    gateway_model=gateway_model,
                    label=_i18n(entry.get("label", name), file, name, "label"),
                    deprecated=deprecated,
                )
            )
    return tuple(models)


def load_catalog(root: Path = CONFIG_ROOT) -> Catalog:
    """Read and validate provider_configs/ under `root`; raises CatalogError naming file, model, field."""
    # Only `.yaml` is read; a `.yml` file would otherwise be ignored without a word.
    for stray in sorted(p for p in root.rglob("*.yml") if p.is_file()):
        raise CatalogError(stray, "not read: provider_configs/ reads `.yaml` files only; rename it to .yaml")
    routes = _load_routes(root)
    params, standard = _load_parameters(root)
    return Catalog(
        routes=MappingProxyType(routes),
        parameters=MappingProxyType(params),
        standard_parameters=MappingProxyType(standard),
        models=_load_models(root, routes, params),
    )


@functools.cache
def default_catalog() -> Catalog:
    """The catalog the running plugin serves, loaded once per process."""
    return load_catalog()
