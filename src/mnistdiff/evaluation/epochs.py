"""Per-epoch evaluation: as an epoch hook of training (cfg.train.eval_every), or afterwards over the run's
snapshots (`mnistdiff evaluate RUN --snapshots`), into the rows the report draws as per-epoch curves."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .. import config as C
from ..errors import UserError
from ..machine import inference_precision
from ..processes import starts
from ..sampling import samplers
from ..sampling.generate import check_counts, generate
from ..sampling.load import load_trained
from ..training import checkpoint, dist
from ..training.hooks import EpochEnd
from .evaluator import Evaluator, summary
from ..training import rundir
from ..training.checkpoint import store

EVAL_SEED_OFFSET = 54_321  # per-epoch samples: the same noise every epoch, apart from the grid's


class EpochEvaluation:
    """Epoch hook: every cfg.train.eval_every epochs (and at the last), n_eval digits of the run's default sampler
    scored against the real test digits, logged as an 'eval' row of metrics.jsonl. Its Evaluator (the classifier
    and the reference features) is loaded at the first evaluation and kept for the run's next ones.

    Under torchrun every rank samples its share of the n_eval digits; rank 0 gathers them, computes the metrics
    and writes the row (dist.generate_sharded: one process samples exactly as before)."""

    def __init__(self):
        self.evaluator: Evaluator | None = None

    def __call__(self, end: EpochEnd) -> None:
        tc = end.cfg.train
        if not (tc.eval_every and (end.epoch % tc.eval_every == 0 or end.final)):
            return
        ctx = dist.context()
        t0 = time.perf_counter()
        if ctx.is_main and self.evaluator is None:
            self.evaluator = Evaluator(metrics=tc.eval_metrics, n_ref=tc.eval_ref, data_dir=end.data_dir,
                                       progress=end.progress)
        net = end.sampling_net()
        net.eval()
        try:
            images = dist.generate_sharded(
                lambda n, seed: generate(net, end.process, end.cfg, n, seed=seed, run=end.run, data_dir=end.data_dir),
                tc.n_eval, tc.seed + EVAL_SEED_OFFSET, ctx)
        finally:
            net.train()
        if not ctx.is_main:
            return
        sampling_s = time.perf_counter() - t0
        row = self.evaluator.evaluate(images)
        row["timing"]["sampling_s"] = round(sampling_s, 2)
        end.log.write(type="eval", epoch=end.epoch, step=end.step, **row, time_s=round(time.perf_counter() - t0, 2))
        end.log.flush()
        if end.progress:
            print(f"epoch {end.epoch} eval: {summary(row)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)


def evaluate_snapshots(run, *, n: int | None = None, metrics: str | None = None, n_ref: int | None = None,
                       epochs=None, cache=None, data_dir=None, progress: bool = True, runtime: str = "torch",
                       batch_size: int = 64, sample_batch_size: int = 500, precision: str = "fp32") -> list[dict]:
    """Evaluate each snapshot of the run (RUN/snapshots/, one per --sample-epochs epoch) not evaluated yet,
    as the per-epoch evaluation in training does (n samples of the run's default sampler and start, the same
    seed at every epoch), and append its 'eval' row to RUN/eval/epochs.jsonl. Training never waits for this:
    it runs beside the training process or after it. epochs: only the snapshots of these epochs (default: all).
    Returns the new rows."""
    run = Path(run)
    if not (run / "config.json").is_file():
        raise UserError(f"{run} is not a run directory (no config.json); pass one made by `mnistdiff train`")
    cfg = C.from_dict(C.load_file(run / "config.json"))
    tc = cfg.train
    n, metrics, n_ref = n or tc.n_eval, metrics or tc.eval_metrics, n_ref or tc.eval_ref
    if n < 10:
        raise UserError(f"-n {n} is too few samples: IS uses 10 splits and FID a covariance; use at least 10")
    check_counts(n, sample_batch_size)
    out = run / "eval" / rundir.EPOCH_EVALS
    rundir.ensure_writable(out.parent)
    with rundir.locked(out.parent, what="evaluation of snapshots"):
        done = {r["epoch"] for r in rundir.epoch_evals(run)}
        todo = {e: p for e, p in store.snapshots(run).items() if e not in done and (epochs is None or e in epochs)}
        if not todo and not done:
            raise UserError(f"{run} has no snapshots yet: training writes RUN/snapshots/epoch_NNNN.safetensors at "
                            "the end of each --sample-epochs epoch (and the last)")
        ev = Evaluator(metrics=metrics, n_ref=n_ref, cache=cache, data_dir=data_dir, progress=progress,
                           runtime=runtime, batch_size=batch_size) if todo else None
        new = []
        for epoch, path in todo.items():
            t0 = time.perf_counter()
            snap_cfg, net, process = load_trained(path, runtime=runtime, cache=cache,
                                                  batch_size=min(n, sample_batch_size), precision=precision)
            step = checkpoint.load(path)[2]["step"]
            images = generate(net, process, snap_cfg, n, seed=tc.seed + EVAL_SEED_OFFSET, run=run,
                              data_dir=data_dir, batch_size=sample_batch_size)
            sampling_s = time.perf_counter() - t0
            row = ev.evaluate(images)
            row["timing"]["sampling_s"] = round(sampling_s, 2)
            row = {"type": "eval", "epoch": epoch, "step": step, **row, "source": "snapshot",
                   "sampler": samplers.default_sampler(snap_cfg), "start": starts.default_start(snap_cfg),
                   "seed": tc.seed + EVAL_SEED_OFFSET, "classifier_sha256": ev.classifier_record["weights_sha256"],
                   "precision": inference_precision(precision, snap_cfg.model.net)[0],
                   "time_s": round(time.perf_counter() - t0, 2)}
            with open(out, "a") as f:  # a row at a time: a killed evaluation keeps what it finished
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
            new.append(row)
            if progress:
                print(f"{run.name} epoch {epoch}: {summary(row)} ({row['time_s']:.0f} s)", file=sys.stderr)
    return new
