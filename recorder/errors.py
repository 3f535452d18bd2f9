"""Every failure the recorder expects, as one hierarchy.

    RecorderError                    anything expected: printed as one sentence, no traceback
    ├── ConfigError                  bad or missing configuration (exit code 2)
    ├── InputError                   a bad command-line value: date, account, currency (exit 2)
    ├── StoreError                   the database could not do what was asked
    │   ├── DatabaseUnavailableError an outage: unreachable, lost, read-only, full, locked;
    │   │                            what was to be written waits and is tried again
    │   ├── WriteRejectedError       the database refused what was written (a duplicate
    │   │                            key, a value too long or out of range): trying again
    │   │                            cannot help
    │   ├── SchemaError              the database's schema is missing, older or newer
    │   │                            than this recorder
    │   └── AccountLockedError       another process is recording this account
    └── PollError                    one poll of one account failed; `kind` goes to poll_errors
        ├── TransportError           kind "transport": the request did not complete
        │   ├── ConnectError         kind "connect": nothing listens or the host is unreachable
        │   ├── ConnectionLostError  kind "connection_lost": the connection dropped mid-response
        │   ├── PollTimeoutError     kind "timeout": no complete answer within timeout_seconds
        │   └── ResponseTooLargeError  kind "too_large": the body exceeded max_response_bytes
        ├── HTTPStatusError          kind "http_status": a non-2xx status (5xx pages included)
        ├── RateLimitError           kind "rate_limit": HTTP 429, or envelope code 29001 / 429
        ├── ResponseFormatError      kind "bad_envelope": JSON, but not CoinW's envelope
        │   ├── NotJSONError         kind "not_json": the body is not JSON (or not decodable)
        │   └── EmptyReplyError      kind "empty_reply": no balances in the reply while the
        │                            account held some; believed when the next poll says so
        ├── APIError                 kind "api_error": CoinW answered with an error code
        │   └── AuthenticationError  kind "auth": code 1003 / 6000, a key or signature problem
        └── InvalidAmountError       kind "invalid_amount": an amount that is not a finite,
                                     non-negative decimal we can store exactly

Messages are written for the operator: one sentence saying what is wrong and what to do.
They never contain the secret key or a request signature.
"""

from __future__ import annotations

import functools


class RecorderError(Exception):
    """Base of every expected failure; its message is shown to the user as is."""


class ConfigError(RecorderError):
    """The configuration is missing, malformed or holds a bad value."""


class InputError(RecorderError):
    """A command-line value is malformed or names something that does not exist."""


class StoreError(RecorderError):
    """The database could not be reached or a write to it failed."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        #: The database's own words, for logs and poll_errors rows.
        self.reason = reason or message


class DatabaseUnavailableError(StoreError):
    """The database cannot be used now; the same write may succeed later."""

    #: False when the database's error named no known outage (unreachable, lost, full,
    #: read-only, locked, too slow): it may be about the data after all.
    certain = True


class WriteRejectedError(StoreError):
    """The database refused the data itself; the same write will fail again."""

    #: The poll_errors.kind of a poll whose data the database refused.
    kind = "rejected_by_database"


class SchemaError(StoreError):
    """The database was migrated by a newer recorder; this one must not write to it."""


class AccountLockedError(StoreError):
    """Another recorder process holds this account; polling it here would duplicate rows."""


class PollError(RecorderError):
    """One poll of one account failed; nothing from it is stored but a poll_errors row."""

    kind = "poll_error"
    #: Worth trying again within the same interval (overload and passing network faults).
    retryable = False


class TransportError(PollError):
    kind = "transport"
    retryable = True


class ConnectError(TransportError):
    kind = "connect"


class ConnectionLostError(TransportError):
    kind = "connection_lost"


class PollTimeoutError(TransportError):
    kind = "timeout"


class ResponseTooLargeError(TransportError):
    kind = "too_large"
    retryable = False


class HTTPStatusError(PollError):
    kind = "http_status"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = status >= 500


class RateLimitError(PollError):
    kind = "rate_limit"
    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ResponseFormatError(PollError):
    kind = "bad_envelope"


class NotJSONError(ResponseFormatError):
    kind = "not_json"


class EmptyReplyError(ResponseFormatError):
    kind = "empty_reply"


class APIError(PollError):
    kind = "api_error"

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code
        # -200 is CoinW's "system error": an overloaded exchange, worth one more try.
        self.retryable = code == "-200"


class AuthenticationError(APIError):
    kind = "auth"


class InvalidAmountError(PollError):
    kind = "invalid_amount"


@functools.cache  # the error classes never change once imported
def poll_error_kinds() -> frozenset[str]:
    """Every `poll_errors.kind` a poll can end with."""
    found, todo = {WriteRejectedError.kind}, [PollError]
    while todo:
        cls = todo.pop()
        found.add(cls.kind)
        todo.extend(cls.__subclasses__())
    return frozenset(found)
