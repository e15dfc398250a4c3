"""Rebuild a trained model from a checkpoint alone and generate images from it."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, checkpoint_check, config as C, data, guidance as G, nets, perf, priors, processes, runs
from . import samplers
from . import runtime as RT
from .report import figures
from .errors import UserError, check_int
from .progress import Estimate, Progress


WEIGHTS = ("ema", "raw")
# Rows per net call while sampling (runtime.Chunked): guided DDIM on the quality UNet at the default batch of 500
# (1,000 rows a call) ran 2.6x faster in chunks of 128, with the same uint8 images (benchmarks/results.md, the
# guided sampling row, 2-core AVX512-BF16 Xeon).
NET_ROWS = 128
MAX_SAMPLES = C.MAX_EVAL  # -n ceiling of sample and evaluate: all x_T are drawn at once (314 MB of float32)


def check_counts(n: int, batch_size: int, flag: str = "--batch-size", seed: int = 0) -> None:
    """Sample count, batch size and seed, refused before any work (WrongType for a float or a bool: the
    Python API takes whole numbers only)."""
    check_int("seed", seed, 0, 2 ** 63 - 1, "--seed 1")
    check_int("sample count", n, 1, MAX_SAMPLES, "-n 64 (sample more in several runs with different --seed values)")
    check_int("batch size", batch_size, 1, MAX_SAMPLES, f"{flag} 500")


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
    """(cfg, net in eval mode, degradation) from a run directory or a checkpoint file.

    weights: ema takes the EMA weights where the run kept them (ema_decay > 0), else the trained
    ones; raw always the trained ones. The net is returned as the samplers want it (the process's
    sampling_net: eps-predicting for a discrete noise schedule, whatever the run's target), and run
    by `runtime` (runtime.py: torch, openvino, or auto, probed on the rows each call gets), NET_ROWS rows
    at a time. precision bf16 (fp32 or bf16; perf.inference_precision resolves auto) runs it in torch's bf16
    autocast, so the runtime is torch."""
    if weights not in WEIGHTS:
        raise UserError(f"unknown weights {weights!r}; choose one of: {', '.join(WEIGHTS)}")
    target = Path(target)
    if target.is_dir():
        if not (target / runs.CKPT_DIR).is_dir():
            raise UserError(f"{target} is not a mnistdiff run directory (no checkpoints/); pass a run "
                            "made by `mnistdiff train` or a checkpoint file")
        path = runs.checkpoint_path(target, which)
        if which == "last" and not path.exists() and not path.is_symlink():
            found = runs.load_latest(target, warn=lambda m: print(m, file=sys.stderr))
            if found is None:
                raise UserError(f"{target} has no checkpoint yet; train it first (`mnistdiff train --resume {target}`)")
            path, (tensors, cfg_dict, _) = found
        else:
            tensors, cfg_dict, _ = checkpoint.load(path)
        run_dir = target
    else:
        path, run_dir = target, target.parent.parent
        tensors, cfg_dict, _ = checkpoint.load(target)
    if (run_dir / "config.json").is_file():  # a checkpoint inside a run must be that run's
        checkpoint_check.matches_run(cfg_dict, run_dir, path)
    cfg = C.validate(C.from_dict(cfg_dict))
    net = nets.build(cfg.model)
    has_ema = any(k.startswith(checkpoint.EMA_PREFIX) for k in tensors)
    checkpoint.load_model(net, tensors, checkpoint.EMA_PREFIX if weights == "ema" and has_ema else "model/")
    net.eval()
    perf.set_threads(cfg.train.threads)
    perf.prepare(net, cfg.train)  # the run's speed levers apply to sampling too
    precision = perf.inference_precision(precision, cfg.model.net)[0]
    if precision == "bf16":
        if runtime == "openvino":
            raise UserError("--precision bf16 runs the net in torch's bf16 autocast; pass --runtime torch or auto")
        net = RT.Autocast(net)
    else:
        net = runtime_net(net, cfg, runtime, batch_size, cache_dir=runs.cache_dir(cache))
    process = processes.build(cfg.process)
    return cfg, process.sampling_net(RT.Chunked(net, NET_ROWS), cfg.process.prediction), process


def generate(net, degradation, cfg: C.Config, n: int, *, seed: int = 0, sampler: str | None = None,
             start: str | None = None, batch_size: int = 500, run: Path | None = None, data_dir=None,
             progress: bool = False, start_options: dict | None = None,
             sampler_options: dict | None = None, digits: torch.Tensor | None = None,
             guidance: float = 0.0) -> torch.Tensor:
    """n images as uint8 (n, 28, 28); the same seed and batch size give the same images.

    All n starting points are drawn first, in one call, so a conditional start uses n distinct test
    images (not a fresh draw per batch) and x_T does not depend on the batch size. digits: the digit of
    each image for a conditional run (guidance.labels), guided with weight `guidance`; None draws with
    the "no label" token (a conditional run's unconditional mode).
    """
    check_counts(n, batch_size, seed=seed)
    G.check(cfg.model.conditional, digits, guidance)
    if digits is not None and len(digits) != n:
        raise UserError(f"{len(digits)} digits given for {n} images; give one per image (guidance.labels)")
    sampler = sampler or samplers.default_sampler(cfg)
    start = start or priors.default_start(cfg)
    if sampler not in samplers.SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r}; choose one of: {', '.join(samplers.SAMPLERS)}")
    if start not in priors.STARTS:
        raise UserError(f"unknown start {start!r}; choose one of: {', '.join(priors.STARTS)}")
    samplers.check_compatible(sampler, degradation)
    sampler_options = samplers.check_options(sampler, sampler_options, degradation)
    g = torch.Generator().manual_seed(seed)
    x_T_all = priors.draw(start, degradation, n, generator=g, run=run, data_dir=data_dir, **(start_options or {}))
    out, bar = [], Progress(n, "sampling", "image", enabled=progress)
    batches = -(-n // batch_size)
    estimate = Estimate(batches, "sampling", "batches") if progress else None
    for i in range(0, n, batch_size):
        m = min(batch_size, n - i)
        x_T = x_T_all[i:i + m]
        batch_net = net if digits is None else G.Guided(net, digits[i:i + m], guidance)
        steps = itertools.count(1)  # the sampler's callback counts its steps: a log hears from a long batch
        tick = None if not progress else lambda *_: bar.tick(batch=f"{i // batch_size + 1}/{batches}", step=next(steps))
        out.append(data.to_uint8(samplers.SAMPLERS[sampler](batch_net, degradation, x_T, generator=g, callback=tick,
                                                                **sampler_options)[:, 0]))
        bar.update(m)
        if estimate is not None:
            estimate.step()
    bar.close()
    return torch.cat(out)


def sample_run(run: str | Path, *, n: int = 64, seed: int = 0, which: str = "last", sampler: str | None = None,
               start: str | None = None, out: str | Path | None = None, data_dir=None,
               batch_size: int = 500, start_options: dict | None = None,
               sampler_options: dict | None = None, weights: str = "ema", runtime: str = "torch",
               digit: G.Digits = None, guidance: float = 0.0, precision: str = "fp32") -> Path:
    """Write N samples of a run as a PNG grid and a uint8 .npy array; returns the PNG path.

    digit (conditional runs): a digit, a list, or "all" for one row per digit (guidance.labels).
    For a cold run, also the figures of the report's Section 2 (cold_figures.write_all) in RUN/figures/.
    """
    check_counts(n, batch_size, seed=seed)
    digits = G.labels(digit, n)
    if out is not None and Path(out).suffix.lower() != ".png":
        raise UserError(f"--out {out} must name a .png file (the .npy array is written beside it)")
    run = Path(run)
    if not run.exists():
        raise UserError(f"{run} does not exist; pass a run directory made by `mnistdiff train` or a checkpoint file")
    if out is None and not run.is_dir() and not (run.parent.parent / "config.json").is_file():
        raise UserError(f"{run} is not inside a run directory; pass --out FILE.png to say where the samples go")
    # Options left unset (None) keep the sampler's defaults and stay out of the file name.
    sampler_options = {k: v for k, v in (sampler_options or {}).items() if v is not None} or None
    cfg, net, degradation = load_trained(run, which, weights, runtime=runtime, batch_size=min(n, batch_size),
                                         precision=precision)
    G.check(cfg.model.conditional, digits, guidance)
    sampler = sampler or samplers.default_sampler(cfg)
    run_dir = run if run.is_dir() else run.parent.parent
    start = start or priors.default_start(cfg)
    start_tag = "" if start == "normal" else f"-{start}"  # cold runs have several starts; name them
    sampler_tag = sampler + "".join(f"-{k}{v}" for k, v in (sampler_options or {}).items())
    png = Path(out) if out else run_dir / "samples" / f"sample-{sampler_tag}{start_tag}{G.file_tag(digit, guidance)}-n{n}-seed{seed}.png"
    npy = png.with_suffix(".npy")
    for p in (png, npy):
        if p.exists():
            raise UserError(f"{p} already exists; pass another --out or --seed (nothing was overwritten)")
    runs.ensure_writable(png.parent)
    images = generate(net, degradation, cfg, n, seed=seed, sampler=sampler, start=start, run=run_dir,
                      data_dir=data_dir, batch_size=batch_size, start_options=start_options,
                      sampler_options=sampler_options, digits=digits, guidance=guidance)
    rows_are_digits = isinstance(digit, str) and digit.strip().lower() == "all"
    figures.save_grid(images, png, nrow=n // 10 if rows_are_digits else math.ceil(math.sqrt(n)))
    np.save(npy, images.numpy())
    used = perf.inference_precision(precision, cfg.model.net)[0]
    print(f"wrote {png} and {npy} ({n} images, sampler {sampler}, seed {seed}"
          + (", net in bf16" if used == "bf16" else "") + ")", file=sys.stderr)
    if not degradation.stochastic:
        from . import cold_figures

        for path in cold_figures.write_all(run_dir / "figures", net, degradation, sampler=sampler,
                                           start=start, seed=seed, run=run_dir,
                                           data_dir=data_dir, start_options=start_options):
            print(f"wrote {path}", file=sys.stderr)
    return png
