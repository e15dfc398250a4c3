"""The one exception type the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations

import sys
from typing import Callable, NoReturn


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and how to fix it.

    The CLI prints it as one line and exits with code 2; library callers can catch it.
    Raise it before anything is written, so a refused command never loses earlier work.
    """


class CorruptCheckpoint(UserError):
    """The file is truncated, altered, or not a mnistdiff checkpoint (raised by checkpoint.py and
    checkpoint_check.py; here so that neither imports the other for it)."""


def run_script(main: Callable[[], int]) -> NoReturn:
    """A script's entry point (scripts/*.py): exit with main()'s code, or print a UserError as the CLI
    does, one line and exit code 2, never a traceback."""
    try:
        code = main()
    except UserError as e:
        print(f"error: {' '.join(str(e).splitlines())}", file=sys.stderr)
        code = 2
    sys.exit(code)
