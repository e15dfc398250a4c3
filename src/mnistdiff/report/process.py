"""The report's process section: one test digit carried forward by each degradation the runs use, and brought
back by each one's trained net.

Three rows per process, columns at evenly spaced times t = 0 .. T:
  x_t           the digit degraded to t (Gaussian noise with one fixed draw, row or column averaging, blur)
  estimate      the net's x0 estimate from that x_t: one net call
  reverse       the run's own sampler from the last column's x_T, right to left, its final image under t = 0
This is the one part of a report that calls a net; it costs one sampler run of a single image per process.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from .. import data, files
from ..errors import UserError
from ..sampling import samplers, trajectory as TR
from ..sampling.load import load_trained
from . import figures

COLUMNS = 8  # times shown, t = 0 and T included
DIGIT = 0  # the first test digit (a 7)
ROWS = ("x_t", "estimate", "reverse")
LABEL_WIDTH = 64


@torch.no_grad()
def rows(run, data_dir=None) -> tuple[str, list[np.ndarray], list[str]]:
    """(the process's name, the three rows as uint8 (COLUMNS, 28, 28), the column headings) for one run."""
    cfg, net, process = load_trained(run)
    x0 = data.to_model_range(data.load_split("test", data_dir).images[DIGIT:DIGIT + 1])
    t = process.times(COLUMNS)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)).expand(len(t), -1, -1, -1)
    x_t = process.degrade(x0.expand(len(t), -1, -1, -1), t, noise)
    estimate = torch.where((t == 0).view(-1, 1, 1, 1), x_t, process.estimate_x0(net, x_t, t))  # t = 0: x0
    record = TR.Recorder(1)
    final = samplers.SAMPLERS[samplers.default_sampler(cfg)](net, process, x_t[-1:], callback=record,
                                                             generator=torch.Generator().manual_seed(0))
    steps = TR.chosen(record.steps, None, COLUMNS - 1)  # x_k from the first step down, evenly spaced
    backwards = [x[0] for _, x, _ in reversed(steps)]  # right to left, under the times they came from
    blank = [np.zeros((28, 28), np.uint8)] * (COLUMNS - 1 - len(backwards))  # a sampler of few steps (cold-direct)
    if not process.stochastic:  # averaged rows are nearly black: stretched as x_t is
        backwards = [figures.contrast_stretch(torch.as_tensor(x).float()).numpy() for x in backwards]
    reverse = [data.to_uint8(final[0, 0]).numpy()] + blank + backwards
    headings = [f"t={v:.2f}" if t.is_floating_point() else f"t={int(v)}" for v in t.tolist()]
    shown = TR.display(x_t) if process.stochastic else figures.contrast_stretch(x_t[:, 0]).numpy()
    return process.label(cfg.process), [shown, data.to_uint8(estimate[:, 0]).numpy(), np.stack(reverse)], headings


def figure(name: str, shown: list[np.ndarray], headings: list[str]) -> bytes:
    """The three rows as one PNG, each row labelled on the left, times above."""
    grid = files.grid_array(torch.as_tensor(np.concatenate(shown)), nrow=COLUMNS)
    scale = TR.SCALE
    image = Image.fromarray(grid, mode="L").resize((grid.shape[1] * scale, grid.shape[0] * scale), Image.NEAREST)
    canvas = Image.new("L", (LABEL_WIDTH + image.width, 28 + image.height), 255)
    canvas.paste(image, (LABEL_WIDTH, 28))
    draw = ImageDraw.Draw(canvas)
    draw.text((2, 2), name, fill=0)
    pitch = 30 * scale
    for i, h in enumerate(headings):
        draw.text((LABEL_WIDTH + 2 * scale + i * pitch, 15), h, fill=0)
    for j, label in enumerate(ROWS):
        draw.text((2, 28 + 2 * scale + j * pitch + pitch // 3), label, fill=0)
    return files.png_bytes(canvas)


def for_runs(runs, data_dir=None) -> list[tuple[str, str, bytes | None, str | None]]:
    """(process name, the run that drew it, the PNG or None, why not) for the first run of each process."""
    seen, out = set(), []
    for r in runs:
        key = r.config.process.degradation, r.config.process.order, r.config.process.group
        if key in seen:
            continue
        seen.add(key)
        try:
            name, shown, headings = rows(r.path, data_dir)
        except UserError as e:
            out.append((r.config.process.degradation, r.name, None, str(e)))
            continue
        out.append((name, r.name, figure(name, shown, headings), None))
    return out
