"""Settings: file, environment, defaults, and one clear sentence for every mistake."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest

from recorder import config
from recorder.errors import ConfigError

SECRET = "cfg-secret-value-0123456789"


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "recorder.toml"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def load(tmp_path: Path, text: str | None = None, **environ: str) -> config.Settings:
    path = write(tmp_path, text) if text is not None else None
    return config.load(path, environ, cwd=tmp_path)


def test_environment_variables_alone_configure_one_default_account(tmp_path: Path) -> None:
    settings = load(tmp_path, COINW_API_KEY="key", COINW_SECRET_KEY=SECRET)
    (account,) = settings.accounts
    assert account.name == "default"
    assert account.credentials.api_key == "key"
    assert account.credentials.secret_key.reveal() == SECRET
    assert settings.database_url == f"sqlite:///{tmp_path / 'recorder.db'}"
    assert settings.buffer_file == tmp_path / "recorder-buffer-{database}.jsonl"
    assert settings.base_url == "https://api.coinw.com"
    assert settings.interval_seconds == 60
    assert settings.timeout_seconds == 10


def test_the_file_names_accounts_and_where_their_keys_come_from(tmp_path: Path) -> None:
    (tmp_path / "savings.secret").write_text(SECRET + "\n")
    os.chmod(tmp_path / "savings.secret", 0o600)
    settings = load(
        tmp_path,
        """
database_url = "sqlite:///history.db"
interval_seconds = 30

[[accounts]]
name = "main"
api_key_env = "MAIN_KEY"
secret_key_env = "MAIN_SECRET"

[[accounts]]
name = "savings"
api_key = "savings-key"
secret_key_file = "savings.secret"
""",
        MAIN_KEY="main-key",
        MAIN_SECRET="main-secret-value",
    )
    assert [a.name for a in settings.accounts] == ["main", "savings"]
    assert settings.accounts[0].credentials.secret_key.reveal() == "main-secret-value"
    assert settings.accounts[1].credentials.secret_key.reveal() == SECRET
    assert settings.interval_seconds == 30
    assert settings.warnings == ()


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        'database_url = "sqlite:///a.db"\ninterval_seconds = 30\nbase_url = "http://x"\n',
        RECORDER_DATABASE_URL="sqlite:///b.db",
        RECORDER_INTERVAL_SECONDS="2.5",
        COINW_BASE_URL="http://127.0.0.1:9/",
    )
    assert settings.database_url == f"sqlite:///{tmp_path / 'b.db'}"
    assert settings.interval_seconds == 2.5
    assert settings.base_url == "http://127.0.0.1:9"


def test_the_config_file_is_found_by_variable_then_in_the_current_folder(tmp_path: Path) -> None:
    path = write(tmp_path, "interval_seconds = 7\n")
    assert config.load(None, {"RECORDER_CONFIG": str(path)}, cwd=Path("/")).interval_seconds == 7
    assert config.load(None, {}, cwd=tmp_path).interval_seconds == 7


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("intervall_seconds = 5\n", {}, "Unknown key 'intervall_seconds'"),
        ('interval_seconds = "5"\n', {}, "interval_seconds in"),
        ("interval_seconds = 0.5\n", {}, "between 1 and 86400 (got 0.5)"),
        ("", {"RECORDER_INTERVAL_SECONDS": "0"}, "RECORDER_INTERVAL_SECONDS"),
        ("", {"RECORDER_INTERVAL_SECONDS": "soon"}, "must be a number"),
        ("timeout_seconds = true\n", {}, "must be a number, not true/false"),
        ('base_url = "ftp://x"\n', {}, "http:// or https://"),
        ('log_level = "LOUD"\n', {}, "log_level"),
        ("[[accounts]]\napi_key = 'k'\nsecret_key_env = 'S'\n", {"S": "x"}, "has no name"),
        ("[[accounts]]\nname = 'main'\napi_key = 'k'\n", {}, "account 'main' has no secret key"),
        ("[[accounts]]\nname = 'main'\nsecret_key_env = 'S'\n", {"S": "x"}, "has no API key"),
        (
            "[[accounts]]\nname = 'main'\napi_key = 'k'\nsecret_key_env = 'NOPE'\n",
            {},
            "NOPE, which is not set",
        ),
        (
            "[[accounts]]\nname = 'main'\napi_key = 'k'\nsecret_key_file = 'missing'\n",
            {},
            "does not exist",
        ),
        (
            "[[accounts]]\nname='a'\napi_key='k'\nsecret_key='s-long-enough'\n"
            "[[accounts]]\nname='a'\napi_key='k'\nsecret_key='s-long-enough'\n",
            {},
            "used twice",
        ),
        (
            "[[accounts]]\nname='a'\napi_key='k'\nsecret_key='x9Q2z'\n",
            {},
            "too short to be a CoinW key",
        ),
        (
            "[[accounts]]\nname = 'main'\napi_key = 'k'\nsecret_key = 's'\nsecret_key_env = 'S'\n",
            {"S": "x"},
            "keep one",
        ),
        ("[[accounts]]\nname = 'bad name!'\napi_key = 'k'\nsecret_key = 's'\n", {}, "may hold"),
        ("accounts = 3\n", {}, "[[accounts]]"),
        ("this is = not toml\n", {}, "not valid TOML"),
        ("", {"COINW_API_KEY": "k"}, "no secret key"),
        ("", {"COINW_SECRET_KEY": "s"}, "COINW_API_KEY is not"),
    ],
)
def test_a_bad_config_fails_with_one_sentence_naming_the_key(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, **environ)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.toml", {}, cwd=tmp_path)


def test_run_and_poll_need_an_account(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No account is configured"):
        load(tmp_path).require_accounts()


def test_no_repr_of_the_settings_shows_the_secret(tmp_path: Path) -> None:
    settings = load(tmp_path, COINW_API_KEY="key-1234567890", COINW_SECRET_KEY=SECRET)
    for text in (
        repr(settings),
        str(settings),
        repr(settings.accounts[0]),
        repr(settings.accounts[0].credentials),
        str(settings.accounts[0].credentials),
    ):
        assert SECRET not in text
    assert "key-1234567890" not in repr(settings)


def test_a_secret_file_every_user_can_read_gets_a_warning_with_the_fix(tmp_path: Path) -> None:
    secret_file = tmp_path / "main.secret"
    secret_file.write_text(SECRET)
    os.chmod(secret_file, 0o644)
    settings = load(tmp_path, COINW_API_KEY="k", COINW_SECRET_KEY_FILE=str(secret_file))
    (warning,) = settings.warnings
    assert f"chmod o-rwx {secret_file}" in warning
    assert "every user" in warning


def test_a_config_file_holding_a_secret_every_user_can_read_gets_a_warning(
    tmp_path: Path,
) -> None:
    text = "[[accounts]]\nname = 'main'\napi_key = 'k'\nsecret_key = 'inline-secret'\n"
    path = write(tmp_path, text, mode=0o644)
    settings = config.load(path, {}, cwd=tmp_path)
    assert any(f"chmod o-rwx {path}" in w for w in settings.warnings)


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o400, 0o440])
def test_the_documented_layout_readable_by_owner_and_service_group_gets_no_warning(
    tmp_path: Path, mode: int
) -> None:
    # The README installs the config as 0640 root:recorder: the service reads it through
    # its group. Telling the operator to chmod 600 it would lock the service out.
    (tmp_path / "main.secret").write_text(SECRET)
    os.chmod(tmp_path / "main.secret", mode)
    text = (
        "[[accounts]]\nname = 'main'\napi_key = 'k'\nsecret_key = 'inline-secret'\n"
        "[[accounts]]\nname = 'other'\napi_key = 'k'\nsecret_key_file = 'main.secret'\n"
    )
    path = write(tmp_path, text, mode=mode)
    assert config.load(path, {}, cwd=tmp_path).warnings == ()


def test_the_environment_key_overrides_the_default_account_in_the_file(tmp_path: Path) -> None:
    text = "[[accounts]]\nname = 'default'\napi_key = 'file'\nsecret_key_env = 'S'\n"
    settings = load(
        tmp_path, text, S="file-secret", COINW_API_KEY="env", COINW_SECRET_KEY="env-secret-1"
    )
    assert settings.accounts[0].credentials.api_key == "env"


def test_the_operations_tables_are_read_and_checked(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """
log_format = "json"
ha = true
[metrics]
port = 9108
[retention]
keep_all_days = 30
keep_one_per = "day"
[[notify]]
url = "https://hooks.example.com/x?token=abc"
currencies = ["btc"]
min_abs_change = "0.001"
min_rel_change = 0.05
[[notify]]
command = ["/bin/true", "--flag"]
""",
    )
    assert settings.log_format == "json" and settings.ha
    assert settings.metrics.port == 9108 and settings.metrics.address == "127.0.0.1"
    assert settings.retention.keep_all_days == 30 and settings.retention.keep_one_per == "day"
    webhook, command = settings.notify
    assert webhook.currencies == ("BTC",)
    assert webhook.min_abs_change == Decimal("0.001")
    assert webhook.min_rel_change == Decimal("0.05")
    assert command.command == ("/bin/true", "--flag")
    assert "token=abc" not in repr(settings)  # a webhook's token stays out of reprs


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[notify]]\naccounts = ['main']\n", "neither a url nor a command"),
        ("[[notify]]\nurl = 'ftp://x'\n", "http:// or https://"),
        ("[[notify]]\ncommand = 'x'\nmin_abs_change = '-1'\n", "at least 0"),
        ("[[notify]]\ncommand = [1]\n", "list of strings"),
        ("[metrics]\nport = 70000\n", "between 0 and 65535"),
        ("[retention]\nkeep_one_per = 'minute'\n", "keep_one_per"),
        ("[retention]\nforever = true\n", "Unknown key 'forever'"),
        ("log_format = 'xml'\n", "log_format"),
        ("ha = 'yes'\n", "true or false"),
    ],
)
def test_bad_operations_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(tmp_path, text)


def test_a_misspelt_variable_is_named_with_the_one_it_was_meant_to_be(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        RECORDER_DATABSE_URL="postgresql://db/history",
        RECORDER_INTERVAL="30",
        RECORDER_SOMETHING_ELSE="1",
        # Read, or the test suite's own, or a [[notify]] command's: no warning.
        RECORDER_CONFIG="",
        RECORDER_LOG_LEVEL="INFO",
        RECORDER_TEST_POSTGRES_URL="postgresql://x",
        RECORDER_ACCOUNT="main",
    )
    assert settings.warnings == (
        "RECORDER_DATABSE_URL is not a variable the recorder reads and is ignored; did you "
        "mean RECORDER_DATABASE_URL?",
        "RECORDER_INTERVAL is not a variable the recorder reads and is ignored; did you mean "
        "RECORDER_INTERVAL_SECONDS?",
        "RECORDER_SOMETHING_ELSE is not a variable the recorder reads and is ignored; the "
        "README lists the variables it reads.",
    )


def test_an_empty_buffer_file_variable_means_memory_only_as_in_the_file(tmp_path: Path) -> None:
    assert load(tmp_path, RECORDER_BUFFER_FILE="").buffer_file is None
    assert load(tmp_path, 'buffer_file = ""\n').buffer_file is None
    # Other empty variables stay unset, as a shell's `VAR= command` means.
    assert load(tmp_path, RECORDER_TIMEOUT_SECONDS="").timeout_seconds == 10


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("timeout_seconds", "-1", "must be between 0.1 and 300 (got -1)."),
        ("timeout_seconds", "-0.5", "must be between 0.1 and 300 (got -0.5)."),
        ("buffer_max_snapshots", "-5", "must be between 1 and 10000000 (got -5)."),
    ],
)
def test_a_negative_number_in_a_variable_gets_the_words_the_file_gets(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as in_file:
        load(tmp_path, f"{key} = {value}\n")
    with pytest.raises(ConfigError) as in_variable:
        (tmp_path / "recorder.toml").unlink()
        load(tmp_path, **{f"RECORDER_{key.upper()}": value})
    assert str(in_file.value).endswith(message)
    assert str(in_variable.value) == f"RECORDER_{key.upper()} (for {key}) {message}"
