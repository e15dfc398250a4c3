"""The front door: the README's results are the results files' numbers, the README stays short, and the
project's files speak of the software, not of how it was developed."""

import json
import re
import shutil
import subprocess
import sys

from mnistdiff import config as C

from .conftest import ROOT

INDEX = ROOT / "scripts" / "results_index.py"


def _check(root) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(INDEX), "--check", "--root", str(root)], capture_output=True, text=True)


def test_the_readme_and_the_results_index_quote_the_results_files():
    r = _check(ROOT)
    assert r.returncode == 0, r.stderr


def test_a_changed_result_makes_the_readme_stale(tmp_path):
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "results", tmp_path / "results", ignore=shutil.ignore_patterns("*.safetensors", "*.png"))
    assert _check(tmp_path).returncode == 0
    path = tmp_path / "results" / "ddpm-unet-20ep.json"
    d = json.loads(path.read_text())
    path.write_text(json.dumps({**d, "fid": d["fid"] + 1}))
    r = _check(tmp_path)
    assert r.returncode == 1 and "README.md is out of date" in r.stderr


def test_the_readme_is_short_and_names_every_preset():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert all(len(line) <= 120 for line in text.splitlines() if not line.startswith("|"))
    missing = [name for name in C.PRESETS if f"`{name}`" not in text]
    assert not missing, missing


# Words about how the project was made (its tracker, its work stretches), not about the software.
HISTORY = re.compile(r"issue [0-9]+|\(issue|issue's|\b(first|second|third|fourth|fifth|sixth|last|this|earlier|"
                     r"previous|next) sessions?\b|\bthe bars?\b|\btracker\b", re.I)


def test_no_file_speaks_of_how_the_project_was_developed():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    offenders = []
    for name in files:
        if name.startswith("tests/") or not name.endswith((".md", ".py", ".toml", ".sh", ".txt")) \
                or name.startswith(".ci/") or "Makefile" in name:
            continue
        for i, line in enumerate((ROOT / name).read_text(errors="replace").splitlines(), 1):
            if HISTORY.search(line):
                offenders.append(f"{name}:{i}: {line.strip()[:100]}")
    assert not offenders, "\n".join(offenders)


def test_the_history_check_can_fail():
    assert HISTORY.search("as the issue's target says") and HISTORY.search("measured in the third session")
    assert not HISTORY.search("a progress bar with an ETA") and not HISTORY.search('{"sessions": []}')
