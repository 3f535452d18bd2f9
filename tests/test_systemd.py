"""Running under systemd: READY, WATCHDOG and STOPPING on a real datagram socket, and a
unit file that asks for them."""

from __future__ import annotations

import configparser
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

from recorder.polling import systemd
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_the_daemon_reports_ready_watchdog_and_stopping(
    env: dict[str, str], tmp_path: Path
) -> None:
    address = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(address))
    listener.settimeout(0.1)
    messages: list[str] = []

    def receive() -> list[str]:
        with contextlib.suppress(TimeoutError):
            messages.append(listener.recv(4096).decode())
        return messages

    daemon = subprocess.Popen(
        [sys.executable, "-m", "recorder", "run"],
        env={**os.environ, **env, "NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "1000000"},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: sum(m == "WATCHDOG=1" for m in receive()) >= 2, timeout=30, interval=0)
        daemon.send_signal(signal.SIGTERM)
        wait_for(lambda: "STOPPING=1" in receive(), timeout=15, interval=0)
        assert daemon.wait(timeout=15) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        listener.close()
    assert messages[0].startswith("READY=1\nSTATUS=Recording 1 account")


def test_outside_systemd_nothing_is_sent() -> None:
    assert systemd.notify("READY=1", environ={}) is False
    assert systemd.watchdog_interval({}) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "3", "WATCHDOG_PID": "1"}) is None


def test_the_unit_file_is_a_hardened_notify_service() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment, method-assign]
    unit.read(ROOT / "contrib" / "recorder.service")
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["Restart"] == "on-failure"
    assert service["User"] == "recorder"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "true"
    assert "WatchdogSec" in service
    assert service["StateDirectory"] == "recorder"
    assert service["ExecStart"].endswith("recorder run")
    # The credential the unit loads is the one the example config names.
    credential, source = service["LoadCredential"].split(":", 1)
    example = tomllib.loads((ROOT / "config.example.toml").read_text())
    assert example["accounts"][0]["secret_key_credential"] == credential
    assert source == f"/etc/recorder/credentials/{credential}"
    readme = (ROOT / "README.md").read_text()
    assert "## Run it as a service" in readme and "contrib/recorder.service" in readme
