"""Exports are all or nothing: written beside the target and renamed at the end, so an
interrupted or failed export leaves no file that looks complete (and an older file under
that name stays as it was)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from recorder.cli import cli
from tests import gapped, year
from tests.conftest import fresh_database, open_db, wait_for
from tests.disk import SmallDisk

PREVIOUS = "the export of last month\n"


@pytest.fixture(scope="module")
def long_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A history whose XLSX export takes seconds: time to interrupt it."""
    with fresh_database("sqlite", tmp_path_factory.mktemp("long")) as url:
        db = open_db(url)
        year.make_history().generate(
            db, accounts=1, days=60, currencies=10, interval=600, echo=False
        )
        db.close()
        yield url


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_export_leaves_no_file_and_the_old_one_intact(
    long_url: str, tmp_path: Path, signum: int
) -> None:
    target = tmp_path / "2026.xlsx"
    target.write_text(PREVIOUS)
    process = subprocess.Popen(
        [sys.executable, "-m", "recorder", "export", "--format", "xlsx", "-o", str(target)],
        env={**os.environ, "RECORDER_DATABASE_URL": long_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: leftovers(tmp_path), timeout=60)  # the export has begun
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode != 0
    assert "Traceback" not in stderr
    assert target.read_text() == PREVIOUS
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "xlsx", "html"])
def test_an_export_that_fails_on_a_full_disk_leaves_nothing_behind(
    disk: SmallDisk, tmp_path: Path, fmt: str
) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        gapped.record(url)
        target = disk.path / f"out.{fmt}"
        target.write_text(PREVIOUS)
        disk.fill()
        try:
            result = CliRunner().invoke(
                cli,
                ["export", "--format", fmt, "-o", str(target)],
                env={"RECORDER_DATABASE_URL": url},
            )
        finally:
            disk.free()
    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.stderr and "nothing was written" in result.stderr
    assert result.stderr.count("\n") == 1
    assert target.read_text() == PREVIOUS
    assert leftovers(disk.path) == []


def test_an_export_to_a_read_only_folder_is_one_sentence(disk: SmallDisk, tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        gapped.record(url)
        disk.read_only()
        try:
            result = CliRunner().invoke(
                cli,
                ["export", "-o", str(disk.path / "out.csv")],
                env={"RECORDER_DATABASE_URL": url},
            )
        finally:
            disk.writable()
    assert result.exit_code == 2
    assert "Read-only file system" in result.stderr and result.stderr.count("\n") == 1
    assert list(disk.path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "xlsx", "html"])
def test_a_finished_export_replaces_the_file_and_leaves_no_temporary(
    tmp_path: Path, fmt: str
) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        gapped.record(url)
        target = tmp_path / f"out.{fmt}"
        target.write_text(PREVIOUS)
        result = CliRunner().invoke(
            cli, ["export", "--format", fmt, "-o", str(target)], env={"RECORDER_DATABASE_URL": url}
        )
    assert result.exit_code == 0, result.output
    assert target.read_bytes() != PREVIOUS.encode() and target.stat().st_size > 500
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert leftovers(tmp_path) == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_an_export_onto_a_device_writes_to_it_and_never_replaces_it(
    tmp_path: Path, fmt: str
) -> None:
    full = tmp_path / "full"
    try:
        os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # a /dev/full of its own
    except PermissionError:
        pytest.skip("making a device node needs root")
    with fresh_database("sqlite", tmp_path) as url:
        gapped.record(url)
        result = CliRunner().invoke(
            cli, ["export", "--format", fmt, "-o", str(full)], env={"RECORDER_DATABASE_URL": url}
        )
    assert result.exit_code == 2
    assert "No space left on device" in result.stderr
    assert stat.S_ISCHR(full.stat().st_mode)  # still the device, not a file in its place
    assert leftovers(tmp_path) == []


def test_an_export_into_a_pipe_reaches_the_program_reading_it(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(pipe.read_bytes()), daemon=True)
    reader.start()
    with fresh_database("sqlite", tmp_path) as url:
        gapped.record(url)
        result = CliRunner().invoke(
            cli, ["export", "-o", str(pipe)], env={"RECORDER_DATABASE_URL": url}
        )
    assert result.exit_code == 0, result.output
    wait_for(lambda: read, timeout=10)
    assert read[0].startswith(b"account,taken_at") and read[0].count(b"\n") > 5
    assert stat.S_ISFIFO(pipe.stat().st_mode)
