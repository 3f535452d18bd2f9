"""A wrapper that keeps secret strings out of reprs, logs and tracebacks."""

from __future__ import annotations

import logging
import threading


class Secret:
    """A secret string; `str()` and `repr()` show asterisks, `.reveal()` the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        redact(value)

    def reveal(self) -> str:
        """The secret itself: only for computing a signature."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


_lock = threading.Lock()
_redacted: set[str] = set()


def redact(value: str) -> None:
    """Never let `value` reach a log line, even through a library's message."""
    # Very short values would blank out ordinary words; secrets are long.
    if len(value) >= 6:
        with _lock:
            _redacted.add(value)


class RedactingFilter(logging.Filter):
    """Replaces every registered secret in a log record by '***' (defence in depth)."""

    def filter(self, record: logging.LogRecord) -> bool:
        with _lock:
            secrets = tuple(_redacted)
        if not secrets:
            return True
        message = record.getMessage()
        cleaned = message
        for secret in secrets:
            cleaned = cleaned.replace(secret, "***")
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
