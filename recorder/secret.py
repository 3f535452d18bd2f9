"""A wrapper that keeps secret strings out of reprs, and the registry of secret values that
`text.redact` masks wherever they might appear (defence in depth)."""

from __future__ import annotations

import threading


class Secret:
    """A secret string; `str()` and `repr()` show asterisks, `.reveal()` the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

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
# Longest first, so a secret containing another is masked whole. Replaced, never changed
# in place, so readers need no lock.
_registered: list[tuple[str, ...]] = [()]


def register(value: str) -> None:
    """Never let `value` reach a log line, a stored row or the terminal."""
    # Very short values would blank out ordinary words; secrets are long.
    if len(value) >= 6:
        with _lock:
            if value not in _registered[0]:
                _registered[0] = tuple(sorted({*_registered[0], value}, key=len, reverse=True))


def longest() -> int:
    """The length of the longest registered secret (0 when there is none)."""
    registered = _registered[0]
    return len(registered[0]) if registered else 0


def mask_registered(text: str) -> str:
    """`text` with every registered secret replaced by '***'."""
    for value in _registered[0]:
        if value in text:
            text = text.replace(value, "***")
    return text
