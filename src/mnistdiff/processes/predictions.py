"""What a stochastic-process net predicts: eps (Ho et al. 2020), x0, or v (Salimans & Ho 2022).

With x_t = a x0 + s eps, a = sqrt(alpha_bar_t), s = sqrt(1 - alpha_bar_t) and a^2 + s^2 = 1:
    v = a eps - s x0,   x0 = a x_t - s v,   eps = s x_t + a v.
Samplers are written in eps; `for_sampling` wraps a net of any target so they need not know.
Cold processes always predict x0 and pass through unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


PREDICTIONS = ("eps", "x0", "v")  # config.CHOICES["prediction"]


def target(prediction: str, x0: torch.Tensor, eps: torch.Tensor, a, s) -> torch.Tensor:
    """What the net is trained to output (a, s broadcastable to the images)."""
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    if prediction == "v":
        return a * eps - s * x0
    raise KeyError(prediction)


def to_eps(prediction: str, out: torch.Tensor, x_t: torch.Tensor, a, s) -> torch.Tensor:
    if prediction == "eps":
        return out
    if prediction == "x0":
        return (x_t - a * out) / s
    if prediction == "v":
        return s * x_t + a * out
    raise KeyError(prediction)


def to_x0(prediction: str, out: torch.Tensor, x_t: torch.Tensor, a, s) -> torch.Tensor:
    if prediction == "eps":
        return (x_t - s * out) / a
    if prediction == "x0":
        return out
    if prediction == "v":
        return a * x_t - s * out
    raise KeyError(prediction)


class EpsFrom(nn.Module):
    """net(x_t, t/T) of any target, seen as an eps-prediction net (what the DDPM and DDIM samplers use)."""

    def __init__(self, net: nn.Module, prediction: str, process):
        super().__init__()
        self.net, self.prediction, self.process = net, prediction, process

    def forward(self, x: torch.Tensor, t: torch.Tensor, *labels: torch.Tensor) -> torch.Tensor:
        i = (t * self.process.T).round().long().to(x.device)  # samplers pass t / T; coefficients take the integer t
        a, s = self.process.coefficients(i)
        return to_eps(self.prediction, self.net(x, t, *labels).float(), x, a, s)


def for_sampling(net: nn.Module, prediction: str, process) -> nn.Module:
    if prediction == "eps" or not process.stochastic:
        return net
    return EpsFrom(net, prediction, process)
