"""The secret key (and the signature derived from it) appears in no output, log line,
exception text, repr of a config object, exported file or database file."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from recorder import config
from recorder.cli import cli
from recorder.sources.coinw.client import PRIVATE_PATH, sign
from recorder.sources.coinw.simulator import Fault, Simulator
from tests.conftest import API_KEY, BACKENDS, SECRET, fresh_database, snapshot_count, wait_for
from tests.test_docs import all_commands

# Computed without `signed_query`, which would register it and so mask it in this process.
SIGNATURE = sign({"api_key": API_KEY}, SECRET)


def assert_clean(text: str | bytes, where: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    assert SECRET.encode() not in data, f"the secret leaked into {where}"
    assert SIGNATURE.encode() not in data, f"the signature leaked into {where}"


def test_no_command_reveals_the_secret(
    env: dict[str, str],
    simulator: Simulator,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.DEBUG)
    env = {**env, "RECORDER_LOG_LEVEL": "DEBUG"}
    runner = CliRunner()
    simulator.set_ticker({"BTC_USDT": "96903.7"})
    simulator.add_fault(Fault.http(502), API_KEY)
    simulator.add_fault(Fault.envelope(6000, "signature error"), API_KEY)
    runs = [["--help"]] + [[*path.split(), "--help"] for path, _ in all_commands(cli)]
    runs += [
        ["db", "upgrade"],
        ["poll"],
        ["poll"],
        ["poll"],
        ["at"],
        ["history"],
        ["changes"],
        ["history", "--every", "day", "--format", "json"],
    ]
    runs += [
        ["export", "--format", f, "-o", str(tmp_path / f"export.{f}")]
        for f in ("csv", "jsonl", "xlsx", "html")
    ]
    runs += [["demo", "--polls", "2", "--database", str(tmp_path / "demo.db")]]
    failures = 0
    for args in runs:
        result = runner.invoke(cli, args, env=env)
        assert_clean(result.output, f"the output of {args}")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            assert_clean(repr(result.exception), f"an exception of {args}")
        failures += "poll failed" in result.output
    assert failures >= 2  # the faults happened and were reported, without the secret

    before = snapshot_count(sqlite_url)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "recorder", "run"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        wait_for(lambda: snapshot_count(sqlite_url) > before, timeout=20)
    finally:
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=15)
    assert_clean(out + err, "the daemon's output")
    assert b"Recording 1 account" in err

    assert_clean(caplog.text, "the log")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.startswith("recorder.db") for p in files)
    assert any(p.name.startswith("export.") for p in files)
    for path in files:
        assert_clean(path.read_bytes(), str(path))


def test_no_repr_of_a_config_object_shows_the_secret(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    text = (
        "[[accounts]]\nname = 'a'\napi_key = 'k'\nsecret_key_file = 'secret'\n"
        "[[accounts]]\nname = 'b'\napi_key = 'k'\nsecret_key_env = 'S'\n"
    )
    path = tmp_path / "recorder.toml"
    path.write_text(text)
    path.chmod(0o600)
    settings = config.load(path, {"S": SECRET}, cwd=tmp_path)
    objects: list[object] = [settings, *settings.accounts]
    objects += [a.credentials for a in settings.accounts]
    objects += [a.credentials.secret_key for a in settings.accounts]
    for obj in objects:
        assert_clean(repr(obj), f"repr of {type(obj).__name__}")
        assert_clean(str(obj), f"str of {type(obj).__name__}")
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(settings.accounts[0].credentials.secret_key)


def test_help_texts_hold_no_secret_from_the_environment(env: dict[str, str]) -> None:
    for path, command in all_commands(cli):
        with click.Context(command) as context:
            assert_clean(command.get_help(context), f"the help of {path}")


# -- every failure of a poll, through every way out -----------------------------------------

URL_PASSWORD = "Url-Pa55word-4d1c9e"
DB_PASSWORD = "Db-Pa55word-8b2f7a"
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) ")


def echo(key: str) -> str:
    """What a reply that repeats the request says (an exchange's or a proxy's error text):
    the signed query, the bare signature, and a URL with a password."""
    signature = sign({"api_key": key}, SECRET)
    grouped = " ".join(signature[i : i + 8] for i in range(0, len(signature), 8)).lower()
    return (
        f"bad request {PRIVATE_PATH}?command=returnBalances&api_key={key}&sign={signature} "
        f"(signature {signature}, {signature.lower()}, {grouped}) "
        f"via http://proxy:{URL_PASSWORD}@proxy.invalid:3128/"
    )


#: account -> (the fault its every poll meets, the poll_errors.kind it gives): each kind of
#: docs/reliability.md, each saying back what it was sent where it can say anything.
FAULTS: dict[str, tuple[Callable[[str], Fault], str]] = {
    "reset": (lambda e: Fault.reset(times=None), "connection_lost"),
    "stall": (lambda e: Fault.stall(2, times=None), "timeout"),
    "page-429": (lambda e: Fault.http(429, f"<title>{e}</title>", times=None), "rate_limit"),
    "page-502": (lambda e: Fault.http(502, f"<title>{e}</title>", times=None), "http_status"),
    "not-json": (lambda e: Fault.raw(f"<html>{e}</html>", times=None), "not_json"),
    "array": (lambda e: Fault.raw(json.dumps([e]), times=None), "bad_envelope"),
    "failed-200": (
        lambda e: Fault.json({"code": "200", "success": False, "msg": e}, times=None),
        "bad_envelope",
    ),
    "code-29001": (lambda e: Fault.envelope(29001, e, times=None), "rate_limit"),
    "code-6000": (lambda e: Fault.envelope(6000, e, times=None), "auth"),
    "code-minus-200": (lambda e: Fault.envelope(-200, e, times=None), "api_error"),
    "echo": (lambda e: Fault.envelope(-1, e, times=None), "api_error"),
    "huge-code": (
        lambda e: Fault.json({"code": "9" * 4_000_000 + e, "msg": e}, times=None),
        "api_error",
    ),
    "amount": (  # digits, then the signature: a cut at 40 characters would halve it
        lambda e: Fault.json(
            {"code": "200", "data": {"BTC": "1234567890" + e.split("sign=")[1]}}, times=None
        ),
        "invalid_amount",
    ),
    "currency": (
        lambda e: Fault.json({"code": "200", "data": {e: "1"}}, times=None),
        "bad_envelope",
    ),
    "currency-sign": (  # a signature is a valid currency name: it must not be stored
        lambda e: Fault.json(
            {"code": "200", "data": {e.split("sign=")[1][:32].lower(): "1"}}, times=None
        ),
        "bad_envelope",
    ),
    "too-large": (lambda e: Fault.huge(6 * 1024 * 1024, times=None), "too_large"),
}
HOOK = """\
import json, os, sys
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"env": dict(os.environ), "stdin": sys.stdin.read()}) + "\\n")
"""


def forbidden() -> dict[str, bytes]:
    """Every value that must never be shown, by name."""
    found = {"the secret": SECRET, "a URL password": URL_PASSWORD, "the database's": DB_PASSWORD}
    for key in (API_KEY, *(f"key-{name}" for name in FAULTS)):
        signature = sign({"api_key": key}, SECRET)
        found[f"the signature for {key}"] = signature
        found[f"the signature for {key} (lower case)"] = signature.lower()
    return {name: value.encode() for name, value in found.items()}


def signature_pieces() -> set[bytes]:
    """Every 16 characters in a row of every signature: half of one is a leak too."""
    signatures = [
        sign({"api_key": key}, SECRET) for key in (API_KEY, *(f"key-{n}" for n in FAULTS))
    ]
    return {s[i : i + 16].encode() for s in signatures for i in range(len(s) - 15)}


HEX_RUN = re.compile(rb"[0-9A-Fa-f]{16,}")


def assert_nothing_secret(data: str | bytes, where: str) -> None:
    raw = data.encode("utf-8", "backslashreplace") if isinstance(data, str) else data
    shown = [name for name, value in forbidden().items() if value in raw]
    assert shown == [], f"{', '.join(shown)} leaked into {where}"

    def squeezed(value: bytes) -> bytes:  # a secret echoed in groups or in lower case
        return re.sub(rb"[\s:._-]", b"", value).upper()

    joined = squeezed(raw)
    shown = [name for name, value in forbidden().items() if squeezed(value) in joined]
    assert shown == [], f"{', '.join(shown)} leaked into {where} (in groups or in lower case)"
    pieces = signature_pieces()
    for found in HEX_RUN.findall(raw):
        run = found.upper()
        halves = [run[i : i + 16] for i in range(len(run) - 15) if run[i : i + 16] in pieces]
        assert halves == [], f"part of a signature leaked into {where}: {halves[0]!r}"


@contextlib.contextmanager
def database_with_password(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database whose URL carries a password (SQLite has none to carry)."""
    with fresh_database(backend, tmp_path) as url:
        parsed = make_url(url)
        if backend == "postgresql":  # trust authentication: any password is accepted
            yield parsed.set(password=DB_PASSWORD).render_as_string(hide_password=False)
        elif backend == "mysql":
            user, name = f"u_{uuid.uuid4().hex[:12]}", parsed.database
            admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(
                    sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{DB_PASSWORD}'")
                )
                connection.execute(sa.text(f"GRANT ALL ON `{name}`.* TO '{user}'@'%'"))
            try:
                yield parsed.set(username=user, password=DB_PASSWORD).render_as_string(
                    hide_password=False
                )
            finally:
                with admin.connect() as connection:
                    connection.execute(sa.text(f"DROP USER '{user}'@'%'"))
                admin.dispose()
        else:
            yield url


def rows_of(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, read directly."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            tables = sa.inspect(connection).get_table_names()
            return {
                table: [tuple(row) for row in connection.execute(sa.text(f"SELECT * FROM {table}"))]
                for table in tables
            }
    finally:
        engine.dispose()


class Commands:
    """Runs `recorder` commands as the operator does, each in a fresh process (which has
    never signed anything, so only real redaction can hide a secret), keeping the output."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = {**os.environ, **env}
        self.cwd = cwd
        self.outputs: dict[str, bytes] = {}

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            [sys.executable, "-m", "recorder", *args],
            env={**self.env, **env},
            cwd=self.cwd,
            capture_output=True,
            timeout=120,
            check=False,
        )
        self.outputs[" ".join(args)] = result.stdout + b"\n" + result.stderr
        return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(tmp_path: Path) -> Path:
    hook = tmp_path / "hook.py"
    hook.write_text(HOOK)
    lines = [
        "interval_seconds = 1",
        "timeout_seconds = 0.3",
        "backoff_base_seconds = 0.3",  # one or two retries within the interval
        'buffer_file = "journal.jsonl"',
        "[[notify]]",
        f"command = [{json.dumps(sys.executable)}, {json.dumps(str(hook))}, "
        f"{json.dumps(str(tmp_path / 'notified.jsonl'))}]",
        "[[accounts]]",
        'name = "default"',
        f'api_key = "{API_KEY}"',
        'secret_key_env = "COINW_SECRET_KEY"',
    ]
    for name in FAULTS:
        lines += [
            "[[accounts]]",
            f'name = "{name}"',
            f'api_key = "key-{name}"',
            'secret_key_env = "COINW_SECRET_KEY"',
        ]
    path = tmp_path / "secrets.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def error_count(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT count(*) FROM poll_errors")).scalar_one())
    except sa.exc.DBAPIError:
        return 0
    finally:
        engine.dispose()


def run_daemon(commands: Commands, url: str, until_errors: int) -> bytes:
    """`recorder run` (text logs, metrics on) until `until_errors` poll_errors rows are
    stored and another snapshot; returns its scraped metrics (its log is `run.log`)."""
    port = free_port()
    before = snapshot_count(url)
    log = commands.cwd / "run.log"  # a file, not a pipe nobody reads while it runs
    with log.open("wb") as stderr:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "recorder", "--log-level", "DEBUG", "run"],
            env={**commands.env, "RECORDER_METRICS_PORT": str(port)},
            cwd=commands.cwd,
            stdout=stderr,
            stderr=stderr,
        )
        try:
            wait_for(lambda: error_count(url) >= until_errors and snapshot_count(url) > before, 60)
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).content
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
    err = log.read_bytes()
    assert daemon.returncode == 0, err.decode()[-2000:]
    lines = err.decode().splitlines()
    assert lines and all(LOG_LINE.match(line) for line in lines), "a line that is no log line"
    return metrics


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_failure_of_a_poll_shows_a_secret_a_signature_or_a_password_anywhere(
    simulator: Simulator, tmp_path: Path, backend: str
) -> None:
    for name, (fault, _) in FAULTS.items():
        simulator.add_account(f"key-{name}", SECRET, {"BTC": "1"})
        simulator.add_fault(fault(echo(f"key-{name}")), f"key-{name}")
    simulator.set_holdings(API_KEY, lambda n: {"BTC": f"0.{n:04d}", "USDT": "257.5183"})
    simulator.add_fault(
        Fault.http(500, f"<title>{echo(API_KEY)}</title>", times=None), command="returnTicker"
    )
    with database_with_password(backend, tmp_path) as url:
        commands = Commands(
            {
                "RECORDER_CONFIG": str(write_config(tmp_path)),
                "RECORDER_DATABASE_URL": url,
                "COINW_BASE_URL": simulator.url,
                "COINW_API_KEY": API_KEY,
                "COINW_SECRET_KEY": SECRET,
            },
            tmp_path,
        )
        polled = commands.run("--log-format", "json", "--log-level", "DEBUG", "poll")
        assert polled.returncode == 1
        # The results on stdout, the log on stderr: JSON lines only, whatever the exchange said.
        assert polled.stdout.count(b": poll failed: ") == len(FAULTS)
        for line in polled.stderr.decode().splitlines():
            json.loads(line)
        # An exchange that cannot be reached at all: the one kind a reply cannot give.
        unreachable = f"http://127.0.0.1:{free_port()}"
        assert commands.run(
            "poll",
            RECORDER_CONFIG="",
            COINW_BASE_URL=unreachable,
            RECORDER_INTERVAL_SECONDS="1",
            RECORDER_BACKOFF_BASE_SECONDS="0.3",
        ).returncode
        metrics = run_daemon(commands, url, until_errors=2 * len(FAULTS) + 1)
        assert commands.run("status").returncode == 1  # the faulty accounts are stale
        commands.run("status", "--format", "json")
        for arguments in (["gaps"], ["at"], ["history"], ["changes"]):
            assert commands.run(*arguments).returncode == 0
        for form in ("csv", "jsonl", "xlsx", "html"):
            exported = commands.run("export", "--format", form, "-o", f"export.{form}")
            assert exported.returncode == 0, exported.stderr
        stored = rows_of(url)

    kinds = {row[3] for row in stored["poll_errors"]}
    assert kinds == {kind for _, kind in FAULTS.values()} | {"connect"}
    for row in stored["poll_errors"]:
        message = str(row[4])
        assert len(message) <= 1000 and not RAW_CONTROL.search(message), message
        assert "9" * 41 not in message  # the 4,000,000-character code, cut
    notified = [json.loads(line) for line in (tmp_path / "notified.jsonl").read_text().splitlines()]
    assert notified, "no notify command ran"
    for delivery in notified:
        names = set(delivery["env"])
        assert not any(word in name for name in names for word in ("KEY", "SECRET", "COINW"))
        assert names <= {"PATH", "HOME", "LANG", "TZ"} | {
            n for n in names if n.startswith(("LC_", "RECORDER_"))
        }

    for command, output in commands.outputs.items():
        assert_nothing_secret(output, f"the output of `recorder {command}`")
    assert_nothing_secret(metrics, "the metrics")
    assert_nothing_secret(repr(stored), f"the rows stored in {backend}")
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert {"notified.jsonl", "export.html"} <= {path.name for path in files}
    for path in files:
        assert_nothing_secret(path.read_bytes(), str(path))


@pytest.mark.parametrize("database", ["unreachable", "refusing the password"])
def test_while_the_database_is_away_its_password_and_the_signature_stay_out_of_the_journal(
    simulator: Simulator, tmp_path: Path, database: str
) -> None:
    if database == "unreachable":
        url = f"postgresql+psycopg://recorder:{DB_PASSWORD}@127.0.0.1:{free_port()}/recorder"
    else:
        server = os.environ.get("RECORDER_TEST_MYSQL_URL")
        if not server:
            pytest.skip("RECORDER_TEST_MYSQL_URL is not set")
        url = make_url(server).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    simulator.add_fault(Fault.envelope(-1, echo(API_KEY)), API_KEY)
    commands = Commands(
        {
            "RECORDER_DATABASE_URL": url,
            "COINW_BASE_URL": simulator.url,
            "COINW_API_KEY": API_KEY,
            "COINW_SECRET_KEY": SECRET,
            "RECORDER_BUFFER_FILE": "journal.jsonl",
        },
        tmp_path,
    )
    polled = commands.run("poll")
    assert polled.returncode == 1 and b"unavailable" in polled.stderr
    assert b"://***@127.0.0.1" in polled.stderr  # the database is named, its password masked
    journal = (tmp_path / "journal.jsonl").read_text()
    assert '"error_kind":"api_error"' in journal and "sign=***" in journal
    assert commands.run("status").returncode == 1
    assert commands.run("db", "upgrade").returncode == 1
    copied = commands.run(
        "db", "copy", "--to", url, RECORDER_DATABASE_URL=f"sqlite:///{tmp_path / 'source.db'}"
    )
    assert copied.returncode == 1
    for command, output in commands.outputs.items():
        assert b"Traceback" not in output
        assert_nothing_secret(output, f"the output of `recorder {command}`")
    assert_nothing_secret(journal, "the buffer journal")
