"""Inference runtimes for the networks that only run forward: sampling nets and feature extractors.

`--runtime torch` runs the module eagerly; `openvino` converts it once (OpenVINO's PyTorch frontend,
fp32 inference precision, dynamic batch) and runs the compiled graph; `auto` times both on the
caller's example input and keeps the faster, remembering the choice per machine and network in the
cache folder. The gain depends on network and CPU (benchmarks/results.md): measured on a 2-core
AVX2 EPYC, Inception-v3 ran ~2x faster in OpenVINO, the small UNet ~1.1-1.3x, the report's CNN not
at all; on a 2-core AVX512-BF16 Xeon, Inception 1.9x and the UNet 0.6x; hence a probe rather than a
fixed rule. A runtime that is missing or fails falls back to torch
with one warning line.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

RUNTIMES = ("torch", "openvino", "auto")
PROBE_VERSION = 1


class OpenVINOModule:
    """A torch module compiled by OpenVINO: called with tensors, returns its first output as a tensor."""

    runtime = "openvino"

    def __init__(self, module: nn.Module, example_inputs: tuple[torch.Tensor, ...]):
        import openvino as ov

        # Tracing warns about Python-side shape checks (GroupNorm's) that are constants for these nets.
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ov.convert_model(module, example_input=tuple(x.contiguous() for x in example_inputs))
        self.n_inputs = len(example_inputs)
        self.compiled = ov.Core().compile_model(model, "CPU", {
            "INFERENCE_PRECISION_HINT": "f32",  # no bf16/int8 shortcuts: outputs must match torch's
            "INFERENCE_NUM_THREADS": torch.get_num_threads()})

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        # An input left out would not be an error to OpenVINO: its infer request keeps the last call's
        # tensor there (a conditional net would draw the previous batch's digits, or the wrong count).
        if len(inputs) != self.n_inputs:
            raise TypeError(f"this compiled graph takes {self.n_inputs} inputs, got {len(inputs)}")
        # Labels stay integers (an embedding's index); everything else is fp32, as converted.
        arrays = [np.ascontiguousarray((x if not x.is_floating_point() else x.float()).detach().cpu().numpy())
                  for x in inputs]
        return torch.from_numpy(np.array(self.compiled(arrays)[0]))

    def eval(self):  # the samplers and extractors treat it as an nn.Module in eval mode
        return self

    def train(self, mode: bool = True):
        return self


class Chunked(nn.Module):
    """net(*inputs) evaluated `rows` rows at a time, outputs concatenated: the same numbers (to float
    rounding) at the speed of a smaller batch: a guided sampling batch of 500 images is 1,000 rows a call, and
    the quality UNet sampled 2.6x faster in chunks of 128 (benchmarks/results.md, the guided sampling row).
    Chunking the net call rather than the sampler's batch leaves every sampler's random numbers as they were."""

    def __init__(self, net, rows: int):
        super().__init__()
        self.net, self.rows = net, rows  # a compiled graph is no nn.Module: it is kept as a plain attribute
        self.runtime = getattr(net, "runtime", "torch")

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        n = len(inputs[0])
        if n <= self.rows:
            return self.net(*inputs)
        part = lambda x, i: x[i:i + self.rows] if x.dim() and len(x) == n else x  # noqa: E731  (a shared input whole)
        return torch.cat([self.net(*(part(x, i) for x in inputs)) for i in range(0, n, self.rows)])


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def machine_key() -> dict:
    """What decides which runtime is faster: the CPU, its flags, the thread count and the versions."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version
        ov_version = version("openvino")
    except Exception:  # noqa: BLE001 - any failure means "not installed" here
        ov_version = None
    return {"cpu": platform.processor() or platform.machine(), "flags_sha": hashlib.sha256(flags.encode()).hexdigest()[:12],
            "threads": torch.get_num_threads(), "torch": torch.__version__, "openvino": ov_version}


def _median_time(fn, inputs, repeats: int) -> float:
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(*inputs)
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def probe(module: nn.Module, compiled, example_inputs, repeats: int = 3) -> dict:
    """Seconds per call of each runtime on the example, after one warm-up call each."""
    _median_time(module, example_inputs, 1)
    _median_time(compiled, example_inputs, 1)
    return {"torch": _median_time(module, example_inputs, repeats),
            "openvino": _median_time(compiled, example_inputs, repeats)}


def prepare(module: nn.Module, example_inputs: tuple[torch.Tensor, ...], runtime: str = "torch", *,
            name: str, cache_dir: Path | None = None, progress: bool = True):
    """The module to call for inference under `runtime` (torch, openvino or auto)."""
    if runtime not in RUNTIMES:
        from .errors import UserError
        raise UserError(f"unknown runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return module
    key = {"network": name, "shape": [list(x.shape) for x in example_inputs], **machine_key(), "v": PROBE_VERSION}
    path = None
    if runtime == "auto" and cache_dir is not None:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        path = Path(cache_dir) / "runtime" / f"{name}-{digest}.json"
        if path.is_file():
            try:
                if json.loads(path.read_text())["choice"] == "torch":
                    return module
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache entry is probed again
    try:
        compiled = OpenVINOModule(module, example_inputs)
    except Exception as e:  # noqa: BLE001 - a missing or failing runtime must not stop sampling or evaluation
        _warn(f"the openvino runtime is unavailable for {name} ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
              "using torch")
        return module
    if runtime == "openvino":
        return compiled
    seconds = probe(module, compiled, example_inputs)
    choice = min(seconds, key=seconds.get)
    if progress:
        print(f"runtime auto for {name}: torch {seconds['torch']:.3f} s, openvino {seconds['openvino']:.3f} s "
              f"per batch of {example_inputs[0].shape[0]}: {choice}", file=sys.stderr)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"key": key, "seconds": seconds, "choice": choice}, indent=2) + "\n")
        except OSError:
            pass  # an unwritable cache only means probing again next time
    return compiled if choice == "openvino" else module
