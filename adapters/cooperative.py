"""Giving the gevent hub its turn, so one busy session never freezes the others or the heartbeat.

The SDK runs every session of the process as a greenlet on one gevent hub, next to the greenlet that
writes the heartbeat the daemon kills a silent plugin without. A greenlet runs until it waits, and
reading a gateway that sends as fast as the plugin reads never waits: the socket always has data.
So every loop that reads or relays gateway data calls `give_way()`; once TURN_SECONDS have passed
since the hub last had a turn, it takes a timer wait of a microsecond, which lets the hub run its
timers (the heartbeat), its ready I/O (other sessions) and the other greenlets. `gevent.sleep(0)`
would not do: it reschedules the caller before the loop polls timers or I/O, and a loop calling it
every few milliseconds still held a 0.1 s timer back by ~0.4 s (measured). The check itself is a
clock read (~0.1 µs), the turn ~8 µs, taken at most every TURN_SECONDS: well under 1% of a flood.

CPU-heavy local work that cannot be cut into steps (counting the tokens of a megabyte prompt) goes
to gevent's pool of real threads instead (`off_the_hub`), which the interpreter switches away from
every few milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import gevent

TURN_SECONDS: Final = 0.005
_TIMER_WAIT: Final = 1e-6

_next_turn = 0.0


def give_way() -> None:
    """Let the hub run if this greenlet (or any other) has kept it for TURN_SECONDS."""
    global _next_turn
    now = time.monotonic()
    if now >= _next_turn:
        gevent.sleep(_TIMER_WAIT)
        _next_turn = time.monotonic() + TURN_SECONDS


def off_the_hub[T](work: Callable[[], T]) -> T:
    """`work()` run in one of gevent's real threads, the calling greenlet waiting without holding the hub."""
    return gevent.get_hub().threadpool.apply(work)
