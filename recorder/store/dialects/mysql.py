"""MariaDB and MySQL: DECIMAL(65,30) amounts, named locks, exact utf8mb4 names."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL
from sqlalchemy.types import TypeEngine

from recorder.store.dialects.base import OUTAGE, REFUSED, TABLES, UNKNOWN, Dialect, keepalive

#: The handshake's bound; a URL that sets read_timeout or write_timeout keeps its own.
_HANDSHAKE_SECONDS = 10.0


class MySQL(Dialect):
    name = "mysql"
    default_driver = "pymysql"
    extra = "mysql"

    insert_ignoring = ("INSERT IGNORE", "")
    size_query = (
        "SELECT sum(data_length + index_length) FROM information_schema.tables "
        "WHERE table_schema = DATABASE()"
    )
    try_lock = "SELECT GET_LOCK(:name, 0)"
    read_snapshot = (
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    )
    lock_scope = "SELECT DATABASE()"
    # A named lock outlives the implicit commits of MariaDB's DDL; it is released after.
    upgrade_lock = (
        "SELECT GET_LOCK(CONCAT('recorder-upgrade/', DATABASE()), 0)",
        "SELECT RELEASE_LOCK(CONCAT('recorder-upgrade/', DATABASE()))",
    )
    amount_type = mysql.DECIMAL(precision=65, scale=30)
    time_type = mysql.DATETIME(fsp=6)
    # Whatever the database's default: any character, compared exactly (migration 0004).
    message_type = mysql.TEXT(charset="utf8mb4", collation="utf8mb4_bin")

    def name_type(self, length: int) -> TypeEngine[Any]:
        return mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin")

    # Server error numbers about the data itself: duplicate key, too long, out of range,
    # a character the column cannot hold, a bad value, a missing reference, a row too big,
    # a CHECK constraint (MySQL 3819, MariaDB 4025), a trigger's SIGNAL (1644).
    _REFUSED_CODES = frozenset(
        {1048, 1062, 1118, 1264, 1265, 1292, 1300, 1366, 1406, 1416, 1451, 1452, 1690}
        | {1644, 3819, 3988, 4025}
    )
    # Server error numbers about the server, not the data: disk or table full, too many
    # connections, shutting down, access denied, lock wait timeout, deadlock, read-only,
    # interrupted or killed, a statement timeout (MySQL 3024, MariaDB 1969), dropped for
    # inactivity. The client's own numbers (2000-2999: lost, gone away, cannot connect)
    # are outages too.
    _OUTAGE_CODES = frozenset(
        {1021, 1030, 1040, 1044, 1045, 1053, 1114, 1142, 1205, 1213, 1290, 1317, 1792}
        | {1836, 1927, 1969, 3024, 4031}
    )

    ddl_commits = True  # each CREATE or ALTER TABLE commits at once

    def number_text(self, expression: str) -> str:
        # DECIMAL(65,30) pads with zeros: trim them, then a bare trailing point.
        return f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM CAST({expression} AS CHAR)))"

    def concat(self, fields: Sequence[str]) -> str:
        return f"CONCAT_WS(',', {', '.join(fields)})"

    def maintenance(self, *, vacuum: bool) -> tuple[list[str], bool]:
        verb = "OPTIMIZE TABLE" if vacuum else "ANALYZE TABLE"
        return [f"{verb} {', '.join(TABLES)}"], False

    def timeouts(self, url: URL) -> dict[str, Any]:
        # PyMySQL's read and write timeouts also bound the handshake of a server that
        # accepts a connection and then says nothing (connect_timeout covers only TCP's).
        # Once connected they are lifted (on_connect): a long OPTIMIZE TABLE or migration
        # must not be cut off, and the recorder's own deadlines (Database.deadline) and TCP
        # keepalives bound the rest.
        timeouts = {
            "connect_timeout": _HANDSHAKE_SECONDS,
            "read_timeout": _HANDSHAKE_SECONDS,
            "write_timeout": _HANDSHAKE_SECONDS,
        }
        return {key: value for key, value in timeouts.items() if key not in url.query}

    def on_connect(self, dbapi_connection: Any) -> None:
        for name in ("_read_timeout", "_write_timeout"):
            if getattr(dbapi_connection, name, None) == _HANDSHAKE_SECONDS:
                setattr(dbapi_connection, name, None)
        sock = getattr(dbapi_connection, "_sock", None)
        if sock is not None:
            keepalive(sock)

    def lock_session_args(self, url: URL, timeout: float) -> dict[str, Any]:
        # PyMySQL's socket timeouts bound every wait on the lock session.
        args = {"connect_timeout": timeout, "read_timeout": timeout, "write_timeout": timeout}
        return {key: value for key, value in args.items() if key not in url.query}

    def lock_session_setup(self, timeout: float, idle_seconds: float) -> list[str]:
        return [f"SET SESSION wait_timeout = {max(1, math.ceil(idle_seconds))}"]

    def session_socket(self, driver_connection: Any) -> int | None:
        # PyMySQL's read_timeout would also cut off a long OPTIMIZE TABLE: hang up instead.
        sock = getattr(driver_connection, "_sock", None)
        return None if sock is None else int(sock.fileno())

    def streaming_cursor(self, raw: Any) -> Any:
        import pymysql.cursors

        return raw.cursor(pymysql.cursors.SSCursor)

    def classify(self, error: BaseException) -> str:
        code = error.args[0] if error.args and isinstance(error.args[0], int) else None
        if code in self._REFUSED_CODES:
            return REFUSED
        if type(error).__name__ in ("DataError", "IntegrityError"):
            return REFUSED
        if code is None or code in self._OUTAGE_CODES or 2000 <= code < 3000:
            return OUTAGE
        return UNKNOWN
