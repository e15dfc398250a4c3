"""Facts about the machine a command runs on, read in one place: CPU model and flags, the precision it
computes fast, how many threads torch may start.

precision bf16 changes the arithmetic itself (bf16 products, fp32 master weights). `auto` (the default) is
bf16 on CUDA and on CPUs with AVX512-BF16 or AMX, fp32 elsewhere (where bf16 is emulated, ~16x slower); a
run's config.json records the precision auto chose, so a resume keeps it. For inference, auto is bf16 only
for networks whose bf16 samples were measured to score as fp32's do (BF16_SAMPLING_MEASURED).
"""

from __future__ import annotations

import dataclasses
import os
import platform
from functools import cache

import torch

from .errors import UserError

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs that compute bf16 natively


@cache
def _cpuinfo() -> tuple[str, ...]:
    try:
        with open("/proc/cpuinfo") as f:
            return tuple(f.read().splitlines())
    except OSError:  # not Linux
        return ()


def _field(name: str) -> str | None:
    return next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith(name)), None)


def cpu_flags() -> set[str]:
    return set((_field("flags") or "").split())


def cpu_model() -> str:
    """The CPU's model name (platform.processor() where /proc/cpuinfo has none)."""
    return _field("model name") or platform.processor() or platform.machine()


def cpu_description() -> str:
    """One line naming this CPU for results files: model, cores, and whether it computes bf16 natively."""
    native = [f for f in BF16_FLAGS if f in cpu_flags()]
    return f"{cpu_model()}, {os.cpu_count()} cores, " + (f"{'/'.join(native)}" if native else "no native bf16")


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
    # dataclasses.replace, not config.apply: config imports this module (its bound on threads)
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
    and a config made on a larger machine must not start hundreds of threads on a laptop). 0: torch's default."""
    if threads:
        torch.set_num_threads(max(1, min(threads, os.cpu_count() or 1)))
