"""Failover across the gateway endpoints and consumer keys of one configuration.

A configuration may list several base URLs (`endpoint_url`, e.g. two regions) and, for API-key
consumers, several keys (`api_key`). Each request starts on the first endpoint and the first key
that are not resting, in the order given, so traffic stays on the primary while it works and comes
back to it when its rest is over. What makes one rest:

    endpoint  the connection could not be made, the gateway sent nothing before the read timeout,
              or it answered 502, 503 or 504
    key       the gateway answered 429 (that consumer's rate limit or quota), 401 or 403

A resting one is not chosen while another is available: for the gateway's reset hint when it sent
one (X-TokenRateLimit-Reset, X-RateLimit-Reset, Retry-After; at most MAX_HINTED_REST), else for a
backoff that doubles with each failure in a row (REST_BASE up to REST_MAX). A success clears its
record. When every one rests, the one whose rest ends first is used; the transport then retries as
it would with a single endpoint and key (adapters/gateway/retry.py).

One `Rotation` belongs to one gateway session, so every request with that configuration (every
tenant sharing it, every greenlet) sees the same rests: a key that hit its quota is skipped by the
next request too. It is the only mutable part of a session, hence the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Final

REST_BASE: Final = 1.0
REST_MAX: Final = 60.0
MAX_HINTED_REST: Final = 600.0
ENDPOINT_STATUSES: Final = frozenset({502, 503, 504})
KEY_STATUSES: Final = frozenset({401, 403, 429})


class Part(StrEnum):
    """What failed: the endpoint the request went to, or the key it carried."""

    ENDPOINT = "endpoint"
    KEY = "key"


def failed_part(status: int) -> Part | None:
    """Which part an error status blames, if any."""
    if status in ENDPOINT_STATUSES:
        return Part.ENDPOINT
    if status in KEY_STATUSES:
        return Part.KEY
    return None


class _Rests:
    """Rest records of the endpoints, or of the keys: until when each rests, and its failures in a row."""

    __slots__ = ("failures", "until")

    def __init__(self, count: int) -> None:
        self.until = [0.0] * count
        self.failures = [0] * count

    def pick(self, now: float) -> int:
        for index, until in enumerate(self.until):
            if until <= now:
                return index
        return min(range(len(self.until)), key=self.until.__getitem__)

    def rest(self, index: int, now: float, hint: float | None) -> None:
        self.failures[index] += 1
        if hint is not None:
            seconds = min(hint, MAX_HINTED_REST)
        else:
            seconds = min(REST_BASE * 2 ** min(self.failures[index] - 1, 16), REST_MAX)
        self.until[index] = now + seconds

    def clear(self, index: int) -> None:
        self.until[index], self.failures[index] = 0.0, 0

    def other_ready(self, index: int, now: float) -> bool:
        return any(until <= now for i, until in enumerate(self.until) if i != index)


class Rotation:
    """Which endpoint and which key the next attempt uses (indexes into the configuration's tuples)."""

    def __init__(self, endpoints: int, keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._parts = {Part.ENDPOINT: _Rests(endpoints), Part.KEY: _Rests(keys)}
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def sizes(self) -> tuple[int, int]:
        """(endpoints, keys)."""
        return len(self._parts[Part.ENDPOINT].until), len(self._parts[Part.KEY].until)

    def choose(self) -> tuple[int, int]:
        """(endpoint, key) for the next attempt."""
        with self._lock:
            now = self._clock()
            return self._parts[Part.ENDPOINT].pick(now), self._parts[Part.KEY].pick(now)

    def rest(self, part: Part, index: int, hint: float | None = None) -> bool:
        """Rest `part` number `index` (for `hint` seconds if the gateway gave one); True when another
        one of that part is ready, so the next attempt can move on at once."""
        with self._lock:
            now = self._clock()
            rests = self._parts[part]
            if len(rests.until) == 1:
                return False  # nothing to move to: the transport retries as it always did
            rests.rest(index, now, hint)
            return rests.other_ready(index, now)

    def succeeded(self, endpoint: int, key: int) -> None:
        with self._lock:
            self._parts[Part.ENDPOINT].clear(endpoint)
            self._parts[Part.KEY].clear(key)
