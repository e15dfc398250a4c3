"""Samplers on Karras et al.'s (2022) noise levels (the "sigma" family, the EDM process): Heun's second-order
solver (their Algorithms 1 and 2) and DPM-Solver++(2M) (Lu et al. 2022), whose core DDPMs share."""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..data import DATA_RANGE
from ..processes.edm import karras_sigmas
from .steps import Callback


def _denoiser(net, process, n: int, device) -> Callable[[torch.Tensor, float], torch.Tensor]:
    return lambda x, sigma: process.denoise(net, x, torch.full((n,), sigma, device=device))


# Karras et al.'s Algorithm 2: noise is added back only for sigma in [S_TMIN, S_TMAX], at S_NOISE times
# unit variance (their ImageNet-64 settings; the range keeps the first and last steps deterministic).
S_TMIN, S_TMAX, S_NOISE = 0.05, 50.0, 1.003


def churn_gamma(churn: float, steps: int, sigma: float) -> float:
    """How far a stochastic step raises sigma before solving: sigma_hat = sigma (1 + gamma), with
    gamma = min(S_churn / steps, sqrt 2 - 1) inside [S_TMIN, S_TMAX] (the cap at most doubles the variance)."""
    return min(churn / steps, math.sqrt(2) - 1) if churn > 0 and S_TMIN <= sigma <= S_TMAX else 0.0


@torch.inference_mode()
def sample_heun(net, process, x_T: torch.Tensor, *, steps: int = 18, churn: float = 0.0, generator=None,
                callback: Callback = None) -> torch.Tensor:
    """Karras et al. 2022's Heun sampler: second-order steps on the Karras sigmas, Euler on the last
    (to sigma = 0); 2 * steps - 1 net calls. x_T is a standard-normal start (the process's fully
    degraded image), scaled here to sigma_max. churn = 0 is their deterministic Algorithm 1; churn > 0
    (S_churn) is Algorithm 2, which first adds fresh noise from `generator` to raise sigma to sigma_hat,
    so each step also forgets part of the error the earlier steps left (the net's, not the solver's)."""
    sigmas = karras_sigmas(steps)
    D = _denoiser(net, process, x_T.shape[0], x_T.device)
    x = x_T * math.sqrt(1 + sigmas[0] ** 2)
    for i, (s, s_next) in enumerate(zip(sigmas, sigmas[1:])):
        gamma = churn_gamma(churn, steps, s)
        if gamma > 0:
            s_hat = s * (1 + gamma)
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + math.sqrt(s_hat**2 - s**2) * S_NOISE * noise
            s = s_hat
        x0_hat = D(x, s)
        if callback is not None:
            callback(len(sigmas) - 1 - i, x, x0_hat)
        d = (x - x0_hat) / s
        x_next = x + (s_next - s) * d
        if s_next > 0:
            d_next = (x_next - D(x_next, s_next)) / s_next
            x_next = x + (s_next - s) * (d + d_next) / 2
        x = x_next
    return x


def dpmpp_2m(denoise: Callable[[torch.Tensor, int], torch.Tensor], sigmas: list[float], x: torch.Tensor,
             callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) in the variance-exploding view x = x0 + sigma n:
    a second-order multistep solver in lambda = -log sigma that reuses the previous step's x0 estimate.
    sigmas fall to a final 0; denoise(x, i) is the x0 estimate at sigmas[i]; one net call per nonzero
    sigma. Shared by the EDM process and DDPMs (samplers.sample_dpmpp_2m), whose ODE is this one in
    x / sqrt(alpha_bar)."""
    x0_prev, h_prev = None, None
    for i, (s, s_next) in enumerate(zip(sigmas, sigmas[1:])):
        x0_hat = denoise(x, i)
        if callback is not None:
            callback(i, x, x0_hat)
        if s_next == 0:  # the last step lands on the estimate itself
            return x0_hat
        h = math.log(s / s_next)
        if x0_prev is None:
            x0_mix = x0_hat  # first step: DPM-Solver++(1), i.e. DDIM
        else:
            r = h_prev / h
            x0_mix = (1 + 1 / (2 * r)) * x0_hat - (1 / (2 * r)) * x0_prev
        x = (s_next / s) * x + (1 - s_next / s) * x0_mix  # -expm1(-h) = 1 - s_next / s
        x0_prev, h_prev = x0_hat, h
    return x


@torch.inference_mode()
def sample_dpmpp_2m(net, process, x_T: torch.Tensor, *, steps: int = 20, clip: bool = False, generator=None,
                    callback: Callback = None) -> torch.Tensor:
    """DPM-Solver++(2M) on the Karras sigmas; `steps` net calls. clip: clamp each estimate to the data
    range [-0.5, 0.5]."""
    sigmas = karras_sigmas(steps)
    D = _denoiser(net, process, x_T.shape[0], x_T.device)
    denoise = (lambda x, i: D(x, sigmas[i]).clamp(-DATA_RANGE, DATA_RANGE)) if clip else \
        (lambda x, i: D(x, sigmas[i]))
    step_back = None if callback is None else lambda i, x, x0_hat: callback(len(sigmas) - 1 - i, x, x0_hat)
    return dpmpp_2m(denoise, sigmas, x_T * math.sqrt(1 + sigmas[0] ** 2), step_back)
