"""Shared fixtures of the txfile Python tests."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pytest

REPO = Path(__file__).resolve().parents[2]

LockStyle = Literal["flock", "posix"]
Durability = Literal["full", "none"]

# `python -m pytest` run from python/ puts that directory first on sys.path,
# where `txfile/` is the package's source without its compiled module: test
# the installed package instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "python"]

# CI's mutant checks (.ci/run) install a build with the `mutants` feature and
# pick a deliberately broken variant here, in every process that imports
# the tests' helpers (spawned workers included).
if os.environ.get("TXFILE_MUTANT"):
    importlib.import_module("txfile._txfile")._set_mutant(os.environ["TXFILE_MUTANT"])


def require(what: str, found: object) -> None:
    """Skips with a reason on a user's machine; fails in CI, where nothing may skip."""
    if found:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing in CI (.ci/run provides it)")
    pytest.skip(f"{what} is missing")


@pytest.fixture
def flock_cmd() -> str:
    path = shutil.which("flock")
    require("flock(1) (util-linux)", path)
    assert path is not None
    return path


@pytest.fixture
def txfile_cli() -> str:
    """The Rust `txfile` command: $TXFILE_BIN, or the checkout's debug build."""
    path = os.environ.get("TXFILE_BIN") or str(REPO / "target" / "debug" / "txfile")
    require(f"the txfile command at {path} (cargo build --features cli)", os.access(path, os.X_OK))
    return path


def wait_for(path: Path, proc: subprocess.Popen[bytes], limit: float = 30.0) -> None:
    """Waits until `proc` has created `path` (its signal that it holds a lock)."""
    deadline = time.monotonic() + limit
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited with {proc.returncode} before creating {path}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{proc.args!r} did not create {path} within {limit} s")
        time.sleep(0.01)


@contextmanager
def held_by_flock(
    flock_cmd: str, guard: str | os.PathLike[str], tmp_path: Path, seconds: int = 120
) -> Iterator[None]:
    """flock(1) holds an exclusive lock on `guard` until the block ends (or
    `seconds` pass)."""
    ready = tmp_path / "flock-ready"
    # -o: the command does not inherit the locked descriptor, so killing
    # flock's process group releases the lock at once.
    proc = subprocess.Popen(
        [flock_cmd, "-o", str(guard), "sh", "-c", f"touch '{ready}'; exec sleep {seconds}"],
        start_new_session=True,
    )
    try:
        wait_for(ready, proc)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        ready.unlink()


def leftovers(directory: Path, *expected: str) -> list[str]:
    """Names in `directory` other than `expected` targets and their guards."""
    allowed = set(expected) | {name + ".lock" for name in expected}
    return sorted(name for name in os.listdir(directory) if name not in allowed)
