"""Every backend difference, checked as SQL text and plain values: no server needed."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pymysql
import pytest
from sqlalchemy.engine import make_url

from recorder.errors import ConfigError
from recorder.store import dialects

SQLITE = dialects.for_name("sqlite")
POSTGRESQL = dialects.for_name("postgresql")
MYSQL = dialects.for_name("mysql")
T = datetime(2026, 3, 31, 23, 59, 59, 123456, tzinfo=UTC)


def test_mariadb_and_mysql_are_one_dialect() -> None:
    assert type(dialects.for_name("mariadb")) is type(MYSQL)


def test_statements_are_written_with_question_marks_and_sent_in_the_drivers_style() -> None:
    sql = "SELECT id FROM accounts WHERE name = ? AND id > ?"
    assert SQLITE.sql(sql) == sql
    assert POSTGRESQL.sql(sql) == MYSQL.sql(sql) == sql.replace("?", "%s")


def test_inserts_and_inserts_that_skip_existing_keys() -> None:
    columns = ("id", "name")
    assert SQLITE.insert("accounts", columns) == "INSERT INTO accounts (id, name) VALUES (?, ?)"
    assert SQLITE.insert("accounts", columns, ignore_duplicates=True).startswith(
        "INSERT OR IGNORE INTO accounts"
    )
    assert POSTGRESQL.insert("accounts", columns, ignore_duplicates=True) == (
        "INSERT INTO accounts (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING"
    )
    assert MYSQL.insert("accounts", columns, ignore_duplicates=True) == (
        "INSERT IGNORE INTO accounts (id, name) VALUES (%s, %s)"
    )


def test_new_ids_come_back_by_returning_on_postgresql_and_lastrowid_elsewhere() -> None:
    assert POSTGRESQL.insert_returning_id("snapshots", ("account_id",)).endswith(" RETURNING id")
    assert "RETURNING" not in SQLITE.insert_returning_id("snapshots", ("account_id",))
    assert "RETURNING" not in MYSQL.insert_returning_id("snapshots", ("account_id",))


def test_amount_columns_become_canonical_text_in_sql() -> None:
    assert SQLITE.number_text("b.amount") == "b.amount"  # already canonical text there
    assert POSTGRESQL.number_text("b.amount") == "CAST(b.amount AS TEXT)"
    trimmed = MYSQL.number_text("b.amount")
    assert "TRIM(TRAILING '0'" in trimmed and "TRIM(TRAILING '.'" in trimmed


def test_csv_fragments_are_joined_by_the_backend() -> None:
    assert SQLITE.concat(["a", "b"]) == "a || ',' || b"
    assert POSTGRESQL.concat(["a", "b"]) == "a || ',' || b"
    assert MYSQL.concat(["a", "b"]) == "CONCAT_WS(',', a, b)"
    assert POSTGRESQL.id_text("b.snapshot_id") == "CAST(b.snapshot_id AS TEXT)"


def test_maintenance_statements_and_where_they_run() -> None:
    assert SQLITE.maintenance(vacuum=True) == (["ANALYZE", "VACUUM"], True)
    statements, outside = POSTGRESQL.maintenance(vacuum=True)
    assert statements[0].startswith("VACUUM (ANALYZE) accounts") and outside
    statements, outside = MYSQL.maintenance(vacuum=False)
    assert statements[0].startswith("ANALYZE TABLE accounts") and not outside


def test_only_postgresql_resyncs_sequences_after_explicit_ids() -> None:
    assert SQLITE.resync_ids() == MYSQL.resync_ids() == []
    statements = POSTGRESQL.resync_ids()
    assert len(statements) == 4 and all("setval" in s for s in statements)
    assert not any("'balances'" in s for s in statements)


def test_size_period_seeks_and_locks_are_each_backends_own() -> None:
    assert SQLITE.size_query is None  # the file is measured
    assert "pg_total_relation_size" in (POSTGRESQL.size_query or "")
    assert "information_schema.tables" in (MYSQL.size_query or "")
    assert "LATERAL" in (POSTGRESQL.last_in_periods_query or "")
    assert SQLITE.last_in_periods_query is MYSQL.last_in_periods_query is None
    assert POSTGRESQL.try_lock == "SELECT pg_try_advisory_lock(:namespace, :key)"
    assert MYSQL.try_lock == "SELECT GET_LOCK(:name, 0)"
    assert SQLITE.server is False and POSTGRESQL.server and MYSQL.server


def test_times_are_bound_in_each_backends_form_and_read_back_as_utc() -> None:
    tokyo = T.astimezone(timezone(timedelta(hours=9)))
    assert SQLITE.storage_time(tokyo) == "2026-03-31 23:59:59.123456"
    assert POSTGRESQL.storage_time(tokyo) == T and POSTGRESQL.storage_time(tokyo).tzinfo
    assert MYSQL.storage_time(tokyo) == T.replace(tzinfo=None)
    for dialect in (SQLITE, POSTGRESQL, MYSQL):
        assert dialect.time_from_storage(dialect.storage_time(tokyo)) == T


def test_amounts_read_back_as_canonical_decimals() -> None:
    assert SQLITE.amount("257.51830114") == Decimal("257.51830114")
    assert POSTGRESQL.amount(Decimal("400")) == Decimal("400")
    padded = MYSQL.amount(Decimal("400.000000000000000000000000000000"))
    assert str(padded) == "400"


def test_refusals_of_the_data_are_told_from_outages() -> None:
    refused, outage = dialects.REFUSED, dialects.OUTAGE
    unique = sqlite3.IntegrityError("UNIQUE constraint failed")
    assert SQLITE.classify(unique) == refused
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = sqlite3.SQLITE_BUSY
    assert SQLITE.classify(locked) == outage
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL
    assert SQLITE.classify(full) == outage
    too_big = sqlite3.DataError("string or blob too big")
    assert SQLITE.classify(too_big) == refused

    class PgError(Exception):
        def __init__(self, sqlstate: str | None) -> None:
            super().__init__("x")
            self.sqlstate = sqlstate

    assert POSTGRESQL.classify(PgError("22P05")) == refused  # untranslatable character
    assert POSTGRESQL.classify(PgError("23505")) == refused  # unique violation
    assert POSTGRESQL.classify(PgError("08006")) == outage  # connection failure
    assert POSTGRESQL.classify(PgError("53100")) == outage  # disk full
    assert POSTGRESQL.classify(PgError("25006")) == outage  # read-only transaction
    assert POSTGRESQL.classify(PgError(None)) == outage

    assert MYSQL.classify(pymysql.err.IntegrityError(1062, "Duplicate entry")) == refused
    assert MYSQL.classify(pymysql.err.OperationalError(1366, "Incorrect string")) == refused
    assert MYSQL.classify(pymysql.err.DataError(1406, "Data too long")) == refused
    assert MYSQL.classify(pymysql.err.OperationalError(2003, "Can't connect")) == outage
    assert MYSQL.classify(pymysql.err.OperationalError(1290, "read-only")) == outage


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///recorder.db", "sqlite"),
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgres+psycopg://u@h/db", "postgresql+psycopg"),
        ("mysql://u@h/db", "mysql+pymysql"),
        ("mariadb://u@h/db", "mariadb+pymysql"),
        ("mysql+pymysql://u@h/db", "mysql+pymysql"),
    ],
)
def test_database_urls_get_the_drivers_we_ship(url: str, driver: str) -> None:
    assert dialects.parse_url(url).drivername == driver


def test_a_bad_url_is_refused_without_echoing_its_password() -> None:
    with pytest.raises(ConfigError, match="supports sqlite") as caught:
        dialects.parse_url("oracle://scott:tiger-password@host/db")
    assert "tiger-password" not in str(caught.value)
    with pytest.raises(ConfigError, match="not a database URL") as caught:
        dialects.parse_url("postgresql://user:hunter2-secret@host:notaport/db")
    assert "hunter2-secret" not in str(caught.value)


def test_the_sqlite_file_is_known_and_memory_has_none(tmp_path: Path) -> None:
    assert SQLITE.database_file(make_url(f"sqlite:///{tmp_path}/x.db")) == tmp_path / "x.db"
    assert SQLITE.database_file(make_url("sqlite://")) is None
    assert SQLITE.database_file(make_url("sqlite:///:memory:")) is None
    assert POSTGRESQL.database_file(make_url("postgresql://h/db")) is None


def test_lock_sessions_give_up_within_their_deadline_and_the_server_ends_silent_ones() -> None:
    url = make_url("postgresql+psycopg://u@h/db")
    args = POSTGRESQL.lock_session_args(url, 0.5)
    assert args["keepalives"] == 1 and args["tcp_user_timeout"] == 1000
    assert args["connect_timeout"] == 2  # libpq's least
    assert "connect_timeout" not in POSTGRESQL.lock_session_args(
        make_url("postgresql+psycopg://u@h/db?connect_timeout=30"), 0.5
    )
    (setup,) = POSTGRESQL.lock_session_setup(0.5, 4)
    assert "('idle_session_timeout', '4000')" in setup and "pg_settings" in setup
    assert "('statement_timeout', '500')" in setup
    mysql_args = MYSQL.lock_session_args(make_url("mysql+pymysql://u@h/db"), 0.5)
    assert mysql_args == {"connect_timeout": 0.5, "read_timeout": 0.5, "write_timeout": 0.5}
    assert MYSQL.lock_session_setup(0.5, 3.5) == ["SET SESSION wait_timeout = 4"]
    assert MYSQL.session_socket(object()) is None  # PyMySQL's own timeouts bound it


def test_copies_read_one_snapshot_and_upgrades_take_a_lock_on_every_backend() -> None:
    assert SQLITE.read_snapshot == ("BEGIN",)
    assert "REPEATABLE READ" in POSTGRESQL.read_snapshot[0]
    assert "WITH CONSISTENT SNAPSHOT" in MYSQL.read_snapshot[-1]
    assert SQLITE.upgrade_lock == ("BEGIN IMMEDIATE", "")
    assert "pg_try_advisory_xact_lock" in POSTGRESQL.upgrade_lock[0]
    assert POSTGRESQL.upgrade_lock[1] == ""  # the transaction's end releases it
    assert "GET_LOCK" in MYSQL.upgrade_lock[0] and "RELEASE_LOCK" in MYSQL.upgrade_lock[1]


def test_a_password_in_the_query_is_masked_like_one_in_the_userinfo() -> None:
    from recorder.store.dialects import displayed, parse_url, url_secrets

    url = parse_url("postgresql://u@h/db?password=Hunter2pw&sslmode=require")
    assert "Hunter2pw" not in displayed(url) and "sslmode=require" in displayed(url)
    assert url_secrets(url) == ["Hunter2pw"]
    both = parse_url("mysql://root:pw1@h/db?passwd=pw2")
    assert sorted(url_secrets(both)) == ["pw1", "pw2"]
    assert "pw1" not in displayed(both) and "pw2" not in displayed(both)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://u:Hun@ter2pw@127.0.0.1/db", "write an '@'"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:///file:x?mode=memory&uri=true", "in-memory"),
    ],
)
def test_urls_that_would_show_a_password_or_keep_nothing_are_refused(url: str, said: str) -> None:
    from recorder.errors import ConfigError
    from recorder.store.dialects import parse_url

    with pytest.raises(ConfigError, match=said) as refused:
        parse_url(url)
    assert "ter2pw" not in str(refused.value)
