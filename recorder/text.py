"""Text from outside made safe to show and to store: one function, `safe`, for all of it.

Anything that did not come from the recorder itself (an exchange's message or error page,
a database's or library's error text, a journal line) may hold a request signature, a URL
with a password, control characters that forge log lines or move a terminal's cursor, or
megabytes. Before it reaches a log line, the terminal, a stored row, an export, a notify
payload or a metrics label, it passes `safe`:

- secrets masked: the values of `sign=`, `api_key=` and `secret_key=`, the user and
  password of any URL, and every secret the recorder was configured with (secret.py);
- control characters escaped: C0 (newlines included), DEL, C1, lone surrogates, Unicode's
  line and paragraph separators, direction overrides and invisible format characters
  become visible `\\xNN` / `\\uNNNN` escapes, so one message stays one line and reads
  as it is stored;
- length bounded: the first `limit` characters and "... (N more)".

Redaction comes first, on the whole text (or a prefix longer than what is shown by more
than any secret): a signature cut in half before redaction would no longer be recognised.
docs/security.md says what is trusted and what is not.
"""

from __future__ import annotations

import re

from recorder import secret

#: How much of a text from outside is kept, by default.
LIMIT = 300
#: A whole error message built around texts from outside (each bounded on its own).
ERROR_LIMIT = 1000
#: How far past its limit a text is read (masked and escaped) before the rest is only
#: counted.
READ_MARGIN = 4096
MASK = "***"

# `sign=...`, `api_key=...` wherever they appear (a query string, a message echoing one,
# JSON), up to the next separator; the names in any case, URL-encoded or not. A backslash
# ends a value too, so text that is already escaped loses nothing more when masked again.
_PARAMETER = re.compile(
    r"(?i)(?<![A-Za-z0-9_])((?:sign|api_?key|secret_?key)(?:%3D|=|\"?\s*:\s*\"?))"
    r"([^&\s\"'<>,;}\\]+)"
)
# scheme://user:password@host -> scheme://***@host
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s?#]+@")
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff"
    # Unicode's own line and paragraph separators (a line break to most log readers),
    # direction overrides and isolates (text shown in another order than it is), and
    # invisible format characters (zero-width, soft hyphen, byte order mark).
    "\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]"
)


def redact(value: str) -> str:
    """`value` with signatures, keys, URL passwords and configured secrets masked."""
    value = _PARAMETER.sub(lambda m: m.group(1) + MASK, value)
    value = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", value)
    return secret.mask_registered(value)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(value: str) -> str:
    """Control characters and lone surrogates as visible escapes: one line, no ESC."""
    return _CONTROL.sub(_escape, value)


def bounded(value: str, limit: int = LIMIT) -> str:
    """At most `limit` characters, then "... (N more)"."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}... ({len(value) - limit:,} more)"


def safe(value: object, limit: int = LIMIT) -> str:
    """Text from outside, ready for a log line, the terminal or the database."""
    shown, unread = _masked(str(value), limit)
    if not unread:
        return bounded(shown, limit)
    return f"{shown[:limit]}... ({len(shown) - limit + unread:,} more)"


def _masked(raw: str, limit: int) -> tuple[str, int]:
    """`raw` masked and escaped, read only as far as showing `limit` characters of it
    needs; and how many characters were left unread."""
    # Redact before bounding: a signature cut in half would no longer be recognised.
    # Escape before bounding too, so the bound holds for what is shown.
    window = limit + READ_MARGIN
    if len(raw) > window:
        # Megabytes from outside are counted, not read: masking them against every
        # registered secret would cost seconds. What the window's end may cut in half (a
        # secret, a URL's password) is at most 6 characters shown for each read, so it is
        # out of sight when that much is left past the limit; else the whole text is read.
        shown = escape_controls(redact(raw[:window]))
        if len(shown) - limit >= 6 * max(secret.longest(), 256):
            return shown, len(raw) - window
    return escape_controls(redact(raw)), 0


def one_line(value: object, limit: int = LIMIT) -> str:
    """`safe`, with runs of whitespace (line breaks of a multi-line error) as one space."""
    return safe(" ".join(str(value).split()), limit)
