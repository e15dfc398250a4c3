"""The run directory: creation without clobbering, a lock, the metrics log and checkpoint files.

    RUN/config.json  metrics.jsonl  samples/  figures/  checkpoints/{last,prev,best}.safetensors
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from . import checkpoint
from .errors import UserError

CKPT_DIR = "checkpoints"


def create(run: Path, config_json: str) -> None:
    """Make a new run directory; refuse (before writing anything) if one is already there."""
    if run.exists() and (not run.is_dir() or any(run.iterdir())):
        raise UserError(f"run directory {run} already exists; continue it with `mnistdiff train --resume {run}` "
                        "or choose another --run")
    try:
        run.mkdir(parents=True, exist_ok=True)
        for sub in ("samples", "figures", CKPT_DIR):
            (run / sub).mkdir(exist_ok=True)
        checkpoint.atomic_write_bytes(run / "config.json", config_json.encode())
    except OSError as e:
        raise UserError(f"cannot write to {run} ({e.strerror}); choose a writable --run directory") from None


def ensure_writable(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory} is a file, not a directory; choose another output path")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to {directory} ({e.strerror}); choose a writable directory") from None


@contextmanager
def locked(run: Path, what: str = "training", name: str = ".lock"):
    """Hold an exclusive lock on RUN/.lock for the life of a training process (or on FOLDER/NAME for
    another writer of a folder: an evaluation and its result name).

    flock is released by the kernel when the process dies (even by SIGKILL), so a crashed
    run never leaves a stale lock behind.
    """
    try:
        fd = os.open(run / name, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(f"cannot write to {run} ({e.strerror}); choose a writable --run directory") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                fix = "wait for it to finish" + (" or choose another --run" if what == "training" else "")
                raise UserError(f"{run} is in use by another {what} process (pid {holder}); {fix}") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        if what == "training":  # the run's files are the lock holder's alone
            remove_stale_temporaries(run)
        yield
    finally:
        os.close(fd)


def remove_stale_temporaries(run: Path) -> None:
    """Delete the .NAME.tmp-PID files of writers killed mid-write (2 MB each for a checkpoint).

    Called with the run's lock held: only the lock holder writes there, so any such file is stale.
    """
    for folder in (Path(run), Path(run) / CKPT_DIR):
        for tmp in folder.glob(f".*{checkpoint.TMP_TAG}*"):
            if tmp.name.rpartition(checkpoint.TMP_TAG)[2] != str(os.getpid()) and tmp.is_file():
                tmp.unlink(missing_ok=True)


class MetricsLog:
    """metrics.jsonl: one JSON object a line, each with a 'type' and the global 'step'.

    On resume the log is cut back to the checkpoint's step, so rows written after the last
    checkpoint (and redone after a kill) appear once: the log of a resumed run equals an
    uninterrupted one.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._f = None

    def truncate_to(self, step: int) -> None:
        if not self.path.exists():
            return
        keep = [line for i, line in enumerate(_read_text(self.path).splitlines(keepends=True), 1)
                if line.endswith("\n") and parse_row(line, f"{self.path} line {i}").get("step", 0) <= step]
        checkpoint.atomic_write_bytes(self.path, "".join(keep).encode())

    def write(self, **row) -> None:
        if self._f is None:
            self._f = open(self.path, "a")
        self._f.write(json.dumps(row) + "\n")

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()
            os.fsync(self._f.fileno())

    def close(self) -> None:
        if self._f is not None:
            self.flush()
            self._f.close()
            self._f = None


def read_metrics(run: Path) -> list[dict]:
    """The rows of RUN/metrics.jsonl (the one reader of it); a run still training may end in a
    half-written line, which is left out."""
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        return []
    return read_rows(path)


def read_rows(path: Path) -> list[dict]:
    """The complete rows of a JSON-lines log that MetricsLog (or an appending evaluation) writes."""
    return [parse_row(line, f"{path} line {i}") for i, line in enumerate(_read_text(path).splitlines(keepends=True), 1)
            if line.endswith("\n") and line.strip()]


EPOCH_EVALS = "epochs.jsonl"  # RUN/eval/epochs.jsonl: one 'eval' row per evaluated snapshot (evaluate --snapshots)


def epoch_evals(run: Path) -> list[dict]:
    """The 'eval' rows of the run's evaluated snapshots; the report reads them with metrics.jsonl's."""
    path = Path(run) / "eval" / EPOCH_EVALS
    return read_rows(path) if path.exists() else []


ROW_NUMBERS = ("loss", "loss_mean", "time_s", "images_per_s")  # numbers in the iter and epoch rows


def parse_row(line: str, where: str) -> dict:
    """One metrics.jsonl row as MetricsLog writes it, else a one-line UserError naming the line."""
    try:
        row = json.loads(line)
    except ValueError:
        row = None
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    if not (isinstance(row, dict) and isinstance(row.get("type"), str)
            and all(isinstance(row[k], int) and not isinstance(row[k], bool) and row[k] >= 0
                    for k in ("step", "epoch") if k in row)
            and (row["type"] not in ("iter", "epoch") or all(k in row for k in ("epoch", "step"))
                 and all(number(row[k]) for k in ROW_NUMBERS if k in row))):
        raise UserError(f"{where} is not a metrics row as mnistdiff writes them; repair or delete that line")
    return row


def _read_text(path: Path) -> str:
    if not path.is_file():  # a FIFO would block, a directory raises
        raise UserError(f"{path} is not a regular file; move it away (the run's log is a file)")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path} ({getattr(e, 'strerror', None) or e}); repair or move it away") from None


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
