"""One exception type for bad user input, and the CLI wrapper that turns it into one line."""
from __future__ import annotations

import functools
import sys


class UserInputError(ValueError):
    """Bad input from the user (config, data, checkpoint, measurements).

    The message must say what is wrong and what to do; entry points print it as a
    single line and exit with status 2.
    """


def exit_on_user_error(fn):
    """Decorator for CLI entry points: ``UserInputError`` → one line on stderr, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserInputError as err:
            msg = " ".join(str(err).split())
            print(f"error: {msg}", file=sys.stderr)
            sys.exit(2)

    return wrapper
