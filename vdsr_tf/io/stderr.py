"""The lines native libraries write to the process's stderr, and dropping them.

TensorFlow, XLA and absl's C++ logging write to file descriptor 2 while
TensorFlow is imported, before ``TF_CPP_MIN_LOG_LEVEL`` is read; LiteRT writes
an INFO line when it applies its CPU delegate. ``native_lines_dropped`` runs a
block with fd 2 going through a filter that passes every other line on as it
arrives (so a crash inside the block still shows what was written before it).
"""

import contextlib
import os
import re
import sys
import threading

# Dropped: absl/TF INFO and WARNING lines ("I0000 00:00:... port.cc:153] oneDNN
# custom operations are on..."), the line continuing the CPU-feature one, the
# cuInit error of a machine without a GPU, and LiteRT's INFO lines. Other ERROR
# and FATAL lines pass.
_NATIVE_LOG = re.compile(
    r"(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\]"
    r"|E\d{4} [\d:.]+ +\d+ \S+:\d+\] failed call to cuInit"
    r"|To enable the following instructions: .*rebuild TensorFlow"
    r"|INFO: (Created|Initialized) TensorFlow Lite )"
)
# One capture at a time: fd 2 belongs to the whole process.
_LOCK = threading.RLock()


@contextlib.contextmanager
def fd2_filtered(keep):
    """Runs the block with file descriptor 2 (Python's and native libraries'
    writes alike, from every thread) going through a pipe: each line is given
    to ``keep(line)`` as it arrives and written on to the real stderr if that
    returns true. Without an fd 2 (``2>&-``) the block runs as it is."""
    with _LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):
            yield
            return
        read_end, write_end = os.pipe()

        def pump():
            with os.fdopen(read_end, "rb") as pipe:
                for raw in pipe:
                    line = raw.decode("utf-8", "replace")
                    if keep(line):
                        os.write(saved, raw)

        thread = threading.Thread(target=pump, name="vdsr-stderr", daemon=True)
        thread.start()
        os.dup2(write_end, 2)
        os.close(write_end)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)  # the pipe's last write end closes: the pump ends
            thread.join(timeout=10)
            os.close(saved)


@contextlib.contextmanager
def native_lines_dropped():
    """Drops ``_NATIVE_LOG`` lines written to fd 2 inside the block; every
    other line (a Python warning, our own) goes on to stderr.

    Example:

    ```python
    with native_lines_dropped():
        import tensorflow  # its start-up lines are dropped, warnings kept
    ```
    """
    with fd2_filtered(lambda line: not _NATIVE_LOG.match(line)):
        yield


def quiet():
    """Whether the user asked TensorFlow's logging to be quiet (``TF_CPP_MIN_LOG_LEVEL``
    >= 1): LiteRT, which ignores it, is made to follow it."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip() not in ("", "0")
