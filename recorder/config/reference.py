"""What the settings are called: the environment variables the recorder reads, a warning
for a RECORDER_* variable it does not (a misspelt one is otherwise silently ignored), and
the README's tables of keys."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from recorder.config.settings import ACCOUNT_KEY_DOCS, SECTIONS, Settings, keys

#: Variables that are not settings of their own.
SPECIAL_ENVIRONMENT = {
    "RECORDER_CONFIG": "path of the config file",
    "COINW_API_KEY": "the API key of the account named `default`",
    "COINW_SECRET_KEY": "the secret key of the account named `default`",
    "COINW_SECRET_KEY_FILE": "a file holding the secret key of the account named `default`",
    "STATE_DIRECTORY": "set by systemd (`StateDirectory=`): where the SQLite database and the "
    "journal go by default",
    "CREDENTIALS_DIRECTORY": "set by systemd (`LoadCredential=`): where `*_credential` keys "
    "are read",
}


def environment() -> dict[str, str]:
    """Every environment variable the recorder reads -> what it sets."""
    found = dict(SPECIAL_ENVIRONMENT)
    for name, _, key in keys(Settings):
        for variable in key.env:
            found[variable] = name
    for section, cls in SECTIONS.items():
        for name, _, key in keys(cls):
            for variable in key.env:
                found[variable] = f"{name} in [{section}]"
    return found


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def reference_table() -> str:
    """The README's table of every key: its environment variable, default and meaning,
    rendered from the declarations (tests/test_docs.py checks the README holds it)."""
    lines = [
        "| key | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    tables: list[tuple[str, type]] = [
        ("", Settings),
        *((f"[{s}] ", c) for s, c in SECTIONS.items()),
    ]
    for prefix, cls in tables:
        for name, default, key in keys(cls):
            variables = ", ".join(f"`{v}`" for v in key.env)
            lines.append(f"| {prefix}`{name}` | {variables} | {_shown(default)} | {key.doc} |")
    return "\n".join(lines)


def account_table() -> str:
    """The README's table of the keys of an [[accounts]] table, from settings.py."""
    lines = ["| key | meaning |", "|---|---|"]
    for names, doc in ACCOUNT_KEY_DOCS:
        shown = ", ".join(f"`{name.strip()}`" for name in names.split(","))
        lines.append(f"| {shown} | {doc} |")
    return "\n".join(lines)


#: The fields a [[notify]] command finds in its environment as RECORDER_<FIELD> (a command
#: may well run the recorder itself): not settings, and no misspelling of one.
NOTIFY_FIELDS = (
    "account",
    "currency",
    "change",
    "old_amount",
    "new_amount",
    "delta",
    "taken_at",
    "snapshot_id",
    "text",
    "count",
    "changes",
)
#: Variables of the recorder's own test suite (passed to the commands it runs).
_TEST_PREFIX = "RECORDER_TEST_"


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each RECORDER_* variable that sets nothing, naming the variable it
    was probably meant to be. A warning, not a refusal: another program may use the
    prefix for something of its own."""
    prefix = "RECORDER_"
    known = [name.removeprefix(prefix) for name in environment() if name.startswith(prefix)]
    ignored = {f"RECORDER_{field.upper()}" for field in NOTIFY_FIELDS}
    warnings = []
    for name in sorted(environ):
        if (
            not name.startswith(prefix)
            or name.removeprefix(prefix) in known
            or name in ignored
            or name.startswith(_TEST_PREFIX)
        ):
            continue
        # Compared without the prefix every name shares, which would make all look alike.
        close = difflib.get_close_matches(name.removeprefix(prefix), known, n=1, cutoff=0.6)
        hint = (
            f"did you mean {prefix}{close[0]}?"
            if close
            else "the README lists the variables it reads."
        )
        warnings.append(f"{name} is not a variable the recorder reads and is ignored; {hint}")
    return warnings
