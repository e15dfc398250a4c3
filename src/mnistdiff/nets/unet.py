"""A small UNet (Ronneberger et al. 2015, as DDPMs use it): residual blocks at 28, 14 and 7 pixels, optional
self-attention at the lowest resolution, skip connections, zero-initialised output layers."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ACTIVATIONS, LabelEmbedding, SinusoidalTimeEncoding


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
