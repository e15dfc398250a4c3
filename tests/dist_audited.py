"""`mnistdiff ARGS` with every file write of this process recorded (launched by torchrun in test_dist.py).

Python's audit hooks see each open-for-writing, rename, mkdir, remove and truncate the process makes,
from the standard library, PIL and matplotlib alike; at exit the list of paths goes to
$AUDIT_DIR/rank<RANK>.txt. The training itself is the real CLI, unchanged.
"""

import atexit
import os
import sys
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
writes: list[str] = []


def _hook(event, args):
    if event == "open":
        path, mode, flags = args
        if (mode and any(c in mode for c in "wax+")) or (mode is None and flags & WRITE_FLAGS):
            writes.append(str(path))
    elif event in ("os.rename", "os.replace"):
        writes.append(str(args[1]))
    elif event in ("os.mkdir", "os.remove", "os.truncate"):
        writes.append(str(args[0]))


def _dump(target=Path(os.environ["AUDIT_DIR"]) / f"rank{os.environ.get('RANK', '0')}.txt"):
    recorded = list(writes)  # copy first: writing the record is itself an audited open
    target.write_text("".join(p + "\n" for p in recorded))


atexit.register(_dump)
sys.addaudithook(_hook)

from mnistdiff.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
