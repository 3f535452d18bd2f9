"""Shared fixtures: a simulated exchange on loopback, and fresh databases on every backend.

PostgreSQL and MariaDB tests run when RECORDER_TEST_POSTGRES_URL / RECORDER_TEST_MYSQL_URL
are set (.ci/run sets both). Each test gets its own schema (PostgreSQL) or database
(MariaDB), dropped afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from recorder.sources.coinw.simulator import Simulator
from recorder.store import migrate
from recorder.store.database import Database
from tests.disk import SmallDisk, small_disk

API_KEY = "test-api-key-0001"
# A value that cannot occur by chance in any output: tests search for it everywhere.
SECRET = "S3CRET-never-show-me-7c1f0e9a55d24b"

BACKENDS = ("sqlite", "postgresql", "mysql")
_ENV = {"postgresql": "RECORDER_TEST_POSTGRES_URL", "mysql": "RECORDER_TEST_MYSQL_URL"}


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def snapshot_count(url: str) -> int:
    """Snapshots stored so far, read directly; 0 while the tables do not exist yet."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT count(*) FROM snapshots")).scalar_one())
    except sa.exc.DBAPIError:
        return 0
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_recorder", False):
            root.removeHandler(handler)


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator() as sim:
        sim.add_account(API_KEY, SECRET, {"BTC": "0.0012", "USDT": "257.518301140000000"})
        yield sim


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'recorder.db'}"


def _server_url(backend: str) -> str:
    url = os.environ.get(_ENV[backend])
    if not url:
        pytest.skip(f"{_ENV[backend]} is not set")
    return url


@contextlib.contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database on `backend`, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'db-{uuid.uuid4().hex[:8]}.db'}"
        return
    base = make_url(_server_url(backend))
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    if backend == "postgresql":
        create, drop = f'CREATE SCHEMA "{name}"', f'DROP SCHEMA "{name}" CASCADE'
        url = base.update_query_dict({"options": f"-csearch_path={name}"})
    else:
        create, drop = f"CREATE DATABASE `{name}`", f"DROP DATABASE `{name}`"
        url = base.set(database=name)
    with admin.connect() as connection:
        connection.execute(sa.text(create))
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(drop))
        admin.dispose()


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgresql", tmp_path) as url:
        yield url


@pytest.fixture
def mysql_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("mysql", tmp_path) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend in turn."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


def open_db(url: str) -> Database:
    """A database at the current schema (the caller closes it)."""
    db = Database(url)
    migrate.ensure_schema(db)
    return db


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated database on each backend in turn."""
    database = open_db(db_url)
    yield database
    database.close()


@pytest.fixture
def sqlite_db(sqlite_url: str) -> Iterator[Database]:
    """A migrated SQLite database."""
    database = open_db(sqlite_url)
    yield database
    database.close()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A small tmpfs of this test's own, to fill or make read-only."""
    with small_disk(tmp_path) as mounted:
        yield mounted


@pytest.fixture
def env(simulator: Simulator, sqlite_url: str) -> dict[str, str]:
    """Environment variables that point the recorder at the simulator and a SQLite file."""
    return {
        "COINW_API_KEY": API_KEY,
        "COINW_SECRET_KEY": SECRET,
        "COINW_BASE_URL": simulator.url,
        "RECORDER_DATABASE_URL": sqlite_url,
        "RECORDER_INTERVAL_SECONDS": "1",
    }
