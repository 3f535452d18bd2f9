"""Loading the settings: defaults, then a TOML file, then environment variables.

Where settings come from, later ones winning:
  1. the defaults declared in settings.py
  2. the config file: --config PATH, else $RECORDER_CONFIG, else ./recorder.toml if present
  3. environment variables: RECORDER_<KEY> for every key (see `environment()`), and
     COINW_API_KEY / COINW_SECRET_KEY(_FILE) for an account named `default`

Every mistake is a ConfigError naming the key and what to do. Secrets are wrapped in
`Secret` as soon as they are read, so no repr of a settings object shows them.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from recorder.config import readers
from recorder.config.settings import (
    BALANCE_SOURCES,
    DEFAULT_BUFFER_FILE,
    SECTIONS,
    AccountConfig,
    NotifyRule,
    Settings,
    keys,
)
from recorder.errors import ConfigError
from recorder.secret import Secret
from recorder.values import Credentials

DEFAULT_CONFIG_NAME = "recorder.toml"

TOP_KEYS = (*(name for name, _, _ in keys(Settings)), *SECTIONS, "notify", "accounts")
ACCOUNT_KEYS = (
    "name",
    "api_key",
    "api_key_env",
    "api_key_file",
    "secret_key",
    "secret_key_env",
    "secret_key_file",
    "balance_source",
)
NOTIFY_KEYS = ("url", "command", "accounts", "currencies", "min_abs_change", "min_rel_change")
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}")


# -- secrets -----------------------------------------------------------------------------


def readable_by_others(path: Path) -> bool:
    """True if users other than the owner may read the file."""
    try:
        return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


def _permission_warning(path: Path) -> str:
    return f"{path} holds a secret and other users can read it; restrict it with: chmod 600 {path}"


def _read_secret_file(where: str, path_text: str, base: Path, warnings: list[str]) -> str:
    path = (base / Path(path_text).expanduser()).resolve()
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
    if readable_by_others(path):
        warnings.append(_permission_warning(path))
    return value


def _credential(
    where: str,
    table: Mapping[str, Any],
    field_name: str,
    *,
    environ: Mapping[str, str],
    base: Path,
    warnings: list[str],
) -> str | None:
    """A key read from exactly one of `<field>`, `<field>_env`, `<field>_file`."""
    sources = [s for s in (field_name, f"{field_name}_env", f"{field_name}_file") if s in table]
    if len(sources) > 1:
        raise ConfigError(f"{where} sets both {sources[0]} and {sources[1]}; keep one.")
    if not sources:
        return None
    source = sources[0]
    value = readers.text(f"{where}.{source}", table[source])
    if source.endswith("_env"):
        found = environ.get(value, "").strip()
        if not found:
            raise ConfigError(
                f"{where}.{source} names the environment variable {value}, which is not set."
            )
        return found
    if source.endswith("_file"):
        return _read_secret_file(f"{where}.{source}", value, base, warnings)
    return value


def _key_text(where: str, value: str) -> str:
    """A key as it goes into a request and its signature: printable UTF-8 text, one word
    (bytes that are not UTF-8 arrive as lone surrogates and could never be sent)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{where} holds bytes that are not UTF-8 text; check the key.") from None
    if not value.isprintable() or any(c.isspace() for c in value):
        raise ConfigError(f"{where} holds spaces or control characters; check the key.")
    return value


# -- loading -----------------------------------------------------------------------------


def find_config_file(explicit: Path | None, environ: Mapping[str, str], cwd: Path) -> Path | None:
    """The config file to read, or None to run on environment variables alone."""
    if explicit is not None:
        return explicit
    if environ.get("RECORDER_CONFIG"):
        return Path(environ["RECORDER_CONFIG"])
    default = cwd / DEFAULT_CONFIG_NAME
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"The config file {str(path)!r} does not exist.") from None
    except OSError as error:
        raise ConfigError(
            f"The config file {str(path)!r} cannot be read ({error.strerror})."
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"The config file {str(path)!r} is not valid TOML ({error}).") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"The config file {str(path)!r} is not UTF-8 text (byte {error.start}); save it "
            "as UTF-8."
        ) from None


def _values(
    cls: type, table: Mapping[str, Any], where: str, environ: Mapping[str, str]
) -> dict[str, Any]:
    """The settings `cls` declares, read from `table` (the file), then the environment."""
    values: dict[str, Any] = {}
    for name, _, key in keys(cls):
        if name in table:
            values[name] = key.read(f"{name} in {where}", table[name])
        for variable in key.env:
            given = environ.get(variable, "").strip()
            if given:
                values[name] = key.read(f"{variable} (for {name})", key.from_env(given))
                break
    return values


def _account(
    index: int, table: Any, environ: Mapping[str, str], base: Path, warnings: list[str]
) -> AccountConfig:
    where = f"accounts[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table with a name and keys.")
    readers.check_keys(where, table, ACCOUNT_KEYS)
    if "name" not in table:
        raise ConfigError(f'{where} has no name; add name = "main" or similar.')
    name = readers.text(f"{where}.name", table["name"])
    if not _ACCOUNT_NAME.fullmatch(name):
        raise ConfigError(
            f"{where}.name {name!r} may hold only letters, digits and . _ @ - (at most 100)."
        )
    where = f"account {name!r}"
    sources = {"environ": environ, "base": base, "warnings": warnings}
    api_key = _credential(where, table, "api_key", **sources)  # type: ignore[arg-type]
    secret = _credential(where, table, "secret_key", **sources)  # type: ignore[arg-type]
    if api_key is None:
        raise ConfigError(f"{where} has no API key: set api_key, api_key_env or api_key_file.")
    if secret is None:
        raise ConfigError(f"{where} has no secret key: set secret_key_env or secret_key_file.")
    api_key = _key_text(f"The API key of {where}", api_key)
    secret = _key_text(f"The secret key of {where}", secret)
    source = readers.choice(
        f"{where}.balance_source", table.get("balance_source", "balances"), BALANCE_SOURCES
    )
    return AccountConfig(name, Credentials(api_key, Secret(secret)), source)


def _notify_rule(at: str, table: Any) -> NotifyRule:
    if not isinstance(table, dict):
        raise ConfigError(f"{at} must be a table with a url or a command.")
    readers.check_keys(at, table, NOTIFY_KEYS)
    url = readers.webhook_url(f"url of {at}", table["url"]) if "url" in table else None
    command = table.get("command", [])
    if isinstance(command, str):
        command = [command]
    if not isinstance(command, list) or not all(isinstance(c, str) and c for c in command):
        raise ConfigError(
            f'command of {at} must be a list of strings, e.g. ["/usr/local/bin/alert", "--quiet"].'
        )
    if url is None and not command:
        raise ConfigError(f"{at} has neither a url nor a command; give one.")
    thresholds = {
        key: readers.decimal(f"{key} of {at}", table[key])
        for key in ("min_abs_change", "min_rel_change")
        if key in table
    }
    return NotifyRule(
        url=url,
        command=tuple(command),
        accounts=readers.names(f"accounts of {at}", table.get("accounts", [])),
        currencies=tuple(
            c.upper() for c in readers.names(f"currencies of {at}", table.get("currencies", []))
        ),
        **thresholds,
    )


def _notify_rules(where: str, tables: Any) -> tuple[NotifyRule, ...]:
    if not isinstance(tables, list):
        raise ConfigError(f"notify in {where} must be written as [[notify]] tables.")
    return tuple(
        _notify_rule(f"notify[{index}] in {where}", table) for index, table in enumerate(tables, 1)
    )


def _section(name: str, where: str, document: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    cls = SECTIONS[name]
    table = document.get(name, {})
    at = f"[{name}] in {where}"
    if not isinstance(table, dict):
        raise ConfigError(f"{at} must be a table.")
    readers.check_keys(at, table, tuple(n for n, _, _ in keys(cls)))
    return cls(**_values(cls, table, at, environ))


def _default_account(
    environ: Mapping[str, str], base: Path, warnings: list[str]
) -> AccountConfig | None:
    api_key = environ.get("COINW_API_KEY", "").strip()
    secret = environ.get("COINW_SECRET_KEY", "").strip()
    secret_file = environ.get("COINW_SECRET_KEY_FILE", "").strip()
    if secret and secret_file:
        raise ConfigError("Both COINW_SECRET_KEY and COINW_SECRET_KEY_FILE are set; keep one.")
    if secret_file:
        secret = _read_secret_file("COINW_SECRET_KEY_FILE", secret_file, base, warnings)
    if not api_key and not secret:
        return None
    if not api_key:
        raise ConfigError("COINW_SECRET_KEY is set but COINW_API_KEY is not; set both.")
    if not secret:
        raise ConfigError(
            "COINW_API_KEY is set but no secret key: set COINW_SECRET_KEY or COINW_SECRET_KEY_FILE."
        )
    api_key = _key_text("COINW_API_KEY", api_key)
    secret = _key_text("The secret key of the account 'default'", secret)
    return AccountConfig("default", Credentials(api_key, Secret(secret)))


def _accounts(
    document: Mapping[str, Any],
    where: str,
    environ: Mapping[str, str],
    base: Path,
    warnings: list[str],
) -> list[AccountConfig]:
    """The [[accounts]] of the file, with the environment's `default` account applied."""
    raw_accounts = document.get("accounts", [])
    if not isinstance(raw_accounts, list):
        raise ConfigError(f"accounts in {where} must be written as [[accounts]] tables.")
    accounts = [_account(i, t, environ, base, warnings) for i, t in enumerate(raw_accounts, 1)]
    names = [a.name for a in accounts]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"The account name {name!r} is used twice in {where}.")
    from_env = _default_account(environ, base, warnings)
    if from_env is None:
        return accounts
    if "default" in names:
        index = names.index("default")
        accounts[index] = replace(accounts[index], credentials=from_env.credentials)
    elif accounts:
        warnings.append(
            f"COINW_API_KEY is set but {where} defines its own accounts and none is named "
            "'default'; the variable is ignored."
        )
    else:
        accounts.append(from_env)
    return accounts


def _holds_inline_secret(document: Mapping[str, Any]) -> bool:
    accounts = document.get("accounts", [])
    return isinstance(accounts, list) and any(
        isinstance(a, dict) and "secret_key" in a for a in accounts
    )


def load(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Read and check the settings; ConfigError names the first bad key."""
    environ = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    config_path = find_config_file(path, environ, cwd)
    document: dict[str, Any] = _read_toml(config_path) if config_path else {}
    where = str(config_path) if config_path else "the configuration"
    base = config_path.resolve().parent if config_path else cwd
    warnings: list[str] = []
    readers.check_keys(where, document, TOP_KEYS)

    values = _values(Settings, document, where, environ)
    for name in SECTIONS:
        values[name] = _section(name, where, document, environ)
    if "notify" in document:
        values["notify"] = _notify_rules(where, document["notify"])
    accounts = _accounts(document, where, environ, base, warnings)

    # The journal path is relative to the config file, like secret files; "" turns it off.
    buffer_file = values.pop("buffer_file", DEFAULT_BUFFER_FILE)
    values["buffer_file"] = (base / Path(buffer_file).expanduser()) if buffer_file else None

    if config_path and _holds_inline_secret(document) and readable_by_others(config_path):
        warnings.append(_permission_warning(config_path))

    return Settings(
        **values,
        accounts=tuple(accounts),
        config_path=config_path,
        warnings=tuple(warnings),
    )
