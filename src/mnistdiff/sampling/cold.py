"""Samplers of the cold degradations (the "cold" family): Bansal et al. 2022's direct prediction and their
Algorithms 1 and 2."""

from __future__ import annotations

import torch

from ..errors import UserError
from .steps import Callback, net_time


COLD_ALGORITHMS = ("direct", "1", "2")


@torch.inference_mode()
def sample_cold(net, process, x_T: torch.Tensor, *, algorithm: str = "2",
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
    T = process.T
    x = x_T.clone()
    n = x.shape[0]
    if algorithm == "direct":
        x0_hat = net(x, net_time(T, n, T, x.device)).float()
        if callback is not None:
            callback(T, x, x0_hat)
        return x0_hat
    for s in range(T, 0, -1):
        x0_hat = net(x, net_time(s, n, T, x.device)).float()
        if callback is not None:
            callback(s, x, x0_hat)
        s_vec = torch.full((n,), s, dtype=torch.long, device=x.device)
        if algorithm == "1":
            x = process.degrade(x0_hat, s_vec - 1)
        else:
            x = x - process.degrade(x0_hat, s_vec) + process.degrade(x0_hat, s_vec - 1)
    return x
