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
# The registered values. Replaced, never changed in place, so readers need no lock.
_registered: list[frozenset[str]] = [frozenset()]
#: What may stand between two characters of an echoed secret: a reply that splits a
#: signature into groups (by blanks, tabs, blank lines, punctuation, invisible characters
#: such as a zero-width space or a soft hyphen) still shows it.
_GAP_CHARS = r"\s:._,;/|\u00ad\u200b-\u200d\u2060\ufeff-"
_GAP = f"[{_GAP_CHARS}]{{0,8}}"
_ALL_GAPS = re.compile(f"[{_GAP_CHARS}]+")
#: A secret shorter than this is refused by the configuration: masking it would blank out
#: ordinary words.
SHORTEST = 6
# Per value: its pattern (gaps allowed between characters, any letter case) and its
# squeezed form, each made on first need. One pattern per value, not one for all: Python
# compiles a large alternation of such patterns in seconds, and a daemon registers a
# signature per account.
_patterns: dict[str, re.Pattern[str]] = {}
_squeezed: dict[str, str] = {}


def register(value: str) -> None:
    """Never let `value` reach a log line, a stored row or the terminal."""
    # Very short values would blank out ordinary words; secrets are long.
    if len(value) >= SHORTEST:
        with _lock:
            if value not in _registered[0]:
                _registered[0] = _registered[0] | {value}


def _squeeze(text: str) -> str:
    return _ALL_GAPS.sub("", text).casefold()


def _pattern(value: str) -> re.Pattern[str]:
    found = _patterns.get(value)
    if found is None:
        found = re.compile(_GAP.join(re.escape(char) for char in value), re.IGNORECASE)
        _patterns[value] = found
    return found


def _candidates(text: str) -> list[str]:
    """Registered values that `text` may show, longest first (a secret containing another
    is masked whole): a cheap test on the text without gaps and case, before any pattern."""
    values = _registered[0]
    if not values:
        return []
    squeezed = _squeeze(text)
    found = []
    for value in values:
        if _folded(value) in squeezed:
            found.append(value)
    return sorted(found, key=len, reverse=True)


def longest() -> int:
    """How many characters an echo of the longest registered secret can span, its groups
    split by gaps (0 when there is none)."""
    return 9 * max(map(len, _registered[0]), default=0)


#: A run of letters and digits this long that is part of a registered secret (half a
#: signature quoted back) is masked too.
_PIECE = re.compile(r"[0-9A-Za-z]{12,}")


def mask_registered(text: str) -> str:
    """`text` with every registered secret (in any case, even split into groups) replaced
    by '***', and every run of 12 or more letters and digits that is a piece of one."""
    for value in _candidates(text):
        text = _pattern(value).sub("***", text)
    values = _registered[0]
    if not values:
        return text
    joined = _joined(values)

    def piece(match: re.Match[str]) -> str:
        return "***" if match.group().casefold() in joined else match.group()

    return _PIECE.sub(piece, text)


_joined_cache: list[tuple[frozenset[str], str]] = [(frozenset(), "")]


def _joined(values: frozenset[str]) -> str:
    """Every value squeezed, one text apart by NULs: one search finds a piece of any."""
    cached, joined = _joined_cache[0]
    if cached is not values:
        joined = "\0".join(_folded(value) for value in values)
        _joined_cache[0] = (values, joined)
    return joined


def _folded(value: str) -> str:
    found = _squeezed.get(value)
    if found is None:
        found = _squeezed[value] = _squeeze(value)
    return found


def inside_registered(text: str) -> bool:
    """Whether `text`, 8 characters or more, is a piece of a registered secret (half a
    signature sent back as a currency name)."""
    if len(text) < 8:
        return False
    folded = text.casefold()
    return any(folded in value.casefold() for value in _registered[0])


def holds_registered(text: str) -> bool:
    """Whether `text` shows a registered secret."""
    return any(_pattern(value).search(text) for value in _candidates(text))
