"""Forward processes: one contract, `Process`, for Gaussian noise (DDPM) and cold degradations.

Training, losses, predictions, samplers, priors and the report use only the members of `Process`;
none asks which process it holds. A new process is one subclass plus one entry in PROCESSES (the
CLI's --degradation choices and every check follow from it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from . import edm, schedules
from .errors import UserError


class Process:
    """x_t = degrade(x0, t, noise), and what the rest of the code needs to know. t is an integer step in 0..T for a
    discrete process (DDPM's schedule, the cold degradations), and a float in [0, 1] for EDM (T = 1), which
    maps it to its noise level sigma (edm.sigma_of)."""

    T: int
    stochastic: bool  # True when degrade() uses `noise` (then samplers start from noise, and the net may predict eps or v)
    default_sampler: str  # a samplers.SAMPLERS name, used when none is given
    default_start: str  # a priors.STARTS name, used when none is given
    # Which samplers serve it (samplers.Sampler.serves): "schedule" (a discrete noise schedule: ddpm,
    # ddim), "sigma" (continuous noise levels: heun, dpm++2m) or "cold" (Bansal et al.'s algorithms).
    family: str
    schedule: schedules.Schedule | None = None  # the discrete noise schedule of the "schedule" family; else None
    uses: frozenset[str] = frozenset({"T"})  # the ProcessConfig fields it reads (the report shows only those)

    @classmethod
    def from_config(cls, p) -> "Process":
        """The process a (validated) ProcessConfig describes."""
        raise NotImplementedError

    @classmethod
    def check_config(cls, p) -> None:
        """Refuse, with a one-line UserError, settings this process cannot run; nothing by default."""

    @classmethod
    def label(cls, p) -> str:
        """How the report names the process a ProcessConfig describes."""
        raise NotImplementedError

    def degrade(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """x0 (B, C, H, W), t (B,) in 0..T (integers; EDM: floats in [0, 1]) -> x_t; t = 0 returns x0 unchanged."""
        raise NotImplementedError

    def sample_t(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n training timesteps, uniform on 1..T (Ho et al. 2020, Algorithm 1)."""
        return torch.randint(1, self.T + 1, (n,), generator=generator)

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(a_t, s_t) with x_t = a_t x0 + s_t eps, shaped (B, 1, 1, 1); None for a cold process."""
        return None

    def loss(self, net, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, *, prediction: str, norm: str,
             min_snr: float = 0.0) -> torch.Tensor:
        """The per-image training loss at times t (losses.diffusion_loss unless the process has its own)."""
        from .losses import diffusion_loss

        return diffusion_loss(net, self, x0, t, noise, prediction=prediction, norm=norm, min_snr=min_snr)

    def sampling_net(self, net, prediction: str):
        """The net as this process's samplers call it: eps-predicting for a discrete noise schedule
        (predictions.for_sampling), the restorer itself for cold processes."""
        from .predictions import for_sampling

        return for_sampling(net, prediction, self)

    def describe(self) -> dict | None:
        """What a reader of the run needs to see (e.g. a random row order), saved as RUN/degradation.json."""
        return None

    # Fitted unconditional starts (priors.py) describe D(x0, T) by a few numbers per image.
    def final_values(self, x0: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) -> (B, k): the k numbers that determine D(x0, T)."""
        raise self._no_final_values()

    def from_final_values(self, v: torch.Tensor) -> torch.Tensor:
        """(B, k) -> the fully degraded images they describe."""
        raise self._no_final_values()

    def final_values_key(self) -> dict:
        """What the final values depend on: the cache key of a fitted start."""
        raise self._no_final_values()

    def _no_final_values(self) -> UserError:
        return UserError(f"fitted starts (uniform, gmm) need a process whose fully degraded images are described "
                         f"by a few values; {type(self).__name__} has none: use --start normal or conditional")


def _bcast(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return v.to(t.device)[t].view(-1, 1, 1, 1)


class GaussianNoise(Process):
    """q(x_t | x0) = N(sqrt(alpha_bar_t) x0, (1 - alpha_bar_t) I)  (Ho et al. 2020, eq. 4)."""

    stochastic, family = True, "schedule"
    default_sampler, default_start = "ddpm", "normal"
    uses = frozenset({"T", "schedule", "beta1", "beta2", "min_snr"})

    def __init__(self, schedule: schedules.Schedule):
        self.schedule = schedule
        self.T = schedule.T
        alpha_bar = schedule.alphas_cumprod.clone()
        # The report's schedule gives beta_0 = beta1 > 0, but t = 0 is never trained or sampled;
        # pinning alpha_bar_0 = 1 makes degrade(x0, 0) == x0 as the protocol promises.
        alpha_bar[0] = 1.0
        self.sqrt_alphas_cumprod = alpha_bar.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1 - alpha_bar).sqrt()

    @classmethod
    def from_config(cls, p) -> "GaussianNoise":
        return cls(schedules.make(p.schedule, beta1=p.beta1, beta2=p.beta2, T=p.T))

    @classmethod
    def label(cls, p) -> str:
        return f"DDPM (Gaussian noise, {p.schedule} betas)"

    def coefficients(self, t):
        return _bcast(self.sqrt_alphas_cumprod, t), _bcast(self.sqrt_one_minus_alphas_cumprod, t)

    def degrade(self, x0, t, noise=None):
        if noise is None:
            noise = torch.randn_like(x0)
        a, s = self.coefficients(t)
        return a * x0 + s * noise


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
        self.order = schedules.ORDERS[order](self.T, order_seed)  # band indices, averaged first to last
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


class EDMNoise(Process):
    """x_sigma = x0 + sigma n, n ~ N(0, I), with Karras et al.'s (2022) preconditioned denoiser, trained on
    log sigma ~ N(p_mean, p_std^2). Time t in [0, 1] is log sigma rescaled (edm.time_of); t = T = 1 is
    sigma_max. degrade() returns the variance-preserving x_sigma / sqrt(1 + sigma^2), so a standard-normal
    start is its fully degraded image; the samplers (edm.py) scale back to sigma."""

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
        return edm.time_of_log_sigma(self.p_mean + self.p_std * torch.randn((n,), generator=generator))

    def coefficients(self, t):
        sigma = edm.sigma_of(t.float()).view(-1, 1, 1, 1)
        scale = (1 + sigma**2).rsqrt()
        return scale, sigma * scale

    def degrade(self, x0, t, noise=None):
        if noise is None:
            noise = torch.randn_like(x0)
        a, s = self.coefficients(t.to(x0.device))
        return a * x0 + s * noise

    def preconditioning(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in) of Karras et al. Table 1, broadcastable to images."""
        return edm.preconditioning(sigma, self.sigma_data)

    def denoise(self, net, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """D(x; sigma) for the variance-exploding x = x0 + sigma n (sigma: one value per image)."""
        c_skip, c_out, c_in = self.preconditioning(sigma)
        return c_skip * x + c_out * net(c_in * x, edm.time_of(sigma)).float()

    def loss(self, net, x0, t, noise, *, prediction="x0", norm="mse", min_snr=0.0):
        """Per-image lambda(sigma) |D(x; sigma) - x0|^2 (their eq. 2 with lambda = 1 / c_out^2), computed as
        the unit-weight |F - (x0 - c_skip x) / c_out|^2; `norm` (mse, l1) applies to that difference."""
        from .losses import NORMS

        sigma = edm.sigma_of(t.float())
        c_skip, c_out, c_in = self.preconditioning(sigma)
        x = x0 + sigma.view(-1, 1, 1, 1) * noise
        out = net(c_in * x, t.float()).float()
        return NORMS[norm](out - (x0 - c_skip * x) / c_out).flatten(1).mean(1)

    def sampling_net(self, net, prediction):
        return net  # the samplers apply the preconditioning (denoise)

    def describe(self) -> dict:
        return {"degradation": "edm", "sigma_data": self.sigma_data, "p_mean": self.p_mean, "p_std": self.p_std,
                "sigma_min": edm.SIGMA_MIN, "sigma_max": edm.SIGMA_MAX}


# --degradation name -> class; config.CHOICES["degradation"] is this dict's keys.
PROCESSES: dict[str, type[Process]] = {"gaussian": GaussianNoise, "edm": EDMNoise, "row-averaging": RowAveraging,
                                       "column-averaging": ColumnAveraging, "blur": GaussianBlur}


def process_class(name: str) -> type[Process]:
    if name not in PROCESSES:
        raise UserError(f"unknown degradation {name!r}; choose one of: {', '.join(PROCESSES)}")
    return PROCESSES[name]


def build(process_cfg) -> Process:
    """The process a ProcessConfig names."""
    return process_class(process_cfg.degradation).from_config(process_cfg)


def write_description(path: Path, process: Process) -> None:
    """Save what a process does (e.g. a random row order) where a reader of the run sees it."""
    description = process.describe()
    if description is not None:
        Path(path).write_text(json.dumps(description, indent=2) + "\n")
