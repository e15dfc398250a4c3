"""Samplers: pure functions from a net and a starting point to images.

Each takes the net, the process data (schedule or degradation), the starting tensor x_T, and
keyword-only options; randomness comes only from an explicit torch.Generator, so a seed
reproduces the same images. `callback(t, x_t, x0_hat)` sees every step (for trajectory figures).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch

from .degradations import DEGRADATIONS
from .errors import UserError
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


COLD_ALGORITHMS = ("direct", "1", "2")


@torch.inference_mode()
def sample_cold(net, degradation, x_T: torch.Tensor, *, algorithm: str = "2",
                generator: torch.Generator | None = None, callback: Callback = None) -> torch.Tensor:
    """Restore x_T with a cold-diffusion sampler of Bansal et al. 2022 (R = net predicting x0).

    direct:      x0_hat = R(x_T, T)
    algorithm 1: x_{s-1} = D(R(x_s, s), s-1)
    algorithm 2: x_{s-1} = x_s - D(x0_hat, s) + D(x0_hat, s-1), x0_hat = R(x_s, s)  (their Algorithm 2,
                 which corrects the restorer's error and is exact for every s when R is exact)
    No randomness: `generator` is accepted for the common signature only.
    """
    if algorithm not in COLD_ALGORITHMS:
        raise UserError(f"unknown cold algorithm {algorithm!r}; choose one of: {', '.join(COLD_ALGORITHMS)}")
    if degradation.stochastic:
        raise UserError("cold samplers need a deterministic degradation; use the ddpm sampler for gaussian runs")
    T = degradation.T
    x = x_T.clone()
    n = x.shape[0]
    if algorithm == "direct":
        x0_hat = net(x, _time(T, n, T, x.device)).float()
        if callback is not None:
            callback(T, x, x0_hat)
        return x0_hat
    for s in range(T, 0, -1):
        x0_hat = net(x, _time(s, n, T, x.device)).float()
        if callback is not None:
            callback(s, x, x0_hat)
        s_vec = torch.full((n,), s, dtype=torch.long, device=x.device)
        if algorithm == "1":
            x = degradation.degrade(x0_hat, s_vec - 1)
        else:
            x = x - degradation.degrade(x0_hat, s_vec) + degradation.degrade(x0_hat, s_vec - 1)
    return x


def _ddpm(net, degradation, x_T, **kw):
    if not hasattr(degradation, "schedule"):
        raise UserError("the ddpm sampler needs a gaussian (noise) process; pick a cold sampler: "
                        "--algorithm direct|1|2")
    return sample_ddpm(net, degradation.schedule, x_T, **kw)


# name -> fn(net, degradation, x_T, *, generator, callback); feeds the CLI's --sampler choices.
SAMPLERS: dict[str, Callable] = {
    "ddpm": _ddpm,
    "cold-direct": partial(sample_cold, algorithm="direct"),
    "cold-alg1": partial(sample_cold, algorithm="1"),
    "cold-alg2": partial(sample_cold, algorithm="2"),
}
# The sampler a process uses when none is named; a degradation missing here gets ddpm when it is
# stochastic and Bansal et al.'s Algorithm 2 when it is cold (so a new degradation needs no entry).
DEFAULT_SAMPLER = {"gaussian": "ddpm"}

# Which processes a sampler serves: True for stochastic (noise) processes, False for cold ones.
FOR_STOCHASTIC = {"ddpm": True, "cold-direct": False, "cold-alg1": False, "cold-alg2": False}


def check_compatible(name: str, degradation) -> None:
    """Refuse, before any work, a sampler that cannot run this run's process."""
    if FOR_STOCHASTIC.get(name, degradation.stochastic) != degradation.stochastic:
        kind = "a gaussian (noise)" if FOR_STOCHASTIC[name] else "a cold (deterministic)"
        hint = "--sampler ddpm" if degradation.stochastic else "--algorithm direct|1|2"
        raise UserError(f"the {name} sampler needs {kind} process; this run's needs {hint}")


def cold_sampler(algorithm: str) -> str:
    """The SAMPLERS name of a cold algorithm as the CLI's --algorithm spells it (direct, 1, 2)."""
    return {"direct": "cold-direct", "1": "cold-alg1", "2": "cold-alg2"}[algorithm]


def default_sampler(cfg) -> str:
    name = cfg.process.degradation
    return DEFAULT_SAMPLER.get(name, "ddpm" if DEGRADATIONS[name].stochastic else "cold-alg2")
