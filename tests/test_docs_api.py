"""docs/api.md is executed: its ```python blocks run in order, in one namespace, in a fresh folder."""

import re

import pytest

from .conftest import ROOT


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.mark.slow
def test_the_api_page_runs_as_written(tmp_path, monkeypatch, data_dir):
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = python_blocks(text)
    assert len(blocks) >= 4  # train, load and sample, the digit grid, metrics
    assert len(blocks) == text.count("```python")  # every block on the page runs, none is skipped
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/api.md block {i + 1}", "exec"), namespace)  # noqa: S102
    run = namespace["run"]
    assert (tmp_path / "runs" / "api-demo" / "digits.png").is_file()
    assert namespace["sevens"].shape == (8, 28, 28) and run.config.model.conditional
