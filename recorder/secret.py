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
#: What may stand between two characters of an echoed secret: a reply that splits a
#: signature into groups (by blanks, tabs, blank lines, punctuation, invisible characters
#: such as a zero-width space or a soft hyphen) still shows it.
_GAP_CHARS = r"\s:._,;/|\u00ad\u200b-\u200d\u2060\ufeff-"
_GAP = f"[{_GAP_CHARS}]{{0,8}}"
_ALL_GAPS = re.compile(f"[{_GAP_CHARS}]+")
#: A secret shorter than this is refused by the configuration: masking it would blank out
#: ordinary words.
SHORTEST = 6
#: A run of letters and digits this long that is part of a registered secret (half a
#: signature quoted back) is masked too.
_PIECE = re.compile(r"[0-9A-Za-z]{12,}")


def _squeeze(text: str) -> str:
    """`text` without gaps, in one letter case: the form the cheap tests compare."""
    return _ALL_GAPS.sub("", text).casefold()


# The registered values, each with its squeezed form, and all squeezed forms joined by NULs
# (one search finds a piece of any). Replaced, never changed in place: readers need no lock.
_registered: list[tuple[dict[str, str], str]] = [({}, "")]
# Each value's pattern (gaps allowed between characters, any letter case), made on first
# need. One pattern per value, not one alternation of all: Python compiles such an
# alternation in seconds, and a daemon registers a signature per account.
_patterns: dict[str, re.Pattern[str]] = {}


def register(value: str) -> None:
    """Never let `value` reach a log line, a stored row or the terminal."""
    # Very short values would blank out ordinary words; secrets are long.
    if len(value) >= SHORTEST:
        with _lock:
            values, joined = _registered[0]
            if value not in values:
                squeezed = _squeeze(value)
                _registered[0] = ({**values, value: squeezed}, f"{joined}\0{squeezed}")


def _pattern(value: str) -> re.Pattern[str]:
    found = _patterns.get(value)
    if found is None:
        found = re.compile(_GAP.join(re.escape(char) for char in value), re.IGNORECASE)
        _patterns[value] = found
    return found


def _candidates(text: str) -> list[str]:
    """Registered values that `text` may show, longest first (a secret containing another
    is masked whole): a cheap test on the squeezed text, before any pattern."""
    values = _registered[0][0]
    if not values:
        return []
    squeezed = _squeeze(text)
    return sorted((v for v, s in values.items() if s in squeezed), key=len, reverse=True)


def _is_piece(text: str) -> bool:
    """Whether `text` is part of a registered secret (in any case, gaps aside)."""
    return _squeeze(text) in _registered[0][1]


def longest() -> int:
    """How many characters an echo of the longest registered secret can span, its groups
    split by gaps (0 when there is none)."""
    return 9 * max(map(len, _registered[0][0]), default=0)


def mask_registered(text: str) -> str:
    """`text` with every registered secret (in any case, even split into groups) replaced
    by '***', and every run of 12 or more letters and digits that is a piece of one."""
    for value in _candidates(text):
        text = _pattern(value).sub("***", text)
    if not _registered[0][0]:
        return text
    return _PIECE.sub(lambda run: "***" if _is_piece(run.group()) else run.group(), text)


def inside_registered(text: str) -> bool:
    """Whether `text`, 8 characters or more, is a piece of a registered secret (half a
    signature sent back as a currency name)."""
    return len(text) >= 8 and _is_piece(text)


def holds_registered(text: str) -> bool:
    """Whether `text` shows a registered secret."""
    return any(_pattern(value).search(text) for value in _candidates(text))
