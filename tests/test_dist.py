"""Multi-process training under the real launcher: `python -m torch.distributed.run` (torchrun), 2 CPU
ranks on gloo. Process start-up dominates (~5-10 s per launch), so a 2-process run is shared."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

from mnistdiff.training import checkpoint, dist
from mnistdiff.errors import UserError

from .conftest import cli
from mnistdiff.training import rundir
from mnistdiff.training.checkpoint import store
from mnistdiff.evaluation import statistics

pytestmark = pytest.mark.multiprocess

# 200 images in global batches of 64: 4 steps an epoch, the last of 8 images (4 per rank). fp32: the ranks agree
# with one process up to the order of float sums, which bf16 (precision auto on AVX512-BF16 CPUs) would not keep.
FLAGS = ["--subset", "200", "--batch-size", "64", "--epochs", "2", "--T", "20", "--hidden", "8,8",
         "--checkpoint-every", "2", "--sample-epochs", "1", "--precision", "fp32"]
TIMING = ("time_s", "images_per_s")
HERE = Path(__file__).parent


def torchrun(*args, nproc=2, script=None, env=None, popen=False, timeout=600):
    """`torchrun --standalone --nproc_per_node N -m mnistdiff -- ARGS`, as the README says to run it."""
    target = [str(script)] if script else ["-m", "mnistdiff"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           *target, "--", *map(str, args)]
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    if popen:
        return subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=timeout)


def _sigkill_with_workers(launcher: subprocess.Popen) -> None:
    """SIGKILL the launcher's workers, then the launcher: as a machine failure would, with no cleanup.

    torchrun starts each worker in a session of its own, so they are found by parent pid."""
    workers = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == launcher.pid:
            workers.append(int(stat.parent.name))
    assert workers, "the launcher has no worker processes"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()


def _weights_and_adam(run):
    tensors, _, state = checkpoint.load(store.checkpoint_path(run, "last"))
    return {k: v for k, v in tensors.items() if not k.startswith("rng/")}, state


def _metrics(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rundir.read_metrics(run)]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """One 2-process run (every file write of each rank recorded), the reference of these tests."""
    base = tmp_path_factory.mktemp("dist")
    run, audit = base / "two", base / "audit"
    audit.mkdir()
    r = torchrun("train", "--run", run, *FLAGS, script=HERE / "dist_audited.py", env={"AUDIT_DIR": str(audit)})
    assert r.returncode == 0, r.stderr[-3000:]
    return run, audit, r.stderr


@pytest.mark.slow
def test_two_ranks_take_the_single_process_steps(two_ranks, tmp_path):
    run2, _, _ = two_ranks
    run1 = tmp_path / "one"
    r = cli("train", "--run", run1, *FLAGS, "--quiet")
    assert r.returncode == 0, r.stderr
    (a, s1), (b, s2) = _weights_and_adam(run1), _weights_and_adam(run2)
    assert s1["step"] == s2["step"] == 8 and a.keys() == b.keys()
    for k in a:  # the same global batches, timesteps and noise: equal up to the order of float sums
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
    m1, m2 = _metrics(run1), _metrics(run2)
    assert [(r["type"], r["step"]) for r in m1] == [(r["type"], r["step"]) for r in m2]
    for x, y in zip(m1, m2):  # the logged loss is the global batch's mean, not rank 0's half
        for key in ("loss", "loss_mean"):
            if key in x:
                assert y[key] == pytest.approx(x[key], rel=1e-5), (x, y)


@pytest.mark.slow
def test_only_rank_zero_writes_files_and_prints(two_ranks):
    run, audit, stderr = two_ranks
    inside = lambda p: Path(p).resolve().is_relative_to(run.resolve())  # noqa: E731
    rank0 = {Path(p).relative_to(run).as_posix() for p in (audit / "rank0.txt").read_text().splitlines()
             if not p.isdigit() and inside(p)}
    rank1 = [p for p in (audit / "rank1.txt").read_text().splitlines() if not p.isdigit() and inside(p)]
    assert rank1 == []
    assert {"config.json", "metrics.jsonl", "checkpoints/last.safetensors", "samples/epoch_0001.png",
            "samples/epoch_0002.png", "figures/loss.png"} <= rank0
    assert stderr.count("epoch 1/2: mean loss") == 1 and stderr.count("trained ") == 1


@pytest.mark.slow
def test_resume_under_two_ranks_after_sigkill_mid_epoch(two_ranks, tmp_path):
    reference, _, _ = two_ranks
    run = tmp_path / "killed"
    # The pause holds rank 0 inside the first checkpoint's rotation (step 2 of 4, mid-epoch 1):
    # next.safetensors is complete there, and the kill lands before any later step.
    proc = torchrun("train", "--run", run, *FLAGS, "--quiet", popen=True,
                    env={"MNISTDIFF_CHECKPOINT_PAUSE": "30"})
    nxt, deadline = store.checkpoint_path(run, "next"), time.time() + 300
    while not nxt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert nxt.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint in 300 s"
    _sigkill_with_workers(proc)
    _, (_, _, state) = store.load_latest(run)
    assert (state["step"], state["step_in_epoch"], state["epoch"]) == (2, 2, 0)

    r = torchrun("train", "--resume", run, "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    (a, sa), (b, sb) = _weights_and_adam(reference), _weights_and_adam(run)
    assert sa["step"] == sb["step"] == 8
    assert all(torch.equal(a[k], b[k]) for k in a)  # same ranks, same reductions: bit-identical
    assert _metrics(reference) == _metrics(run)  # rows after the checkpoint once, as uninterrupted


@pytest.mark.slow
def test_batch_that_does_not_split_is_one_line_from_rank_zero(tmp_path):
    r = torchrun("train", "--run", tmp_path / "run", "--batch-size", "63", "--quiet")
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.startswith("mnistdiff: error:")]
    assert lines == ["mnistdiff: error: batch_size=63 does not split over 2 processes; pass a --batch-size "
                     "divisible by 2 (it is the global batch, shared by all processes)"]
    assert "exitcode  : 2" in r.stderr and not (tmp_path / "run").exists()


def test_shards_partition_every_global_batch():
    for world in range(1, 9):
        for m in range(0, 70):
            parts = [dist.shard(m, dist.Context(rank=r, world=world)) for r in range(world)]
            assert parts[0].start == 0 and parts[-1].stop == m
            assert all(p.stop == q.start for p, q in zip(parts, parts[1:]))
            assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


def test_local_batch_is_the_global_batch_over_the_ranks():
    assert dist.local_batch(128, 1) == 128 and dist.local_batch(128, 8) == 16
    with pytest.raises(UserError, match="divisible by 3"):
        dist.local_batch(128, 3)


def test_without_a_launcher_one_process_and_no_group(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(dist, "_CTX", None)
    ctx = dist.init()
    assert (ctx.rank, ctx.world, ctx.is_main) == (0, 1, True) and not tdist.is_initialized()
    assert ctx.device == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))


def test_a_world_without_a_rendezvous_address_is_one_line(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setattr(dist, "_CTX", None)
    with pytest.raises(UserError, match="MASTER_ADDR/MASTER_PORT are not set; start the processes with `torchrun"):
        dist.init()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gather_worker(rank, world, port, out):
    from datetime import timedelta


    # A short timeout: a collective that one rank never joins fails the test instead of hanging it.
    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                             timeout=timedelta(seconds=60))
    ctx = dist.Context(rank=rank, world=world)
    # Each rank's "samples": its seed repeated, as many as its shard; 7 over 2 ranks is uneven (4, 3).
    got = dist.generate_sharded(lambda n, seed: torch.full((n, 2), seed, dtype=torch.int64), 7, 5, ctx)
    result = {"gathered": got}
    if rank == 0:  # as in per-epoch evaluation: rank 0 alone computes the metrics (torchmetrics inside)
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(20, 8, generator=g), torch.randn(20, 8, generator=g) + 1
        result["fd"] = statistics.frechet_distance(a, b)
        result["kid"] = statistics.kernel_inception_distance(a, b, subsets=3)
        result["is"] = statistics.inception_score(torch.randn(20, 10, generator=g), splits=2)
    ones = torch.ones(1)
    tdist.all_reduce(ones)  # the next collective of both ranks: meets only if the metrics joined none
    result["sum"] = float(ones)
    if rank == 0:
        torch.save(result, out)
    tdist.destroy_process_group()


@pytest.mark.slow  # spawning 2 interpreters that import torch: ~5 s idle, ~30 s on the shared machine
def test_eval_samples_gather_in_rank_order_and_rank_zero_metrics_wait_for_no_one(tmp_path):
    out = tmp_path / "result.pt"
    mp.spawn(_gather_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    result = torch.load(out)
    got, s = result["gathered"], dist.SHARD_SEED_STRIDE
    assert got[:, 0].tolist() == [5] * 4 + [5 + s] * 3 and got.shape == (7, 2)
    assert result["fd"] > 0 and result["is"][0] >= 1 and result["sum"] == 2.0
