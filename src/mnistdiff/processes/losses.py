"""Training objectives: loss(net, process, x0, t, noise) -> per-sample loss vector.

Per-sample (not reduced) so the trainer can log loss by timestep range and weight it if asked.
"""

from __future__ import annotations

import torch

from . import predictions

NORMS = {"mse": lambda d: d.square(), "l1": lambda d: d.abs()}


def min_snr_weight(prediction: str, snr: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma weights (Hang et al. 2023), expressed for each target so that all three weight
    the implied x0 error by min(SNR_t, gamma): low-noise steps stop dominating the gradient."""
    clipped = snr.clamp(max=gamma)
    if prediction == "eps":
        return clipped / snr
    if prediction == "v":
        return clipped / (snr + 1)
    return clipped  # x0


def diffusion_loss(net, process, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, *,
                   prediction: str = "eps", norm: str = "mse", min_snr: float = 0.0) -> torch.Tensor:
    """|| target - net(degrade(x0, t), t / T) ||, averaged over pixels, one value per image.

    Targets: eps (Ho et al. 2020, Algorithm 1), x0 (Bansal et al. 2022's restoration operator R, or
    DDPM with x0 output), v (Salimans & Ho 2022); eps, v and min-SNR need a stochastic process's
    noise coefficients (config.validate refuses them for cold ones).
    """
    x_t = process.degrade(x0, t, noise)
    out = net(x_t, t.float() / process.T)
    a, s = process.coefficients(t) or (None, None)
    diff = out.float() - predictions.target(prediction, x0, noise, a, s)
    per_sample = NORMS[norm](diff).flatten(1).mean(1)
    if min_snr:
        snr = (a / s).square().flatten()
        per_sample = per_sample * min_snr_weight(prediction, snr, min_snr)
    return per_sample
