"""Shared fixtures: the real MNIST files and tiny configurations that train in seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# One intra-op thread for the suite and the CLI processes it starts: the tiny test models gain
# nothing from two, and OpenMP threads spinning against each other on a busy 2-core machine
# made single steps 20x slower. Set before torch is imported anywhere.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    env = os.environ.get("MNISTDIFF_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = _data_dir()
    if not (d / "train-images-idx3-ubyte.gz").exists() and not (d / "train-images-idx3-ubyte").exists():
        pytest.fail(f"MNIST not found in {d}; set MNISTDIFF_DATA to the folder with the four IDX files")
    return d


# The real MNIST beside the checkout (CI and developers); a user's own MNISTDIFF_DATA wins.
os.environ.setdefault("MNISTDIFF_DATA", str(_data_dir()))


TINY = dict(subset=256, epochs=2, T=20, batch_size=64, hidden=(8, 8), sample_epochs=(1,))


@pytest.fixture(scope="session")
def cache(tmp_path_factory, data_dir):
    """A cache dir for the evaluation tests (reference features, runtime probes; the classifier is the
    shipped one). MNISTDIFF_TEST_CACHE (unset in CI) names a folder that keeps it between local sessions."""
    kept = os.environ.get("MNISTDIFF_TEST_CACHE")
    return Path(kept) if kept else tmp_path_factory.mktemp("mnistdiff-cache")


@pytest.fixture
def tiny_cfg():
    from mnistdiff import config as C

    return C.apply(C.preset("ddpm-default"), TINY)


def cli(*args, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Run the real CLI in a fresh process (as a user would), capturing its output."""
    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "mnistdiff", *map(str, args)], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout)


def main(*args) -> subprocess.CompletedProcess:
    """Run the CLI's entry point in this process (what the console script calls, without a new interpreter and
    torch import), capturing its output as `cli` does. For tests where a real process is not the point."""
    import contextlib
    import io

    from mnistdiff import cli as cli_mod

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_mod.main([str(a) for a in args])
        except SystemExit as e:  # argparse's --help and its errors
            code = e.code if isinstance(e.code, int) else 0
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def tiny_flags() -> list[str]:
    return ["--subset", "256", "--epochs", "2", "--T", "20", "--batch-size", "64", "--hidden", "8,8",
            "--sample-epochs", "1", "--quiet"]
