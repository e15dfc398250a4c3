"""What every sampler shares: the callback each step reports to, and the time a net is given."""

from __future__ import annotations

from typing import Callable

import torch

# callback(k, x_k, x0_hat): every sampler calls it once per step, before the step, with k counting down to 1
# (the timestep t for DDPM and cold samplers; the steps left for the Karras-sigma solvers), the current image and
# the net's estimate of x0 from it. Trajectory figures and progress bars hang on it.
Callback = Callable[[int, torch.Tensor, torch.Tensor], None] | None


def net_time(t: int, n: int, T: int, device) -> torch.Tensor:
    """The time the nets take for step t of T: t / T in [0, 1], one per image."""
    return torch.full((n,), t / T, device=device)
