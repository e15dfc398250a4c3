"""MNIST from the four original IDX files: download, verification, parsing, in-memory tensors.

Everything lives in memory as one uint8 tensor per split (47 MB for train); batches are taken by
indexing a shuffled permutation, never by per-item transforms (that is what makes the loop fast).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

# SHA-256 of the *decompressed* IDX files (the .gz wrappers vary between mirrors).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
SPLITS = {"train": ("train", 60000), "test": ("t10k", 10000)}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
DEFAULT_DATA_DIR = Path("data/mnist")


@dataclass(frozen=True)
class Split:
    """One MNIST split in memory: images (N, 28, 28) uint8, labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor
    sha256: str  # of the decompressed image file: names the data in caches and checkpoints

    def __len__(self) -> int:
        return self.images.shape[0]


def resolve_data_dir(arg: str | os.PathLike | None = None) -> Path:
    """--data-dir, else $MNISTDIFF_DATA, else ./data/mnist."""
    if arg:
        return Path(arg)
    env = os.environ.get("MNISTDIFF_DATA")
    return Path(env) if env else DEFAULT_DATA_DIR


def _find(data_dir: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (data_dir / name).is_file():
            return data_dir / name
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise UserError(f"cannot read {path}: {e}; delete it and rerun to download it again, "
                        "or point --data-dir / MNISTDIFF_DATA at a good copy") from None


def parse_idx(raw: bytes, *, magic: int, count: int, name: str = "IDX data") -> np.ndarray:
    """Parse an IDX file (big-endian header: magic, then one uint32 per dimension), checking it all."""
    ndim = 3 if magic == IMAGE_MAGIC else 1
    header = 4 * (1 + ndim)
    if len(raw) < header:
        raise UserError(f"{name} is truncated ({len(raw)} bytes, header needs {header}); "
                        "delete it and download it again")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise UserError(f"{name} has magic number {found}, expected {magic}: it is not an MNIST "
                        f"{'image' if magic == IMAGE_MAGIC else 'label'} file; replace it with the original")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if dims[0] != count:
        raise UserError(f"{name} holds {dims[0]} items, expected {count}; replace it with the original file")
    if ndim == 3 and dims[1:] != [28, 28]:
        raise UserError(f"{name} has images of {dims[1]}x{dims[2]}, expected 28x28; replace it with the original")
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise UserError(f"{name} is {len(raw)} bytes, expected {expected} (truncated or padded); "
                        "delete it and download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def mirrors() -> tuple[str, ...]:
    """$MNISTDIFF_MIRRORS (comma-separated base URLs, e.g. an institute's mirror), else the public ones."""
    env = os.environ.get("MNISTDIFF_MIRRORS")
    return tuple(m.strip().rstrip("/") + "/" for m in env.split(",") if m.strip()) if env else MIRRORS


def download(data_dir: Path, stems: list[str]) -> None:
    """Fetch missing files from the mirrors, trying each in turn; keep only verified content."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        errors = []
        for base in mirrors():
            try:
                print(f"downloading {base}{stem}.gz", file=sys.stderr)
                with urllib.request.urlopen(base + stem + ".gz", timeout=30) as r:
                    payload = r.read()
                raw = gzip.decompress(payload)
            except Exception as e:  # noqa: BLE001 - any failure means: try the next mirror
                errors.append(f"{base}: {e}")
                continue
            if hashlib.sha256(raw).hexdigest() != SHA256[stem]:
                errors.append(f"{base}: checksum mismatch")
                continue
            # Write under a temporary name, then rename: a killed download never leaves half a file.
            with tempfile.NamedTemporaryFile(dir=data_dir, delete=False, suffix=".part") as tmp:
                tmp.write(payload)
            os.replace(tmp.name, data_dir / (stem + ".gz"))
            break
        else:
            raise UserError(f"could not download {stem} into {data_dir} ({'; '.join(errors)}); "
                            "copy the four MNIST IDX files there by hand or set MNISTDIFF_DATA")


_CACHE: dict[tuple[str, str], Split] = {}


def load_split(split: str = "train", data_dir: str | os.PathLike | None = None, *,
               allow_download: bool = True) -> Split:
    """Load one split as uint8 tensors, downloading and verifying the files if they are missing."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of {sorted(SPLITS)}")
    root = resolve_data_dir(data_dir)
    prefix, count = SPLITS[split]
    stems = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    key = (str(root.resolve()), split)
    if key in _CACHE:
        return _CACHE[key]
    missing = [s for s in stems if _find(root, s) is None]
    if missing:
        if not allow_download:
            raise UserError(f"MNIST file {missing[0]} not found in {root}; pass --data-dir or set MNISTDIFF_DATA")
        try:
            download(root, missing)
        except OSError as e:
            raise UserError(f"cannot write MNIST into {root}: {e}; pass a writable --data-dir") from None
    arrays = []
    for stem, magic in zip(stems, (IMAGE_MAGIC, LABEL_MAGIC)):
        path = _find(root, stem)
        raw = _read_bytes(path)
        arr = parse_idx(raw, magic=magic, count=count, name=str(path))
        digest = hashlib.sha256(raw).hexdigest()
        if digest != SHA256[stem]:
            raise UserError(f"{path} fails its checksum (sha256 {digest[:12]}..., expected "
                            f"{SHA256[stem][:12]}...); delete it and download it again")
        arrays.append((arr, digest))
    (images, digest), (labels, _) = arrays
    out = Split(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)), digest)
    _CACHE[key] = out
    return out


