"""Exports are all or nothing: written to a temporary file beside the target, renamed onto
it only once complete (a device or a pipe, which cannot be replaced, is written as is).

An export that fails or is interrupted (Ctrl+C, SIGTERM, a full disk) removes its
temporary file and leaves the target as it was: there is never a half-written file under
the name asked for. Only SIGKILL or a power cut can leave the temporary file behind; it is
named `.NAME.XXXXXXXX.partial`, so it never passes for the export itself.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import IO

from recorder.errors import InputError


def _failed(output: str, error: OSError) -> InputError:
    reason = error.strerror or type(error).__name__
    return InputError(f"Cannot write {output!r} ({reason}); nothing was written there.")


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwind like Ctrl+C, so the temporary file is removed


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def replacing(output: str) -> Iterator[Path]:
    """A new, empty temporary file beside `output`; once the block ends without an error it
    is flushed to disk and renamed to `output` (replacing any file there), else removed."""
    target = Path(output)
    if target.exists() and not target.is_file() and not target.is_dir():
        # A device or a pipe (/dev/stdout, a FIFO another program reads): written as it
        # is; renaming a file onto it would replace the device itself.
        try:
            yield target
        except OSError as error:
            raise _failed(output, error) from None
        return
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        temporary.open("x").close()  # the default permissions, as a plain open() gives
    except OSError as error:
        raise _failed(output, error) from None
    try:
        with _sigterm_unwinds():
            yield temporary
            with temporary.open("rb+") as handle:
                os.fsync(handle.fileno())  # on disk before its name says it is complete
            temporary.replace(target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise _failed(output, error) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def text_output(output: str) -> Iterator[IO[str]]:
    """A text stream to the file `output`, all or nothing (see `replacing`)."""
    with replacing(output) as path:
        try:
            with path.open("w", encoding="utf-8", newline="") as handle:
                yield handle
        except OSError as error:
            raise _failed(output, error) from None
