"""Progress that reads well everywhere: a tqdm bar with an ETA in a terminal; where stderr is not a
terminal (a log file, CI, a notebook's captured output), one plain line at most every INTERVAL seconds
with the rate and the ETA. tqdm's carriage-return redraws wrote ~600 KB of bars into the log of one epoch.
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

INTERVAL = 30.0  # seconds between plain lines


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """progress = Progress(total, "epoch 3/6", "step"); progress.update(1, loss="0.05"); progress.close()."""

    def __init__(self, total: int, desc: str, unit: str = "it", *, initial: int = 0, enabled: bool = True,
                 stream=None, interval: float = INTERVAL):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.stream = stream or sys.stderr
        self.n = self.start = initial
        self.interval = interval
        self.t0 = self.last = time.monotonic()
        isatty = getattr(self.stream, "isatty", None)
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream, leave=False) \
            if enabled and isatty is not None and isatty() else None

    def update(self, k: int = 1, **postfix) -> None:
        self.n += k
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(k)
        self._show(postfix)

    def tick(self, **postfix) -> None:
        """Work inside one unit (a sampling batch of 500 guided images takes minutes): the count does not
        move, but the progress bar's postfix, or a plain line every interval, still shows where the work is."""
        if self.enabled:
            self._show(postfix)

    def _show(self, postfix: dict) -> None:
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(**postfix)
        elif time.monotonic() - self.last >= self.interval:
            self.last = time.monotonic()
            self.stream.write(self.line(postfix) + "\n")
            self.stream.flush()

    def line(self, postfix: dict | None = None) -> str:
        elapsed = max(time.monotonic() - self.t0, 1e-9)
        rate = (self.n - self.start) / elapsed
        eta = f", ETA {_duration((self.total - self.n) / rate)}" if rate > 0 and self.n < self.total else ""
        extra = "".join(f", {k} {v}" for k, v in (postfix or {}).items())
        return f"{self.desc}: {self.n}/{self.total} {self.unit}s, {rate:.1f} {self.unit}s/s{eta}{extra}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Estimate:
    """One line, once, with how long a long job will take, measured on its first units of work: said when the
    job looks longer than LONG seconds, after MEASURE seconds or a tenth of the work, whichever comes first."""

    LONG, MEASURE = 120.0, 15.0

    def __init__(self, total: int, what: str, unit: str = "steps", *, stream=None):
        self.total, self.what, self.unit, self.stream = total, what, unit, stream or sys.stderr
        self.done, self.t0, self.said = 0, time.monotonic(), total <= 0

    def step(self, k: int = 1) -> None:
        self.done += k
        if self.said:
            return
        elapsed = time.monotonic() - self.t0
        if elapsed < self.MEASURE and self.done < self.total / 10:
            return
        self.said = True
        left = elapsed / self.done * (self.total - self.done)
        if left > self.LONG:
            self.stream.write(f"{self.what}: about {_duration(left)} left ({self.total - self.done} more {self.unit} "
                              f"at {elapsed / self.done:.3g} s each, measured on the first ones)\n")
            self.stream.flush()
