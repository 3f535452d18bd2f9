"""A wrapper that keeps secret strings out of reprs, and the registry of secret values that
`text.redact` masks wherever they might appear (defence in depth)."""

from __future__ import annotations

import re
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
# The registered values, and one pattern finding any of them. Replaced, never changed in
# place, so readers need no lock.
_registered: list[tuple[frozenset[str], re.Pattern[str] | None]] = [(frozenset(), None)]
#: What may stand between two characters of an echoed secret: a reply that splits a
#: signature into groups (by blanks, tabs, blank lines, punctuation, invisible characters
#: such as a zero-width space or a soft hyphen) still shows it.
_GAP = r"[\s:._,;/|\u00ad\u200b-\u200d\u2060\ufeff-]{0,8}"
#: A secret shorter than this is refused by the configuration: masking it would blank out
#: ordinary words.
SHORTEST = 6


def register(value: str) -> None:
    """Never let `value` reach a log line, a stored row or the terminal."""
    # Very short values would blank out ordinary words; secrets are long.
    if len(value) >= SHORTEST:
        with _lock:
            values = _registered[0][0]
            if value not in values:
                _registered[0] = _matching(values | {value})


def _matching(values: frozenset[str]) -> tuple[frozenset[str], re.Pattern[str]]:
    # Longest first, so a secret containing another is masked whole; any letter case (a
    # hex signature echoed in lower case is the same signature).
    alternatives = (
        _GAP.join(re.escape(char) for char in value)
        for value in sorted(values, key=len, reverse=True)
    )
    return values, re.compile("|".join(alternatives), re.IGNORECASE)


def longest() -> int:
    """How many characters an echo of the longest registered secret can span, its groups
    split by gaps (0 when there is none)."""
    return 9 * max(map(len, _registered[0][0]), default=0)


def mask_registered(text: str) -> str:
    """`text` with every registered secret (in any case, even split into groups) replaced
    by '***'."""
    pattern = _registered[0][1]
    return text if pattern is None else pattern.sub("***", text)


def inside_registered(text: str) -> bool:
    """Whether `text`, 8 characters or more, is a piece of a registered secret (half a
    signature sent back as a currency name)."""
    if len(text) < 8:
        return False
    folded = text.casefold()
    return any(folded in value.casefold() for value in _registered[0][0])


def holds_registered(text: str) -> bool:
    """Whether `text` shows a registered secret."""
    pattern = _registered[0][1]
    return pattern is not None and pattern.search(text) is not None
