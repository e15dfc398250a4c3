"""The epoch grid: 16 samples from the same fixed noise at every kept epoch (the report's Figs 1.3, 1.8),
written to RUN/samples/epoch_NNNN.png by an epoch hook of training."""

from __future__ import annotations

import torch

from .. import data, files
from ..processes import starts
from ..training.hooks import EpochEnd
from . import samplers

GRID_SEED_OFFSET = 12_345  # the grid's fixed noise: same images at every epoch for comparison


def path(run, epoch: int):
    return run / "samples" / f"epoch_{epoch:04d}.png"


def save_epoch_grid(end: EpochEnd) -> None:
    """Epoch hook: the grid of a kept epoch (--sample-epochs, and the last), on the main process."""
    if not (end.is_main and end.keeps_snapshot):
        return
    cfg, net = end.cfg, end.sampling_net()
    net.eval()
    g = torch.Generator().manual_seed(cfg.train.seed + GRID_SEED_OFFSET)
    x_T = starts.draw(starts.default_start(cfg), end.process, 16, generator=g, run=end.run, data_dir=end.data_dir)
    x0 = samplers.SAMPLERS[samplers.default_sampler(cfg)](net, end.process, x_T, generator=g)
    files.save_grid(data.to_uint8(x0[:, 0]), path(end.run, end.epoch), nrow=4)
    net.train()
