"""The CoinW client: signing, bounded reads, typed errors, and the per-account rate limit.

It knows HTTP and CoinW's signing scheme and nothing of the database. The transport is
injectable so unit tests can use `httpx.MockTransport`; everything else talks to a real
server (CoinW, or the simulator on loopback).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from recorder import __version__, secret, text
from recorder.errors import (
    ConnectError,
    ConnectionLostError,
    HTTPStatusError,
    NotJSONError,
    PollError,
    PollTimeoutError,
    RateLimitError,
    ResponseFormatError,
    ResponseTooLargeError,
    TransportError,
)
from recorder.sources import http
from recorder.sources.coinw import parse
from recorder.sources.pacing import RateLimiter
from recorder.values import Credentials, Snapshot

#: The Content-Encodings the client asks for (and httpx decodes without extras).
ACCEPTED_ENCODINGS = ("gzip", "deflate")

PRIVATE_PATH = "/api/v1/private"
PUBLIC_PATH = "/api/v1/public"

#: CoinW's published limits: returnBalances 3 req/s and returnCompleteBalances 5 req/2 s
#: per user ID. A small margin on the period absorbs jitter between us and their clock
#: (the process-wide limit gets the same margin).
BALANCES_LIMIT = (3, 1.05)
COMPLETE_BALANCES_LIMIT = (5, 2.1)


def sign(params: Mapping[str, str], secret_key: str) -> str:
    """CoinW's spot signature: MD5 of sorted `k=v` pairs + `&secret_key=...`, upper-case hex."""
    text = "&".join(f"{key}={params[key]}" for key in sorted(params))
    text += f"&secret_key={secret_key}"
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


def signed_query(
    command: str, credentials: Credentials, params: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The query string of a private request: command, parameters, api_key and sign."""
    signed = {**(params or {}), "api_key": credentials.api_key}
    signature = sign(signed, credentials.secret_key.reveal())
    # No nonce or timestamp takes part in the signature, so it never changes for a key:
    # treat it like the secret itself.
    secret.register(signature)
    return {"command": command, **signed, "sign": signature}


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


@contextlib.contextmanager
def outside_text_made_safe() -> Iterator[None]:
    """The client's one redaction point (a decorator on every public method): every error
    it raises leaves through here.

    An error's message quotes what the exchange (or a proxy in between) sent back: a
    message, a code, a page title, a body, possibly an echo of the request with its
    signature. Here it is masked, escaped and bounded (`text.safe`) before any log line,
    poll_errors row, buffer journal, terminal or listener sees it."""
    try:
        yield
    except PollError as error:
        error.args = (text.safe(error, text.ERROR_LIMIT),)
        raise


class CoinWClient:
    """Fetches balances and tickers from one CoinW host; safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        max_response_bytes: int = 5 * 1024 * 1024,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = utc_now,
        max_connections: int = 20,
        max_requests_per_second: float | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self._clock = clock
        #: True once the recorder is stopping: a request in flight is called off.
        self._stopping = stopping
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport or http.transport(self.base_url, max_connections),
            headers={
                "User-Agent": f"coinw-recorder/{__version__}",
                "Accept-Encoding": ", ".join(ACCEPTED_ENCODINGS),
            },
            follow_redirects=False,
        )
        self._limiters: dict[tuple[str, str], RateLimiter] = {}
        self._limiters_lock = threading.Lock()
        # Every request of this process, all accounts together (CoinW also limits per IP).
        self._global_limiter = (
            RateLimiter(max(1, round(max_requests_per_second)), BALANCES_LIMIT[1])
            if max_requests_per_second
            else None
        )

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __enter__(self) -> CoinWClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _limiter(self, api_key: str, command: str) -> RateLimiter:
        limit, period = COMPLETE_BALANCES_LIMIT if "Complete" in command else BALANCES_LIMIT
        with self._limiters_lock:
            key = (api_key, command)
            if key not in self._limiters:
                self._limiters[key] = RateLimiter(limit, period)
            return self._limiters[key]

    @outside_text_made_safe()
    def fetch_balances(self, credentials: Credentials, *, complete: bool = False) -> Snapshot:
        """One signed returnBalances (or returnCompleteBalances) call, parsed into a Snapshot."""
        command = "returnCompleteBalances" if complete else "returnBalances"
        self._limiter(credentials.api_key, command).acquire()
        if self._global_limiter is not None:
            self._global_limiter.acquire()
        body = self._request("POST", PRIVATE_PATH, signed_query(command, credentials))
        taken_at = self._clock()
        if complete:
            return parse.parse_complete_balances(body, taken_at)
        return parse.parse_balances(body, taken_at)

    @outside_text_made_safe()
    def fetch_ticker(self) -> Mapping[str, Any]:
        """returnTicker's data: pair -> ticker fields (numbers as Decimal)."""
        if self._global_limiter is not None:
            self._global_limiter.acquire()
        body = self._request("GET", PUBLIC_PATH, {"command": "returnTicker"})
        data = parse.check_envelope(parse.decode_json(body))
        if not isinstance(data, dict):
            raise ResponseFormatError("CoinW sent a ticker that is not an object of pairs.")
        return data

    def _request(self, method: str, path: str, query: Mapping[str, str]) -> bytes:
        where = f"{self.base_url}{path}?command={query.get('command', '')}"
        # One deadline for the whole response: connecting, the status line and headers,
        # and the body (sources/http.py).
        deadline = time.monotonic() + self.timeout
        try:
            with (
                http.within(deadline, self._stopping),
                self._http.stream(method, path, params=dict(query)) as response,
            ):
                body = self._read_bounded(response, deadline, where)
        except httpx.TimeoutException:
            if self._stopping():
                raise PollTimeoutError(
                    f"The request to {where} was called off: the recorder is stopping."
                ) from None
            raise PollTimeoutError(
                f"CoinW did not answer within {self.timeout:g} s ({where}); "
                "it will be tried again at the next interval."
            ) from None
        except httpx.DecodingError as exc:
            raise NotJSONError(
                f"CoinW sent a body that does not decode as its Content-Encoding says "
                f"({where}: {_reason(exc)})."
            ) from None
        except httpx.ConnectError as exc:
            raise ConnectError(
                f"Could not connect to {self.base_url} ({_reason(exc)}); check base_url and "
                "the network."
            ) from None
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise ConnectionLostError(
                f"The connection to {self.base_url} was lost before the response was complete "
                f"({_reason(exc)})."
            ) from None
        except httpx.TransportError as exc:
            raise TransportError(
                f"The request to {self.base_url} failed ({_reason(exc)})."
            ) from None
        return self._check_status(response, body, where)

    def _read_bounded(self, response: httpx.Response, deadline: float, where: str) -> bytes:
        encodings = response.headers.get("content-encoding", "").lower().replace(" ", "")
        unknown = [
            e for e in encodings.split(",") if e and e not in ("identity", *ACCEPTED_ENCODINGS)
        ]
        if unknown:
            # httpx passes an encoding it cannot decode through as is: refuse it instead.
            raise NotJSONError(
                f"CoinW sent a body in an encoding the recorder did not ask for "
                f"({text.safe(', '.join(unknown), 40)}) from {where}."
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            raise ResponseTooLargeError(
                f"CoinW announced a {int(declared):,}-byte response from {where}, over the "
                f"{self.max_response_bytes:,}-byte cap (max_response_bytes); it was not read."
            )
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_response_bytes:
                raise ResponseTooLargeError(
                    f"The response from {where} grew past the {self.max_response_bytes:,}-byte "
                    "cap (max_response_bytes); reading stopped there."
                )
            # httpx's timeout is per read; a server trickling bytes must not hold us forever.
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("the whole response took too long")
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_status(self, response: httpx.Response, body: bytes, where: str) -> bytes:
        status = response.status_code
        if status == 429:
            raise RateLimitError(
                f"CoinW answered HTTP 429 Too Many Requests ({where}); "
                "the recorder will slow down.",
                retry_after=_retry_after(response.headers.get("retry-after")),
            )
        if not 200 <= status < 300:
            summary = _page_summary(body)
            raise HTTPStatusError(
                f"CoinW answered HTTP {status} {response.reason_phrase} ({where})"
                + (f": {summary}" if summary else "")
                + ".",
                status,
            )
        return body


def _reason(exc: Exception) -> str:
    said = str(exc).strip()
    return said or type(exc).__name__


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = Decimal(value.strip())
    except ArithmeticError:
        return None
    return float(seconds) if seconds.is_finite() and 0 <= seconds <= 3600 else None  # float-ok


def _page_summary(body: bytes, limit: int = 120) -> str:
    """A short, single-line hint of what an error page said (its title, or its start)."""
    page = body.decode("utf-8", "replace")
    lower = page[:4096].lower()
    start = lower.find("<title>")
    if start != -1:
        end = lower.find("</title>", start)
        if end != -1:
            page = page[start + 7 : end]
    return text.one_line(page, limit)
