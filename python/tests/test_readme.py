"""The Python examples in python/README.md and the README's Python section run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO

SOURCES = [REPO / "python" / "README.md", REPO / "README.md"]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_readme_examples_run(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(source)
    assert blocks, f"no python example in {source}"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(source), "exec"), {"__name__": "readme_example"})
