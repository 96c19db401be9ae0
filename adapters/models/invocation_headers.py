"""The headers one invocation adds to its gateway requests (adapters/gateway/headers.py says what each is).

- Request attribution, when the configuration has `request_attribution: on`: the Dify app,
  conversation and message ids the SDK gives the current invocation (`get_current_session()`, set
  while an LLM's `invoke` runs, so it is read in `_invoke`, before any generator) and the end-user
  id, the `user` argument of every model type's `_invoke`. Only those known are sent.
- For LLMs, the `skip_gateway_cache` and `extra_headers` model parameters (gateway controls, never
  request-body fields).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dify_plugin.core.session_context import get_current_session

from adapters.catalog.loader import CatalogModel
from adapters.gateway.headers import SKIP_AI_CACHE, Attribution, HeaderError, extra_headers
from adapters.gateway.transport import GatewaySession
from adapters.models.base import bad_request


def own_headers(session: GatewaySession, user: str | None, *, skip_cache: bool = False) -> dict[str, str]:
    """The plugin's headers for this invocation: attribution where switched on, the cache skip if asked."""
    headers: dict[str, str] = {}
    if session.config.attribution:
        current = get_current_session()
        headers |= Attribution(
            app_id=getattr(current, "app_id", None),
            conversation_id=getattr(current, "conversation_id", None),
            message_id=getattr(current, "message_id", None),
            end_user_id=user,
        ).headers()
    if skip_cache:
        headers[SKIP_AI_CACHE[0]] = SKIP_AI_CACHE[1]
    return headers


def llm_headers(
    model: CatalogModel, session: GatewaySession, parameters: Mapping[str, Any], user: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """(extra, own) headers of an LLM invocation, from its gateway-control parameters."""
    try:
        raw = str(parameters.get("extra_headers") or "")
        extra = dict(extra_headers(raw, session.config.credential_headers()))
    except HeaderError as exc:
        raise bad_request(model, f"parameter extra_headers: {exc}") from None
    return extra, own_headers(session, user, skip_cache=parameters.get("skip_gateway_cache") is True)
