"""The EDM formulation of Gaussian diffusion (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models"): continuous noise levels sigma, a preconditioned denoiser, a
log-normal training distribution of sigma. This module holds the process (EDMNoise) and its arithmetic; its
samplers (Heun, DPM-Solver++ on the Karras sigmas) are in sampling/karras.py.

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

import torch

from ..errors import UserError
from .base import Process

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


class EDMNoise(Process):
    """x_sigma = x0 + sigma n, n ~ N(0, I), with Karras et al.'s (2022) preconditioned denoiser, trained on
    log sigma ~ N(p_mean, p_std^2). Time t in [0, 1] is log sigma rescaled (time_of); t = T = 1 is
    sigma_max. degrade() returns the variance-preserving x_sigma / sqrt(1 + sigma^2), so a standard-normal
    start is its fully degraded image; the samplers (sampling/karras.py) scale back to sigma."""

    stochastic, family = True, "sigma"
    default_sampler, default_start = "heun", "normal"
    T = 1
    uses = frozenset({"sigma_data", "p_mean", "p_std"})

    def __init__(self, *, sigma_data: float = 0.5, p_mean: float = -1.2, p_std: float = 1.2):
        self.sigma_data, self.p_mean, self.p_std = sigma_data, p_mean, p_std

    @classmethod
    def from_config(cls, p) -> "EDMNoise":
        return cls(sigma_data=p.sigma_data, p_mean=p.p_mean, p_std=p.p_std)

    @classmethod
    def check_config(cls, p) -> None:
        if p.prediction != "x0":
            raise UserError("the edm process preconditions its net to predict x0 (Karras et al. 2022); "
                            "pass --prediction x0")
        if p.min_snr:
            raise UserError("min_snr weights a discrete schedule's steps; the edm loss weights every sigma by its "
                            "preconditioning (pass --min-snr 0)")
        if not (0 < p.sigma_data < math.inf and 0 < p.p_std < math.inf and math.isfinite(p.p_mean)):
            raise UserError(f"sigma_data={p.sigma_data} and p_std={p.p_std} must be positive and p_mean="
                            f"{p.p_mean} finite, e.g. --sigma-data 0.5 --p-mean -1.2 --p-std 1.2")

    @classmethod
    def label(cls, p) -> str:
        return f"EDM (Gaussian noise, Karras et al. preconditioning, sigma_data {p.sigma_data})"

    def sample_t(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Training times: log sigma ~ N(p_mean, p_std^2), where the loss still falls (their Fig. 5a)."""
        return time_of_log_sigma(self.p_mean + self.p_std * torch.randn((n,), generator=generator))

    def coefficients(self, t):
        sigma = sigma_of(t.float()).view(-1, 1, 1, 1)
        scale = (1 + sigma**2).rsqrt()
        return scale, sigma * scale

    def degrade(self, x0, t, noise=None):
        if noise is None:
            noise = torch.randn_like(x0)
        a, s = self.coefficients(t.to(x0.device))
        return a * x0 + s * noise

    def preconditioning(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in) of Karras et al. Table 1, broadcastable to images."""
        return preconditioning(sigma, self.sigma_data)

    def denoise(self, net, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x; sigma) for the variance-exploding x = x0 + sigma n (sigma: one value per image)."""
        c_skip, c_out, c_in = self.preconditioning(sigma)
        return c_skip * x + c_out * net(c_in * x, time_of(sigma)).float()

    def loss(self, net, x0, t, noise, *, prediction="x0", norm="mse", min_snr=0.0):
        """Per-image lambda(sigma) |D(x; sigma) - x0|^2 (their eq. 2 with lambda = 1 / c_out^2), computed as
        the unit-weight |F - (x0 - c_skip x) / c_out|^2; `norm` (mse, l1) applies to that difference."""
        from .losses import NORMS

        sigma = sigma_of(t.float())
        c_skip, c_out, c_in = self.preconditioning(sigma)
        x = x0 + sigma.view(-1, 1, 1, 1) * noise
        out = net(c_in * x, t.float()).float()
        return NORMS[norm](out - (x0 - c_skip * x) / c_out).flatten(1).mean(1)

    def sampling_net(self, net, prediction):
        return net  # the samplers apply the preconditioning (denoise)

    def times(self, n: int) -> torch.Tensor:
        return torch.linspace(0, 1, n)

    @torch.no_grad()
    def estimate_x0(self, net, x_t, t):
        sigma = sigma_of(t.float()).clamp(min=1e-6)  # x_t = (x0 + sigma n) / sqrt(1 + sigma^2), as degrade() made it
        return self.denoise(net, x_t * (1 + sigma**2).sqrt().view(-1, 1, 1, 1), sigma)

    def describe(self) -> dict:
        return {"degradation": "edm", "sigma_data": self.sigma_data, "p_mean": self.p_mean, "p_std": self.p_std,
                "sigma_min": SIGMA_MIN, "sigma_max": SIGMA_MAX}
