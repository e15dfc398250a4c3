"""The report's CNN (the seed's): convolution blocks with the time encoding added after the first."""

from __future__ import annotations

import torch
from torch import nn

from .layers import ACTIVATIONS, LabelEmbedding, SinusoidalTimeEncoding


class CNNBlock(nn.Module):
    """7x7 conv -> LayerNorm over (C, H, W) -> activation, at full 28x28 resolution (the seed's block)."""

    def __init__(self, c_in: int, c_out: int, *, act: type[nn.Module], kernel_size: int = 7,
                 shape: tuple[int, int] = (28, 28)):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm((c_out, *shape))
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class SeedCNN(nn.Module):
    """The report's CNN: CNNBlocks of hidden widths, time encoding added after the first block,
    and a final 3x3 conv back to one channel."""

    def __init__(self, hidden: tuple[int, ...] = (16, 32, 32, 16), act: str = "gelu",
                 time_frequencies: int = 16, in_channels: int = 1, conditional: bool = False):
        super().__init__()
        act_cls = ACTIVATIONS[act]
        widths = (in_channels, *hidden)
        self.blocks = nn.ModuleList(CNNBlock(a, b, act=act_cls) for a, b in zip(widths, widths[1:]))
        self.out = nn.Conv2d(hidden[-1], in_channels, 3, padding=1)
        self.time = SinusoidalTimeEncoding(time_frequencies, hidden[0], act_cls)
        # Created last: an unconditional net draws the same initial weights as before it existed.
        self.label = LabelEmbedding(hidden[0]) if conditional else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time(t)
        if self.label is not None:
            emb = emb + self.label(y, x)
        h = self.blocks[0](x) + emb[:, :, None, None]
        for block in self.blocks[1:]:
            h = block(h)
        return self.out(h)
