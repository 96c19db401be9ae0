"""Batches of one call in flight together: embedding texts and rerank documents (adapters/models/batches.py).

The gateway here is the emulator behind a door (`Door`): each request waits inside until as many
requests as the test expects are inside at once, so a plugin that sent its batches one by one would
never open it (each request then waits out the door's patience and the test fails on the count it
saw). Nothing is timed: the assertions are what arrived, what was inside at once, and what Dify got.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from dify_plugin.errors.model import InvokeBadRequestError

from adapters.models.batches import MAX_IN_FLIGHT, in_parallel
from tests.conftest import TEST_KEY, adapter, client_sockets_to
from tests.emulator import Consumer, GatewayEmulator, embedding_vector, serve
from tests.emulator.responses import openai_error
from tests.emulator.wire import Request, Response

PATIENCE = 5.0  # seconds a request waits at a door that never opens (only a failing test waits it out)


@dataclass
class Door:
    """The emulator, answering each request once `together` requests are inside (or after PATIENCE)."""

    together: int
    refuse: Callable[[Request], Response | None] = lambda request: None  # an answer given at once
    emulator: GatewayEmulator = field(default_factory=lambda: GatewayEmulator([Consumer("door", api_key=TEST_KEY)]))
    inside: int = 0
    most_inside: int = 0
    arrived: int = 0
    released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, request: Request) -> Response:
        with self._lock:
            self.arrived += 1
            if (answer := self.refuse(request)) is not None:
                return answer
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            if self.inside >= self.together:
                self.released.set()
        self.released.wait(PATIENCE)
        with self._lock:
            self.inside -= 1
        return self.emulator(request)


@pytest.fixture
def door() -> Iterator[Callable[..., tuple[Door, dict[str, str]]]]:
    """Opens a Door on its own port; the credentials of a gateway behind it."""
    with contextlib.ExitStack() as servers:

        def open_door(together: int, **options: object) -> tuple[Door, dict[str, str]]:
            gate = Door(together, **options)
            base_url = servers.enter_context(serve(gate))
            servers.callback(gate.released.set)  # nothing stays parked in the server's threads
            return gate, {"endpoint_url": f"{base_url}/v1", "api_key": TEST_KEY, "max_retries": "0"}

        yield open_door


def _embedding_credentials(credentials: dict[str, str]) -> dict[str, str]:
    return {**credentials, "route_preset": "openai-embeddings", "max_chunks": "10"}


def test_embedding_batches_are_in_flight_together(door) -> None:
    gate, credentials = door(together=3)
    texts = [f"text {i}" for i in range(30)]
    result = adapter("text-embedding").invoke("my-embedder", _embedding_credentials(credentials), texts)
    assert (gate.arrived, gate.most_inside) == (3, 3)
    assert result.embeddings == [pytest.approx(list(embedding_vector(t, 8))) for t in texts]


def test_at_most_four_batches_at_once_and_vectors_in_input_order(door) -> None:
    gate, credentials = door(together=MAX_IN_FLIGHT)
    texts = [f"passage {i}" for i in range(95)]  # ten batches, the last one of five texts
    result = adapter("text-embedding").invoke("my-embedder", _embedding_credentials(credentials), texts)
    assert (gate.arrived, gate.most_inside) == (10, MAX_IN_FLIGHT)
    assert result.embeddings == [pytest.approx(list(embedding_vector(t, 8))) for t in texts]
    assert result.usage.tokens == 2 * len(texts)  # the emulator counts words: two per text


def _refusing(marker: str) -> Callable[[Request], Response | None]:
    def refuse(request: Request) -> Response | None:
        if marker.encode() in request.body:
            return openai_error(400, "Input text 12 is not allowed (emulated).", "invalid_request_error")
        return None

    return refuse


def test_a_failing_batch_ends_the_call_and_the_rest_never_start(door) -> None:
    # The second batch is refused at once; the three others in flight wait at a door that never opens.
    gate, credentials = door(together=MAX_IN_FLIGHT + 1, refuse=_refusing("text 12"))
    texts = [f"text {i}" for i in range(100)]
    with pytest.raises(InvokeBadRequestError, match="Input text 12 is not allowed"):
        adapter("text-embedding").invoke("my-embedder", _embedding_credentials(credentials), texts)
    # Only the first four batches were ever sent; the six after them never were.
    assert gate.arrived == MAX_IN_FLIGHT
    assert gate.most_inside == MAX_IN_FLIGHT - 1


def test_killed_batches_leave_no_connection_open(door) -> None:
    _, credentials = door(together=MAX_IN_FLIGHT + 1, refuse=_refusing("text 12"))
    port = int(credentials["endpoint_url"].rsplit(":", 1)[1].split("/")[0])
    texts = [f"text {i}" for i in range(40)]
    with pytest.raises(InvokeBadRequestError):
        adapter("text-embedding").invoke("my-embedder", _embedding_credentials(credentials), texts)
    # The refused batch's connection stays in the pool for the next request; the killed ones are closed.
    assert client_sockets_to(port) <= 1


def test_rerank_batches_are_in_flight_together_and_ranked_as_one(door) -> None:
    gate, credentials = door(together=3)
    docs = [f"document {i} about bananas" for i in range(1001)]  # gte-rerank-v2 takes 500 per request
    docs[777] = "what an AI gateway does: routes model calls"
    result = adapter("rerank").invoke("gte-rerank-v2", credentials, "what does an AI gateway do", docs, top_n=2)
    assert (gate.arrived, gate.most_inside) == (3, 3)
    assert [doc.index for doc in result.docs][:1] == [777]
    assert len(result.docs) == 2


def test_in_parallel_keeps_order_and_raises_the_first_failure() -> None:
    assert in_parallel([lambda n=n: n * n for n in range(9)]) == [n * n for n in range(9)]
    assert in_parallel([]) == []

    def boom() -> int:
        raise ValueError("batch 3 is broken")

    with pytest.raises(ValueError, match="batch 3 is broken"):
        in_parallel([lambda: 1, lambda: 2, boom, lambda: 4])
