"""Exponential moving average of the weights (Polyak averaging, as in Ho et al. 2020 and most
diffusion models since): samples and metrics come from the average, which is smoother than the
last step's weights. Both are kept in checkpoints (prefixes model/ and ema/)."""

from __future__ import annotations

import copy

import torch
from torch import nn

EMA_PREFIX = "ema/"  # checkpoints keep the EMA weights under this prefix, beside the trained ones under "model/"


def decay_at(decay: float, step: int) -> float:
    """The decay used after `step` updates: (1 + n) / (10 + n), capped at `decay`. Early on the
    average follows the fast-moving weights instead of holding on to the random initialisation."""
    return min(decay, (1 + step) / (10 + step))


class EMA:
    def __init__(self, net: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module, step: int) -> None:
        """ema <- d * ema + (1 - d) * weights, with d = decay_at(decay, step); buffers are copied."""
        d = decay_at(self.decay, step)
        for e, p in zip(self.module.parameters(), net.parameters()):
            e.lerp_(p.detach(), 1 - d)
        for e, b in zip(self.module.buffers(), net.buffers()):
            e.copy_(b)
