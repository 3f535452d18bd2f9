"""The schema, as SQLAlchemy Core tables. The README documents it for SQL users; changing
it needs an Alembic migration in migrations/versions (a test compares the two).

Core tables rather than ORM classes: the recorder never loads rows as objects (its writes
and reads are plain statements), and leaving `sqlalchemy.orm` out keeps the daemon about
6 MB smaller (docs/benchmarks.md).
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, MetaData, Table

from recorder.store.types import Amount, BigId, Message, Name, UTCDateTime

# Stable constraint names: Alembic's batch mode on SQLite needs them to alter tables.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: One CoinW account, by the name given in the configuration.
accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Name(100), nullable=False, unique=True),
)

#: One successful poll of one account.
snapshots = Table(
    "snapshots",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("taken_at", UTCDateTime(), nullable=False),
    # Sum of the priced values (exact, so SQL users need not SUM text on SQLite); NULL when
    # nothing could be priced, or for snapshots recorded before valuation existed.
    Column("total_value_usdt", Amount()),
    Column("unpriced_count", Integer()),
    # Which recorder process took it ("host:pid"): shows that no two processes ever
    # recorded one account at the same time.
    Column("recorded_by", Name(64)),
    Index(None, "account_id", "taken_at"),
)

#: One currency held in one snapshot; a currency not held has no row. The primary key
#: (snapshot_id, currency) is the index on snapshot_id. Without a separate rowid, SQLite
#: keeps these rows in that key's order: smaller and faster.
balances = Table(
    "balances",
    metadata,
    Column(
        "snapshot_id",
        BigId,
        ForeignKey("snapshots.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("currency", Name(32), primary_key=True),
    Column("amount", Amount(), nullable=False),
    # The USDT price used and amount x price, at capture time; NULL when unpriced.
    Column("price_usdt", Amount()),
    Column("value_usdt", Amount()),
    # Only with balance_source = "complete": amount = available + on_orders.
    Column("available", Amount()),
    Column("on_orders", Amount()),
    sqlite_with_rowid=False,
)

#: A currency that appeared (old NULL), changed, or disappeared (new NULL).
balance_changes = Table(
    "balance_changes",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("snapshot_id", BigId, ForeignKey("snapshots.id"), nullable=False),
    Column("currency", Name(32), nullable=False),
    Column("old_amount", Amount()),
    Column("new_amount", Amount()),
    Column("delta", Amount(), nullable=False),
    Column("taken_at", UTCDateTime(), nullable=False),
    Index(None, "account_id", "currency", "taken_at"),
    Index(None, "snapshot_id"),
)

#: A poll that failed: no snapshot was stored for it.
poll_errors = Table(
    "poll_errors",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("account_id", ForeignKey("accounts.id"), nullable=False),
    Column("attempted_at", UTCDateTime(), nullable=False),
    Column("kind", Name(32), nullable=False),
    Column("message", Message(), nullable=False),
    Index(None, "account_id", "attempted_at"),
)
