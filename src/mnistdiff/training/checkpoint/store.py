"""A run's checkpoint files: RUN/checkpoints/{last,prev,best}.safetensors rotated so a kill at any moment keeps a
loadable one, and RUN/snapshots/epoch_NNNN.safetensors kept for the --sample-epochs epochs."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from ...errors import UserError
from . import format as checkpoint

CKPT_DIR = "checkpoints"


CHECKPOINT_NAMES = ("last", "best", "prev")  # what sample, evaluate and the API may load


def checkpoint_path(run: Path, which: str = "last") -> Path:
    return Path(run) / CKPT_DIR / f"{which}.safetensors"


ROTATION = ("next", "last", "prev")  # next: fully written, not yet renamed (a kill mid-rotation)


def load_latest(run: Path, *, warn=print, foreign=None):
    """The good checkpoint with the most steps among next/last/prev, or None if there is none at all.

    A corrupt or truncated file is reported and skipped, so resume falls back to the previous one; so is
    one for which foreign(config dict) gives a reason (a checkpoint of another configuration left there),
    while another is usable: when all are foreign, the newest is returned, for the caller to refuse.
    """
    good, errors, others = [], [], []
    for which in ROTATION:
        path = checkpoint_path(run, which)
        if not path.exists() and not path.is_symlink():
            continue
        try:
            loaded = checkpoint.load(path)
        except checkpoint.CorruptCheckpoint as e:
            reason = str(e).split("; ")[0]  # what is wrong, without the advice for a single file
            errors.append(f"{which}: {reason.replace(f'checkpoint {path} ', '')}")
            warn(f"warning: {reason}; falling back to an older checkpoint")
            continue
        if not loaded[2]:  # a weights-only model file (format.WEIGHTS_FORMAT) samples but cannot resume
            errors.append(f"{which}: a weights-only model file, not a training checkpoint")
            warn(f"warning: {path} is a weights-only model file, not a training checkpoint; falling back to an "
                 "older checkpoint")
            continue
        why = foreign(loaded[1]) if foreign else None
        (others if why else good).append((loaded[2].get("step", 0), path, loaded, why))
    for _, path, _, why in others if good else []:
        warn(f"warning: skipping {path}: {why}")
    if good or others:
        _, path, loaded, _ = max(good or others, key=lambda g: g[0])
        return path, loaded
    if errors:
        diverged = any("non-finite" in e for e in errors)
        raise UserError(f"no usable checkpoint in {run} ({'; '.join(errors)}); it cannot be resumed: start a new "
                        "run (`mnistdiff train --run NEW ...`)" + (" with a lower --lr" if diverged else ""))
    return None


def save_rotating(run: Path, **kwargs) -> None:
    """Write last.safetensors, keeping the previous one as prev.safetensors.

    At every instant at least one complete checkpoint exists under next/last/prev.
    """
    nxt, last, prev = (checkpoint_path(run, w) for w in ROTATION)
    with _writing(run):
        checkpoint.save(nxt, **kwargs)
        _fault_pause()
        for slot in (last, prev):
            _set_aside_if_not_a_file(slot)
        if last.exists():
            os.replace(last, prev)
        _fault_pause()
        os.replace(nxt, last)


def save_best(run: Path, **kwargs) -> None:
    best = checkpoint_path(run, "best")
    with _writing(run):
        _set_aside_if_not_a_file(best)
        checkpoint.save(best, **kwargs)


SNAPSHOT_DIR = "snapshots"  # RUN/snapshots/epoch_NNNN.safetensors: the checkpoint at the end of each sample epoch


def snapshot_path(run: Path, epoch: int) -> Path:
    return Path(run) / SNAPSHOT_DIR / f"epoch_{epoch:04d}.safetensors"


def snapshots(run: Path) -> dict[int, Path]:
    """{epoch: path} of the run's snapshots, in epoch order."""
    found = sorted(Path(run).glob(f"{SNAPSHOT_DIR}/epoch_[0-9][0-9][0-9][0-9].safetensors"))
    return {int(p.stem.removeprefix("epoch_")): p for p in found}


def save_snapshot(run: Path, epoch: int, **kwargs) -> None:
    path = snapshot_path(run, epoch)
    with _writing(run):
        path.parent.mkdir(exist_ok=True)
        _set_aside_if_not_a_file(path)
        checkpoint.save(path, **kwargs)


@contextmanager
def _writing(run: Path):
    try:
        yield
    except OSError as e:
        raise UserError(f"cannot write to {Path(run) / CKPT_DIR} ({e.strerror}); free space or fix its "
                        f"permissions, then `mnistdiff train --resume {run}` (the last good checkpoint is "
                        "kept)") from None


def _set_aside_if_not_a_file(path: Path) -> None:
    """A directory or FIFO where a checkpoint goes (load_latest skipped it) is renamed, never deleted."""
    if (path.exists() or path.is_symlink()) and not path.is_file():
        aside = path.with_name(f"{path.name}.not-a-checkpoint-{int(time.time())}")
        os.replace(path, aside)
        print(f"warning: {path} was not a checkpoint file; moved it to {aside}", file=sys.stderr)


def _fault_pause() -> None:
    """Testing hook: MNISTDIFF_CHECKPOINT_PAUSE=seconds widens the rotation's windows so a test can
    SIGKILL the process in the middle of a checkpoint write (tests/test_reliability.py)."""
    pause = os.environ.get("MNISTDIFF_CHECKPOINT_PAUSE")
    if pause:
        time.sleep(float(pause))
