"""Running the recorder as a user who is not the owner of the files it is given.

The test interpreter lives under /root, which no other user may enter, so a process
cannot become another user and still run it. It stays uid 0 instead and gives up the
capabilities that let root ignore file permissions (CAP_DAC_OVERRIDE,
CAP_DAC_READ_SEARCH, CAP_FOWNER): to files and folders owned by someone else it is then
"others", like any user, while /root (its own) stays open to it.
"""

from __future__ import annotations

import ctypes
import os

import pytest

#: Who owns the files such a process may not write.
NOBODY = 65534
_PR_CAPBSET_DROP = 24
_OVERRIDES = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, to give a process up the powers that ignore file permissions")


def without_file_powers() -> None:
    """A `preexec_fn`: the program the child runs has no power over others' files
    (dropped from the bounding set, so execve gives them no more)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in _OVERRIDES:
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def give_away(*paths: os.PathLike[str] | str) -> None:
    """Make `paths` nobody's, so that a process without file powers may only read them."""
    for path in paths:
        os.chown(path, NOBODY, NOBODY)
