"""The Python API, for notebooks and scripts (docs/api.md): load a run, draw images, read its metrics,
train from a config. It calls the functions the CLI calls (sampling.load.load_trained, sampling.generate.generate,
training.loop.train), so a notebook and the shell give the same images for the same seed.

    run = mnistdiff.load("runs/ddpm-unet")      # or a shipped model: mnistdiff.load("quick-unet")
    images = run.sample(16, digit=3, sampler="ddim", steps=50, guidance=2, seed=0)  # uint8 (16, 28, 28)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import config as C
from .sampling import guidance as G
from .errors import BadArgument, UserError, check_int
from .training import rundir
from .training.checkpoint import store


@dataclass
class Run:
    """A trained run, ready to sample: its directory, typed config and the net of one checkpoint."""

    path: Path
    config: C.Config
    checkpoint: str = "last"
    weights: str = "ema"
    data_dir: str | Path | None = None
    model: str | None = None  # the shipped model's name (sampling/shipped.py), None for a run
    _net: object = field(default=None, repr=False)
    _process: object = field(default=None, repr=False)

    def sample(self, n: int = 16, *, digit: G.Digits = None, guidance: float | None = None,
               sampler: str | None = None, steps: int | None = None, seed: int = 0, start: str | None = None,
               batch_size: int = 500, start_options: dict | None = None, **options) -> torch.Tensor:
        """n images as a uint8 tensor (n, 28, 28), black background, 255 ink.

        digit (conditional runs): 3, [3, 5] (cycled), or "all" (n / 10 of each, digit order);
        guidance: the classifier-free weight w (0: plain conditional); sampler: a samplers.SAMPLERS
        name (default: the process's own), steps and other options as its CLI flags (eta=, clip=);
        start_options: a fitted start's ({"components": 100}). What is left unset is a shipped model's own."""
        from .sampling import shipped
        from .sampling.generate import generate

        digits = G.labels(digit, n)
        chosen = shipped.fill(shipped.sampling_defaults(self.model), sampler=sampler,
                              sampler_options={**options, "steps": steps}, start=start,
                              start_options=start_options, guidance=guidance, digits=digits)
        return generate(self._net, self._process, self.config, n, seed=seed, sampler=chosen["sampler"],
                        start=chosen["start"], batch_size=batch_size, run=self.path, data_dir=self.data_dir,
                        sampler_options=chosen["sampler_options"], start_options=chosen["start_options"],
                        digits=digits, guidance=chosen["guidance"])

    @property
    def card(self) -> dict | None:
        """A shipped model's card (what it is, how to sample it, what was measured on it); None for a run."""
        from .sampling import shipped

        return None if self.model is None else shipped.card(self.model)

    def metrics(self, type: str | None = None) -> list[dict]:  # noqa: A002 - the rows' own key
        """The rows of RUN/metrics.jsonl (type: "iter", "epoch", "eval", ... or all of them)."""
        rows = rundir.read_metrics(self.path)
        return rows if type is None else [r for r in rows if r.get("type") == type]

    def evaluate(self, n: int = 10_000, **options) -> dict:
        """`mnistdiff evaluate` on this run: n samples measured against the test digits; returns what it writes to
        RUN/eval/<name>.json (options: those of evaluate.evaluate_run: seed, sampler, digit, guidance, metrics,
        name, ...)."""
        from .evaluation.evaluate import evaluate_run
        from .sampling import shipped
        from .report.figures import write_class_chart

        options.setdefault("which", self.checkpoint)
        options.setdefault("weights", self.weights)
        target = shipped.PREFIX + self.model if self.model else self.path  # a folder called like the model loses
        out, result = evaluate_run(target, n=n, data_dir=self.data_dir, progress=False, **options)
        write_class_chart(out, result)
        return result

    def evaluations(self) -> dict[str, dict]:
        """RUN/eval/<name>.json of `mnistdiff evaluate`, by name."""
        import json

        return {p.stem: json.loads(p.read_text()) for p in sorted((self.path / "eval").glob("*.json"))}


def load(path: str | Path, checkpoint: str = "last", weights: str = "ema", *, runtime: str = "torch",
         data_dir: str | Path | None = None, precision: str = "fp32") -> Run:
    """A run directory (or a checkpoint file inside one), or a shipped model by name ("ddpm-unet";
    `mnistdiff models`), ready to sample. A path that exists wins over a model's name; "shipped:NAME" forces it.

    checkpoint: last, best or prev; weights: ema (where the run kept an average) or raw; runtime:
    torch, openvino or auto (runtime.py); precision: the net's arithmetic, fp32, bf16 or auto (machine.py)."""
    from .sampling import shipped
    from .sampling.load import load_trained

    if checkpoint not in store.CHECKPOINT_NAMES:
        raise UserError(f"unknown checkpoint {checkpoint!r}; choose one of: {', '.join(store.CHECKPOINT_NAMES)}")
    model = shipped.resolve(path)
    if model is None and not Path(path).exists():
        known = shipped.also_known()
        raise UserError(f"{path} does not exist; pass a run directory, a checkpoint file{known}")
    cfg, net, process = load_trained(model or Path(path), checkpoint, weights, runtime=runtime, precision=precision)
    return Run(shipped.folder(path, model), cfg, checkpoint, weights, data_dir, model, net, process)


def train(config: C.Config | str | dict, run: str | Path | None = None, *, resume: bool = False,
          data_dir: str | Path | None = None, progress: bool = True, **overrides) -> Run:
    """Train a run and return it loaded (its last checkpoint, EMA weights).

    config: a Config, a preset name ("ddpm-unet"), or a nested dict as in config.json; overrides:
    config fields by name (epochs=1, subset=512, conditional=True). run: the directory (default:
    runs/<preset name>, or runs/run); resume=True continues it from its last checkpoint."""
    from .training import loop as T
    from .hooks import epoch_hooks

    name = config if isinstance(config, str) else "run"
    if isinstance(config, str):
        config = C.preset(config)
    elif isinstance(config, dict):
        config = C.from_dict(config)
    elif not isinstance(config, C.Config):
        raise UserError(f"config must be a Config, a preset name or a dict, not {type(config).__name__}")
    cfg = C.validate(C.apply(config, overrides))
    run = Path(run or f"runs/{name}")
    T.train(cfg, run, resume=resume, data_dir=data_dir, progress=progress, hooks=epoch_hooks(cfg))
    return load(run, data_dir=data_dir)


def fid(a, b="mnist-test", **options) -> dict:
    """FID, KID and the classifier metrics of digits `a` against `b` (default: the 10,000 MNIST test digits).
    Each a uint8 array or tensor (N, 28, 28), a float one with value_range=(black, white), a .npy path, a folder
    of PNGs, or "mnist-test" / "mnist-train" ("mnist-test:2000": its first 2,000). compare.fid's options."""
    from .evaluation.compare import fid as measure

    return measure(a, b, **options)


def to_image(images: torch.Tensor, nrow: int | None = None):
    """A PIL image of the grid (nrow images a row; default: square), which a notebook shows inline."""
    from PIL import Image

    from .files import grid_array

    if not isinstance(images, (torch.Tensor, np.ndarray)) or images.ndim != 3 or len(images) == 0 \
            or tuple(images.shape[1:]) != (28, 28):
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise BadArgument(f"to_image takes images as a uint8 tensor or array (n, 28, 28) with n >= 1, not {shape}")
    if nrow is not None:
        check_int("nrow", nrow, 1, len(images))
    images = torch.as_tensor(images)
    return Image.fromarray(grid_array(images, nrow or math.ceil(math.sqrt(len(images)))), mode="L")
