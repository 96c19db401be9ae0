"""When a failed gateway request is tried again, and how long to wait first.

Only failures that happened before anything reached Dify are retried: a 429 or a 502/503/504
answer, or a connection that could not be made or was dropped before any response. The wait
honours the gateway's own reset hint (X-TokenRateLimit-Reset, X-RateLimit-Reset, Retry-After) when
it is short; a longer hint ends the retries at once, so the user sees it instead of a silent wait.
A read timeout is not retried: the gateway may still be working on the first request.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

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
