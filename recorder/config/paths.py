"""Where files named by the settings are: every relative path resolves against one folder.

- A path written in the config file (a SQLite database in `database_url`, `buffer_file`,
  a `*_file` secret) is relative to the config file's folder, whatever the working folder:
  the daemon, a cron job and a shell then all mean the same file.
- A path given in an environment variable is relative to the working folder, like any
  path typed in a shell.
- The defaults (`recorder.db`, `recorder-buffer.jsonl`) live in the unit's state directory
  when run by systemd with `StateDirectory=` ($STATE_DIRECTORY), else beside the config
  file, else in the working folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url


def state_directory(environ: Mapping[str, str]) -> Path | None:
    """The unit's state directory ($STATE_DIRECTORY, the first of several), if run under
    systemd with StateDirectory=."""
    first = environ.get("STATE_DIRECTORY", "").split(":")[0].strip()
    return Path(first) if first else None


def default_folder(environ: Mapping[str, str], config_folder: Path | None, cwd: Path) -> Path:
    """Where files that the settings do not name go."""
    return state_directory(environ) or config_folder or cwd


def resolve(path_text: str, base: Path) -> Path:
    """`path_text` (`~` expanded) as an absolute path, relative ones against `base`."""
    return (base / Path(path_text).expanduser()).absolute()


def resolve_sqlite_url(url: str, base: Path) -> str:
    """A SQLite URL whose file path is relative, made absolute against `base`; any other
    URL (a server, memory, a `file:` URI, one that does not parse) as it is."""
    try:
        parsed = make_url(url)
    except Exception:  # the store refuses it later, with one sentence
        return url
    database = parsed.database or ""
    if not parsed.drivername.startswith("sqlite") or not database:
        return url
    if database == ":memory:" or database.startswith("file:") or Path(database).is_absolute():
        return url
    return parsed.set(database=str(resolve(database, base))).render_as_string(hide_password=False)
