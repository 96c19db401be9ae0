"""Request/response value objects shared by the emulator's pure logic and its HTTP server.

The app never touches sockets: it maps a `Request` to a `Response`. A streamed `Response`
carries an iterator whose items are bytes to send, `Pause` (sleep without closing) or
`ABORT` (drop the connection), so fault behaviour stays testable without a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "ABORT",
    "Abort",
    "BodyItem",
    "Headers",
    "Pause",
    "ReceivedRequest",
    "Request",
    "Response",
    "to_wire_bytes",
]


def to_wire_bytes(value: str) -> bytes:
    """Header/path text back to the bytes that were on the wire.

    http.client decodes header lines and the request line as ISO-8859-1, so encoding
    with latin-1 restores the exact octets (needed for HMAC). Text that cannot be latin-1
    (only possible when a test builds a Request by hand) falls back to UTF-8.
    """
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


class Headers(Mapping[str, str]):
    """Case-insensitive, order-preserving header multi-map holding values exactly as sent.

    Lookup of a repeated header joins the values with ", " (as httpx does); use
    `get_list` to see them separately. Names keep the client's spelling in `raw_items`.
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        self._items: list[tuple[str, str]] = [(str(k), str(v)) for k, v in pairs]
        self._index: dict[str, list[str]] = {}
        for name, value in self._items:
            self._index.setdefault(name.lower(), []).append(value)

    def __getitem__(self, name: str) -> str:
        values = self._index[name.lower()]
        return values[0] if len(values) == 1 else ", ".join(values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def get_list(self, name: str) -> list[str]:
        return list(self._index.get(name.lower(), []))

    def raw_items(self) -> list[tuple[str, str]]:
        """(name, value) pairs in arrival order, names as the client spelled them."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed HTTP request as the gateway sees it.

    `target` is the raw request-target (path plus optional query, undecoded). `base_url`
    is scheme://host[:port] as the client addressed us; it is used to build absolute
    URLs such as the DashScope TTS audio link.
    """

    method: str
    target: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    base_url: str = "http://127.0.0.1"
    chunked: bool = False  # body arrived with Transfer-Encoding: chunked (HMAC edge case)

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]


@dataclass(slots=True)
class ReceivedRequest:
    """What `GatewayEmulator.received` records for every request, faulted or rejected ones too."""

    method: str
    path: str  # raw, undecoded, including any base path and /_fault/... segments
    query: str  # raw query string without "?"
    headers: Headers
    body: bytes
    consumer: str | None = None  # authenticated consumer name (Higress X-Mse-Consumer)
    status: int | None = None  # status the emulator answered with (None: no response, e.g. `close`)

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    def json(self) -> Any:
        return json.loads(self.body)

    def multipart(self) -> dict[str, Any]:
        """Form fields of a multipart body: name -> str, or MultipartFile for file parts."""
        from .multipart import parse_form  # local import: only tests that need it pay for it

        return parse_form(self.headers.get("content-type", ""), self.body)


@dataclass(frozen=True, slots=True)
class Pause:
    """Stream item: wait this many seconds before sending the next item."""

    seconds: float


class Abort:
    """Stream item: close the connection right here (no terminating chunk)."""

    def __repr__(self) -> str:
        return "ABORT"


ABORT: Final = Abort()

BodyItem = bytes | Pause | Abort


@dataclass(slots=True)
class Response:
    """What the app answers.

    body: bytes (sent with Content-Length) or an iterable of BodyItem (sent chunked, or
    with `content_length` when set). `delay` stalls before the status line. `drop` closes
    the connection without any response at all.
    """

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | Iterable[BodyItem] = b""
    delay: float = 0.0
    drop: bool = False
    content_length: int | None = None

    @property
    def streamed(self) -> bool:
        return not isinstance(self.body, bytes | bytearray)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    def read(self) -> bytes:
        """All body bytes, ignoring pauses (for tests calling the app without a server)."""
        if isinstance(self.body, bytes | bytearray):
            return bytes(self.body)
        return b"".join(item for item in self.body if isinstance(item, bytes))
