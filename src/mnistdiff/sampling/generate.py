"""Images from a trained net: `generate` (n digits, in batches, from a start and a sampler) and `sample_run`
(`mnistdiff sample`: a PNG grid and a .npy array in the run directory)."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import torch

from .. import config as C, data
from . import guidance as G
from ..processes import starts
from . import samplers
from .load import load_trained
from .spec import resolve
from . import shipped
from ..errors import UserError, check_int
from ..progress import Estimate, Progress
from .. import machine
from .. import files
from ..training import rundir


MAX_SAMPLES = C.MAX_EVAL  # -n ceiling of sample and evaluate: all x_T are drawn at once (314 MB of float32)


def check_counts(n: int, batch_size: int, flag: str = "--batch-size", seed: int = 0) -> None:
    """Sample count, batch size and seed, refused before any work (WrongType for a float or a bool: the
    Python API takes whole numbers only)."""
    check_int("seed", seed, 0, 2 ** 63 - 1, "--seed 1")
    check_int("sample count", n, 1, MAX_SAMPLES, "-n 64 (sample more in several runs with different --seed values)")
    check_int("batch size", batch_size, 1, MAX_SAMPLES, f"{flag} 500")


def generate(net, process, cfg: C.Config, n: int, *, seed: int = 0, sampler: str | None = None,
             start: str | None = None, batch_size: int = 500, run: Path | None = None, data_dir=None,
             progress: bool = False, start_options: dict | None = None,
             sampler_options: dict | None = None, digits: torch.Tensor | None = None,
             guidance: float = 0.0, record=None, partial=None) -> torch.Tensor:
    """n images as uint8 (n, 28, 28); the same seed and batch size give the same images.

    All n starting points are drawn first, in one call, so a conditional start uses n distinct test
    images (not a fresh draw per batch) and x_T does not depend on the batch size. digits: the digit of
    each image for a conditional run (guidance.labels), guided with weight `guidance`; None draws with
    the "no label" token (a conditional run's unconditional mode). record: a callback that sees every step of
    the first batch (trajectory.Recorder). partial: a partial.Partial that keeps each batch as it is made and
    hands back those an interrupted call already made (their images, then the random state that followed them).
    """
    check_counts(n, batch_size, seed=seed)
    spec = resolve(cfg, process, n, sampler=sampler, start=start, sampler_options=sampler_options, digits=digits,
                   guidance=guidance)
    sampler, start, sampler_options = spec.sampler, spec.start, spec.sampler_options
    g = torch.Generator().manual_seed(seed)
    x_T_all = starts.draw(start, process, n, generator=g, run=run, data_dir=data_dir, **(start_options or {}))
    out, state = partial.batches() if partial is not None else ([], None)
    if state is not None:
        g.set_state(state)
    done = sum(len(b) for b in out)
    if done and progress:
        print(f"resuming: {done} of {n} images were sampled before, in {partial.folder}", file=sys.stderr)
    bar = Progress(n - done, "sampling", "image", enabled=progress)
    batches = -(-n // batch_size)
    estimate = Estimate(batches - len(out), "sampling", "batches") if progress else None
    for i in range(done, n, batch_size):
        m = min(batch_size, n - i)
        x_T = x_T_all[i:i + m]
        batch_net = net if digits is None else G.Guided(net, digits[i:i + m], guidance)
        steps = itertools.count(1)  # the sampler's callback counts its steps: a log hears from a long batch
        tick = None if not progress else lambda *_: bar.tick(batch=f"{i // batch_size + 1}/{batches}", step=next(steps))
        if record is not None and i == 0:
            tick = record if tick is None else _both(record, tick)
        out.append(data.to_uint8(samplers.SAMPLERS[sampler](batch_net, process, x_T, generator=g, callback=tick,
                                                                **sampler_options)[:, 0]))
        if partial is not None:
            partial.save(i // batch_size, out[-1], g.get_state())
        bar.update(m)
        if estimate is not None:
            estimate.step()
    bar.close()
    return torch.cat(out)


def _both(first, second):
    def callback(*step):
        first(*step)
        second(*step)
    return callback


def sample_run(run: str | Path, *, n: int = 64, seed: int = 0, which: str = "last", sampler: str | None = None,
               start: str | None = None, out: str | Path | None = None, data_dir=None,
               batch_size: int = 500, start_options: dict | None = None,
               sampler_options: dict | None = None, weights: str = "ema", runtime: str = "torch",
               digit: G.Digits = None, guidance: float | None = None, precision: str = "fp32",
               trajectory: str | Path | None = None, trajectory_steps: list[int] | None = None) -> Path:
    """Write N samples of a run or a shipped model (shipped.py) as a PNG grid and a uint8 .npy array; returns the
    PNG path. Settings left unset (None) are a shipped model's own (its card), else the run's defaults.

    digit (conditional runs): a digit, a list, or "all" for one row per digit (guidance.labels).
    trajectory: also a .gif (or a .png strip of trajectory_steps, default evenly spaced ones) of the first few
    samples along the way (trajectory.py).
    """
    from . import trajectory as TR

    check_counts(n, batch_size, seed=seed)
    digits = G.labels(digit, n)
    if out is not None and Path(out).suffix.lower() != ".png":
        raise UserError(f"--out {out} must name a .png file (the .npy array is written beside it)")
    if trajectory is not None:
        TR.check_path(trajectory)
    name = shipped.resolve(run)
    run = Path(run)
    if name is None and not run.exists():
        known = shipped.also_known()
        raise UserError(f"{run} does not exist; pass a run directory made by `mnistdiff train`, a checkpoint "
                        f"file{known}")
    if name is None and out is None and not run.is_dir() and not (run.parent.parent / "config.json").is_file():
        raise UserError(f"{run} is not inside a run directory; pass --out FILE.png to say where the samples go")
    chosen = shipped.fill(shipped.sampling_defaults(name), sampler=sampler, sampler_options=sampler_options,
                          start=start, start_options=start_options, guidance=guidance, digits=digits)
    sampler, sampler_options, start, start_options, guidance = (chosen[k] for k in shipped.SAMPLING_KEYS)
    cfg, net, process = load_trained(name or run, which, weights, runtime=runtime, batch_size=min(n, batch_size),
                                     precision=precision)
    spec = resolve(cfg, process, n, sampler=sampler, start=start, sampler_options=sampler_options, digits=digits,
                   guidance=guidance)
    sampler, start = spec.sampler, spec.start
    run_dir = shipped.folder(run, name)
    start_tag = "" if start == "normal" else f"-{starts.tag(start, start_options)}"  # cold runs have several
    sampler_tag = sampler + "".join(f"-{k}{v}" for k, v in (sampler_options or {}).items())
    png = Path(out) if out else run_dir / "samples" / f"sample-{sampler_tag}{start_tag}{G.file_tag(digit, guidance)}-n{n}-seed{seed}.png"
    npy = png.with_suffix(".npy")
    for p in (png, npy) + ((Path(trajectory),) if trajectory is not None else ()):
        if p.exists():
            raise UserError(f"{p} already exists; pass another --out or --seed (nothing was overwritten)")
    if trajectory is not None and Path(trajectory).resolve() in (png.resolve(), npy.resolve()):
        raise UserError(f"--trajectory {trajectory} is where the samples go; pass another file name")
    rundir.ensure_writable(png.parent)
    if trajectory is not None:
        rundir.ensure_writable(Path(trajectory).resolve().parent)
    record = None if trajectory is None else TR.Recorder(TR.SHOWN)
    images = generate(net, process, cfg, n, seed=seed, sampler=sampler, start=start, run=run_dir,
                      data_dir=data_dir, batch_size=batch_size, start_options=start_options,
                      sampler_options=sampler_options, digits=digits, guidance=guidance, record=record)
    if record is not None:  # first: a step the sampler never took is refused before anything is written
        TR.write(record, trajectory, images, trajectory_steps)
    rows_are_digits = isinstance(digit, str) and digit.strip().lower() == "all"
    files.save_grid(images, png, nrow=n // 10 if rows_are_digits else math.ceil(math.sqrt(n)))
    np.save(npy, images.numpy())
    used = machine.inference_precision(precision, cfg.model.net)[0]
    print(f"wrote {png} and {npy} ({n} images, sampler {sampler}, seed {seed}"
          + (", net in bf16" if used == "bf16" else "") + ")", file=sys.stderr)
    if record is not None:
        print(f"wrote {trajectory} (the first {min(n, TR.SHOWN)} samples along {len(record.steps)} steps)",
              file=sys.stderr)
    return png
