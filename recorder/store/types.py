"""Column types that store amounts and times exactly on SQLite, PostgreSQL and MariaDB/MySQL.

SQLAlchemy's own Numeric goes through float on SQLite, so amounts are TEXT there, holding
the canonical decimal string; NUMERIC on PostgreSQL; DECIMAL(65,30) on MariaDB/MySQL.
Times are stored in UTC: timestamptz on PostgreSQL, naive UTC DATETIME elsewhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, Text
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from recorder import amounts

#: Integer primary keys: 64-bit where the backend needs it said, SQLite's rowid otherwise.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _is_mysql(dialect: Dialect) -> bool:
    return dialect.name in ("mysql", "mariadb")


class Amount(TypeDecorator[Decimal]):
    """An exact, non-float amount; binds and returns canonical `Decimal` values."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.NUMERIC())
        if _is_mysql(dialect):
            return dialect.type_descriptor(mysql.DECIMAL(precision=65, scale=30))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"amounts must be Decimal, not {type(value).__name__}")
        if dialect.name == "sqlite":
            return amounts.to_text(value)
        return amounts.canonical(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, str):
            return amounts.from_text(value)
        if isinstance(value, Decimal):
            return amounts.canonical(value)
        raise TypeError(f"the database returned an amount as {type(value).__name__}")

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


def utc_from_storage(value: Any) -> datetime:
    """A stored time as any driver returns it (SQLite text, naive or aware datetime) ->
    aware UTC datetime."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise TypeError(f"the database returned a time as {type(value).__name__}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time; binds aware datetimes, returns aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        if _is_mysql(dialect):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise TypeError("times must be timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else utc_from_storage(value)

    @property
    def python_type(self) -> type[datetime]:
        return datetime
