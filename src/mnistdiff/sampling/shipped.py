"""The models shipped with mnistdiff (`mnistdiff models`): weights-only files in mnistdiff/assets/models/, each with
a card, NAME.json, saying what it is, how to sample it and what was measured on it. They sample by name, with no
training and no download.

What a name means, everywhere a run is taken (`sample`, `mnistdiff.load`): a path that exists (a run directory or
a checkpoint file) is that path; otherwise the name of a shipped model is that model; "shipped:NAME" always means
the model, even beside a folder called NAME.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from .. import config as C
from ..errors import UserError
from ..training import checkpoint
from ..training.checkpoint import store

MODELS = Path(__file__).resolve().parent.parent / "assets" / "models"
PREFIX = "shipped:"
# What the card may set for `sample` when the user leaves it unset: the sampler, its options, the start and
# its options, and the guidance weight (used only where digits are asked for).
SAMPLING_KEYS = ("sampler", "sampler_options", "start", "start_options", "guidance")


def names() -> list[str]:
    """The shipped models, by name: each has its weights and its card."""
    if not MODELS.is_dir():
        return []
    return sorted(p.stem for p in MODELS.glob("*.safetensors") if p.with_suffix(".json").is_file())


def also_known() -> str:
    """The end of a "does not exist" message: the shipped names a user may have meant."""
    return f", or a shipped model ({', '.join(names())})" if names() else ""


def resolve(target) -> str | None:
    """The shipped model `target` names, or None when it is a path (existing or not: the caller says which)."""
    text = str(target)
    if text.startswith(PREFIX):
        name = text[len(PREFIX):]
        if name not in names():
            raise UserError(f"no shipped model {name!r}; choose one of: {', '.join(names()) or 'none installed'} "
                            "(`mnistdiff models` lists them)")
        return name
    path = Path(text)
    if path.exists() or path.is_symlink() or text not in names():
        return None
    return text


def weights(name: str) -> Path:
    return MODELS / f"{name}.safetensors"


def card(name: str) -> dict:
    """What NAME.json says: the model, its training, its sampling defaults, and the metrics measured on it."""
    return json.loads((MODELS / f"{name}.json").read_text())


def priors(name: str) -> Path:
    """The fitted starts shipped with a model (its card's gmm start: processes/starts.py's cache files), so it
    samples without the MNIST training digits."""
    return MODELS / f"{name}.priors"


def folder(target, name: str | None) -> Path:
    """Where sampling and evaluation write (samples/, eval/, figures/, a fitted start's priors/): a run's own
    folder, or for a shipped model shipped/NAME/ in the working directory, laid out as a run (the package is
    read-only), its priors/ seeded with the model's shipped fits."""
    if name is not None:
        out = Path("shipped") / name
        for fit in sorted(priors(name).glob("*.json")):
            if not (out / "priors" / fit.name).is_file():
                try:
                    (out / "priors").mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(fit, out / "priors" / fit.name)
                except OSError:  # a read-only working directory: the caller says so in one line when it writes
                    break
        return out
    target = Path(target)
    return target if target.is_dir() else target.parent.parent


def sampling_defaults(name: str | None) -> dict:
    """The card's sampling settings (SAMPLING_KEYS), {} for a run."""
    if name is None:
        return {}
    given = card(name).get("sampling", {})
    return {k: given[k] for k in SAMPLING_KEYS if k in given}


def fill(defaults: dict, *, sampler, sampler_options, start, start_options, guidance, digits) -> dict:
    """The settings a sampling call uses: each one the user left unset (None) taken from `defaults`. The
    card's sampler options apply only to its own sampler, and its guidance only where digits are asked for."""
    own_sampler = sampler is None or sampler == defaults.get("sampler")
    options = {**(defaults.get("sampler_options", {}) if own_sampler else {}),
               **{k: v for k, v in (sampler_options or {}).items() if v is not None}}
    own_start = start is None or start == defaults.get("start")
    start_opts = {**(defaults.get("start_options", {}) if own_start else {}),
                  **{k: v for k, v in (start_options or {}).items() if v is not None}}
    if guidance is None:
        guidance = defaults.get("guidance", 0.0) if digits is not None else 0.0
    return dict(sampler=sampler or defaults.get("sampler"), sampler_options=options or None,
                start=start or defaults.get("start"), start_options=start_opts or None, guidance=guidance)


def export(run, out: str | Path, *, which: str = "last", weights_kind: str = "ema") -> Path:
    """A run's trained net as one weights-only file (the EMA weights where the run kept them): the model, its
    config and a SHA-256, no optimiser state. The config loses what only the training machine chose (threads,
    compilation), so the file samples anywhere with this machine's defaults."""
    run = Path(run)
    path = store.checkpoint_path(run, which) if run.is_dir() else run
    tensors, cfg_dict, _ = checkpoint.load(path)
    has_ema = any(k.startswith(checkpoint.EMA_PREFIX) for k in tensors)
    prefix = checkpoint.EMA_PREFIX if weights_kind == "ema" and has_ema else "model/"
    model = {"model/" + k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    cfg = C.from_dict(cfg_dict)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, threads=0, compile=False))
    out = Path(out)
    if out.exists():
        raise UserError(f"{out} already exists; pass another path (nothing was overwritten)")
    checkpoint.save(out, tensors=model, config=cfg.to_dict(), state={}, format=checkpoint.WEIGHTS_FORMAT)
    return out
