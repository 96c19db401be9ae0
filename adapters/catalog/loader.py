"""Loads provider_configs/ (route presets, parameter rules, the model catalog) into frozen dataclasses.

provider_configs/ is the single source of truth for routes and models: the Dify YAML in
provider_configs/dify/ is generated from what this module loads, and the adapters read models only
through it. The loader refuses anything it does not understand, naming the file, the model and the
field, so a typo in the catalog fails at start-up (and in `make check`) instead of on a request.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_type_hints

import yaml

CONFIG_ROOT = Path(__file__).resolve().parents[2] / "provider_configs"
# libyaml's loader and dumper are ~10x faster than PyYAML's pure-Python ones; start-up reads all of
# provider_configs/ (and renders provider_configs/dify/ to check it is current).
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

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
# The body dialects an adapter of each model type speaks (a route with another one fails at load).
DIALECTS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "llm": frozenset({"openai"}),
        "text-embedding": frozenset({"openai", "dashscope"}),
        "rerank": frozenset({"cohere", "dashscope-compatible", "dashscope"}),
        "speech2text": frozenset({"openai"}),
        "tts": frozenset({"openai", "dashscope"}),
    }
)


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
class Voice:
    mode: str
    name: str
    language: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a model can do and costs, in LiteLLM's `model_info` words (plus a few Dify needs)."""

    mode: str
    # Dify's context_size: the context window (LiteLLM's max_input_tokens is the input cap alone).
    context_size: int | None = None
    max_output_tokens: int | None = None
    supports_function_calling: bool = False
    supports_parallel_function_calling: bool = False
    supports_vision: bool = False
    supports_video_input: bool = False
    supports_audio_input: bool = False
    supports_pdf_input: bool = False
    supports_response_schema: bool = False
    supports_reasoning: bool = False
    # The upstream can stream an answer that calls tools; when false, calls with tools are sent
    # unstreamed and relayed as a stream.
    streams_tool_calls: bool = True
    # The upstream answers only streamed requests (DashScope's QwQ and open Qwen3 models reject others
    # with "This model only support stream mode"): blocking calls are streamed and collected.
    stream_only: bool = False
    extra_params: tuple[str, ...] = ()
    input_cost_per_token: Decimal | None = None
    output_cost_per_token: Decimal | None = None
    currency: str | None = None
    # text embedding
    max_chunks: int | None = None
    output_vector_size: int | None = None
    dimensions: tuple[int, ...] = ()
    supports_input_type: bool = False
    # rerank
    max_documents: int | None = None
    # speech to text
    file_upload_limit: int | None = None
    supported_file_extensions: tuple[str, ...] = ()
    supports_language: bool = False
    supports_prompt: bool = False
    # text to speech
    voices: tuple[Voice, ...] = ()
    default_voice: str | None = None
    audio_type: str | None = None
    word_limit: int | None = None
    max_workers: int | None = None

    @property
    def model_type(self) -> str:
        return MODE_TO_MODEL_TYPE[self.mode]


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


@dataclass(frozen=True, slots=True)
class ParameterSpec:
    """A Dify parameter rule plus where its value goes in the request body."""

    name: str
    rule: Mapping[str, Any]
    send_as: tuple[str, ...]


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

    def parameters_for(self, model: CatalogModel) -> list[ParameterSpec]:
        """The parameter rules Dify shows for a model: standard ones for its mode, then its extras."""
        names = list(self.standard_parameters.get(model.info.mode, ()))
        if model.info.supports_response_schema:
            names += ["response_format", "json_schema"]
        names += [n for n in model.info.extra_params if n not in names]
        return [self.parameters[n] for n in names]


# ---------------------------------------------------------------------------------------------
# Reading and checking the YAML


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.load(handle, Loader=YAML_LOADER)
    except FileNotFoundError as exc:
        raise CatalogError(path, "file is missing") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(path, f"not valid YAML: {exc}") from exc


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


_INFO_TYPES = get_type_hints(ModelInfo)


def _coerce(value: Any, annotation: Any, file: Path, model: str, name: str) -> Any:
    """Check one model_info value against the dataclass annotation, converting where YAML can't."""
    text = str(annotation)
    if annotation is bool:
        if not isinstance(value, bool):
            raise CatalogError(file, f"expected true or false, got {value!r}", model, name)
        return value
    if "Decimal" in text:
        try:
            amount = Decimal(str(value))
        except InvalidOperation as exc:
            raise CatalogError(file, f"expected a decimal number, got {value!r}", model, name) from exc
        if isinstance(value, bool) or not amount.is_finite() or amount < 0:
            raise CatalogError(file, f"expected a non-negative decimal number, got {value!r}", model, name)
        return amount
    if "float" in text:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise CatalogError(file, f"expected a positive number, got {value!r}", model, name)
        return float(value)
    if "int" in text and "tuple" not in text:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CatalogError(file, f"expected a positive integer, got {value!r}", model, name)
        return value
    if "Voice" in text:
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
    if "tuple[int" in text:
        if not isinstance(value, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
            raise CatalogError(file, f"expected a list of integers, got {value!r}", model, name)
        return tuple(value)
    if "tuple[str" in text:
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise CatalogError(file, f"expected a list of names, got {value!r}", model, name)
        return tuple(value)
    if not isinstance(value, str) or not value:
        raise CatalogError(file, f"expected text, got {value!r}", model, name)
    return value


def _model_info(raw: Any, route: Route, params: Mapping[str, ParameterSpec], file: Path, model: str) -> ModelInfo:
    data = _mapping(raw, file, "model_info", model)
    _check_keys(data, set(_INFO_TYPES), {"mode"}, file, model, "model_info.")
    values = {k: _coerce(v, _INFO_TYPES[k], file, model, f"model_info.{k}") for k, v in data.items()}
    info = ModelInfo(**values)
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
    for name in info.extra_params:
        if name not in params:
            raise CatalogError(
                file, f"unknown parameter {name!r} (see parameters.yaml)", model, "model_info.extra_params"
            )
    costs = [k for k in data if "cost_per" in k]
    if costs and info.currency is None:
        raise CatalogError(file, "a cost is given without a currency", model, "model_info.currency")
    if info.currency is not None and info.currency not in CURRENCIES:
        raise CatalogError(file, f"expected one of {sorted(CURRENCIES)}", model, "model_info.currency")
    if info.output_vector_size and info.dimensions and info.output_vector_size not in info.dimensions:
        raise CatalogError(
            file, "the default vector size is not one of `dimensions`", model, "model_info.output_vector_size"
        )
    if info.default_voice and info.voices and info.default_voice not in {v.mode for v in info.voices}:
        raise CatalogError(file, "default voice is not one of the voices", model, "model_info.default_voice")
    return info


def _load_routes(root: Path) -> dict[str, Route]:
    file = root / "routes.yaml"
    data = _mapping(_read_yaml(file), file, "routes.yaml")
    routes: dict[str, Route] = {}
    allowed = {"model_type", "modes", "path", "litellm", "dialect", "serves", "customizable_label"}
    for name, raw in _mapping(data.get("routes"), file, "routes").items():
        spec = _mapping(raw, file, f"routes.{name}")
        _check_keys(spec, allowed, allowed - {"serves", "customizable_label"}, file, None, f"routes.{name}.")
        modes = tuple(spec["modes"])
        bad = [m for m in modes if m not in MODE_TO_MODEL_TYPE or MODE_TO_MODEL_TYPE[m] != spec["model_type"]]
        if bad:
            raise CatalogError(file, f"modes {bad} do not belong to {spec['model_type']}", None, f"routes.{name}.modes")
        if spec["dialect"] not in DIALECTS.get(str(spec["model_type"]), ()):
            known = ", ".join(sorted(DIALECTS.get(str(spec["model_type"]), ()))) or "none: unknown model type"
            raise CatalogError(
                file, f"dialect not spoken for this model type (known: {known})", None, f"routes.{name}.dialect"
            )
        if not str(spec["path"]).startswith("/"):
            raise CatalogError(file, "path must start with '/'", None, f"routes.{name}.path")
        label = spec.get("customizable_label")
        routes[name] = Route(
            name=name,
            model_type=str(spec["model_type"]),
            modes=modes,
            path=str(spec["path"]),
            litellm=str(spec["litellm"]),
            dialect=str(spec["dialect"]),
            serves=frozenset(spec.get("serves") or ()),
            customizable_label=_i18n(label, file, None, f"routes.{name}.customizable_label") if label else None,
        )
    return routes


def _load_parameters(root: Path) -> tuple[dict[str, ParameterSpec], dict[str, tuple[str, ...]]]:
    file = root / "parameters.yaml"
    data = _mapping(_read_yaml(file), file, "parameters.yaml")
    specs: dict[str, ParameterSpec] = {}
    for name, raw in _mapping(data.get("rules"), file, "rules").items():
        rule = dict(_mapping(raw, file, f"rules.{name}"))
        send_as = str(rule.pop("send_as", name))
        if "use_template" not in rule and "type" not in rule:
            raise CatalogError(file, "a rule needs use_template or type", None, f"rules.{name}")
        specs[name] = ParameterSpec(name, MappingProxyType({"name": name, **rule}), tuple(send_as.split(".")))
    standard: dict[str, tuple[str, ...]] = {}
    for mode, names in _mapping(data.get("standard"), file, "standard").items():
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
        data = _mapping(_read_yaml(file) or {}, file, "top level")
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
