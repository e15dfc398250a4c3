"""Speed levers, each a TrainConfig field, applied in one place so training and sampling agree.

threads, channels_last and adam change how the same arithmetic runs, not what it computes (results
agree to float rounding; tests/test_perf_levers.py checks each on and off). precision bf16 changes the
arithmetic itself (bf16 products, fp32 weights), and compile may fuse and reorder it: neither agrees
with fp32 bit for bit, and the tests do not compare them with it. Which ones are on by default follows
benchmarks/results.md, measured on the machine named there: a lever that does not pay stays off.

- threads:       torch's intra-op threads (0 keeps torch's default, one per core)
- channels_last: NHWC weights and activations for the oneDNN convolutions
- adam:          torch's Adam implementation: for-loop, foreach (multi-tensor) or fused (one kernel)
- compile:       torch.compile the net's forward (inductor, C++ codegen; the first steps pay the compile)
- precision:     bf16 autocast with fp32 master weights (training.autocast; 10x slower without AVX512-BF16);
                 auto (the default) is bf16 on CUDA and on CPUs with AVX512-BF16 or AMX, fp32 elsewhere.
                 A run's config.json records the precision auto chose, so a resume keeps it.
"""

from __future__ import annotations

import dataclasses
import os

import torch
from torch import nn

ADAM_IMPLEMENTATIONS = ("for-loop", "foreach", "fused")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs that compute bf16 natively


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return set(next((line for line in f if line.startswith("flags")), "").split(":", 1)[-1].split())
    except OSError:
        return set()


def auto_precision(device_type: str) -> tuple[str, str]:
    """(precision, why) for `precision = auto` on this device."""
    if device_type == "cuda":
        return "bf16", "a CUDA device"
    native = [f for f in BF16_FLAGS if f in cpu_flags()]
    if native:
        return "bf16", f"this CPU has {native[0]}"
    return "fp32", "this CPU has neither AVX512-BF16 nor AMX, where bf16 is emulated and ~16x slower"


def resolve_precision(cfg, device_type: str | None = None):
    """(cfg with `auto` replaced by what this machine should use, why; None when cfg named a precision)."""
    if cfg.train.precision != "auto":
        return cfg, None
    precision, why = auto_precision(device_type or ("cuda" if torch.cuda.is_available() else "cpu"))
    # dataclasses.replace, not config.apply: config imports this module (its choices of adam)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=precision)), why


# Inference (sampling nets): bf16 only where its agreement with fp32 was measured within the metrics' noise, per
# network (scripts/precision_agreement.py writes the measurement; results/ablations/precision-*.md). The report's
# CNN: 2,000 ancestral samples of ddpm-default at epoch 40, KID and classifier IS within their std, FID -0.3%,
# 3.5x faster (results/ablations/precision-ddpm-default-e40.md). The UNet is not measured yet: fp32.
BF16_SAMPLING_MEASURED: frozenset[str] = frozenset({"cnn"})
INFERENCE_PRECISIONS = ("auto", "fp32", "bf16")


def inference_precision(requested: str, net_name: str, device_type: str = "cpu") -> tuple[str, str]:
    """(fp32 or bf16, why) for sampling a net: auto is bf16 only on a native-bf16 device and for a net whose
    bf16 samples were measured to score as fp32's do."""
    if requested not in INFERENCE_PRECISIONS:
        from .errors import UserError
        raise UserError(f"unknown precision {requested!r}; choose one of: {', '.join(INFERENCE_PRECISIONS)}")
    if requested != "auto":
        return requested, "asked for"
    native, why = auto_precision(device_type)
    if native != "bf16":
        return "fp32", why
    if net_name not in BF16_SAMPLING_MEASURED:
        return "fp32", f"bf16 sampling of a {net_name} is not measured against fp32 yet"
    return "bf16", f"{why}, and bf16 samples of a {net_name} score as fp32's"


MAX_THREADS = 256  # config.validate's bound: a config stays valid on any machine up to this size


def set_threads(threads: int) -> None:
    """torch's intra-op threads: the configured count, at most one per core of this machine (more never pays,
    and a config made on a larger machine must not start hundreds of threads on a laptop)."""
    if threads:
        torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))


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
