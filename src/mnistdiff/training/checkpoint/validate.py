"""Everything a checkpoint carries, checked before any of it is used: by resume, sample and evaluate alike.

checkpoint.load calls check() on every file it reads, after the SHA-256. What a checkpoint must hold
is not written down here but rebuilt from its own config: the tensor names, shapes and dtypes of a
freshly built net (on the meta device: no memory, no RNG draws), the param_groups of a freshly built
optimizer, the sizes of this torch's RNG states. Every field of the state JSON has a rule in
STATE_RULES and a key without one is refused, so a field added to train.State fails every load (and
the test suite) until it is given a rule: validated by construction, not by remembering.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import torch

from ... import config as C
from ...errors import CorruptCheckpoint, UserError
from .. import optim
from ..ema import EMA_PREFIX

ADAM_KEYS = {"exp_avg": "param", "exp_avg_sq": "param", "max_exp_avg_sq": "param", "step": "scalar"}
UINT32 = 2 ** 32


class Bad(Exception):
    """One thing wrong with a checkpoint's contents (turned into a CorruptCheckpoint naming the file)."""


def check(path: Path, tensors: dict[str, torch.Tensor], config: dict, state: dict) -> C.Config:
    """The checkpoint's validated Config; raises CorruptCheckpoint saying what is wrong."""
    try:
        cfg = _config(config)
        net = _expected_net(cfg)
        _tensors(tensors, net, cfg)
        _state(state, cfg, net, tensors)
    except Bad as e:
        raise CorruptCheckpoint(f"checkpoint {path} {e}; delete it, or sample with --checkpoint prev") from None
    return cfg


def check_weights(path: Path, tensors: dict[str, torch.Tensor], config: dict, state: dict) -> C.Config:
    """A weights-only file (format.WEIGHTS_FORMAT): a valid config, an empty state, and exactly the net's tensors
    under "model/", each of the net's dtype and shape and finite."""
    try:
        cfg = _config(config)
        if state != {}:
            raise Bad("is a weights-only file with a training state; it was not written by mnistdiff")
        weights = _expected_net(cfg).state_dict()
        for name, t in tensors.items():
            want = weights.get(name[len("model/"):]) if name.startswith("model/") else None
            if want is None:
                raise Bad(f"holds a tensor {name!r} that a {cfg.model.net} with this config does not have")
            _tensor(name, t, want)
        missing = [k for k in weights if "model/" + k not in tensors]
        if missing:
            raise Bad(f"lacks {len(missing)} tensor(s) this config needs, e.g. model/{missing[0]}")
    except Bad as e:
        raise CorruptCheckpoint(f"model file {path} {e}; reinstall mnistdiff or write it again") from None
    return cfg


def matches_run(config: dict, run: Path, path: Path) -> None:
    """Refuse a checkpoint whose config differs from RUN/config.json (but for what a resume may change)."""
    def resumable(d: dict) -> dict:
        return {f"{s}.{k}": v for s, values in C.without_resumable(C.from_dict(d)).items() for k, v in values.items()}

    mine, theirs = resumable(config), resumable(C.load_file(Path(run) / "config.json"))
    diff = [k for k in mine if mine[k] != theirs[k]]
    if diff:
        k = diff[0]
        raise UserError(f"checkpoint {path} was made with a different configuration than {run}/config.json "
                        f"({k} is {mine[k]!r} there, {theirs[k]!r} in config.json); use the run's own "
                        "checkpoints, or resume with the run's own config (only --epochs and --precision may change)")


# -- config and tensors ----------------------------------------------------------------------------

def _config(config) -> C.Config:
    if not isinstance(config, dict):
        raise Bad("has a config that is not a mapping")
    want = C.Config().to_dict()
    for section, fields in want.items():
        got = config.get(section)
        later = {f for f in set(fields) - set(got or {}) if _predates(config, f)}
        if not isinstance(got, dict) or set(got) | later != set(fields):
            missing = sorted(set(fields) - set(got or {}) - later) if isinstance(got, dict) else [section]
            raise Bad(f"has an incomplete config (section {section}: missing {', '.join(missing) or 'nothing'}, "
                      f"or unknown keys)")
    try:
        return C.validate(C.from_dict(config))
    except UserError as e:
        raise Bad(f"carries an invalid config ({e})") from None


def _predates(config: dict, field: str) -> bool:
    """Whether a missing field is one added later, in a checkpoint made before the value it came with."""
    if field not in C.INTRODUCED_WITH:
        return False
    section, key, value = C.INTRODUCED_WITH[field]
    got = config.get(section)
    return isinstance(got, dict) and got.get(key) != value


def _expected_net(cfg: C.Config) -> torch.nn.Module:
    from ... import nets

    with torch.device("meta"):
        return nets.build(cfg.model)


def _tensors(tensors: dict, net: torch.nn.Module, cfg: C.Config) -> None:
    weights = {k: v for k, v in net.state_dict().items()}
    params = [p for p in net.parameters()]
    rng = {"rng/torch": torch.get_rng_state(), "rng/train": torch.Generator().get_state()}
    prefixes = ("model/", EMA_PREFIX) if cfg.train.ema_decay else ("model/",)
    for name, t in tensors.items():
        if name in rng:
            want = rng[name]
        elif any(name.startswith(p) and name[len(p):] in weights for p in prefixes):
            want = weights[name.split("/", 1)[1]]
        elif name.startswith("optim/"):
            want = _adam_tensor(name, params)
        else:
            raise Bad(f"holds a tensor {name!r} that a {cfg.model.net} with this config does not have")
        _tensor(name, t, want)
    for name in rng:  # torch's own check of a generator state, on a scratch generator
        if name in tensors:
            try:
                torch.Generator().set_state(tensors[name])
            except (RuntimeError, ValueError, TypeError) as e:
                raise Bad(f"holds an RNG state {name} that torch refuses ({' '.join(str(e).split())[:120]})") from None
    required = [p + k for p in prefixes for k in weights] + list(rng)
    missing = [k for k in required if k not in tensors]
    if missing:
        raise Bad(f"lacks {len(missing)} tensor(s) this config needs, e.g. {missing[0]}")


def _tensor(name: str, t: torch.Tensor, want: torch.Tensor) -> None:
    if t.dtype != want.dtype or t.shape != want.shape:
        raise Bad(f"holds {name} as {t.dtype} {tuple(t.shape)}, expected {want.dtype} {tuple(want.shape)}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise Bad(f"has non-finite values in {name} ({bad} of {t.numel()}): the weights diverged or the "
                  "file was damaged")


def _adam_tensor(name: str, params: list) -> torch.Tensor:
    parts = name.split("/")
    if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(params) or parts[2] not in ADAM_KEYS:
        raise Bad(f"holds an optimizer tensor {name!r} that Adam over {len(params)} parameters does not have")
    p = params[int(parts[1])]
    return torch.empty(p.shape if ADAM_KEYS[parts[2]] == "param" else (), dtype=p.dtype, device="meta")


# -- the state JSON --------------------------------------------------------------------------------

def _count(value, name, ctx) -> None:
    if type(value) is not int or value < 0:
        raise Bad(f"has {name}={value!r} in its state, not a count >= 0")


def _finite(value, name, ctx) -> None:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise Bad(f"has {name}={value!r} in its state, not a finite number")


def _loss_or_inf(value, name, ctx) -> None:  # best_loss starts at +inf
    if type(value) not in (int, float) or math.isnan(value) or value == -math.inf:
        raise Bad(f"has {name}={value!r} in its state, not a loss (a number or +inf)")


def _optimizer(value, name, ctx) -> None:

    if not isinstance(value, dict) or set(value) != {"param_groups", "scalars"}:
        raise Bad("has an optimizer state that is not {param_groups, scalars}")
    # What the training loop's own optimizer would write, the params and lr apart (lr follows the schedule).
    fresh = optim.optimizer(torch.nn.Linear(1, 1), ctx["cfg"].train).state_dict()["param_groups"]
    fresh = json.loads(json.dumps(fresh))
    groups = value["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(fresh):
        raise Bad(f"has {len(groups) if isinstance(groups, list) else 'no list of'} optimizer param_groups, "
                  f"expected {len(fresh)}")
    n = len(ctx["params"])
    for group, want in zip(groups, fresh):
        if not isinstance(group, dict) or set(group) != set(want):
            raise Bad("has an optimizer param_group with missing or unknown keys")
        if group["params"] != list(range(n)):
            raise Bad(f"has optimizer params that are not the net's {n} parameters in order")
        lr = group["lr"]
        if type(lr) not in (int, float) or not math.isfinite(lr) or lr < 0:
            raise Bad(f"has an optimizer learning rate {lr!r}, not a finite number >= 0")
        for key in set(want) - {"params", "lr"}:
            if group[key] != want[key] or type(group[key]) is not type(want[key]):
                raise Bad(f"has optimizer {key}={group[key]!r} where this config's Adam has {want[key]!r}")
    scalars = value["scalars"]
    if not isinstance(scalars, dict):
        raise Bad("has optimizer scalars that are not a mapping")
    for key, v in scalars.items():
        idx, _, field = key.partition("/")
        if not idx.isdigit() or int(idx) >= n or field not in ADAM_KEYS:
            raise Bad(f"has an optimizer scalar {key!r} that Adam over {n} parameters does not have")
        _finite(v, f"optimizer scalar {key}", ctx)
    for idx in range(n):  # each parameter's state: complete or absent, with Adam's step = the step counter
        have = {k for k in ADAM_KEYS if f"optim/{idx}/{k}" in ctx["tensors"] or f"{idx}/{k}" in scalars}
        if have and not {"exp_avg", "exp_avg_sq", "step"} <= have:
            raise Bad(f"has an incomplete optimizer state for parameter {idx} ({', '.join(sorted(have))})")
        step = ctx["tensors"].get(f"optim/{idx}/step", scalars.get(f"{idx}/step"))
        if step is not None and float(step) != ctx["state"].get("step"):
            raise Bad(f"has Adam step {float(step):g} for parameter {idx} but step counter "
                      f"{ctx['state'].get('step')!r}")
        sq = ctx["tensors"].get(f"optim/{idx}/exp_avg_sq")
        if sq is not None and bool((sq < 0).any()):
            raise Bad(f"has negative values in optim/{idx}/exp_avg_sq, a mean of squares")


def _uint32_list(value, length: int, what: str) -> None:
    if (not isinstance(value, list) or len(value) != length
            or any(type(v) is not int or not 0 <= v < UINT32 for v in value)):
        raise Bad(f"has a {what} RNG key that is not {length} unsigned 32-bit integers")


def _rng(value, name, ctx) -> None:
    if not isinstance(value, dict) or set(value) != {"numpy", "python"}:
        raise Bad("has an RNG state that is not {numpy, python}")
    np_state, py_state = value["numpy"], value["python"]
    if not isinstance(np_state, list) or len(np_state) != 5 or np_state[0] != "MT19937":
        raise Bad("has a numpy RNG state that is not [MT19937, key, pos, has_gauss, cached]")
    _uint32_list(np_state[1], 624, "numpy")
    if type(np_state[2]) is not int or not 0 <= np_state[2] <= 624 or np_state[3] not in (0, 1) \
            or type(np_state[3]) is not int:
        raise Bad(f"has a numpy RNG position {np_state[2]!r} / has_gauss {np_state[3]!r} out of range")
    _finite(np_state[4], "numpy cached gaussian", ctx)
    if not isinstance(py_state, list) or len(py_state) != 3 or py_state[0] != 3 or type(py_state[0]) is not int:
        raise Bad("has a python RNG state that is not [3, internal state, gauss]")
    _uint32_list(py_state[1], 625, "python")
    if not 1 <= py_state[1][-1] <= 624:
        raise Bad(f"has a python RNG position {py_state[1][-1]} outside 1..624")
    if py_state[2] is not None:
        _finite(py_state[2], "python cached gaussian", ctx)
    try:  # and numpy's and python's own checks, on scratch generators
        np.random.RandomState().set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
        random.Random().setstate((py_state[0], tuple(py_state[1]), py_state[2]))
    except (ValueError, TypeError, OverflowError) as e:
        raise Bad(f"has an RNG state that numpy or python refuses ({e})") from None


# One rule per key of the state JSON (train.save_checkpoint: vars(State) + optimizer + rng).
STATE_RULES = {
    "epoch": _count,
    "step": _count,
    "step_in_epoch": _count,
    "epoch_loss_sum": _finite,
    "best_loss": _loss_or_inf,
    "optimizer": _optimizer,
    "rng": _rng,
}


def _state(state, cfg: C.Config, net: torch.nn.Module, tensors: dict) -> None:
    if not isinstance(state, dict):
        raise Bad("has a state that is not a mapping")
    unknown, missing = set(state) - set(STATE_RULES), set(STATE_RULES) - set(state)
    if unknown or missing:
        raise Bad(f"has a state with {'unknown' if unknown else 'missing'} field(s) "
                  f"{', '.join(sorted(unknown or missing))}")
    ctx = {"cfg": cfg, "params": list(net.parameters()), "tensors": tensors, "state": state}
    for key, rule in STATE_RULES.items():
        rule(state[key], key, ctx)
    if state["epoch"] > cfg.train.epochs or state["step_in_epoch"] > state["step"] or state["step"] < state["epoch"]:
        raise Bad(f"has inconsistent counters (epoch {state['epoch']} of {cfg.train.epochs}, step {state['step']}, "
                  f"step_in_epoch {state['step_in_epoch']})")
