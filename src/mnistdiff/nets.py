"""Networks: net(x_t, t) -> tensor with x_t's shape; they know nothing of diffusion.

t is a float per image (timestep / T, in [0, 1]); the process decides what the output means.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}


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


class SeedCNN(nn.Module):
    """The report's CNN: CNNBlocks of hidden widths, time encoding added after the first block,
    and a final 3x3 conv back to one channel."""

    def __init__(self, hidden: tuple[int, ...] = (16, 32, 32, 16), act: str = "gelu",
                 time_frequencies: int = 16, in_channels: int = 1):
        super().__init__()
        act_cls = ACTIVATIONS[act]
        widths = (in_channels, *hidden)
        self.blocks = nn.ModuleList(CNNBlock(a, b, act=act_cls) for a, b in zip(widths, widths[1:]))
        self.out = nn.Conv2d(hidden[-1], in_channels, 3, padding=1)
        self.time = SinusoidalTimeEncoding(time_frequencies, hidden[0], act_cls)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.blocks[0](x) + self.time(t)[:, :, None, None]
        for block in self.blocks[1:]:
            h = block(h)
        return self.out(h)


def _unet(m) -> nn.Module:
    from .unet import UNet  # unet.py imports this module's building blocks

    return UNet(tuple(m.hidden), m.act, attention=m.attention, res_blocks=m.res_blocks)


# config name -> builder from a ModelConfig; config.CHOICES["net"] is this dict's keys.
NETS = {"cnn": lambda m: SeedCNN(tuple(m.hidden), m.act), "unet": _unet}


def build(model_cfg) -> nn.Module:
    """Network from a ModelConfig (the one place that maps config names to classes)."""
    return NETS[model_cfg.net](model_cfg)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
