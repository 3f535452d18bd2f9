"""Every setting, declared once: its type, default, reader, environment variable and the
sentence that documents it, as one dataclass field (`setting(...)`). The loader, the README
table and config.example.toml all follow these declarations (tests/test_docs.py checks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from recorder.config import readers
from recorder.errors import ConfigError
from recorder.values import Credentials

DEFAULT_DATABASE_FILE = "recorder.db"
DEFAULT_DATABASE_URL = f"sqlite:///{DEFAULT_DATABASE_FILE}"
DEFAULT_BUFFER_FILE = "recorder-buffer-{database}.jsonl"
LOG_LEVELS = readers.LOG_LEVELS
LOG_FORMATS = ("text", "json")
BALANCE_SOURCES = ("balances", "complete")
PERIODS = ("hour", "day")


@dataclass(frozen=True)
class Key:
    """How one setting is read and documented."""

    read: Callable[[str, Any], Any]
    doc: str
    #: Environment variables that set it, the first one set wins; the first is RECORDER_*.
    env: tuple[str, ...]
    #: Turns an environment variable's text into what `read` checks.
    from_env: Callable[[str], Any]
    #: An empty variable sets the value "" (as in the file) instead of being unset.
    empty_is_a_value: bool = False


def setting(
    default: Any,
    read: Callable[[str, Any], Any],
    doc: str,
    *,
    env: tuple[str, ...] = (),
    from_env: Callable[[str], Any] = readers.env_text,
    empty_is_a_value: bool = False,
) -> Any:
    """A dataclass field for one setting."""
    key = Key(read, doc, env, from_env, empty_is_a_value)
    return field(default=default, metadata={"key": key})


def keys(cls: type) -> list[tuple[str, Any, Key]]:
    """(name, default, Key) of every setting a dataclass declares with `setting`."""
    return [(f.name, f.default, f.metadata["key"]) for f in fields(cls) if "key" in f.metadata]


def _bounded(reader: Callable[..., Any], **bounds: Any) -> Callable[[str, Any], Any]:
    return partial(reader, **bounds)


NUMBER = readers.env_number
BOOLEAN = readers.env_boolean


#: The keys of an [[accounts]] table and what each means (README: `config.account_table()`).
ACCOUNT_KEY_DOCS = (
    ("name", "how the account appears in the database and reports (letters, digits, `. _ @ -`)"),
    (
        "api_key, api_key_credential, api_key_env, api_key_file",
        "the API key, the name of a systemd credential holding it (a file in "
        "`$CREDENTIALS_DIRECTORY`, from `LoadCredential=`), the environment variable holding "
        "it, or a file holding it (relative to the config file's folder): exactly one",
    ),
    (
        "secret_key, secret_key_credential, secret_key_env, secret_key_file",
        "the same for the secret key, at least 6 characters (prefer `_credential` under systemd, "
        "else `_file` or `_env`)",
    ),
    (
        "balance_source",
        "`balances` (default, `returnBalances`) or `complete` (`returnCompleteBalances`: the "
        "amount is available + in open orders)",
    ),
)


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

    keep_all_days: float | None = setting(
        None,
        _bounded(readers.number, minimum=0, maximum=100_000),
        "keep every snapshot this many days, then thin them out (unset: keep everything)",
        env=("RECORDER_RETENTION_KEEP_ALL_DAYS",),
        from_env=NUMBER,
    )
    keep_one_per: str = setting(
        "hour",
        _bounded(readers.choice, choices=PERIODS),
        "beyond keep_all_days, keep the last snapshot of each `hour` or `day`, plus every "
        "snapshot that recorded a change",
        env=("RECORDER_RETENTION_KEEP_ONE_PER",),
    )


@dataclass(frozen=True)
class MetricsConfig:
    """The [metrics] table: Prometheus metrics on this port (None: off)."""

    port: int | None = setting(
        None,
        _bounded(readers.integer, minimum=0, maximum=65535),
        "serve Prometheus metrics on this port (`recorder run` only; unset: off)",
        env=("RECORDER_METRICS_PORT",),
        from_env=NUMBER,
    )
    address: str = setting(
        "127.0.0.1",
        readers.text,
        "the address to serve them on",
        env=("RECORDER_METRICS_ADDRESS",),
    )


@dataclass(frozen=True)
class NotifyRule:
    """One [[notify]] table: where to send changes, and which ones."""

    url: str | None = None
    command: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    currencies: tuple[str, ...] = ()
    min_abs_change: Decimal | None = None
    min_rel_change: Decimal | None = None  # 0.05 = 5 % of the old amount
    #: One notification per poll carrying all its selected changes, instead of one each.
    batch: bool = False

    def __repr__(self) -> str:
        # A webhook URL often carries a token or a password: show only the host.
        where = urlsplit(self.url).hostname or "" if self.url else " ".join(self.command[:1])
        return f"NotifyRule({where!r})"


@dataclass(frozen=True)
class Settings:
    """Everything the recorder was configured with."""

    database_url: str = setting(
        DEFAULT_DATABASE_URL,
        readers.text,
        "SQLAlchemy URL of the database (`postgresql://...`, `mysql://...`); a relative SQLite "
        "file is in the config file's folder, and by default under systemd in "
        "`$STATE_DIRECTORY`",
        env=("RECORDER_DATABASE_URL",),
    )
    interval_seconds: float = setting(
        60.0,
        _bounded(readers.number, minimum=1, maximum=86400),
        "seconds between polls of an account (at least 1)",
        env=("RECORDER_INTERVAL_SECONDS",),
        from_env=NUMBER,
    )
    base_url: str = setting(
        "https://api.coinw.com",
        readers.url,
        "CoinW API host",
        env=("RECORDER_BASE_URL", "COINW_BASE_URL"),
    )
    timeout_seconds: float = setting(
        10.0,
        _bounded(readers.number, minimum=0.1, maximum=300),
        "time allowed for one whole response",
        env=("RECORDER_TIMEOUT_SECONDS",),
        from_env=NUMBER,
    )
    max_response_bytes: int = setting(
        5 * 1024 * 1024,
        _bounded(readers.integer, minimum=1024, maximum=1 << 30),
        "larger responses are refused unread",
        env=("RECORDER_MAX_RESPONSE_BYTES",),
        from_env=NUMBER,
    )
    backoff_base_seconds: float = setting(
        1.0,
        _bounded(readers.number, minimum=0.01, maximum=600),
        "first retry delay after a rate limit or server error",
        env=("RECORDER_BACKOFF_BASE_SECONDS",),
        from_env=NUMBER,
    )
    workers: int = setting(
        10,
        _bounded(readers.integer, minimum=1, maximum=1000),
        "how many accounts may be polled at the same moment",
        env=("RECORDER_WORKERS",),
        from_env=NUMBER,
    )
    max_requests_per_second: float = setting(
        50.0,
        _bounded(readers.number, minimum=1, maximum=1000),
        "requests per second to CoinW from this process, all accounts together (each "
        "account also stays at 3/s)",
        env=("RECORDER_MAX_REQUESTS_PER_SECOND",),
        from_env=NUMBER,
    )
    fetch_prices: bool = setting(
        True,
        readers.boolean,
        "fetch the public ticker once per round and store each balance's USDT price and value",
        env=("RECORDER_FETCH_PRICES",),
        from_env=BOOLEAN,
    )
    buffer_file: Path | None = setting(
        Path(DEFAULT_BUFFER_FILE),
        readers.optional_text,
        "journal of polls waiting for an unreachable database (relative to the config "
        "file's folder; by default under systemd in `$STATE_DIRECTORY`; `{database}` "
        "becomes 8 hex digits naming the database, so configurations never share one; "
        '`""`: memory only); `run` and `poll` refuse to start when it cannot be written or '
        "another process uses it",
        env=("RECORDER_BUFFER_FILE",),
        empty_is_a_value=True,  # RECORDER_BUFFER_FILE="": memory only, as in the file
    )
    buffer_max_snapshots: int = setting(
        10000,
        _bounded(readers.integer, minimum=1, maximum=10_000_000),
        "how many polls may wait; past that repeated snapshots are dropped first, then the oldest",
        env=("RECORDER_BUFFER_MAX_SNAPSHOTS",),
        from_env=NUMBER,
    )
    log_level: str = setting(
        "INFO",
        _bounded(readers.choice, choices=LOG_LEVELS),
        "`DEBUG`, `INFO`, `WARNING` or `ERROR`",
        env=("RECORDER_LOG_LEVEL",),
    )
    log_format: str = setting(
        "text",
        _bounded(readers.choice, choices=LOG_FORMATS),
        "`text` (readable lines) or `json` (one object per line with `time`, `level`, "
        "`logger`, `message` and, for lines about an account, `account`)",
        env=("RECORDER_LOG_FORMAT",),
    )
    ha: bool = setting(
        False,
        readers.boolean,
        "several recorders share one PostgreSQL database: an account is never polled "
        "without its advisory lock (see [High availability](#high-availability-on-postgresql))",
        env=("RECORDER_HA",),
        from_env=BOOLEAN,
    )
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


#: The tables of the config file that hold settings of their own.
SECTIONS: dict[str, type] = {"retention": Retention, "metrics": MetricsConfig}
