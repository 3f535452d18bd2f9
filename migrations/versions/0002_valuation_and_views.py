"""Valuation at capture time, complete balances, and the SQL views for humans.

Adds balances.price_usdt / value_usdt / available / on_orders and
snapshots.total_value_usdt / unpriced_count (all NULL for rows recorded before), and the
views latest_balances, daily_balances and portfolio_values.

Later migrations that rebuild `snapshots`, `balances` or `accounts` in batch mode on
SQLite must drop these views first and create them again afterwards.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

AMOUNT = (
    sa.Text()
    .with_variant(postgresql.NUMERIC(), "postgresql")
    .with_variant(mysql.DECIMAL(precision=65, scale=30), "mysql", "mariadb")
)

# The UTC calendar day of a snapshot, as each backend spells it.
DAY = {
    "postgresql": "(taken_at AT TIME ZONE 'UTC')::date",
    "sqlite": "date(taken_at)",
    "mysql": "DATE(taken_at)",
}

LATEST_BALANCES = """
CREATE VIEW latest_balances AS
SELECT a.name AS account, b.currency, b.amount, b.price_usdt, b.value_usdt,
       s.taken_at, s.id AS snapshot_id
FROM accounts a
JOIN snapshots s ON s.id = (
    SELECT s2.id FROM snapshots s2
    WHERE s2.account_id = a.id
    ORDER BY s2.taken_at DESC, s2.id DESC
    LIMIT 1)
JOIN balances b ON b.snapshot_id = s.id
"""

DAILY_BALANCES = """
CREATE VIEW daily_balances AS
SELECT a.name AS account, d.day, b.currency, b.amount, b.price_usdt, b.value_usdt,
       d.taken_at, d.id AS snapshot_id
FROM (
    SELECT id, account_id, taken_at, {day} AS day,
           ROW_NUMBER() OVER (
               PARTITION BY account_id, {day} ORDER BY taken_at DESC, id DESC) AS newest
    FROM snapshots) d
JOIN accounts a ON a.id = d.account_id
JOIN balances b ON b.snapshot_id = d.id
WHERE d.newest = 1
"""

PORTFOLIO_VALUES = """
CREATE VIEW portfolio_values AS
SELECT a.name AS account, s.id AS snapshot_id, s.taken_at,
       s.total_value_usdt, s.unpriced_count
FROM snapshots s
JOIN accounts a ON a.id = s.account_id
"""

VIEWS = ("latest_balances", "daily_balances", "portfolio_values")


def upgrade() -> None:
    with op.batch_alter_table("balances") as batch:
        batch.add_column(sa.Column("price_usdt", AMOUNT, nullable=True))
        batch.add_column(sa.Column("value_usdt", AMOUNT, nullable=True))
        batch.add_column(sa.Column("available", AMOUNT, nullable=True))
        batch.add_column(sa.Column("on_orders", AMOUNT, nullable=True))
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("total_value_usdt", AMOUNT, nullable=True))
        batch.add_column(sa.Column("unpriced_count", sa.Integer(), nullable=True))
    dialect = op.get_bind().dialect.name
    day = DAY["mysql" if dialect == "mariadb" else dialect]
    op.execute(LATEST_BALANCES)
    op.execute(DAILY_BALANCES.format(day=day))
    op.execute(PORTFOLIO_VALUES)


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("unpriced_count")
        batch.drop_column("total_value_usdt")
    with op.batch_alter_table("balances") as batch:
        batch.drop_column("on_orders")
        batch.drop_column("available")
        batch.drop_column("value_usdt")
        batch.drop_column("price_usdt")
