"""The optimiser and the speed levers, each a TrainConfig field, applied in one place; the learning-rate schedule.

threads, channels_last and adam change how the same arithmetic runs, not what it computes (results
agree to float rounding; tests/test_perf_levers.py checks each on and off). compile may fuse and reorder
it, and precision bf16 (machine.py) changes it: neither agrees with fp32 bit for bit, and the tests do not
compare them with it. Which levers are on by default follows benchmarks/results.md, measured on the machine
named there: a lever that does not pay stays off.

- threads:       torch's intra-op threads (machine.set_threads; 0 keeps torch's default, one per core)
- channels_last: NHWC weights and activations for the oneDNN convolutions
- adam:          torch's Adam implementation: for-loop, foreach (multi-tensor) or fused (one kernel)
- compile:       torch.compile the net's forward (inductor, C++ codegen; the first steps pay the compile)
"""

from __future__ import annotations

import math

import torch
from torch import nn

ADAM_IMPLEMENTATIONS = ("for-loop", "foreach", "fused")


def prepare(net: nn.Module, tc) -> nn.Module:
    """The net with the layout and compile levers of TrainConfig `tc` applied (in place)."""
    if tc.channels_last:
        net.to(memory_format=torch.channels_last)
    if tc.compile:
        # nn.Module.compile keeps the module and its state_dict keys, so checkpoints do not change.
        net.compile(dynamic=False)
    return net


def optimizer(net: nn.Module, tc) -> torch.optim.Optimizer:
    """Adam (the report's optimizer) with the implementation `tc.adam` names."""
    kind = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[tc.adam]
    return torch.optim.Adam(net.parameters(), lr=tc.lr, **kind)


def contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors stores row-major data only: channels_last weights and their Adam moments are
    copied to the standard layout for saving (loading copies back into the live layout)."""
    return {k: v.contiguous() for k, v in tensors.items()}


LR_DECAYS = ("constant", "cosine")  # config.CHOICES["lr_decay"]: the decays learning_rate knows


def learning_rate(step: int, *, lr: float, warmup: int = 0, decay: str = "constant", total: int = 1) -> float:
    """The rate for optimizer step `step` (1-based) of `total`: linear warm-up over `warmup` steps, then
    constant, or a half cosine from lr (the first step after warm-up) towards 0 (reached after step
    `total`; Loshchilov & Hutter 2017, without restarts)."""
    if warmup and step <= warmup:
        return lr * step / warmup
    if decay == "cosine":
        progress = min(1.0, (step - warmup - 1) / max(1, total - warmup))
        return lr * 0.5 * (1 + math.cos(math.pi * progress))
    return lr
