"""Finds the catalog entry behind a Dify model name, or builds one from customizable-model credentials.

Everything downstream (schema, request building, pricing) works on a `CatalogModel`, so a model a
user adds by name in Dify follows exactly the same code path as one from provider_configs/.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from dify_plugin.errors.model import CredentialsValidateFailedError

from adapters.catalog import Catalog, CatalogModel, ModelInfo, Route, default_catalog

_MILLION = Decimal(1_000_000)


def _text(credentials: Mapping[str, Any], name: str) -> str:
    return str(credentials.get(name) or "").strip()


def positive_int(credentials: Mapping[str, Any], name: str, default: int) -> int:
    raw = _text(credentials, name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise CredentialsValidateFailedError(f"Credential field '{name}' must be a positive whole number, got {raw!r}.")
    return value


def _price_per_token(credentials: Mapping[str, Any], name: str) -> Decimal | None:
    raw = _text(credentials, name)
    if not raw:
        return None
    try:
        price = Decimal(raw)
    except InvalidOperation:
        price = Decimal(-1)
    if not price.is_finite() or price < 0:
        raise CredentialsValidateFailedError(f"Credential field '{name}' must be a non-negative number, got {raw!r}.")
    return price / _MILLION


def _choice(credentials: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = _text(credentials, name) or default
    if value not in allowed:
        raise CredentialsValidateFailedError(
            f"Credential field '{name}' has unknown value {value!r}; expected one of {', '.join(allowed)}."
        )
    return value


def _route(catalog: Catalog, model_type: str, mode: str, credentials: Mapping[str, Any]) -> Route:
    wanted = _text(credentials, "route_preset")
    candidates = [r for r in catalog.routes_for(model_type) if mode in r.modes]
    for route in candidates:
        if not wanted or route.name == wanted:
            return route
    names = ", ".join(r.name for r in candidates) or "none"
    raise CredentialsValidateFailedError(
        f"Credential field 'route_preset' has unknown value {wanted!r} for {model_type}; expected one of {names}."
    )


def _llm_info(credentials: Mapping[str, Any]) -> ModelInfo:
    mode = _choice(credentials, "mode", ("chat", "completion"), "chat")
    tools = _choice(credentials, "function_calling_type", ("tool_call", "function_call", "no_call"), "no_call")
    thinking = _choice(
        credentials, "agent_though_support", ("supported", "only_thinking_supported", "not_supported"), "not_supported"
    )
    thinking_param = _choice(
        credentials, "thinking_param", ("enable_thinking", "chat_template_enable_thinking"), "enable_thinking"
    )
    chat = mode == "chat"
    input_cost = _price_per_token(credentials, "input_price")
    output_cost = _price_per_token(credentials, "output_price")
    priced = input_cost is not None or output_cost is not None
    return ModelInfo(
        mode=mode,
        max_input_tokens=positive_int(credentials, "context_size", 4096),
        max_output_tokens=positive_int(credentials, "max_tokens_to_sample", 4096),
        supports_function_calling=chat and tools != "no_call",
        supports_parallel_function_calling=chat and tools != "no_call",
        supports_vision=chat and _text(credentials, "vision_support") == "support",
        supports_response_schema=chat and _text(credentials, "structured_output_support") == "supported",
        supports_reasoning=chat and thinking != "not_supported",
        supports_native_streaming=_text(credentials, "stream_function_calling") != "not_supported",
        extra_params=(thinking_param,) if chat and thinking == "supported" else (),
        input_cost_per_token=input_cost,
        output_cost_per_token=output_cost,
        currency=_choice(credentials, "currency", ("RMB", "USD"), "RMB") if priced else None,
    )


_INFO_BUILDERS = {"llm": _llm_info}


def customizable_model(name: str, model_type: str, credentials: Mapping[str, Any], catalog: Catalog) -> CatalogModel:
    """A catalog entry for a model the user added by name, from its model credentials."""
    builder = _INFO_BUILDERS.get(model_type)
    if builder is None:
        raise CredentialsValidateFailedError(f"Model type {model_type!r} is not served by this provider.")
    info = builder(credentials)
    return CatalogModel(
        name=name,
        route=_route(catalog, model_type, info.mode, credentials),
        info=info,
        gateway_model=name,
        label={"en_US": name},
    )


def resolve_model(
    model_type: str, name: str, credentials: Mapping[str, Any], catalog: Catalog | None = None
) -> CatalogModel:
    """The model a request is for, with the gateway model name it must send (never empty).

    A catalog model keeps its catalog entry; any other name is a customizable model described by its
    credentials. `endpoint_model_name`, when filled in, replaces the name sent to the gateway.
    """
    catalog = catalog or default_catalog()
    model = catalog.get(model_type, name) or customizable_model(name, model_type, credentials, catalog)
    override = _text(credentials, "endpoint_model_name")
    return model.with_gateway_model(override) if override else model
