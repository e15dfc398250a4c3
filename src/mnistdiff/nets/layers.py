"""What both nets share: activations by name, the sinusoidal time encoding and the digit-label embedding."""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}


N_DIGITS = 10


NULL_LABEL = N_DIGITS  # the learned "no label" token, trained on label_dropout of each batch


def null_labels(like: torch.Tensor) -> torch.Tensor:
    """"No label" for every image of the batch `like`."""
    return torch.full(like.shape[:1], NULL_LABEL, dtype=torch.long, device=like.device)


class LabelEmbedding(nn.Embedding):
    """One learned vector per digit 0-9 plus the "no label" token; y=None means "no label" for all."""

    def __init__(self, dim: int):
        super().__init__(N_DIGITS + 1, dim)

    def forward(self, y: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        return super().forward((null_labels(like) if y is None else y).long())


class SinusoidalTimeEncoding(nn.Module):
    """sin/cos of t at geometric frequencies 2*pi*1.5^k (plus a zero frequency), then an MLP."""

    def __init__(self, n_frequencies: int, out_dim: int, act: type[nn.Module], width: int = 128):
        super().__init__()
        freqs = [0.0] + [2 * math.pi * 1.5**k for k in range(n_frequencies - 1)]
        self.register_buffer("frequencies", torch.tensor(freqs), persistent=False)
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_frequencies, width), act(),
            nn.Linear(width, width), act(),
            nn.Linear(width, width), act(),
            nn.Linear(width, out_dim),
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        phases = t[:, None].float() * self.frequencies[None, :]
        # cos - 1 keeps the zero-frequency features at 0, as the seed does.
        return self.mlp(torch.cat([phases.sin(), phases.cos() - 1], dim=1))
