"""User-facing errors: reported as one line with the fix, never a traceback."""


class UsageError(Exception):
    """Bad input from the command line, the config or the data layout."""


class TrainingStopped(Exception):
    """Training stopped on purpose (e.g. a non-finite loss); the message says why and what next."""
