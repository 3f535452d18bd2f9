"""Loading the settings: defaults, then a TOML file, then environment variables.

Where settings come from, later ones winning:
  1. the defaults declared in settings.py
  2. the config file: --config PATH, else $RECORDER_CONFIG, else ./recorder.toml if present
  3. environment variables: RECORDER_<KEY> for every key (see `environment()`), and
     COINW_API_KEY / COINW_SECRET_KEY(_FILE) for an account named `default`

Relative paths follow paths.py: in the file, against the file's folder; in a variable,
against the working folder. Every mistake is a ConfigError naming the key and what to do.
Secrets are wrapped in `Secret` as soon as they are read, so no repr of a settings object
shows them.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from recorder.config import paths, readers, reference, secrets
from recorder.config.settings import (
    ACCOUNT_KEY_DOCS,
    BALANCE_SOURCES,
    DEFAULT_BUFFER_FILE,
    DEFAULT_DATABASE_FILE,
    SECTIONS,
    AccountConfig,
    NotifyRule,
    Settings,
    keys,
)
from recorder.errors import ConfigError
from recorder.secret import SHORTEST, Secret
from recorder.values import Credentials

DEFAULT_CONFIG_NAME = "recorder.toml"

TOP_KEYS = (*(name for name, _, _ in keys(Settings)), *SECTIONS, "notify", "accounts")
ACCOUNT_KEYS = tuple(
    key for keys_text, _ in ACCOUNT_KEY_DOCS for key in keys_text.replace(",", " ").split()
)
NOTIFY_KEYS = (
    "url",
    "command",
    "accounts",
    "currencies",
    "min_abs_change",
    "min_rel_change",
    "batch",
)
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}")
#: The account the COINW_* variables configure, and those variables.
ENVIRONMENT_ACCOUNT = "default"
ENVIRONMENT_KEYS = ("COINW_API_KEY", "COINW_SECRET_KEY", "COINW_SECRET_KEY_FILE")


# -- loading -----------------------------------------------------------------------------


def find_config_file(explicit: Path | None, environ: Mapping[str, str], cwd: Path) -> Path | None:
    """The config file to read, or None to run on environment variables alone."""
    if explicit is not None:
        return explicit
    if environ.get("RECORDER_CONFIG"):
        return Path(environ["RECORDER_CONFIG"])
    default = cwd / DEFAULT_CONFIG_NAME
    try:
        return default if default.is_file() else None
    except OSError as error:
        # Going on without it could mean another database than the one it names.
        raise ConfigError(
            f"Cannot check whether the default config file {str(default)!r} exists "
            f"({error.strerror}); run from a folder this user can read, or name the config "
            "file with --config or RECORDER_CONFIG."
        ) from None


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
            if given or (key.empty_is_a_value and variable in environ):
                values[name] = key.read(f"{variable} (for {name})", key.from_env(given))
                break
    return values


def _account(index: int, table: Any, found: secrets.Found) -> AccountConfig:
    """One [[accounts]] table. The account named `default` may leave its keys to the
    COINW_* variables (`_accounts` fills them in); every other one needs both keys."""
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
    api_key = secrets.key_from(where, table, "api_key", found) or ""
    secret = secrets.key_from(where, table, "secret_key", found) or ""
    if name != ENVIRONMENT_ACCOUNT and found.read:
        _require_keys(where, api_key, secret)
    source = readers.choice(
        f"{where}.balance_source", table.get("balance_source", "balances"), BALANCE_SOURCES
    )
    return AccountConfig(name, Credentials(api_key, Secret(secret)), source)


def _require_keys(where: str, api_key: str, secret: str, *, environment: bool = False) -> None:
    also = " (or COINW_API_KEY)" if environment else ""
    if not api_key:
        raise ConfigError(
            f"{where} has no API key: set api_key, api_key_credential, api_key_env or "
            f"api_key_file{also}."
        )
    also = " (or COINW_SECRET_KEY / COINW_SECRET_KEY_FILE)" if environment else ""
    if not secret:
        raise ConfigError(
            f"{where} has no secret key: set secret_key_credential, secret_key_file or "
            f"secret_key_env{also}."
        )
    if len(secret) < SHORTEST:
        raise ConfigError(
            f"{where}'s secret key is {len(secret)} characters long, too short to be a CoinW "
            "key (or to be kept out of logs); check that the whole key was copied."
        )


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
        batch=readers.boolean(f"batch of {at}", table.get("batch", False)),
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


def _accounts(
    document: Mapping[str, Any], where: str, found: secrets.Found, cwd: Path
) -> list[AccountConfig]:
    """The [[accounts]] of the file, with the COINW_* variables applied to the account
    named `default` (which they create when the file defines no account)."""
    raw_accounts = document.get("accounts", [])
    if not isinstance(raw_accounts, list):
        raise ConfigError(f"accounts in {where} must be written as [[accounts]] tables.")
    accounts = [_account(i, t, found) for i, t in enumerate(raw_accounts, 1)]
    names = [a.name for a in accounts]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"The account name {name!r} is used twice in {where}.")
    if not found.read:
        if not accounts and any(found.environ.get(v, "").strip() for v in ENVIRONMENT_KEYS):
            accounts.append(AccountConfig(ENVIRONMENT_ACCOUNT, Credentials("", Secret(""))))
        return accounts
    api_key, secret, secret_variable = secrets.from_environment(found.environ, cwd, found.warnings)
    if ENVIRONMENT_ACCOUNT in names:
        index = names.index(ENVIRONMENT_ACCOUNT)
        given = accounts[index].credentials
        credentials = Credentials(
            api_key or given.api_key, Secret(secret) if secret else given.secret_key
        )
        _require_keys(
            f"account {ENVIRONMENT_ACCOUNT!r}",
            credentials.api_key,
            credentials.secret_key.reveal(),
            environment=True,
        )
        accounts[index] = replace(accounts[index], credentials=credentials)
    elif accounts and (api_key or secret):
        variable = "COINW_API_KEY" if api_key else secret_variable
        found.warnings.append(
            f"{variable} is set but {where} defines its own accounts and none is named "
            f"'{ENVIRONMENT_ACCOUNT}'; the variable is ignored."
        )
    elif api_key and secret:
        _require_keys(where, api_key, secret, environment=True)
        accounts.append(AccountConfig(ENVIRONMENT_ACCOUNT, Credentials(api_key, Secret(secret))))
    elif api_key:
        raise ConfigError(
            "COINW_API_KEY is set but no secret key: set COINW_SECRET_KEY or COINW_SECRET_KEY_FILE."
        )
    elif secret:
        raise ConfigError(f"{secret_variable} is set but COINW_API_KEY is not; set both.")
    return accounts


def _holds_inline_secret(document: Mapping[str, Any]) -> bool:
    accounts = document.get("accounts", [])
    return isinstance(accounts, list) and any(
        isinstance(a, dict) and "secret_key" in a for a in accounts
    )


def _paths(
    values: dict[str, Any],
    environ: Mapping[str, str],
    config_folder: Path | None,
    cwd: Path,
) -> None:
    """Make the database file and the journal absolute (paths.py says against what)."""
    default_folder = paths.default_folder(environ, config_folder, cwd)

    from_environment = {
        name
        for name, _, key in keys(Settings)
        if any(environ.get(variable, "").strip() for variable in key.env)
    }

    def base(name: str) -> Path:
        return cwd if name in from_environment else (config_folder or cwd)

    if "database_url" in values:
        given_url = values["database_url"]
        values["database_url"] = paths.resolve_sqlite_url(given_url, base("database_url"))
    else:
        values["database_url"] = f"sqlite:///{default_folder / DEFAULT_DATABASE_FILE}"
    if "buffer_file" in values:
        given = values.pop("buffer_file")  # "" turns the journal off
        values["buffer_file"] = paths.resolve(given, base("buffer_file")) if given else None
    else:
        values["buffer_file"] = default_folder / DEFAULT_BUFFER_FILE


def load(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    *,
    read_keys: bool = True,
) -> Settings:
    """Read and check the settings; ConfigError names the first bad key. With
    `read_keys` False the accounts' keys are not read (commands that only read the history need the
    accounts' names, and run where the service's credentials are not)."""
    environ = os.environ if environ is None else environ
    cwd = (cwd or Path.cwd()).absolute()
    config_path = find_config_file(path, environ, cwd)
    if config_path is not None:
        config_path = paths.resolve(str(config_path), cwd)
    document: dict[str, Any] = _read_toml(config_path) if config_path else {}
    where = str(config_path) if config_path else "the configuration"
    config_folder = config_path.parent if config_path else None
    found = secrets.Found(environ, config_folder or cwd, [], read=read_keys)
    found.warnings.extend(reference.unknown_variables(environ))
    readers.check_keys(where, document, TOP_KEYS)

    values = _values(Settings, document, where, environ)
    for name in SECTIONS:
        values[name] = _section(name, where, document, environ)
    if "notify" in document:
        values["notify"] = _notify_rules(where, document["notify"])
    accounts = _accounts(document, where, found, cwd)
    _paths(values, environ, config_folder, cwd)

    if config_path and _holds_inline_secret(document) and secrets.readable_by_everyone(config_path):
        found.warnings.append(secrets.permission_warning(config_path))

    return Settings(
        **values,
        accounts=tuple(accounts),
        config_path=config_path,
        warnings=tuple(found.warnings),
    )
