"""One typed config (model / process / train), named presets, validation, (de)serialisation.

The resolved config is written to every run directory and every checkpoint, so `sample` and
`evaluate` rebuild everything from a checkpoint alone. Unknown keys are errors, never ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .presets import PRESETS


@dataclass
class ModelConfig:
    net: str = "cnn"  # network architecture: cnn (the report's) or unet (nets/)
    hidden: tuple[int, ...] = (16, 32, 32, 16)  # cnn: channels of its blocks; unet: channels per level (28, 14, 7 px)
    act: str = "gelu"  # activation: gelu, relu, elu, silu
    attention: bool = False  # unet: self-attention at the lowest resolution
    res_blocks: int = 1  # unet: residual blocks per level, on each side
    conditional: bool = False  # the digit 0-9 (or "no label") is an input, for classifier-free guidance
    scale_shift: bool = False  # unet: the time (and label) embedding scales and shifts each block's normalised features


@dataclass
class ProcessConfig:
    degradation: str = "gaussian"  # gaussian (DDPM) or a cold degradation
    T: int = 1000  # number of timesteps (cold averaging: set by the image size and group)
    schedule: str = "linear"  # beta schedule for gaussian: linear (the report) or cosine
    beta1: float = 1e-4  # first beta of the linear schedule
    beta2: float = 0.02  # last beta of the linear schedule
    prediction: str = "eps"  # what the net predicts: eps (DDPM), x0 (cold diffusion, or DDPM) or v (DDPM)
    loss: str = "mse"  # mse (the report) or l1 (Bansal et al.)
    min_snr: float = 0.0  # gaussian: weight the loss by min(SNR_t, gamma) (Hang et al. 2023), gamma = this; 0: off
    order: str = "random"  # cold averaging: random, outside-in, inside-out
    group: int = 1  # cold averaging: rows/columns per step (must divide 28)
    order_seed: int = 0  # cold averaging: seed of the random order (saved in RUN/degradation.json)
    sigma_data: float = 0.5  # edm: the data's scale in the preconditioning (Karras et al. 2022)
    p_mean: float = -1.2  # edm: mean of log sigma in training
    p_std: float = 1.2  # edm: standard deviation of log sigma in training


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 128
    lr: float = 2e-4
    lr_warmup: int = 0  # steps of linear learning-rate warm-up from 0
    lr_decay: str = "constant"  # after warm-up: constant, or cosine to 0 at the last step
    grad_clip: float = 0.0  # clip the gradient's global norm to this (0: off)
    ema_decay: float = 0.0  # EMA of the weights, used for samples and metrics (0: off; e.g. 0.999)
    label_dropout: float = 0.1  # conditional: share of each batch trained with "no label" (Ho & Salimans 2022)
    seed: int = 0
    subset: int = 0  # train on this many images (deterministic with the seed); 0 = all 60,000
    sample_epochs: tuple[int, ...] = (1, 20, 40, 60)  # epochs whose grid and snapshot are kept (the last always)
    checkpoint_every: int = 0  # also checkpoint every this many steps inside an epoch (0: epoch ends only)
    precision: str = "auto"  # fp32, bf16 (autocast, fp32 master weights), or auto: bf16 where native (machine.py)
    threads: int = 0  # torch CPU threads (0: torch's default)
    # Speed levers (training/optim.py); defaults follow benchmarks/results.md: off where they did not pay.
    channels_last: bool = False  # NHWC layout for the convolutions
    adam: str = "for-loop"  # Adam implementation: for-loop (torch's CPU default), foreach or fused
    compile: bool = False  # torch.compile the net (needs a C++ compiler; first steps compile)
    # Per-epoch evaluation (evaluate.py): samples of the run's default sampler against real test digits.
    eval_every: int = 0  # evaluate every this many epochs, and at the last (0: off)
    n_eval: int = 1000  # generated digits per evaluation
    eval_metrics: str = "all"  # all (Inception FID/KID + classifier) or classifier (about 100x cheaper)
    eval_ref: int = 10000  # real test digits on the reference side (Inception features cached on disk)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    process: ProcessConfig = field(default_factory=ProcessConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def saved(self) -> dict:
        """to_dict() as written into config.json and checkpoints: without the fields of a feature the run
        does not use (INTRODUCED_WITH), so an unconditional DDPM's files keep the bytes they had before
        those features existed; from_dict() restores their defaults."""
        full, d = self.to_dict(), self.to_dict()
        for name, (section, key, value) in INTRODUCED_WITH.items():
            if full[section][key] != value:
                d[FIELD_SECTION[name]].pop(name)
        return d

    def to_json(self) -> str:
        return json.dumps(self.saved(), indent=2, sort_keys=True)


SECTIONS = {"model": ModelConfig, "process": ProcessConfig, "train": TrainConfig}
# Field name -> section; names are unique across sections, so CLI flags can be flat (--lr, --T).
FIELD_SECTION = {f.name: s for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}


@functools.cache
def choices() -> dict[str, tuple[str, ...]]:
    """The allowed values of each choice field, read from the registry that implements them (so a new
    process, schedule or net is one registry entry). Imported on first use: the registries need torch."""
    from .processes import cold, losses, predictions, schedules
    from . import nets, processes
    from .training import optim

    return {
        "net": tuple(nets.NETS),
        "act": tuple(nets.ACTIVATIONS),
        "degradation": tuple(processes.PROCESSES),
        "schedule": tuple(schedules.SCHEDULES),
        "prediction": predictions.PREDICTIONS,
        "lr_decay": optim.LR_DECAYS,
        "loss": tuple(losses.NORMS),
        "order": tuple(cold.ORDERS),
        "precision": ("auto", "fp32", "bf16"),
        "adam": optim.ADAM_IMPLEMENTATIONS,
        "eval_metrics": ("all", "classifier"),
    }


def __getattr__(name: str):
    if name == "CHOICES":  # C.CHOICES reads as a constant, computed on first use
        return choices()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache  # read once: every parser and every config load asks
def field_help() -> dict[str, str]:
    """Each field's trailing `# comment` in this file: the one description of a setting, shown by --help."""
    import inspect
    import re

    out = {}
    for cls in SECTIONS.values():
        for line in inspect.getsource(cls).splitlines():
            m = re.match(r"\s+(\w+): [^#]+#\s*(.+)", line)
            if m:
                out[m.group(1)] = m.group(2)
    return out


@functools.cache
def field_type(name: str):
    cls = SECTIONS[FIELD_SECTION[name]]
    return typing.get_type_hints(cls)[name]


def parse_value(name: str, value):
    """Coerce a CLI string or a JSON/TOML value to the field's type, with a one-line error."""
    typ = field_type(name)
    try:
        if typ == tuple[int, ...]:  # typing builds a new alias object each time: compare, not `is`
            if isinstance(value, str):
                value = [v for v in value.replace(" ", "").split(",") if v]
            return tuple(int(v) for v in value)
        if typ is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):  # bool(None), bool([]) or bool(7) would pass any value as a switch
                raise ValueError
            return value
        if typ is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        if typ is int and isinstance(value, str):
            return int(float(value)) if "e" in value.lower() else int(value)
        return typ(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{name}={value!r} is not a valid {getattr(typ, '__name__', typ)}; "
                        f"see `mnistdiff train --help`") from None


# Fields added after checkpoints were first written, with the (section, field, value) they arrived with
# (Config.saved() leaves them out of the files of runs that do not use that value).
# A checkpoint without them predates that value, so it cannot use it, and their defaults change nothing;
# one that has the value must carry the fields (checkpoint/validate.py refuses it otherwise).
INTRODUCED_WITH = {"conditional": ("model", "conditional", True),
                   "scale_shift": ("model", "scale_shift", True),
                   "label_dropout": ("model", "conditional", True),
                   "sigma_data": ("process", "degradation", "edm"),
                   "p_mean": ("process", "degradation", "edm"),
                   "p_std": ("process", "degradation", "edm")}


def apply(cfg: Config, overrides: dict) -> Config:
    """A copy of cfg with flat {field: value} overrides applied; unknown fields are errors."""
    out = from_dict(cfg.to_dict())
    for name, value in overrides.items():
        if name not in FIELD_SECTION:
            raise UserError(f"unknown config key {name!r}; valid keys: {', '.join(sorted(FIELD_SECTION))}")
        setattr(getattr(out, FIELD_SECTION[name]), name, parse_value(name, value))
    return out


def from_dict(d: dict) -> Config:
    """Nested {section: {field: value}} (as saved in config.json) -> Config; unknown keys are errors."""
    if not isinstance(d, dict):
        raise UserError("a config must be a mapping of sections (model, process, train)")
    cfg = Config()
    for section, values in d.items():
        if section not in SECTIONS:
            raise UserError(f"unknown config section {section!r}; valid sections: {', '.join(SECTIONS)}")
        if not isinstance(values, dict):
            raise UserError(f"config section {section!r} must be a table of keys")
        for name, value in values.items():
            if FIELD_SECTION.get(name) != section:
                valid = ", ".join(f.name for f in dataclasses.fields(SECTIONS[section]))
                raise UserError(f"unknown config key {section}.{name}; valid keys in {section}: {valid}")
            setattr(getattr(cfg, section), name, parse_value(name, value))
    return cfg


def load_file(path: str | Path) -> dict:
    """Read a config file (.json or .toml) as a nested dict; sections may also be given flat."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():  # a FIFO would block
            raise UserError(f"config file {path} is not a regular file")
        text = path.read_text()
    except OSError as e:
        raise UserError(f"cannot read config file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"config file {path} is not UTF-8 text") from None
    try:
        d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"config file {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {e}") from None
    return d


def merge_file(cfg: Config, d: dict) -> Config:
    """Apply a config file: nested sections, or flat keys, or both."""
    flat = {}
    for key, value in d.items():
        if key in SECTIONS and isinstance(value, dict):
            for name, v in value.items():
                if FIELD_SECTION.get(name) != key:
                    raise UserError(f"unknown config key {key}.{name} in config file")
                flat[name] = v
        else:
            flat[key] = value
    return apply(cfg, flat)


# What a resume may change: how long the run trains, and its precision (a run moved to a CPU without native
# bf16 continues in fp32 rather than 15x slower; from that step on it is no longer bit-identical to an
# uninterrupted run, and metrics.jsonl says so).
RESUMABLE = ("epochs", "precision")


def without_resumable(cfg: "Config") -> dict:
    """The config as a dict, less what a resume may change: what every checkpoint of one run shares."""
    d = cfg.to_dict()
    for name in RESUMABLE:
        d[FIELD_SECTION[name]].pop(name)
    return d


MAX_EVAL = 100_000  # samples per evaluation, as `mnistdiff evaluate -n` (generate.MAX_SAMPLES)


def validate(cfg: Config) -> Config:
    """Refuse impossible values with a message that says how to fix them."""
    m, p, t = cfg.model, cfg.process, cfg.train
    for name, allowed in choices().items():
        value = getattr(getattr(cfg, FIELD_SECTION[name]), name)
        if value not in allowed:
            raise UserError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")
    if not m.hidden or any(not 0 < h <= 4096 for h in m.hidden):
        raise UserError(f"hidden={','.join(map(str, m.hidden)) or '(empty)'} must list channel counts "
                        "from 1 to 4096, e.g. --hidden 16,32,32,16")
    if m.net == "unet":
        from .nets import MAX_LEVELS

        if len(m.hidden) > MAX_LEVELS:
            raise UserError(f"a unet has at most {MAX_LEVELS} levels (28, 14, 7 pixels), got hidden="
                            f"{','.join(map(str, m.hidden))}; e.g. --hidden 32,64,64")
        if not 1 <= m.res_blocks <= 8:
            raise UserError(f"res_blocks={m.res_blocks} must be between 1 and 8, e.g. --res-blocks 2")
    elif m.attention or m.res_blocks != 1 or m.scale_shift:
        raise UserError("attention, res_blocks and scale_shift are unet settings; pass --net unet or leave them at "
                        "their defaults")
    if not 1 <= p.T <= 100_000:
        raise UserError(f"T={p.T} must be between 1 and 100000 (the report uses --T 1000)")
    if not (0 < p.beta1 < 1 and 0 < p.beta2 < 1):
        raise UserError(f"betas ({p.beta1}, {p.beta2}) must lie in (0, 1), e.g. --beta1 1e-4 --beta2 0.02")
    if p.beta1 >= p.beta2:
        raise UserError(f"beta1={p.beta1} must be smaller than beta2={p.beta2}")
    if not 0 <= p.order_seed < 2 ** 32 or not 0 <= t.seed < 2 ** 32:  # seeds are scaled and offset below 2**63
        raise UserError(f"seed={t.seed} and order_seed={p.order_seed} must lie in [0, 2**32), e.g. --seed 1")
    if p.group < 1 or 28 % p.group:
        raise UserError(f"group={p.group} must divide 28 (1, 2, 4, 7, 14 or 28)")
    from .processes import process_class  # lazily: config stays importable without torch

    cls = process_class(p.degradation)
    if not cls.stochastic and p.prediction != "x0":
        raise UserError(f"{p.degradation} is a cold (deterministic) degradation: the net must restore x0; "
                        "pass --prediction x0")
    if not 0 <= p.min_snr <= 1e6 or (p.min_snr and not cls.stochastic):
        raise UserError(f"min_snr={p.min_snr} must lie in [0, 1e6] (e.g. --min-snr 5) and is for a stochastic "
                        "(noise) process only")
    cls.check_config(p)
    if not 0 < t.lr <= 1e30:  # Adam's step must fit a float32 (--lr 1e300 overflowed inside the optimizer)
        raise UserError(f"lr={t.lr} must be positive and finite (at most 1e30), e.g. --lr 2e-4")
    if not 0 <= t.label_dropout <= 1:
        raise UserError(f"label_dropout={t.label_dropout} must lie in [0, 1], e.g. --label-dropout 0.1")
    if not 0 <= t.ema_decay < 1:
        raise UserError(f"ema_decay={t.ema_decay} must lie in [0, 1) (0: off), e.g. --ema-decay 0.999")
    if t.lr_warmup < 0 or not 0 <= t.grad_clip < float("inf"):
        raise UserError(f"lr_warmup={t.lr_warmup} and grad_clip={t.grad_clip} must be >= 0 and finite "
                        "(0: off), e.g. --lr-warmup 200 --grad-clip 1")
    if not 0 < t.batch_size <= 65_536:
        raise UserError(f"batch_size={t.batch_size} must be between 1 and 65536, e.g. --batch-size 128")
    if not 1 <= t.epochs <= 1_000_000:
        raise UserError(f"epochs={t.epochs} must be between 1 and 1000000")
    if not 0 <= t.subset <= 60_000:
        raise UserError(f"subset={t.subset} must be 0 (all images) or a count up to the 60000 training images")
    from .machine import MAX_THREADS

    if not 0 <= t.threads <= MAX_THREADS:
        raise UserError(f"threads={t.threads} must lie in [0, {MAX_THREADS}] (0: torch's default; more than this "
                        "machine's cores are not started), e.g. --threads 2")
    if not 0 <= t.checkpoint_every <= 10 ** 9:
        raise UserError(f"checkpoint_every={t.checkpoint_every} must lie in [0, 1e9] (0: at epoch ends only)")
    if not 0 <= t.eval_every <= 1_000_000 or not 10 <= t.n_eval <= MAX_EVAL or not 10 <= t.eval_ref <= 10000:
        raise UserError(f"eval_every={t.eval_every} must lie in [0, 1000000], n_eval={t.n_eval} in [10, {MAX_EVAL}] "
                        f"and eval_ref={t.eval_ref} in [10, 10000] (the MNIST test set), e.g. --eval-every 5")
    if len(t.sample_epochs) > 10_000 or any(not 1 <= e <= 1_000_000 for e in t.sample_epochs):
        raise UserError("sample_epochs must list at most 10000 epochs, each from 1 to 1000000, e.g. "
                        "--sample-epochs 1,20,40")
    return cfg


def preset(name: str) -> Config:
    """The Config of a named preset (presets.py)."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; `mnistdiff presets` lists them: {', '.join(PRESETS)}")
    return apply(Config(), PRESETS[name][1])
