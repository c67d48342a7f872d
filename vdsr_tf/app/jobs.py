"""The web page's work, without the web framework.

``Jobs`` holds what lives as long as the server: one ``Upscaler`` per
precision, made on first use and then shared by every request (the model
loads once per process and precision, and an ``Upscaler`` serves many threads), the MATLAB
bicubic baseline the page compares with, and a private temporary folder.
``Jobs.run`` upscales one uploaded file through ``Upscaler.upscale_file``,
the path ``vdsr-upscale`` takes: the same header check against the pixel
limit before decoding, the same metadata kept, the same bytes written.
"""

import copy
import dataclasses
import importlib.util
import os
import shutil
import tempfile
import threading
import time

from vdsr_tf.inference.batch import default_output
from vdsr_tf.inference.engines import check_path, default_backend
from vdsr_tf.inference.upscaler import Upscaler
from vdsr_tf.io.images import FORMATS, ImageError, open_image, save_image, sniff_format
from vdsr_tf.io.presets import LOAD_ERRORS
from vdsr_tf.io.video import is_video
from vdsr_tf.ops.tiling import DEFAULT_MAX_PIXELS, DEFAULT_TILE, check_scale_size

# The extension each output format is written with, and the formats a
# browser shows (a TIFF result is shown through a PNG of its first frame).
EXTENSIONS = {
    "PNG": "png",
    "JPEG": "jpg",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tif",
}
SHOWN = {"PNG", "JPEG", "WEBP", "GIF", "BMP"}
KEEP_S = 3600  # how long a request's files stay for download


@dataclasses.dataclass
class Result:
    """One upscaled file: ``output`` to download, ``before`` (bicubic) and
    ``after`` (the output as a browser shows it) for the comparison."""

    name: str
    output: str
    before: str
    after: str
    input_size: tuple
    output_size: tuple
    frames: int
    notes: list
    seconds: float


def offered_precisions(weights=None):
    """The precisions this machine runs ``weights`` in: auto and fp32
    always; int8 where LiteRT is installed; bf16 on a GPU or a CPU with bf16."""
    if weights == "bicubic":
        return ["auto"]
    offered = ["auto", "fp32"]
    for precision in ("int8", "bf16"):
        backend = default_backend(weights, None, precision)
        if backend == "litert" and importlib.util.find_spec("ai_edge_litert") is None:
            continue
        try:
            check_path(backend, precision)
        except ValueError:
            continue
        offered.append(precision)
    return offered


class Jobs:
    """The upscalers and files of a web page's requests.

    Args:
        weights: as ``Upscaler`` (None: the bundled weights; "bicubic").
        tile, max_pixels, threads: as ``Upscaler``.
        upscalers: ``{precision: Upscaler}`` to serve instead of loading
            ``weights``; then only these precisions are offered.
        folder: where uploads and results live (default: a new temporary
            folder, removed by ``close``).
        keep_s: seconds a request's results stay for download; older ones
            are removed as new requests come (``sweep``).
    """

    def __init__(
        self,
        weights=None,
        tile=DEFAULT_TILE,
        max_pixels=DEFAULT_MAX_PIXELS,
        threads=None,
        upscalers=None,
        folder=None,
        keep_s=KEEP_S,
    ):
        self.weights = weights
        self.options = dict(tile=tile, max_pixels=max_pixels)
        self.threads = threads
        self._upscalers = dict(upscalers or {})
        self.precisions = list(self._upscalers) or offered_precisions(weights)
        # One lock per precision: loading one (a conversion, auto's timing)
        # does not hold up requests for another.
        self._locks = {precision: threading.Lock() for precision in self.precisions}
        self.bicubic = Upscaler("bicubic", **self.options)
        self._own_folder = folder is None
        self.folder = folder or tempfile.mkdtemp(prefix="vdsr-app-")
        self.results = os.path.join(self.folder, "results")
        os.makedirs(self.results, exist_ok=True)
        self.keep_s = keep_s

    def upscaler(self, precision="auto"):
        """The shared ``Upscaler`` of ``precision``, loaded on first use.

        Raises:
            ValueError: a precision not offered, or weights that cannot be loaded.
        """
        if precision not in self.precisions:
            raise ValueError(
                f"precision {precision!r} is not offered here; choose {', '.join(self.precisions)}"
            )
        with self._locks[precision]:
            if precision not in self._upscalers:
                try:
                    self._upscalers[precision] = Upscaler(
                        self.weights, precision=precision, threads=self.threads, **self.options
                    )
                except LOAD_ERRORS as e:
                    raise ValueError(f"cannot load the model: {e}") from None
            return self._upscalers[precision]

    def run(
        self,
        src,
        name=None,
        scale=None,
        size=None,
        ensemble=False,
        precision="auto",
        fmt=None,
        progress=None,
    ):
        """Upscales the image file ``src`` (every frame of it).

        Args:
            src: the uploaded file's path.
            name: its name on the user's machine (default: ``src``'s); the
                download is ``NAME_x2.EXT`` (``_WxH`` for a size).
            scale, size: as ``Upscaler.upscale`` (size is (H, W)).
            ensemble: average the 8 flips and rotations.
            precision: one of ``self.precisions``.
            fmt: the download's extension ("png", "jpg", ...); None keeps
                the input's format.
            progress: ``progress(tiles_done, tiles_total)``, or None.

        Returns:
            A ``Result``.

        Raises:
            ValueError: a bad request or file (``ImageError`` for an
                unreadable or over-limit one), with a one-line message.
            OSError: the result cannot be written.
        """
        check_scale_size(scale, size)
        name = os.path.basename(name or src)
        if is_video(name):
            raise ImageError(
                "a video: upscale it with the command line, vdsr-upscale FILE --scale=2"
            )
        if fmt:
            extension = f".{str(fmt).lower()}"
            if extension not in FORMATS:
                raise ValueError(f"unknown format {fmt!r}; choose {', '.join(EXTENSIONS.values())}")
            fmt = FORMATS[extension]
        else:
            fmt = _format_of(src, name)
        # A shallow copy shares the loaded network (an Upscaler keeps no
        # per-call state); the ensemble and the progress are this request's.
        upscaler = copy.copy(self.upscaler(precision))
        upscaler.ensemble, upscaler.progress = bool(ensemble), progress
        self.sweep()
        folder = tempfile.mkdtemp(dir=self.results)
        try:
            out = os.path.join(folder, default_output(name, scale, size, EXTENSIONS[fmt]))
            start = time.monotonic()
            in_size, out_size, frames, notes = upscaler.upscale_file(src, out, scale, size, fmt)
            seconds = time.monotonic() - start
            before = os.path.join(folder, "bicubic.png")
            self.bicubic.upscale_file(src, before, scale, size, "PNG", compression=1)
            after = out
            if fmt not in SHOWN:
                after = os.path.join(folder, "shown.png")
                save_image(open_image(out)[0], after, compression=1)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return Result(name, out, before, after, in_size, out_size, frames, notes, seconds)

    def sweep(self):
        """Removes the results of requests older than ``keep_s``."""
        cutoff = time.time() - self.keep_s
        for entry in os.scandir(self.results):
            try:
                old = entry.stat().st_mtime < cutoff
            except OSError:
                continue
            if old:
                shutil.rmtree(entry.path, ignore_errors=True)

    def close(self):
        """Removes the temporary folder this ``Jobs`` made."""
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)


def one_line(error):
    """An exception's message on one line (an OSError's ``strerror``)."""
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return " ".join(text.split()) or type(error).__name__


def _format_of(path, name):
    """The output format that keeps an upload's own: its extension's, else
    the one its header names (PNG for formats no output holds)."""
    fmt = FORMATS.get(os.path.splitext(name)[1].lower())
    if fmt:
        return fmt
    with open(path, "rb") as f:
        return sniff_format(f.read(1 << 16))
