"""The benchmark suite: every figure beside a hand-written baseline on the same data.

    python benchmarks/run.py                  # everything: a year of minute data (~20 min)
    python benchmarks/run.py --quick          # 30 days of data, 1 minute of 1000 accounts
    RECORDER_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1/test \\
        python benchmarks/run.py              # adds the PostgreSQL rows

Run by hand, never in CI. Prints one table and writes docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import make_history

from recorder import __version__, app
from recorder.config import AccountConfig, Settings
from recorder.polling.pricing import valuate
from recorder.reports import gather
from recorder.secret import Secret
from recorder.sources.coinw.client import CoinWClient
from recorder.store import bulk, history, migrate, writes
from recorder.store.database import Database
from recorder.values import Credentials, Observation, PollOutcome, Snapshot

UTC = dt.UTC


@dataclass
class Row:
    what: str
    measured: str
    baseline: str
    ratio: str
    target: str
    holds: bool | None
    note: str = ""


ROWS: list[Row] = []


def add(row: Row) -> None:
    ROWS.append(row)
    mark = {True: "yes", False: "NO", None: "-"}[row.holds]
    print(
        f"{row.what:<58} {row.measured:>16} {row.baseline:>16} {row.ratio:>7} {mark:>4}", flush=True
    )


def fresh_sqlite(path: Path) -> str:
    for suffix in ("", "-wal", "-shm", ".recorder-lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def raw_sqlite(path: Path) -> sqlite3.Connection:
    """The baseline's connection: the same pragmas the recorder uses."""
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        connection.execute(f"PRAGMA {pragma}")
    return connection


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


# -- 1. store + diff of one poll ------------------------------------------------------------


def bench_poll(work: Path, polls: int) -> None:
    names = [f"C{i:02d}" for i in range(20)]
    pairs = {f"{n}_USDT": Decimal("1.2345") for n in names}
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)

    def holdings(i: int) -> dict[str, Decimal]:
        # Two currencies move every poll: a realistic, slightly busy account.
        return {n: Decimal(f"{100 + (i if j < 2 else 0)}.12345678") for j, n in enumerate(names)}

    db = Database(fresh_sqlite(work / "poll.db"))
    migrate.ensure_schema(db)
    writes.account_id(db, "main")
    samples = []
    for i in range(polls):
        balances = holdings(i)
        valuation = valuate(balances, pairs)
        moment = start + dt.timedelta(seconds=i)
        began = time.perf_counter()
        # The poll's write path: read the previous snapshot, diff, insert, one transaction.
        observation = Observation.of_snapshot("main", Snapshot(moment, balances, {}, valuation))
        writes.record(db, observation, recorded_by="bench:1", replay=False)
        samples.append(time.perf_counter() - began)
    db.close()

    connection = raw_sqlite(work / "poll.db")
    account = connection.execute("INSERT INTO accounts (name) VALUES ('raw')").lastrowid
    raw = []
    for i in range(polls):
        balances = holdings(i)
        valuation = valuate(balances, pairs)
        stamp = (start + dt.timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f")
        began = time.perf_counter()
        connection.execute("BEGIN")
        previous = dict(
            connection.execute(
                "SELECT currency, amount FROM balances WHERE snapshot_id = (SELECT id FROM "
                "snapshots WHERE account_id = ? AND taken_at < ? ORDER BY taken_at DESC, id DESC "
                "LIMIT 1)",
                (account, stamp),
            )
        )
        texts = {c: format(a, "f") for c, a in balances.items()}
        changed = [(c, previous.get(c), t) for c, t in texts.items() if previous.get(c) != t]
        snapshot = connection.execute(
            "INSERT INTO snapshots (account_id, taken_at, total_value_usdt, unpriced_count) "
            "VALUES (?, ?, ?, 0)",
            (account, stamp, str(valuation.total)),
        ).lastrowid
        connection.executemany(
            "INSERT INTO balances (snapshot_id, currency, amount, price_usdt, value_usdt) "
            "VALUES (?, ?, ?, ?, ?)",
            [(snapshot, c, t, "1.2345", str(valuation.values[c])) for c, t in texts.items()],
        )
        connection.executemany(
            "INSERT INTO balance_changes (account_id, snapshot_id, currency, old_amount, "
            "new_amount, delta, taken_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(account, snapshot, c, old, new, new, stamp) for c, old, new in changed],
        )
        connection.execute("COMMIT")
        raw.append(time.perf_counter() - began)
    connection.close()
    ours, theirs = median_ms(samples), median_ms(raw)
    add(
        Row(
            "store + diff of one poll, 20 currencies, one transaction",
            f"{ours:.3f} ms",
            f"{theirs:.3f} ms",
            f"{ours / theirs:.1f}x",
            "<= 1 ms; <= 5x raw",
            ours <= 1 and ours / theirs <= 5,
            f"median of {polls} polls, two currencies changing each poll",
        )
    )


# -- 2. the bulk write path -------------------------------------------------------------------


def bench_bulk(work: Path, rows: int) -> None:
    snapshots = rows // 20
    balance_rows = [
        (s, f"C{c:02d}", f"{s % 997}.{c:04d}5", "1.25", f"{s % 997 * 1.25:.4f}")
        for s in range(1, snapshots + 1)
        for c in range(20)
    ]
    snapshot_rows = [
        (s, 1, f"2026-01-01 00:00:{s % 60:02d}.{s:06d}"[:26], None, 0)
        for s in range(1, snapshots + 1)
    ]
    columns = ("snapshot_id", "currency", "amount", "price_usdt", "value_usdt")

    db = Database(fresh_sqlite(work / "bulk.db"))
    migrate.ensure_schema(db)
    writes.account_id(db, "main")
    began = time.perf_counter()
    for i in range(0, snapshots, 5000):
        with bulk.bulk(db) as writer:
            writer.insert("snapshots", make_history.SNAPSHOT_COLUMNS, snapshot_rows[i : i + 5000])
            writer.insert("balances", columns, balance_rows[i * 20 : (i + 5000) * 20])
    ours = rows / (time.perf_counter() - began)
    db.close()

    fresh_sqlite(work / "bulk-raw.db")
    db = Database(f"sqlite:///{work / 'bulk-raw.db'}")
    migrate.ensure_schema(db)
    writes.account_id(db, "main")
    db.close()
    connection = raw_sqlite(work / "bulk-raw.db")
    began = time.perf_counter()
    for i in range(0, snapshots, 5000):
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO snapshots (id, account_id, taken_at, "
            "total_value_usdt, unpriced_count) VALUES (?, ?, ?, ?, ?)",
            snapshot_rows[i : i + 5000],
        )
        connection.executemany(
            "INSERT INTO balances (snapshot_id, currency, amount, "
            "price_usdt, value_usdt) VALUES (?, ?, ?, ?, ?)",
            balance_rows[i * 20 : (i + 5000) * 20],
        )
        connection.execute("COMMIT")
    theirs = rows / (time.perf_counter() - began)
    connection.close()
    add(
        Row(
            "bulk write path (db copy, make_history)",
            f"{ours:,.0f} rows/s",
            f"{theirs:,.0f} rows/s",
            f"{ours / theirs:.2f}x",
            ">= 300,000/s; >= 0.3x raw",
            ours >= 300_000 and ours / theirs >= 0.3,
            f"{rows:,} balance rows, 100k per commit",
        )
    )


# -- 3. a year of minute data: size, at, history, export --------------------------------------


def year_database(work: Path, days: float) -> tuple[Path, int]:
    path = work / f"year-{days:g}d.db"
    snapshots = int(days * 1440)
    if path.exists():
        with sqlite3.connect(path) as connection:
            try:
                found = connection.execute("SELECT count(*) FROM snapshots").fetchone()[0]
                # A history from the generator before it stopped writing zero deltas is
                # made again.
                old = connection.execute(
                    "SELECT count(*) FROM balance_changes WHERE delta = '0'"
                ).fetchone()[0]
                if found == snapshots and not old:
                    return path, connection.execute("SELECT count(*) FROM balances").fetchone()[0]
            except sqlite3.OperationalError:
                pass
    print(f"generating {days:g} days of minute data ({snapshots:,} snapshots)...", flush=True)
    db = Database(fresh_sqlite(path))
    migrate.ensure_schema(db)
    counts = make_history.generate(db, accounts=1, days=days, currencies=20, interval=60)
    db.close()
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path, counts["balances"]


def bench_size(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        lengths = connection.execute(
            "SELECT avg(length(amount)), avg(length(price_usdt)), avg(length(value_usdt)) "
            "FROM (SELECT * FROM balances LIMIT 200000)"
        ).fetchone()
    size = path.stat().st_size
    per_row = size / rows
    add(
        Row(
            "database size per balance row, SQLite, indexes included",
            f"{per_row:.1f} B",
            "-",
            "-",
            "<= 60 bytes",
            per_row <= 60,
            f"{size / 1e6:,.0f} MB for {rows:,} rows; average text length of amount / price / "
            f"value: {lengths[0]:.1f} / {lengths[1]:.1f} / {lengths[2]:.1f} characters",
        )
    )


def moments(db: Database, count: int, seed: int = 7) -> list[dt.datetime]:
    span = history.time_range(db, list(history.resolve_accounts(db).values()))
    assert span is not None
    first, last = span
    rng = random.Random(seed)
    return [first + (last - first) * rng.random() for _ in range(count)]


def bench_at(url: str, label: str, raw_at: Callable[[dt.datetime], list[Any]]) -> None:
    db = Database(url)
    selection = gather.Selection(accounts=history.resolve_accounts(db))
    when = moments(db, 200)
    for moment in when:  # warm the page cache for both, so neither pays for the other
        gather.holdings_at(db, selection, moment)
        raw_at(moment)
    ours = []
    for moment in when:
        began = time.perf_counter()
        result = gather.holdings_at(db, selection, moment)
        ours.append(time.perf_counter() - began)
        assert result[0].holdings
    theirs = []
    for moment in when:
        began = time.perf_counter()
        rows = raw_at(moment)
        theirs.append(time.perf_counter() - began)
        assert rows
    db.close()
    a, b = median_ms(ours), median_ms(theirs)
    add(
        Row(
            f"`recorder at WHEN`, a year x 20 currencies ({label})",
            f"{a:.2f} ms",
            f"{b:.2f} ms",
            f"{a / b:.1f}x",
            "<= 20 ms; <= 2x raw" if label == "SQLite" else "-",
            (a <= 20 and a / b <= 2) if label == "SQLite" else None,
            "median of 200 random moments after a warm-up pass, in-process (the command "
            "adds interpreter start-up)",
        )
    )


def bench_history(
    url: str, label: str, raw_history: Callable[[list[tuple[dt.datetime, dt.datetime]]], list[Any]]
) -> None:
    db = Database(url)
    accounts = history.resolve_accounts(db)
    span = history.time_range(db, list(accounts.values()))
    assert span is not None
    # Up to the last snapshot: days after it would be carried, and the baseline has none.
    selection = gather.Selection(accounts=accounts, currencies=["BTC"], until=span[1])
    now = dt.datetime.now(UTC)
    ours, theirs = [], []
    from recorder import timespec

    bounds = list(timespec.periods(span[0], span[1], "day", UTC))
    list(gather.balances_over_time(db, selection, "day", now))  # warm the cache for both
    raw_history(bounds)
    for _ in range(5):
        began = time.perf_counter()
        rows = list(gather.balances_over_time(db, selection, "day", now))
        ours.append(time.perf_counter() - began)
        began = time.perf_counter()
        raw_rows = raw_history(bounds)
        theirs.append(time.perf_counter() - began)
    assert len(rows) == len(raw_rows), (len(rows), len(raw_rows))
    db.close()
    a, b = median_ms(ours), median_ms(theirs)
    add(
        Row(
            f"`recorder history --every day`, one currency, a year ({label})",
            f"{a:.0f} ms",
            f"{b:.0f} ms",
            f"{a / b:.1f}x",
            "<= 500 ms; <= 2x raw" if label == "SQLite" else "-",
            (a <= 500 and a / b <= 2) if label == "SQLite" else None,
            f"{len(rows)} daily rows, median of 5",
        )
    )


def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in MB) of a child process. GNU time measures the peak: a
    child forked from this (large) process would report this process's size otherwise."""
    began = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - began
    return wall, int(result.stderr.strip().splitlines()[-1]) // 1024


RAW_EXPORT = """
import csv, sqlite3, sys
connection = sqlite3.connect(sys.argv[1])
cursor = connection.execute(
    "SELECT a.name, s.taken_at, b.snapshot_id, b.currency, b.amount, b.price_usdt, "
    "b.value_usdt, b.available, b.on_orders FROM snapshots s "
    "JOIN balances b ON b.snapshot_id = s.id JOIN accounts a ON a.id = s.account_id "
    "ORDER BY s.account_id, s.taken_at, s.id")
with open(sys.argv[2], "w", newline="") as out:
    writer = csv.writer(out)
    while rows := cursor.fetchmany(10000):
        writer.writerows(rows)
"""


def bench_export(url: str, label: str, rows: int, work: Path, raw: list[str] | None) -> None:
    out = work / "export.csv"
    wall, rss = run_measured(
        [sys.executable, "-m", "recorder", "export", "-o", str(out)], {"RECORDER_DATABASE_URL": url}
    )
    with out.open() as handle:
        lines = sum(1 for _ in handle) - 1
    assert lines == rows, (lines, rows)
    ours = rows / wall
    baseline, ratio, raw_note = "-", "-", ""
    if raw is not None:
        raw_wall, raw_rss = run_measured(raw, {})
        baseline = f"{rows / raw_wall:,.0f} rows/s"
        ratio = f"{ours / (rows / raw_wall):.2f}x"
        raw_note = f" (baseline: raw sqlite3 + csv module, peak RSS {raw_rss} MB)"
    add(
        Row(
            f"`recorder export --format csv`, {rows / 1e6:.1f} M rows ({label})",
            f"{ours:,.0f} rows/s",
            baseline,
            ratio,
            ">= 500,000 rows/s; RSS <= 150 MB" if label == "SQLite" else "-",
            (ours >= 500_000 and rss <= 150) if label == "SQLite" else None,
            f"whole command, start-up included; peak RSS {rss} MB{raw_note}",
        )
    )
    out.unlink()


# -- 4. the daemon: idle memory, and 1000 accounts --------------------------------------------


def bench_idle(work: Path) -> None:
    from recorder.sources.coinw.simulator import Simulator

    database = work / "idle.db"
    fresh_sqlite(database)
    readings = []
    with Simulator() as simulator:
        simulator.add_account("idle-key", "idle-secret-0123456789", {"BTC": "0.0012"})
        simulator.set_ticker({"BTC_USDT": "96903.7"})
        env = {
            "COINW_API_KEY": "idle-key",
            "COINW_SECRET_KEY": "idle-secret-0123456789",
            "COINW_BASE_URL": simulator.url,
            "RECORDER_DATABASE_URL": f"sqlite:///{database}",
            "RECORDER_INTERVAL_SECONDS": "60",
        }
        # The first start creates the schema (loading Alembic); the second is the usual
        # start of a daemon on its existing database.
        for _ in range(2):
            polled = len(simulator.requests("returnBalances"))
            daemon = subprocess.Popen(
                [sys.executable, "-m", "recorder", "run"],
                cwd=work,
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + 30
                while (
                    len(simulator.requests("returnBalances")) <= polled
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.1)
                time.sleep(5)  # idle between polls: what is measured, not a wait for state
                status = Path(f"/proc/{daemon.pid}/status").read_text()
            finally:
                daemon.terminate()
                daemon.wait(timeout=15)
            line = next(line for line in status.splitlines() if line.startswith("VmRSS"))
            readings.append(int(line.split()[1]) / 1024)
    probe = "import re; print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())[1])"
    bare = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    first, usual = readings
    add(
        Row(
            "daemon idle RSS, one account",
            f"{usual:.0f} MB",
            f"{int(bare.stdout) / 1024:.0f} MB",
            "-",
            "<= 60 MB",
            usual <= 60,
            f"VmRSS 5 s after the first poll of a daemon started on its existing database; "
            f"{first:.0f} MB on the very first start, which creates the schema with Alembic; "
            "baseline: a bare Python interpreter",
        )
    )


def bench_thousand(work: Path, minutes: float, accounts: int = 1000) -> None:
    log = work / "requests.json"
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "serve_simulator.py"),
            "--accounts",
            str(accounts),
            "--log",
            str(log),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    secret = "benchmark-secret-0123456789abcdef"
    settings = Settings(
        base_url=url,
        interval_seconds=60,
        buffer_file=None,
        database_url=fresh_sqlite(work / "thousand.db"),
        accounts=tuple(
            AccountConfig(f"acct{n:04d}", Credentials(f"bench-{n:04d}", Secret(secret)))
            for n in range(accounts)
        ),
    )
    client = CoinWClient(
        url,
        max_requests_per_second=settings.max_requests_per_second,
        max_connections=settings.workers,
    )
    recorder = app.build(settings, client=client)
    results: list[PollOutcome] = []
    recorder.poller.listeners.append(results.append)
    thread = threading.Thread(target=recorder.daemon.run, kwargs={"handle_signals": False})
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.monotonic()
    thread.start()
    time.sleep(minutes * 60)  # the measurement window itself
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = time.monotonic() - began
    recorder.daemon.stop()
    thread.join(timeout=60)
    recorder.close()
    client.close()
    server.terminate()
    server.wait(timeout=30)
    cpu = cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    lateness = sorted(
        (r.attempted_at - r.scheduled_at).total_seconds()
        for r in results
        if r.scheduled_at is not None
    )
    p99 = lateness[int(len(lateness) * 0.99) - 1]
    by_key: dict[str, list[float]] = defaultdict(list)
    answered: dict[str, int] = defaultdict(int)
    for key, at, answer in json.loads(log.read_text()):
        by_key[key].append(at)
        answered[answer] += 1
    worst = 0
    for times in by_key.values():
        times.sort()
        for i, start in enumerate(times):
            worst = max(worst, sum(1 for t in times[i : i + 5] if t - start < 1.0))
    ok = sum(r.ok for r in results)
    add(
        Row(
            f"one daemon, {accounts} accounts every 60 s, against the simulator",
            f"p99 late {p99:.2f} s",
            "-",
            "-",
            "p99 <= 1 s; <= 3 req/s/account; CPU <= 25%",
            p99 <= 1 and worst <= 3 and cpu / elapsed <= 0.25,
            f"{len(lateness):,} polls ({ok:,} stored) in {elapsed / 60:.0f} min; at most "
            f"{worst} requests in any second per account; CPU {cpu / elapsed:.1%} of one core; "
            f"answers {dict(answered)}",
        )
    )


# -- PostgreSQL -------------------------------------------------------------------------------


def postgres_rows(pg_url: str, year: Path, rows: int, work: Path) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    from recorder.store.copy import copy_history

    target = Database(pg_url)
    raw_url = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(raw_url, autocommit=True) as connection:
        for table in (
            "balance_changes",
            "balances",
            "poll_errors",
            "snapshots",
            "accounts",
            "alembic_version",
        ):
            connection.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        for view in ("latest_balances", "daily_balances", "portfolio_values"):
            connection.execute(f"DROP VIEW IF EXISTS {view}")
    began = time.perf_counter()
    copy_history(Database(f"sqlite:///{year}"), target)
    seconds = time.perf_counter() - began
    target.close()
    add(
        Row(
            "`recorder db copy` SQLite -> PostgreSQL, verified",
            f"{rows / seconds:,.0f} rows/s",
            "-",
            "-",
            "-",
            None,
            f"{rows:,} balance rows in {seconds:.0f} s, checksums included",
        )
    )
    connection = psycopg.connect(raw_url)

    def raw_at(moment: dt.datetime) -> list[Any]:
        return connection.execute(
            "SELECT currency, amount, price_usdt, value_usdt FROM balances WHERE snapshot_id = "
            "(SELECT id FROM snapshots WHERE account_id = 1 AND taken_at <= %s "
            "ORDER BY taken_at DESC, id DESC LIMIT 1)",
            (moment,),
        ).fetchall()  # psycopg returns Decimal already: the same exact values

    def raw_history(bounds: list[tuple[dt.datetime, dt.datetime]]) -> list[Any]:
        # Hand-tuned for PostgreSQL: every period's seek in one statement.
        return connection.execute(
            "SELECT b.currency, b.amount, b.price_usdt, b.value_usdt "
            "FROM unnest(%s::timestamptz[], %s::timestamptz[]) AS p(s, e) "
            "CROSS JOIN LATERAL (SELECT id FROM snapshots "
            "WHERE account_id = 1 AND taken_at >= p.s AND taken_at < p.e "
            "ORDER BY taken_at DESC, id DESC LIMIT 1) x JOIN balances b ON b.snapshot_id = x.id "
            "AND b.currency = 'BTC'",
            ([s for s, _ in bounds], [e for _, e in bounds]),
        ).fetchall()

    bench_at(pg_url, "PostgreSQL", raw_at)
    bench_history(pg_url, "PostgreSQL", raw_history)
    bench_export(pg_url, "PostgreSQL", rows, work, None)
    connection.close()


# -- the report -------------------------------------------------------------------------------


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        line.split()[1]
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return (
        f"{os.cpu_count()} x {cpu}, {int(memory) / 1024 / 1024:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, recorder {__version__}"
    )


def write_markdown(path: Path, args: argparse.Namespace, notes: str) -> None:
    lines = [
        "# Benchmarks",
        "",
        f"Measured {dt.datetime.now(UTC):%Y-%m-%d} by `python benchmarks/run.py"
        f"{' --quick' if args.quick else ''}` on {machine()}.",
        "",
        "Each figure stands beside a baseline measured in the same run on the same data: "
        "hand-written raw `sqlite3` (or `psycopg`) doing the same work as directly as "
        "possible. The ratio is the figure that counts.",
        "",
        "| what | measured | baseline | ratio | target | holds |",
        "|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        mark = {True: "yes", False: "**no**", None: "-"}[row.holds]
        lines.append(
            f"| {row.what} | {row.measured} | {row.baseline} | {row.ratio} | "
            f"{row.target} | {mark} |"
        )
    lines += ["", "## How each figure was measured", ""]
    lines += [f"- **{row.what}**: {row.note}" for row in ROWS if row.note]
    lines += ["", notes.strip(), ""]
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 days, 1 minute of 1000 accounts")
    parser.add_argument("--days", type=float, default=None)
    parser.add_argument("--scale-minutes", type=float, default=None)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "recorder-bench")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--notes", type=Path, default=ROOT / "benchmarks" / "notes.md")
    args = parser.parse_args()
    days = args.days or (30 if args.quick else 365)
    minutes = args.scale_minutes or (1.5 if args.quick else 5)
    args.work.mkdir(parents=True, exist_ok=True)
    print(machine())
    print(f"{'what':<58} {'measured':>16} {'baseline':>16} {'ratio':>7} {'ok':>4}")
    bench_poll(args.work, 3000)
    bench_bulk(args.work, 1_000_000)
    year, rows = year_database(args.work, days)
    bench_size(year, rows)
    url = f"sqlite:///{year}"
    connection = sqlite3.connect(year)

    def raw_at(moment: dt.datetime) -> list[Any]:
        rows = connection.execute(
            "SELECT currency, amount, price_usdt, value_usdt FROM balances WHERE snapshot_id = "
            "(SELECT id FROM snapshots WHERE account_id = 1 AND taken_at <= ? "
            "ORDER BY taken_at DESC, id DESC LIMIT 1)",
            (moment.strftime("%Y-%m-%d %H:%M:%S.%f"),),
        ).fetchall()
        # The same work as the recorder: exact Decimal amounts, not strings.
        return [(c, Decimal(a), p and Decimal(p), v and Decimal(v)) for c, a, p, v in rows]

    def raw_history(bounds: list[tuple[dt.datetime, dt.datetime]]) -> list[Any]:
        found = []
        for start, end in bounds:
            rows = connection.execute(
                "SELECT b.currency, b.amount, b.price_usdt, b.value_usdt FROM balances b "
                "WHERE b.currency = 'BTC' AND b.snapshot_id = "
                "(SELECT id FROM snapshots WHERE account_id = 1 AND taken_at >= ? AND "
                "taken_at < ? ORDER BY taken_at DESC, id DESC LIMIT 1)",
                (start.strftime("%Y-%m-%d %H:%M:%S.%f"), end.strftime("%Y-%m-%d %H:%M:%S.%f")),
            ).fetchall()
            # The same work as the recorder: exact Decimal amounts, not strings.
            found += [(c, Decimal(a), p and Decimal(p), v and Decimal(v)) for c, a, p, v in rows]
        return found

    bench_at(url, "SQLite", raw_at)
    bench_history(url, "SQLite", raw_history)
    bench_export(
        url,
        "SQLite",
        rows,
        args.work,
        [sys.executable, "-c", RAW_EXPORT, str(year), str(args.work / "raw.csv")],
    )
    connection.close()
    bench_idle(args.work)
    bench_thousand(args.work, minutes)
    pg_url = os.environ.get("RECORDER_BENCH_POSTGRES_URL")
    if pg_url:
        postgres_rows(pg_url, year, rows, args.work)
    notes = args.notes.read_text() if args.notes.exists() else ""
    write_markdown(args.output, args, notes)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
