"""Samplers: pure functions from a net and a starting point to images.

Each takes the net, the process data (schedule or degradation), the starting tensor x_T, and
keyword-only options; randomness comes only from an explicit torch.Generator, so a seed
reproduces the same images. `callback(t, x_t, x0_hat)` sees every step (for trajectory figures).
"""

from __future__ import annotations

from typing import Callable

import torch

from .schedules import Schedule

Callback = Callable[[int, torch.Tensor, torch.Tensor], None] | None


def _time(t: int, n: int, T: int, device) -> torch.Tensor:
    return torch.full((n,), t / T, device=device)


@torch.inference_mode()
def sample_ddpm(net, schedule: Schedule, x_T: torch.Tensor, *, generator: torch.Generator | None = None,
                callback: Callback = None) -> torch.Tensor:
    """Ancestral sampling, Algorithm 2 of Ho et al. 2020, with sigma_t^2 = beta_t and no noise at t = 1.

    x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps_hat) / sqrt(1 - beta_t) + sqrt(beta_t) z
    """
    T = schedule.T
    betas, ab = schedule.betas.tolist(), schedule.alphas_cumprod.tolist()
    x = x_T.clone()
    n = x.shape[0]
    for t in range(T, 0, -1):
        eps = net(x, _time(t, n, T, x.device)).float()
        beta, alpha_bar = betas[t], ab[t]
        if callback is not None:
            callback(t, x, (x - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5)
        x = (x - beta / (1 - alpha_bar) ** 0.5 * eps) / (1 - beta) ** 0.5
        if t > 1:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + beta**0.5 * z
    return x


# name -> fn(net, degradation, x_T, *, generator, callback); feeds the CLI's --sampler choices.
SAMPLERS: dict[str, Callable] = {
    "ddpm": lambda net, degradation, x_T, **kw: sample_ddpm(net, degradation.schedule, x_T, **kw),
}
# The sampler a process uses when none is named.
DEFAULT_SAMPLER = {"gaussian": "ddpm"}


def default_sampler(cfg) -> str:
    return DEFAULT_SAMPLER.get(cfg.process.degradation, "ddpm")
