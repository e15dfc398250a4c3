"""scripts/compare_runs.py: the bit-identity check used to show a refactor changes no result."""

import subprocess
import sys

from mnistdiff import config as C
from mnistdiff.sampling.epoch_grid import save_epoch_grid
from mnistdiff.training import loop as T

from .conftest import ROOT, TINY


def _compare(a, b) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts/compare_runs.py"), str(a), str(b)],
                          capture_output=True, text=True, timeout=120)


def test_same_seed_runs_compare_identical_and_other_seeds_do_not(tmp_path, data_dir):
    cfg = C.apply(C.preset("cold-row-random"), {**TINY, "T": 28, "epochs": 1, "subset": 128})
    for name, seed in (("a", 0), ("again", 0), ("other", 1)):
        # The epoch grid only: RUN/figures/ plots are labelled with the run's name, which differs here.
        T.train(C.apply(cfg, {"seed": seed}), tmp_path / name, data_dir=data_dir, progress=False,
                hooks=[save_epoch_grid])
    same = _compare(tmp_path / "a", tmp_path / "again")
    assert same.returncode == 0 and same.stdout == "" and "identical" in same.stderr, same
    other = _compare(tmp_path / "a", tmp_path / "other")
    assert other.returncode == 1, other
    assert "checkpoints/last.safetensors: tensor model/" in other.stdout  # different initial weights
    assert "metrics.jsonl: row" in other.stdout and "samples/epoch_0001.png: pixels differ" in other.stdout
    assert "config.json: content differs" in other.stdout


def test_a_file_on_one_side_only_is_a_difference(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    (tmp_path / "a/x.npy").write_bytes(b"")
    r = _compare(tmp_path / "a", tmp_path / "b")
    assert r.returncode == 1 and "x.npy: only in" in r.stdout
    assert _compare(tmp_path / "a", tmp_path / "missing").returncode == 2
