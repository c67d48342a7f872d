"""Thin absl entry points: flags in, a config or arguments out, library calls.

Errors a user can fix are reported as one line, ``<prog>: error: <message>``,
with exit status 2, never a traceback.
"""

import sys


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def entry_point(prog):
    """Decorates an absl ``main``: a ``CliError`` becomes one stderr line, exit 2."""

    def wrap(main):
        def wrapped(argv):
            try:
                return main(argv)
            except CliError as e:
                print(f"{prog}: error: {e}", file=sys.stderr)
                return 2

        return wrapped

    return wrap
