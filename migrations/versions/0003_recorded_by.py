"""snapshots.recorded_by: which recorder process took each snapshot.

With several recorders sharing one PostgreSQL database, this shows from the data alone
that no account was ever polled by two processes at once.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copies of 0002's views: SQLite rebuilds `snapshots` to drop a column, which
# requires the views that read it to be dropped first and created again after.
DAY = {
    "postgresql": "(taken_at AT TIME ZONE 'UTC')::date",
    "sqlite": "date(taken_at)",
    "mysql": "DATE(taken_at)",
}
VIEWS = {
    "latest_balances": """
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
""",
    "daily_balances": """
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
""",
    "portfolio_values": """
CREATE VIEW portfolio_values AS
SELECT a.name AS account, s.id AS snapshot_id, s.taken_at,
       s.total_value_usdt, s.unpriced_count
FROM snapshots s
JOIN accounts a ON a.id = s.account_id
""",
}


def upgrade() -> None:
    # Adding a nullable column needs no rebuild on any backend: the views stay.
    with op.batch_alter_table("snapshots") as batch:
        batch.add_column(sa.Column("recorded_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    with op.batch_alter_table("snapshots") as batch:
        batch.drop_column("recorded_by")
    day = DAY["mysql" if dialect == "mariadb" else dialect]
    for sql in VIEWS.values():
        op.execute(sql.format(day=day))
