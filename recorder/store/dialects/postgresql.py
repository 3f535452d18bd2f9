"""PostgreSQL: NUMERIC amounts, timestamptz, RETURNING, COPY, advisory locks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL

from recorder.store.dialects.base import (
    KEEPALIVE_COUNT,
    KEEPALIVE_IDLE,
    KEEPALIVE_INTERVAL,
    OUTAGE,
    REFUSED,
    TABLES,
    UNKNOWN,
    Dialect,
)


class PostgreSQL(Dialect):
    name = "postgresql"
    default_driver = "psycopg"
    extra = "postgres"

    insert_ignoring = ("INSERT", " ON CONFLICT DO NOTHING")
    size_query = (
        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON "
        "n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname = current_schema()"
    )
    # A network round trip per period would cost more than the seeks themselves. For each
    # period end (in order), the account's last snapshot before it.
    last_in_periods_query = (
        "SELECT p.i, s.id, s.taken_at, s.total_value_usdt, s.unpriced_count "
        "FROM unnest(%s::timestamptz[]) WITH ORDINALITY AS p(end_at, i) "
        "CROSS JOIN LATERAL (SELECT id, taken_at, total_value_usdt, unpriced_count "
        "FROM snapshots WHERE account_id = %s AND taken_at < p.end_at "
        "ORDER BY taken_at DESC, id DESC LIMIT 1) s "
        "ORDER BY p.i"
    )
    # The namespace is the first half of PostgreSQL's two-part advisory lock key.
    try_lock = "SELECT pg_try_advisory_lock(:namespace, :key)"
    read_snapshot = ("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",)
    lock_scope = "SELECT current_schema()"
    # "recu": the recorder's upgrades, per schema; released when the transaction ends.
    upgrade_lock = (
        "SELECT pg_try_advisory_xact_lock(1919247221, hashtext(current_schema()))",
        "",
    )
    amount_type = postgresql.NUMERIC()
    time_type = postgresql.TIMESTAMP(timezone=True)

    # SQLSTATE classes about the data itself: data exceptions (a value out of range, too
    # long, not in the encoding), integrity, program limits (a row too large), and what a
    # trigger or a function raised (PL/pgSQL's RAISE, another language's error).
    _REFUSED_CLASSES = ("22", "23", "54", "P0", "38", "39")
    # SQLSTATE classes about the server or the way to it: the connection, the transaction
    # rolled back (deadlock, serialisation), a read-only transaction, resources (disk
    # full, too many connections), a lock not available, an operator's or a timeout's
    # cancel, the system, configuration, the server's own internal errors; and no
    # permission (an operator's change, not the data's fault).
    _OUTAGE_CLASSES = ("08", "25", "40", "53", "55", "57", "58", "F0", "XX", "42501")

    def insert_returning_id(self, table: str, columns: Sequence[str]) -> str:
        return self.insert(table, columns) + " RETURNING id"

    def inserted_id(self, result: Any) -> int:
        return int(result.scalar_one())

    def number_text(self, expression: str) -> str:
        return f"CAST({expression} AS TEXT)"

    def id_text(self, expression: str) -> str:
        return f"CAST({expression} AS TEXT)"

    def maintenance(self, *, vacuum: bool) -> tuple[list[str], bool]:
        verb = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
        return [f"{verb} {', '.join(TABLES)}"], True

    def resync_ids(self) -> list[str]:
        return [
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
            for table in TABLES
            if table != "balances"  # the one table without an id
        ]

    def copy_rows(
        self, connection: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> bool:
        # COPY is PostgreSQL's bulk path: several times executemany's rate.
        driver = connection.connection.driver_connection
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return True

    def storage_time(self, moment: datetime) -> Any:
        return moment.astimezone(UTC)

    def amount(self, value: Any) -> Decimal:
        # NUMERIC keeps the canonical scale it was given.
        return value if isinstance(value, Decimal) else super().amount(value)

    def timeouts(self, url: URL) -> dict[str, Any]:
        # libpq: connect_timeout covers the whole handshake; keepalives notice a vanished
        # server under a long statement without cutting a slow one off.
        args = {
            "connect_timeout": 10,
            "keepalives": 1,
            "keepalives_idle": KEEPALIVE_IDLE,
            "keepalives_interval": KEEPALIVE_INTERVAL,
            "keepalives_count": KEEPALIVE_COUNT,
        }
        return {key: value for key, value in args.items() if key not in url.query}

    def lock_session_args(self, url: URL, timeout: float) -> dict[str, Any]:
        # libpq: keepalives probe an idle session; tcp_user_timeout ends one whose data
        # goes unacknowledged (both only see a real network; the deadline does the rest).
        args = {
            "connect_timeout": max(2, math.ceil(timeout)),  # libpq's least
            "keepalives": 1,
            "keepalives_idle": max(1, math.ceil(timeout)),
            "keepalives_interval": 1,
            "keepalives_count": 3,
            "tcp_user_timeout": max(1000, int(timeout * 1000)),
        }
        return {key: value for key, value in args.items() if key not in url.query}

    def lock_session_setup(self, timeout: float, idle_seconds: float) -> list[str]:
        # Only the settings this server has (idle_session_timeout came in PostgreSQL 14).
        settings = {
            "statement_timeout": int(timeout * 1000),
            "lock_timeout": int(timeout * 1000),
            "idle_session_timeout": int(idle_seconds * 1000),
            "tcp_keepalives_idle": max(1, math.ceil(timeout)),
            "tcp_keepalives_interval": 1,
            "tcp_keepalives_count": 3,
        }
        values = ", ".join(f"('{name}', '{value}')" for name, value in settings.items())
        return [
            "SELECT count(set_config(name, v.value, false)) FROM pg_settings "
            f"JOIN (VALUES {values}) AS v(name, value) USING (name)"
        ]

    def session_socket(self, driver_connection: Any) -> int | None:
        # psycopg has no client-side statement timeout: hang up on its socket instead.
        return int(driver_connection.pgconn.socket)

    def streaming_cursor(self, raw: Any) -> Any:
        return raw.cursor(name="recorder_export")  # a server-side cursor

    def classify(self, error: BaseException) -> str:
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str) and state:
            if state.startswith(self._REFUSED_CLASSES):
                return REFUSED
            return OUTAGE if state.startswith(self._OUTAGE_CLASSES) else UNKNOWN
        # No SQLSTATE: refused by the driver itself (a NUL in text), or no server at all,
        # or the connection lost.
        return REFUSED if type(error).__name__ in ("DataError", "IntegrityError") else OUTAGE
