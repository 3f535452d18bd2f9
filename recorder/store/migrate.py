"""The schema's version: create an empty database, migrate an older one, refuse a newer one.

Alembic scripts live in migrations/ (inside an installed wheel: recorder/_migrations). The
usual start, a database already at the newest revision, is answered by one query, without
loading Alembic (10 MB, 100 ms).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from recorder.errors import SchemaError, StoreError
from recorder.store.database import Database
from recorder.store.dialects import TABLES

log = logging.getLogger(__name__)

#: The newest migration in migrations/versions (a test keeps the two in step).
HEAD_REVISION = "0005"
#: How long an upgrade waits for another one (another `db upgrade`, a starting daemon).
UPGRADE_WAIT_SECONDS = 120.0


def migrations_dir() -> Path:
    """Where the Alembic scripts are: inside an installed wheel, or at the repository root."""
    package = Path(__file__).resolve().parents[1]
    packaged = package / "_migrations"
    if packaged.is_dir():
        return packaged
    return package.parent / "migrations"


def _alembic_config(connection: Connection | None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this version of the recorder knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(None)).get_current_head()
    assert head is not None
    return head


def current_revision(db: Database) -> str | None:
    """The migration the database is at; None for an empty database."""
    from alembic.migration import MigrationContext

    with db.translated(), db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(db: Database, revision: str = "head") -> None:
    """Apply migrations up to `revision`, one upgrade at a time: a second one waits for
    the first, then finds the schema current and does nothing."""
    from alembic import command

    with db.transaction(bounded=False) as connection, _one_upgrade_at_a_time(db, connection):
        if db.dialect.ddl_commits:
            _clear_a_half_built_schema(db, connection)
        command.upgrade(_alembic_config(connection), revision)


#: The views of the schema, dropped before the tables they read.
_VIEWS = ("portfolio_values", "daily_balances", "latest_balances")


def _clear_a_half_built_schema(db: Database, connection: Connection) -> None:
    """Where each table change commits at once (MariaDB), an upgrade cut short (a killed
    `db copy` or first start) leaves tables no revision describes, and every later upgrade
    fails on them. Such a schema holds no rows yet: it is dropped and built again. A
    schema with rows is never touched."""
    import sqlalchemy as sa
    from alembic.migration import MigrationContext

    present = set(sa.inspect(connection).get_table_names())
    ours = [table for table in TABLES if table in present]
    if not ours or MigrationContext.configure(connection).get_current_revision() == HEAD_REVISION:
        return
    if any(db.run(connection, f"SELECT 1 FROM {table} LIMIT 1").first() for table in ours):
        return
    log.warning(
        "The database at %s holds an unfinished schema without rows (an upgrade cut short); "
        "it is built again from the start.",
        db.display_url,
    )
    for view in _VIEWS:
        db.run(connection, f"DROP VIEW IF EXISTS {view}")
    for table in (*reversed(TABLES), "alembic_version"):
        db.run(connection, f"DROP TABLE IF EXISTS {table}")


@contextlib.contextmanager
def _one_upgrade_at_a_time(db: Database, connection: Connection) -> Iterator[None]:
    """Hold the database's upgrade lock (Dialect.upgrade_lock) inside the transaction."""
    take, release = db.dialect.upgrade_lock
    deadline = time.monotonic() + UPGRADE_WAIT_SECONDS
    waited = False
    while not _taken(db.run(connection, take)):
        if not waited:
            log.info(
                "Another recorder process is upgrading the schema at %s; waiting for it.",
                db.display_url,
            )
            waited = True
        if time.monotonic() > deadline:
            raise SchemaError(
                f"Another recorder process is still upgrading the schema at {db.display_url} "
                f"after {UPGRADE_WAIT_SECONDS:.0f} s; try again when it has finished."
            )
        time.sleep(0.2)
    try:
        yield
    finally:
        if release:
            try:
                db.run(connection, release).all()
            except Exception:
                connection.invalidate()  # closing the session frees the lock
                raise


def _taken(result: Any) -> bool:
    """A lock statement's answer: true when taken; no row (SQLite's BEGIN) is taken."""
    if not result.returns_rows:
        return True
    return bool(result.scalar())


def downgrade(db: Database, revision: str) -> None:
    """Undo migrations down to `revision` ("base" empties the database)."""
    from alembic import command

    with db.transaction(bounded=False) as connection:
        command.downgrade(_alembic_config(connection), revision)


def stamped_revision(db: Database) -> str | None:
    """The revision in alembic_version, read directly; None if there is none (or no table,
    or no database: the slow path says which)."""
    try:
        versions = [row[0] for row in db.rows("SELECT version_num FROM alembic_version")]
    except StoreError:
        return None
    return versions[0] if len(versions) == 1 else None


def _knows(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(None))
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic raises several types for an unknown id
        return False


def newer_schema(db: Database) -> str | None:
    """The revision of a database whose schema is newer than this recorder knows; None
    for any other (or for one that does not answer)."""
    current = stamped_revision(db)
    if current is None or current == HEAD_REVISION or _knows(current):
        return None
    return current


def _newer(db: Database, revision: str) -> SchemaError:
    return SchemaError(
        f"The database at {db.display_url} has schema revision {revision}, newer than this "
        "recorder knows; upgrade the recorder."
    )


def ensure_schema(db: Database) -> None:
    """Bring an empty or older database to the current schema; refuse a newer one."""
    if stamped_revision(db) == HEAD_REVISION:
        return  # the usual case
    current, head = current_revision(db), head_revision()
    if current == head:
        return
    if current is not None and not _knows(current):
        raise _newer(db, current)
    log.info(
        "Upgrading the database schema at %s from %s to %s.",
        db.display_url,
        current or "empty",
        head,
    )
    upgrade(db)


def check_schema(db: Database) -> None:
    """For commands that only read: the database must exist and be at this recorder's
    schema. Creates and migrates nothing; SchemaError says what to do otherwise."""
    if db.path is not None and not db.path.exists():
        raise SchemaError(
            f"There is no database at {db.path}: nothing has been recorded there; check "
            "database_url (relative SQLite paths are relative to the config file's folder)."
        )
    if stamped_revision(db) == HEAD_REVISION:
        return  # the usual case
    current, head = current_revision(db), head_revision()
    if current == head:
        return
    if current is None:
        raise SchemaError(
            f"The database at {db.display_url} holds no recorder tables; check database_url, "
            "or create them with `recorder db upgrade`."
        )
    if not _knows(current):
        raise _newer(db, current)
    raise SchemaError(
        f"The database at {db.display_url} has schema revision {current}, older than this "
        f"recorder's {head}; run `recorder db upgrade` to migrate it."
    )
