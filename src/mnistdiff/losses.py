"""Training objectives: loss(net, degradation, x0, t, noise) -> per-sample loss vector.

Per-sample (not reduced) so the trainer can log loss by timestep range and weight it if asked.
"""

from __future__ import annotations

import torch


def _target(prediction: str, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    if prediction == "eps":  # Ho et al. 2020, Algorithm 1
        return noise
    if prediction == "x0":  # Bansal et al. 2022: the restoration operator R predicts x0
        return x0
    raise KeyError(prediction)


NORMS = {"mse": lambda d: d.square(), "l1": lambda d: d.abs()}


def diffusion_loss(net, degradation, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, *,
                   prediction: str = "eps", norm: str = "mse") -> torch.Tensor:
    """|| target - net(degrade(x0, t), t / T) ||, averaged over pixels, one value per image."""
    x_t = degradation.degrade(x0, t, noise)
    out = net(x_t, t.float() / degradation.T)
    diff = out.float() - _target(prediction, x0, noise)
    return NORMS[norm](diff).flatten(1).mean(1)
