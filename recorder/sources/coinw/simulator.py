"""A simulated CoinW exchange: a real HTTP server on loopback speaking the subset we use.

It checks signatures exactly as CoinW does, enforces the per-key rate limit of
returnBalances, and can be scripted: balances (fixed, or a function of the request count),
tickers, and faults (error statuses, broken bodies, stalls, resets). `recorder demo` and the
tests run the real recorder against it. It is an exchange, not a recorder: it imports
nothing of the store.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from recorder.sources.coinw.client import PRIVATE_PATH, PUBLIC_PATH, sign

log = logging.getLogger(__name__)

Holdings = Mapping[str, Any]
"""currency -> amount as sent: a string ("0.0012"), or for returnCompleteBalances a
mapping {"available": ..., "onOrders": ...}. Strings are sent verbatim."""


@dataclass
class Fault:
    """How to spoil the next `times` answers (None: every answer until cleared)."""

    action: str  # "status", "body", "envelope", "reset", "stall", "close", "huge"
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    seconds: float = 0.0
    size: int = 0
    times: int | None = 1

    @classmethod
    def http(cls, status: int, body: str = "", *, times: int | None = 1) -> Fault:
        """An HTTP error status with an HTML page, as a proxy or CDN sends it."""
        page = body or (
            f"<html><head><title>{status} {HTTPStatus(status).phrase}</title></head>"
            f"<body><h1>{status} {HTTPStatus(status).phrase}</h1></body></html>"
        )
        return cls(
            "status", status=status, body=page.encode(), content_type="text/html", times=times
        )

    @classmethod
    def raw(
        cls, body: bytes | str, *, times: int | None = 1, content_type: str = "application/json"
    ) -> Fault:
        """HTTP 200 with exactly this body."""
        data = body.encode() if isinstance(body, str) else body
        return cls("body", body=data, content_type=content_type, times=times)

    @classmethod
    def json(cls, document: Any, *, times: int | None = 1) -> Fault:
        """HTTP 200 with this JSON document."""
        return cls.raw(json.dumps(document), times=times)

    @classmethod
    def envelope(cls, code: int | str, msg: str = "error", *, times: int | None = 1) -> Fault:
        """HTTP 200 with CoinW's error envelope."""
        return cls.json(
            {"code": code, "msg": msg, "success": False, "failed": True, "data": None}, times=times
        )

    @classmethod
    def reset(cls, *, times: int | None = 1) -> Fault:
        """Headers and half a body, then the connection is reset."""
        return cls("reset", times=times)

    @classmethod
    def stall(cls, seconds: float, *, times: int | None = 1) -> Fault:
        """Wait this long before answering normally."""
        return cls("stall", seconds=seconds, times=times)

    @classmethod
    def huge(cls, size: int, *, times: int | None = 1) -> Fault:
        """A valid-looking JSON body of `size` bytes, without Content-Length (chunked)."""
        return cls("huge", size=size, times=times)


@dataclass
class _Account:
    secret_key: str
    holdings: Holdings | Callable[[int], Holdings]
    requests: int = 0


@dataclass
class Request:
    """One request the simulator received."""

    at: float  # time.monotonic()
    api_key: str | None
    command: str
    answered: str  # "ok", "rate_limit", "auth", "fault:<action>", "bad_request"


@dataclass
class _State:
    accounts: dict[str, _Account] = field(default_factory=dict)
    ticker: Mapping[str, str] | Callable[[int], Mapping[str, str]] = field(default_factory=dict)
    ticker_requests: int = 0
    # Fault queues by target: ("key", api_key), ("command", name) or ("all",).
    faults: dict[tuple[str, ...], deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    recent: dict[tuple[str, str], deque[float]] = field(default_factory=lambda: defaultdict(deque))
    log: list[Request] = field(default_factory=list)


class Simulator:
    """A CoinW look-alike on 127.0.0.1; use as a context manager or start()/stop()."""

    #: returnBalances: 3 per second; returnCompleteBalances: 5 per 2 seconds (per key).
    limits: dict[str, tuple[int, float]] = {  # noqa: RUF012 - tests may tune it per instance
        "returnBalances": (3, 1.0),
        "returnCompleteBalances": (5, 2.0),
    }

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._state = _State()
        self._lock = threading.Lock()
        self.limits = dict(self.limits)
        self._server = _Server((host, port), _Handler)
        self._server.simulator = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL to give the recorder, e.g. http://127.0.0.1:41234."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Simulator:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="coinw-simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------------------

    def add_account(
        self, api_key: str, secret_key: str, holdings: Holdings | Callable[[int], Holdings]
    ) -> None:
        """An account; `holdings` may be a function of how many balance requests it had."""
        with self._lock:
            self._state.accounts[api_key] = _Account(secret_key, holdings)

    def set_holdings(self, api_key: str, holdings: Holdings | Callable[[int], Holdings]) -> None:
        """Replace what an account holds from the next request on."""
        with self._lock:
            self._state.accounts[api_key].holdings = holdings

    def set_ticker(self, prices: Mapping[str, str] | Callable[[int], Mapping[str, str]]) -> None:
        """Pair -> last price, e.g. {"BTC_USDT": "96903.7"}, or a function of the request count."""
        with self._lock:
            self._state.ticker = prices if callable(prices) else dict(prices)

    def add_fault(
        self, fault: Fault, api_key: str | None = None, *, command: str | None = None
    ) -> None:
        """Spoil the next answers to this key, or to this command (e.g. "returnTicker"),
        or, with neither, to every request."""
        if api_key is not None:
            target: tuple[str, ...] = ("key", api_key)
        elif command is not None:
            target = ("command", command)
        else:
            target = ("all",)
        with self._lock:
            self._state.faults[target].append(fault)

    def clear_faults(self) -> None:
        """Answer normally again."""
        with self._lock:
            self._state.faults.clear()

    def requests(self, command: str | None = None) -> list[Request]:
        """The requests received so far (optionally of one command)."""
        with self._lock:
            return [r for r in self._state.log if command is None or r.command == command]

    # -- answering ---------------------------------------------------------------------

    def _take_fault(self, api_key: str | None, command: str) -> Fault | None:
        for target in (("key", api_key or ""), ("command", command), ("all",)):
            queue = self._state.faults.get(target)
            if queue:
                fault = queue[0]
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        queue.popleft()
                return fault
        return None

    def _rate_limited(self, api_key: str, command: str, now: float) -> bool:
        limit, period = self.limits.get(command, (80, 1.0))
        sent = self._state.recent[(api_key, command)]
        while sent and now - sent[0] >= period:
            sent.popleft()
        sent.append(now)
        return len(sent) > limit

    def answer(  # noqa: PLR0911 - one return per kind of answer reads best here
        self, method: str, target: str
    ) -> tuple[Fault | None, int, dict[str, Any]]:
        """Decide the reply to one request: (fault to play, HTTP status, JSON document)."""
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        command = query.get("command", "")
        api_key = query.get("api_key")
        now = time.monotonic()
        with self._lock:
            fault = self._take_fault(api_key, command)

            def done(
                answered: str, status: int, doc: dict[str, Any]
            ) -> tuple[Fault | None, int, dict[str, Any]]:
                self._state.log.append(Request(now, api_key, command, answered))
                return fault, status, doc

            if fault is not None and fault.action != "stall":
                return done(f"fault:{fault.action}", 200, {})
            if parts.path == PUBLIC_PATH and method == "GET":
                if command == "returnTicker":
                    self._state.ticker_requests += 1
                    ticker = self._state.ticker
                    prices = ticker(self._state.ticker_requests) if callable(ticker) else ticker
                    return done("ok", 200, _success(_ticker_data(prices)))
                return done("bad_request", 200, _error(-103, "invalid command"))
            if parts.path != PRIVATE_PATH or method != "POST":
                return done("bad_request", 404, _error(404, "not found"))
            if command not in ("returnBalances", "returnCompleteBalances"):
                return done("bad_request", 200, _error(-103, "invalid command"))
            account = self._state.accounts.get(api_key or "")
            if account is None:
                return done("auth", 200, _error(1003, "API key does not exist"))
            signed = {k: v for k, v in query.items() if k not in ("command", "sign")}
            expected = sign(signed, account.secret_key)
            if not hmac.compare_digest(expected, query.get("sign", "")):
                return done("auth", 200, _error(6000, "signature verification failed"))
            if self._rate_limited(api_key or "", command, now):
                return done("rate_limit", 200, _error(29001, "API access frequently"))
            account.requests += 1
            holdings = account.holdings
            current = holdings(account.requests) if callable(holdings) else holdings
            if command == "returnBalances":
                data = {c: _available(v) for c, v in current.items()}
            else:
                data = {c: _complete(v) for c, v in current.items()}
            return done("ok", 200, _success(data))


def _available(value: Any) -> Any:
    return value.get("available", "0") if isinstance(value, Mapping) else value


def _complete(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    return {"available": value, "onOrders": "0"}


def _success(data: Any) -> dict[str, Any]:
    return {"code": "200", "data": data, "msg": "SUCCESS", "success": True, "failed": False}


def _error(code: int, message: str) -> dict[str, Any]:
    return {"code": str(code), "data": None, "msg": message, "success": False, "failed": True}


def _ticker_data(prices: Mapping[str, str]) -> dict[str, Any]:
    return {
        pair: {
            "id": index,
            "last": last,
            "highestBid": last,
            "lowestAsk": last,
            "percentChange": "0",
            "isFrozen": 0,
            "high24hr": last,
            "low24hr": last,
            "baseVolume": "0",
        }
        for index, (pair, last) in enumerate(sorted(prices.items()), 1)
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    simulator: Simulator


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("simulator: " + format, *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        fault, status, document = self.server.simulator.answer(method, self.path)
        if fault is None or fault.action == "stall":
            if fault is not None:
                time.sleep(fault.seconds)
            self._send(status, json.dumps(document).encode(), "application/json")
        elif fault.action in ("status", "body"):
            self._send(fault.status, fault.body, fault.content_type)
        elif fault.action == "reset":
            self._reset()
        elif fault.action == "huge":
            self._huge(fault.size)
        else:  # "close": no answer at all
            self.close_connection = True

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout in a test)

    def _reset(self) -> None:
        body = b'{"code": "200", "data": {"BTC": "0.00'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "400")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        # SO_LINGER 0 makes close() send RST instead of FIN: a reset mid-body.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _huge(self, size: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b" " * 65536
        sent = 0
        try:
            while sent < size:
                piece = chunk[: min(len(chunk), size - sent)]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sent += len(piece)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading at its cap, as it should
        self.close_connection = True
