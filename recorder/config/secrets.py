"""Where an account's keys come from, read strictly.

Each key of an [[accounts]] table comes from exactly one source: the value itself
(`secret_key`), an environment variable (`secret_key_env`), a file (`secret_key_file`,
relative to the config file's folder) or a systemd credential (`secret_key_credential`:
a file in $CREDENTIALS_DIRECTORY that systemd copied there from `LoadCredential=`, so the
service user never reads the original). The same goes for the API key.

A file holding a secret may be readable by its owner and its group (the documented layout
is `0640 root:recorder`: root writes it, the service's group reads it); one that every
user of the machine can read gets a warning with the fix.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.config import paths, readers
from recorder.errors import ConfigError

SOURCES = ("", "_env", "_file", "_credential")
_CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,255}")


@dataclass(frozen=True)
class Found:
    """Where a secret is read from, for the checks that follow."""

    environ: Mapping[str, str]
    #: The folder relative `*_file` paths start from.
    base: Path
    warnings: list[str]
    #: False for commands that only read the history: they need names, not keys.
    read: bool = True


def readable_by_everyone(path: Path) -> bool:
    """True if users other than the owner and the file's group may read it."""
    try:
        return bool(path.stat().st_mode & stat.S_IRWXO)
    except OSError:
        return False


def permission_warning(path: Path) -> str:
    """The warning for a secret every user can read, with its fix."""
    return (
        f"{path} holds a secret and every user of this machine can read it; restrict it "
        f"with: chmod o-rwx {path}"
    )


def read_file(where: str, path: Path, warnings: list[str], *, check_mode: bool = True) -> str:
    """A secret held in a file (surrounding blanks and the final newline removed)."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(
            f"{where}: the file {str(path)!r} is not UTF-8 text; it should hold the key alone."
        ) from None
    except FileNotFoundError:
        raise ConfigError(f"{where}: the file {str(path)!r} does not exist.") from None
    except OSError as error:
        raise ConfigError(
            f"{where}: the file {str(path)!r} cannot be read ({error.strerror})."
        ) from None
    if not value:
        raise ConfigError(f"{where}: the file {str(path)!r} is empty.")
    if check_mode and readable_by_everyone(path):
        warnings.append(permission_warning(path))
    return value


def read_credential(where: str, name: str, found: Found) -> str:
    """A systemd credential: the file `name` in $CREDENTIALS_DIRECTORY."""
    if not _CREDENTIAL_NAME.fullmatch(name):
        raise ConfigError(
            f"{where} must be the name of a systemd credential (letters, digits, . _ @ -), "
            f"not a path (got {name!r})."
        )
    folder = found.environ.get("CREDENTIALS_DIRECTORY", "").strip()
    if not folder:
        raise ConfigError(
            f"{where} names the systemd credential {name!r}, but $CREDENTIALS_DIRECTORY is "
            f"not set: run the recorder from a unit with LoadCredential={name}:/path/to/file "
            "(see contrib/recorder.service), or use a _file or _env key instead."
        )
    path = Path(folder) / name
    try:
        present = path.is_file()
    except OSError as error:  # the folder itself cannot be searched
        raise ConfigError(
            f"{where} names the systemd credential {name!r}, but $CREDENTIALS_DIRECTORY "
            f"({folder}) cannot be read by this user ({error.strerror}); run the recorder as "
            "the user of the unit that loaded it."
        ) from None
    if not present:
        raise ConfigError(
            f"{where} names the systemd credential {name!r}, which is not in "
            f"$CREDENTIALS_DIRECTORY ({folder}); add LoadCredential={name}:/path/to/file to "
            "the unit."
        )
    # systemd made this copy readable by the service user only: no mode to check.
    return read_file(where, path, found.warnings, check_mode=False)


def checked(where: str, value: str) -> str:
    """A key as it goes into a request and its signature: printable UTF-8 text, one word
    (bytes that are not UTF-8 arrive as lone surrogates and could never be sent)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{where} holds bytes that are not UTF-8 text; check the key.") from None
    if not value.isprintable() or any(c.isspace() for c in value):
        raise ConfigError(f"{where} holds spaces or control characters; check the key.")
    return value


def key_from(where: str, table: Mapping[str, Any], field_name: str, found: Found) -> str | None:
    """A key read from exactly one of `<field>`, `<field>_env`, `<field>_file`,
    `<field>_credential`; None when the table gives none of them."""
    key = _read_key(where, table, field_name, found)
    return None if key is None else checked(f"The {field_name} of {where}", key)


def _read_key(where: str, table: Mapping[str, Any], field_name: str, found: Found) -> str | None:
    given = [field_name + suffix for suffix in SOURCES if field_name + suffix in table]
    if len(given) > 1:
        raise ConfigError(f"{where} sets both {given[0]} and {given[1]}; keep one.")
    if not given or not found.read:
        return None
    source = given[0]
    value = readers.text(f"{where}.{source}", table[source])
    if source.endswith("_env"):
        found_value = found.environ.get(value, "").strip()
        if not found_value:
            raise ConfigError(
                f"{where}.{source} names the environment variable {value}, which is not set."
            )
        return found_value
    if source.endswith("_file"):
        return read_file(f"{where}.{source}", paths.resolve(value, found.base), found.warnings)
    if source.endswith("_credential"):
        return read_credential(f"{where}.{source}", value, found)
    return value


def from_environment(
    environ: Mapping[str, str], cwd: Path, warnings: list[str]
) -> tuple[str | None, str | None, str]:
    """(API key, secret key, the variable the secret came from) given by COINW_API_KEY and
    COINW_SECRET_KEY or COINW_SECRET_KEY_FILE, for the account named `default`."""
    api_key = environ.get("COINW_API_KEY", "").strip() or None
    secret = environ.get("COINW_SECRET_KEY", "").strip() or None
    secret_file = environ.get("COINW_SECRET_KEY_FILE", "").strip()
    if secret and secret_file:
        raise ConfigError("Both COINW_SECRET_KEY and COINW_SECRET_KEY_FILE are set; keep one.")
    variable = "COINW_SECRET_KEY"
    if secret_file:
        variable = "COINW_SECRET_KEY_FILE"
        secret = read_file(variable, paths.resolve(secret_file, cwd), warnings)
    return (
        None if api_key is None else checked("COINW_API_KEY", api_key),
        None if secret is None else checked(f"The secret key from {variable}", secret),
        variable,
    )
