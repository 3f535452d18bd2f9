"""The README's "Run it as a service" section, followed for real.

The section's commands run as written, with two substitutions: every path lives under a
folder of this test's own (`/etc/recorder` -> `<root>/etc/recorder`, ...) and the service
user has a name of its own. `sudo` is dropped (the test is root; commands run with sudo's
PATH, so `python3` is the system's), `sudoedit` becomes the edit the section asks for, and
what systemd would do is done by hand from the unit file and its drop-ins: the environment
(`Environment=`, `EnvironmentFile=`, `$STATE_DIRECTORY`, `$CREDENTIALS_DIRECTORY` holding a
0400 copy of each `LoadCredential=` file), then `ExecStart=` as the service user (setpriv).

Then, as that user: `poll` (the SQLite database lands in the state directory, nothing is
written where the config is), a second account through the section's drop-in, `run` on
PostgreSQL (a `postgres://` URL) while a proxy cuts the database and brings it back (the
journal in the state directory keeps the polls), `status` as the section shows it for
cron, a journal the service cannot write refused at start, and the COINW_* route for one
account named `default`.

It needs root (a user is created), setpriv and the system's python3 with venv; CI sets
RECORDER_TEST_REQUIRE_WALKTHROUGH=1 so that it never skips there.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from recorder.sources.coinw.simulator import Simulator
from tests.conftest import API_KEY, SECRET, wait_for
from tests.proxy import TCPProxy

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SUDO_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SAVINGS_KEY, SAVINGS_SECRET = "savings-api-key-0002", "savings-secret-never-shown-0002"

pytestmark = pytest.mark.slow


def section_blocks() -> list[str]:
    """The shell blocks of the README's service section, in order."""
    section = README.split("\n## Run it as a service\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def requirement(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("RECORDER_TEST_REQUIRE_WALKTHROUGH"):
        pytest.fail(f"{reason}, and RECORDER_TEST_REQUIRE_WALKTHROUGH is set")
    pytest.skip(reason)


@dataclass
class Machine:
    """A machine's folders under one root, and the service user."""

    root: Path
    user: str
    credentials: Path = field(init=False)

    def __post_init__(self) -> None:
        self.credentials = self.root / "run" / "credentials" / "recorder.service"

    def path(self, absolute: str) -> Path:
        """An absolute path of the README on this machine (one already there: as it is)."""
        if absolute.startswith(f"{self.root}/"):
            return Path(absolute)
        return self.root / absolute.lstrip("/")

    def translate(self, line: str) -> str:
        """A line of the README as run on this machine."""
        for folder in ("/etc/systemd/system", "/etc/recorder", "/var/lib/recorder", "/opt/"):
            line = line.replace(f" {folder}", f" {self.root}{folder}")
            line = line.replace(f"={folder}", f"={self.root}{folder}")
            line = line.replace(f":{folder}", f":{self.root}{folder}")
        line = line.replace("-g recorder", f"-g {self.user}")
        line = re.sub(r"(useradd .*) recorder$", rf"\1 {self.user}", line)
        return re.sub(r"(^|\| )sudo ", r"\1", line)

    def run_block(self, block: str, stdin: dict[str, str]) -> list[str]:
        """Run a README block's commands; returns the lines left to the test (sudoedit,
        systemctl, journalctl, curl). `stdin` gives what to paste, by file name."""
        left = []
        for raw in block.strip().splitlines():
            line = raw.split("  #")[0].strip()
            if re.match(r"(sudoedit|sudo systemctl|journalctl|curl|sudo -u)\b", line):
                left.append(line)
                continue
            pasted = next((v for k, v in stdin.items() if f"/dev/stdin {k}" in line), None)
            if "/dev/stdin" in line and pasted is None:
                raise AssertionError(f"the test has nothing to paste for: {line}")
            translated = self.translate(line)
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", translated],
                cwd=ROOT,
                input=pasted + "\n" if pasted is not None else None,
                env={**os.environ, "PATH": SUDO_PATH},
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, f"{translated}\n{result.stdout}{result.stderr}"
        return left

    def unit(self) -> dict[str, list[str]]:
        """The installed unit's [Service] settings and its drop-ins', in order."""
        system = self.path("/etc/systemd/system")
        files = [system / "recorder.service", *sorted(system.glob("recorder.service.d/*.conf"))]
        settings: dict[str, list[str]] = {}
        for path in files:
            in_service = False
            for line in path.read_text().splitlines():
                if line.startswith("["):
                    in_service = line.strip() == "[Service]"
                elif in_service and "=" in line and not line.startswith("#"):
                    key, value = line.split("=", 1)
                    settings.setdefault(key.strip(), []).append(value.strip())
        return settings

    def start(self) -> tuple[list[str], dict[str, str], Path]:
        """What systemd would do to start the unit: (command, environment, working folder)."""
        unit = self.unit()
        (state_name,) = unit["StateDirectory"]
        state = self.path(f"/var/lib/{state_name}")
        state.mkdir(mode=0o750, exist_ok=True)
        shutil.chown(state, self.user, self.user)
        # systemd's copy of each credential: readable by the service user only.
        shutil.rmtree(self.credentials, ignore_errors=True)
        self.credentials.mkdir(parents=True)
        for entry in unit.get("LoadCredential", []):
            name, source = entry.split(":", 1)
            shutil.copy(self.path(source), self.credentials / name)
            os.chmod(self.credentials / name, 0o400)
            shutil.chown(self.credentials / name, self.user, self.user)
        os.chmod(self.credentials, 0o500)
        shutil.chown(self.credentials, self.user, self.user)
        specifiers = {"%S": str(self.path("/var/lib")), "%d": str(self.credentials)}

        def expand(value: str) -> str:
            for specifier, meaning in specifiers.items():
                value = value.replace(specifier, meaning)
            return self.translate(f"={value}")[1:]

        environment = {
            "PATH": SUDO_PATH,
            "LANG": "C.UTF-8",
            "HOME": str(state),
            "STATE_DIRECTORY": str(state),
            "CREDENTIALS_DIRECTORY": str(self.credentials),
        }
        for assignment in unit.get("Environment", []):
            key, value = expand(assignment).split("=", 1)
            environment[key] = value
        for entry in unit.get("EnvironmentFile", []):
            optional, path = entry.startswith("-"), Path(expand(entry.lstrip("-")))
            if optional and not path.exists():
                continue
            for line in path.read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    key, value = line.split("=", 1)
                    environment[key.strip()] = value.strip()
        (command,) = unit["ExecStart"]
        (folder,) = unit["WorkingDirectory"]
        return expand(command).split(), environment, Path(expand(folder))

    def as_user(self, command: list[str], environment: dict[str, str]) -> list[str]:
        """`command` as the service user, with exactly `environment` (setpriv execs it:
        the process is the recorder itself, and signals reach it)."""
        variables = [f"{key}={value}" for key, value in environment.items()]
        identity = [f"--reuid={self.user}", f"--regid={self.user}", "--init-groups"]
        return ["setpriv", *identity, "env", "-i", *variables, *command]

    def service(self, *arguments: str, **overrides: str) -> subprocess.CompletedProcess[str]:
        """The unit's ExecStart with other arguments, as the unit would run it."""
        command, environment, folder = self.start()
        return subprocess.run(
            self.as_user([command[0], *arguments], {**environment, **overrides}),
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def machine() -> Iterator[Machine]:
    requirement(os.geteuid() == 0, "creating the service user needs root")
    for tool in ("useradd", "userdel", "setpriv"):
        requirement(shutil.which(tool) is not None, f"{tool} is not installed")
    system_python = subprocess.run(
        ["/usr/bin/python3", "-c", "import ensurepip, venv"], capture_output=True, check=False
    )
    requirement(system_python.returncode == 0, "the system's python3 has no venv module")
    root = Path(tempfile.mkdtemp(prefix="recorder-walkthrough-"))
    root.chmod(0o755)  # the service user walks through it, as through /
    for folder in ("etc/systemd/system", "var/lib", "opt", "run"):
        (root / folder).mkdir(parents=True)  # what every machine has
    user = f"rec{uuid.uuid4().hex[:10]}"
    try:
        yield Machine(root, user)
    finally:
        subprocess.run(["userdel", user], capture_output=True, check=False)
        subprocess.run(["groupdel", user], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def edit(path: Path, old: str, new: str) -> None:
    """What the README asks the operator to do in their editor."""
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1))


def snapshots(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT a.name, count(*) FROM snapshots s JOIN accounts a ON a.id = s.account_id "
                "GROUP BY a.name"
            )
            return {name: int(count) for name, count in rows}
    except sa.exc.DBAPIError:
        return {}
    finally:
        engine.dispose()


def test_the_service_section_works_as_written(
    machine: Machine, simulator: Simulator, postgres_url: str, request: pytest.FixtureRequest
) -> None:
    install, more_accounts, environment_route, status_block = section_blocks()[:4]
    left = machine.run_block(install, {"/etc/recorder/credentials/main.secret": SECRET})
    assert [line.split()[0] for line in left] == ["sudoedit", "sudo", "journalctl"]
    config = machine.path("/etc/recorder/recorder.toml")
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    edit(config, 'api_key = "your-api-key"', f'api_key = "{API_KEY}"')
    # Not in the README: this machine's CoinW is the simulator, polled every second.
    machine.path("/etc/recorder/recorder.env").write_text(
        f"RECORDER_BASE_URL={simulator.url}\nRECORDER_INTERVAL_SECONDS=1\n"
    )
    before = sorted(p.name for p in machine.path("/etc/recorder").iterdir())

    # poll: the history and nothing else lands in the state directory; no warning.
    polled = machine.service("poll")
    assert polled.returncode == 0, polled.stderr
    assert "main BTC appeared 0.0012" in polled.stdout
    assert polled.stderr == ""
    state = machine.path("/var/lib/recorder")
    database = state / "recorder.db"
    assert database.owner() == machine.user
    assert sorted(p.name for p in machine.path("/etc/recorder").iterdir()) == before
    assert snapshots(f"sqlite:///{database}") == {"main": 1}

    # A second account, as the section adds one.
    simulator.add_account(SAVINGS_KEY, SAVINGS_SECRET, {"ETH": "2.5"})
    toml = re.search(r"```toml\n(.*?)```", README.split("## Run it as a service")[1], re.S)
    assert toml is not None
    config.write_text(config.read_text() + "\n" + toml.group(1).replace("its-api-key", SAVINGS_KEY))
    machine.run_block(more_accounts, {"/etc/recorder/credentials/savings.secret": SAVINGS_SECRET})

    # run, on PostgreSQL behind a proxy that cuts it: the journal keeps the polls.
    server = make_url(postgres_url)
    proxy = TCPProxy(server.host or "127.0.0.1", server.port or 5432).start()
    request.addfinalizer(proxy.stop)
    moved = server.set(port=proxy.port).render_as_string(hide_password=False)
    behind_proxy = "postgres://" + moved.split("://", 1)[1]
    edit(config, '# database_url = "sqlite:///recorder.db"', f'database_url = "{behind_proxy}"')
    command, environment, folder = machine.start()
    daemon = subprocess.Popen(
        machine.as_user([*command], environment),
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def journals() -> list[Path]:  # named after the database: recorder-buffer-<id>.jsonl
        return list(state.glob("recorder-buffer-*.jsonl"))

    try:
        wait_for(lambda: set(snapshots(postgres_url)) == {"main", "savings"}, timeout=30)
        proxy.cut()
        wait_for(lambda: sum(len(j.read_text().splitlines()) for j in journals()) >= 4, 30)
        (journal,) = journals()
        assert journal.owner() == machine.user
        proxy.restore()
        wait_for(lambda: not journals(), timeout=30)
        recorded = snapshots(postgres_url)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, log
    assert "main's snapshot of" in log and "waits in the local buffer" in log
    assert re.search(r"Wrote \d+ buffered polls? to the database", log)
    assert "Traceback" not in log and SECRET not in log and SAVINGS_SECRET not in log
    assert recorded["main"] >= 3 and recorded["savings"] >= 3

    # status, as the section shows it for cron: no credentials there, and none needed.
    # It reads the unit's environment file too (the database URL or an account's API key
    # may be there), through a shell as the README shows it.
    (status_line,) = [line for line in status_block.strip().splitlines() if "status" in line]
    program = shlex.split(machine.translate(status_line.replace("sudo -u recorder ", "")))
    status = subprocess.run(
        machine.as_user(program, {"PATH": SUDO_PATH}),
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert re.search(r"^main: last success", status.stdout, re.M)
    assert re.search(r"^savings: last success", status.stdout, re.M)

    # A journal the service cannot write is refused at start, in one sentence.
    unwritable = machine.path("/etc/recorder/recorder-buffer.jsonl")
    refused = machine.service("poll", RECORDER_BUFFER_FILE=str(unwritable))
    assert refused.returncode == 2
    assert refused.stderr == (
        f"Error: buffer_file '{unwritable}' cannot be written (Permission denied); set "
        'buffer_file to a file in a folder this user can write, or to "" to keep buffered '
        "polls in memory only.\n"
    )

    # The COINW_* route: one account named `default`, its secret the unit's credential.
    text = config.read_text()
    config.write_text(text[: text.index("\n[[accounts]]\n")] + '\n[[accounts]]\nname = "default"\n')
    machine.path("/etc/recorder/recorder.env").write_text(
        f"RECORDER_BASE_URL={simulator.url}\nCOINW_API_KEY={API_KEY}\n"
    )
    machine.run_block(environment_route, {})
    assert machine.start()[1]["COINW_SECRET_KEY_FILE"] == f"{machine.credentials}/main.secret"
    route = machine.service("poll")
    assert route.returncode == 0, route.stderr
    assert route.stderr == "" and "default BTC appeared 0.0012" in route.stdout
