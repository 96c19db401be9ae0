"""The rejection an auth plugin sends instead of forwarding the request."""

from __future__ import annotations

from dataclasses import dataclass

from .wire import Response

__all__ = ["Denial"]


@dataclass(frozen=True, slots=True)
class Denial:
    """A Higress local reply: plain-text body equal to the message, plus plugin headers."""

    status: int
    message: str
    headers: tuple[tuple[str, str], ...] = ()

    def to_response(self) -> Response:
        # Envoy local replies carry text/plain; the plugins add only their own headers.
        return Response(
            status=self.status,
            headers=[("Content-Type", "text/plain"), *self.headers],
            body=self.message.encode("utf-8"),
        )
