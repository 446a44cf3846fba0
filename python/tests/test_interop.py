"""A Python process and the Rust `txfile` command exclude each other."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import txfile
from conftest import LockStyle, wait_for


@pytest.mark.parametrize("lock_style", ["flock", "posix"])
def test_python_and_cli_exclude_each_other(tmp_path: Path, txfile_cli: str, lock_style: LockStyle) -> None:
    path = tmp_path / "shared"
    f = txfile.TxFile(path, lock_style=lock_style, timeout=0.3)
    style = ["--lock-style", lock_style]

    # Python holds the lock: the command times out (exit 75) and writes nothing.
    with f.begin() as tx:
        cli = subprocess.run(
            [txfile_cli, "write", "--timeout", "0.3", *style, str(path)],
            input=b"from the command",
            capture_output=True,
        )
        assert cli.returncode == 75, cli.stderr
        assert b"timed out" in cli.stderr
        tx.write(b"from python\n")
    assert path.read_bytes() == b"from python\n"

    # The command holds the lock: Python cannot take it until it lets go.
    ready, release = tmp_path / "ready", tmp_path / "release"
    script = f"touch '{ready}'; while [ ! -e '{release}' ]; do sleep 0.02; done"
    holder = subprocess.Popen([txfile_cli, "lock", *style, str(path), "--", "sh", "-c", script])
    try:
        wait_for(ready, holder)
        assert f.try_begin() is None
        with pytest.raises(txfile.LockTimeout):
            f.update(lambda old: b"too early")
    finally:
        release.touch()
        assert holder.wait(30) == 0
    assert path.read_bytes() == b"from python\n"

    # Both sides update the same file in turn and see each other's work.
    subprocess.run([txfile_cli, "edit", *style, str(path), "--", "sh", "-c", "cat; echo from the command"], check=True)
    later = txfile.TxFile(path, lock_style=lock_style, timeout=30)
    later.update(lambda old: (old or b"") + b"python again\n")
    assert f.read() == b"from python\nfrom the command\npython again\n"
