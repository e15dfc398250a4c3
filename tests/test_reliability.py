"""Exact resume after SIGKILL, checkpoint integrity and fallback, safe loading, numeric faults."""

import os
import pickle
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from mnistdiff.training import checkpoint

from .conftest import cli
from mnistdiff.training import rundir
from mnistdiff.training.checkpoint import store

FLAGS = ["--subset", "192", "--batch-size", "32", "--epochs", "4", "--T", "20", "--hidden", "8,8",
         "--checkpoint-every", "2", "--sample-epochs", "2", "--quiet"]
TIMING = ("time_s", "images_per_s")


def _metrics(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rundir.read_metrics(run)]


def _final_tensors(run):
    tensors, _, state = checkpoint.load(store.checkpoint_path(run, "last"))
    return {k: v for k, v in tensors.items() if not k.startswith("rng/")}, state


def _start(args, env):
    return subprocess.Popen([sys.executable, "-m", "mnistdiff", "train", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.multiprocess
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path):
    env = {**os.environ, "MNISTDIFF_CHECKPOINT_PAUSE": "0.15"}
    ref, run = tmp_path / "reference", tmp_path / "killed"
    r = subprocess.run([sys.executable, "-m", "mnistdiff", "train", "--run", str(ref), *FLAGS], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr

    rng = random.Random(1234)
    proc = _start(["--run", str(run), *FLAGS], env)
    kills, during_write = 0, 0
    for attempt in range(12):
        if attempt % 2 == 0:  # kill while a checkpoint is being written (next.safetensors on disk)
            nxt = store.checkpoint_path(run, "next")
            deadline = time.time() + 300  # generous: a loaded machine starts python slowly
            while not nxt.exists() and proc.poll() is None and time.time() < deadline:
                time.sleep(0.005)
            during_write += nxt.exists() and proc.poll() is None
        else:  # kill at an arbitrary moment
            time.sleep(rng.uniform(0.2, 2.5))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        proc = _start(["--resume", str(run), "--quiet"], env)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    assert kills >= 3 and during_write >= 1, (kills, during_write)

    (a, sa), (b, sb) = _final_tensors(ref), _final_tensors(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # weights and Adam state
    assert sa["step"] == sb["step"] == 24
    assert _metrics(ref) == _metrics(run)  # every row once, in order, same values
    assert (ref / "samples/epoch_0004.png").read_bytes() == (run / "samples/epoch_0004.png").read_bytes()


@pytest.fixture
def trained(tmp_path):
    run = tmp_path / "run"
    r = cli("train", "--run", run, *FLAGS[:-5], "--epochs", "2", "--sample-epochs", "", "--quiet")
    assert r.returncode == 0, r.stderr
    return run


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_last_checkpoint_is_detected_and_resume_falls_back(trained, damage):
    last = store.checkpoint_path(trained, "last")
    raw = bytearray(last.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw[-10] ^= 0xFF  # inside the tensor bytes: the length is unchanged, the SHA-256 is not
    last.write_bytes(bytes(raw))
    with pytest.raises(checkpoint.CorruptCheckpoint, match="truncated|SHA-256"):
        checkpoint.load(last)
    r = cli("train", "--resume", trained, "--epochs", "3", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "falling back" in r.stderr
    epochs = [row["epoch"] for row in rundir.read_metrics(trained) if row["type"] == "epoch"]
    assert epochs == [1, 2, 3]  # epoch 2 redone from prev (epoch 1), no row twice


@pytest.mark.slow
def test_a_malicious_pickle_is_refused_and_never_executed(tmp_path, trained):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps({"model": Exploit()}))
    r = cli("sample", evil, "-n", "1", "--out", tmp_path / "x.png")
    assert r.returncode == 2 and "not a safetensors file" in r.stderr and r.stderr.count("\n") == 1
    # Planted where resume looks, it is skipped as corrupt; the good prev checkpoint is used.
    store.checkpoint_path(trained, "last").write_bytes(pickle.dumps(Exploit()))
    r = cli("train", "--resume", trained, "--epochs", "3", "--quiet")
    assert r.returncode == 0, r.stderr
    assert not marker.exists() and not (tmp_path / "x.png").exists()


def test_nonfinite_loss_stops_keeps_the_last_good_checkpoint_and_is_logged(tmp_path):
    run = tmp_path / "run"
    r = cli("train", "--run", run, "--subset", "128", "--batch-size", "32", "--epochs", "3", "--T", "20",
            "--hidden", "8,8", "--lr", "1e30", "--checkpoint-every", "1", "--sample-epochs", "", "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "loss became" in r.stderr and "epoch 1, step" in r.stderr and "lower --lr" in r.stderr
    events = [row for row in rundir.read_metrics(run) if row["type"] == "event"]
    assert events and events[0]["event"] == "nonfinite_loss"
    tensors, _, state = checkpoint.load(store.checkpoint_path(run, "last"))
    assert state["step"] == events[0]["step"] - 1
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("model/"))
