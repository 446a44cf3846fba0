"""Batch: several files, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

import txfile
from conftest import held_by_flock, leftovers


def test_batch_update_and_read(tmp_path: Path) -> None:
    b = txfile.Batch([tmp_path / "index", str(tmp_path / "data")])
    assert b.paths == [str(tmp_path / "index"), str(tmp_path / "data")]
    assert b.read() == [None, None]
    seen = []

    def append(old: list[bytes | None]) -> list[bytes]:
        seen.append(old)
        data = (old[1] or b"") + b"record\n"
        return [b"%d\n" % len(data), data]

    b.update(append)
    b.update(append)
    assert seen == [[None, None], [b"7\n", b"record\n"]]
    assert b.read() == [b"14\n", b"record\nrecord\n"]
    assert leftovers(tmp_path, "index", "data") == []
    assert "Batch" in repr(b)


def test_batch_exception_propagates_and_writes_nothing(tmp_path: Path) -> None:
    b = txfile.Batch([tmp_path / "a", tmp_path / "b"])
    b.update(lambda old: [b"a1", b"b1"])
    error = KeyError("x")

    def fail(old: list[bytes | None]) -> list[bytes]:
        raise error

    with pytest.raises(KeyError) as caught:
        b.update(fail)
    assert caught.value is error
    assert b.read() == [b"a1", b"b1"]
    assert leftovers(tmp_path, "a", "b") == []


def test_batch_bad_results(tmp_path: Path) -> None:
    b = txfile.Batch([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match="returned 1 contents for 2 files"):
        b.update(lambda old: [b"only one"])
    with pytest.raises(TypeError, match="bytes-like"):
        b.update(lambda old: [b"a", "text"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="list of bytes"):
        b.update(lambda old: 5)  # type: ignore[arg-type, return-value]
    b.update(lambda old: (bytearray(b"a"), memoryview(b"b")))
    assert b.read() == [b"a", b"b"]


def test_batch_bad_members(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="list of paths"):
        txfile.Batch(str(tmp_path / "a"))
    with pytest.raises(TypeError, match="list of paths"):
        txfile.Batch(tmp_path / "a")  # type: ignore[arg-type]
    with pytest.raises(txfile.Error, match="appears twice") as caught:
        txfile.Batch([tmp_path / "a", tmp_path / "a"])
    assert caught.value.filename == str(tmp_path / "a")
    with pytest.raises(txfile.Error, match="at least one member"):
        txfile.Batch([])
    with pytest.raises(txfile.Error) as missing:
        txfile.Batch([tmp_path / "a", tmp_path / "nowhere" / "b"])
    assert missing.value.filename == str(tmp_path / "nowhere")


def test_batch_timeout_while_one_member_is_held(tmp_path: Path, flock_cmd: str) -> None:
    b = txfile.Batch([tmp_path / "a", tmp_path / "b"], timeout=0.2)
    b.update(lambda old: [b"a", b"b"])
    with held_by_flock(flock_cmd, tmp_path / "b.lock", tmp_path):
        with pytest.raises(txfile.LockTimeout):
            b.update(lambda old: [b"x", b"y"])
        with pytest.raises(txfile.LockTimeout):
            b.read()
    assert txfile.Batch([tmp_path / "a", tmp_path / "b"], timeout=30).read() == [b"a", b"b"]
