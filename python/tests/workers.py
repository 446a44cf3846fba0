"""Functions run in child processes (importable by the spawn start method)."""

from __future__ import annotations

import fcntl
import time
from typing import Any

import txfile
from conftest import Durability, LockStyle


def read_counter(path: str) -> int:
    """Somewhere else in the program: opens, reads and closes the data file.

    That close is the seed article's trap: it drops every POSIX (fcntl) lock
    this process holds on the file, whichever descriptor took it.
    """
    with open(path, "rb") as f:
        return int(f.read() or b"0")


def naive_increments(path: str, rounds: int, start: Any, work: float) -> None:
    """Increments with fcntl.lockf on the data file itself."""
    start.wait()
    for _ in range(rounds):
        with open(path, "r+b") as f:
            fcntl.lockf(f, fcntl.LOCK_EX)
            n = read_counter(path)
            time.sleep(work)
            f.seek(0)
            f.write(b"%20d\n" % (n + 1))
            f.flush()
            fcntl.lockf(f, fcntl.LOCK_UN)


def txfile_increments(path: str, rounds: int, start: Any, work: float, lock_style: LockStyle) -> None:
    """The same loop, stray open/close included, through txfile."""
    # Opened in the child: a handle is not carried across fork.
    f = txfile.TxFile(path, lock_style=lock_style)
    start.wait()
    for _ in range(rounds):

        def bump(old: bytes | None) -> bytes:
            n = read_counter(path)
            time.sleep(work)
            return b"%20d\n" % (n + 1)

        f.update(bump)


def counter_increments(path: str, rounds: int, start: Any, lock_style: LockStyle, durability: Durability) -> None:
    """Plain counter increments through `update`."""
    f = txfile.TxFile(path, lock_style=lock_style, durability=durability)
    start.wait()
    for _ in range(rounds):
        f.update(lambda old: b"%d" % (int(old or b"0") + 1))


def increments_with(f: txfile.TxFile, rounds: int, start: Any) -> None:
    """Increments through a handle inherited from the parent across fork."""
    start.wait()
    for _ in range(rounds):
        f.update(lambda old: b"%d" % (int(old or b"0") + 1))
