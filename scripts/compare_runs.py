"""Compare two run directories bit for bit: `python scripts/compare_runs.py RUN_A RUN_B`.

Exit 0 when identical, 1 (listing each difference) when not, 2 on bad arguments. Compared:
checkpoint tensors (dtype, shape and bytes) with their config and state; metrics.jsonl and other
JSON files without wall-clock fields (times, speeds, dates); .npy arrays (dtype, shape, bytes);
PNGs by decoded pixels; every other file by its bytes. A file on one side only is a difference.
Used to check that a refactor changes no result: the same seed must give the same run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

# Wall-clock fields: they measure the machine, not the computation.
VOLATILE = {"time_s", "images_per_s", "timestamp", "time", "date", "wall_s", "metrics_s", "sampling_s",
            "started", "finished"}
SKIPPED = {".lock"}  # the run lock: its content is a process id
# A checkpoint's state["rng"] holds numpy's and Python's global generators, saved for resume but never
# seeded or used by mnistdiff: they differ from process to process. (torch's, which is seeded, is a
# tensor, rng/torch, and is compared.)
UNSEEDED_STATE = {"rng"}
# The checkpoint's sha256 covers its header, state["rng"] included, so it differs with those generators from
# process to process; what it covers is compared directly (every tensor, the config, the rest of the state).
DERIVED_METADATA = {"sha256"}


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _json_or_text(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _checkpoint(path: Path):
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        meta = {k: _json_or_text(v) for k, v in (f.metadata() or {}).items()}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, meta


def _arrays_differ(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes()


def compare_file(a: Path, b: Path) -> list[str]:
    """What differs between two files of the same relative path (empty when identical)."""
    if a.suffix == ".safetensors":
        (ta, ma), (tb, mb) = _checkpoint(a), _checkpoint(b)
        out = [f"tensor {k} on one side only" for k in sorted(set(ta) ^ set(tb))]
        out += [f"tensor {k} differs" for k in sorted(set(ta) & set(tb)) if _arrays_differ(ta[k], tb[k])]
        for meta in (ma, mb):
            if isinstance(meta.get("state"), dict):
                meta["state"] = {k: v for k, v in meta["state"].items() if k not in UNSEEDED_STATE}
        out += [f"metadata {k} differs" for k in sorted((set(ma) | set(mb)) - DERIVED_METADATA)
                if _strip(ma.get(k)) != _strip(mb.get(k))]
        return out
    if a.suffix == ".jsonl":
        ra = [_strip(json.loads(line)) for line in a.read_text().splitlines() if line.strip()]
        rb = [_strip(json.loads(line)) for line in b.read_text().splitlines() if line.strip()]
        if len(ra) != len(rb):
            return [f"{len(ra)} rows against {len(rb)}"]
        return [f"row {i + 1} differs: {x} != {y}" for i, (x, y) in enumerate(zip(ra, rb)) if x != y][:5]
    if a.suffix == ".json":
        return [] if _strip(json.loads(a.read_text())) == _strip(json.loads(b.read_text())) else ["content differs"]
    if a.suffix == ".npy":
        return ["array differs"] if _arrays_differ(np.load(a), np.load(b)) else []
    if a.suffix == ".png":
        from PIL import Image

        with Image.open(a) as ia, Image.open(b) as ib:
            same = ia.mode == ib.mode and ia.size == ib.size and ia.tobytes() == ib.tobytes()
        return [] if same else ["pixels differ"]
    return [] if a.read_bytes() == b.read_bytes() else ["bytes differ"]


def compare(a: Path, b: Path) -> list[str]:
    """Every difference between run directories a and b, one line each."""
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name not in SKIPPED}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name not in SKIPPED}
    out = [f"{p}: only in {a if p in files_a else b}" for p in sorted(files_a ^ files_b)]
    for p in sorted(files_a & files_b):
        out += [f"{p}: {d}" for d in compare_file(a / p, b / p)]
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not all(Path(p).is_dir() for p in argv):
        print("usage: compare_runs.py RUN_A RUN_B (two run directories)", file=sys.stderr)
        return 2
    a, b = map(Path, argv)
    diffs = compare(a, b)
    for line in diffs:
        print(line)
    n = sum(1 for p in a.rglob("*") if p.is_file() and p.name not in SKIPPED)
    print(f"{a} and {b}: " + (f"{len(diffs)} difference(s)" if diffs else f"identical ({n} files)"),
          file=sys.stderr)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
