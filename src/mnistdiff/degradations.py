"""Degradations: one protocol, degrade(x0, t, noise) -> x_t, for integer t in 0..T.

Training and sampling never ask which degradation they hold: the loss degrades, the net restores.
Gaussian noise (DDPM's forward process) is one implementation; the cold-diffusion ones are others.
A new degradation is a new class plus one entry in DEGRADATIONS.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from . import schedules


@runtime_checkable
class Degradation(Protocol):
    T: int
    stochastic: bool  # True when degrade() uses `noise` (then samplers must start from noise)

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x0 (B, C, H, W), t (B,) integer in 0..T -> x_t; t = 0 returns x0 unchanged."""
        ...


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


DEGRADATIONS: dict[str, type] = {"gaussian": GaussianNoise}


def build(process_cfg) -> Degradation:
    """The degradation a ProcessConfig names (validation already checked the name)."""
    cls = DEGRADATIONS[process_cfg.degradation]
    if hasattr(cls, "from_config"):
        return cls.from_config(process_cfg)
    return cls(schedules.make(process_cfg.schedule, beta1=process_cfg.beta1,
                              beta2=process_cfg.beta2, T=process_cfg.T))
