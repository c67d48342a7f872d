"""Thin absl entry points: flags in, a config or arguments out, library calls.

Errors a user can fix are reported as one line, ``<prog>: error: <message>``,
with exit status 2, never a traceback.
"""

import sys


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def report(prog, error):
    """Prints ``error`` as one line for command ``prog`` and returns 2."""
    print(f"{prog}: error: {error}", file=sys.stderr)
    return 2
