"""Measure classifier-free guidance: the same balanced sample set of a conditional run drawn at several
weights w -> RUN/guidance.json and one grid per w (guidance_table.py reads them back).

Per w: the MNIST classifier's agreement with the digit asked for (overall and per digit), its IS,
Inception FID/KID of the whole set against the first n_ref test digits, and per-digit KID of each
digit's samples against that digit's test images. The figure is 10 x 10: row d holds digit d, one
column per starting noise, so columns compare the weights on the same x_T.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..sampling import guidance as G
from ..sampling.spec import resolve
from ..files import atomic_write_bytes
from ..errors import UserError
from .guidance_table import FILE, WEIGHTS, grid_path
from ..training import rundir


def measure(run: str | Path, *, weights=WEIGHTS, n: int = 1000, sampler: str | None = None,
            sampler_options: dict | None = None, seed: int = 0, which: str = "last", metrics: str = "all",
            n_ref: int = 10_000, runtime: str = "torch", cache=None, data_dir=None, batch_size: int = 500,
            progress: bool = True, force: bool = False) -> dict:
    """Draw n images (n / 10 of each digit) per weight, measure them, write RUN/guidance.json and the grids."""
    from .evaluator import Evaluator
    from ..files import save_grid
    from ..sampling.generate import generate
    from ..sampling.load import load_trained

    run = Path(run)
    out = run / FILE
    if out.exists() and not force:
        raise UserError(f"{out} already exists; pass --force to measure again (it is replaced)")
    if n % 100:
        raise UserError(f"-n {n} must be a multiple of 100: n / 10 images of each digit, at least 10 for the grid")
    weights = [float(w) for w in weights]
    if not weights:
        raise UserError("give at least one guidance weight, e.g. --weights 0 1 2")
    cfg, net, process = load_trained(run, which, runtime=runtime, cache=cache, batch_size=min(n, batch_size))
    digits = G.labels("all", n)
    for w in weights:
        spec = resolve(cfg, process, n, sampler=sampler, sampler_options=sampler_options, digits=digits, guidance=w)
    sampler, sampler_options = spec.sampler, spec.sampler_options
    ev = Evaluator(metrics=metrics, n_ref=n_ref, cache=cache, data_dir=data_dir, progress=progress, runtime=runtime)
    rows = []
    for w in weights:
        t0 = time.perf_counter()
        images = generate(net, process, cfg, n, seed=seed, sampler=sampler, sampler_options=sampler_options,
                          batch_size=batch_size, run=run, data_dir=data_dir, digits=digits, guidance=w)
        sampling_s = time.perf_counter() - t0
        row = {"w": w, **ev.evaluate(images, digits), "sampling_s": round(sampling_s, 1)}
        save_grid(images.view(10, n // 10, 28, 28)[:, :10].reshape(100, 28, 28), grid_path(run, w), nrow=10)
        rows.append(row)
        if progress:
            print(f"{run.name} w={w:g}: digit agreement {100 * row['digit_agreement']:.1f}%, classifier IS "
                  f"{row['classifier_is']:.2f}" + (f", KID {row['kid']:.4f}" if "kid" in row else "")
                  + f" ({sampling_s:.0f} s sampling)", flush=True)
    epochs = [r["epoch"] for r in rundir.read_metrics(run) if r.get("type") == "epoch"]
    result = {"run": str(run), "checkpoint": which, "epochs_trained": max(epochs, default=0),
              "epochs_planned": cfg.train.epochs, "sampler": sampler, "sampler_options": sampler_options,
              "n": n, "seed": seed, "rows": rows, "protocol": ev.protocol()}
    atomic_write_bytes(out, (json.dumps(result, indent=2) + "\n").encode())
    return result
