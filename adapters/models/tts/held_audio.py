"""The audio one TTS invocation holds and has not sent yet, kept within TTS_HELD_AUDIO_LIMIT.

Pieces are synthesized ahead of the one being sent (models/tts/tts.py), and each may be as large as
the per-piece bound (32 MiB): five of them read ahead, with the one being sent, would be ~190 MiB for
one invocation. So every decoded piece of every answer a TTS piece reads is counted here first
(`Budget.hold`), and a piece that is not the next to be sent waits while the count would pass the
limit. The next piece never waits, so the invocation always moves on: at most the limit plus that
one piece is held. A piece's count is given back once it has been sent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class AbandonedError(Exception):
    """A piece that was waiting for room when its invocation ended (its result is never read)."""


class HeldAudio:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0
        self._by_piece: dict[int, int] = {}
        self._next = 0  # the piece being waited for or sent: it never waits
        self._over = False
        self._changed = threading.Condition()

    @property
    def held(self) -> int:
        return self._held

    def hold_for(self, index: int) -> Callable[[int], None]:
        """What the `index`-th piece's reads call with each decoded piece's size."""

        def hold(size: int) -> None:
            with self._changed:
                while not self._over and index != self._next and self._held + size > self._limit:
                    self._changed.wait()
                if self._over:
                    raise AbandonedError
                self._held += size
                self._by_piece[index] = self._by_piece.get(index, 0) + size

        return hold

    def sent(self, index: int) -> None:
        """The `index`-th piece has been sent: its bytes are no longer held, and the next one is due."""
        with self._changed:
            self._held -= self._by_piece.pop(index, 0)
            self._next = index + 1
            self._changed.notify_all()

    def end(self) -> None:
        """The invocation is over: pieces waiting for room give up."""
        with self._changed:
            self._over = True
            self._changed.notify_all()
