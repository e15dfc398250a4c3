"""The EDM formulation of Gaussian diffusion (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models"): continuous noise levels sigma, a preconditioned denoiser, a
log-normal training distribution of sigma, and deterministic second-order (Heun) sampling. The
process itself is processes.EDMNoise; this module holds its arithmetic and its samplers.

    D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))      (their eq. 7)

with x = x0 + sigma n (the variance-exploding view). The preconditioning keeps the net's input and
training target at unit variance at every sigma, and lets D fall back on x itself at low noise
(c_skip -> 1, c_out -> sigma) instead of asking a net to amplify its own output by 1/sigma.

Outside these modules the process looks like any other stochastic one: `degrade` returns the
variance-preserving image x / sqrt(1 + sigma^2), so a standard-normal start is its fully degraded image
(the samplers scale it back), and its time t in [0, 1] is log sigma mapped linearly from
[log sigma_min, log sigma_max]; the nets take that t as they take t / T from a DDPM.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .data import DATA_RANGE
from .errors import UserError

SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0  # Karras et al.'s sampling range and step-spacing exponent
_LOG_MIN, _LOG_MAX = math.log(SIGMA_MIN), math.log(SIGMA_MAX)


def sigma_of(t: torch.Tensor) -> torch.Tensor:
    return torch.exp(_LOG_MIN + t * (_LOG_MAX - _LOG_MIN))


def time_of(sigma: torch.Tensor) -> torch.Tensor:
    """The net's time input for noise level sigma: c_noise, rescaled so sigma_min..sigma_max is 0..1."""
    return time_of_log_sigma(torch.log(sigma))


def time_of_log_sigma(log_sigma: torch.Tensor) -> torch.Tensor:
    return (log_sigma - _LOG_MIN) / (_LOG_MAX - _LOG_MIN)


def preconditioning(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in) of Karras et al. Table 1 for one sigma per image, shaped (B, 1, 1, 1)."""
    sd2 = sigma_data**2
    s = sigma.view(-1, 1, 1, 1)
    return sd2 / (s**2 + sd2), s * sigma_data / (s**2 + sd2).sqrt(), 1 / (s**2 + sd2).sqrt()


def karras_sigmas(steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX,
                  rho: float = RHO) -> list[float]:
    """Karras et al.'s eq. 5: `steps` levels from sigma_max to sigma_min, denser near 0, then a final 0."""
    if steps < 1:
        raise UserError(f"steps={steps} must be >= 1; e.g. --steps 18")
    if steps == 1:
        return [sigma_max, 0.0]
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return [(hi + i / (steps - 1) * (lo - hi)) ** rho for i in range(steps)] + [0.0]


Callback = Callable[[int, torch.Tensor, torch.Tensor], None] | None


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
