"""User-facing errors: reported as one line with the fix, never a traceback."""


class UsageError(Exception):
    """Bad input from the command line, the config or the data layout."""
