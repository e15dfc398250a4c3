"""Golden numbers: every sampler and process on a fixed function of (x, t) with fixed generators, its output's
sum and mean absolute value pinned to 1e-4 (as diffusers' scheduler tests do). A change in the maths of a
schedule, a sampler step, a degradation or a loss fails here in milliseconds, without training anything.

The "net" is elementwise arithmetic, so the numbers do not depend on the CPU's convolution kernels. When a
change is meant to move them, regenerate with `python -m tests.test_golden` and say why in the commit.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mnistdiff import config as C, processes
from mnistdiff.sampling import samplers


class FixedNet(nn.Module):
    """A smooth fixed function standing in for a trained net: what a sampler sees, without training. The
    pattern varies over the image, so a constant (fully averaged) input still gets a structured output."""

    def __init__(self):
        super().__init__()
        grid = torch.arange(28.0)
        self.register_buffer("pattern", (torch.sin(grid / 3)[:, None] * torch.cos(grid / 5)[None, :])[None, None])

    def forward(self, x: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        t = t.float().reshape(-1, 1, 1, 1)
        return 0.3 * x + 0.1 * torch.tanh(2 * x) + 0.2 * self.pattern * torch.cos(t / 7) + 0.01 * t / (1 + t)


# (preset, overrides, sampler, options) -> (position-weighted sum, mean |x|) of 4 samples
CASES = {
    "ddpm": ("ddpm-default", {"T": 50}, "ddpm", {}),
    "ddim-eta0": ("ddpm-default", {"T": 50}, "ddim", {"steps": 10}),
    "ddim-eta1-clip": ("ddpm-default", {"T": 50}, "ddim", {"steps": 10, "eta": 1.0, "clip": True}),
    "dpm++2m-schedule": ("ddpm-default", {"T": 50}, "dpm++2m", {"steps": 8}),
    "ddim-v-cosine": ("ddpm-unet", {"T": 50}, "ddim", {"steps": 10}),
    "heun": ("quick-unet", {}, "heun", {"steps": 6}),
    "heun-churn": ("quick-unet", {}, "heun", {"steps": 6, "churn": 2.0}),
    "dpm++2m-sigma": ("quick-unet", {}, "dpm++2m", {"steps": 6}),
    "cold-direct-rows": ("cold-row-random", {}, "cold-direct", {}),
    "cold-alg1-rows": ("cold-row-random", {}, "cold-alg1", {}),
    "cold-alg2-rows": ("cold-row-random", {}, "cold-alg2", {}),
    "cold-alg2-columns-g4": ("cold-col-random-g4", {}, "cold-alg2", {}),
    "cold-alg2-blur": ("cold-blur", {}, "cold-alg2", {}),
}
GOLDEN_SAMPLES: dict[str, tuple[float, float]] = {
    'cold-alg1-rows': (-13.111815085459448, 0.14504904860896947),
    'cold-alg2-blur': (-465.7150164291757, 0.2964969274174536),
    'cold-alg2-columns-g4': (-465.85691107003584, 0.29692742899440383),
    'cold-alg2-rows': (-470.4407308050413, 0.2972288522738678),
    'cold-direct-rows': (-224.0604986726671, 0.14807792031414074),
    'ddim-eta0': (-3.338275835951265, 0.7714578719301337),
    'ddim-eta1-clip': (-17.615025322576944, 0.34126811599686235),
    'ddim-v-cosine': (2.0492149756513376, 0.36456849077196274),
    'ddpm': (-5.564952667062225, 0.7608770790802087),
    'dpm++2m-schedule': (-2.8386009079264003, 0.7719940804963931),
    'dpm++2m-sigma': (-385.1456503402877, 47.63980819710366),
    'heun': (-652.3535991867163, 80.6841193356133),
    'heun-churn': (-454.17016518856275, 48.499603508842746),
}

# degradation of 4 fixed images at drawn times, and the training loss on them -> (weighted sum of x_t, mean loss)
PROCESSES = {"gaussian-linear": ("ddpm-default", {"T": 50}), "gaussian-cosine-v": ("ddpm-unet", {"T": 50}),
             "gaussian-min-snr": ("ddpm-default", {"T": 50, "min_snr": 5.0}), "edm": ("quick-unet", {}),
             "rows": ("cold-row-random", {}), "columns-g4": ("cold-col-random-g4", {}), "blur": ("cold-blur", {})}
GOLDEN_PROCESSES: dict[str, tuple[float, float]] = {
    'blur': (-469.5856001189086, 0.3650567829608917),
    'columns-g4': (-462.8218408357137, 0.13999264501035213),
    'edm': (-422.7060833563636, 1.1290057301521301),
    'gaussian-cosine-v': (-173.10961255287492, 0.49306051433086395),
    'gaussian-linear': (-400.6845624883627, 0.7172747999429703),
    'gaussian-min-snr': (-400.6845624883627, 0.47259946691337973),
    'rows': (-470.168584533521, 0.14340749569237232),
}


def _cfg(preset: str, overrides: dict) -> C.Config:
    return C.apply(C.preset(preset), {**overrides, "conditional": False})


def _images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.rand(4, 1, 28, 28, generator=g) > 0.8).float() - 0.5  # strokes on a background, in [-0.5, 0.5]


def _summary(x: torch.Tensor) -> tuple[float, float]:
    """(sum weighted by pixel position, mean |x|): the weights make a moved row or column count."""
    ramp = torch.linspace(0, 1, 28 * 28, dtype=torch.float64).reshape(1, 1, 28, 28)
    return (x * ramp).sum().item(), x.abs().mean().item()


def sample_numbers(name: str) -> tuple[float, float]:
    preset, overrides, sampler, options = CASES[name]
    cfg = _cfg(preset, overrides)
    process = processes.build(cfg.process)
    net = process.sampling_net(FixedNet(), cfg.process.prediction)
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(4, 1, 28, 28, generator=g) * (80.0 if process.family == "sigma" else 1.0)
    if process.family == "cold":
        x_T = process.degrade(_images(), torch.full((4,), process.T))
    out = samplers.SAMPLERS[sampler](net, process, x_T, generator=g, **options).double()
    return _summary(out)


def process_numbers(name: str) -> tuple[float, float]:
    cfg = _cfg(*PROCESSES[name])
    process = processes.build(cfg.process)
    x0, g = _images(), torch.Generator().manual_seed(2)
    t = process.sample_t(4, g)
    noise = torch.randn(x0.shape, generator=g)
    x_t = process.degrade(x0, t, noise)
    loss = process.loss(FixedNet(), x0, t, noise, prediction=cfg.process.prediction, norm=cfg.process.loss,
                        min_snr=cfg.process.min_snr)
    return _summary(x_t.double())[0], loss.double().mean().item()


@pytest.mark.parametrize("name", sorted(CASES))
def test_sampler_golden_numbers(name):
    assert sample_numbers(name) == pytest.approx(GOLDEN_SAMPLES[name], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_process_golden_numbers(name):
    assert process_numbers(name) == pytest.approx(GOLDEN_PROCESSES[name], rel=1e-4, abs=1e-6)


def test_every_sampler_and_process_has_a_golden_case():
    assert {c[2] for c in CASES.values()} == set(samplers.SAMPLERS)
    used = {_cfg(*PROCESSES[n]).process.degradation for n in PROCESSES}
    assert used == set(processes.PROCESSES)


if __name__ == "__main__":  # print the tables to paste above
    torch.set_num_threads(1)
    print("GOLDEN_SAMPLES = {")
    for n in sorted(CASES):
        print(f"    {n!r}: {sample_numbers(n)!r},")
    print("}\nGOLDEN_PROCESSES = {")
    for n in sorted(PROCESSES):
        print(f"    {n!r}: {process_numbers(n)!r},")
    print("}")
