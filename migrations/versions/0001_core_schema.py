"""The core schema: accounts, snapshots, balances, balance_changes, poll_errors.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the column types as they were at this revision (see recorder/sqltypes.py):
# a migration must not change meaning when the application's types evolve.
AMOUNT = (
    sa.Text()
    .with_variant(postgresql.NUMERIC(), "postgresql")
    .with_variant(mysql.DECIMAL(precision=65, scale=30), "mysql", "mariadb")
)
TIME = (
    sa.DateTime()
    .with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
    .with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_accounts_name")),
    )
    op.create_table(
        "snapshots",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("taken_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_snapshots_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshots")),
    )
    op.create_index(
        op.f("ix_snapshots_account_id_taken_at"), "snapshots", ["account_id", "taken_at"]
    )
    op.create_table(
        "balances",
        sa.Column("snapshot_id", BIG_ID, nullable=False),
        sa.Column("currency", sa.String(length=32), nullable=False),
        sa.Column("amount", AMOUNT, nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_balances_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "currency", name=op.f("pk_balances")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "balance_changes",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", BIG_ID, nullable=False),
        sa.Column("currency", sa.String(length=32), nullable=False),
        sa.Column("old_amount", AMOUNT, nullable=True),
        sa.Column("new_amount", AMOUNT, nullable=True),
        sa.Column("delta", AMOUNT, nullable=False),
        sa.Column("taken_at", TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_balance_changes_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_balance_changes_snapshot_id_snapshots"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_balance_changes")),
    )
    op.create_index(
        op.f("ix_balance_changes_account_id_currency_taken_at"),
        "balance_changes",
        ["account_id", "currency", "taken_at"],
    )
    op.create_index(op.f("ix_balance_changes_snapshot_id"), "balance_changes", ["snapshot_id"])
    op.create_table(
        "poll_errors",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("attempted_at", TIME, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_poll_errors_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_poll_errors")),
    )
    op.create_index(
        op.f("ix_poll_errors_account_id_attempted_at"),
        "poll_errors",
        ["account_id", "attempted_at"],
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; dropping them first fails on MariaDB, where an
    # index may be the one a foreign key relies on.
    for table in ("poll_errors", "balance_changes", "balances", "snapshots", "accounts"):
        op.drop_table(table)
