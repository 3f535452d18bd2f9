"""MariaDB/MySQL: currency and account names compared exactly, text columns in utf8mb4.

A `VARCHAR` in MariaDB's default collation compares case-insensitively, so a snapshot
holding both "BTC" and "btc" broke the (snapshot_id, currency) primary key there while
SQLite and PostgreSQL stored it; a database created with a latin1 default could not hold a
Chinese or emoji error text. Names become `utf8mb4_bin` (exact, like the other backends)
and messages `utf8mb4`. Nothing changes on SQLite and PostgreSQL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Frozen: (table, column, type and constraint as they are after this revision).
EXACT = [
    ("accounts", "name", "VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"),
    ("balances", "currency", "VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"),
    (
        "balance_changes",
        "currency",
        "VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL",
    ),
    ("poll_errors", "kind", "VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"),
    ("poll_errors", "message", "TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"),
    ("snapshots", "recorded_by", "VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL"),
]
BEFORE = {
    ("accounts", "name"): "VARCHAR(100) NOT NULL",
    ("balances", "currency"): "VARCHAR(32) NOT NULL",
    ("balance_changes", "currency"): "VARCHAR(32) NOT NULL",
    ("poll_errors", "kind"): "VARCHAR(32) NOT NULL",
    ("poll_errors", "message"): "TEXT NOT NULL",
    ("snapshots", "recorded_by"): "VARCHAR(64) NULL",
}


def _is_mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    if not _is_mysql():
        return
    for table, column, definition in EXACT:
        op.execute(f"ALTER TABLE {table} MODIFY {column} {definition}")


def downgrade() -> None:
    if not _is_mysql():
        return
    for (table, column), definition in BEFORE.items():
        op.execute(f"ALTER TABLE {table} MODIFY {column} {definition}")
