"""When a failed gateway request is tried again, and how long to wait first.

Only failures that happened before anything reached Dify are retried: a 429 or a 502/503/504
answer, or a connection that could not be made or was dropped before any response. The wait
honours the gateway's own reset hint (X-TokenRateLimit-Reset, X-RateLimit-Reset, Retry-After) when
it is short; a longer hint ends the retries at once, so the user sees it instead of a silent wait.
A read timeout is not retried: the gateway may still be working on the first request.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from dify_plugin.errors.model import CredentialsValidateFailedError

from adapters.gateway.errors import RESET_HEADERS

RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_MAX_RETRIES = 2
DEFAULT_BACKOFF = 0.5
MAX_WAIT = 5.0  # the longest pause before one retry, hinted or not


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff: float = DEFAULT_BACKOFF

    def delay(self, attempt: int, headers: httpx.Headers | None = None) -> float | None:
        """Seconds to wait before retry number `attempt + 1`, or None when there is none to make."""
        if attempt >= self.max_retries:
            return None
        hint = reset_seconds(headers) if headers is not None else None
        if hint is not None:
            return hint if hint <= MAX_WAIT else None
        # Exponential backoff with jitter, so many plugin workers do not retry in lockstep.
        return min(self.backoff * 2**attempt, MAX_WAIT) * random.uniform(0.8, 1.2)


def reset_seconds(headers: httpx.Headers) -> float | None:
    for name in RESET_HEADERS:
        try:
            return max(0.0, float(headers[name]))
        except (KeyError, ValueError):
            continue
    return None


def _number(credentials: Mapping[str, Any], field: str, default: float, low: float, high: float) -> float:
    raw = str(credentials.get(field) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not low <= value <= high:
        raise CredentialsValidateFailedError(
            f"Credential field '{field}' must be a number from {low:g} to {high:g}, got {raw!r}."
        )
    return value


def retry_policy_from_credentials(credentials: Mapping[str, Any]) -> RetryPolicy:
    retries = _number(credentials, "max_retries", DEFAULT_MAX_RETRIES, 0, 5)
    if retries != int(retries):
        raise CredentialsValidateFailedError(f"Credential field 'max_retries' must be a whole number, got {retries}.")
    return RetryPolicy(int(retries), _number(credentials, "retry_backoff", DEFAULT_BACKOFF, 0, MAX_WAIT))
