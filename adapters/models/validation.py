"""Checking credentials when Dify saves them: the model's minimal call, with every endpoint and key.

A configuration may list several endpoints and keys (adapters/gateway/failover.py); a check that
passed on the first alone would let a broken second one wait for the day the first fails. So the
minimal call is made once per endpoint and once per further key (`GatewaySession.targets`), each
pinned to its endpoint and key, and a failure names the one that failed (its place, never a key).

Before the calls to an endpoint, its model list is asked for where the gateway has one (`GET
/v1/models`, which Higress ai-proxy serves as ApiNameModels for its OpenAI-style providers,
alibaba/higress `plugins/wasm-go/extensions/ai-proxy/provider/provider.go`): a model name the list
lacks fails at once with the closest names listed, instead of a 404 with the backend's words. A
gateway without that route (404, 405), or whose list cannot be read, is checked by the call alone.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from dify_plugin.errors.model import CredentialsValidateFailedError, InvokeBadRequestError, InvokeError

from adapters.catalog.resolver import resolve_model
from adapters.gateway.body import Budget
from adapters.gateway.errors import as_reported
from adapters.gateway.transport import GatewaySession, session_for

MODELS_PATH: Final = "/v1/models"
_CLOSEST: Final = 3


@contextmanager
def checking_credentials(model: str, where: str = "") -> Iterator[None]:
    """Around a check: any failure becomes CredentialsValidateFailedError with its mapped reason,
    naming the model (and `where`, the endpoint or key it was made with)."""
    subject = f"Model {model!r}" + (f" ({where})" if where else "")
    try:
        yield
    except CredentialsValidateFailedError as exc:
        if not where:
            raise
        raise CredentialsValidateFailedError(f"{subject}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - re-raised, mapped; `from None` keeps causes out of Dify's traceback
        raise CredentialsValidateFailedError(f"{subject}: {as_reported(exc)}") from None


def check_credentials(model_type: str, model: str, credentials: Mapping[str, Any], call: Callable[[], object]) -> None:
    """Make the minimal `call` of a model once per endpoint and key of its configuration."""
    with checking_credentials(model):
        gateway_model = resolve_model(model_type, model, credentials).gateway_model
        session = session_for(credentials)
    for endpoint, key in session.targets():
        with checking_credentials(model, session.describe(endpoint, key)), session.pinned(endpoint, key):
            if key == 0:
                _check_listed(session, gateway_model, session.budget(model_type))
            call()


def _check_listed(session: GatewaySession, gateway_model: str, budget: Budget) -> None:
    try:
        answer = session.send(MODELS_PATH, method="GET", budget=budget).json()
    except (InvokeError, ValueError):
        return  # no list to check against: the call decides
    names = listed_models(answer)
    if names and gateway_model not in names:
        closest = difflib.get_close_matches(gateway_model, names, n=_CLOSEST, cutoff=0.5)
        hint = f"closest listed: {', '.join(closest)}" if closest else f"it lists {len(names)} others"
        raise InvokeBadRequestError(
            f"the gateway does not list model {gateway_model!r} at GET {MODELS_PATH} ({hint}); "
            "check the model name, or the name sent to the gateway (endpoint_model_name)."
        )


def listed_models(answer: Any) -> list[str]:
    """The ids of an OpenAI-style model list ({"data": [{"id": ...}]}); empty when it is not one."""
    data = answer.get("data") if isinstance(answer, Mapping) else None
    if not isinstance(data, list):
        return []
    return [item["id"] for item in data if isinstance(item, Mapping) and isinstance(item.get("id"), str)]
