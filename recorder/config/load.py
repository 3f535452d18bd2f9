"""Settings: a TOML file plus environment variables, checked strictly at start.

Where settings come from, later ones winning:
  1. defaults below
  2. the config file: --config PATH, else $RECORDER_CONFIG, else ./recorder.toml if present
  3. environment variables (RECORDER_DATABASE_URL, COINW_API_KEY, ...: see ENVIRONMENT)

Every mistake is a ConfigError naming the key and what to do. Secrets are wrapped in
`Secret` as soon as they are read, so no repr of a settings object shows them.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from recorder.errors import ConfigError
from recorder.secret import Secret
from recorder.sources.coinw.client import Credentials

DEFAULT_DATABASE_URL = "sqlite:///recorder.db"
DEFAULT_BASE_URL = "https://api.coinw.com"
DEFAULT_CONFIG_NAME = "recorder.toml"
DEFAULT_BUFFER_FILE = "recorder-buffer.jsonl"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
BALANCE_SOURCES = ("balances", "complete")

#: Environment variables and the setting each one overrides.
ENVIRONMENT = {
    "RECORDER_CONFIG": "path of the config file",
    "RECORDER_DATABASE_URL": "database_url",
    "RECORDER_INTERVAL_SECONDS": "interval_seconds",
    "RECORDER_TIMEOUT_SECONDS": "timeout_seconds",
    "RECORDER_LOG_LEVEL": "log_level",
    "RECORDER_LOG_FORMAT": "log_format",
    "COINW_BASE_URL": "base_url",
    "COINW_API_KEY": "api key of the account named 'default'",
    "COINW_SECRET_KEY": "secret key of the account named 'default'",
    "COINW_SECRET_KEY_FILE": "file holding the secret key of the account named 'default'",
}

_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}")


@dataclass(frozen=True)
class AccountConfig:
    """One account to record."""

    name: str
    credentials: Credentials = field(repr=False)
    balance_source: str = "balances"

    def __repr__(self) -> str:
        key = self.credentials.api_key
        shown = key[:4] + "..." if len(key) > 8 else "..."
        return (
            f"AccountConfig(name={self.name!r}, api_key={shown!r}, secret_key=Secret('***'), "
            f"balance_source={self.balance_source!r})"
        )


@dataclass(frozen=True)
class Retention:
    """The [retention] table: with keep_all_days None, everything is kept forever."""

    keep_all_days: float | None = None
    keep_one_per: str = "hour"  # beyond keep_all_days: the last snapshot of each hour / day


@dataclass(frozen=True)
class NotifyRule:
    """One [[notify]] table: where to send changes, and which ones."""

    url: str | None = None
    command: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    currencies: tuple[str, ...] = ()
    min_abs_change: Decimal | None = None
    min_rel_change: Decimal | None = None  # 0.05 = 5 % of the old amount

    def __repr__(self) -> str:
        # A webhook URL often carries a token: show only where it goes.
        where = urlsplit(self.url).netloc if self.url else " ".join(self.command[:1])
        return f"NotifyRule({where!r})"


@dataclass(frozen=True)
class MetricsConfig:
    """The [metrics] table: Prometheus metrics on this port (None: off)."""

    port: int | None = None
    address: str = "127.0.0.1"


@dataclass(frozen=True)
class Settings:
    """Everything the recorder was configured with."""

    database_url: str = DEFAULT_DATABASE_URL
    interval_seconds: float = 60.0
    base_url: str = DEFAULT_BASE_URL
    timeout_seconds: float = 10.0
    max_response_bytes: int = 5 * 1024 * 1024
    backoff_base_seconds: float = 1.0
    workers: int = 10
    max_requests_per_second: float = 50.0
    fetch_prices: bool = True
    buffer_file: Path | None = Path(DEFAULT_BUFFER_FILE)
    buffer_max_snapshots: int = 10000
    log_level: str = "INFO"
    log_format: str = "text"
    #: Several recorders share one database: never poll an account without its lock.
    ha: bool = False
    retention: Retention = field(default_factory=Retention)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    notify: tuple[NotifyRule, ...] = ()
    accounts: tuple[AccountConfig, ...] = ()
    config_path: Path | None = None
    #: Problems worth telling the operator that do not stop the recorder.
    warnings: tuple[str, ...] = ()

    def account(self, name: str) -> AccountConfig:
        """The account with this name; ConfigError if there is none."""
        for account in self.accounts:
            if account.name == name:
                return account
        known = ", ".join(a.name for a in self.accounts) or "none"
        raise ConfigError(f"No account named {name!r} is configured (configured: {known}).")

    def require_accounts(self) -> tuple[AccountConfig, ...]:
        """The accounts, or a ConfigError explaining how to add one."""
        if not self.accounts:
            raise ConfigError(
                "No account is configured: set COINW_API_KEY and COINW_SECRET_KEY, or add an "
                "[[accounts]] table to the config file (see config.example.toml)."
            )
        return self.accounts


# -- small strict readers ----------------------------------------------------------------


def _number(where: str, value: Any, *, minimum: float, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, not {_type_name(value)}.")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{where} must be between {minimum:g} and {maximum:g} (got {value}).")
    return float(value)  # float-ok: a duration, not an amount


def _integer(where: str, value: Any, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be a whole number, not {_type_name(value)}.")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{where} must be between {minimum} and {maximum} (got {value}).")
    return value


def _boolean(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, not {_type_name(value)}.")
    return value


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, not {_type_name(value)}.")
    if not value.strip():
        raise ConfigError(f"{where} must not be empty.")
    return value.strip()


def _choice(where: str, value: Any, choices: tuple[str, ...]) -> str:
    text = _text(where, value)
    normalized = text.upper() if choices == LOG_LEVELS else text
    if normalized not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(choices)} (got {text!r}).")
    return normalized


def _url(where: str, value: Any) -> str:
    text = _text(where, value)
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", text):
        raise ConfigError(f"{where} must be an http:// or https:// URL (got {text!r}).")
    return text.rstrip("/")


def _webhook_url(where: str, value: Any) -> str:
    """A webhook URL: query strings allowed (tokens live there), and never echoed back."""
    text = _text(where, value)
    if not re.fullmatch(r"https?://[^\s/?#]+([/?][^\s#]*)?", text):
        raise ConfigError(f"{where} must be an http:// or https:// URL.")
    return text


def _type_name(value: Any) -> str:
    return {
        bool: "true/false",
        str: "a string",
        int: "a whole number",
        float: "a number",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _env_number(text: str) -> Any:
    """Environment values are text; numbers are read strictly (no "inf", no "1e3")."""
    if re.fullmatch(r"[0-9]+", text):
        return int(text)
    if re.fullmatch(r"[0-9]*\.[0-9]+", text):
        return float(text)  # float-ok: a duration, not an amount
    return text  # the reader then says it is not a number


def _check_keys(where: str, table: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(
                f"Unknown key {key!r} in {where}; the known keys are: {', '.join(known)}."
            )


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
    value = _text(f"{where}.{source}", table[source])
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


# -- loading -----------------------------------------------------------------------------

_TOP_KEYS = (
    "database_url",
    "interval_seconds",
    "base_url",
    "timeout_seconds",
    "max_response_bytes",
    "backoff_base_seconds",
    "workers",
    "max_requests_per_second",
    "fetch_prices",
    "buffer_file",
    "buffer_max_snapshots",
    "log_level",
    "log_format",
    "ha",
    "retention",
    "metrics",
    "notify",
    "accounts",
)
_ACCOUNT_KEYS = (
    "name",
    "api_key",
    "api_key_env",
    "api_key_file",
    "secret_key",
    "secret_key_env",
    "secret_key_file",
    "balance_source",
)


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


def _account(
    index: int, table: Any, environ: Mapping[str, str], base: Path, warnings: list[str]
) -> AccountConfig:
    where = f"accounts[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table with a name and keys.")
    _check_keys(where, table, _ACCOUNT_KEYS)
    if "name" not in table:
        raise ConfigError(f'{where} has no name; add name = "main" or similar.')
    name = _text(f"{where}.name", table["name"])
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
    source = _choice(
        f"{where}.balance_source", table.get("balance_source", "balances"), BALANCE_SOURCES
    )
    return AccountConfig(name, Credentials(api_key, Secret(secret)), source)


def _retention(where: str, table: Any) -> Retention:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table: [retention] with keep_all_days = 30.")
    _check_keys(where, table, ("keep_all_days", "keep_one_per"))
    days = table.get("keep_all_days")
    return Retention(
        keep_all_days=None
        if days is None
        else _number(f"keep_all_days of {where}", days, minimum=0, maximum=100_000),
        keep_one_per=_choice(
            f"keep_one_per of {where}", table.get("keep_one_per", "hour"), ("hour", "day")
        ),
    )


def _metrics(where: str, table: Any) -> MetricsConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table: [metrics] with port = 9108.")
    _check_keys(where, table, ("port", "address"))
    port = table.get("port")
    return MetricsConfig(
        port=None if port is None else _integer(f"port of {where}", port, minimum=0, maximum=65535),
        address=_text(f"address of {where}", table.get("address", "127.0.0.1")),
    )


def _decimal(where: str, value: Any) -> Decimal:
    """A threshold as exact as written: TOML strings ("0.001") or numbers."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f'{where} must be a number like "0.001", not {_type_name(value)}.')
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise ConfigError(f'{where} must be a number like "0.001" (got {value!r}).') from None
    if not number.is_finite() or number < 0:
        raise ConfigError(f"{where} must be a number of at least 0 (got {value!r}).")
    return number


def _notify_rules(where: str, tables: Any) -> tuple[NotifyRule, ...]:
    if not isinstance(tables, list):
        raise ConfigError(f"notify in {where} must be written as [[notify]] tables.")
    rules = []
    keys = ("url", "command", "accounts", "currencies", "min_abs_change", "min_rel_change")
    for index, table in enumerate(tables, 1):
        at = f"notify[{index}] in {where}"
        if not isinstance(table, dict):
            raise ConfigError(f"{at} must be a table with a url or a command.")
        _check_keys(at, table, keys)
        url = _webhook_url(f"url of {at}", table["url"]) if "url" in table else None
        command = table.get("command", [])
        if isinstance(command, str):
            command = [command]
        if not isinstance(command, list) or not all(isinstance(c, str) and c for c in command):
            raise ConfigError(
                f"command of {at} must be a list of strings, e.g. "
                '["/usr/local/bin/alert", "--quiet"].'
            )
        if url is None and not command:
            raise ConfigError(f"{at} has neither a url nor a command; give one.")
        names = []
        for key in ("accounts", "currencies"):
            value = table.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{key} of {at} must be a list of names.")
            names.append(tuple(v.upper() if key == "currencies" else v for v in value))
        rules.append(
            NotifyRule(
                url=url,
                command=tuple(command),
                accounts=names[0],
                currencies=names[1],
                min_abs_change=(
                    _decimal(f"min_abs_change of {at}", table["min_abs_change"])
                    if "min_abs_change" in table
                    else None
                ),
                min_rel_change=(
                    _decimal(f"min_rel_change of {at}", table["min_rel_change"])
                    if "min_rel_change" in table
                    else None
                ),
            )
        )
    return tuple(rules)


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
    return AccountConfig("default", Credentials(api_key, Secret(secret)))


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
    _check_keys(where, document, _TOP_KEYS)

    values: dict[str, Any] = {}
    readers: dict[str, Callable[[str, Any], Any]] = {
        "database_url": _text,
        "interval_seconds": lambda w, v: _number(w, v, minimum=1, maximum=86400),
        "base_url": _url,
        "timeout_seconds": lambda w, v: _number(w, v, minimum=0.1, maximum=300),
        "max_response_bytes": lambda w, v: _integer(w, v, minimum=1024, maximum=1 << 30),
        "backoff_base_seconds": lambda w, v: _number(w, v, minimum=0.01, maximum=600),
        "workers": lambda w, v: _integer(w, v, minimum=1, maximum=1000),
        "max_requests_per_second": lambda w, v: _number(w, v, minimum=1, maximum=1000),
        "fetch_prices": _boolean,
        "buffer_file": lambda w, v: v if v == "" else _text(w, v),
        "buffer_max_snapshots": lambda w, v: _integer(w, v, minimum=1, maximum=10_000_000),
        "log_level": lambda w, v: _choice(w, v, LOG_LEVELS),
        "log_format": lambda w, v: _choice(w, v, LOG_FORMATS),
        "ha": _boolean,
    }
    for key, read in readers.items():
        if key in document:
            values[key] = read(f"{key} in {where}", document[key])
    for variable, key in (
        ("RECORDER_DATABASE_URL", "database_url"),
        ("RECORDER_INTERVAL_SECONDS", "interval_seconds"),
        ("RECORDER_TIMEOUT_SECONDS", "timeout_seconds"),
        ("RECORDER_LOG_LEVEL", "log_level"),
        ("RECORDER_LOG_FORMAT", "log_format"),
        ("COINW_BASE_URL", "base_url"),
    ):
        text = environ.get(variable, "").strip()
        if text:
            value = _env_number(text) if key.endswith("_seconds") else text
            values[key] = readers[key](f"{variable} (for {key})", value)

    if "retention" in document:
        values["retention"] = _retention(f"[retention] in {where}", document["retention"])
    if "metrics" in document:
        values["metrics"] = _metrics(f"[metrics] in {where}", document["metrics"])
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
        accounts[index] = AccountConfig(
            "default", from_env.credentials, accounts[index].balance_source
        )
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
