"""Batches of image files: the one implementation behind ``vdsr-upscale`` and
``Upscaler.upscale_files``.

``plan`` turns inputs (files and folders) and an output (a file or a folder)
into source and destination paths, and refuses, before any work, what cannot
make a batch: a missing input, a folder without images, two inputs written to
one file, an output that would replace an input. ``run`` is the loop: each
file is upscaled, kept or failed, one record per file, and the batch goes on
past a bad file. A stopped run (Ctrl-C, SIGTERM, a full disk) leaves no half
file; running it again keeps the outputs that exist (``existing="skip"``)
and does exactly the rest. The records, with the options and the outcome,
can be written as a JSON report, atomically, also when the batch stops.
"""

import datetime
import errno
import json
import os
import signal
import sys
import time

from vdsr_tf.io.atomic import atomic_write_text, remove_stale_temporaries
from vdsr_tf.io.images import (
    FORMATS,
    IMAGE_EXTENSIONS,
    TAKES_COMPRESSION,
    TAKES_QUALITY,
    ImageError,
    check_encoding,
    format_for,
    quiet_decoders,
)
from vdsr_tf.io.video import (
    CONTAINERS,
    INSTALL,
    VIDEO_EXTENSIONS,
    available,
    encoder_for,
    is_video,
    load_av,
)
from vdsr_tf.ops.tiling import check_scale_size

# How messages name the encoder settings (the command's flags, as elsewhere here).
FLAG_NAMES = ("--quality", "--compression")

# What to do with an output that already exists.
EXISTING = ("skip", "overwrite", "fail")

# A file's status in the records and the report.
WRITTEN, KEPT, FAILED, NOT_PROCESSED = "written", "kept", "failed", "not processed"

# Write errors after which no later file could be written either.
_FATAL_WRITE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


class BatchError(ValueError):
    """Inputs, outputs or options that cannot make a batch (one line)."""


class FileError(Exception):
    """One file's failure, printed as ``FILE: error: message``."""

    def __init__(self, message, fatal=False):
        super().__init__(message)
        self.fatal = fatal


class Stopped(KeyboardInterrupt):
    """The batch was asked to stop by a signal (``signum``: SIGINT, SIGTERM)."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _folder_images(folder, recursive, exclude, extensions):
    """``(images, skipped)`` under ``folder``: the paths relative to it of
    the files with ``extensions`` (images, and videos where PyAV is
    installed), and the files (and, without ``recursive``, subfolders)
    passed over."""
    images, skipped = [], []
    for root, dirs, names in os.walk(folder):
        rel = os.path.relpath(root, folder)
        dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(root, d)) != exclude)
        if not recursive:
            skipped += [os.path.join(root, d) + os.sep for d in dirs]
            dirs[:] = []
        for name in sorted(names):
            path = os.path.join(root, name)
            if name.lower().endswith(extensions) and os.path.isfile(path):
                images.append(os.path.normpath(os.path.join(rel, name)))
            else:
                skipped.append(path)
    return images, skipped


def collect_inputs(paths, recursive=False, output=None):
    """Expands files and folders into the files to upscale.

    Returns:
        ``(jobs, skipped, folder_given)``: ``(source, name)`` pairs, ``name``
        the output's path relative to the output folder (a folder's own
        subfolders mirrored); the paths passed over; whether a folder was given.

    Raises:
        BatchError: for a path that does not exist or a folder without images.
    """
    jobs, skipped, folder_given = [], [], False
    exclude = os.path.realpath(output) if output else None
    extensions = None
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            folder_given = True
            if extensions is None:  # videos in folders only where they can be read
                extensions = IMAGE_EXTENSIONS + (VIDEO_EXTENSIONS if available() else ())
            found, passed = _folder_images(path, recursive, exclude, extensions)
            if not found:
                hint = skipped_hint(passed)
                hint = f" ({hint})" if hint else ""
                raise BatchError(f"no image or video files in folder {path}{hint}")
            jobs += [(os.path.join(path, name), name) for name in found]
            skipped += passed
        elif os.path.exists(path):
            jobs.append((path, os.path.basename(path)))
        else:
            raise BatchError(f"input not found: {path}")
    return jobs, skipped, folder_given


def skipped_hint(skipped):
    """What would have taken skipped paths: --recursive for subfolders, PyAV
    for videos ("" if neither)."""
    hints = []
    if any(p.endswith(os.sep) for p in skipped):
        hints.append("--recursive enters subfolders")
    if any(is_video(p) for p in skipped) and not available():
        hints.append(f"videos need PyAV: {INSTALL}")
    return "; ".join(hints)


def output_paths(jobs, output, to_folder, fmt=None, suffix=""):
    """Destination of each input file: ``NAME`` + ``suffix`` + the extension
    (``fmt``'s, or the input's own) in the output folder, or ``output`` itself.

    Raises:
        BatchError: if two inputs would be written to one file, or an output
            would replace an input.
    """

    out = _destinations(jobs, output, to_folder, fmt, suffix)
    sources = {os.path.realpath(src): src for src, _ in jobs}
    seen = {}
    for (src, _), dst in zip(jobs, out):
        key = os.path.normcase(os.path.abspath(dst))
        if key in seen:
            raise BatchError(f"{seen[key]} and {src} would both be written to {dst}")
        seen[key] = src
        if os.path.realpath(dst) in sources:
            other = sources[os.path.realpath(dst)]
            what = "itself" if other == src else f"the input {other}"
            raise BatchError(
                f"{src} would be written over {what}; choose another --output or a --suffix"
            )
    return out


def _destinations(jobs, output, to_folder, fmt, suffix):
    def renamed(name):  # --format is for images: a video keeps its container
        stem, ext = os.path.splitext(name)
        return stem + suffix + ("." + fmt if fmt and not is_video(name) else ext)

    if to_folder:
        return [os.path.join(output, renamed(name)) for _, name in jobs]
    if os.path.isdir(output):
        return [os.path.join(output, renamed(jobs[0][1]))]
    return [output]


class Plan:
    """What a batch will do: ``files`` into ``destinations``; ``skipped``:
    the paths passed over (not images, or subfolders without ``recursive``)."""

    def __init__(self, files, destinations, skipped):
        self.files, self.destinations, self.skipped = files, destinations, skipped


def plan(
    inputs,
    output,
    recursive=False,
    fmt=None,
    suffix="",
    quality=None,
    compression=None,
    report=None,
    existing="skip",
    video=None,
):
    """The files of a batch and their destinations, checked; writes nothing
    (``run`` makes the output folders as it writes into them).

    An input that is another input's destination (outputs written beside
    their inputs by an earlier run: ``--suffix``, or ``--format`` into the
    input folder) is not an input: it is listed as skipped, and the file
    whose output it is keeps it, or counts it as a failure; ``existing=
    "overwrite"`` is refused then, since it could be a photo of the same name.

    Args:
        inputs: files and folders.
        output: a file (one input file) or a folder (made if needed; a
            trailing slash makes one for a single file too).
        recursive: enter the subfolders of input folders, mirrored in ``output``.
        fmt: an extension ("png") for every output, or None: each input's own.
        suffix: added to each output's name in a folder ("_x2": a_x2.jpg).
        quality, compression: checked against the formats the outputs will have.
        report: the JSON report's path, checked (``check_report_path``).
        existing: as ``run``.
        video: as ``run``; a ``codec`` and ``crf`` are checked here.

    Raises:
        BatchError: for anything that cannot make the batch, before any work,
            PyAV missing for a video included.
    """
    if existing not in EXISTING:
        raise BatchError(f"existing must be one of {', '.join(EXISTING)}, got {existing!r}")
    if not inputs:
        raise BatchError("give at least one input file or folder")
    if not output:
        raise BatchError("--output is required")
    output = os.fspath(output)
    if fmt is not None and "." + fmt not in FORMATS:
        raise BatchError(f"unknown format {fmt!r}; use one of {_extensions(FORMATS)}")
    if os.sep in suffix or (os.altsep and os.altsep in suffix) or suffix in (".", ".."):
        raise BatchError(f"--suffix {suffix!r} must be part of a file name, not a path")
    jobs, skipped, folder_given = collect_inputs(inputs, recursive, output)
    # A trailing slash names a folder, made if needed, even for one input file.
    to_folder = folder_given or len(inputs) > 1 or output.endswith(("/", os.sep))
    if suffix and not to_folder and not os.path.isdir(output):
        raise BatchError(
            f"--suffix names outputs in a folder; --output {output} names the file itself"
        )
    _check_output(output, to_folder, folder_given, fmt)
    # Outputs beside their inputs: an earlier run's outputs are not inputs.
    outputs = _destinations(jobs, output, to_folder, fmt, suffix)
    earlier = {os.path.realpath(d) for d, (src, _) in zip(outputs, jobs) if not _same(d, src)}
    both = [src for src, _ in jobs if os.path.realpath(src) in earlier]
    if both and existing == "overwrite":
        raise BatchError(
            f"{both[0]} is an input and another input's output; --overwrite would replace "
            "it: write into another --output folder"
        )
    skipped += both
    jobs = [(src, name) for src, name in jobs if os.path.realpath(src) not in earlier]
    destinations = output_paths(jobs, output, to_folder, fmt, suffix)
    _check_videos(jobs, destinations, video or {})
    known = {
        FORMATS[e] for e in (os.path.splitext(d)[1].lower() for d in destinations) if e in FORMATS
    }
    try:
        check_encoding(known, quality, compression, names=FLAG_NAMES)
    except ValueError as e:
        raise BatchError(str(e)) from None
    if report is not None:
        check_report_path(report, destinations, output if to_folder else None, jobs)
    folder = output if to_folder else os.path.dirname(os.path.abspath(output))
    while not os.path.isdir(folder):  # the folder run will make: its nearest existing parent
        folder = os.path.dirname(os.path.abspath(folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BatchError(f"output folder {folder} is not writable")
    return Plan([src for src, _ in jobs], destinations, skipped)


def _check_videos(jobs, destinations, video):
    """Refuses a video written as an image or the reverse, a video without
    PyAV, and an unknown ``--video_codec`` or a CRF it does not take."""
    videos = 0
    for (src, _), dst in zip(jobs, destinations, strict=True):
        if is_video(src) != is_video(dst):
            what = "a video" if is_video(src) else "an image"
            raise BatchError(f"{src} is {what}: its output {dst} must be {what} file too")
        videos += is_video(src)
    if not videos:
        return
    try:
        load_av()
        if video.get("codec"):
            encoder_for(video["codec"], video.get("crf"), None, "matroska")
    except (ImportError, ValueError) as e:
        raise BatchError(str(e)) from None


def default_output(path, scale=None, size=None, fmt=None, suffix=""):
    """Where ``vdsr-upscale FILE`` without ``--output`` writes: beside the
    input, ``NAME`` + ``suffix`` (default ``_x2``, ``_x2.5``, or
    ``_1920x1080`` for a size (H, W)) + the extension (``fmt``'s for an
    image, else the input's)."""
    stem, ext = os.path.splitext(os.fspath(path))
    suffix = suffix or (f"_{size[1]}x{size[0]}" if size else f"_x{scale:g}")
    return stem + suffix + ("." + fmt if fmt and not is_video(path) else ext)


def _same(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


_EXTENSIONS = set(FORMATS) | set(CONTAINERS)  # what an output file may end in


def _extensions(names=_EXTENSIONS):
    return ", ".join(sorted(names))


def _check_output(output, to_folder, folder_given, fmt):
    """Refuses an output that cannot be what the inputs need (a folder, or a file)."""
    if to_folder:
        if os.path.exists(output) and not os.path.isdir(output):
            raise BatchError(f"--output {output} is a file, but several inputs need a folder")
        if os.path.splitext(output)[1].lower() in _EXTENSIONS and not os.path.isdir(output):
            raise BatchError(
                f"--output {output} looks like a file name, but "
                f"{'a folder' if folder_given else 'several inputs'} need an output "
                "folder (e.g. --output=out/)"
            )
        return
    if os.path.isdir(output):
        return
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise BatchError(f"output folder {folder} does not exist")
    ext = os.path.splitext(output)[1].lower()
    if not fmt and ext not in _EXTENSIONS:
        raise BatchError(f"--output {output}: unsupported extension; use one of {_extensions()}")


def check_report_path(path, destinations=(), made=None, jobs=()):
    """Refuses a report path that cannot be written, or that is an input or
    an output, before any work (``made``: a folder the batch will make,
    where the report may go)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise BatchError(f"--report {path} is a folder; give a file name (run.json)")
    if made is not None and os.path.realpath(folder) == os.path.realpath(made):
        pass  # made with the outputs (plan checks that they can be)
    elif not os.path.isdir(folder):
        raise BatchError(f"--report {path}: folder {folder} does not exist")
    elif not os.access(folder, os.W_OK | os.X_OK):
        raise BatchError(f"--report {path}: folder {folder} is not writable")
    key = os.path.realpath(path)
    if any(os.path.realpath(d) == key for d in destinations):
        raise BatchError(f"--report {path} is also an image output")
    if any(os.path.realpath(src) == key for src, _ in jobs):
        raise BatchError(f"--report {path} is one of the inputs")


class Progress:
    """A one-line progress bar on stderr: files done, and the tiles of the
    current image, or the frames of the current video (with fps and ETA)."""

    def __init__(self, total_files, enabled):
        self.total, self.enabled, self.done, self.name = total_files, enabled, 0, ""
        self.video, self.tile = None, (0, 1)

    def start(self, name):
        self.name, self.video, self.started = name, None, time.monotonic()
        self.tiles(0, 1)

    def tiles(self, done, total):
        self.tile = (done, total)
        self._draw()

    def frames(self, done, total):
        """A video's ``done`` frames of ``total`` (None: not known)."""
        self.video = (done, total)
        self._draw()

    def _draw(self):
        if not self.enabled:
            return
        done, total = self.tile
        text = f"tile {done}/{total}"
        if self.video is not None:
            frames, count = self.video
            fps = frames / max(time.monotonic() - self.started, 1e-9)
            left = (count - frames) / fps if count and fps else None
            eta = "?" if left is None else _clock(left)
            text = f"frame {frames}/{count or '?'} {fps:.2f} fps ETA {eta}" + (
                f" tile {done}/{total}" if total > 1 else ""
            )
            done, total = frames, count or 0
        width = 24
        filled = int(width * min(done / max(total, 1), 1))
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(
            f"\r[{bar}] file {self.done + 1}/{self.total} {text} {self.name[-40:]}\x1b[K"
        )
        sys.stderr.flush()

    def finish_file(self):
        self.done += 1
        if self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _clock(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def upscale_one(upscaler, src, dst, scale, size, fmt=None, overwrite=False, video=None, **encoding):
    """One file, as the CLI does it: ``(in size, out size, frames, notes)``.

    Args:
        fmt: an extension ("png") or None (``dst``'s own); not for videos.
        video: for a video, ``Upscaler.upscale_video``'s options (``codec``,
            ``crf``, ``on_corrupt``, ``batch``, ``progress``).
        **encoding: ``quality``, ``compression``, ``strip``
            (``Upscaler.upscale_file``); a setting ``dst``'s format does
            not take is left out (a batch of mixed formats).

    Raises:
        FileError: with the one-line message the CLI prints; ``fatal`` when
            no later file could be written either (disk full, read-only).
    """
    try:
        if is_video(src):
            return upscaler.upscale_video(
                src, dst, scale=scale, size=size, overwrite=overwrite, **(video or {})
            )
        fmt = FORMATS["." + fmt] if fmt else format_for(dst)
        if fmt not in TAKES_QUALITY:
            encoding.pop("quality", None)
        if fmt not in TAKES_COMPRESSION:
            encoding.pop("compression", None)
        return upscaler.upscale_file(
            src, dst, scale=scale, size=size, fmt=fmt, overwrite=overwrite, **encoding
        )
    except (ImageError, FileExistsError, ValueError, ImportError) as e:
        raise FileError(str(e)) from None
    except OSError as e:  # the reading side reports ImageError: this is the write
        raise FileError(
            f"cannot write {dst}: {e.strerror or e}", fatal=e.errno in _FATAL_WRITE
        ) from None


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _stamp(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class BatchResult:
    """The outcome of a batch.

    Attributes:
        files: one record (a dict) per input, in order: ``input``,
            ``output``, ``status`` (written, kept, failed, not processed),
            ``input_bytes``, ``output_bytes``, ``input_size`` and
            ``output_size`` ([w, h], when written), ``frames``, ``seconds``,
            ``error``, ``notes``.
        skipped: the paths passed over (not images).
        stopped: None, or why the batch stopped early ("SIGINT", "SIGTERM",
            "nothing more can be written").
        status: the exit status: 0, 1 if any file failed or the batch
            stopped on a write error, 128 + the signal's number if a
            signal stopped it.
    """

    def __init__(self, files, skipped, options):
        self.files = [
            {"input": src, "output": dst, "status": NOT_PROCESSED}
            for src, dst in zip(*files, strict=True)
        ]
        self.skipped, self.options = list(skipped), options
        self.stopped, self.signum = None, None
        self.started, self.finished, self.seconds = _now(), None, 0.0

    @property
    def counts(self):
        counts = dict.fromkeys((WRITTEN, KEPT, FAILED, NOT_PROCESSED), 0)
        for record in self.files:
            counts[record["status"]] += 1
        return counts

    @property
    def complete(self):
        """Whether every file was processed (written, kept or failed)."""
        return self.stopped is None and not self.counts[NOT_PROCESSED]

    @property
    def status(self):
        if self.signum is not None:
            return 128 + self.signum
        return 1 if self.counts[FAILED] or self.stopped else 0

    def as_dict(self):
        import vdsr_tf

        return {
            "vdsr_tf": vdsr_tf.__version__,
            "started": self.started,
            "finished": self.finished,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
            "stopped": self.stopped,
            "exit_status": self.status,
            "options": self.options,
            "counts": self.counts,
            "skipped": self.skipped,
            "files": self.files,
        }

    def write(self, path):
        """The report as JSON at ``path``, written atomically."""
        atomic_write_text(path, json.dumps(self.as_dict(), indent=1) + "\n")


def run(
    upscaler,
    files,
    destinations,
    scale=None,
    size=None,
    fmt=None,
    existing="skip",
    quality=None,
    compression=None,
    strip=False,
    skipped=(),
    report=None,
    on_file=None,
    progress=None,
    video=None,
):
    """Upscales ``files`` into ``destinations``, one record per file.

    A file that fails is recorded and the batch goes on, unless nothing
    more can be written (disk full, read-only file system). An output that
    exists is kept (``existing="skip"``), replaced (``"overwrite"``) or a
    failure (``"fail"``). Unfinished outputs that a killed run left in the
    destination folders are removed first.

    Args:
        upscaler: a ``vdsr_tf.Upscaler``.
        files, destinations: the sources and their output paths (``plan``).
        scale, size: as ``Upscaler.upscale``.
        fmt: an extension ("png") for every output, or None.
        existing: "skip", "overwrite" or "fail".
        quality, compression, strip: as ``Upscaler.upscale_file``; applied
            where the output's format takes them.
        skipped: the paths ``plan`` passed over, for the report.
        report: a path for the JSON report (``BatchResult.as_dict``), written
            when the batch ends, however it ends.
        on_file: ``on_file(record)`` after each file.
        progress: a ``Progress`` or None.
        video: the videos' options, ``Upscaler.upscale_video``'s ``codec``,
            ``crf``, ``on_corrupt`` and ``batch`` (a dict; None: defaults).

    Returns:
        A ``BatchResult``.

    Raises:
        KeyboardInterrupt (``Stopped`` for a signal): after the records and
            the report are complete; the exception's ``result`` is the
            ``BatchResult``.
        OSError: the report cannot be written (its ``result`` likewise).
    """
    if existing not in EXISTING:
        raise BatchError(f"existing must be one of {', '.join(EXISTING)}, got {existing!r}")
    options = dict(
        scale=scale,
        size=list(size) if size else None,
        format=fmt,
        existing=existing,
        quality=quality,
        compression=compression,
        strip=bool(strip),
        network=upscaler.describe(),
        tile=upscaler.tile,
        ensemble=upscaler.ensemble,
        video=dict(video) if video else None,
    )
    result = BatchResult((files, destinations), skipped, options)
    progress = progress or Progress(len(files), False)
    encoding = dict(quality=quality, compression=compression, strip=strip)
    folders = {}
    for dst in destinations:
        folder, name = os.path.split(os.path.abspath(dst))
        folders.setdefault(folder, set()).add(name)
    for folder, names in sorted(folders.items()):  # only this batch's own outputs' temporaries
        if os.path.isdir(folder):
            remove_stale_temporaries(folder, names)
    if report is not None:  # a report in the output folder: the folder exists from the start
        os.makedirs(os.path.dirname(os.path.abspath(report)), exist_ok=True)
    start = time.monotonic()
    try:
        with quiet_decoders():  # C decoders' messages go into the error lines
            for record in result.files:
                _one(upscaler, record, scale, size, fmt, existing, encoding, progress, video)
                if on_file is not None:
                    on_file(record)
                if record.get("fatal"):
                    del record["fatal"]
                    result.stopped = "nothing more can be written"
                    break
    except KeyboardInterrupt as e:
        result.stopped = signal.Signals(getattr(e, "signum", signal.SIGINT)).name
        result.signum = getattr(e, "signum", int(signal.SIGINT))
        e.result = result
        raise
    except BaseException as e:  # a bug, or the process told to exit: the report says so
        result.stopped = f"error: {type(e).__name__}: {e}".splitlines()[0]
        raise
    finally:
        result.seconds, result.finished = time.monotonic() - start, _now()
        if report is not None:
            with _signals_held():  # a second Ctrl-C must not cut the report short
                try:
                    result.write(report)
                except OSError as e:
                    e.result = result
                    raise
    return result


class _signals_held:
    """Holds SIGINT and SIGTERM until the block ends (main thread, POSIX)."""

    _SIGNALS = {signal.SIGINT, signal.SIGTERM}

    def __enter__(self):
        try:
            self.old = signal.pthread_sigmask(signal.SIG_BLOCK, self._SIGNALS)
        except (AttributeError, ValueError, OSError):
            self.old = None
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old)
        return False


def _one(upscaler, record, scale, size, fmt, existing, encoding, progress, video):
    """Fills one file's record: upscaled, kept, or failed."""
    src, dst = record["input"], record["output"]
    record["input_bytes"] = _size(src)
    if existing == "skip" and os.path.exists(dst):
        record.update(status=KEPT, output_bytes=_size(dst))
        progress.finish_file()
        return
    progress.start(os.path.basename(src))
    start = time.monotonic()
    before = _stamp(dst)
    try:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
        except OSError as e:  # a mirrored subfolder that cannot be made
            raise FileError(
                f"cannot create {os.path.dirname(dst)}: {e.strerror or e}",
                e.errno in _FATAL_WRITE,
            ) from None
        in_size, out_size, frames, notes = upscale_one(
            upscaler,
            src,
            dst,
            scale,
            size,
            fmt,
            existing == "overwrite",
            dict(video or {}, progress=progress.frames),
            **encoding,
        )
        record.update(
            status=WRITTEN,
            output_bytes=_size(dst),
            input_size=list(in_size),
            output_size=list(out_size),
            frames=frames,
            notes=notes,
        )
    except FileError as e:
        record.update(status=FAILED, error=str(e))
        if e.fatal:
            record["fatal"] = True
    except KeyboardInterrupt:  # stopped after the rename, before the record: it is written
        if record["status"] == NOT_PROCESSED and _stamp(dst) not in (None, before):
            record.update(status=WRITTEN, output_bytes=_size(dst))
        raise
    finally:
        record["seconds"] = round(time.monotonic() - start, 4)
        progress.finish_file()


def upscale_files(
    upscaler,
    inputs,
    output,
    scale=None,
    size=None,
    recursive=False,
    fmt=None,
    suffix="",
    existing="skip",
    quality=None,
    compression=None,
    strip=False,
    report=None,
    on_file=None,
    progress=None,
    video=None,
):
    """``plan`` then ``run``: ``Upscaler.upscale_files``. (``vdsr-upscale``
    calls the two itself, making its upscaler in between.)"""
    try:
        check_scale_size(scale, size)
    except ValueError as e:
        raise BatchError(str(e)) from None
    batch = plan(
        inputs, output, recursive, fmt, suffix, quality, compression, report, existing, video
    )
    return run(
        upscaler,
        batch.files,
        batch.destinations,
        scale,
        size,
        fmt,
        existing,
        quality,
        compression,
        strip,
        batch.skipped,
        report,
        on_file,
        progress,
        video,
    )
