"""Checkpoints: safetensors for tensors, JSON for everything else; atomic, verified, never pickled.

One file holds the model, the optimizer state, every RNG state, the step counters and the resolved
config. Loading executes nothing from the file: safetensors is a JSON header plus raw bytes.
A SHA-256 over every tensor (name, dtype, shape, bytes) and the header's format, config and state,
stored in the header, catches corruption that keeps the length; then validate.py verifies what
the bytes say (shapes against the config's net, finite weights, every state field's type and range).
Files of the first format (digest over the tensor bytes only) still load, with the same content checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import stat
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from ..ema import EMA_PREFIX  # noqa: F401 - re-exported: callers say checkpoint.EMA_PREFIX
from ... import files
from ...errors import CorruptCheckpoint, UserError

FORMAT = "mnistdiff-checkpoint-2"
FORMAT_1 = "mnistdiff-checkpoint-1"  # digest over the tensors only; read, never written
# A trained net and nothing else (the shipped models): its weights as "model/..." and its config, under the same
# SHA-256 and content checks; no optimiser, RNG or counters, so it samples but does not resume.
WEIGHTS_FORMAT = "mnistdiff-weights-1"


def _digest(tensors: dict[str, torch.Tensor], header: dict[str, str] | None = None) -> str:
    """SHA-256 of the tensors and (format 2) the header's strings; header=None gives format 1's digest."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        if header is not None:
            h.update(repr(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    for key in sorted(header or {}):
        value = header[key].encode()
        h.update(f"{key}:{len(value)}:".encode())
        h.update(value)
    return h.hexdigest()


def rng_state() -> dict:
    """Global RNG states as JSON-able values (torch's goes in as a tensor, separately)."""
    np_state = np.random.get_state()
    return {
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }


def set_rng_state(state: dict, torch_state: torch.Tensor | None) -> None:
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if torch_state is not None:
        torch.set_rng_state(torch_state)


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state_dict into tensors (for safetensors) and JSON (the rest)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"optim/{idx}/{key}"] = value
            else:
                scalars[f"{idx}/{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim/"):
            _, idx, key = name.split("/", 2)
            state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split("/", 1)
        state.setdefault(int(idx), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save(path: Path, *, tensors: dict[str, torch.Tensor], config: dict, state: dict, format: str = FORMAT) -> None:  # noqa: A002
    """Write one checkpoint atomically. `state` must be JSON-able (counters, RNG, optimizer groups); a
    WEIGHTS_FORMAT file has the model's tensors only and an empty state."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {
        "format": format,
        "config": json.dumps(config, sort_keys=True),
        "state": json.dumps(state, sort_keys=True),
    }
    meta["sha256"] = _digest(tensors, meta)
    files.atomic_write_bytes(Path(path), st_save(tensors, metadata=meta))


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """-> (tensors, config dict, state dict); raises CorruptCheckpoint on any damage."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        if path.is_symlink():
            raise CorruptCheckpoint(f"checkpoint {path} is a symbolic link to nothing (missing or looping); remove "
                                    "it, or sample with --checkpoint prev") from None
        raise UserError(f"checkpoint {path} does not exist; train first or pass an existing --checkpoint") from None
    if not stat.S_ISREG(mode):  # never opened: reading a FIFO would block
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else \
            "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
            else "not a regular file"
        raise CorruptCheckpoint(f"checkpoint {path} is {kind}, not a checkpoint file; remove it, "
                                "or sample with --checkpoint prev")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # noqa: BLE001 - SafetensorError, OSError, ...; a Rust panic is a BaseException
        raise CorruptCheckpoint(f"checkpoint {path} is truncated or not a safetensors file ({e}); "
                                "delete it or resume from another checkpoint") from None
    if meta.get("format") not in (FORMAT, FORMAT_1, WEIGHTS_FORMAT):
        raise CorruptCheckpoint(f"{path} is not a mnistdiff checkpoint (format {meta.get('format')!r})")
    header = None if meta["format"] == FORMAT_1 else {k: meta.get(k, "") for k in ("format", "config", "state")}
    if _digest(tensors, header) != meta.get("sha256"):
        raise CorruptCheckpoint(f"checkpoint {path} fails its SHA-256 check (the file was altered or "
                                "damaged); delete it or resume from another checkpoint")
    try:
        config, state = json.loads(meta["config"]), json.loads(meta["state"])
    except (KeyError, ValueError, RecursionError) as e:
        raise CorruptCheckpoint(f"checkpoint {path} has an unreadable header ({e})") from None
    from .validate import check, check_weights  # they build nets and optimizers, which import this module

    if meta["format"] == WEIGHTS_FORMAT:
        check_weights(path, tensors, config, state)
    else:
        check(path, tensors, config, state)
    return tensors, config, state




def model_tensors(net: torch.nn.Module, prefix: str = "model/") -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in net.state_dict().items()}


def load_model(net: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str = "model/") -> None:
    sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        net.load_state_dict(sd)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(f"the checkpoint's weights do not fit the configured network ({first}); "
                        "use the checkpoint's own config") from None
