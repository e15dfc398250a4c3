"""The run directory: creation without clobbering, a lock, the metrics log and the evaluation rows (its
checkpoint files: checkpoint/store.py).

    RUN/config.json  metrics.jsonl  samples/  figures/  checkpoints/{last,prev,best}.safetensors
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path

from .. import files
from ..errors import UserError
from .checkpoint.store import CKPT_DIR

def create(run: Path, config_json: str) -> None:
    """Make a new run directory; refuse (before writing anything) if one is already there."""
    if run.exists() and (not run.is_dir() or any(run.iterdir())):
        raise UserError(f"run directory {run} already exists; continue it with `mnistdiff train --resume {run}` "
                        "or choose another --run")
    try:
        run.mkdir(parents=True, exist_ok=True)
        for sub in ("samples", "figures", CKPT_DIR):
            (run / sub).mkdir(exist_ok=True)
        files.atomic_write_bytes(run / "config.json", config_json.encode())
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
        for tmp in folder.glob(f".*{files.TMP_TAG}*"):
            if tmp.name.rpartition(files.TMP_TAG)[2] != str(os.getpid()) and tmp.is_file():
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
        files.atomic_write_bytes(self.path, "".join(keep).encode())

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


