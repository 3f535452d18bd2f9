"""The schema, as SQLAlchemy 2.x declarative tables. The README documents it for SQL users;
changing it needs an Alembic migration in migrations/versions."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from recorder.sqltypes import Amount, BigId, UTCDateTime

# Stable constraint names: Alembic's batch mode on SQLite needs them to alter tables.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AccountRow(Base):
    """One CoinW account, by the name given in the configuration."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class SnapshotRow(Base):
    """One successful poll of one account."""

    __tablename__ = "snapshots"
    __table_args__ = (Index(None, "account_id", "taken_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Sum of the priced values (exact, so SQL users need not SUM text on SQLite); NULL when
    # nothing could be priced, or for snapshots recorded before valuation existed.
    total_value_usdt: Mapped[Decimal | None] = mapped_column(Amount())
    unpriced_count: Mapped[int | None] = mapped_column(Integer())


class BalanceRow(Base):
    """One currency held in one snapshot; a currency not held has no row."""

    __tablename__ = "balances"
    # The primary key (snapshot_id, currency) is the index on snapshot_id. Without a
    # separate rowid, SQLite keeps these rows in that key's order: smaller and faster.
    __table_args__ = ({"sqlite_with_rowid": False},)

    snapshot_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("snapshots.id", ondelete="CASCADE"), primary_key=True
    )
    currency: Mapped[str] = mapped_column(String(32), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Amount())
    # The USDT price used and amount x price, at capture time; NULL when unpriced.
    price_usdt: Mapped[Decimal | None] = mapped_column(Amount())
    value_usdt: Mapped[Decimal | None] = mapped_column(Amount())
    # Only with balance_source = "complete": amount = available + on_orders.
    available: Mapped[Decimal | None] = mapped_column(Amount())
    on_orders: Mapped[Decimal | None] = mapped_column(Amount())


class ChangeRow(Base):
    """A currency that appeared (old NULL), changed, or disappeared (new NULL)."""

    __tablename__ = "balance_changes"
    __table_args__ = (
        Index(None, "account_id", "currency", "taken_at"),
        Index(None, "snapshot_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    snapshot_id: Mapped[int] = mapped_column(BigId, ForeignKey("snapshots.id"))
    currency: Mapped[str] = mapped_column(String(32))
    old_amount: Mapped[Decimal | None] = mapped_column(Amount())
    new_amount: Mapped[Decimal | None] = mapped_column(Amount())
    delta: Mapped[Decimal] = mapped_column(Amount())
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PollErrorRow(Base):
    """A poll that failed: no snapshot was stored for it."""

    __tablename__ = "poll_errors"
    __table_args__ = (Index(None, "account_id", "attempted_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text())
