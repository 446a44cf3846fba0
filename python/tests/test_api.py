"""TxFile and Transaction: updates, reads, the context manager, rollback, errors."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path
from typing import Any, cast

import pytest

import txfile
from conftest import leftovers


class Boom(Exception):
    pass


def test_update_and_read(tmp_path: Path) -> None:
    f = txfile.TxFile(tmp_path / "counter")
    assert f.read() is None
    seen = []

    def bump(old: bytes | None) -> bytes:
        seen.append(old)
        return b"%d" % (int(old or b"0") + 1)

    f.update(bump)
    f.update(bump)
    assert seen == [None, b"1"]
    assert f.read() == b"2"
    assert (tmp_path / "counter").read_bytes() == b"2"
    assert leftovers(tmp_path, "counter") == []


@pytest.mark.parametrize("kind", [str, Path, os.fsencode], ids=["str", "PathLike", "bytes"])
def test_path_types(tmp_path: Path, kind) -> None:  # type: ignore[no-untyped-def]
    f = txfile.TxFile(kind(str(tmp_path / "a")))
    f.update(lambda old: b"x")
    assert f.path == str(tmp_path / "a")
    assert f.guard_path == str(tmp_path / "a.lock")
    assert repr(f) == f"txfile.TxFile({str(tmp_path / 'a')!r})"


def test_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    f = txfile.TxFile("rel")
    f.update(lambda old: b"r")
    assert f.path == str(tmp_path / "rel")


def test_update_accepts_bytes_like(tmp_path: Path) -> None:
    f = txfile.TxFile(tmp_path / "a")
    f.update(lambda old: bytearray(b"array"))
    assert f.read() == b"array"
    f.update(lambda old: memoryview(b"view"))
    assert f.read() == b"view"


def test_update_exception_propagates_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "a"
    f = txfile.TxFile(path)
    f.update(lambda old: b"before")
    error = Boom("no")

    def fail(old: bytes | None) -> bytes:
        raise error

    with pytest.raises(Boom) as caught:
        f.update(fail)
    assert caught.value is error
    assert f.read() == b"before"
    assert leftovers(tmp_path, "a") == []
    # The lock was released.
    tx = f.try_begin()
    assert tx is not None
    tx.rollback()


def test_update_keyboard_interrupt_propagates(tmp_path: Path) -> None:
    f = txfile.TxFile(tmp_path / "a")

    def interrupted(old: bytes | None) -> bytes:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        f.update(interrupted)
    assert f.read() is None


def test_update_wrong_result_type_writes_nothing(tmp_path: Path) -> None:
    f = txfile.TxFile(tmp_path / "a")
    f.update(lambda old: b"kept")
    for bad in ["text", 5, None]:
        with pytest.raises(TypeError, match="bytes-like"):
            f.update(cast(Any, lambda old, bad=bad: bad))
    assert f.read() == b"kept"
    assert leftovers(tmp_path, "a") == []


def test_large_contents(tmp_path: Path) -> None:
    """Beyond the in-memory buffer, contents stream through the temporary file."""
    f = txfile.TxFile(tmp_path / "big")
    big = os.urandom(3 * 1024 * 1024 + 7)
    f.update(lambda old: big)
    assert f.read() == big
    with f.begin() as tx:
        assert tx.old == big
        for i in range(0, len(big), 100_000):
            tx.write(big[i : i + 100_000])
        tx.write(b"tail")
    assert f.read() == big + b"tail"
    assert leftovers(tmp_path, "big") == []


def test_context_manager_commits(tmp_path: Path) -> None:
    f = txfile.TxFile(tmp_path / "a")
    with f.begin() as tx:
        assert tx.old is None
        assert tx.write(b"one ") == 4
        assert tx.write(bytearray(b"two")) == 3
        assert tx.path == str(tmp_path / "a")
        assert "open" in repr(tx)
    assert "finished" in repr(tx)
    assert f.read() == b"one two"
    with f.begin() as tx:
        assert tx.old == b"one two"
        assert tx.old is tx.old  # read once
        tx.write(tx.old.upper())
    assert f.read() == b"ONE TWO"


def test_context_manager_rolls_back_on_exception(tmp_path: Path) -> None:
    f = txfile.TxFile(tmp_path / "a")
    f.update(lambda old: b"old")
    with pytest.raises(Boom):
        with f.begin() as tx:
            tx.write(b"x" * 200_000)  # a temporary file exists by now
            raise Boom
    assert f.read() == b"old"
    assert leftovers(tmp_path, "a") == []
    again = f.try_begin()
    assert again is not None
    again.rollback()


def test_explicit_commit_and_rollback(tmp_path: Path) -> None:
    f = txfile.TxFile(tmp_path / "a")
    tx = f.begin()
    tx.write(b"abandoned")
    tx.rollback()
    assert f.read() is None
    tx = f.begin()
    tx.write(b"kept")
    tx.commit()
    assert f.read() == b"kept"
    for used in (tx.commit, tx.rollback, lambda: tx.write(b"late")):
        with pytest.raises(ValueError, match="already committed or rolled back"):
            used()
    # Leaving a block after an explicit commit or rollback does nothing more.
    with f.begin() as tx:
        tx.write(b"inside")
        tx.rollback()
    assert f.read() == b"kept"
    with f.begin() as tx:
        tx.write(b"early")
        tx.commit()
    assert f.read() == b"early"


def test_dropped_transaction_rolls_back(tmp_path: Path) -> None:
    f = txfile.TxFile(tmp_path / "a")
    tx = f.begin()
    tx.write(b"never")
    del tx
    assert f.read() is None
    assert f.try_begin() is not None


def test_old_after_finish(tmp_path: Path) -> None:
    f = txfile.TxFile(tmp_path / "a")
    f.update(lambda old: b"v1")
    tx = f.begin()
    assert tx.old == b"v1"
    tx.commit()
    assert tx.old == b"v1"  # already read
    tx = f.begin()
    tx.rollback()
    with pytest.raises(ValueError):
        tx.old


def test_write_refuses_text(tmp_path: Path) -> None:
    f = txfile.TxFile(tmp_path / "a")
    with f.begin() as tx:
        with pytest.raises(TypeError, match="data must be a bytes-like object, not str"):
            tx.write("text")  # type: ignore[arg-type]
        tx.write(b"ok")
    assert f.read() == b"ok"


def test_try_begin_in_process(tmp_path: Path) -> None:
    f = txfile.TxFile(tmp_path / "a")
    held = f.try_begin()
    assert held is not None
    assert f.try_begin() is None
    assert txfile.TxFile(tmp_path / "a").try_begin() is None
    held.rollback()
    again = f.try_begin()
    assert again is not None
    again.rollback()


def test_conflict_with_outside_writer(tmp_path: Path) -> None:
    path = tmp_path / "a"
    f = txfile.TxFile(path)
    f.update(lambda old: b"v1")
    tx = f.begin()
    assert tx.old == b"v1"
    path.write_bytes(b"outside writer, longer")
    tx.write(b"v2")
    with pytest.raises(txfile.ConflictError) as caught:
        tx.commit()
    assert isinstance(caught.value, txfile.Error)
    assert caught.value.filename == str(path)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == b"outside writer, longer"


def test_error_names_operation_path_and_cause(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "a"
    with pytest.raises(txfile.Error) as caught:
        txfile.TxFile(missing)
    e = caught.value
    assert isinstance(e, OSError)
    assert e.errno == errno.ENOENT
    assert e.filename == str(tmp_path / "missing")
    message = str(e)
    assert "open directory" in message
    assert str(tmp_path / "missing") in message
    assert "No such file or directory" in message
    assert message.count(str(tmp_path / "missing")) == 1


def test_error_for_a_directory(tmp_path: Path) -> None:
    with pytest.raises(txfile.Error) as caught:
        txfile.TxFile(tmp_path)
    assert caught.value.filename == str(tmp_path)
    assert "directory" in str(caught.value)


def test_error_read_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "a"
    f = txfile.TxFile(path)
    path.mkdir()  # replaced by a directory behind the handle's back
    with pytest.raises(txfile.Error) as caught:
        f.read()
    assert caught.value.filename == str(path)
    assert str(path) in str(caught.value)


def test_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_bytes(b"r")
    link = tmp_path / "link"
    link.symlink_to("real")
    f = txfile.TxFile(link)
    assert f.path == str(real)
    f.update(lambda old: (old or b"") + b"!")
    assert link.is_symlink() and real.read_bytes() == b"r!"
    with pytest.raises(txfile.Error) as caught:
        txfile.TxFile(link, symlinks="reject")
    assert caught.value.filename == str(link)
    txfile.TxFile(link, symlinks="replace").update(lambda old: b"plain")
    assert not link.is_symlink() and link.read_bytes() == b"plain"


def test_mode_and_durability(tmp_path: Path) -> None:
    private = tmp_path / "private"
    txfile.TxFile(private, mode=0o600).update(lambda old: b"s")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    quick = tmp_path / "quick"
    txfile.TxFile(quick, durability="none").update(lambda old: b"q")
    assert quick.read_bytes() == b"q"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"durability": "fast"}, "durability must be 'full' or 'none'"),
        ({"lock_style": "lockf"}, "lock_style must be 'flock' or 'posix'"),
        ({"symlinks": "ignore"}, "symlinks must be"),
        ({"timeout": -1}, "timeout must be"),
        ({"timeout": float("nan")}, "timeout must be"),
        ({"mode": 0o17777}, "mode must be permission bits"),
    ],
)
def test_bad_options(tmp_path: Path, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        txfile.TxFile(tmp_path / "a", **kwargs)
    assert os.listdir(tmp_path) == []


def test_bad_path_types(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        txfile.TxFile(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        txfile.TxFile(tmp_path / "a", 5)  # type: ignore[call-arg]


def test_non_utf8_path(tmp_path: Path) -> None:
    name = os.fsencode(str(tmp_path)) + b"/caf\xe9"
    for path in (name, os.fsdecode(name)):
        with pytest.raises(txfile.Error, match="not valid UTF-8"):
            txfile.TxFile(path)
    assert os.listdir(tmp_path) == []


def test_timeout_zero_and_infinite(tmp_path: Path) -> None:
    path = tmp_path / "a"
    held = txfile.TxFile(path).begin()
    raised: list[BaseException] = []

    def attempt() -> None:
        # Another thread: this one holding the lock would be re-entry.
        try:
            txfile.TxFile(path, timeout=0).begin()
        except BaseException as e:
            raised.append(e)

    other = threading.Thread(target=attempt)
    other.start()
    other.join()
    assert len(raised) == 1 and isinstance(raised[0], txfile.LockTimeout)
    held.rollback()
    txfile.TxFile(path, timeout=float("inf")).update(lambda old: b"ok")


def test_exception_classes() -> None:
    assert issubclass(txfile.Error, OSError)
    assert issubclass(txfile.LockTimeout, txfile.Error)
    assert issubclass(txfile.LockTimeout, TimeoutError)
    assert issubclass(txfile.ConflictError, txfile.Error)
    assert txfile.TxFile.__module__ == "txfile"
    assert txfile.__version__


def test_error_errno_not_a_directory(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"a file, not a directory")
    with pytest.raises(txfile.Error) as caught:
        txfile.TxFile(plain / "child")
    assert caught.value.errno == errno.ENOTDIR
    assert caught.value.filename is not None and str(plain) in caught.value.filename
    assert str(plain) in str(caught.value)
    assert plain.read_bytes() == b"a file, not a directory"


def test_reentry_is_an_error_not_a_hang(tmp_path: Path) -> None:
    """Asking for a lock this thread already holds raises at once."""
    path = tmp_path / "a"
    f = txfile.TxFile(path)
    with f.begin() as tx:
        for again in (f.begin, lambda: f.update(lambda old: b"x"), txfile.TxFile(path).begin):
            with pytest.raises(txfile.Error) as caught:
                again()
            assert caught.value.errno == errno.EDEADLK
            assert caught.value.filename == str(path)
            assert "already holds the lock" in str(caught.value)
        tx.write(b"outer")
    assert f.read() == b"outer"
