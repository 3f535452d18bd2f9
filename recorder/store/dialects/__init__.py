"""Every difference between SQLite, PostgreSQL and MariaDB/MySQL, in this one package.

The backend is detected once, from the database URL, into one `Dialect` object; the rest
of the store asks it questions ("how is a time bound?", "how is an id returned?") and
never compares backend names itself. Each answer is plain SQL text or a plain value, so
`tests/test_dialects.py` checks all three backends without a server. Migrations keep
their own frozen copies of what they need.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import exc
from sqlalchemy.engine import URL, make_url

from recorder import text
from recorder.errors import ConfigError
from recorder.store.dialects.base import OUTAGE, REFUSED, TABLES, UNKNOWN, Dialect
from recorder.store.dialects.mysql import MySQL
from recorder.store.dialects.postgresql import PostgreSQL
from recorder.store.dialects.sqlite import SQLite

__all__ = [
    "OUTAGE",
    "REFUSED",
    "TABLES",
    "UNKNOWN",
    "Dialect",
    "displayed",
    "for_name",
    "for_url",
    "parse_url",
    "url_secrets",
]

_BY_NAME: Mapping[str, type[Dialect]] = {
    "sqlite": SQLite,
    "postgresql": PostgreSQL,
    "mysql": MySQL,
    "mariadb": MySQL,
}
_INSTANCES = {name: dialect() for name, dialect in _BY_NAME.items()}
# URL schemes people write that SQLAlchemy itself does not take, or takes with a driver
# we do not ship (it defaults to psycopg2 and mysqlclient).
_SCHEMES = {
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mariadb",
}


def for_name(name: str) -> Dialect:
    """The dialect of a SQLAlchemy dialect name ("sqlite", "postgresql", "mariadb", ...)."""
    return _INSTANCES[name]


def parse_url(url: str) -> URL:
    """A database URL with our default drivers filled in; ConfigError if we cannot use it."""
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes of an environment variable or argument
        raise ConfigError(
            "database_url holds bytes that are not UTF-8; write it in UTF-8."
        ) from None
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError):
        raise ConfigError(
            f"database_url {text.redact(url)!r} is not a database URL; expected e.g. "
            "sqlite:///recorder.db or postgresql://user@host/dbname."
        ) from None
    if parsed.drivername in _SCHEMES:
        backend = _SCHEMES[parsed.drivername]
        driver = _BY_NAME[backend].default_driver
        parsed = parsed.set(drivername=f"{backend}+{driver}" if driver else backend)
    elif parsed.drivername.startswith("postgres+"):
        parsed = parsed.set(drivername="postgresql+" + parsed.drivername.split("+", 1)[1])
    if parsed.get_backend_name() not in _BY_NAME:
        raise ConfigError(
            f"database_url uses {parsed.get_backend_name()!r}; the recorder supports sqlite, "
            "postgresql and mysql/mariadb."
        )
    if "@" in (parsed.host or ""):
        raise ConfigError(
            "database_url has more than one '@' (one in the password?); write an '@' in the "
            "user name or password as %40."
        )
    if parsed.get_backend_name() == "sqlite" and _in_memory(parsed):
        raise ConfigError(
            "database_url names an in-memory SQLite database, which keeps nothing once the "
            "command ends; name a file, e.g. sqlite:///recorder.db."
        )
    _check_numbers(parsed)
    return parsed


def _in_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory"


#: Query parameters of a database URL that carry a secret (psycopg and PyMySQL accept the
#: password there too).
_SECRET_PARAMETERS = ("pass", "secret", "token")


def url_secrets(url: URL) -> list[str]:
    """The secrets a database URL carries: its password, in the userinfo or the query."""
    found = [str(url.password)] if url.password else []
    for key, value in url.query.items():
        if any(word in key.lower() for word in _SECRET_PARAMETERS):
            found.extend((value,) if isinstance(value, str) else value)
    return [one for one in found if one]


def displayed(url: URL) -> str:
    """The URL to show: the password, in the userinfo or the query, as ***."""
    hidden = {key: "***" for key in url.query if any(w in key.lower() for w in _SECRET_PARAMETERS)}
    return url.update_query_dict(hidden).render_as_string(hide_password=True)


def _check_numbers(url: URL) -> None:
    """The driver would fail on a timeout that is not a number only when it connects, with
    a traceback; say so now."""
    for key, value in url.query.items():
        if not key.endswith(("timeout", "keepalives_idle", "keepalives_interval")):
            continue
        for one in (value,) if isinstance(value, str) else value:
            try:
                number = float(one)  # float-ok: a duration in seconds, not an amount
            except ValueError:
                number = -1.0
            if not 0 <= number < 1e9:
                raise ConfigError(
                    f"database_url sets {key}={text.one_line(one, 40)!r}; it must be a number of "
                    "seconds."
                )


def for_url(url: URL) -> Dialect:
    """The dialect of a URL returned by `parse_url`."""
    return for_name(url.get_backend_name())
