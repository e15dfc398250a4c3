"""The one exception type the CLI turns into a one-line message and exit code 2."""

from __future__ import annotations

import numbers
import sys
from typing import Callable, NoReturn


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and how to fix it.

    The CLI prints it as one line and exits with code 2; library callers can catch it.
    Raise it before anything is written, so a refused command never loses earlier work.
    """


class BadArgument(UserError, ValueError):
    """A Python API argument with a value mnistdiff cannot use (the message names it and what it takes)."""


class WrongType(UserError, TypeError):
    """A Python API argument of the wrong type (the message names it and what it takes)."""


def check_int(name: str, value, low: int, high: int, example: str = "") -> int:
    """value as an int in [low, high], else BadArgument/WrongType naming the argument (bools, floats and
    strings are refused: 2.5 samples or True as a seed is a mistake, not a request)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):  # numpy's integers are Integral
        raise WrongType(f"{name} must be a whole number from {low} to {high}, not {type(value).__name__} "
                        f"{value!r}" + (f"; e.g. {example}" if example else ""))
    if not low <= value <= high:
        raise BadArgument(f"{name}={value} must lie in [{low}, {high}]" + (f"; e.g. {example}" if example else ""))
    return int(value)


class CorruptCheckpoint(UserError):
    """The file is truncated, altered, or not a mnistdiff checkpoint (raised by checkpoint/format.py and
    checkpoint/validate.py; here so that neither imports the other for it)."""


def run_script(main: Callable[[], int]) -> NoReturn:
    """A script's entry point (scripts/*.py): exit with main()'s code, or print a UserError as the CLI
    does, one line and exit code 2, never a traceback."""
    try:
        code = main()
    except UserError as e:
        print(f"error: {' '.join(str(e).splitlines())}", file=sys.stderr)
        code = 2
    sys.exit(code)
