"""A hand-written HTTP server on loopback for bytes no well-behaved server sends: headers
trickled a byte at a time, a gzip header on a plain body, 204 on a private call. Each
connection reads one request and hands the socket to a handler."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

Handler = Callable[[socket.socket, str, threading.Event], None]


def response(body: bytes, status: str = "200 OK", headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 response with a Content-Length."""
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def trickle(connection: socket.socket, data: bytes, pause: float, stop: threading.Event) -> None:
    """Send `data` one byte per `pause` seconds, until sent or `stop` is set."""
    for byte in data:
        if stop.wait(pause):
            return
        with contextlib.suppress(OSError):
            connection.sendall(bytes([byte]))


class RawServer:
    """Answers each request with `handler(connection, request_line, stop)`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            request = b""
            connection.settimeout(5)
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in request:
                    chunk = connection.recv(4096)
                    if not chunk:
                        return
                    request += chunk
            line = request.split(b"\r\n", 1)[0].decode("latin-1")
            self.requests.append(line)
            with contextlib.suppress(OSError):
                self.handler(connection, line, self._stop)

    def close(self) -> None:
        self._stop.set()
        self._socket.close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def raw_server(handler: Handler) -> Iterator[RawServer]:
    """A RawServer for the length of a `with` block."""
    server = RawServer(handler)
    try:
        yield server
    finally:
        server.close()


def by_command(
    balances: Callable[[socket.socket, threading.Event], None],
    ticker: Callable[[socket.socket, threading.Event], None] | None = None,
) -> Handler:
    """A handler answering returnBalances and returnTicker requests differently."""

    def handle(connection: socket.socket, line: str, stop: threading.Event) -> None:
        if "returnTicker" in line:
            if ticker is not None:
                ticker(connection, stop)
            else:
                connection.sendall(response(b'{"code": "200", "data": {}}'))
        else:
            balances(connection, stop)

    return handle
