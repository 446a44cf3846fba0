"""Waiting for a lock held by another process: timeouts, try_begin, the GIL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import txfile
from conftest import held_by_flock, leftovers


def test_lock_timeout_while_flock_holds_the_guard(tmp_path: Path, flock_cmd: str) -> None:
    """begin() raises LockTimeout after the timeout, and another Python
    thread keeps running while it waits (the GIL is released)."""
    path = tmp_path / "data"
    timeout = 0.5
    f = txfile.TxFile(path, timeout=timeout)
    stop = threading.Event()
    last = time.monotonic()
    longest_pause = 0.0

    def spin() -> None:
        # Notes the longest time this thread could not run Python code.
        nonlocal last, longest_pause
        while not stop.is_set():
            now = time.monotonic()
            longest_pause = max(longest_pause, now - last)
            last = now

    with held_by_flock(flock_cmd, f.guard_path, tmp_path):
        spinner = threading.Thread(target=spin)
        spinner.start()
        try:
            time.sleep(0.05)
            longest_pause = 0.0
            started = time.monotonic()
            with pytest.raises(txfile.LockTimeout) as caught:
                f.begin()
            waited = time.monotonic() - started
            pause = longest_pause
        finally:
            stop.set()
            spinner.join()
    e = caught.value
    assert isinstance(e, TimeoutError) and isinstance(e, txfile.Error)
    assert e.filename == str(path)
    assert str(path) in str(e) and "timed out" in str(e)
    assert waited >= timeout
    # Holding the GIL while waiting would stop the other thread for the
    # whole wait.
    assert pause < waited / 2, f"the other thread stood still for {pause:.2f} s of a {waited:.2f} s wait"
    assert not path.exists()
    # Free again once flock(1) is gone (the library's waiter from the
    # timed-out attempt takes and drops the lock first: allow it time).
    txfile.TxFile(path, timeout=30).update(lambda old: b"after")
    assert f.read() == b"after"


def test_update_and_try_begin_while_flock_holds_the_guard(tmp_path: Path, flock_cmd: str) -> None:
    path = tmp_path / "data"
    f = txfile.TxFile(path, timeout=0.2)
    f.update(lambda old: b"v1")
    with held_by_flock(flock_cmd, f.guard_path, tmp_path):
        assert f.try_begin() is None
        called = []
        with pytest.raises(txfile.LockTimeout):
            f.update(lambda old: called.append(old) or b"v2")  # type: ignore[func-returns-value]
        assert called == []
        assert f.read() == b"v1"  # reading takes no lock
    txfile.TxFile(path, timeout=30).update(lambda old: b"v2")
    assert f.read() == b"v2"


def test_waiting_thread_gets_the_lock_when_flock_lets_go(tmp_path: Path, flock_cmd: str) -> None:
    path = tmp_path / "data"
    f = txfile.TxFile(path)
    done = threading.Event()

    def writer() -> None:
        f.update(lambda old: b"written")
        done.set()

    with held_by_flock(flock_cmd, f.guard_path, tmp_path):
        t = threading.Thread(target=writer)
        t.start()
        assert not done.wait(0.3)
    t.join(30)
    assert done.is_set() and f.read() == b"written"


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("wait", ["begin", "update", "batch-update", "batch-read"])
def test_signal_ends_a_wait_without_timeout(tmp_path: Path, flock_cmd: str, wait: str) -> None:
    """A signal handler's exception (as Ctrl-C's KeyboardInterrupt) ends a
    wait for the lock even without a timeout, and leaves nothing behind."""
    path = tmp_path / "data"
    f = txfile.TxFile(path)
    batch = txfile.Batch([tmp_path / "other", path])
    calls = {
        "begin": f.begin,
        "update": lambda: f.update(lambda old: b"never"),
        "batch-update": lambda: batch.update(lambda old: [b"never", b"never"]),
        "batch-read": batch.read,
    }

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        with held_by_flock(flock_cmd, f.guard_path, tmp_path, seconds=20):
            timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
            timer.start()
            started = time.monotonic()
            with pytest.raises(Interrupted):
                calls[wait]()
            waited = time.monotonic() - started
            timer.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    # Not only once the lock came: flock(1) holds it for 20 s.
    assert waited < 15, f"the signal ended the wait only after {waited:.1f} s"
    assert f.read() is None
    f.update(lambda old: b"after")
    assert f.read() == b"after"
    assert leftovers(tmp_path, "data", "other") == []


def test_ctrl_c_ends_a_wait_without_timeout(tmp_path: Path, flock_cmd: str) -> None:
    path = tmp_path / "data"
    script = (
        "import sys, txfile\n"
        "f = txfile.TxFile(sys.argv[1])\n"
        "print('waiting', flush=True)\n"
        "try:\n"
        "    f.begin()\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "    sys.exit(3)\n"
    )
    with held_by_flock(flock_cmd, str(path) + ".lock", tmp_path):
        # Run from tmp_path: `-c` puts the working directory on sys.path.
        child = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, cwd=tmp_path)
        assert child.stdout is not None
        assert child.stdout.readline() == b"waiting\n"
        time.sleep(0.3)
        child.send_signal(signal.SIGINT)
        try:
            assert child.wait(10) == 3
        finally:
            child.kill()
        assert child.stdout.read() == b"interrupted\n"
