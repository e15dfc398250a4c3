"""Gaussian noise on a discrete beta schedule: the DDPM forward process (Ho et al. 2020)."""

from __future__ import annotations

import torch

from . import schedules
from .base import Process, _bcast


class GaussianNoise(Process):
    """q(x_t | x0) = N(sqrt(alpha_bar_t) x0, (1 - alpha_bar_t) I)  (Ho et al. 2020, eq. 4)."""

    stochastic, family = True, "schedule"
    default_sampler, default_start = "ddpm", "normal"
    uses = frozenset({"T", "schedule", "beta1", "beta2", "min_snr"})

    def __init__(self, schedule: schedules.Schedule):
        self.schedule = schedule
        self.T = schedule.T
        alpha_bar = schedule.alphas_cumprod.clone()
        # The report's schedule gives beta_0 = beta1 > 0, but t = 0 is never trained or sampled;
        # pinning alpha_bar_0 = 1 makes degrade(x0, 0) == x0 as the protocol promises.
        alpha_bar[0] = 1.0
        self.sqrt_alphas_cumprod = alpha_bar.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1 - alpha_bar).sqrt()

    @classmethod
    def from_config(cls, p) -> "GaussianNoise":
        return cls(schedules.make(p.schedule, beta1=p.beta1, beta2=p.beta2, T=p.T))

    @classmethod
    def label(cls, p) -> str:
        return f"DDPM (Gaussian noise, {p.schedule} betas)"

    def coefficients(self, t):
        return _bcast(self.sqrt_alphas_cumprod, t), _bcast(self.sqrt_one_minus_alphas_cumprod, t)

    def degrade(self, x0, t, noise=None):
        if noise is None:
            noise = torch.randn_like(x0)
        a, s = self.coefficients(t)
        return a * x0 + s * noise
