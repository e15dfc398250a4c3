"""Samplers: pure functions from a net and a starting point to images, and their one registry.

Each takes the net, the process data (its schedule, or the process itself), the starting tensor x_T, and
keyword-only options; randomness comes only from an explicit torch.Generator, so a seed
reproduces the same images. `callback(k, x_k, x0_hat)` sees every step (steps.Callback).
SAMPLERS holds every fact about each sampler (function, processes served, options); a new
sampler is one entry there, and the CLI's --sampler/--algorithm choices, option flags and checks follow.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import torch

from .. import processes
from ..errors import UserError, WrongType
from ..processes.edm import karras_sigmas
from . import karras
from .cold import sample_cold
from .ddpm import _check_eta, ddim_timesteps, sample_ddim, sample_ddpm, sample_dpmpp_2m

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
    karras_sigmas(steps)


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
    "heun": Sampler(karras.sample_heun, ("sigma",), "Heun's second-order solver on Karras et al.'s sigmas, "
                    "2 * steps - 1 net calls (Karras et al. 2022, Algorithm 1; with --churn, Algorithm 2)",
                    options={"steps": Option(int, "number of sigmas (net calls: 2 * steps - 1)", _check_sigmas),
                             "churn": Option(float, "S_churn: fresh noise added back at each step, 0 deterministic "
                                                    "(capped at sqrt 2 - 1 of sigma per step from churn = 0.41 * "
                                                    "steps)", _check_churn)}),
    "dpm++2m": Sampler(_per_family(schedule=_on_schedule(sample_dpmpp_2m), sigma=karras.sample_dpmpp_2m),
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
