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


def test_every_config_key_is_in_the_example_and_the_readme() -> None:
    example = tomllib.loads((ROOT / "config.example.toml").read_text())
    # [[notify]] is shown commented out: a copied example must not alert a made-up URL.
    assert set(example) | {"notify"} == set(config.TOP_KEYS)
    assert "# [[notify]]" in (ROOT / "config.example.toml").read_text()
    example_account_keys = set().union(*(a.keys() for a in example["accounts"]))
    text = (ROOT / "config.example.toml").read_text()
    for key in config.ACCOUNT_KEYS:
        assert key in example_account_keys or key in text, f"{key} missing from the example"
        assert f"`{key}`" in README, f"{key} missing from the README"
    for key in config.TOP_KEYS:
        if key != "accounts":
            spelled = (f"`{key}`", f"`[{key}]`", f"`[[{key}]]`")
            assert any(s in README for s in spelled), f"{key} not in the README"
    for key in ("keep_all_days", "keep_one_per"):
        assert key in example["retention"] and f"`{key}`" in README
    for variable in config.environment():
        assert f"`{variable}`" in README, f"{variable} missing from the README"


def test_the_readme_documents_every_key_from_its_one_declaration() -> None:
    table = config.reference_table()
    assert table in README, "regenerate the README's key table from config.reference_table()"


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
