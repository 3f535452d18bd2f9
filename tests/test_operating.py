"""Operating the recorder: nothing destroys or invents a database, the daemon's files are
refused at start when they cannot be written, and what the commands say is whole and
true."""

from __future__ import annotations

import fnmatch
import io
import logging
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from recorder import config
from recorder.cli import cli, options
from recorder.cli import polling as polling_commands
from recorder.config import Settings
from recorder.polling.cycle import Poller
from recorder.polling.daemon import Daemon
from recorder.store import migrate
from recorder.store.database import Database
from recorder.store.migrate import HEAD_REVISION
from tests.conftest import open_db, snapshot_count, wait_for
from tests.disk import SmallDisk
from tests.helpers import account, add_snapshot

ROOT = Path(__file__).resolve().parent.parent
READING = [
    ["at"],
    ["history"],
    ["changes"],
    ["export", "-o", "out.csv"],
    ["status"],
    ["gaps"],
]


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", READING, ids=lambda c: c[0])
def test_commands_that_only_read_never_create_a_database(
    env: dict[str, str], sqlite_url: str, command: list[str]
) -> None:
    result = invoke(env, *command)
    assert result.exit_code == 1
    path = sqlite_url.removeprefix("sqlite:///")
    assert result.stderr == (
        f"Error: There is no database at {path}: nothing has been recorded there; check "
        "database_url (relative SQLite paths are relative to the config file's folder).\n"
    )
    assert not Path(path).exists()


def test_commands_that_only_read_never_create_tables_on_a_server(
    env: dict[str, str], db_url: str
) -> None:
    for command in READING:
        result = invoke({**env, "RECORDER_DATABASE_URL": db_url}, *command)
        assert result.exit_code == 1, (command, result.output)
        assert result.stderr.count("\n") == 1, result.stderr
        assert "no recorder tables" in result.stderr or "no database at" in result.stderr
    if not db_url.startswith("sqlite"):
        assert tables(db_url) == set()


def test_an_older_schema_is_left_alone_and_the_message_says_to_upgrade(
    env: dict[str, str], sqlite_url: str
) -> None:
    db = Database(sqlite_url)
    migrate.upgrade(db, "0003")
    db.close()
    for command in READING:
        result = invoke(env, *command)
        assert result.exit_code == 1
        assert (
            f"schema revision 0003, older than this recorder's {HEAD_REVISION}; run `recorder db "
            in (result.stderr)
        )
    db = Database(sqlite_url)
    assert migrate.current_revision(db) == "0003"
    db.close()
    assert invoke(env, "db", "upgrade").exit_code == 0
    assert invoke(env, "at").exit_code == 0


def test_status_with_no_account_to_check_says_why(env: dict[str, str], sqlite_url: str) -> None:
    db = Database(sqlite_url)
    migrate.ensure_schema(db)
    db.close()
    no_account = {k: v for k, v in env.items() if not k.startswith("COINW_")}
    result = invoke(no_account, "status")
    assert result.exit_code == 1
    assert "there is no account to check: none is configured" in result.stderr


def test_the_demo_refuses_a_database_that_holds_a_real_history(
    env: dict[str, str], sqlite_url: str, tmp_path: Path
) -> None:
    assert invoke(env, "poll").exit_code == 0  # a real history of the account `default`
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    before = path.read_bytes()
    result = invoke({}, "demo", "--database", str(path), "--polls", "1")
    assert result.exit_code == 2
    assert "is not an earlier demo" in result.stderr and "--database" in result.stderr
    assert path.read_bytes() == before and snapshot_count(sqlite_url) == 1
    # Nor is a real account that happens to be named demo taken for the demo's.
    named_demo = tmp_path / "named-demo.db"
    db = open_db(f"sqlite:///{named_demo}")
    try:
        migrate.ensure_schema(db)
        add_snapshot(db, "demo", datetime(2026, 3, 31, tzinfo=UTC), {"BTC": Decimal(1)})
    finally:
        db.close()
    before = named_demo.read_bytes()
    assert invoke({}, "demo", "--database", str(named_demo), "--polls", "1").exit_code == 2
    assert named_demo.read_bytes() == before
    other = tmp_path / "notes.txt"
    other.write_text("not a database at all")
    assert invoke({}, "demo", "--database", str(other), "--polls", "1").exit_code == 2
    assert other.read_text() == "not a database at all"


@pytest.mark.slow
def test_the_demo_replaces_an_earlier_demo_and_leaves_nothing_untracked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(polling_commands, "has_report_extra", lambda: False)
    for _ in range(2):
        result = invoke({}, "demo", "--polls", "2", "--interval", "1")
        assert result.exit_code == 0, result.output
    assert snapshot_count(f"sqlite:///{tmp_path / 'demo.db'}") == 2
    # The closing hint says what the HTML export needs, for a first-time user.
    assert "pip install -e '.[report]'" in result.stdout
    ignored = [
        line.strip()
        for line in (ROOT / ".gitignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    left = [p.name for p in tmp_path.iterdir()]
    assert "demo.db.recorder-lock" in left
    assert [n for n in left if not any(fnmatch.fnmatch(n, g) for g in ignored)] == []


def test_db_copy_counts_in_words_and_never_creates_its_source(
    env: dict[str, str], sqlite_url: str, tmp_path: Path
) -> None:
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    missing = invoke(env, "db", "copy", "--to", target)
    assert missing.exit_code == 1 and "There is no database at" in missing.stderr
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()
    assert invoke(env, "poll").exit_code == 0
    copied = invoke(env, "db", "copy", "--to", target)
    assert copied.exit_code == 0, copied.output
    assert copied.stdout.startswith("Copied 1 account, 1 snapshot, 2 balance rows, 2 changes, ")
    assert "0 poll errors into " in copied.stdout
    assert "Verified: 1 account, 1 snapshot, 2 balance rows, 2 changes, 0 poll errors;" in (
        copied.stdout
    )


def test_the_copy_progress_says_when_it_moves_on_to_verifying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with options.progress(lambda: 10, "", label="Copying", finished="Verifying...") as step:
        assert step is not None
        step(4)
        assert "Verifying" not in terminal.getvalue()
        step(6)
        assert terminal.getvalue().endswith("Verifying...\n")
    assert terminal.getvalue().count("Verifying") == 1


def test_prune_says_what_it_did_once_in_one_sentence(
    env: dict[str, str], sqlite_url: str, tmp_path: Path
) -> None:
    db = Database(sqlite_url)
    migrate.ensure_schema(db)
    old = datetime.now(UTC) - timedelta(days=30)
    for seconds in range(5):  # one poll per interval (1 s), the same holdings: only the
        # first (BTC appeared) and the last of the hour are kept
        add_snapshot(db, "default", old + timedelta(seconds=seconds), {"BTC": Decimal(1)})
    db.close()
    (tmp_path / "recorder.toml").write_text("[retention]\nkeep_all_days = 7\n")
    dry = invoke(env, "prune", "--dry-run")
    assert dry.stdout.startswith("Would prune 3 snapshots older than ")
    done = invoke(env, "prune")
    assert done.exit_code == 0
    assert done.stdout.startswith("Pruned 3 snapshots older than ")
    assert "the last of each hour" in done.stdout
    assert done.stderr == ""  # not a second, differently worded count in the log
    assert snapshot_count(sqlite_url) == 2


def test_creating_the_tables_of_an_empty_database_does_not_warn_of_a_long_wait(
    env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        result = invoke(env, "db", "upgrade")
    assert result.exit_code == 0 and f"from empty to {HEAD_REVISION}" in result.stdout
    assert "take a while" not in result.output + caplog.text


def test_an_unreachable_database_is_reported_once_at_start(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "RECORDER_DATABASE_URL": "postgresql://x@127.0.0.1:1/x?connect_timeout=2"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "recorder", "run"],
        env={**os.environ, **env},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def journaled() -> int:
        return sum(
            len(j.read_text().splitlines()) for j in tmp_path.glob("recorder-buffer-*.jsonl")
        )

    try:
        wait_for(lambda: journaled() >= 2, 30)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=15)
    assert daemon.returncode == 0, stderr
    assert stderr.count("is unavailable (") == 1, stderr


def test_the_help_of_every_command_is_whole(env: dict[str, str]) -> None:
    listing = CliRunner().invoke(cli, ["--help"], terminal_width=80).stdout
    listing = listing.split("Commands:")[1]
    assert "..." not in listing
    joined = " ".join(listing.split())
    for name, command in cli.commands.items():
        summary = command.get_short_help_str(limit=1000)
        assert f"{name} {summary}" in joined, name
    gaps = invoke(env, "gaps", "--help").stdout
    assert "--currency" not in gaps and "--account" in gaps


def test_an_html_export_says_where_it_wrote(env: dict[str, str], tmp_path: Path) -> None:
    assert invoke(env, "poll").exit_code == 0
    result = invoke(env, "export", "--format", "html", "-o", "report.html")
    assert result.exit_code == 0, result.output
    assert result.stderr == "Wrote report.html\n"
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_the_rate_warning_counts_the_margin_it_keeps(caplog: pytest.LogCaptureFixture) -> None:
    accounts = tuple(account(f"a{i}") for i in range(5000))
    settings = Settings(accounts=accounts, interval_seconds=60, max_requests_per_second=90)
    daemon = Daemon.__new__(Daemon)
    daemon.poller = Poller.__new__(Poller)
    daemon.poller.settings = settings
    with caplog.at_level(logging.WARNING):
        daemon._scheduler(accounts)
    (warning,) = [r.getMessage() for r in caplog.records if "requests per second" in r.message]
    assert "need 92 requests per second, counting the 10 % margin kept below " in warning
    assert "max_requests_per_second (90)" in warning


def test_poll_never_binds_the_metrics_port(env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as taken:  # the daemon's port, held while `poll` runs beside it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "recorder.toml").write_text(
            f'[metrics]\nport = {port}\n[[notify]]\ncommand = ["/bin/true"]\n'
        )
        result = invoke(env, "poll")
    assert result.exit_code == 0, result.output
    assert "metrics" not in result.output.lower()


def test_a_journal_that_cannot_be_written_is_refused_at_start(
    env: dict[str, str], disk: SmallDisk, tmp_path: Path
) -> None:
    journal = disk.path / "recorder-buffer.jsonl"
    disk.read_only()
    for command in ("poll", "run"):
        result = invoke({**env, "RECORDER_BUFFER_FILE": str(journal)}, command)
        assert result.exit_code == 2, result.output
        assert result.stderr == (
            f"Error: buffer_file '{journal}' cannot be written (Read-only file system); set "
            'buffer_file to a file in a folder this user can write, or to "" to keep '
            "buffered polls in memory only.\n"
        )
    missing = tmp_path / "no-such-folder" / "journal.jsonl"
    result = invoke({**env, "RECORDER_BUFFER_FILE": str(missing)}, "poll")
    assert result.exit_code == 2 and "No such file or directory" in result.stderr


def test_postgres_urls_are_accepted_end_to_end(env: dict[str, str], postgres_url: str) -> None:
    url = "postgres://" + postgres_url.split("://", 1)[1]
    assert url.startswith("postgres://") and "+psycopg" not in url
    for command in (["poll"], ["status"], ["at"]):
        result = invoke({**env, "RECORDER_DATABASE_URL": url}, *command)
        assert result.exit_code == 0, (command, result.output)
    assert snapshot_count(postgres_url) == 1


def test_shell_completion_is_click_s(tmp_path: Path) -> None:
    script = subprocess.run(
        [sys.executable, "-c", "from recorder.cli import main; main()"],
        env={**os.environ, "_RECORDER_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "_recorder_completion" in script and "complete " in script
    assert "_RECORDER_COMPLETE=bash_source recorder" in (ROOT / "README.md").read_text()


def test_the_config_documented_for_the_service_is_quiet(tmp_path: Path) -> None:
    # The README's layout: the config 0640 root:recorder, the secrets in credentials.
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "main.secret").write_text("s" * 32)
    path = tmp_path / "recorder.toml"
    path.write_text((ROOT / "config.example.toml").read_text())
    path.chmod(0o640)
    settings = config.load(path, {"CREDENTIALS_DIRECTORY": str(credentials)}, cwd=Path("/"))
    assert settings.warnings == ()


@pytest.mark.parametrize("address", ["999.1.1.1", "192.0.2.1"])
def test_a_metrics_address_that_is_not_this_machine_s_is_named_as_the_fault(
    env: dict[str, str], address: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "recorder", "run", "--metrics-port", "0"],
        env={**os.environ, **env, "RECORDER_METRICS_ADDRESS": address},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"Error: Cannot serve metrics on {address}:0: '{address}' is not an ")
    assert "set [metrics] address (RECORDER_METRICS_ADDRESS)" in last
    assert "port" not in last.split(";")[1] and "Traceback" not in result.stderr


def test_a_metrics_port_in_use_is_named_as_the_fault(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "recorder", "run", "--metrics-port", str(port)],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"Error: Cannot serve metrics on 127.0.0.1:{port} (Address already in use); choose "
        "another port with --metrics-port."
    )
