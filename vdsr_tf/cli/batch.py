"""What vdsr-upscale prints around the batch (``vdsr_tf.inference.batch``).

``run_batch`` runs the library's loop and prints as it goes: a line per
written file on stdout, ``FILE: error: …`` and ``FILE: note: …`` lines and
the summary on stderr. ``parse_size`` reads ``--size``.
"""

import os
import signal
import sys

from vdsr_tf.cli import stopped_by
from vdsr_tf.inference import batch


def parse_size(text):
    """'WxH' -> (H, W); ValueError otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 1920x1080, got {text!r}") from None
    if w < 1 or h < 1:
        raise ValueError(f"--size must be positive, got {text!r}")
    return h, w


def choose_gpu(number):
    """``--gpu``: only that GPU is visible (none for -1), before any framework
    loads. Counts within ``CUDA_VISIBLE_DEVICES`` when it is already set (a
    scheduler's allocation), as the frameworks do.

    Raises:
        ValueError: a framework is already loaded, or the number is not among
            the GPUs ``CUDA_VISIBLE_DEVICES`` allows.
    """
    loaded = [m for m in ("tensorflow", "jax", "torch") if m in sys.modules]
    if loaded:  # cannot happen from the command line; a guard for in-process callers
        raise ValueError(f"--gpu must be chosen before {loaded[0]} is imported")
    if number < 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return
    allowed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if allowed is not None:
        ids = [i.strip() for i in allowed.split(",") if i.strip()]
        if number >= len(ids):
            raise ValueError(
                f"--gpu={number}, but CUDA_VISIBLE_DEVICES={allowed!r} allows {len(ids)} GPU"
                f"{'s' * (len(ids) != 1)} (numbered from 0)"
            )
        os.environ["CUDA_VISIBLE_DEVICES"] = ids[number]
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(number)


def printer(quiet, lines=None):
    """``on_file`` for a batch: what the command prints per file (a written
    file's line goes to ``lines``, default stdout). A closed standard output
    (``| head``) stops the lines, not the batch."""

    def say(line):
        out = lines or sys.stdout
        try:
            print(line, file=out, flush=True)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())

    def on_file(record):
        src = record["input"]
        if record["status"] == batch.FAILED:
            print(f"{src}: error: {record['error']}", file=sys.stderr, flush=True)
        elif record["status"] == batch.WRITTEN and not quiet:
            for note in record["notes"]:
                print(f"{src}: note: {note}", file=sys.stderr)
            (w, h), (ow, oh) = record["input_size"], record["output_size"]
            anim = f", {record['frames']} frames" if record["frames"] > 1 else ""
            say(f"{src} ({w}x{h}{anim}) -> {record['output']} ({ow}x{oh})")

    return on_file


def summary(result):
    """The last line: ``N written, M failed[, K kept (…)][, J skipped (…)], T s``."""
    counts = result.counts
    text = f"{counts[batch.WRITTEN]} written, {counts[batch.FAILED]} failed"
    if counts[batch.KEPT]:
        text += f", {counts[batch.KEPT]} kept (outputs exist; --overwrite redoes them)"
    skipped = result.skipped
    if skipped:
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        hint = batch.skipped_hint(skipped)
        text += f", {len(skipped)} skipped ({shown}{'; ' + hint if hint else ''})"
    return f"{text}, {result.seconds:.1f} s"


def run_batch(
    upscaler,
    files,
    destinations,
    scale=None,
    size=None,
    fmt=None,
    existing="skip",
    skipped=(),
    progress=None,
    prog="vdsr-upscale",
    quiet=False,
    report=None,
    **encoding,
):
    """``vdsr_tf.inference.batch.run`` with the command's lines.

    A file that fails gets one ``FILE: error: message`` line and the batch
    goes on; a stop (Ctrl-C, SIGTERM, a full disk) says how many files were
    not processed and that the same command finishes them.

    Returns:
        The exit status: 0; 1 if any file failed or nothing more could be
        written; 130 after Ctrl-C, 143 after SIGTERM.
    """
    try:
        result = batch.run(
            upscaler,
            files,
            destinations,
            scale,
            size,
            fmt,
            existing,
            skipped=skipped,
            report=report,
            on_file=printer(quiet),
            progress=progress,
            **encoding,
        )
    except KeyboardInterrupt as e:
        result = getattr(e, "result", None)
        if result is None:
            raise
        if progress is not None and progress.enabled:
            sys.stderr.write("\r\x1b[K")
    except OSError as e:  # the report could not be written (the images were)
        result = getattr(e, "result", None)
        if result is None:
            raise
        print(f"{prog}: error: cannot write --report {report}: {e.strerror or e}", file=sys.stderr)
        print(summary(result), file=sys.stderr)
        return max(result.status, 1)
    left = result.counts[batch.NOT_PROCESSED]
    if result.stopped:
        why = stopped_by(result.signum) if result.signum else result.stopped
        print(
            f"{prog}: stopping: {why}; {left} file{'s' * (left != 1)} not processed"
            + ("; run the same command again to finish them" if result.signum else ""),
            file=sys.stderr,
        )
    if not quiet or result.status:
        print(summary(result), file=sys.stderr)
    return result.status


class sigterm_stops:
    """While active, SIGTERM stops the batch as Ctrl-C does (``batch.Stopped``),
    so the current file is abandoned cleanly and the report written."""

    def __enter__(self):
        def stop(signum, frame):
            raise batch.Stopped(signum)

        try:
            self.previous = signal.signal(signal.SIGTERM, stop)
        except ValueError:  # not the main thread: leave signals alone
            self.previous = None
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False
