"""The batch behind vdsr-upscale, without flags (importable anywhere).

``collect_inputs`` and ``output_paths`` turn the command line's inputs into
(source, destination) pairs; ``upscale_one`` is the per-file path (decode,
convert, upscale, encode, write: ``Upscaler.upscale_file``) with every
failure turned into one ``FileError`` line; ``run_batch`` is the loop that
prints those lines and the summary. The fuzzing script
(``tools/fuzz_images.py``) drives ``upscale_one`` in-process.
"""

import errno
import os
import sys
import time

from vdsr_tf.cli import CliError
from vdsr_tf.io.images import quiet_decoders


def _folder_images(folder, recursive, exclude):
    """``(images, skipped)`` under ``folder``: image paths relative to it, and
    the files (and, without ``recursive``, subfolders) passed over."""
    from vdsr_tf.io.images import IMAGE_EXTENSIONS

    images, skipped = [], []
    for root, dirs, names in os.walk(folder):
        rel = os.path.relpath(root, folder)
        dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(root, d)) != exclude)
        if not recursive:
            skipped += [os.path.join(root, d) + os.sep for d in dirs]
            dirs[:] = []
        for name in sorted(names):
            path = os.path.join(root, name)
            if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(path):
                images.append(os.path.normpath(os.path.join(rel, name)))
            else:
                skipped.append(path)
    return images, skipped


def parse_size(text):
    """'WxH' -> (H, W); ValueError otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 1920x1080, got {text!r}") from None
    if w < 1 or h < 1:
        raise ValueError(f"--size must be positive, got {text!r}")
    return h, w


def collect_inputs(paths, recursive=False, output=None):
    """Expands files and folders into the files to upscale.

    Returns:
        ``(jobs, skipped, folder_given)``: ``(source, name)`` pairs, ``name``
        the output's path relative to the output folder (a folder's own
        subfolders mirrored); the paths passed over; whether a folder was given.

    Raises:
        CliError: for a path that does not exist or a folder without images.
    """
    jobs, skipped, folder_given = [], [], False
    exclude = os.path.realpath(output) if output else None
    for path in paths:
        if os.path.isdir(path):
            folder_given = True
            found, passed = _folder_images(path, recursive, exclude)
            if not found:
                hint = (
                    " (--recursive enters subfolders)"
                    if not recursive and any(p.endswith(os.sep) for p in passed)
                    else ""
                )
                raise CliError(f"no image files in folder {path}{hint}")
            jobs += [(os.path.join(path, name), name) for name in found]
            skipped += passed
        elif os.path.exists(path):
            jobs.append((path, os.path.basename(path)))
        else:
            raise CliError(f"input not found: {path}")
    return jobs, skipped, folder_given


def output_paths(jobs, output, to_folder, fmt):
    """Destination of each input file.

    Raises:
        CliError: if two inputs would be written to the same file.
    """

    def renamed(name):
        if fmt:
            return os.path.splitext(name)[0] + "." + fmt
        return name

    if to_folder:
        out = [os.path.join(output, renamed(name)) for _, name in jobs]
    elif os.path.isdir(output):
        out = [os.path.join(output, renamed(jobs[0][1]))]
    else:
        out = [output]
    seen = {}
    for (src, _), dst in zip(jobs, out):
        key = os.path.normcase(os.path.abspath(dst))
        if key in seen:
            raise CliError(f"{seen[key]} and {src} would both be written to {dst}")
        seen[key] = src
    return out


class Progress:
    """A one-line progress bar on stderr: files done, and tiles of the current file."""

    def __init__(self, total_files, enabled):
        self.total, self.enabled, self.done, self.name = total_files, enabled, 0, ""

    def start(self, name):
        self.name = name
        self.tiles(0, 1)

    def tiles(self, done, total):
        if not self.enabled:
            return
        width = 24
        filled = int(width * done / max(total, 1))
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(
            f"\r[{bar}] file {self.done + 1}/{self.total} "
            f"tile {done}/{total} {self.name[-40:]}\x1b[K"
        )
        sys.stderr.flush()

    def finish_file(self):
        self.done += 1
        if self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


class FileError(Exception):
    """One file's failure, printed as ``FILE: error: message``."""

    def __init__(self, message, fatal=False):
        super().__init__(message)
        self.fatal = fatal


# Write errors after which no later file could be written either.
_FATAL_WRITE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def upscale_one(upscaler, src, dst, scale, size, fmt=None, overwrite=False):
    """One file, as the CLI does it: ``(output line, notes)`` on success.

    Raises:
        FileError: with the one-line message the CLI prints; ``fatal`` when
            no later file could be written either (disk full, read-only).
    """
    from vdsr_tf.io.images import FORMATS, ImageError

    fmt = FORMATS["." + fmt] if fmt else None
    try:
        in_size, out_size, frames, notes = upscaler.upscale_file(
            src, dst, scale=scale, size=size, fmt=fmt, overwrite=overwrite
        )
    except (ImageError, FileExistsError, ValueError) as e:
        raise FileError(str(e)) from None
    except OSError as e:  # the reading side reports ImageError: this is the write
        raise FileError(
            f"cannot write {dst}: {e.strerror or e}", fatal=e.errno in _FATAL_WRITE
        ) from None
    anim = f", {frames} frames" if frames > 1 else ""
    line = f"{src} ({in_size[0]}x{in_size[1]}{anim}) -> {dst} ({out_size[0]}x{out_size[1]})"
    return line, notes


def run_batch(
    upscaler,
    files,
    destinations,
    scale=None,
    size=None,
    fmt=None,
    overwrite=False,
    skipped=(),
    progress=None,
    prog="vdsr-upscale",
):
    """Upscales ``files`` into ``destinations``, one line per file; the CLI's loop.

    A file that fails gets one ``FILE: error: message`` line on stderr and
    the batch goes on, unless nothing more can be written (disk full,
    read-only file system): then it stops once, saying so.

    Args:
        upscaler: a ``vdsr_tf.Upscaler``.
        files, destinations: the sources and their output paths.
        scale, size: as ``Upscaler.upscale``.
        fmt: an extension (``"png"``) for every output, or None.
        overwrite: replace existing outputs.
        skipped: paths passed over (listed in the summary).
        progress: a ``Progress`` or None.

    Returns:
        The exit status: 0, or 1 if any file failed.
    """
    progress = progress or Progress(len(files), False)
    failures, written = [], 0
    start = time.monotonic()
    with quiet_decoders():  # C decoders' messages go into the error lines
        for i, (src, dst) in enumerate(zip(files, destinations)):
            progress.start(os.path.basename(src))
            try:
                os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
                line, notes = upscale_one(upscaler, src, dst, scale, size, fmt, overwrite)
            except OSError as e:  # a mirrored subfolder that cannot be made
                line, error = (
                    None,
                    FileError(
                        f"cannot create {os.path.dirname(dst)}: {e.strerror or e}",
                        e.errno in _FATAL_WRITE,
                    ),
                )
            except FileError as e:
                line, error = None, e
            progress.finish_file()
            if line is None:
                failures.append(src)
                print(f"{src}: error: {error}", file=sys.stderr, flush=True)
                if error.fatal:
                    left = len(files) - i - 1
                    print(
                        f"{prog}: stopping: nothing more can be written "
                        f"({left} file{'s' * (left != 1)} not processed)",
                        file=sys.stderr,
                    )
                    break
                continue
            written += 1
            for note in notes:
                print(f"{src}: note: {note}", file=sys.stderr)
            print(line, flush=True)
    elapsed = time.monotonic() - start
    summary = f"{written} written, {len(failures)} failed"
    if skipped:
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        hint = "; --recursive enters subfolders" if any(p.endswith(os.sep) for p in skipped) else ""
        summary += f", {len(skipped)} skipped ({shown}{hint})"
    print(f"{summary}, {elapsed:.1f} s", file=sys.stderr)
    return 1 if failures else 0
