"""Settings as a service reads them: systemd credentials for any number of accounts, the
COINW_* route for the account named `default`, the state directory, and relative paths
that mean the same file whatever the working folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from recorder import config
from recorder.errors import ConfigError
from tests.users import give_away, need_root, without_file_powers

ROOT = Path(__file__).resolve().parent.parent

SECRETS = {"main": "main-secret-0123456789", "savings": "savings-secret-0123456789"}


def write_config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recorder.toml"
    path.write_text(text)
    path.chmod(0o640)
    return path


def credentials(folder: Path, **values: str) -> Path:
    """A $CREDENTIALS_DIRECTORY as systemd lays it out: one 0400 file per credential."""
    folder.mkdir()
    for name, value in values.items():
        (folder / name).write_text(value + "\n")
        (folder / name).chmod(0o400)
    return folder


TWO_ACCOUNTS = """
[[accounts]]
name = "main"
api_key = "main-key"
secret_key_credential = "main.secret"

[[accounts]]
name = "savings"
api_key_credential = "savings.key"
secret_key_credential = "savings.secret"
"""


def test_systemd_credentials_give_each_of_several_accounts_its_keys(tmp_path: Path) -> None:
    path = write_config(tmp_path / "etc", TWO_ACCOUNTS)
    folder = credentials(
        tmp_path / "credentials",
        **{
            "main.secret": SECRETS["main"],
            "savings.key": "savings-key",
            "savings.secret": SECRETS["savings"],
        },
    )
    settings = config.load(path, {"CREDENTIALS_DIRECTORY": str(folder)}, cwd=Path("/"))
    keys = {
        a.name: (a.credentials.api_key, a.credentials.secret_key.reveal())
        for a in settings.accounts
    }
    assert keys == {
        "main": ("main-key", SECRETS["main"]),
        "savings": ("savings-key", SECRETS["savings"]),
    }
    assert settings.warnings == ()


def test_a_credential_key_outside_systemd_says_how_to_provide_it(tmp_path: Path) -> None:
    path = write_config(tmp_path, TWO_ACCOUNTS)
    with pytest.raises(ConfigError) as caught:
        config.load(path, {}, cwd=tmp_path)
    message = str(caught.value)
    assert "account 'main'.secret_key_credential" in message
    assert "$CREDENTIALS_DIRECTORY is not set" in message
    assert "LoadCredential=main.secret:" in message and "\n" not in message


def test_a_credential_the_unit_does_not_load_names_the_missing_line(tmp_path: Path) -> None:
    path = write_config(tmp_path / "etc", TWO_ACCOUNTS)
    folder = credentials(tmp_path / "credentials", **{"main.secret": SECRETS["main"]})
    with pytest.raises(ConfigError, match=r"add LoadCredential=savings\.key:/path/to/file"):
        config.load(path, {"CREDENTIALS_DIRECTORY": str(folder)}, cwd=tmp_path)


def test_a_credential_name_is_not_a_path(tmp_path: Path) -> None:
    text = "[[accounts]]\nname='a'\napi_key='k'\nsecret_key_credential='../etc/shadow'\n"
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError, match="not a path"):
        config.load(path, {"CREDENTIALS_DIRECTORY": str(tmp_path)}, cwd=tmp_path)


def test_an_account_named_default_may_leave_its_keys_to_the_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[[accounts]]\nname = 'default'\nbalance_source = 'complete'\n")
    (tmp_path / "coinw.secret").write_text(SECRETS["main"])
    (tmp_path / "coinw.secret").chmod(0o600)
    environ = {"COINW_API_KEY": "env-key", "COINW_SECRET_KEY_FILE": str(tmp_path / "coinw.secret")}
    (account,) = config.load(path, environ, cwd=tmp_path).accounts
    assert account.name == "default" and account.balance_source == "complete"
    assert account.credentials.api_key == "env-key"
    assert account.credentials.secret_key.reveal() == SECRETS["main"]


def test_the_environment_may_give_only_the_key_the_default_account_lacks(tmp_path: Path) -> None:
    text = "[[accounts]]\nname = 'default'\napi_key = 'file-key'\n"
    path = write_config(tmp_path, text)
    (account,) = config.load(path, {"COINW_SECRET_KEY": SECRETS["main"]}, cwd=tmp_path).accounts
    assert account.credentials.api_key == "file-key"
    assert account.credentials.secret_key.reveal() == SECRETS["main"]
    with pytest.raises(ConfigError, match=r"no secret key: .*COINW_SECRET_KEY_FILE"):
        config.load(path, {}, cwd=tmp_path)


def test_other_accounts_still_need_both_keys_in_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[[accounts]]\nname = 'main'\napi_key = 'k'\n")
    with pytest.raises(ConfigError, match="account 'main' has no secret key"):
        config.load(path, {"COINW_SECRET_KEY": SECRETS["main"]}, cwd=tmp_path)


def test_a_secret_file_variable_without_an_api_key_is_named_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "coinw.secret").write_text(SECRETS["main"])
    (tmp_path / "coinw.secret").chmod(0o600)
    environ = {"COINW_SECRET_KEY_FILE": "coinw.secret"}  # relative: the working folder
    with pytest.raises(ConfigError) as caught:
        config.load(None, environ, cwd=tmp_path)
    assert str(caught.value) == "COINW_SECRET_KEY_FILE is set but COINW_API_KEY is not; set both."


def test_relative_paths_in_the_file_resolve_against_its_folder(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    path = write_config(
        etc,
        'database_url = "sqlite:///data/history.db"\nbuffer_file = "journal.jsonl"\n'
        "[[accounts]]\nname = 'main'\napi_key = 'k'\nsecret_key_file = 'main.secret'\n",
    )
    (etc / "main.secret").write_text(SECRETS["main"])
    (etc / "main.secret").chmod(0o600)
    elsewhere = tmp_path / "cron-home"
    elsewhere.mkdir()
    for cwd in (elsewhere, Path("/")):
        settings = config.load(path, {}, cwd=cwd)
        assert settings.database_url == f"sqlite:///{etc / 'data' / 'history.db'}"
        assert settings.buffer_file == etc / "journal.jsonl"
        assert settings.accounts[0].credentials.secret_key.reveal() == SECRETS["main"]
    # Found through $RECORDER_CONFIG given relative to the working folder: the same files.
    found = config.load(None, {"RECORDER_CONFIG": "etc/recorder.toml"}, cwd=tmp_path)
    assert found.database_url == f"sqlite:///{etc / 'data' / 'history.db'}"


def test_the_defaults_live_beside_the_config_file(tmp_path: Path) -> None:
    path = write_config(tmp_path / "etc", "interval_seconds = 30\n")
    settings = config.load(path, {}, cwd=tmp_path / "somewhere")
    assert settings.database_url == f"sqlite:///{tmp_path / 'etc' / 'recorder.db'}"
    assert settings.buffer_file == tmp_path / "etc" / "recorder-buffer-{database}.jsonl"


def test_relative_paths_in_variables_resolve_against_the_working_folder(tmp_path: Path) -> None:
    path = write_config(tmp_path / "etc", 'database_url = "sqlite:///in-etc.db"\n')
    environ = {"RECORDER_DATABASE_URL": "sqlite:///here.db", "RECORDER_BUFFER_FILE": "j.jsonl"}
    settings = config.load(path, environ, cwd=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'here.db'}"
    assert settings.buffer_file == tmp_path / "j.jsonl"


def test_under_systemd_the_database_and_journal_default_to_the_state_directory(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path / "etc", "interval_seconds = 30\n")
    state = tmp_path / "var-lib-recorder"
    environ = {"STATE_DIRECTORY": f"{state}:{tmp_path / 'second'}"}
    settings = config.load(path, environ, cwd=tmp_path)
    assert settings.database_url == f"sqlite:///{state / 'recorder.db'}"
    assert settings.buffer_file == state / "recorder-buffer-{database}.jsonl"
    # What the file says still wins, and an empty buffer_file still means memory only.
    path.write_text('buffer_file = ""\ndatabase_url = "postgres://u@db/recorder"\n')
    settings = config.load(path, environ, cwd=tmp_path)
    assert settings.buffer_file is None
    assert settings.database_url == "postgres://u@db/recorder"


def test_server_urls_and_memory_are_left_as_they_are(tmp_path: Path) -> None:
    for url in (
        "postgresql://u:p@db/x",
        "mysql://root@127.0.0.1/x",
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:////abs/olute.db",
    ):
        settings = config.load(None, {"RECORDER_DATABASE_URL": url}, cwd=tmp_path)
        assert settings.database_url == url


def test_a_file_readable_by_the_service_group_is_quiet_and_world_readable_is_not(
    tmp_path: Path,
) -> None:
    (tmp_path / "main.secret").write_text(SECRETS["main"])
    path = write_config(
        tmp_path, "[[accounts]]\nname = 'main'\napi_key = 'k'\nsecret_key_file = 'main.secret'\n"
    )
    os.chmod(tmp_path / "main.secret", 0o640)
    assert config.load(path, {}, cwd=tmp_path).warnings == ()
    os.chmod(tmp_path / "main.secret", 0o604)
    (warning,) = config.load(path, {}, cwd=tmp_path).warnings
    assert warning.endswith(f"chmod o-rwx {tmp_path / 'main.secret'}")


def test_commands_that_only_read_need_the_account_names_not_their_keys(tmp_path: Path) -> None:
    # `recorder status` from cron runs where the unit's credentials are not.
    path = write_config(tmp_path, TWO_ACCOUNTS)
    settings = config.load(path, {}, cwd=tmp_path, read_keys=False)
    assert [a.name for a in settings.accounts] == ["main", "savings"]
    from_environment = config.load(
        None, {"COINW_SECRET_KEY_FILE": "/nowhere"}, cwd=Path("/"), read_keys=False
    )
    assert [a.name for a in from_environment.accounts] == ["default"]


def run_as_another_user(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    """The recorder run by a user with no power over others' files (tests/users.py)."""
    result = subprocess.run(
        [sys.executable, "-m", "recorder", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        preexec_fn=without_file_powers,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stderr


def test_a_working_folder_that_cannot_be_read_is_one_sentence(tmp_path: Path) -> None:
    need_root()
    closed = tmp_path / "closed"  # as /root is to the service user
    closed.mkdir(mode=0o700)
    give_away(closed)
    code, stderr = run_as_another_user(
        closed, {"RECORDER_DATABASE_URL": f"sqlite:///{tmp_path / 'h.db'}"}, "status"
    )
    assert (code, stderr) == (
        2,
        f"Error: Cannot check whether the default config file '{closed}/recorder.toml' exists "
        "(Permission denied); run from a folder this user can read, or name the config file "
        "with --config or RECORDER_CONFIG.\n",
    )


def test_a_credentials_folder_that_cannot_be_read_is_one_sentence(tmp_path: Path) -> None:
    need_root()
    path = write_config(tmp_path / "etc", TWO_ACCOUNTS)
    folder = credentials(tmp_path / "creds", **{"main.secret": SECRETS["main"]})
    folder.chmod(0o700)
    give_away(folder, *folder.iterdir())
    code, stderr = run_as_another_user(
        tmp_path, {"RECORDER_CONFIG": str(path), "CREDENTIALS_DIRECTORY": str(folder)}, "poll"
    )
    assert (code, stderr) == (
        2,
        "Error: account 'main'.secret_key_credential names the systemd credential "
        f"'main.secret', but $CREDENTIALS_DIRECTORY ({folder}) cannot be read by this user "
        "(Permission denied); run the recorder as the user of the unit that loaded it.\n",
    )
