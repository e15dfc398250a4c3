"""Files every stage writes or reads the same way: atomic writes, SHA-256 of a file, the per-machine cache
folder, and PNG grids of digits (pixels only: nothing here draws a plot)."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np

from .errors import UserError

TMP_TAG = ".tmp-"  # .NAME.tmp-PID: a write in progress, or left by a killed process (rundir.remove_stale_temporaries)


def atomic_write_bytes(path: Path, payload: bytes, *, new: bool = False) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over the target.

    A reader (or a resumed run after kill -9) sees either the old file or the new one, never half.
    new=True never replaces a file: the target is linked into place, and FileExistsError is raised when
    something took its name in the meantime (two processes writing the same result).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TMP_TAG}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        if new:
            os.link(tmp, path)
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException:  # a full disk, a refused rename, Ctrl-C: no half file left behind
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_dir(arg: str | os.PathLike | None = None) -> Path:
    """What is computed once per machine (the classifier, reference features, runtime probes): --cache-dir,
    else $MNISTDIFF_CACHE, else ~/.cache/mnistdiff. Refused at once when it names something other than a
    folder, before any work whose result it would keep."""
    path = Path(arg or os.environ.get("MNISTDIFF_CACHE") or Path.home() / ".cache" / "mnistdiff")
    if (path.exists() or path.is_symlink()) and not path.is_dir():
        raise UserError(f"the cache folder {path} is not a folder; pass --cache-dir DIR (or set MNISTDIFF_CACHE) "
                        "to a folder, new or existing")
    return path


def cache_entry(path: Path) -> bool:
    """Whether a cache entry may be read: it is a regular file. Anything else in its place (a FIFO would
    block the reader, a directory or a socket cannot be read) is passed over with one warning, and the value
    is computed again."""
    path = Path(path)
    if path.is_file():
        return True
    if path.exists() or path.is_symlink():
        print(f"warning: ignoring the cache entry {path}: not a regular file", file=sys.stderr)
    return False


def grid_array(images_u8, nrow: int, pad: int = 2) -> np.ndarray:
    """(N, H, W) uint8 -> one (rows*(H+pad)+pad, nrow*(W+pad)+pad) uint8 mosaic on a grey border."""
    imgs = np.asarray(images_u8, dtype=np.uint8)
    n, h, w = imgs.shape
    rows = -(-n // nrow)
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad), 128, np.uint8)
    for i, img in enumerate(imgs):
        r, c = divmod(i, nrow)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img
    return out


def png_bytes(image) -> bytes:
    """A PIL image encoded as PNG, for an atomic write or a report's embedded figure."""
    import io

    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def save_grid(images_u8, path: Path, nrow: int = 4, scale: int = 3) -> None:
    """PNG grid, upscaled with nearest neighbour so digits stay crisp in a viewer."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(grid_array(images_u8, nrow), mode="L")
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)
