"""Degradations: one protocol, degrade(x0, t, noise) -> x_t, for integer t in 0..T.

Training and sampling never ask which degradation they hold: the loss degrades, the net restores.
Gaussian noise (DDPM's forward process) is one implementation; the cold-diffusion ones are others.
A new degradation is a new class plus one entry in DEGRADATIONS.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from . import schedules
from .edm import EDMNoise
from .errors import UserError


@runtime_checkable
class Degradation(Protocol):
    T: int
    stochastic: bool  # True when degrade() uses `noise` (then samplers must start from noise)

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x0 (B, C, H, W), t (B,) integer in 0..T -> x_t; t = 0 returns x0 unchanged."""
        ...

# Optional, for cold degradations: `final_values(x0) -> (B, k)` and `from_final_values(v)` describe
# D(x0, T) by k numbers (the fitted unconditional starts in priors.py need them); the classmethod
# `check_config(process_cfg)` adds validation; `describe() -> dict` is saved as RUN/degradation.json.


def _bcast(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return v.to(t.device)[t].view(-1, 1, 1, 1)


class GaussianNoise:
    """q(x_t | x0) = N(sqrt(alpha_bar_t) x0, (1 - alpha_bar_t) I)  (Ho et al. 2020, eq. 4)."""

    stochastic = True

    def __init__(self, schedule: schedules.Schedule):
        self.schedule = schedule
        self.T = schedule.T
        alpha_bar = schedule.alphas_cumprod.clone()
        # The report's schedule gives beta_0 = beta1 > 0, but t = 0 is never trained or sampled;
        # pinning alpha_bar_0 = 1 makes degrade(x0, 0) == x0 as the protocol promises.
        alpha_bar[0] = 1.0
        self.sqrt_ab = alpha_bar.sqrt()
        self.sqrt_1mab = (1 - alpha_bar).sqrt()

    def degrade(self, x0, t, noise=None):
        if noise is None:
            noise = torch.randn_like(x0)
        return _bcast(self.sqrt_ab, t) * x0 + _bcast(self.sqrt_1mab, t) * noise


class Averaging:
    """Row or column averaging (the report's Section 2.1), a cold degradation (Bansal et al. 2022).

    The 28 lines (rows, or columns) are cut into 28/g bands of g adjacent lines; D(x0, t) replaces
    each of the first t bands in `order` by its mean, so T = 28/g and D(x0, T) holds 28/g values.
    """

    stochastic = False
    axis = "row"
    size = 28

    def __init__(self, *, order: str = "random", group: int = 1, order_seed: int = 0):
        if group < 1 or self.size % group:
            raise UserError(f"group={group} must divide {self.size} (1, 2, 4, 7, 14 or 28)")
        self.group, self.order_name, self.order_seed = group, order, order_seed
        self.T = self.size // group
        self.order = schedules.ORDERS[order](self.T, order_seed)  # band indices, averaged first to last
        rank = torch.empty(self.T, dtype=torch.long)
        rank[self.order] = torch.arange(self.T)
        # Per line, the first t at which it is averaged: degrade() is one comparison with t, no loop.
        self.line_step = (rank + 1).repeat_interleave(group)

    @classmethod
    def from_config(cls, p) -> "Averaging":
        return cls(order=p.order, group=p.group, order_seed=p.order_seed)

    @classmethod
    def check_config(cls, p) -> None:
        if p.T != cls.size // p.group:
            raise UserError(f"{p.degradation} with group={p.group} has T = 28/group = {cls.size // p.group} "
                            f"steps, not T={p.T}; pass --T {cls.size // p.group}")

    def _rows(self, x: torch.Tensor) -> torch.Tensor:  # columns become rows, so one code path serves both
        return x if self.axis == "row" else x.transpose(-1, -2)

    def final_values(self, x0: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) -> (B, 28/g): the band means, i.e. the values of D(x0, T), top to bottom."""
        x = self._rows(x0)
        return x.reshape(x.shape[0], self.T, -1).mean(-1)

    def from_final_values(self, v: torch.Tensor) -> torch.Tensor:
        """(B, 28/g) band means -> the fully degraded image they describe."""
        x = v.repeat_interleave(self.group, dim=1)[:, None, :, None].expand(-1, 1, self.size, self.size)
        return self._rows(x).contiguous()

    def degrade(self, x0, t, noise=None):
        x = self._rows(x0)
        b, c, h, w = x.shape
        means = x.reshape(b, c, self.T, -1).mean(-1).repeat_interleave(self.group, dim=2)[..., None]
        averaged = self.line_step.to(t.device)[None, :] <= t[:, None]  # (B, 28)
        return self._rows(torch.where(averaged.view(b, 1, h, 1), means.expand_as(x), x))

    def describe(self) -> dict:
        return {"degradation": f"{self.axis}-averaging", "T": self.T, "group": self.group,
                "order": self.order_name, "order_seed": self.order_seed,
                "band_order_1based": (self.order + 1).tolist(),
                "bands_1based": [[b * self.group + i + 1 for i in range(self.group)] for b in self.order.tolist()]}


class RowAveraging(Averaging):
    axis = "row"


class ColumnAveraging(Averaging):
    axis = "column"


class GaussianBlur:
    """Blur with a Gaussian of width sigma_t = 2 tan(pi t / 2T), so D(x0, T) is the constant image of
    x0's mean (Bansal et al. 2022 blur towards a constant image for generation).

    Separable: D(x0, t) = K_t x0 K_t^T with K_t a row-normalised Gaussian matrix (zero padding
    renormalised, so no intensity leaks out at the border); K_0 = I and K_T = 1/28 are exact.
    """

    stochastic = False
    size = 28
    sigma_scale = 2.0

    def __init__(self, T: int):
        self.T = T
        i = torch.arange(self.size, dtype=torch.float64)
        kernels = [torch.eye(self.size, dtype=torch.float64)]
        for t in range(1, T):
            sigma = self.sigma_scale * math.tan(math.pi * t / (2 * T))
            k = torch.exp(-((i[:, None] - i[None, :]) ** 2) / (2 * sigma**2))
            kernels.append(k / k.sum(1, keepdim=True))
        if T >= 1:
            kernels.append(torch.full((self.size, self.size), 1 / self.size, dtype=torch.float64))
        self.kernels = torch.stack(kernels).float()  # (T+1, 28, 28)

    @classmethod
    def from_config(cls, p) -> "GaussianBlur":
        return cls(p.T)

    def degrade(self, x0, t, noise=None):
        k = self.kernels.to(x0.device)[t][:, None]  # (B, 1, 28, 28)
        return k @ x0 @ k.transpose(-1, -2)

    def final_values(self, x0: torch.Tensor) -> torch.Tensor:
        return x0.flatten(1).mean(1, keepdim=True)

    def from_final_values(self, v: torch.Tensor) -> torch.Tensor:
        return v.view(-1, 1, 1, 1).expand(-1, 1, self.size, self.size).contiguous()

    def describe(self) -> dict:
        return {"degradation": "blur", "T": self.T,
                "sigma": [self.sigma_scale * math.tan(math.pi * t / (2 * self.T)) for t in range(self.T)]}


DEGRADATIONS: dict[str, type] = {"gaussian": GaussianNoise, "edm": EDMNoise, "row-averaging": RowAveraging,
                                 "column-averaging": ColumnAveraging, "blur": GaussianBlur}


def build(process_cfg) -> Degradation:
    """The degradation a ProcessConfig names (validation already checked the name)."""
    cls = DEGRADATIONS[process_cfg.degradation]
    if hasattr(cls, "from_config"):
        return cls.from_config(process_cfg)
    return cls(schedules.make(process_cfg.schedule, beta1=process_cfg.beta1,
                              beta2=process_cfg.beta2, T=process_cfg.T))


def write_description(path: Path, degradation) -> None:
    """Save what a degradation does (e.g. a random row order) where a reader of the run sees it."""
    describe = getattr(degradation, "describe", None)
    if describe is not None:
        Path(path).write_text(json.dumps(describe(), indent=2) + "\n")
