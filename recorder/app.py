"""The one place that assembles a recorder from its settings: the database, the exchange
client, the account locks, the outage buffer and write path, the poller, and the listeners
(metrics, notifications). The command line, the demo and the tests all build it here."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from recorder.config import Settings
from recorder.errors import ConfigError
from recorder.polling import locks
from recorder.polling.buffer import OutageBuffer
from recorder.polling.cycle import Poller
from recorder.polling.daemon import Daemon
from recorder.polling.writes import WritePath, write_deadline
from recorder.sources.coinw.client import CoinWClient
from recorder.store.database import Database

log = logging.getLogger(__name__)


def instance_name() -> str:
    """Who takes a snapshot ("host:pid"), stored with it: tells recorders sharing a
    database apart."""
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


def open_database(settings: Settings) -> Database:
    """The database the settings name (not connected yet: it may be down)."""
    db = Database(settings.database_url, pool_size=max(5, settings.workers))
    if settings.ha and not db.dialect.server:
        db.close()
        raise ConfigError(
            "ha = true needs a shared PostgreSQL (or MariaDB) database: several recorders "
            "cannot share a SQLite file across machines."
        )
    return db


def journal_path(settings: Settings, db: Database) -> Path | None:
    """The outage journal of this configuration: `{database}` in buffer_file names the
    database, so two configurations in one folder never share a journal."""
    if settings.buffer_file is None:
        return None
    name = settings.buffer_file.name.replace("{database}", db.identity[:8])
    return settings.buffer_file.with_name(name)


def other_journals(settings: Settings, path: Path | None) -> list[Path]:
    """Journals beside this one, named by the same `buffer_file` pattern for another
    database identity, that still hold polls: another database, or this one reached by
    another spelling of its URL (`localhost` for `127.0.0.1`), whose polls wait there."""
    pattern = settings.buffer_file.name if settings.buffer_file else ""
    if path is None or "{database}" not in pattern:
        return []
    siblings = sorted(path.parent.glob(pattern.replace("{database}", "*")))
    return [p for p in siblings if p != path and p.is_file() and p.stat().st_size > 0]


def check_journal(path: Path | None) -> None:
    """Refuse to start when the outage journal cannot be written: polls buffered during an
    outage would be lost while the log promised the next run writes them."""
    if path is None:
        return
    if path.exists() and not path.is_file():
        raise ConfigError(
            f"buffer_file {str(path)!r} is not a regular file; set buffer_file to a file "
            'path (or to "" to keep buffered polls in memory only).'
        )
    existed = path.exists()
    try:
        with open(path, "a", encoding="utf-8"):
            pass
        if not existed:
            path.unlink()
    except OSError as error:
        raise ConfigError(
            f"buffer_file {str(path)!r} cannot be written ({error.strerror}); set buffer_file "
            'to a file in a folder this user can write, or to "" to keep buffered polls in '
            "memory only."
        ) from None


def open_client(settings: Settings, call_off: threading.Event | None = None) -> CoinWClient:
    """The exchange client the settings describe; a request in flight is called off once
    `call_off` is set."""
    return CoinWClient(
        settings.base_url,
        timeout=settings.timeout_seconds,
        max_response_bytes=settings.max_response_bytes,
        max_connections=max(10, settings.workers),
        max_requests_per_second=settings.max_requests_per_second,
        stopping=call_off.is_set if call_off is not None else lambda: False,
    )


@dataclass
class Recorder:
    """An assembled recorder; `close()` releases what it opened, in reverse order."""

    settings: Settings
    db: Database
    client: CoinWClient
    poller: Poller
    daemon: Daemon
    closing: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Release listeners, locks, and whatever this recorder opened itself."""
        while self.closing:
            self.closing.pop()()


#: What `/healthz` answers, from the recorder's database: (healthy, the document).
Health = Callable[[Database], tuple[bool, str]]


def build(
    settings: Settings,
    *,
    db: Database | None = None,
    client: CoinWClient | None = None,
    notify: bool = True,
    metrics_port: int | None = None,
    health: Health | None = None,
) -> Recorder:
    """Assemble a recorder. The database and client are opened here unless given (then the
    caller closes them); metrics (and /healthz, with `health`) are served only when
    `metrics_port` is given."""
    closing: list[Callable[[], None]] = []
    call_off = threading.Event()
    try:
        if db is None:
            db = open_database(settings)
            closing.append(db.close)
        if client is None:
            client = open_client(settings, call_off)
            closing.append(client.close)
        # A database that stops answering mid-write is an outage, not a hang.
        db.deadline = write_deadline(settings.interval_seconds)
        journal = journal_path(settings, db)
        check_journal(journal)
        for other in other_journals(settings, journal):
            log.warning(
                "The buffer journal %s beside this one holds polls of another database URL "
                "(another database, or this one spelled another way); they are written only "
                "by a run with that URL.",
                other,
            )
        account_locks = locks.for_database(db, settings.interval_seconds)
        claims = locks.Claims(account_locks, ha=settings.ha)
        closing.append(claims.close)
        buffer = OutageBuffer(journal, settings.buffer_max_snapshots, db.identity)
        closing.append(buffer.close)
        writes = WritePath(
            db,
            buffer,
            claims=claims,
            recorded_by=instance_name(),
            retry_seconds=settings.interval_seconds,
        )
        poller = Poller(settings, client, claims, writes, threading.Event())
        recorder = Recorder(settings, db, client, poller, Daemon(poller, call_off), closing)
        dropped: Callable[[], int] = lambda: 0  # noqa: E731
        if notify and settings.notify:
            from recorder.polling.notify import Notifier

            notifier = Notifier(settings.notify)
            poller.listeners.append(notifier.observe)
            closing.append(notifier.close)
            dropped = lambda: notifier.dropped  # noqa: E731
        if metrics_port is not None:
            _serve_metrics(recorder, metrics_port, dropped, health)
    except BaseException:
        while closing:
            closing.pop()()
        raise
    return recorder


def _serve_metrics(
    recorder: Recorder, port: int, dropped: Callable[[], int], health: Health | None
) -> None:
    from recorder.polling.metrics import Metrics

    metrics = Metrics(
        waiting=recorder.poller.writes.waiting,
        accounts=[account.name for account in recorder.settings.accounts],
        interval_seconds=recorder.settings.interval_seconds,
        notifications_dropped=dropped,
    )
    address = recorder.settings.metrics.address
    check = None if health is None else (lambda: health(recorder.db))
    try:
        served = metrics.serve(port, address, health=check)
    except OSError as error:
        raise metrics_refusal(address, port, error) from None
    log.info("Serving Prometheus metrics on http://%s:%d/metrics", address, served)
    recorder.poller.listeners.append(metrics.observe)
    recorder.closing.append(metrics.close)


def metrics_refusal(address: str, port: int, error: OSError) -> ConfigError:
    """Why metrics cannot be served: an address that does not parse or resolve, or that
    is not this machine's, is the address's fault; anything else (a port in use, or below
    1024) the port's."""
    if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
        return ConfigError(
            f"Cannot serve metrics on {address}:{port}: {address!r} is not an address of "
            f"this machine ({error.strerror}); set [metrics] address (RECORDER_METRICS_ADDRESS) "
            "to one of its addresses, e.g. 127.0.0.1, or 0.0.0.0 for all."
        )
    return ConfigError(
        f"Cannot serve metrics on {address}:{port} ({error.strerror}); choose another port "
        "with --metrics-port."
    )


@contextlib.contextmanager
def running(
    settings: Settings,
    *,
    db: Database | None = None,
    client: CoinWClient | None = None,
    notify: bool = True,
    metrics_port: int | None = None,
    health: Health | None = None,
) -> Iterator[Recorder]:
    """`build`, then `close` when done."""
    recorder = build(
        settings, db=db, client=client, notify=notify, metrics_port=metrics_port, health=health
    )
    try:
        yield recorder
    finally:
        recorder.close()
