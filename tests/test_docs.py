"""The README tells the truth: its commands, keys, variables and SQL examples all work."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from recorder import config
from recorder.cli import cli
from recorder.config.settings import keys
from recorder.store import writes
from recorder.store.database import Database
from tests.conftest import BACKENDS, fresh_database
from tests.history import MAIN, T3, record

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


EXAMPLE = (ROOT / "config.example.toml").read_text()


def uncommented(text: str) -> str:
    """The example with every commented-out key and table ("# key = ...", "# [table]")
    turned on."""
    return re.sub(r"(?m)^# (?=\[|[a-z_]+ = )", "", text)


def test_every_config_key_is_in_the_example_and_the_readme() -> None:
    everything = tomllib.loads(uncommented(EXAMPLE))
    assert set(everything) == set(config.TOP_KEYS)
    example_account_keys = set().union(*(a.keys() for a in everything["accounts"]))
    for key in config.ACCOUNT_KEYS:
        assert key in example_account_keys or key in EXAMPLE, f"{key} missing from the example"
        assert f"`{key}`" in README, f"{key} missing from the README"
    for key in config.TOP_KEYS:
        if key != "accounts":
            spelled = (f"`{key}`", f"`[{key}]`", f"`[[{key}]]`")
            assert any(s in README for s in spelled), f"{key} not in the README"
    for variable in config.environment():
        assert f"`{variable}`" in README, f"{variable} missing from the README"


def test_the_example_shows_the_defaults_with_the_optional_tables_commented_out() -> None:
    shown = tomllib.loads(EXAMPLE)
    # A copied example must not serve metrics, prune, or alert a made-up URL.
    assert not {"metrics", "retention", "notify"} & set(shown)
    # Nor pin the database and journal beside itself: under systemd they belong in the
    # state directory, which is the default there.
    assert not {"database_url", "buffer_file"} & set(shown)
    everything = tomllib.loads(uncommented(EXAMPLE))
    for name, default, _ in keys(config.Settings):
        expected = str(default) if isinstance(default, Path) else default
        value = everything[name]
        assert value == expected, f"the example shows {name} = {value!r}, not the default"


def test_the_readme_documents_every_account_key_from_its_one_declaration() -> None:
    assert config.account_table() in README, "regenerate the README's [[accounts]] table"


def test_the_example_config_loads(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "main.secret").write_text("x" * 32)
    path = tmp_path / "recorder.toml"
    path.write_text(EXAMPLE)
    path.chmod(0o640)
    settings = config.load(path, {"CREDENTIALS_DIRECTORY": str(credentials)}, cwd=tmp_path)
    assert [a.name for a in settings.accounts] == ["main"]
    assert settings.warnings == ()


@pytest.fixture(scope="module", params=BACKENDS)
def history_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with fresh_database(request.param, tmp_path_factory.mktemp("docs")) as url:
        record(url)
        db = Database(url)
        with db.transaction() as connection:
            account = writes.account_id(db, "main")
            writes.add_poll_error(db, connection, account, T3, "rate_limit", "29001")
        db.close()
        yield url


@pytest.mark.parametrize("sql", code_blocks("sql"), ids=lambda sql: sql.split("\n")[0][:40])
def test_every_sql_example_runs_and_answers_correctly(history_url: str, sql: str) -> None:
    backend = make_url(history_url).get_backend_name()
    if "LATERAL" in sql and backend != "postgresql":
        pytest.skip("the LATERAL example is for PostgreSQL")
    engine = sa.create_engine(history_url)
    with engine.connect() as connection:
        result = [tuple(row) for row in connection.exec_driver_sql(sql.strip().rstrip(";"))]
    engine.dispose()
    assert result
    if "2026-04-01" in sql:  # "what did I hold on 31 March"
        held = {(name, currency): Decimal(str(amount)) for name, currency, amount, _ in result}
        assert held == {("main", c): Decimal(a) for c, a in MAIN[1][1].items()} | {
            ("savings", "ETH"): Decimal("2.5")
        }
    elif "FROM latest_balances" in sql:
        assert {(r[0], r[1], Decimal(str(r[2]))) for r in result} == {
            ("main", c, Decimal(a)) for c, a in MAIN[2][1].items()
        } | {("savings", "ETH", Decimal("2.5"))}
    elif "FROM daily_balances" in sql:
        assert [(r[0], str(r[1])[:10], Decimal(str(r[2]))) for r in result] == [
            ("main", "2026-03-30", Decimal("0.0012")),
            ("main", "2026-03-31", Decimal("0.0015")),
        ]
    elif "FROM portfolio_values" in sql:
        assert [(r[0], r[3]) for r in result] == [
            ("main", 1),
            ("main", 1),
            ("main", 1),
            ("savings", 0),
        ]
    elif "currency = 'BTC'" in sql:
        assert [Decimal(str(row[4])) for row in result] == [Decimal("0.0003"), Decimal("0.0012")]
    elif "poll_errors" in sql:
        assert [(row[0], row[1], row[2]) for row in result] == [("main", "rate_limit", 1)]
    else:  # pragma: no cover - a new example needs its expected answer here
        raise AssertionError(f"no expected answer for this README example:\n{sql}")


def test_the_readme_sql_examples_are_there() -> None:
    assert len(code_blocks("sql")) >= 4
    assert sa  # the examples run through SQLAlchemy's connection, as a user's tool would


def test_every_test_named_in_the_reliability_table_exists() -> None:
    document = (ROOT / "docs" / "reliability.md").read_text()
    sources = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    files = set(re.findall(r"\b(test_[a-z0-9_]+)\.py\b", document))
    named = set(re.findall(r"\b(test_[a-z0-9_]+)\b", document)) - files
    assert len(named) > 15
    missing = sorted(name for name in named if f"def {name}(" not in sources)
    assert missing == []
