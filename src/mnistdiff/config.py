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


@dataclass
class ModelConfig:
    net: str = "cnn"  # network architecture: cnn (the report's) or unet (nets.py)
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
    precision: str = "auto"  # fp32, bf16 (autocast, fp32 master weights), or auto: bf16 where native (perf.py)
    threads: int = 0  # torch CPU threads (0: torch's default)
    # Speed levers (perf.py); defaults follow benchmarks/results.md: off where they did not pay.
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
    from . import losses, nets, perf, predictions, processes, schedules

    return {
        "net": tuple(nets.NETS),
        "act": tuple(nets.ACTIVATIONS),
        "degradation": tuple(processes.PROCESSES),
        "schedule": tuple(schedules.SCHEDULES),
        "prediction": predictions.PREDICTIONS,
        "lr_decay": schedules.LR_DECAYS,
        "loss": tuple(losses.NORMS),
        "order": tuple(schedules.ORDERS),
        "precision": ("auto", "fp32", "bf16"),
        "adam": perf.ADAM_IMPLEMENTATIONS,
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
# one that has the value must carry the fields (checkpoint_check refuses it otherwise).
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


MAX_EVAL = 100_000  # samples per evaluation, as `mnistdiff evaluate -n` (sample.MAX_SAMPLES)


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
    from .perf import MAX_THREADS

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


# -- presets ---------------------------------------------------------------------------------------

def _preset(doc: str, **overrides) -> tuple[str, dict]:
    return doc, overrides


_UNET = dict(net="unet", hidden=(16, 32, 64), attention=True, act="silu", ema_decay=0.999, lr=1e-3,
             lr_warmup=200, lr_decay="cosine", grad_clip=1.0)
# The UNet at batch 32 (ddpm-unet's and cold-row-unet's): four times batch 128's optimiser steps per epoch, at a
# doubled rate with warm-up over the first 800 steps (25,600 images).
_UNET_BS32 = {**_UNET, "lr": 2e-3, "lr_warmup": 800, "batch_size": 32}

PRESETS: dict[str, tuple[str, dict]] = {
    "ddpm-default": _preset("The report's Table 1.1: DDPM, linear betas (1e-4, 0.02), T=1000, lr 2e-4, "
                            "CNN (16,32,32,16), batch 128, GELU, 100 epochs"),
    "ddpm-testing2": _preset("The report's Table 1.2 ('testing2'): as ddpm-default with T=1500 and lr 4e-4",
                             T=1500, lr=4e-4),
    "quick": _preset("The seed's DDPM and CNN (T=1000) sized for `make run`: 2 epochs on a 25,000-image "
                     "subset at lr 1e-3: minutes on a 2-core CPU, and no digits yet",
                     epochs=2, lr=1e-3, subset=25000, sample_epochs=(1,)),
    # Cold diffusion (the report's Chapter 2 and Appendix): the net restores x0; T = 28 / group.
    "cold-row-random": _preset("The report's Table 2.1: row averaging, random order, T=28, lr 2e-4, "
                               "CNN (16,32,32,16), batch 128, GELU, MSE, 80 epochs",
                               degradation="row-averaging", T=28, prediction="x0", epochs=80),
    "cold-col-random": _preset("Column averaging, random order, T=28, 60 epochs (the report's Fig 3.3)",
                               degradation="column-averaging", T=28, prediction="x0", epochs=60),
    "cold-row-random-g4": _preset("Row averaging in bands of 4 rows, random order, T=7, 80 epochs "
                                  "(the report's Fig 3.2, Table 3.2)",
                                  degradation="row-averaging", group=4, T=7, prediction="x0", epochs=80),
    "cold-col-random-g4": _preset("Column averaging in bands of 4 columns, random order, T=7, 60 epochs "
                                  "(the report's Fig 3.1, Table 3.1)",
                                  degradation="column-averaging", group=4, T=7, prediction="x0", epochs=60),
    "cold-row-outside-in": _preset("As cold-row-random with rows averaged edges first (1, 28, 2, 27, ...)",
                                   degradation="row-averaging", order="outside-in", T=28, prediction="x0",
                                   epochs=80),
    "cold-row-inside-out": _preset("As cold-row-random with rows averaged centre first (14, 15, 13, 16, ...)",
                                   degradation="row-averaging", order="inside-out", T=28, prediction="x0",
                                   epochs=80),
    "cold-col-outside-in": _preset("As cold-col-random with columns averaged edges first",
                                   degradation="column-averaging", order="outside-in", T=28, prediction="x0",
                                   epochs=60),
    "cold-col-inside-out": _preset("As cold-col-random with columns averaged centre first",
                                   degradation="column-averaging", order="inside-out", T=28, prediction="x0",
                                   epochs=60),
    # Beyond the report: a small UNet with the training options quality needs. Why each choice (v-prediction
    # on the cosine schedule, batch 32 at lr 2e-3, class-conditional, 20 epochs) is in docs/quality.md, with the
    # results files that measured it.
    "ddpm-unet": _preset("DDPM with a UNet (16,32,64 channels at 28/14/7 px, attention at 7x7, SiLU), cosine "
                         "schedule T=1000, v-prediction, class-conditional (label dropout 0.1), EMA 0.999, batch 32 "
                         "at lr 2e-3 with 800 warm-up steps and cosine decay, gradient clipping at 1, 20 epochs "
                         "(~36 min in bf16 on a 2-core AVX512-BF16 CPU; about 2 hours in fp32 on a 2-core AVX2 one, "
                         "where --epochs 8 fits the hour); sample with --sampler ddim --steps 50 --clip --digit all "
                         "--guidance W",
                         **_UNET_BS32, prediction="v", schedule="cosine", conditional=True, epochs=20,
                         sample_epochs=(1, 10)),
    # Chosen by results/ablations/quality-ablation.md: at this budget EDM draws cleaner backgrounds than DDPM
    # (docs/quality.md), centring training on higher noise (p_mean -0.4) gave the best-formed digits, and
    # the digit as an input with guidance 1 is what lifts the classifier's IS past 8.5 after one epoch
    # (5.74 for row edm-pmean): unconditional, it still draws many scribbles. Batch 32 at lr 2e-3 takes
    # 4x the optimiser steps of batch 128 in the same epoch (at 0.82x the images/s): the background haze
    # fell from 3.92 to 2.62 grey levels (results/probes/background-probe-*.md, 500 samples at w = 1), KID from
    # 0.115 to 0.039 (results/quick-unet.md).
    "quick-unet": _preset("`make run`'s preset: the ddpm-unet's UNet and options for 1 epoch (60,000 images in "
                          "1,875 steps of 32 at lr 2e-3, 400 warm-up steps, cosine decay over the epoch) in the EDM "
                          "formulation (Karras et al. 2022) with log sigma ~ N(-0.4, 1.4^2), class-conditional "
                          "(label dropout 0.1); sample with Heun, 18 sigmas, --digit all --guidance 1",
                          **{**_UNET, "lr": 2e-3, "lr_warmup": 400}, batch_size=32, degradation="edm", prediction="x0",
                          p_mean=-0.4, p_std=1.4, conditional=True, epochs=1, sample_epochs=()),
    # Class-conditional: the digit is an input, dropped for 10% of each batch, so one net samples a given digit
    # with classifier-free guidance (Ho & Salimans 2022). results/conditional.md.
    "ddpm-unet-cond": _preset("The class-conditional DDPM of results/conditional.md: the ddpm-unet's UNet at "
                              "batch 128 and lr 1e-3 for 6 epochs, v-prediction, cosine schedule, no min-SNR; label "
                              "dropout 0.1; sample with --sampler ddim --steps 50 --digit D --guidance W",
                              **_UNET, conditional=True, prediction="v", schedule="cosine", epochs=6,
                              sample_epochs=(1, 3)),
    "ddpm-default-cond": _preset("The report's CNN and Table 1.1 hyperparameters, class-conditional (label dropout "
                                 "0.1), 15 epochs: what fits the ddpm-unet's hour at the CNN's ~300 images/s",
                                 conditional=True, epochs=15, sample_epochs=(1, 5, 10)),
    # Batch 32 at lr 2e-3 with 800 warm-up steps, as ddpm-unet (was batch 128 at 1e-3 for 4 epochs, FID 90.7 at
    # 2k vs 2k): four times the optimiser steps per epoch; 6 epochs took 34.6 min and give FID 79.5 on 10k vs 10k
    # (results/archive/cold-row-unet.md). More epochs were not tried: the epoch grids say the GMM start bounds it.
    "cold-row-unet": _preset("Cold diffusion (row averaging, random order, T=28) with the ddpm-unet's UNet and "
                             "training options (batch 32 at lr 2e-3, 800 warm-up steps), L1 loss (Bansal et al.), "
                             "6 epochs",
                             **_UNET_BS32, degradation="row-averaging", T=28, prediction="x0", loss="l1", epochs=6,
                             sample_epochs=(1, 3)),
    "cold-blur": _preset("Bansal et al.'s Gaussian blur towards the mean image, T=20, L1 loss, 80 epochs",
                         degradation="blur", T=20, prediction="x0", loss="l1", epochs=80),
}


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; `mnistdiff presets` lists them: {', '.join(PRESETS)}")
    return apply(Config(), PRESETS[name][1])
