"""The README tells the truth: its commands, keys, variables and SQL examples all work."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import click
import pytest
import sqlalchemy as sa

from recorder import config
from recorder.cli import cli
from recorder.diff import diff
from recorder.store import Store

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_the_readme_opens_with_the_demo_and_the_test_command() -> None:
    first, second = re.findall(r"```sh\n(.*?)```", README, flags=re.S)[:2]
    assert first.strip() == "pip install -e . && recorder demo"
    assert second.strip() == "pip install -e '.[test]' && pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -e '.[test]' && pytest" in ci
    assert "RECORDER_TEST_POSTGRES_URL" in ci and "RECORDER_TEST_MYSQL_URL" in ci


def all_commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from all_commands(command, f"{path} ")


def test_every_command_has_help_and_is_in_the_readme() -> None:
    commands = dict(all_commands(cli))
    assert {"run", "poll", "demo", "db upgrade"} <= set(commands)
    for path, command in commands.items():
        assert command.help, f"{path} has no help text"
        if not isinstance(command, click.Group):
            assert f"recorder {path}" in README, f"`recorder {path}` is not in the README"


def test_every_config_key_is_in_the_example_and_the_readme() -> None:
    example = tomllib.loads((ROOT / "config.example.toml").read_text())
    assert set(example) == set(config._TOP_KEYS)
    example_account_keys = set().union(*(a.keys() for a in example["accounts"]))
    text = (ROOT / "config.example.toml").read_text()
    for key in config._ACCOUNT_KEYS:
        assert key in example_account_keys or key in text, f"{key} missing from the example"
        assert f"`{key}`" in README, f"{key} missing from the README"
    for key in config._TOP_KEYS:
        if key != "accounts":
            assert f"`{key}`" in README, f"{key} missing from the README"
    for variable in config.ENVIRONMENT:
        assert f"`{variable}`" in README, f"{variable} missing from the README"


def test_the_example_config_loads(tmp_path: Path) -> None:
    secret = tmp_path / "savings.secret"
    secret.write_text("x" * 32)
    secret.chmod(0o600)
    text = (
        (ROOT / "config.example.toml")
        .read_text()
        .replace("/etc/recorder/savings.secret", str(secret))
    )
    path = tmp_path / "recorder.toml"
    path.write_text(text)
    environ = {"COINW_MAIN_API_KEY": "k", "COINW_MAIN_SECRET_KEY": "s" * 32}
    settings = config.load(path, environ, cwd=tmp_path)
    assert [a.name for a in settings.accounts] == ["main", "savings"]


T1 = datetime(2026, 3, 31, 10, 0, tzinfo=UTC)
T2 = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
T3 = datetime(2026, 4, 1, 0, 30, tzinfo=UTC)


def fill(store: Store) -> None:
    main = store.account_id("main")
    history = [
        (T1, {"BTC": Decimal("0.0012"), "USDT": Decimal("257.518301140000000")}),
        (T2, {"BTC": Decimal("0.0015"), "USDT": Decimal("257.518301140000000")}),
        (T3, {"BTC": Decimal("0.0020")}),
    ]
    previous: dict[str, Decimal] = {}
    for taken_at, balances in history:
        with store.writer() as writer:
            writer.add_snapshot(main, taken_at, balances, diff(previous, balances))
        previous = balances
    store.add_poll_error(main, T3, "rate_limit", "CoinW answered with error code 29001.")


@pytest.mark.parametrize("sql", code_blocks("sql"))
def test_every_sql_example_runs_and_answers_correctly(store: Store, sql: str) -> None:
    backend = store.url.get_backend_name()
    if "LATERAL" in sql and backend != "postgresql":
        pytest.skip("the LATERAL example is for PostgreSQL")
    fill(store)
    with store.engine.connect() as connection:
        result = [tuple(row) for row in connection.exec_driver_sql(sql.strip().rstrip(";"))]
    assert result
    if "2026-04-01" in sql:  # "what did I hold on 31 March"
        held = {(name, currency): Decimal(str(amount)) for name, currency, amount, _ in result}
        assert held == {
            ("main", "BTC"): Decimal("0.0015"),
            ("main", "USDT"): Decimal("257.51830114"),
        }
    if "currency = 'BTC'" in sql:
        assert [Decimal(str(row[4])) for row in result] == [
            Decimal("0.0005"),
            Decimal("0.0003"),
            Decimal("0.0012"),
        ]
    if "poll_errors" in sql:
        assert [(row[0], row[1], row[2]) for row in result] == [("main", "rate_limit", 1)]


def test_the_readme_sql_examples_are_there() -> None:
    assert len(code_blocks("sql")) >= 4
    assert sa  # the examples run through SQLAlchemy's connection, as a user's tool would
