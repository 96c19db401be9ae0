"""The batches of one invocation sent at the same time: embedding texts and rerank documents.

A backend caps a request (DashScope embeds at most 10 texts per request), so a long input goes out
in several requests. Sent one after the other they cost one round trip each; here at most
MAX_IN_FLIGHT are in flight at once, each a greenlet of the SDK's gevent hub waiting on its socket,
and each with the session's own retry rules (a 429 is waited out and resent for that batch alone).
The results come back in the order of the batches. The first batch that fails ends the call: the
batches still in flight are killed (their requests closed by httpx as they unwind), the ones not yet
started never start, and that batch's error is raised, as a one-request call would raise it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import gevent
from gevent.event import Event

# Four requests at a time: a long input takes a quarter of the round trips, and a gateway's per-consumer
# rate limit meets four concurrent requests from one call at most.
MAX_IN_FLIGHT: Final = 4


def in_parallel[T](batches: Sequence[Callable[[], T]], limit: int = MAX_IN_FLIGHT) -> list[T]:
    """Every batch's result, in the order of `batches`, with at most `limit` running at once."""
    if len(batches) < 2:
        return [batch() for batch in batches]
    done: dict[int, T] = {}
    failures: list[Exception] = []
    pending = iter(enumerate(batches))
    finished = Event()
    running = min(limit, len(batches))

    def work() -> None:
        nonlocal running
        try:
            for index, batch in pending:  # one shared iterator: each batch is taken by one greenlet
                done[index] = batch()
        except Exception as exc:  # noqa: BLE001 - raised by the caller below, not printed by gevent's hub
            failures.append(exc)
        finally:
            running -= 1
            if failures or not running:
                finished.set()

    workers = [gevent.spawn(work) for _ in range(running)]
    try:
        finished.wait()
    finally:
        gevent.killall(workers)  # after a failure, or when the caller itself is killed
    if failures:
        raise failures[0]
    return [done[index] for index in range(len(batches))]
