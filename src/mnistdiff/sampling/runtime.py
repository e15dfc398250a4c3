"""Inference runtimes for the networks that only run forward: sampling nets and feature extractors.

`--runtime torch` runs the module eagerly; `openvino` converts it once (OpenVINO's PyTorch frontend,
fp32 inference precision), compiles it for each input shape it meets and runs each call's rows in
STREAMS streams at once; `auto` times both on the caller's example input and keeps the faster,
remembering the choice per machine and network in the cache folder. The gain depends on network and CPU
(benchmarks/results.md, runtime_streams.md): Inception-v3 ran ~2x faster in OpenVINO on every CPU
measured; the small UNet from 0.6x (one dynamic-batch graph, on a 2-core AVX512-BF16 Xeon, where torch
eager is fast) to 1.1-1.7x (per-shape graphs in two streams, on a 2-core AVX512-BF16 EPYC); the report's
CNN about 1x; hence a probe rather than a fixed rule. A runtime that is missing or fails falls back
to torch with one warning line.
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

from .. import machine

RUNTIMES = ("torch", "openvino", "auto")
# OpenVINO streams (capped by the thread count), each running an even share of a call's rows at once: on a
# 2-core AVX512-BF16 EPYC, two streams of one thread sampled the quality UNet 1.29-1.34x faster than one
# stream of two threads, and Inception and the report's CNN at the same speed (benchmarks/runtime_streams.md).
STREAMS = 2
PROBE_VERSION = 2  # 2: graphs compiled per input shape, STREAMS streams (were: one dynamic batch)


class OpenVINOModule:
    """A torch module compiled by OpenVINO: called with tensors, returns its first output as a tensor.

    The graph is converted once and compiled for each input shape it meets (fixed shapes, at most
    MAX_SHAPES kept): OpenVINO's CPU plugin picks its kernels per shape, and a graph compiled with a
    dynamic batch ran the quality UNet's forward at about half the speed of the same graph compiled for
    its batch (timed by hand at batch 64 on a 2-core AVX512-BF16 EPYC; Inception gained ~3%). A sampler
    calls its net at one or two shapes (NET_ROWS rows and the remainder), an extractor at its batch and
    the last one."""

    runtime = "openvino"
    MAX_SHAPES = 4

    def __init__(self, module: nn.Module, example_inputs: tuple[torch.Tensor, ...], streams: int = 1):
        import openvino as ov

        # Tracing warns about Python-side shape checks (GroupNorm's) that are constants for these nets.
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = ov.convert_model(module, example_input=tuple(x.contiguous() for x in example_inputs))
        self.n_inputs = len(example_inputs)
        self.core, self.partial_shape, self.queue = ov.Core(), ov.PartialShape, ov.AsyncInferQueue
        # streams > 1: the threads split into that many streams, each running its share of the rows
        self.streams = max(1, min(streams, torch.get_num_threads()))
        self.config = {"INFERENCE_PRECISION_HINT": "f32",  # no bf16/int8 shortcuts: outputs must match torch's
                       "INFERENCE_NUM_THREADS": torch.get_num_threads(), "NUM_STREAMS": self.streams}
        self.compiled: dict[tuple, tuple] = {}  # input shapes -> (compiled model, requests), least recently used first
        self._compiled_for(self._shapes([tuple(x.shape) for x in example_inputs]))  # fail here, not at the first call

    def _shapes(self, shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """The shapes one compiled graph runs: a 1/streams share of the rows where they split evenly."""
        n, k = (shapes[0] or (0,))[0], self.streams
        if k == 1 or n % k or any(not s or s[0] != n for s in shapes):
            return shapes
        return [(n // k, *s[1:]) for s in shapes]

    def _compiled_for(self, shapes: list[tuple[int, ...]]):
        key = tuple(shapes)
        compiled = self.compiled.pop(key, None)
        if compiled is None:
            if len(self.compiled) >= self.MAX_SHAPES:  # each holds its own copy of the weights
                self.compiled.pop(next(iter(self.compiled)))  # the least recently used
            model = self.model.clone()
            model.reshape({model.inputs[i]: self.partial_shape(list(s)) for i, s in enumerate(shapes)})
            compiled = self.core.compile_model(model, "CPU", self.config)
            compiled = compiled, self.queue(compiled, self.streams) if self.streams > 1 else None
        self.compiled[key] = compiled  # (re)inserted last: most recently used
        return compiled

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        # An input left out would not be an error to OpenVINO: its infer request keeps the last call's
        # tensor there (a conditional net would draw the previous batch's digits, or the wrong count).
        if len(inputs) != self.n_inputs:
            raise TypeError(f"this compiled graph takes {self.n_inputs} inputs, got {len(inputs)}")
        # Labels stay integers (an embedding's index); everything else is fp32, as converted.
        arrays = [np.ascontiguousarray((x if not x.is_floating_point() else x.float()).detach().cpu().numpy())
                  for x in inputs]
        shapes = [a.shape for a in arrays]
        parts = self._shapes(shapes)
        compiled, requests = self._compiled_for(parts)
        if parts == shapes:  # one stream, or rows that do not split evenly: one call of all of them
            return torch.from_numpy(np.array(compiled(arrays)[0]))
        n, k = len(arrays[0]), self.streams
        out = [None] * k
        requests.set_callback(lambda request, i: out.__setitem__(i, request.get_output_tensor(0).data.copy()))
        for i in range(k):
            requests.start_async([a[i * n // k:(i + 1) * n // k] for a in arrays], i)
        requests.wait_all()
        return torch.from_numpy(np.concatenate(out))

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


class Autocast(nn.Module):
    """The net run in bf16 autocast (the CPU's AMX / AVX512-BF16 matmuls), its output returned in fp32, so the
    samplers' arithmetic between net calls stays fp32."""

    def __init__(self, net, device_type: str = "cpu"):
        super().__init__()
        self.net, self.device_type = net, device_type

    def forward(self, *inputs):
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.net(*inputs).float()


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def machine_key() -> dict:
    """What decides which runtime is faster: the CPU, its flags, the thread count and the versions."""
    flags = " ".join(sorted(machine.cpu_flags()))
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


def _cached_choice(path: Path) -> str | None:
    """The runtime a probe chose, from its cache entry; None when the entry is damaged."""
    try:
        choice = json.loads(path.read_text()).get("choice")
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, or JSON but not an object
        return None
    return choice if choice in ("torch", "openvino") else None


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
        from ..errors import UserError
        raise UserError(f"unknown runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return module
    key = {"network": name, "shape": [list(x.shape) for x in example_inputs], **machine_key(), "v": PROBE_VERSION}
    path = None
    if runtime == "auto" and cache_dir is not None:
        from ..files import cache_entry

        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        path = Path(cache_dir) / "runtime" / f"{name}-{digest}.json"
        if cache_entry(path):
            choice = _cached_choice(path)
            if choice == "torch":
                return module
            if choice is None:
                _warn(f"the runtime cache entry {path} is damaged; probing again and rewriting it")
        elif path.exists() or path.is_symlink():
            path = None  # not a file: left as it is, and nothing is written there
    try:
        compiled = OpenVINOModule(module, example_inputs, streams=STREAMS)
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
        from ..files import atomic_write_bytes

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, (json.dumps({"key": key, "seconds": seconds, "choice": choice}, indent=2)
                                      + "\n").encode())
        except OSError:
            pass  # an unwritable cache only means probing again next time
    return compiled if choice == "openvino" else module
