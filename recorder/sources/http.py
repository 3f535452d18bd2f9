"""An HTTP transport with a deadline for the whole response, and a way to call it off.

httpx's timeouts bound each network operation, not the request: a server that trickles its
status line and headers a byte a second never trips the read timeout, and a poll would
wait forever (APScheduler then skips every later run of that account, and SIGTERM waits
for it). No library offers a total deadline for a blocking client, so this wraps httpcore's
own network backend: every connect, read and write waits at most until the request's
deadline, in slices of at most a second, so a recorder that is stopping is noticed too.
`within(deadline, stopping)` sets both for the requests made inside it.
"""

from __future__ import annotations

import contextlib
import contextvars
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

#: Longest single wait, so that a recorder that is stopping is noticed within a second.
SLICE = 1.0

_limits: contextvars.ContextVar[tuple[float, Callable[[], bool]] | None] = contextvars.ContextVar(
    "recorder_http_deadline", default=None
)


@contextlib.contextmanager
def within(deadline: float, stopping: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Requests made inside end by `deadline` (time.monotonic()), or when `stopping()`."""
    token = _limits.set((deadline, stopping))
    try:
        yield
    finally:
        _limits.reset(token)


def _wait(timeout: float | None, started: float, error: type[Exception]) -> float | None:
    """How long the next wait may be; `error` once the deadline or the operation's own
    timeout has passed, or the recorder is stopping."""
    now = time.monotonic()
    limits = [] if timeout is None else [started + timeout - now]
    found = _limits.get()
    if found is not None:
        deadline, stopping = found
        if stopping():
            raise error("the recorder is stopping")
        limits += [deadline - now, SLICE]
    if not limits:
        return None
    wait = min(limits)
    if wait <= 0:
        raise error("the deadline of the whole response has passed")
    return wait


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        started = time.monotonic()
        while True:
            wait = _wait(timeout, started, httpcore.ReadTimeout)
            try:
                return self._inner.read(max_bytes, wait)
            except httpcore.ReadTimeout:
                continue  # one slice passed: check the deadline and wait again

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # Requests are a few hundred bytes: one bounded write, no slices needed.
        self._inner.write(buffer, _wait(timeout, time.monotonic(), httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        wait = _wait(timeout, time.monotonic(), httpcore.ConnectTimeout)
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, wait))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        wait = _wait(timeout, time.monotonic(), httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, wait, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        wait = _wait(timeout, time.monotonic(), httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, wait, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def transport(base_url: str, max_connections: int) -> httpx.HTTPTransport:
    """httpx's own transport (TLS, pooling, the proxy the environment names for
    `base_url`), its network backend wrapped so every wait honours `within`."""
    made = httpx.HTTPTransport(
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        proxy=_environment_proxy(base_url),
    )
    # httpx builds the pool without a way to pass a network backend; the pool keeps it in
    # one attribute (httpcore 1.x). tests/test_exchange.py fails loudly if that changes.
    pool: Any = made._pool
    pool._network_backend = _Backend()
    return made


def _environment_proxy(url: str) -> str | None:
    """The proxy HTTPS_PROXY / HTTP_PROXY name for `url`, unless NO_PROXY exempts it (what
    httpx does by itself when it builds its own transport)."""
    parts = urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)
