"""What the training loop hands to the code that runs at each epoch's end, without knowing what it does.

The loop trains and writes checkpoints and metrics.jsonl; anything else an epoch's end calls for (the epoch
grid, the per-epoch evaluation, the run's figures) is a hook, wired by the front ends (mnistdiff.hooks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn

from .. import config as C


@dataclass(frozen=True)
class EpochEnd:
    """An epoch's end, after its 'epoch' row is written and flushed and before its checkpoints are saved.

    Hooks run on every rank (the per-epoch evaluation samples on all of them); a hook that writes files
    writes them only where is_main. log is rank 0's metrics log (a no-op elsewhere)."""

    cfg: C.Config
    run: Path
    epoch: int
    step: int
    process: Any  # processes.Process
    log: Any  # rundir.MetricsLog
    is_main: bool
    sampling_net: Callable[[], nn.Module]  # the net to sample with (the EMA weights where kept), on the CPU
    data_dir: Any = None
    progress: bool = True

    @property
    def final(self) -> bool:
        return self.epoch == self.cfg.train.epochs

    @property
    def keeps_snapshot(self) -> bool:
        """This epoch's grid and snapshot are kept (--sample-epochs, and the last epoch always)."""
        return self.epoch in self.cfg.train.sample_epochs or self.final


EpochHook = Callable[[EpochEnd], None]
