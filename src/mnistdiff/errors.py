"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and how to fix it.

    The CLI prints it as one line and exits with code 2; library callers can catch it.
    Raise it before anything is written, so a refused command never loses earlier work.
    """


class CorruptCheckpoint(UserError):
    """The file is truncated, altered, or not a mnistdiff checkpoint (raised by checkpoint.py and
    checkpoint_check.py; here so that neither imports the other for it)."""
