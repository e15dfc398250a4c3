"""Starting points x_T: distributions of fully degraded images.

For Gaussian noise that is N(0, I). For a cold process x_T = D(x0, T) is described by a few
values (28 row means for row averaging, one mean for blur; `final_values`), and the starts are:
  conditional  D(x0, T) of real MNIST test images (the report's method; the output resembles x0),
  uniform      independent uniform values per row/column/band, ranges fitted on the training set
               (the report's unconditional baseline, Section 2.3),
  gmm          a Gaussian mixture fitted to those value vectors (Bansal et al. 2022, Section 5), with
               optional small pixel noise to break symmetry.
Fits are cached as JSON in RUN/priors/, keyed by what produced them; never pickled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch

from .. import data, processes
from ..errors import UserError
from .. import files

# Fitting on a seeded 10,000-image subset of the training split keeps a fit to seconds on 2 cores;
# 10,000 vectors are plenty for a 10-component mixture in 28 dimensions.
FIT_IMAGES = 10_000
FIT_SEED = 0


def standard_normal(process, n: int, *, generator: torch.Generator, **_) -> torch.Tensor:
    return torch.randn((n, 1, 28, 28), generator=generator)


# -- conditional: real test images, fully degraded --------------------------------------------------

def test_indices(n: int, generator: torch.Generator) -> torch.Tensor:
    """Which test images a conditional start uses: distinct ones while n <= 10,000."""
    n_test = data.SPLITS["test"][1]
    if n <= n_test:
        return torch.randperm(n_test, generator=generator)[:n]
    return torch.randint(n_test, (n,), generator=generator)


def test_originals(n: int, *, generator: torch.Generator, data_dir=None) -> torch.Tensor:
    """x0 of a conditional start, in model range (n, 1, 28, 28)."""
    return data.to_model_range(data.load_split("test", data_dir).images[test_indices(n, generator)])


def conditional(process, n: int, *, generator: torch.Generator, data_dir=None, **_) -> torch.Tensor:
    x0 = test_originals(n, generator=generator, data_dir=data_dir)
    noise = torch.randn(x0.shape, generator=generator) if process.stochastic else None
    return process.degrade(x0, torch.full((n,), process.T, dtype=torch.long), noise)


# -- unconditional: distributions of the final values, fitted on training images ---------------------

def training_final_values(process, data_dir=None) -> tuple[torch.Tensor, str]:
    """(FIT_IMAGES, k) final values of fully degraded training images, and the data's digest."""
    split = data.load_split("train", data_dir)
    idx = data.subset_indices(len(split), FIT_IMAGES, FIT_SEED)
    return process.final_values(data.to_model_range(split.images[idx])).double(), split.sha256


def fit_uniform(values: torch.Tensor, **_) -> dict:
    return {"low": values.min(0).values.tolist(), "high": values.max(0).values.tolist()}


def sample_uniform(params: dict, n: int, generator: torch.Generator) -> torch.Tensor:
    low, high = torch.tensor(params["low"]), torch.tensor(params["high"])
    return low + (high - low) * torch.rand((n, low.numel()), generator=generator, dtype=torch.float64)


def fit_gmm(values: torch.Tensor, *, components: int, seed: int = FIT_SEED) -> dict:
    """Full-covariance Gaussian mixture by EM (scikit-learn), deterministic given the seed."""
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    gm = GaussianMixture(components, covariance_type="full", random_state=seed, reg_covar=1e-6)
    # One BLAS thread: on the shared 2-core machine multithreaded BLAS made this fit 40x slower
    # (173 s against 4.3 s wall for 10,000 x 28 values and 10 components, measured under load).
    with threadpool_limits(1):
        gm.fit(values.numpy())
    return {"weights": gm.weights_.tolist(), "means": gm.means_.tolist(), "covariances": gm.covariances_.tolist(),
            "converged": bool(gm.converged_), "iterations": int(gm.n_iter_)}


def sample_gmm(params: dict, n: int, generator: torch.Generator) -> torch.Tensor:
    """Component by its weight, then mean + L z with L the Cholesky factor: all draws from `generator`."""
    weights = torch.tensor(params["weights"], dtype=torch.float64)
    means = torch.tensor(params["means"], dtype=torch.float64)
    chol = torch.linalg.cholesky(torch.tensor(params["covariances"], dtype=torch.float64))
    comp = torch.multinomial(weights, n, replacement=True, generator=generator)
    z = torch.randn((n, means.shape[1], 1), generator=generator, dtype=torch.float64)
    return means[comp] + (chol[comp] @ z)[..., 0]


FITS = {"uniform": (fit_uniform, sample_uniform), "gmm": (fit_gmm, sample_gmm)}


def fitted(kind: str, process, *, run: Path | None = None, data_dir=None, **options) -> dict:
    """Parameters of a fitted start, read from RUN/priors/ when a fit with the same key is cached."""
    values_key = process.final_values_key()  # a UserError for a process without final values
    key = {"kind": kind, **values_key, **options, "fit_images": FIT_IMAGES, "fit_seed": FIT_SEED}
    path = None
    if run is not None:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        path = Path(run) / "priors" / f"{kind}-{digest}.json"
        if path.is_file():
            cached = json.loads(path.read_text())
            if cached.get("key") == key:
                return cached["params"]
    values, data_digest = training_final_values(process, data_dir)
    params = FITS[kind][0](values, **options)
    if path is not None:
        payload = {"key": key, "train_sha256": data_digest, "params": params}
        try:
            path.parent.mkdir(exist_ok=True)
            files.atomic_write_bytes(path, json.dumps(payload).encode())
        except OSError:
            pass  # a read-only run can still be sampled from; the fit is only not cached
    return params


def _unconditional(kind: str):
    def start(process, n: int, *, generator: torch.Generator, run: Path | None = None, data_dir=None,
              components: int = 10, noise: float = 0.0, **_) -> torch.Tensor:
        if components < 1 or noise < 0:
            raise UserError(f"components={components} must be >= 1 and start noise={noise} >= 0")
        options = {"components": components} if kind == "gmm" else {}
        params = fitted(kind, process, run=run, data_dir=data_dir, **options)
        values = FITS[kind][1](params, n, generator).float().clamp(-data.DATA_RANGE, data.DATA_RANGE)  # band means
        x_T = process.from_final_values(values)
        if noise:
            x_T = x_T + noise * torch.randn(x_T.shape, generator=generator)
        return x_T
    start.__name__ = kind
    return start


# name -> fn(process, n, *, generator, run, data_dir, **options) -> x_T (n, 1, 28, 28)
STARTS: dict[str, Callable] = {"normal": standard_normal, "conditional": conditional,
                               "uniform": _unconditional("uniform"), "gmm": _unconditional("gmm")}


OPTIONS = {"gmm": ("components", "noise"), "uniform": ("noise",)}  # the options each start reads


def tag(name: str, options: dict | None) -> str:
    """A start as file names spell it, with the options it uses and was given: gmm-components100."""
    return name + "".join(f"-{k}{v}" for k, v in sorted((options or {}).items())
                          if v is not None and k in OPTIONS.get(name, ()))


def default_start(cfg) -> str:
    return processes.process_class(cfg.process.degradation).default_start


def draw(name: str, process, n: int, *, generator: torch.Generator, run: Path | None = None,
         data_dir=None, **options) -> torch.Tensor:
    return STARTS[name](process, n, generator=generator, run=run, data_dir=data_dir, **options)
