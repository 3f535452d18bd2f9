"""A write the database refuses for what it holds never blocks anything: it becomes one
`rejected_by_database` row, the polls behind it and the other accounts go on, and health
says so. The refusal is real: a trigger in each backend refuses one currency."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from recorder import app
from recorder.cli import cli
from recorder.polling.journal import Journal, to_line
from recorder.polling.metrics import Metrics
from recorder.sources.coinw.simulator import Fault, Simulator
from recorder.store.database import Database
from recorder.values import Observation, PollOutcome, PollStatus, Snapshot
from tests.conftest import API_KEY, SECRET, fresh_database, open_db, wait_for
from tests.helpers import account, counts, query, recorder, settings_for

TRIGGERS = {
    "sqlite": [
        "CREATE TRIGGER refuse BEFORE INSERT ON balances WHEN NEW.currency = 'REFUSE' "
        "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.currency = 'REFUSE' "
        "THEN RAISE EXCEPTION 'refused by a test trigger' USING ERRCODE = '22023'; END IF; "
        "RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER refuse BEFORE INSERT ON balances FOR EACH ROW EXECUTE FUNCTION refuse()",
    ],
    "mysql": [
        "CREATE TRIGGER refuse BEFORE INSERT ON balances FOR EACH ROW BEGIN IF NEW.currency = "
        "'REFUSE' THEN SIGNAL SQLSTATE '22003' SET MESSAGE_TEXT = 'refused by a test trigger', "
        "MYSQL_ERRNO = 1264; END IF; END"
    ],
}


@pytest.fixture
def refusing(db: Database) -> Database:
    """A database whose balances refuse the currency REFUSE, for real."""
    with db.engine.begin() as connection:
        for statement in TRIGGERS[db.url.get_backend_name().replace("mariadb", "mysql")]:
            connection.exec_driver_sql(statement)
    return db


def poll_twice(
    simulator: Simulator, db: Database, tmp_path: Path, *, then: dict[str, str]
) -> tuple[PollOutcome, PollOutcome]:
    """One poll of what the simulator holds now, and one after it holds `then`."""
    built = recorder(settings_for(simulator.url, buffer_file=tmp_path / "j.jsonl"), db)
    try:
        first = built.poller.poll(built.settings.accounts[0])
        simulator.set_holdings(API_KEY, then)
        return first, built.poller.poll(built.settings.accounts[0])
    finally:
        built.close()


def test_a_refused_poll_becomes_one_row_and_the_next_poll_is_recorded(
    refusing: Database, simulator: Simulator, tmp_path: Path
) -> None:
    simulator.set_holdings(API_KEY, {"BTC": "1", "REFUSE": "2"})
    first, second = poll_twice(simulator, refusing, tmp_path, then={"BTC": "1"})
    assert first.status is PollStatus.FAILED and first.error_kind == "rejected_by_database"
    assert not first.stored
    ((kind, message),) = query(refusing, "SELECT kind, message FROM poll_errors")
    assert kind == "rejected_by_database" and "refused by a test trigger" in message
    # What the refused poll held is kept beside the journal.
    (kept,) = Journal(tmp_path / "j.jsonl").quarantine_path.read_text().splitlines()
    assert json.loads(json.loads(kept)["line"])["balances"] == {"BTC": "1", "REFUSE": "2"}
    assert second.status is PollStatus.RECORDED
    assert counts(refusing)["snapshots"] == 1
    assert not (tmp_path / "j.jsonl").exists()  # nothing waits behind the refusal


def test_one_accounts_refused_data_never_delays_another(
    refusing: Database, simulator: Simulator
) -> None:
    simulator.add_account("other-key", SECRET, {"ETH": "3"})
    simulator.set_holdings(API_KEY, {"REFUSE": "1"})
    settings = settings_for(simulator.url, accounts=(account("a"), account("b", "other-key")))
    built = recorder(settings, refusing)
    metrics = Metrics(waiting=built.poller.writes.waiting)
    built.poller.listeners.append(metrics.observe)
    try:
        outcomes = [built.poller.poll(a) for a in settings.accounts * 2]
    finally:
        built.close()
    assert [o.status for o in outcomes] == [PollStatus.FAILED, PollStatus.RECORDED] * 2
    sample = metrics.registry.get_sample_value
    assert sample("recorder_recording", {"account": "a"}) == 0
    assert sample("recorder_recording", {"account": "b"}) == 1
    assert sample("recorder_buffered_polls") == 0


def test_a_refused_entry_of_the_journal_is_quarantined_and_the_rest_are_written(
    refusing: Database, simulator: Simulator, tmp_path: Path
) -> None:
    journal = tmp_path / "j.jsonl"
    t0 = datetime.now(UTC) - timedelta(minutes=10)

    def entry(minute: int, held: dict[str, str], name: str = "main") -> str:
        snapshot = Snapshot(
            t0 + timedelta(minutes=minute), {c: Decimal(a) for c, a in held.items()}
        )
        return to_line(Observation.of_snapshot(name, snapshot), refusing.identity)

    journal.write_text(
        "\n".join([entry(1, {"REFUSE": "1"}), entry(2, {"BTC": "2"}), entry(3, {"ETH": "1"}, "b")])
        + "\n"
    )
    settings = settings_for(simulator.url, buffer_file=journal)
    built = recorder(settings, refusing)
    try:
        outcome = built.poller.poll(settings.accounts[0])
    finally:
        built.close()
    assert outcome.status is PollStatus.RECORDED
    assert query(refusing, "SELECT kind FROM poll_errors") == [("rejected_by_database",)]
    assert counts(refusing)["snapshots"] == 3  # main at minute 2, b, and the new poll
    assert "refused by a test trigger" in Journal(journal).quarantine_path.read_text()
    assert not journal.exists()


def test_status_says_polls_are_not_reaching_the_database_and_exits_1(
    env: dict[str, str], sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["poll"], env=env).exit_code == 0
    db = open_db(sqlite_url)
    path = app.journal_path(
        settings_for("http://x", buffer_file=tmp_path / "b-{database}.jsonl"), db
    )
    assert path is not None
    waiting = Observation.of_failure("default", datetime.now(UTC), "timeout", "slow")
    Journal(path).append(to_line(waiting, db.identity))
    db.close()
    result = runner.invoke(
        cli, ["status"], env={**env, "RECORDER_BUFFER_FILE": str(tmp_path / "b-{database}.jsonl")}
    )
    assert result.exit_code == 1
    assert "NOT RECORDING: 1 poll(s) wait in the outage journal" in result.stdout


@contextlib.contextmanager
def latin1_mariadb(tmp_path: Path) -> Iterator[str]:
    """A MariaDB database created with latin1 as its default character set."""
    with fresh_database("mysql", tmp_path) as url:
        name = make_url(url).database
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            connection.exec_driver_sql(f"ALTER DATABASE `{name}` CHARACTER SET latin1")
        engine.dispose()
        yield url


def test_chinese_and_emoji_error_texts_are_stored_even_in_a_latin1_database(
    simulator: Simulator, tmp_path: Path
) -> None:
    with latin1_mariadb(tmp_path) as url:
        db = open_db(url)
        simulator.add_fault(Fault.envelope(-200, "系统繁忙 💸 請稍後"), API_KEY)
        built = recorder(settings_for(simulator.url), db)
        try:
            outcome = built.poller.poll(built.settings.accounts[0])
        finally:
            built.close()
        assert outcome.error_kind == "api_error" and outcome.stored
        ((message,),) = query(db, "SELECT message FROM poll_errors")
        db.close()
    assert "系统繁忙 💸 請稍後" in message


@pytest.mark.parametrize("size", [70_000, 1_000_000])
def test_a_huge_error_code_is_one_bounded_row_on_every_backend(
    db: Database, simulator: Simulator, size: int
) -> None:
    simulator.add_fault(Fault.envelope("7" * size, "x"), API_KEY)
    built = recorder(settings_for(simulator.url), db)
    try:
        outcome = built.poller.poll(built.settings.accounts[0])
    finally:
        built.close()
    assert outcome.error_kind == "api_error" and outcome.stored
    ((message,),) = query(db, "SELECT message FROM poll_errors")
    assert len(message) < 1100 and "more)" in message


def test_a_nul_in_an_error_text_is_stored_escaped(db: Database, simulator: Simulator) -> None:
    simulator.add_fault(Fault.envelope(-200, "bad\u0000thing"), API_KEY)
    built = recorder(settings_for(simulator.url), db)
    try:
        built.poller.poll(built.settings.accounts[0])
    finally:
        built.close()
    ((message,),) = query(db, "SELECT message FROM poll_errors")
    assert "bad\\x00thing" in message


def test_btc_and_btc_in_lower_case_are_two_currencies_on_every_backend(
    db: Database, simulator: Simulator
) -> None:
    simulator.set_holdings(API_KEY, {"BTC": "1", "btc": "2"})
    built = recorder(settings_for(simulator.url), db)
    try:
        outcome = built.poller.poll(built.settings.accounts[0])
    finally:
        built.close()
    assert outcome.status is PollStatus.RECORDED
    assert sorted(query(db, "SELECT currency FROM balances")) == [("BTC",), ("btc",)]


def test_asking_for_a_currency_shows_it_in_every_spelling_it_was_held(
    env: dict[str, str], simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    simulator.set_holdings(API_KEY, {"BTC": "1", "btc": "2", "ETH": "3"})
    runner = CliRunner()
    assert runner.invoke(cli, ["poll"], env=env).exit_code == 0
    result = runner.invoke(cli, ["at", "--currency", "BTC", "--format", "csv"], env=env)
    assert result.exit_code == 0, result.output
    held = sorted(line.split(",")[2] for line in result.stdout.splitlines()[1:])
    assert held == ["BTC", "btc"]


#: Triggers that refuse in the plainest way each server has: PL/pgSQL's RAISE EXCEPTION
#: (SQLSTATE P0001) and SIGNAL SQLSTATE '45000' (error 1644), and CHECK constraints.
PLAIN_REFUSALS = {
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.currency = 'REFUSE' "
        "THEN RAISE EXCEPTION 'refused by a plain trigger'; END IF; RETURN NEW; END $$ "
        "LANGUAGE plpgsql",
        "CREATE TRIGGER refuse BEFORE INSERT ON balances FOR EACH ROW EXECUTE FUNCTION refuse()",
        "ALTER TABLE balances ADD CONSTRAINT small CHECK (amount < 1000000)",
    ],
    "mysql": [
        "CREATE TRIGGER refuse BEFORE INSERT ON balances FOR EACH ROW BEGIN IF NEW.currency = "
        "'REFUSE' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by a plain "
        "trigger'; END IF; END",
        "ALTER TABLE balances ADD CONSTRAINT small CHECK (amount < 1000000)",
    ],
}


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
@pytest.mark.parametrize(
    ("held", "said"), [({"REFUSE": "1"}, "plain trigger"), ({"BTC": "2000000"}, "small")]
)
def test_a_trigger_or_check_constraint_with_the_servers_own_codes_is_a_refusal(
    backend: str, held: dict[str, str], said: str, simulator: Simulator, tmp_path: Path
) -> None:
    with fresh_database(backend, tmp_path) as url:
        db = open_db(url)
        try:
            with db.engine.begin() as connection:
                for statement in PLAIN_REFUSALS[backend]:
                    connection.exec_driver_sql(statement)
            simulator.set_holdings(API_KEY, held)
            first, second = poll_twice(simulator, db, tmp_path, then={"ETH": "1"})
            assert first.error_kind == "rejected_by_database", first
            ((message,),) = query(db, "SELECT message FROM poll_errors")
            assert said in message
            assert second.status is PollStatus.RECORDED
            assert not (tmp_path / "j.jsonl").exists()
        finally:
            db.close()


def poison_trigger(backend: str, codes: tuple[str, int]) -> list[str]:
    """A trigger that fails one currency's rows with the given error code, while every
    other write succeeds."""
    pg_code, mysql_code = codes
    if backend == "postgresql":
        return [
            "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN IF NEW.currency = 'POISON' "
            f"THEN RAISE EXCEPTION 'no room for poison' USING ERRCODE = '{pg_code}'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER poison BEFORE INSERT ON balances FOR EACH ROW "
            "EXECUTE FUNCTION poison()",
        ]
    return [
        "CREATE TRIGGER poison BEFORE INSERT ON balances FOR EACH ROW BEGIN IF NEW.currency = "
        "'POISON' THEN SIGNAL SQLSTATE 'HY000' SET MESSAGE_TEXT = 'no room for poison', "
        f"MYSQL_ERRNO = {mysql_code}; END IF; END"
    ]


#: Error codes the backends name neither a refusal nor an outage (a trigger's own code,
#: MariaDB's "unknown error").
UNRECOGNISED = ("QA001", 1105)
#: A full disk, as the backends name it: an outage, however it comes about.
DISK_FULL = ("53100", 1021)


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_an_entry_that_fails_alone_holds_only_its_account_and_is_set_aside_after_three(
    backend: str, simulator: Simulator, tmp_path: Path
) -> None:
    simulator.add_account("other-key", SECRET, lambda n: {"ETH": str(n)})
    simulator.set_holdings(API_KEY, {"POISON": "1"})
    journal = tmp_path / "j.jsonl"
    settings = settings_for(
        simulator.url, buffer_file=journal, accounts=(account("a"), account("b", "other-key"))
    )
    with fresh_database(backend, tmp_path) as url:
        db = open_db(url)
        try:
            with db.engine.begin() as connection:
                for statement in poison_trigger(backend, UNRECOGNISED):
                    connection.exec_driver_sql(statement)
            built = recorder(settings, db)
            told: list[PollOutcome] = []
            built.poller.listeners.append(told.append)
            try:
                rounds = [[built.poller.poll(a) for a in settings.accounts] for _ in range(3)]
                simulator.set_holdings(API_KEY, {"BTC": "1"})
                later = [built.poller.poll(settings.accounts[0]) for _ in range(4)]
            finally:
                built.close()
            # b is recorded at every poll, whatever a's entry does.
            assert [r[1].status for r in rounds] == [PollStatus.RECORDED] * 3
            assert [r[0].status for r in rounds] == [PollStatus.BUFFERED] * 3
            rejected = query(db, "SELECT kind, message FROM poll_errors")
            assert rejected and all(kind == "rejected_by_database" for kind, _ in rejected)
            assert all("no room for poison" in message for _, message in rejected)
            assert "no room for poison" in Journal(journal).quarantine_path.read_text()
            # Each entry set aside is told to the listeners (metrics count it) as failed.
            assert any(
                t.status is PollStatus.REPLAYED and t.error_kind == "rejected_by_database"
                for t in told
            )
            # Once a's poison entries are set aside, its clean polls are recorded.
            assert later[-1].status is PollStatus.RECORDED
            held = query(
                db,
                "SELECT b.currency FROM balances b JOIN snapshots s ON s.id = b.snapshot_id "
                "JOIN accounts a ON a.id = s.account_id WHERE a.name = 'a'",
            )
            assert ("POISON",) not in held and ("BTC",) in held
        finally:
            db.close()


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_an_entry_that_fails_with_an_outage_is_kept_however_often_until_it_is_written(
    backend: str, simulator: Simulator, tmp_path: Path
) -> None:
    simulator.set_holdings(API_KEY, {"POISON": "1"})
    journal = tmp_path / "j.jsonl"
    settings = settings_for(simulator.url, buffer_file=journal)
    with fresh_database(backend, tmp_path) as url:
        db = open_db(url)
        try:
            with db.engine.begin() as connection:
                for statement in poison_trigger(backend, DISK_FULL):
                    connection.exec_driver_sql(statement)
            built = recorder(settings, db)
            try:
                polled = [built.poller.poll(settings.accounts[0]) for _ in range(5)]
                assert {p.status for p in polled} == {PollStatus.BUFFERED}
                with db.engine.begin() as connection:
                    connection.exec_driver_sql(
                        "DROP TRIGGER poison" + (" ON balances" if backend == "postgresql" else "")
                    )
                # Once the disk has room, every kept poll is written, in order.
                wait_for(lambda: built.poller.poll(settings.accounts[0]).stored, timeout=30)
            finally:
                built.close()
            assert not query(db, "SELECT kind FROM poll_errors")
            assert not Journal(journal).quarantine_path.exists()
            assert counts(db)["snapshots"] >= 6  # the five kept polls and the one after
            assert not journal.exists() or not journal.read_text().strip()
        finally:
            db.close()


def test_an_account_name_the_database_refuses_is_a_refused_poll_not_a_crash(
    sqlite_db: Database, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    with sqlite_db.engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER no_main BEFORE INSERT ON accounts WHEN NEW.name = 'main' "
            "BEGIN SELECT RAISE(ABORT, 'no such account here'); END"
        )
    built = recorder(settings_for(simulator.url), sqlite_db)
    try:
        outcome = built.poller.poll(built.settings.accounts[0])
    finally:
        built.close()
    assert outcome.error_kind == "rejected_by_database"
    assert "no such account here" in caplog.text
    assert counts(sqlite_db)["snapshots"] == 0
