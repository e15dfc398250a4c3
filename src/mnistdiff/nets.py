"""Networks, the report's CNN and a small UNet: net(x_t, t) -> tensor with x_t's shape.

They know nothing of diffusion: t is a float per image (timestep / T, in [0, 1]); the process decides
what the output means. A conditional net also takes y, the digit per image (NULL_LABEL: "no label",
also what y=None means), embedded and added where the time embedding goes (classifier-free guidance,
Ho & Salimans 2022, guidance.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
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


# -- the UNet ----------------------------------------------------------------------------------------
# A small UNet for 28x28 digits (Ho et al. 2020's architecture, shrunk), with the same interface as
# SeedCNN: levels at 28, 14 and 7 pixels (one per entry of `hidden`), time-conditioned residual blocks,
# skips from each down level to its up level, optional self-attention at the lowest resolution.

MAX_LEVELS = 3  # 28 -> 14 -> 7; 7 does not halve evenly, so a fourth level could not meet its skip


def norm_groups(c: int) -> int:
    """GroupNorm groups for c channels: 8 where possible (Wu & He 2018 use 32; our widths are small)."""
    return next(g for g in (8, 4, 2, 1) if c % g == 0)


def _zero(module: nn.Module) -> nn.Module:
    # The last conv of every residual branch starts at zero: each block starts as the identity,
    # which keeps the early steps of a deep net as stable as a shallow one's.
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm -> act -> 3x3 conv, twice, conditioned on the embedding; a 1x1 conv on the skip path
    when the width changes.

    Default: a per-channel shift added before the second GroupNorm. The norm removes each group's mean
    of that shift, so only differences within a group reach the conv (none at one channel per group).
    scale_shift (Nichol & Dhariwal 2021's "scale-shift norm"): the embedding gives (scale, shift) applied
    after the norm, h = norm(h) * (1 + scale) + shift, which no normalisation can cancel."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, act: type[nn.Module], scale_shift: bool = False):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = nn.GroupNorm(norm_groups(c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out if scale_shift else c_out)
        self.norm2 = nn.GroupNorm(norm_groups(c_out), c_out)
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = act()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        e = self.emb(emb)[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        return self.skip(x) + self.conv2(self.act(h))


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map (residual, zero-initialised out)."""

    def __init__(self, c: int, heads: int = 4):
        super().__init__()
        self.heads = heads if c % heads == 0 else 1
        self.norm = nn.GroupNorm(norm_groups(c), c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.out = _zero(nn.Conv2d(c, c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        a = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(a.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """hidden[i] channels at level i (28 / 2^i pixels); res_blocks residual blocks per level and side."""

    def __init__(self, hidden: tuple[int, ...] = (32, 64, 64), act: str = "silu", attention: bool = False,
                 res_blocks: int = 1, in_channels: int = 1, time_frequencies: int = 16, conditional: bool = False,
                 scale_shift: bool = False):
        super().__init__()
        if not 1 <= len(hidden) <= MAX_LEVELS:
            raise ValueError(f"a UNet on 28x28 has 1 to {MAX_LEVELS} levels, got {len(hidden)}")
        act_cls = ACTIVATIONS[act]
        emb = 4 * hidden[0]
        self.time = SinusoidalTimeEncoding(time_frequencies, emb, act_cls, width=emb)
        self.inp = nn.Conv2d(in_channels, hidden[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = hidden[0]
        for i, w in enumerate(hidden):
            self.down.append(nn.ModuleList(ResBlock(c if j == 0 else w, w, emb, act_cls, scale_shift) for j in range(res_blocks)))
            c = w
            if i + 1 < len(hidden):
                self.downsample.append(nn.Conv2d(w, w, 3, stride=2, padding=1))
        self.mid = ResBlock(c, c, emb, act_cls, scale_shift)
        self.attn = SelfAttention(c) if attention else nn.Identity()
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(hidden))):
            w = hidden[i]
            # The first block of a level takes the skip concatenated to the path from below.
            self.up.append(nn.ModuleList(ResBlock(2 * w if j == 0 else w, w, emb, act_cls, scale_shift) for j in range(res_blocks)))
            if i > 0:
                self.upsample.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                   nn.Conv2d(w, hidden[i - 1], 3, padding=1)))
        self.out = nn.Sequential(nn.GroupNorm(norm_groups(hidden[0]), hidden[0]), act_cls(),
                                 _zero(nn.Conv2d(hidden[0], in_channels, 3, padding=1)))
        self.label = LabelEmbedding(emb) if conditional else None  # last, as in SeedCNN

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time(t)
        if self.label is not None:
            emb = emb + self.label(y, x)
        h = self.inp(x)
        skips = []
        for i, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.attn(self.mid(h, emb))
        for i, blocks in enumerate(self.up):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = block(h, emb)
            if i < len(self.upsample):
                h = self.upsample[i](h)
        return self.out(h)


# config name -> builder from a ModelConfig; config.CHOICES["net"] is this dict's keys.
NETS = {"cnn": lambda m: SeedCNN(tuple(m.hidden), m.act, conditional=m.conditional),
        "unet": lambda m: UNet(tuple(m.hidden), m.act, attention=m.attention, res_blocks=m.res_blocks,
                               conditional=m.conditional, scale_shift=m.scale_shift)}


def build(model_cfg) -> nn.Module:
    """Network from a ModelConfig (the one place that maps config names to classes)."""
    return NETS[model_cfg.net](model_cfg)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
