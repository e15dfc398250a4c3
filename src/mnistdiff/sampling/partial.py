"""Sampling that survives an interruption: each finished batch of a long `generate` is kept on disk with the
random state that follows it, so the same request run again starts at the first missing batch.

A 2,000-sample evaluation of a 1000-step DDPM costs hours on one CPU core; losing it to a closed laptop or a
preempted cloud machine would cost them again. The folder (RUN/eval/NAME.partial/) holds request.json (what
determines the images: the weights' SHA-256, sampler, start, seeds, batch size...) and, per batch k,
batch-k.npy (uint8 images) with batch-k.rng.npy (the generator state after it). Resumed on the same CPU, the
images equal those of an uninterrupted run; on another CPU, each batch is still a draw of the same request.
The precision is not part of the request: `auto` picks bf16 only where it scores as fp32 does
(machine.inference_precision), so a set begun in fp32 may be finished in bf16 on a faster CPU;
request.json's "drawn" says which CPU and precision made how many batches.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import torch

from .. import files, machine
from ..errors import UserError

FORMAT = "mnistdiff-partial-1"
STATE_SHAPE = torch.Generator().get_state().shape  # a CPU generator's state (Mersenne Twister)


class Partial:
    """The batches of one request already sampled, in `folder`; `request` is what must match to reuse them."""

    def __init__(self, folder: Path, request: dict, precision: str):
        self.folder = Path(folder)
        self.request = json.loads(json.dumps({"format": FORMAT, **request}))  # as it reads back (lists, not tuples)
        self.here = {"cpu": machine.cpu_model(), "precision": precision}
        self.drawn: list[dict] = []  # {"cpu", "precision", "batches"}, in the order they were made
        self.resumed = 0  # batches found on disk

    def batches(self) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """(images of each batch sampled so far, the generator state after the last), starting the folder
        when there is none. A folder made for another request is refused, not overwritten."""
        spec = self.folder / "request.json"
        if not spec.is_file():
            if self.folder.exists() or self.folder.is_symlink():
                raise UserError(f"{self.folder} is in the way of this evaluation's saved batches (no request.json); "
                                "move it aside or pass another --name")
            self.folder.mkdir(parents=True)
            self._write_request()
            return [], None
        try:
            saved = json.loads(spec.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError(f"{spec} is unreadable ({e}); delete {self.folder} to sample again") from None
        self.drawn = saved.pop("drawn", [])
        if saved != self.request:
            differ = sorted(k for k in set(saved) | set(self.request) if saved.get(k) != self.request.get(k))
            raise UserError(f"{self.folder} holds batches of another request (it differs in {', '.join(differ)}); "
                            "delete it to sample again, or pass another --name")
        n, size = self.request["n"], self.request["batch_size"]
        images, state, k = [], None, 0
        while (self.folder / f"batch-{k:04d}.npy").is_file() and (self.folder / f"batch-{k:04d}.rng.npy").is_file():
            path = self.folder / f"batch-{k:04d}.npy"
            try:
                batch = np.load(path)
                state = torch.from_numpy(np.load(self.folder / f"batch-{k:04d}.rng.npy"))
            except (OSError, ValueError, EOFError):
                batch = state = None
            if not isinstance(batch, np.ndarray) or batch.dtype != np.uint8 or k * size >= n \
                    or batch.shape[0] != min(size, n - k * size) or state.dtype != torch.uint8 \
                    or state.shape != STATE_SHAPE:
                raise UserError(f"{path} is damaged or not this request's batch {k}; delete it and the batches after "
                                "it to sample them again") from None
            images.append(torch.from_numpy(batch))
            k += 1
        self.resumed = k
        return images, state

    def save(self, k: int, images: torch.Tensor, state: torch.Tensor) -> None:
        """Batch k and the generator state after it; the images first, so a batch is complete once its state is."""
        for path, array in ((self.folder / f"batch-{k:04d}.npy", images.numpy()),
                            (self.folder / f"batch-{k:04d}.rng.npy", state.numpy())):
            buf = io.BytesIO()
            np.save(buf, array)
            files.atomic_write_bytes(path, buf.getvalue())
        if self.drawn and {key: self.drawn[-1][key] for key in self.here} == self.here:
            self.drawn[-1]["batches"] += 1
        else:
            self.drawn.append({**self.here, "batches": 1})
        self._write_request()

    def precision(self) -> str:
        """Of the whole set: one precision, or those of its parts in order ("fp32+bf16")."""
        used = dict.fromkeys(d["precision"] for d in self.drawn) or {self.here["precision"]: None}
        return "+".join(used)

    def _write_request(self) -> None:
        files.atomic_write_bytes(self.folder / "request.json",
                                 (json.dumps({**self.request, "drawn": self.drawn}, indent=2) + "\n").encode())

    def discard(self) -> None:
        """Once the result that needs them is written."""
        shutil.rmtree(self.folder, ignore_errors=True)
