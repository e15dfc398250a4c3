"""A trained net rebuilt from a checkpoint alone (its config travels in it), ready to sample: the EMA or raw
weights, on the chosen runtime and precision."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from .. import config as C, files, machine, nets, processes
from ..errors import UserError
from ..training import checkpoint, optim
from . import runtime as RT, shipped
from ..training.checkpoint import validate
from ..training.checkpoint import store

# Rows per net call while sampling (runtime.Chunked): guided DDIM on the quality UNet at the default batch of 500
# (1,000 rows a call) ran 2.6x faster in chunks of 128, with the same uint8 images (benchmarks/results.md, the
# guided sampling row, 2-core AVX512-BF16 Xeon).
NET_ROWS = 128

WEIGHTS = ("ema", "raw")


class NullLabelDefault:
    """A compiled conditional net called without labels gets "no label" for every image, as the torch
    net does with y=None (its unconditional mode): the compiled graph always takes y."""

    runtime = "openvino"

    def __init__(self, compiled):
        self.compiled = compiled

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.compiled(x, t, nets.null_labels(x) if y is None else y)

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self


def runtime_net(net, cfg: C.Config, runtime: str, batch_size: int, *, cache_dir=None):
    """The trained net run by `runtime` (runtime.prepare), compiled or probed on the rows one sampling call
    gives it (min(batch_size, NET_ROWS)); a conditional net's graph takes the labels too."""
    if runtime == "torch":
        return net
    b = max(1, min(batch_size, NET_ROWS))
    m = cfg.model
    name = f"{m.net}-{'-'.join(map(str, m.hidden))}-{m.act}-r{m.res_blocks}{'-attn' if m.attention else ''}" \
           f"{'-cond' if m.conditional else ''}{'-ss' if m.scale_shift else ''}"
    example = (torch.zeros(b, 1, 28, 28), torch.zeros(b))
    if m.conditional:  # the labels are an input of the compiled graph too
        example += (torch.zeros(b, dtype=torch.long),)
    # Quietly: `sample` prints one line per file it writes, and errors must stay one line.
    compiled = RT.prepare(net, example, runtime, name=name, cache_dir=cache_dir, progress=False)
    return NullLabelDefault(compiled) if m.conditional and isinstance(compiled, RT.OpenVINOModule) else compiled


def load_trained(target: str | Path, which: str = "last", weights: str = "ema", *, runtime: str = "torch",
                 cache=None, batch_size: int = 500, precision: str = "fp32"):
    """(cfg, net in eval mode, process) from a run directory, a checkpoint file or a shipped model's name (the
    rule in shipped.py).

    weights: ema takes the EMA weights where the run kept them (ema_decay > 0), else the trained
    ones; raw always the trained ones. The net is returned as the samplers want it (the process's
    sampling_net: eps-predicting for a discrete noise schedule, whatever the run's target), and run
    by `runtime` (runtime.py: torch, openvino, or auto, probed on the rows each call gets), NET_ROWS rows
    at a time. precision bf16 (fp32 or bf16; machine.inference_precision resolves auto) runs it in torch's bf16
    autocast, so the runtime is torch."""
    if weights not in WEIGHTS:
        raise UserError(f"unknown weights {weights!r}; choose one of: {', '.join(WEIGHTS)}")
    name = shipped.resolve(target)
    target = Path(target)
    if name is not None:
        if which != "last" or weights != "ema":  # one file: the weights the card describes
            raise UserError(f"shipped model {name} has one set of weights ({shipped.card(name)['weights']['kind']}); "
                            "leave --checkpoint and --weights at their defaults")
        path, run_dir = shipped.weights(name), None
        tensors, cfg_dict, _ = checkpoint.load(path)
    elif target.is_dir():
        if not (target / store.CKPT_DIR).is_dir():
            raise UserError(f"{target} is not a mnistdiff run directory (no checkpoints/); pass a run "
                            "made by `mnistdiff train` or a checkpoint file")
        path = store.checkpoint_path(target, which)
        if which == "last" and not path.exists() and not path.is_symlink():
            found = store.load_latest(target, warn=lambda m: print(m, file=sys.stderr))
            if found is None:
                raise UserError(f"{target} has no checkpoint yet; train it first (`mnistdiff train --resume {target}`)")
            path, (tensors, cfg_dict, _) = found
        else:
            tensors, cfg_dict, _ = checkpoint.load(path)
        run_dir = target
    else:
        path, run_dir = target, target.parent.parent
        tensors, cfg_dict, _ = checkpoint.load(target)
    if run_dir is not None and (run_dir / "config.json").is_file():  # a checkpoint inside a run must be that run's
        validate.matches_run(cfg_dict, run_dir, path)
    cfg = C.validate(C.from_dict(cfg_dict))
    net = nets.build(cfg.model)
    has_ema = any(k.startswith(checkpoint.EMA_PREFIX) for k in tensors)
    checkpoint.load_model(net, tensors, checkpoint.EMA_PREFIX if weights == "ema" and has_ema else "model/")
    net.eval()
    machine.set_threads(cfg.train.threads)
    optim.prepare(net, cfg.train)  # the run's speed levers apply to sampling too
    precision = machine.inference_precision(precision, cfg.model.net)[0]
    if precision == "bf16":
        if runtime == "openvino":
            raise UserError("--precision bf16 runs the net in torch's bf16 autocast; pass --runtime torch or auto")
        net = RT.Autocast(net)
    else:
        net = runtime_net(net, cfg, runtime, batch_size, cache_dir=files.cache_dir(cache))
    process = processes.build(cfg.process)
    return cfg, process.sampling_net(RT.Chunked(net, NET_ROWS), cfg.process.prediction), process
