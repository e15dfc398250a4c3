"""The epoch hooks a training run gets from the front ends (cli, api, experiment): the one place that wires
sampling, evaluation and the report into the training loop, which imports none of them."""

from __future__ import annotations

from . import config as C
from .report.figures import RunFigures
from .sampling.epoch_grid import save_epoch_grid
from .training.hooks import EpochHook


def epoch_hooks(cfg: C.Config) -> list[EpochHook]:
    """In order, at each epoch's end: the epoch grid (kept epochs), the per-epoch evaluation (every
    cfg.train.eval_every epochs), then RUN/figures/ redrawn from metrics.jsonl."""
    hooks: list[EpochHook] = [save_epoch_grid]
    if cfg.train.eval_every:
        from .evaluation.epochs import EpochEvaluation  # Inception and the classifier load only when asked

        hooks.append(EpochEvaluation())
    hooks.append(RunFigures())
    return hooks
