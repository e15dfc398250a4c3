"""The reference cache: Inception features of the first N digits of an MNIST split, computed once per machine.

They are cached on disk under a key naming everything that changes them (the weights' and the data's
SHA-256, the split, the resize), checked against their own SHA-256 when read, and any longer cached prefix of
the same split serves a shorter one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from .. import data
from ..files import atomic_write_bytes
from ..errors import UserError
from .. import files
from . import features as F


def reference_key(inception: F.InceptionFeatures, split: data.Split, split_name: str, count: int) -> dict:
    return {"features": inception.name, "weights_sha256": inception.sha256, "data_sha256": split.sha256,
            "split": split_name, "count": count, "images": f"the first {count} of the split",
            "resize": F.RESIZE}


def _features_digest(features: torch.Tensor) -> str:
    return hashlib.sha256(features.contiguous().numpy().tobytes()).hexdigest()


def _read_cached(path: Path, key: dict, count: int, dim: int) -> torch.Tensor | None:
    """The first `count` rows of a cache file made under the same key (any count >= ours), else None.

    The first N images of a split are the first N of any longer prefix, so a larger cached set
    serves every smaller count. A file that fails its checksum is ignored (and recomputed).
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            stored = json.loads(meta["key"])
            features = f.get_tensor("features")
    except Exception:  # noqa: BLE001 - damaged or foreign: never trusted
        return None
    same = lambda k: {n: v for n, v in k.items() if n not in ("count", "images")}  # noqa: E731
    if same(stored) != same(key) or features.shape[0] < count or features.shape[1:] != (dim,):
        return None
    if meta.get("sha256") != _features_digest(features):
        return None
    return features[:count].clone()


def reference_features(inception: F.InceptionFeatures, split_name: str, count: int, *, cache: Path,
                       data_dir=None, batch_size: int = 64, progress: bool = True) -> tuple[torch.Tensor, dict]:
    """Inception features of the first `count` images of a split, from the cache or computed and cached."""
    split = data.load_split(split_name, data_dir)
    if not 2 <= count <= len(split):
        raise UserError(f"reference count {count} must lie in [2, {len(split)}] for the {split_name} split")
    key = reference_key(inception, split, split_name, count)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache) / "reference"
    path = folder / f"inception-{split_name}-{count}-{digest}.safetensors"
    larger = sorted(folder.glob(f"inception-{split_name}-*.safetensors"),
                    key=lambda q: int(q.name.split("-")[2]) if q.name.split("-")[2].isdigit() else 0)
    for candidate in [path] + [q for q in larger if q != path]:
        stored = _read_cached(candidate, key, count, inception.num_features) if files.cache_entry(candidate) else None
        if stored is not None:
            if progress:
                print(f"reusing cached reference features {candidate}"
                      + (f" (its first {count} rows)" if candidate != path else ""), file=sys.stderr)
            return stored, {**key, "cache": str(candidate), "reused": True}
    features = F.extract(inception, split.images[:count], batch_size=batch_size,
                         label=f"Inception features of {split_name}[:{count}]", progress=progress)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, save({"features": features.contiguous()},
                                      metadata={"key": json.dumps(key, sort_keys=True),
                                                "sha256": _features_digest(features)}))
    except OSError as e:
        raise UserError(f"cannot write the reference cache {folder} ({e.strerror}); "
                        "pass a writable --cache-dir or set MNISTDIFF_CACHE") from None
    return features, {**key, "cache": str(path), "reused": False}
