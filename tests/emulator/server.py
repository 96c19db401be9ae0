"""A threaded HTTP/1.1 loopback server for any `Request -> Response` app.

- binds 127.0.0.1 only, on a free port unless one is given;
- keep-alive; Content-Length for byte bodies, chunked transfer for streams (close-delimited
  for HTTP/1.0 clients); each stream item goes out in one sendall with TCP_NODELAY, so
  events are not held back by Nagle/delayed-ACK and the client sees real chunk boundaries;
- optional TLS (handshake in the connection thread, so a slow client cannot block accept);
- stopping never hangs: pauses wait on a stop event, open keep-alive connections are shut
  down, and connection threads are daemons that are not joined.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from .wire import ABORT, Headers, Pause, Request, Response

__all__ = ["EmulatorServer", "serve"]

App = Callable[[Request], Response]
_MAX_LINE = 65536
_HANDSHAKE_TIMEOUT = 10.0


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for idle keep-alive connections
    allow_reuse_address = True
    # socketserver's default backlog of 5 resets connections when a load test opens 100 at once.
    request_queue_size = 512

    def __init__(self, app: App, port: int, ssl_context: ssl.SSLContext | None) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        conn: socket.socket = request
        self._track(conn, add=True)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                conn.settimeout(_HANDSHAKE_TIMEOUT)
                tls = self.ssl_context.wrap_socket(conn, server_side=True)  # detaches `conn`
                self._track(conn, add=False)
                conn = tls
                self._track(conn, add=True)
                conn.settimeout(None)
            self.finish_request(conn, client_address)
        except (OSError, ValueError):
            pass  # client went away or failed the TLS handshake: nothing to report
        finally:
            self._track(conn, add=False)
            self.shutdown_request(conn)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_all(self) -> None:
        self.stopping.set()
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # connection resets during tests are expected, not worth a traceback


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(_MAX_LINE + 1)
        except (OSError, ValueError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > _MAX_LINE:
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        if not self.parse_request():
            return
        try:
            body, chunked = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(Response(400, [("Content-Type", "text/plain")], b"malformed request body"))
            return
        scheme = "https" if self.server.ssl_context is not None else "http"
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        request = Request(self.command, self.path, Headers(self.headers.items()), body, f"{scheme}://{host}", chunked)
        try:
            response = self.server.app(request)
        except Exception:  # noqa: BLE001 - surface app bugs as a 500 the test can read
            text = "emulator internal error:\n" + traceback.format_exc()
            response = Response(500, [("Content-Type", "text/plain")], text.encode("utf-8"))
        self._send(response)

    def _read_body(self) -> tuple[bytes, bool]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline(_MAX_LINE).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts), True
                parts.append(self._read_exact(size))
                self.rfile.readline(_MAX_LINE)  # CRLF after the chunk data
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self._read_exact(length), False

    def _read_exact(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) != size:
            raise ValueError("request body shorter than announced")
        return data

    def _head(self, response: Response, framing: str) -> bytes:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = ""
        names = {name.lower() for name, _ in response.headers}
        headers = list(response.headers)
        if "date" not in names:
            headers.append(("Date", formatdate(usegmt=True)))
        if "server" not in names:
            headers.append(("Server", "istio-envoy"))  # what Higress/Envoy gateways announce
        if framing == "length":
            size = len(response.body) if isinstance(response.body, bytes | bytearray) else response.content_length
            headers.append(("Content-Length", str(size)))
        elif framing == "chunked":
            headers.append(("Transfer-Encoding", "chunked"))
        if self.close_connection or framing == "close":
            headers.append(("Connection", "close"))
        lines = [f"HTTP/1.1 {response.status} {reason}", *(f"{k}: {v}" for k, v in headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")

    def _drop(self) -> None:
        self.close_connection = True
        with suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, response: Response) -> None:
        try:
            if response.delay and self.server.stopping.wait(response.delay):
                return self._drop()
            if response.drop:
                return self._drop()
            if not response.streamed or response.content_length is not None:
                framing = "length"
            elif self.request_version >= "HTTP/1.1":
                framing = "chunked"
            else:
                framing = "close"
                self.close_connection = True
            head = self._head(response, framing)
            if not response.streamed:
                body = b"" if self.command == "HEAD" else bytes(response.body)  # type: ignore[arg-type]
                self.connection.sendall(head + body)
                return None
            self._stream(head, response, chunked=framing == "chunked")
        except OSError:
            self.close_connection = True
        return None

    def _stream(self, head: bytes, response: Response, *, chunked: bool) -> None:
        pending: bytes | None = head  # goes out together with the first item
        assert not isinstance(response.body, bytes | bytearray)
        for item in response.body:
            if isinstance(item, Pause):
                if pending is not None:
                    self.connection.sendall(pending)
                    pending = None
                if self.server.stopping.wait(item.seconds):
                    return self._drop()
            elif item is ABORT:
                if pending is not None:
                    self.connection.sendall(pending)
                return self._drop()
            elif isinstance(item, bytes) and item:
                data = b"%x\r\n%b\r\n" % (len(item), item) if chunked else item
                self.connection.sendall(data if pending is None else pending + data)
                pending = None
        tail = b"0\r\n\r\n" if chunked else b""
        self.connection.sendall((pending or b"") + tail)
        if not chunked and response.content_length is None:
            self._drop()  # close-delimited body ends with the connection
        return None


class EmulatorServer:
    """Owns the listening socket and its serving thread. Prefer the `serve()` context manager."""

    def __init__(
        self, app: App, *, port: int = 0, ssl_context: ssl.SSLContext | None = None, url_host: str = "127.0.0.1"
    ) -> None:
        self._server = _Server(app, port, ssl_context)
        self._thread: threading.Thread | None = None
        scheme = "https" if ssl_context is not None else "http"
        self.port: int = self._server.server_address[1]
        self.url = f"{scheme}://{url_host}:{self.port}"

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="gateway-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        self._server.close_all()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serve(
    app: App, *, port: int = 0, ssl_context: ssl.SSLContext | None = None, url_host: str = "127.0.0.1"
) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 and yield its base URL ("http://127.0.0.1:PORT", or https
    with an ssl_context). `url_host` only changes the host written into the URL (e.g.
    "localhost" to match a certificate); the socket is always bound to 127.0.0.1."""
    server = EmulatorServer(app, port=port, ssl_context=ssl_context, url_host=url_host).start()
    try:
        yield server.url
    finally:
        server.stop()
