"""A small filesystem the test mounts itself (tmpfs), to make a disk full or read-only for
real. Mounting needs root (CI runs as root); elsewhere the tests that need it are skipped
with the reason."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


class SmallDisk:
    """A tmpfs of `size` at `path`: fill it, or remount it read-only and back."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _mount(self, *options: str) -> None:
        subprocess.run(["mount", *options, str(self.path)], check=True, capture_output=True)

    def read_only(self) -> None:
        """Remount read-only: every write fails with EROFS, reads go on."""
        self._mount("-o", "remount,ro")

    def writable(self) -> None:
        """Remount read-write."""
        self._mount("-o", "remount,rw")

    def fill(self) -> Path:
        """Fill every free byte with one file (deleted by `free`)."""
        filler = self.path / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as handle:
            chunk = b"\0" * 65536
            while True:
                handle.write(chunk)
                handle.flush()
        return filler

    def free(self) -> None:
        """Give back what `fill` took."""
        (self.path / "filler").unlink(missing_ok=True)


@contextlib.contextmanager
def small_disk(parent: Path, size: str = "4m") -> Iterator[SmallDisk]:
    """Mount a tmpfs of `size` under `parent`; skip the test where mounting is impossible."""
    path = parent / f"disk-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'not root'})")
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(path)], capture_output=True, check=False)
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
