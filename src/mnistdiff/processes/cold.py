"""Cold diffusion (Bansal et al. 2022): deterministic degradations (row or column averaging in a chosen order,
Gaussian blur) that a net learns to undo, with the orders in which rows (columns, bands) are averaged."""

from __future__ import annotations

import math

import torch

from ..errors import UserError
from .base import Process


# -- the order in which rows (columns, bands) are averaged ---------------------------------------------

def order_random(n: int, seed: int) -> torch.Tensor:
    """A seeded permutation of 0..n-1 (the report's 'Random' schedule), fixed for a run by its seed."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def order_outside_in(n: int, seed: int = 0) -> torch.Tensor:
    """Edges first: 0, n-1, 1, n-2, ... (the report's 1, 28, 2, 27, ... in 0-based indices)."""
    centre = (n - 1) / 2
    return torch.tensor(sorted(range(n), key=lambda i: (-abs(i - centre), i)))


def order_inside_out(n: int, seed: int = 0) -> torch.Tensor:
    """Centre first: n/2-1, n/2, n/2-2, ... (the report's 14, 15, 13, 16, ... in 0-based indices)."""
    centre = (n - 1) / 2
    return torch.tensor(sorted(range(n), key=lambda i: (abs(i - centre), i)))


ORDERS = {"random": order_random, "outside-in": order_outside_in, "inside-out": order_inside_out}


class ColdProcess(Process):
    """A deterministic degradation (Bansal et al. 2022): the net restores x0, Algorithm 2 samples,
    and unconditional samples start from a mixture fitted to the final values."""

    stochastic, family = False, "cold"
    default_sampler, default_start = "cold-alg2", "gmm"


class Averaging(ColdProcess):
    """Row or column averaging (the report's Section 2.1), a cold degradation (Bansal et al. 2022).

    The 28 lines (rows, or columns) are cut into 28/g bands of g adjacent lines; D(x0, t) replaces
    each of the first t bands in `order` by its mean, so T = 28/g and D(x0, T) holds 28/g values.
    """

    axis = "row"
    size = 28
    uses = frozenset({"T", "order", "group", "order_seed"})

    def __init__(self, *, order: str = "random", group: int = 1, order_seed: int = 0):
        if group < 1 or self.size % group:
            raise UserError(f"group={group} must divide {self.size} (1, 2, 4, 7, 14 or 28)")
        self.group, self.order_name, self.order_seed = group, order, order_seed
        self.T = self.size // group
        self.order = ORDERS[order](self.T, order_seed)  # band indices, averaged first to last
        rank = torch.empty(self.T, dtype=torch.long)
        rank[self.order] = torch.arange(self.T)
        # Per line, the first t at which it is averaged: degrade() is one comparison with t, no loop.
        self.line_step = (rank + 1).repeat_interleave(group)

    @classmethod
    def from_config(cls, p) -> "Averaging":
        return cls(order=p.order, group=p.group, order_seed=p.order_seed)

    @classmethod
    def check_config(cls, p) -> None:
        if p.T != cls.size // p.group:
            raise UserError(f"{p.degradation} with group={p.group} has T = 28/group = {cls.size // p.group} "
                            f"steps, not T={p.T}; pass --T {cls.size // p.group}")

    @classmethod
    def label(cls, p) -> str:
        return f"cold: {p.degradation}, {p.order} order" + (f", groups of {p.group}" if p.group > 1 else "")

    def _rows(self, x: torch.Tensor) -> torch.Tensor:  # columns become rows, so one code path serves both
        return x if self.axis == "row" else x.transpose(-1, -2)

    def final_values(self, x0: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) -> (B, 28/g): the band means, i.e. the values of D(x0, T), top to bottom."""
        x = self._rows(x0)
        return x.reshape(x.shape[0], self.T, -1).mean(-1)

    def from_final_values(self, v: torch.Tensor) -> torch.Tensor:
        """(B, 28/g) band means -> the fully degraded image they describe."""
        x = v.repeat_interleave(self.group, dim=1)[:, None, :, None].expand(-1, 1, self.size, self.size)
        return self._rows(x).contiguous()

    def final_values_key(self) -> dict:
        return {"degradation": type(self).__name__, "group": self.group}

    def degrade(self, x0, t, noise=None):
        x = self._rows(x0)
        b, c, h, w = x.shape
        means = x.reshape(b, c, self.T, -1).mean(-1).repeat_interleave(self.group, dim=2)[..., None]
        averaged = self.line_step.to(t.device)[None, :] <= t[:, None]  # (B, 28)
        return self._rows(torch.where(averaged.view(b, 1, h, 1), means.expand_as(x), x))

    def describe(self) -> dict:
        return {"degradation": f"{self.axis}-averaging", "T": self.T, "group": self.group,
                "order": self.order_name, "order_seed": self.order_seed,
                "band_order_1based": (self.order + 1).tolist(),
                "bands_1based": [[b * self.group + i + 1 for i in range(self.group)] for b in self.order.tolist()]}


class RowAveraging(Averaging):
    axis = "row"


class ColumnAveraging(Averaging):
    axis = "column"


class GaussianBlur(ColdProcess):
    """Blur with a Gaussian of width sigma_t = 2 tan(pi t / 2T), so D(x0, T) is the constant image of
    x0's mean (Bansal et al. 2022 blur towards a constant image for generation).

    Separable: D(x0, t) = K_t x0 K_t^T with K_t a row-normalised Gaussian matrix (zero padding
    renormalised, so no intensity leaks out at the border); K_0 = I and K_T = 1/28 are exact.
    """

    size = 28
    sigma_scale = 2.0

    def __init__(self, T: int):
        self.T = T
        i = torch.arange(self.size, dtype=torch.float64)
        kernels = [torch.eye(self.size, dtype=torch.float64)]
        for t in range(1, T):
            sigma = self.sigma_scale * math.tan(math.pi * t / (2 * T))
            k = torch.exp(-((i[:, None] - i[None, :]) ** 2) / (2 * sigma**2))
            kernels.append(k / k.sum(1, keepdim=True))
        if T >= 1:
            kernels.append(torch.full((self.size, self.size), 1 / self.size, dtype=torch.float64))
        self.kernels = torch.stack(kernels).float()  # (T+1, 28, 28)

    @classmethod
    def from_config(cls, p) -> "GaussianBlur":
        return cls(p.T)

    @classmethod
    def label(cls, p) -> str:
        return "cold: Gaussian blur towards the mean image"

    def degrade(self, x0, t, noise=None):
        k = self.kernels.to(x0.device)[t][:, None]  # (B, 1, 28, 28)
        return k @ x0 @ k.transpose(-1, -2)

    def final_values(self, x0: torch.Tensor) -> torch.Tensor:
        return x0.flatten(1).mean(1, keepdim=True)

    def from_final_values(self, v: torch.Tensor) -> torch.Tensor:
        return v.view(-1, 1, 1, 1).expand(-1, 1, self.size, self.size).contiguous()

    def final_values_key(self) -> dict:
        return {"degradation": type(self).__name__, "group": None}

    def describe(self) -> dict:
        return {"degradation": "blur", "T": self.T,
                "sigma": [self.sigma_scale * math.tan(math.pi * t / (2 * self.T)) for t in range(self.T)]}
