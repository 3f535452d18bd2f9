"""Column types that store amounts and times exactly on SQLite, PostgreSQL and MariaDB/MySQL.

SQLAlchemy's own Numeric goes through float on SQLite, so amounts are TEXT there, holding
the canonical decimal string; NUMERIC on PostgreSQL; DECIMAL(65,30) on MariaDB/MySQL.
Times are stored in UTC: timestamptz on PostgreSQL, naive UTC DATETIME elsewhere. Which
is which the dialect says (recorder/store/dialects/).

The recorder's own statements bind storage forms directly (see recorder/store/database.py);
these types serve the schema declaration, Alembic, and tests that use SQLAlchemy Core.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String, Text
from sqlalchemy.engine import Dialect as SADialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from recorder import amounts
from recorder.store import dialects

#: Integer primary keys: 64-bit where the backend needs it said, SQLite's rowid otherwise.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Amount(TypeDecorator[Decimal]):
    """An exact, non-float amount; binds and returns canonical `Decimal` values."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: SADialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(dialects.for_name(dialect.name).amount_type)

    def process_bind_param(self, value: Any, dialect: SADialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"amounts must be Decimal, not {type(value).__name__}")
        return amounts.to_text(value)

    def process_result_value(self, value: Any, dialect: SADialect) -> Decimal | None:
        return None if value is None else dialects.for_name(dialect.name).amount(value)

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time; binds aware datetimes, returns aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: SADialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(dialects.for_name(dialect.name).time_type)

    def process_bind_param(self, value: Any, dialect: SADialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise TypeError("times must be timezone-aware datetimes")
        value = value.astimezone(UTC)
        stored = dialects.for_name(dialect.name).storage_time(value)
        # SQLAlchemy's SQLite DateTime processes datetimes itself: hand it one.
        return value.replace(tzinfo=None) if isinstance(stored, str) else stored

    def process_result_value(self, value: Any, dialect: SADialect) -> datetime | None:
        return None if value is None else dialects.for_name(dialect.name).time_from_storage(value)

    @property
    def python_type(self) -> type[datetime]:
        return datetime


class Name(TypeDecorator[str]):
    """A name (account, currency, error kind) compared exactly, case included, on every
    backend: MariaDB/MySQL compare their default collation without case."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: SADialect) -> TypeEngine[Any]:
        length = getattr(self.impl_instance, "length", None) or 255
        return dialect.type_descriptor(dialects.for_name(dialect.name).name_type(length))


class Message(TypeDecorator[str]):
    """Free text that may hold any character (error messages)."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: SADialect) -> TypeEngine[Any]:
        return dialects.for_name(dialect.name).message_type
