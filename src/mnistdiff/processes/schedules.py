"""Noise schedules as data: functions that return tensors indexed by the integer timestep t."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Schedule:
    """beta_t and its derived quantities for t = 0..T (index t is timestep t).

    Precomputed once, so samplers and losses only index them (no per-step sqrt/cumprod).
    """

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor  # alpha_bar_t = prod_{s<=t} (1 - beta_s)

    @property
    def T(self) -> int:
        return self.betas.shape[0] - 1

    @property
    def sqrt_alphas_cumprod(self) -> torch.Tensor:
        return self.alphas_cumprod.sqrt()

    @property
    def sqrt_one_minus_alphas_cumprod(self) -> torch.Tensor:
        return (1 - self.alphas_cumprod).sqrt()


def from_betas(betas: torch.Tensor) -> Schedule:
    betas = betas.to(torch.float64)
    # Cumulative product in log space and float64: 1000 factors close to 1 lose bits in float32.
    alphas_cumprod = torch.exp(torch.cumsum(torch.log1p(-betas), dim=0))
    return Schedule(betas.float(), alphas_cumprod.float())


def linear(beta1: float, beta2: float, T: int) -> Schedule:
    """The report's schedule: beta_t = beta1 + (beta2 - beta1) t / T for t = 0..T (Ho et al. 2020)."""
    t = torch.arange(0, T + 1, dtype=torch.float64)
    return from_betas(beta1 + (beta2 - beta1) * t / T)


def cosine(T: int, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Nichol & Dhariwal 2021: alpha_bar follows cos^2; betas clipped at max_beta near t = T."""
    t = torch.arange(0, T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    betas = torch.cat([betas[:1], betas]).clamp(min=1e-8, max=max_beta)
    return from_betas(betas)


# config name -> schedule from the ProcessConfig values; config.CHOICES["schedule"] is this dict's keys.
SCHEDULES = {"linear": lambda beta1, beta2, T: linear(beta1, beta2, T),
             "cosine": lambda beta1, beta2, T: cosine(T)}  # cosine has no betas to set


def make(name: str, *, beta1: float, beta2: float, T: int) -> Schedule:
    """Build a schedule by config name."""
    return SCHEDULES[name](beta1, beta2, T)


# -- cold diffusion: the order in which rows (columns, bands) are averaged ---------------------------

# -- learning rate: a pure function of the step, so a resumed run needs no scheduler state ----------

