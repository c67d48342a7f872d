"""The lines native libraries write to the process's stderr, and dropping them.

TensorFlow, XLA and absl's C++ logging write to file descriptor 2 while
TensorFlow is imported, before ``TF_CPP_MIN_LOG_LEVEL`` is read; LiteRT writes
an INFO line when it applies its CPU delegate. ``native_lines_dropped`` runs a
block with fd 2 caught and writes back every other line after it.
"""

import contextlib
import os
import re
import sys
import tempfile

# "I0000 00:00:... port.cc:153] oneDNN custom operations are on...", the line
# continuing one of them, and LiteRT's INFO lines.
_NATIVE_LOG = re.compile(
    r"(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\]"
    r"|To enable the following instructions: .*rebuild TensorFlow"
    r"|INFO: (Created|Initialized) TensorFlow Lite )"
)


@contextlib.contextmanager
def fd2_captured(lines):
    """Runs the block with file descriptor 2 caught (Python's and native
    libraries' writes alike); the text is appended to ``lines``, a line per
    item, when the block ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            lines += caught.read().decode("utf-8", "replace").splitlines(True)


@contextlib.contextmanager
def native_lines_dropped():
    """Drops ``_NATIVE_LOG`` lines written to fd 2 inside the block; every
    other line (a Python warning, our own) is written out after it.

    Example:

    ```python
    with native_lines_dropped():
        import tensorflow  # its start-up lines are dropped, warnings kept
    ```
    """
    lines = []
    try:
        with fd2_captured(lines):
            yield
    finally:
        for line in lines:
            if not _NATIVE_LOG.match(line):
                sys.stderr.write(line)


def quiet():
    """Whether the user asked TensorFlow's logging to be quiet (``TF_CPP_MIN_LOG_LEVEL``
    >= 1): LiteRT, which ignores it, is made to follow it."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip() not in ("", "0")
