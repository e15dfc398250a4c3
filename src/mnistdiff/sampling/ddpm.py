"""Samplers of a discrete noise schedule (the "schedule" family): DDPM's ancestral sampler, DDIM, and
DPM-Solver++(2M) on the schedule's own noise levels."""

from __future__ import annotations

import torch

from ..data import DATA_RANGE
from ..errors import UserError
from ..processes.predictions import to_eps, to_x0
from ..processes.schedules import Schedule
from .karras import dpmpp_2m
from .steps import Callback, net_time


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
        eps = net(x, net_time(t, n, T, x.device)).float()
        beta, alpha_bar = betas[t], ab[t]
        if callback is not None:
            callback(t, x, to_x0("eps", eps, x, alpha_bar**0.5, (1 - alpha_bar) ** 0.5))
        x = (x - beta / (1 - alpha_bar) ** 0.5 * eps) / (1 - beta) ** 0.5
        if t > 1:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + beta**0.5 * z
    return x


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """`steps` timesteps from T down to 1, evenly spaced (Song et al. 2021's sub-sequence tau)."""
    if not 1 <= steps <= T:
        raise UserError(f"steps={steps} must lie in 1..{T} (the run's T); e.g. --steps 50")
    return sorted({round(T - i * (T - 1) / max(steps - 1, 1)) for i in range(steps)}, reverse=True)


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_s: float, eta: float,
              z: torch.Tensor | None, clip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update x_t -> x_s (s < t), eq. 12 of Song et al. 2021; returns (x_s, x0_hat).

    sigma = eta * sqrt((1 - a_s) / (1 - a_t)) * sqrt(1 - a_t / a_s): eta = 0 is deterministic, and
    eta = 1 with s = t - 1 is DDPM's ancestral step with the posterior variance beta-tilde_t.
    clip: clamp x0_hat to the data range and take eps consistent with it (Ho et al.'s released code
    clips the same way). Near t = T, x0_hat divides the net's error by sqrt(alpha_bar_T) ~ 0.006;
    without noise to correct it, one bad early estimate can end as a saturated noise image.
    """
    a, s = alpha_bar_t**0.5, (1 - alpha_bar_t) ** 0.5
    x0_hat = to_x0("eps", eps, x_t, a, s)
    if clip:
        x0_hat = x0_hat.clamp(-DATA_RANGE, DATA_RANGE)
        eps = to_eps("x0", x0_hat, x_t, a, s)
    sigma = eta * ((1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_s)) ** 0.5
    x_s = alpha_bar_s**0.5 * x0_hat + max(1 - alpha_bar_s - sigma**2, 0.0) ** 0.5 * eps
    if sigma > 0 and z is not None:
        x_s = x_s + sigma * z
    return x_s, x0_hat


def _check_eta(eta: float, process=None) -> None:
    if not 0 <= eta <= 1:  # above 1 sigma_t outgrows sqrt(1 - alpha_bar_{t-1})
        raise UserError(f"eta={eta} must lie in [0, 1] (0: deterministic DDIM, 1: DDPM-like noise)")


@torch.inference_mode()
def sample_ddim(net, schedule: Schedule, x_T: torch.Tensor, *, steps: int = 50, eta: float = 0.0,
                clip: bool = False, generator: torch.Generator | None = None, callback: Callback = None) -> torch.Tensor:
    """DDIM sampling (Song et al. 2021) of an eps-prediction DDPM on `steps` of its T timesteps.

    The last step goes to alpha_bar_0 = 1 (x0 itself), where sigma is 0: the output carries no noise.
    """
    _check_eta(eta)
    T = schedule.T
    ab = schedule.alphas_cumprod.tolist()
    taus = ddim_timesteps(T, steps)
    x = x_T.clone()
    n = x.shape[0]
    for i, t in enumerate(taus):
        s = taus[i + 1] if i + 1 < len(taus) else 0
        eps = net(x, net_time(t, n, T, x.device)).float()
        alpha_bar_s = ab[s] if s > 0 else 1.0
        z = None
        if eta > 0 and s > 0:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_next, x0_hat = ddim_step(x, eps, ab[t], alpha_bar_s, eta, z, clip)
        if callback is not None:
            callback(t, x, x0_hat)
        x = x_next
    return x


@torch.inference_mode()
def sample_dpmpp_2m(net, schedule: Schedule, x_T: torch.Tensor, *, steps: int = 20, clip: bool = False,
                    generator: torch.Generator | None = None, callback: Callback = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022) for an eps-prediction DDPM on DDIM's `steps` timesteps; steps
    net calls. In x / sqrt(alpha_bar_t) = x0 + sigma_t eps, sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t),
    a DDPM's probability-flow ODE is EDM's, so one solver (dpmpp_2m) serves both. Its first step
    is DDIM's; the last lands on x0_hat. diffusers' DPMSolverMultistepScheduler (dpmsolver++, order 2,
    final sigma 0) on the same timesteps gives the same images (tests/test_peers.py).
    clip: clamp each x0 estimate to the data range, as DDIM's clip does. Deterministic."""
    T, n = schedule.T, x_T.shape[0]
    ab = schedule.alphas_cumprod.tolist()
    taus = ddim_timesteps(T, steps)
    sigmas = [((1 - ab[t]) / ab[t]) ** 0.5 for t in taus] + [0.0]

    def denoise(x: torch.Tensor, i: int) -> torch.Tensor:
        a, s = ab[taus[i]] ** 0.5, (1 - ab[taus[i]]) ** 0.5
        x_t = a * x
        x0_hat = to_x0("eps", net(x_t, net_time(taus[i], n, T, x.device)).float(), x_t, a, s)
        return x0_hat.clamp(-DATA_RANGE, DATA_RANGE) if clip else x0_hat

    step_back = None if callback is None else lambda i, x, x0_hat: callback(taus[i], ab[taus[i]] ** 0.5 * x, x0_hat)
    return dpmpp_2m(denoise, sigmas, x_T / ab[taus[0]] ** 0.5, step_back)
