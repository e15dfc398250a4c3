"""Samplers: pure functions from a net and a starting point to images, and their one registry.

Each takes the net, the process data (its schedule, or the process itself), the starting tensor x_T, and
keyword-only options; randomness comes only from an explicit torch.Generator, so a seed
reproduces the same images. `callback(t, x_t, x0_hat)` sees every step (for trajectory figures).
SAMPLERS holds every fact about each sampler (function, processes served, options); a new
sampler is one entry there, and the CLI's --sampler/--algorithm choices, option flags and checks follow.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import torch

from . import edm, processes
from .data import DATA_RANGE
from .predictions import to_eps, to_x0
from .errors import UserError, WrongType
from .schedules import Schedule

Callback = Callable[[int, torch.Tensor, torch.Tensor], None] | None


def _time(t: int, n: int, T: int, device) -> torch.Tensor:
    return torch.full((n,), t / T, device=device)


@torch.inference_mode()
def sample_ddpm(net, schedule: Schedule, x_T: torch.Tensor, *, generator: torch.Generator | None = None,
                callback: Callback = None) -> torch.Tensor:
    """Ancestral sampling, Algorithm 2 of Ho et al. 2020, with sigma_t^2 = beta_t and no noise at t = 1.

    x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps_hat) / sqrt(1 - beta_t) + sqrt(beta_t) z
    """
    T = schedule.T
    betas, ab = schedule.betas.tolist(), schedule.alphas_cumprod.tolist()
    x = x_T.clone()
    n = x.shape[0]
    for t in range(T, 0, -1):
        eps = net(x, _time(t, n, T, x.device)).float()
        beta, alpha_bar = betas[t], ab[t]
        if callback is not None:
            callback(t, x, to_x0("eps", eps, x, alpha_bar**0.5, (1 - alpha_bar) ** 0.5))
        x = (x - beta / (1 - alpha_bar) ** 0.5 * eps) / (1 - beta) ** 0.5
        if t > 1:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + beta**0.5 * z
    return x


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """`steps` timesteps from T down to 1, evenly spaced (Song et al. 2021's sub-sequence tau)."""
    if not 1 <= steps <= T:
        raise UserError(f"steps={steps} must lie in 1..{T} (the run's T); e.g. --steps 50")
    return sorted({round(T - i * (T - 1) / max(steps - 1, 1)) for i in range(steps)}, reverse=True)


def ddim_step(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_s: float, eta: float,
              z: torch.Tensor | None, clip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM update x_t -> x_s (s < t), eq. 12 of Song et al. 2021; returns (x_s, x0_hat).

    sigma = eta * sqrt((1 - a_s) / (1 - a_t)) * sqrt(1 - a_t / a_s): eta = 0 is deterministic, and
    eta = 1 with s = t - 1 is DDPM's ancestral step with the posterior variance beta-tilde_t.
    clip: clamp x0_hat to the data range and take eps consistent with it (Ho et al.'s released code
    clips the same way). Near t = T, x0_hat divides the net's error by sqrt(alpha_bar_T) ~ 0.006;
    without noise to correct it, one bad early estimate can end as a saturated noise image.
    """
    a, s = alpha_bar_t**0.5, (1 - alpha_bar_t) ** 0.5
    x0_hat = to_x0("eps", eps, x_t, a, s)
    if clip:
        x0_hat = x0_hat.clamp(-DATA_RANGE, DATA_RANGE)
        eps = to_eps("x0", x0_hat, x_t, a, s)
    sigma = eta * ((1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_s)) ** 0.5
    x_s = alpha_bar_s**0.5 * x0_hat + max(1 - alpha_bar_s - sigma**2, 0.0) ** 0.5 * eps
    if sigma > 0 and z is not None:
        x_s = x_s + sigma * z
    return x_s, x0_hat


def _check_eta(eta: float, process=None) -> None:
    if not 0 <= eta <= 1:  # above 1 sigma_t outgrows sqrt(1 - alpha_bar_{t-1})
        raise UserError(f"eta={eta} must lie in [0, 1] (0: deterministic DDIM, 1: DDPM-like noise)")


@torch.inference_mode()
def sample_ddim(net, schedule: Schedule, x_T: torch.Tensor, *, steps: int = 50, eta: float = 0.0,
                clip: bool = False, generator: torch.Generator | None = None, callback: Callback = None) -> torch.Tensor:
    """DDIM sampling (Song et al. 2021) of an eps-prediction DDPM on `steps` of its T timesteps.

    The last step goes to alpha_bar_0 = 1 (x0 itself), where sigma is 0: the output carries no noise.
    """
    _check_eta(eta)
    T = schedule.T
    ab = schedule.alphas_cumprod.tolist()
    taus = ddim_timesteps(T, steps)
    x = x_T.clone()
    n = x.shape[0]
    for i, t in enumerate(taus):
        s = taus[i + 1] if i + 1 < len(taus) else 0
        eps = net(x, _time(t, n, T, x.device)).float()
        alpha_bar_s = ab[s] if s > 0 else 1.0
        z = None
        if eta > 0 and s > 0:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_next, x0_hat = ddim_step(x, eps, ab[t], alpha_bar_s, eta, z, clip)
        if callback is not None:
            callback(t, x, x0_hat)
        x = x_next
    return x


@torch.inference_mode()
def sample_dpmpp_2m(net, schedule: Schedule, x_T: torch.Tensor, *, steps: int = 20, clip: bool = False,
                    generator: torch.Generator | None = None, callback: Callback = None) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022) for an eps-prediction DDPM on DDIM's `steps` timesteps; steps
    net calls. In x / sqrt(alpha_bar_t) = x0 + sigma_t eps, sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t),
    a DDPM's probability-flow ODE is EDM's, so one solver (edm.dpmpp_2m) serves both. Its first step
    is DDIM's; the last lands on x0_hat. diffusers' DPMSolverMultistepScheduler (dpmsolver++, order 2,
    final sigma 0) on the same timesteps gives the same images (tests/test_peers.py).
    clip: clamp each x0 estimate to the data range, as DDIM's clip does. Deterministic."""
    T, n = schedule.T, x_T.shape[0]
    ab = schedule.alphas_cumprod.tolist()
    taus = ddim_timesteps(T, steps)
    sigmas = [((1 - ab[t]) / ab[t]) ** 0.5 for t in taus] + [0.0]

    def denoise(x: torch.Tensor, i: int) -> torch.Tensor:
        a, s = ab[taus[i]] ** 0.5, (1 - ab[taus[i]]) ** 0.5
        x_t = a * x
        x0_hat = to_x0("eps", net(x_t, _time(taus[i], n, T, x.device)).float(), x_t, a, s)
        return x0_hat.clamp(-DATA_RANGE, DATA_RANGE) if clip else x0_hat

    step_back = None if callback is None else lambda i, x, x0_hat: callback(taus[i], ab[taus[i]] ** 0.5 * x, x0_hat)
    return edm.dpmpp_2m(denoise, sigmas, x_T / ab[taus[0]] ** 0.5, step_back)


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
        x0_hat = net(x, _time(T, n, T, x.device)).float()
        if callback is not None:
            callback(T, x, x0_hat)
        return x0_hat
    for s in range(T, 0, -1):
        x0_hat = net(x, _time(s, n, T, x.device)).float()
        if callback is not None:
            callback(s, x, x0_hat)
        s_vec = torch.full((n,), s, dtype=torch.long, device=x.device)
        if algorithm == "1":
            x = process.degrade(x0_hat, s_vec - 1)
        else:
            x = x - process.degrade(x0_hat, s_vec) + process.degrade(x0_hat, s_vec - 1)
    return x


@dataclass(frozen=True)
class Option:
    """A sampler option beyond the common signature; its default is the sampler function's own."""

    type: type  # int, float, or bool (a bool is a CLI switch)
    help: str
    check: Callable[[object, object], None] | None = None  # check(value, process) raises UserError


@dataclass(frozen=True)
class Sampler:
    """One registry entry: fn(net, process, x_T, *, generator, callback, **options) -> x_0."""

    fn: Callable
    serves: tuple[str, ...]  # the process families it samples (processes.Process.family): schedule, sigma, cold
    help: str
    options: dict[str, Option] = field(default_factory=dict)
    algorithm: str | None = None  # a cold sampler's name as `--algorithm` spells it (Bansal et al.'s numbering)
    defaults_from: Callable | None = None  # the pure function whose keyword defaults are the options' defaults

    @property
    def defaults(self) -> dict:
        params = inspect.signature(self.defaults_from or self.fn).parameters
        return {name: params[name].default for name in self.options}

    def __call__(self, net, process, x_T: torch.Tensor, **kw) -> torch.Tensor:
        return self.fn(net, process, x_T, **kw)


def _check_steps(steps, process) -> None:
    ddim_timesteps(process.T, steps)


def _check_sigmas(steps, process) -> None:
    edm.karras_sigmas(steps)


def _check_churn(churn, process) -> None:
    if not 0 <= churn <= 1000:
        raise UserError(f"churn={churn} must be between 0 (deterministic) and 1000, e.g. --churn 10")


def _check_solver_steps(steps, process) -> None:
    (_check_sigmas if process.family == "sigma" else _check_steps)(steps, process)


def _on_schedule(fn: Callable) -> Callable:
    """A schedule sampler as a registry function: it reads the process's noise schedule."""
    return lambda net, process, x_T, **kw: fn(net, process.schedule, x_T, **kw)


def _per_family(**fns: Callable) -> Callable:
    """One sampler name for several process families: the function for the run's family."""
    return lambda net, process, x_T, **kw: fns[process.family](net, process, x_T, **kw)


# name -> every fact about the sampler; feeds the CLI (--sampler, --algorithm, --steps/--eta/--clip).
SAMPLERS: dict[str, Sampler] = {
    "ddpm": Sampler(_on_schedule(sample_ddpm), ("schedule",), "ancestral sampling, all T steps (Ho et al. 2020)"),
    "ddim": Sampler(_on_schedule(sample_ddim), ("schedule",), "DDIM on a sub-sequence of the steps (Song et al. 2021)",
                    options={"steps": Option(int, "number of timesteps used, 1..T", _check_steps),
                             "eta": Option(float, "noise scale, 0 deterministic .. 1 DDPM-like", _check_eta),
                             "clip": Option(bool, "clamp each step's x0 estimate to the data range (stops a "
                                                  "short-trained model's samples from ending as saturated noise)")},
                    defaults_from=sample_ddim),
    "heun": Sampler(edm.sample_heun, ("sigma",), "Heun's second-order solver on Karras et al.'s sigmas, "
                    "2 * steps - 1 net calls (Karras et al. 2022, Algorithm 1; with --churn, Algorithm 2)",
                    options={"steps": Option(int, "number of sigmas (net calls: 2 * steps - 1)", _check_sigmas),
                             "churn": Option(float, "S_churn: fresh noise added back at each step, 0 deterministic "
                                                    "(capped at sqrt 2 - 1 of sigma per step from churn = 0.41 * "
                                                    "steps)", _check_churn)}),
    "dpm++2m": Sampler(_per_family(schedule=_on_schedule(sample_dpmpp_2m), sigma=edm.sample_dpmpp_2m),
                       ("schedule", "sigma"), "DPM-Solver++(2M) (Lu et al. 2022), steps net calls: on DDIM's "
                       "timesteps for a DDPM, on Karras et al.'s sigmas for EDM",
                       options={"steps": Option(int, "number of net calls", _check_solver_steps),
                                "clip": Option(bool, "clamp each x0 estimate to the data range")},
                       defaults_from=sample_dpmpp_2m),
    "cold-direct": Sampler(partial(sample_cold, algorithm="direct"), ("cold",),
                           "one restoration R(x_T, T) (Bansal et al. 2022)", algorithm="direct"),
    "cold-alg1": Sampler(partial(sample_cold, algorithm="1"), ("cold",),
                         "Algorithm 1 of Bansal et al. 2022: restore, degrade to s-1", algorithm="1"),
    "cold-alg2": Sampler(partial(sample_cold, algorithm="2"), ("cold",),
                         "Algorithm 2 of Bansal et al. 2022: restore with error correction", algorithm="2"),
}


def serving(family: str) -> list[str]:
    """The samplers that serve a process family (processes.Process.family)."""
    return [name for name, s in SAMPLERS.items() if family in s.serves]


def option_names() -> list[str]:
    """Every option any sampler takes (the CLI has one flag per name)."""
    return list(dict.fromkeys(o for s in SAMPLERS.values() for o in s.options))


def check_options(name: str, options: dict | None, process) -> dict:
    """The options given (None values dropped), refusing, before any work, any the sampler does not take."""
    takes = SAMPLERS[name].options
    options = {k: v for k, v in (options or {}).items() if v is not None}
    extra = sorted(set(options) - set(takes))
    if extra:
        flags = ", ".join(f"--{o}" for o in takes) or "no options"
        raise UserError(f"the {name} sampler does not take --{extra[0]} (it takes {flags}); "
                        "e.g. --sampler ddim --steps 50 --eta 0")
    for key, value in options.items():
        want = takes[key].type
        ok = isinstance(value, bool) if want is bool else not isinstance(value, bool) and (
            isinstance(value, int) if want is int else isinstance(value, (int, float)))
        if not ok:
            raise WrongType(f"the {name} sampler's {key} must be {want.__name__}, not {type(value).__name__} "
                            f"{value!r}")
    for key, value in {**SAMPLERS[name].defaults, **options}.items():
        if takes[key].check is not None:
            takes[key].check(value, process)
    return options


def check_compatible(name: str, process) -> None:
    """Refuse, before any work, a sampler that cannot run this run's process."""
    if process.family not in SAMPLERS[name].serves:
        raise UserError(f"the {name} sampler does not serve this run's {type(process).__name__} process; "
                        f"use --sampler {'|'.join(serving(process.family))}")


def algorithms() -> dict[str, str]:
    """--algorithm spelling -> SAMPLERS name, for the cold samplers."""
    return {s.algorithm: name for name, s in SAMPLERS.items() if s.algorithm}


def cold_sampler(algorithm: str) -> str:
    """The SAMPLERS name of a cold algorithm as the CLI's --algorithm spells it (direct, 1, 2)."""
    return algorithms()[algorithm]


def default_sampler(cfg) -> str:
    return processes.process_class(cfg.process.degradation).default_sampler
