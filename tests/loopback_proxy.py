"""A tiny HTTP proxy on 127.0.0.1 for tests: CONNECT tunnels and absolute-form forwarding.

    with loopback_proxy() as proxy:                  # proxy.url == "http://127.0.0.1:PORT"
        ...                                          # proxy.seen: ["CONNECT 127.0.0.1:443", ...]

`refuse_with=403` answers every request with that status instead (a proxy that denies the way).
One request per client connection (the answer closes it), which is all the tests need.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_TIMEOUT = 10.0


@dataclass
class LoopbackProxy:
    url: str
    refuse_with: int | None = None
    seen: list[str] = field(default_factory=list)  # request lines, in arrival order


def _read_head(connection: socket.socket) -> tuple[bytes, bytes]:
    """The request head up to its blank line, and whatever body bytes came with it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _pipe(source: socket.socket, target: socket.socket) -> None:
    with suppress(OSError):
        while chunk := source.recv(65536):
            target.sendall(chunk)
    with suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def _tunnel(client: socket.socket, upstream: socket.socket) -> None:
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join(_TIMEOUT)


def _handle(proxy: LoopbackProxy, client: socket.socket) -> None:
    with client:
        client.settimeout(_TIMEOUT)
        head, rest = _read_head(client)
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        proxy.seen.append(request_line)
        method, target, version = request_line.split(" ", 2)
        if proxy.refuse_with is not None:
            client.sendall(f"HTTP/1.1 {proxy.refuse_with} Refused by test proxy\r\nContent-Length: 0\r\n\r\n".encode())
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            with socket.create_connection((host, int(port)), timeout=_TIMEOUT) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _tunnel(client, upstream)
            return
        parts = urlsplit(target)  # absolute form: http://host:port/path?query
        headers = [line for line in header_lines if not line.lower().startswith(("connection:", "proxy-"))]
        forwarded = "\r\n".join([f"{method} {parts.path or '/'}{'?' + parts.query if parts.query else ''} {version}",
                                 *headers, "Connection: close", "", ""])  # fmt: skip
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=_TIMEOUT) as upstream:
            upstream.sendall(forwarded.encode("latin-1") + rest)
            _tunnel(client, upstream)


@contextmanager
def loopback_proxy(refuse_with: int | None = None) -> Iterator[LoopbackProxy]:
    listener = socket.create_server(("127.0.0.1", 0))
    proxy = LoopbackProxy(f"http://127.0.0.1:{listener.getsockname()[1]}", refuse_with)

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_handle, args=(proxy, client), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield proxy
    finally:
        listener.close()
