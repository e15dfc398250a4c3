"""The cold-diffusion figures of the report's Section 2, written into RUN/figures/ by `mnistdiff sample`.

  cold-conditional-<alg>-seed<S>.png    Original | Degraded | Direct prediction | Algorithmic generation
                                        (the report's Figs 2.2, 3.1-3.3)
  cold-<gmm|uniform>-<alg>-seed<S>.png  Degraded from distribution | Algorithmic generation (Fig 2.6)
  cold-strip-<alg>-seed<S>.png          one test digit along t = 0..T: D(x0, t) as stored and
                                        contrast-stretched, then the reverse chain x_t and R(x_t, t)
<alg> is alg1 or alg2, the sampler asked for (alg2 when that was the direct prediction).
Degraded images are contrast-stretched for display only; the samples in RUN/samples/ never are.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from .. import data
from ..processes import starts
from ..sampling import samplers
from ..sampling import shipped
from ..sampling.load import load_trained
from . import figures, manifest

N_PANEL = 16  # images per panel, a 4x4 grid as in the report
LABELS = {"cold-alg1": "Algorithm 1", "cold-alg2": "Algorithm 2"}


def _u8(x: torch.Tensor) -> torch.Tensor:
    return data.to_uint8(x[:, 0])


def _full_t(n: int, T: int) -> torch.Tensor:
    return torch.full((n,), T, dtype=torch.long)


def panels(net, process, *, sampler: str, start: str, seed: int, run=None, data_dir=None,
           start_options: dict | None = None) -> list[tuple[str, torch.Tensor]]:
    """The titled uint8 panels for one start (conditional: the originals of the first 16 images of
    `mnistdiff sample --seed S --start conditional`)."""
    algorithmic = sampler if sampler in LABELS else "cold-alg2"
    g = torch.Generator().manual_seed(seed)
    if start == "conditional":
        # Same draws as starts.conditional, so these are the first 16 samples' originals.
        x0 = starts.test_originals(N_PANEL, generator=g, data_dir=data_dir)
        x_T = process.degrade(x0, _full_t(N_PANEL, process.T))
    else:
        x0 = None
        x_T = starts.draw(start, process, N_PANEL, generator=g, run=run, data_dir=data_dir,
                          **(start_options or {}))
    generated = samplers.SAMPLERS[algorithmic](net, process, x_T)
    out = f"Algorithmic generation\n({LABELS[algorithmic]})"
    if x0 is None:
        return [(f"Degraded from distribution\n({start})", figures.contrast_stretch(x_T[:, 0])), (out, _u8(generated))]
    direct = samplers.SAMPLERS["cold-direct"](net, process, x_T)
    return [("Original", _u8(x0)), ("Degraded", figures.contrast_stretch(x_T[:, 0])),
            ("Direct prediction", _u8(direct)), (out, _u8(generated))]


def strip(net, process, *, sampler: str, seed: int, data_dir=None) -> tuple[list, list[str]]:
    """Rows along t = 0..T for the first conditional test digit of the seed."""
    algorithmic = sampler if sampler in LABELS else "cold-alg2"
    T = process.T
    x0 = starts.test_originals(1, generator=torch.Generator().manual_seed(seed), data_dir=data_dir)
    chain = process.degrade(x0.expand(T + 1, -1, -1, -1), torch.arange(T + 1))
    xs, x0_hats = [None] * (T + 1), [None] * (T + 1)

    def record(s, x_s, x0_hat):
        xs[s], x0_hats[s] = _u8(x_s)[0], _u8(x0_hat)[0]

    xs[0] = _u8(samplers.SAMPLERS[algorithmic](net, process, chain[T:], callback=record))[0]
    rows = [("D(x0, t)", list(_u8(chain))), ("D(x0, t)\nstretched", list(figures.contrast_stretch(chain[:, 0]))),
            (f"x_t\n{LABELS[algorithmic]}", xs), ("R(x_t, t)", x0_hats)]
    return rows, [f"t={t}" for t in range(T + 1)]


def write_all(fig_dir: Path, net, process, *, sampler: str, start: str, seed: int, run=None,
              data_dir=None, start_options: dict | None = None) -> list[Path]:
    """Write the panel figure for `start` and the strip; returns their paths."""
    fig_dir = Path(fig_dir)
    algorithmic = sampler if sampler in LABELS else "cold-alg2"
    name = type(process).__name__
    tag = algorithmic.removeprefix("cold-")
    panel_path = fig_dir / f"cold-{start}-{tag}-seed{seed}.png"
    figures.panels_figure(panels(net, process, sampler=sampler, start=start, seed=seed, run=run,
                                 data_dir=data_dir, start_options=start_options),
                          panel_path, title=f"{name}, T={process.T}, start {start}, seed {seed}")
    manifest.record_caption(panel_path, (
        "Original | Degraded | Direct prediction | Algorithmic generation, from fully degraded test images "
        f"(conditional; sampler {tag}, seed {seed}); the report's Figs 2.2, 3.1-3.3") if start == "conditional" else (
        f"Degraded from a fitted distribution ({start}) | Algorithmic generation (unconditional; sampler {tag}, "
        f"seed {seed}); the report's Fig 2.6"))
    strip_path = fig_dir / f"cold-strip-{tag}-seed{seed}.png"
    rows, labels = strip(net, process, sampler=sampler, seed=seed, data_dir=data_dir)
    figures.strip_figure(rows, strip_path, labels, title=f"{name}: one test digit along t = 0..{process.T}")
    manifest.record_caption(strip_path, "One test digit along t = 0..T: degraded (as stored and contrast-stretched), "
                                       f"then the reverse chain and its predictions (sampler {tag}, seed {seed})")
    return [panel_path, strip_path]


def write_for_run(run, *, which: str = "last", weights: str = "ema", sampler: str | None = None,
                  start: str | None = None, seed: int = 0, data_dir=None, start_options: dict | None = None,
                  precision: str = "fp32", **_) -> list[Path]:
    """The figures `mnistdiff sample` adds for a cold run (none for a stochastic process or a shipped model, which
    samples without the MNIST files these figures draw on), in RUN/figures/; takes sample_run's options and ignores
    those that do not change them."""
    if shipped.resolve(run) is not None:
        return []
    run = Path(run)
    cfg, net, process = load_trained(run, which, weights, precision=precision)
    if process.stochastic:
        return []
    run_dir = run if run.is_dir() else run.parent.parent
    start_options = {k: v for k, v in (start_options or {}).items() if v is not None}  # unset: the start's defaults
    written = write_all(run_dir / "figures", net, process, sampler=sampler or samplers.default_sampler(cfg),
                        start=start or starts.default_start(cfg), seed=seed, run=run_dir, data_dir=data_dir,
                        start_options=start_options)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return written
