"""Text from outside stays data: what the exchange (or a proxy, a database, a library) says
reaches a log line, the terminal, a stored row or a child process bounded, with its control
characters escaped and every secret masked; a notify command gets only what it needs."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder import config, logs, secret, text
from recorder.cli import cli
from recorder.config import NotifyRule
from recorder.errors import ConfigError
from recorder.polling import notify
from recorder.polling.notify import Notifier
from recorder.sources.coinw.client import sign
from recorder.sources.coinw.simulator import Fault, Simulator
from recorder.store.database import Database
from recorder.values import Change, PollOutcome, PollStatus, Snapshot
from tests.conftest import API_KEY, SECRET, wait_for
from tests.helpers import query, recorder, settings_for

# Computed without `signed_query`, which would register it and so mask it in this process.
SIGNATURE = sign({"api_key": API_KEY}, SECRET)
# A line break, a forged log line, ESC sequences (clear screen, set the window title), BEL,
# NUL, a C1 control, DEL and a lone surrogate: everything a terminal or a log reader trips on.
HOSTILE = (
    "first line\n2026-01-01T00:00:00Z INFO    main BTC 0 -> 1000 (+1000)\r\n"
    "\x1b[2J\x1b]0;pwned\x07\x00\x85\x7f\ud800 end"
)
# What a database holds (no lone surrogate: no backend stores one).
FOREIGN = HOSTILE.replace("\ud800", "")
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) ")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_hostile_exchange_text_and_a_megabyte_code_make_one_bounded_escaped_line_and_row(
    simulator: Simulator, db: Database, log_format: str
) -> None:
    code = "C" * 1_000_000 + "\n\x1b[31m\x00"
    simulator.add_fault(Fault.json({"code": code, "msg": HOSTILE, "success": False}), API_KEY)
    stream = io.StringIO()
    logs.configure("INFO", stream, log_format)
    made = recorder(settings_for(simulator.url, fetch_prices=False), db)
    try:
        outcome = made.poller.poll(made.settings.accounts[0])
    finally:
        made.close()
    assert outcome.error_kind == "api_error"

    lines = stream.getvalue().splitlines()
    (line,) = [line for line in lines if "poll failed" in line]
    if log_format == "json":
        message = json.loads(line)["message"]
        assert all(json.loads(each) for each in lines)  # every line is one JSON object
    else:
        message = line
        assert all(LOG_LINE.match(each) for each in lines), "a line that is not a log line"
    assert not RAW_CONTROL.search(stream.getvalue())
    assert len(line) < 1000 and "C" * 41 not in line
    assert re.search(r"C{40}\.\.\. \(999,9\d\d more\)", message)  # cut, and says so
    assert "\\x1b[2J" in message and "\\x00" in message and "\\ud800" in message

    ((stored,),) = query(db, "SELECT message FROM poll_errors")
    assert len(stored) < 1000 and not RAW_CONTROL.search(stored) and "\n" not in stored
    assert "\\x0a2026-01-01T00:00:00Z INFO" in stored  # kept, as one line


@settings(max_examples=200, deadline=None)
@given(before=st.text(), after=st.text(), value=st.text(max_size=50))
def test_safe_text_has_no_control_character_and_no_signature_or_registered_secret(
    before: str, after: str, value: str
) -> None:
    secret.register(SECRET)
    hostile = f"{before}&sign={SIGNATURE}{value}{after} {SECRET}{value}"
    shown = text.safe(hostile, 10_000)
    assert SIGNATURE not in shown and SECRET not in shown
    assert not RAW_CONTROL.search(shown) and "\n" not in shown
    assert len(text.safe(hostile, 100)) <= 100 + len("... (999,999,999 more)")


PIECES = [
    "x" * 50,
    "\x00\x1b" * 20,
    f"sign={SIGNATURE}&",
    SECRET,
    "http://user:pw@host/ ",
    "sign=" + "v" * 300 + " ",
    "\ud800",
]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=400).map("".join), st.sampled_from([40, 300]))
def test_a_long_text_shows_what_reading_all_of_it_would_show(hostile: str, limit: int) -> None:
    secret.register(SECRET)
    secret.register(SIGNATURE)
    shown = text.safe(hostile, limit)
    whole = text.bounded(text.escape_controls(text.redact(hostile)), limit)
    assert shown[:limit] == whole[:limit]
    assert SECRET not in shown and SIGNATURE not in shown and ":pw@" not in shown


@pytest.mark.parametrize("padding", [30, 4060, 4090, 4110, 4130])
def test_a_signature_where_a_long_text_is_cut_is_never_shown_in_part(
    simulator: Simulator, sqlite_db: Database, padding: int
) -> None:
    # A masked value shrinks to ***, which brings what lies after it into sight: the
    # signature behind it must not be cut in half before it is masked.
    amount = f"sign={'v' * padding} {SIGNATURE} {SIGNATURE}"
    simulator.add_fault(Fault.json({"code": "200", "data": {"BTC": amount}}), API_KEY)
    stream = io.StringIO()
    logs.configure("INFO", stream)
    made = recorder(settings_for(simulator.url, fetch_prices=False), sqlite_db)
    try:
        assert made.poller.poll(made.settings.accounts[0]).error_kind == "invalid_amount"
    finally:
        made.close()
    ((stored,),) = query(sqlite_db, "SELECT message FROM poll_errors")
    for shown in (stored, stream.getvalue()):
        assert "sign=***" in shown
        assert not any(SIGNATURE[i : i + 12] in shown for i in range(len(SIGNATURE) - 11))


def test_masking_twice_loses_nothing_more_than_masking_once() -> None:
    once = text.safe(f"error\n&sign={SIGNATURE}\nnext line")
    assert once == "error\\x0a&sign=***\\x0anext line"
    assert text.safe(once) == once


@pytest.mark.parametrize(
    "where", ["environment", "file"], ids=["COINW_BASE_URL", "base_url in the file"]
)
def test_a_base_url_with_a_password_is_refused_at_start_in_one_sentence(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.chdir(tmp_path)
    url = "http://recorder:Pa55word-in-url@127.0.0.1:9"
    if where == "file":
        env = {**env, "COINW_BASE_URL": ""}
        (tmp_path / "recorder.toml").write_text(f'base_url = "{url}"\n')
    else:
        env = {**env, "COINW_BASE_URL": url}
    result = CliRunner().invoke(cli, ["poll"], env=env)
    assert result.exit_code == 2
    (line,) = result.output.splitlines()
    assert line.startswith("Error: ") and "must not hold a user name or password" in line
    assert "Pa55word" not in result.output and "recorder:" not in result.output
    with pytest.raises(ConfigError):
        config.load(None, {"COINW_BASE_URL": url}, cwd=tmp_path)


def test_a_notify_command_gets_the_change_and_the_locale_but_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "COINW_API_KEY": API_KEY,
        "COINW_SECRET_KEY": SECRET,
        "RECORDER_DATABASE_URL": "postgresql://u:Pa55word-db@127.0.0.1/x",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "LC_API_KEY": SECRET,  # an odd name, yet it names a key
        "LC_ALL": "C.UTF-8",
        "TZ": "Europe/Berlin",
        "LANG": "C.UTF-8",
    }.items():
        monkeypatch.setenv(name, value)
    seen = tmp_path / "seen.json"
    script = tmp_path / "hook.py"
    script.write_text(
        "import json, os, sys\n"
        "json.dump({'env': dict(os.environ), 'stdin': sys.stdin.read()},"
        " open(sys.argv[1], 'w'))\n"
    )
    notifier = Notifier([NotifyRule(command=(sys.executable, str(script), str(seen)))])
    change = Change("BTC", Decimal("0.0012"), Decimal("0.0015"))
    now = datetime.now(UTC)
    notifier.observe(
        PollOutcome("main", now, PollStatus.RECORDED, Snapshot(now, {}), 7, changes=[change])
    )
    wait_for(seen.exists)
    notifier.close()
    received = json.loads(seen.read_text())
    environment: dict[str, str] = received["env"]
    fields = {name for name in environment if name.startswith("RECORDER_")}
    assert fields == {
        "RECORDER_ACCOUNT",
        "RECORDER_CURRENCY",
        "RECORDER_CHANGE",
        "RECORDER_OLD_AMOUNT",
        "RECORDER_NEW_AMOUNT",
        "RECORDER_DELTA",
        "RECORDER_TAKEN_AT",
        "RECORDER_SNAPSHOT_ID",
        "RECORDER_TEXT",
    }
    others = set(environment) - fields
    assert others <= {"PATH", "HOME", "LANG", "TZ"} | {n for n in others if n.startswith("LC_")}
    assert "LC_API_KEY" not in environment and environment["TZ"] == "Europe/Berlin"
    assert environment["RECORDER_TEXT"] == "main BTC 0.0012 -> 0.0015 (+0.0003)"
    everything = json.dumps(received)
    assert SECRET not in everything and API_KEY not in everything
    assert "Pa55word" not in everything
    assert json.loads(received["stdin"])["delta"] == "0.0003"


def test_the_environment_of_a_notify_command_is_built_from_what_is_named_only() -> None:
    parent = {"PATH": "/bin", "HOME": "/h", "LC_TIME": "de_DE", "COINW_SECRET_KEY": SECRET}
    built = notify.command_environment({"account": "main", "text": "a\nb"}, parent)
    assert built == {
        "PATH": "/bin",
        "HOME": "/h",
        "LC_TIME": "de_DE",
        "RECORDER_ACCOUNT": "main",
        "RECORDER_TEXT": "a\\x0ab",
    }


def test_a_failing_webhook_with_a_password_and_a_token_is_named_by_its_host_only() -> None:
    port = closed_port()
    url = f"http://hookuser:Pa55word-hook@127.0.0.1:{port}/hook?token=T0KEN-in-query"
    rule = NotifyRule(url=url)
    stream = io.StringIO()
    logs.configure("INFO", stream)
    notifier = Notifier([rule], first_pause=0.01)
    change = Change("BTC", None, Decimal(1))
    now = datetime.now(UTC)
    notifier.observe(
        PollOutcome("main", now, PollStatus.RECORDED, Snapshot(now, {}), 1, changes=[change])
    )
    wait_for(lambda: "could not deliver" in stream.getvalue())
    notifier.close()
    shown = stream.getvalue() + repr(rule) + notify.describe(rule)
    assert f"webhook 127.0.0.1:{port}" in shown
    for hidden in ("hookuser", "Pa55word", "T0KEN", "/hook"):
        assert hidden not in shown


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_traceback_in_the_log_is_masked_escaped_and_indented(log_format: str) -> None:
    stream = io.StringIO()
    logs.configure("INFO", stream, log_format)
    try:
        raise ValueError(f"request ?api_key=k&sign={SIGNATURE}\n{HOSTILE}")
    except ValueError:
        logging.getLogger("recorder.test").exception("an unexpected failure")
    logging.getLogger("recorder.test").warning("%s", "long line " * 5_000)
    output = stream.getvalue()
    assert SIGNATURE not in output and not RAW_CONTROL.search(output)
    lines = output.splitlines()
    if log_format == "json":
        documents = [json.loads(line) for line in lines]
        assert len(documents) == 2 and "sign=***" in documents[0]["exception"]
        assert documents[1]["message"].endswith("... (40,000 more)")
    else:
        assert all(LOG_LINE.match(line) or line.startswith("    ") for line in lines)
        assert sum(bool(LOG_LINE.match(line)) for line in lines) == 2
        assert any("sign=***" in line for line in lines)
        last = lines[-1]
        assert len(last) < 10_200, len(last)
        assert last.endswith("... (40,000 more)"), last[-100:]


def test_status_shows_a_foreign_error_row_as_data(sqlite_db: Database, sqlite_url: str) -> None:
    from recorder.store import writes

    account = writes.account_id(sqlite_db, "main")
    with sqlite_db.transaction() as connection:  # a row another program wrote, unescaped
        sqlite_db.run(
            connection,
            "INSERT INTO poll_errors (account_id, attempted_at, kind, message) VALUES (?, ?, ?, ?)",
            (account, "2026-01-01 00:00:00.000000", "x\x1b[2J", f"{FOREIGN} sign={SIGNATURE}"),
        )
    for arguments in (["status"], ["status", "--format", "json"]):
        result = CliRunner().invoke(cli, arguments, env={"RECORDER_DATABASE_URL": sqlite_url})
        assert result.exit_code == 1  # stale: it never succeeded
        assert not RAW_CONTROL.search(result.output) and SIGNATURE not in result.output
        assert "x\\x1b[2J" in result.output.replace("\\\\", "\\")


@pytest.mark.parametrize("gap", ["   ", "\r\n\r\n", " \t ", ", ", "\u200b", "\u00ad", " | ", "/"])
def test_a_signature_split_by_any_blank_run_or_separator_is_masked(gap: str) -> None:
    signature = "7DC4CE12E85BAD05F1B025F4E3768DF3"
    secret.register(signature)
    split = gap.join(signature[i : i + 8] for i in range(0, 32, 8))
    assert "E85BAD05" not in text.safe(f"echo: {split} end")
    assert "E85BAD05" not in text.safe(f"echo: {split.lower()} end")


def test_unicode_separators_and_direction_controls_are_escaped() -> None:
    hostile = "a\u2028INFO forged\u2029b \u202eRLO\u202c \u2066x\u2069 \u200f\ufeff\ufff9"
    shown = text.safe(hostile)
    assert len(shown.splitlines()) == 1
    assert not any(ch in shown for ch in "\u2028\u2029\u202e\u202c\u2066\u2069\u200f\ufeff")
    assert "\\u2028" in shown and "\\u202e" in shown


def test_a_piece_of_a_signature_quoted_back_is_masked() -> None:
    signature = "5369D2911730096EEBF6E5D133B88E0D"
    secret.register(signature)
    shown = text.safe(f"first {signature[:16]} ... then second {signature[16:].lower()}; code")
    assert signature[:16] not in shown and signature[16:].lower() not in shown
    assert "first *** ... then second ***" in shown
    assert text.safe("order 123456789012 filled") == "order 123456789012 filled"
