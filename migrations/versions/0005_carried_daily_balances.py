"""daily_balances carries the holdings into days without a snapshot.

The view had a row only for days with a snapshot, so a month-end balance went missing
whenever the recorder was down over the month's end. Now every account has rows for every
UTC day from its first snapshot to today (or its last snapshot, if later): the holdings of
the last snapshot taken before the day ended, with `carried` = 1 when that snapshot is from
an earlier day (its `taken_at` says which). Days before an account's first snapshot have
no rows. The columns of 0002 keep their names and order; `carried` is added at the end.

Each day's snapshot is one seek in the (account_id, taken_at) index. The calendar is
generate_series on PostgreSQL and a recursive CTE on SQLite and MariaDB (MySQL 8 stops a
recursive CTE at cte_max_recursion_depth, 1000 by default: raise it for histories longer
than that).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Frozen: the view as this revision creates it, per backend.
CARRIED = {
    "sqlite": """
CREATE VIEW daily_balances AS
WITH RECURSIVE
spans (account_id, first_day, last_day) AS (
    SELECT a.id,
           date((SELECT min(taken_at) FROM snapshots WHERE account_id = a.id)),
           max(date('now'), date((SELECT max(taken_at) FROM snapshots WHERE account_id = a.id)))
    FROM accounts a),
days (account_id, day, last_day) AS (
    SELECT account_id, first_day, last_day FROM spans WHERE first_day IS NOT NULL
    UNION ALL
    SELECT account_id, date(day, '+1 day'), last_day FROM days WHERE day < last_day)
SELECT a.name AS account, d.day, b.currency, b.amount, b.price_usdt, b.value_usdt,
       s.taken_at, s.id AS snapshot_id,
       CASE WHEN s.taken_at < d.day THEN 1 ELSE 0 END AS carried
FROM days d
JOIN accounts a ON a.id = d.account_id
JOIN snapshots s ON s.id = (
    SELECT s2.id FROM snapshots s2
    WHERE s2.account_id = d.account_id AND s2.taken_at < date(d.day, '+1 day')
    ORDER BY s2.taken_at DESC, s2.id DESC
    LIMIT 1)
JOIN balances b ON b.snapshot_id = s.id
""",
    "postgresql": """
CREATE VIEW daily_balances AS
SELECT a.name AS account, d.day, b.currency, b.amount, b.price_usdt, b.value_usdt,
       s.taken_at, s.id AS snapshot_id,
       CASE WHEN s.taken_at < (d.day::timestamp AT TIME ZONE 'UTC') THEN 1 ELSE 0 END
           AS carried
FROM accounts a
CROSS JOIN LATERAL (
    SELECT min(taken_at) AS first_at, max(taken_at) AS last_at
    FROM snapshots WHERE account_id = a.id) r
CROSS JOIN LATERAL (
    SELECT g::date AS day
    FROM generate_series(
        (r.first_at AT TIME ZONE 'UTC')::date,
        GREATEST((now() AT TIME ZONE 'UTC')::date, (r.last_at AT TIME ZONE 'UTC')::date),
        interval '1 day') AS g) d
CROSS JOIN LATERAL (
    SELECT s2.id, s2.taken_at FROM snapshots s2
    WHERE s2.account_id = a.id
      AND s2.taken_at < ((d.day + 1)::timestamp AT TIME ZONE 'UTC')
    ORDER BY s2.taken_at DESC, s2.id DESC
    LIMIT 1) s
JOIN balances b ON b.snapshot_id = s.id
""",
    "mysql": """
CREATE VIEW daily_balances AS
WITH RECURSIVE days (account_id, day, last_day) AS (
    SELECT account_id, DATE(MIN(taken_at)), GREATEST(UTC_DATE(), DATE(MAX(taken_at)))
    FROM snapshots GROUP BY account_id
    UNION ALL
    SELECT account_id, day + INTERVAL 1 DAY, last_day FROM days WHERE day < last_day)
SELECT a.name AS account, d.day, b.currency, b.amount, b.price_usdt, b.value_usdt,
       s.taken_at, s.id AS snapshot_id,
       CASE WHEN s.taken_at < d.day THEN 1 ELSE 0 END AS carried
FROM days d
JOIN accounts a ON a.id = d.account_id
JOIN snapshots s ON s.id = (
    SELECT s2.id FROM snapshots s2
    WHERE s2.account_id = d.account_id AND s2.taken_at < d.day + INTERVAL 1 DAY
    ORDER BY s2.taken_at DESC, s2.id DESC
    LIMIT 1)
JOIN balances b ON b.snapshot_id = s.id
""",
}

# Frozen copy of 0002's view, for the downgrade.
DAY = {
    "postgresql": "(taken_at AT TIME ZONE 'UTC')::date",
    "sqlite": "date(taken_at)",
    "mysql": "DATE(taken_at)",
}
BEFORE = """
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


def _backend() -> str:
    name = op.get_bind().dialect.name
    return "mysql" if name == "mariadb" else name


def upgrade() -> None:
    op.execute("DROP VIEW IF EXISTS daily_balances")
    op.execute(CARRIED[_backend()])


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS daily_balances")
    op.execute(BEFORE.format(day=DAY[_backend()]))
