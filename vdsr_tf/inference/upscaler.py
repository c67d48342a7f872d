"""Super-resolution of real images: colour handling and tiling around VDSR.

``Upscaler`` turns an image of any size and mode into a larger one:

* RGB goes through MATLAB YCbCr: Y is MATLAB-bicubic-upscaled and refined by
  the model, Cb and Cr are bicubic-upscaled. Grayscale stays grayscale. An
  alpha channel is bicubic-upscaled and kept.
* Any scale > 1 (non-integer too) or an exact output size.
* The output is made tile by tile (``vdsr_tf.ops.pipeline``, the same code the
  SavedModel's graph runs), each tile's network input with ``context`` pixels
  of real image around it (the network's receptive-field radius), so the
  tiled result equals the whole-image one (to float rounding) and memory is
  bounded by the tile size.
* Optionally the geometric self-ensemble: the 8 flips/rotations, averaged.

With ``weights="bicubic"`` it is the plain MATLAB bicubic baseline. The
evaluation, the CLIs and the exporters' reference outputs all use this class.

Two engines run the network (``backend``: Keras or LiteRT) in one of three
precisions (fp32, bf16, int8); ``vdsr_tf.inference.engines`` loads them. The default,
``precision="auto"``, runs the bundled weights on the fastest path this
machine has within 0.05 dB of fp32 on Set5 (measured once per machine and
cached: ``vdsr_tf.inference.precision``), and other weights exact. ``precision="fp32"``
is always exact.
"""

import os

import numpy as np

from vdsr_tf.inference.engines import (
    BACKENDS,
    check_path,
    default_backend,
    keras_network,
    litert_predictor,
    resolve_auto,
    set_keras_threads,
)
from vdsr_tf.inference.precision import PATHS, check_precision, path_name
from vdsr_tf.io.presets import is_bundled
from vdsr_tf.ops import pipeline
from vdsr_tf.ops.dihedral import dihedral, undo_dihedral
from vdsr_tf.ops.imresize import imresize, quantise
from vdsr_tf.ops.tiling import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_TILE,
    grow_window,
    network_context,
    output_size,
    slices,
    tiles,
)


class Upscaler:
    """VDSR super-resolution of numpy arrays and PIL images.

    Args:
        weights: None (or ``"bundled"``) for the bundled pretrained
            weights; a preset or weights handle: a registered preset name, a
            preset folder, a ``.keras`` or ``.weights.h5`` file,
            ``"hf://owner/name"`` or ``"kaggle://owner/model/framework/variation"``
            (``vdsr_tf.io.presets``); or ``"bicubic"`` for the MATLAB bicubic
            baseline (no network).
        model: a VDSR Keras model to use instead of ``weights``.
        tile: tile side in output pixels (memory is bounded by it); None or 0
            runs each image in one piece.
        ensemble: average the 8 flips/rotations (about 8x slower, sharper).
        max_pixels: refuse outputs larger than this many pixels.
        progress: a callable ``progress(done_tiles, total_tiles)`` or None.
        predictor: instead of a Keras model, any callable mapping float32
            (1, h, w, 1) to (1, h, w, 1) with a ``context`` attribute (its
            receptive-field radius in pixels), e.g. a LiteRT interpreter
            wrapper (``vdsr_tf.inference.litert``). Then Keras is never imported.
        backend: the engine for ``weights`` / ``model``: "keras", "litert"
            (XNNPACK; other weights than the bundled ones are converted once
            per process, about 10 s) or None: the one ``precision`` picks.
        precision: "auto" (the default): for the bundled weights, the
            fastest path on this machine within 0.05 dB of fp32 on Set5 at
            every scale (Keras on a GPU where one is visible; on a CPU each
            candidate is timed once and the result cached,
            ``vdsr_tf.inference.engines.resolve_auto``), for other weights fp32.
            "fp32": exact (LiteRT for the bundled weights on a CPU, else
            Keras). "bf16": Keras with bf16 convolutions (a GPU, or a CPU
            with AVX512-BF16 or AMX-BF16). "int8": LiteRT, the mixed-int8
            model (int8 hidden layers, float first and last layers). Their
            Set5 costs are in ``bundled_weights_info()["set5_psnr_change"]``.
        threads: CPU threads of the engine; None uses every core this
            process may run on (its affinity mask).

    Attributes:
        backend, precision: the engine and precision that run the network
            ("litert", "int8"); None for bicubic and a predictor.
        why: why this path runs (``auto``'s measurement, or "asked for").

    Thread safety: one ``Upscaler`` may serve many threads (a web service's
    request handlers, a Beam worker's threads). Every method may be called
    from several threads at once, and each result equals what one thread
    gets for the same input, bit for bit (``benchmarks/concurrency.py
    threads``: 8 threads, 800 calls, BUILD.md "Reliability"). A LiteRT
    engine runs one network call at a time (one interpreter, already on
    every core, behind a lock); the Keras engine runs concurrent calls in
    its backend's thread pools. Do not change the attributes while calls
    run, and give concurrent ``upscale_file`` calls different outputs. Memory
    stays flat over a long life: no state grows with the number of calls or
    of distinct image sizes (``benchmarks/concurrency.py rss``).

    Raises:
        FileNotFoundError: if the weights (or the bundled weights) are missing.
        ValueError: for an unknown backend or precision, int8 on Keras, bf16
            on LiteRT or on a CPU without bf16, a backend, precision or
            thread count given with a predictor, or weights that are not a
            VDSR preset of this architecture or fail their sha256.
        ImportError: a hub handle whose client is not installed.
        OSError: a hub that cannot give the files.
    Example:

    ```python
    upscaler = vdsr_tf.Upscaler()  # bundled weights, the fastest exact-enough path
    sr = upscaler.upscale(read_image("photo.jpg"), scale=2)  # vdsr_tf.io.images
    upscaler.upscale_file("photo.jpg", "photo_x2.jpg", scale=2)
    ```
    """

    def __init__(
        self,
        weights=None,
        model=None,
        tile=DEFAULT_TILE,
        ensemble=False,
        max_pixels=DEFAULT_MAX_PIXELS,
        progress=None,
        predictor=None,
        backend=None,
        precision="auto",
        threads=None,
    ):
        if predictor is not None and model is not None:
            raise ValueError("Give a model or a predictor, not both")
        if tile is not None and tile < 0:
            raise ValueError(f"tile must be >= 0, got {tile}")
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
        check_precision(precision)
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        if predictor is not None and (
            backend is not None or precision != "auto" or threads is not None
        ):
            raise ValueError(
                "A predictor is already a network: give no backend, precision or threads"
            )
        if weights is not None and weights != "bicubic" and is_bundled(weights):
            weights = None  # "bundled", or the bundled folder: the bundled paths
        network = predictor is None and (model is not None or weights != "bicubic")
        forward, why = predictor, None
        if network:
            if precision == "auto":
                name, why = resolve_auto(weights, model, backend, threads)
                backend, precision = PATHS[name]
            else:
                backend = backend or default_backend(weights, model, precision)
                why = f"precision={precision!r} asked for"
            check_path(backend, precision)
            if backend == "litert":
                predictor, model = litert_predictor(weights, model, precision, threads), None
                forward = predictor
            else:
                set_keras_threads(threads)
                model, forward = keras_network(weights, model, precision)
        self.backend = backend if network else None
        self.precision = precision if network else None
        self.why = why
        self.model = model
        self.tile = tile or None
        self.ensemble = bool(ensemble)
        self.max_pixels = max_pixels
        self.progress = progress
        self.predictor = predictor
        self._forward = forward

    @classmethod
    def from_preset(cls, handle="bundled", **options):
        """An ``Upscaler`` of the weights a preset handle names
        (``Upscaler(weights=handle, **options)``).

        Example:

        ```python
        upscaler = vdsr_tf.Upscaler.from_preset("bundled", tile=256)
        ```
        """
        return cls(weights=handle, **options)

    def describe(self):
        """One line: what runs the network and why (for ``vdsr-upscale -v``)."""
        if self._forward is None:
            return "bicubic (no network)"
        if self.backend is None:
            where = getattr(self.predictor, "path", None)
            return f"the given predictor{f' ({where})' if where else ''}"
        threads = getattr(self.predictor, "num_threads", None)
        return (
            f"{path_name(self.backend, self.precision)}"
            + (f" on {threads} thread{'s' if threads > 1 else ''}" if threads else "")
            + f": {self.why}"
        )

    @property
    def context(self):
        """Pixels of context per tile side: the receptive-field radius."""
        if self.predictor is not None:
            return int(self.predictor.context)
        return network_context(self.model)

    # -- the Y plane --------------------------------------------------------
    def _run(self, y):
        """The model (and ensemble) on one float32 (h, w) plane, or on a batch
        (N, h, w) of them in one network call per flip/rotation."""
        x = y[..., None] if y.ndim == 3 else y[None, :, :, None]
        if not self.ensemble:
            out = self._forward(x)
        else:
            acc = np.zeros(x.shape, np.float64)
            for k in range(8):
                t = np.ascontiguousarray(dihedral(x, k))
                acc += undo_dihedral(self._forward(t), k)
            out = (acc / 8).astype(np.float32)
        return out[..., 0] if y.ndim == 3 else out[0, :, :, 0]

    def _plan(self, height, width):
        """``tiling.tiles``' plan for an output of (height, width); for a
        predictor with a static input size (``min_window``), each window is
        widened to at least that size where the image allows."""
        tile = self.tile or max(height, width)
        plan = list(tiles(height, width, tile, self.context if self.tile else 0))
        least = getattr(self.predictor, "min_window", None)
        if not least:
            return plan
        grown = []
        for box, (top, left, bottom, right) in plan:
            top, bottom = grow_window(top, bottom, least[0], height)
            left, right = grow_window(left, right, least[1], width)
            grown.append((box, (top, left, bottom, right)))
        return grown

    def _tiled(self, height, width, channels, make_tiles):
        """Assembles images from ``make_tiles(tile, src)`` (a list: the tile
        of each image) over the plan, reporting progress."""
        plan = self._plan(height, width)
        outs = None
        for i, (box, window) in enumerate(plan):
            parts = make_tiles(box, window)
            if outs is None:
                outs = [np.empty((height, width, channels), part.dtype) for part in parts]
            for out, part in zip(outs, parts, strict=True):
                out[slices(box)] = part
            if self.progress:
                self.progress(i + 1, len(plan))
        return outs

    def predict_y(self, y):
        """Refines a bicubic-upscaled Y plane with the model, tile by tile.

        Args:
            y: float32 (H, W), Y in [0, 1] (bicubic output, overshoot allowed).

        Returns:
            float32 (H, W), the SR Y (not clipped). ``y`` itself for bicubic.
        """
        y = np.asarray(y, np.float32)
        if self._forward is None:
            return y
        h, w = y.shape

        def make_tile(box, src):
            pred = self._run(np.ascontiguousarray(y[src[0] : src[2], src[1] : src[3]]))
            return [
                pred[box[0] - src[0] : box[2] - src[0], box[1] - src[1] : box[3] - src[1], None]
            ]

        return self._tiled(h, w, 1, make_tile)[0][:, :, 0]

    # -- whole images -------------------------------------------------------
    def upscale_array(self, image, scale=None, size=None):
        """Super-resolves a numpy image.

        Args:
            image: (h, w) or (h, w, 1) grayscale, (h, w, 3) RGB, or
                (h, w, 2) / (h, w, 4) with alpha last; uint8, uint16, or
                float32 / float64 in [0, 1].
            scale: factor > 1; the output is ``round(h * scale) x round(w * scale)``.
            size: exact output (H, W) instead of ``scale``.

        Returns:
            An array of the input's dtype, range and channel layout,
            (H, W[, C]): uint8 and uint16 rounded, floats clipped to [0, 1].

        Raises:
            ValueError: for another dtype or layout, floats outside [0, 1]
                or not finite, or an output over ``max_pixels``.
        """
        return self.upscale_arrays([image], scale, size)[0]

    def upscale_arrays(self, images, scale=None, size=None):
        """``upscale_array`` of several images of one shape and dtype (the
        frames of a video), the network running on all of them at once: one
        call per tile (and per flip of the ensemble) on an (N, h, w, 1)
        batch. Each result equals ``upscale_array``'s to the float rounding
        of a batched convolution (within one uint8 level: tests/test_video.py).

        Raises:
            ValueError: as ``upscale_array``, or images of different shapes
                or dtypes.
        """
        images = [np.asarray(image) for image in images]
        if not images:
            return []
        image = images[0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4)):
            raise ValueError(f"Expected (h, w) or (h, w, 1|2|3|4), got shape {image.shape}")
        if min(image.shape[:2]) < 1:
            raise ValueError(f"Empty image of shape {image.shape}")
        if any(other.shape != image.shape or other.dtype != image.dtype for other in images):
            raise ValueError("upscale_arrays takes images of one shape and dtype")
        peak = _peak(image)
        for other in images[1:]:
            _peak(other)  # floats: finite, in [0, 1]
        out_hw = output_size(image.shape[:2], scale, size)
        if out_hw[0] * out_hw[1] > self.max_pixels:
            raise ValueError(
                f"the output, {out_hw[1]}x{out_hw[0]}, exceeds the pixel limit of "
                f"{self.max_pixels:,}"
            )
        full = [other if other.ndim == 3 else other[:, :, None] for other in images]
        channels = full[0].shape[-1]
        if self._forward is None:
            outs = [self._bicubic(one, channels, out_hw, peak) for one in full]
        else:
            planes = [pipeline.split(one, channels, np, peak) for one in full]
            to_uint8 = image.dtype == np.uint8

            def make_tiles(box, src):
                windows = [pipeline.network_window(net, out_hw, src, np) for net, _ in planes]
                srs = self._run(np.stack([w[:, :, 0] for w in windows]))
                return [
                    pipeline.finish_tile(
                        sr[:, :, None], rest, channels, out_hw, box, src, np, to_uint8=to_uint8
                    )
                    for sr, (_, rest) in zip(srs, planes, strict=True)
                ]

            outs = self._tiled(out_hw[0], out_hw[1], channels, make_tiles)
        if image.dtype == np.uint16:
            outs = [np.round(out * np.float32(65535)).astype(np.uint16) for out in outs]
        outs = [out.astype(image.dtype, copy=False) for out in outs]
        return outs if image.ndim == 3 else [out[:, :, 0] for out in outs]

    @staticmethod
    def _bicubic(full, channels, out_hw, peak):
        """The literature's baseline: MATLAB imresize of the uint8 image
        (rounded after each pass); alpha and non-uint8 images enlarged in
        float (clipped to [0, 1])."""
        colour = full[:, :, : 3 if channels >= 3 else 1]
        alpha = full[:, :, -1] if channels in (2, 4) else None
        if full.dtype == np.uint8:
            colour = imresize(colour, output_shape=out_hw)
            finish = quantise
        else:
            colour = np.clip(imresize(colour / np.float32(peak), output_shape=out_hw), 0, 1)
            finish = lambda a: np.clip(a, 0, 1).astype(np.float32)  # noqa: E731
        colour = colour if colour.ndim == 3 else colour[:, :, None]
        if alpha is not None:
            alpha = finish(imresize(alpha / np.float32(peak), output_shape=out_hw))
            colour = np.concatenate([colour.astype(alpha.dtype), alpha[:, :, None]], axis=-1)
        return colour

    def upscale(self, image, scale=None, size=None):
        """Super-resolves a numpy array or a PIL image; returns the same kind.

        Args:
            image: a numpy array (see ``upscale_array``) or a PIL image, as a
                photo viewer shows it: the EXIF orientation is applied, CMYK
                is converted with its ICC profile, and every mode becomes L,
                LA, RGB or RGBA (``vdsr_tf.io.images.prepare``). An animated
                image is refused: ``upscale_file`` keeps every frame.
            scale: factor > 1, or
            size: exact output (H, W).

        Returns:
            The SR image: a numpy array, or a PIL image whose ``info`` holds
            the ICC profile matching its pixels and the input's EXIF
            (orientation reset, pixel size updated), for ``save_image`` or
            ``Image.save(..., exif=..., icc_profile=...)``.
        """
        try:
            from PIL import Image
        except ImportError:  # numpy-only use
            Image = None
        if Image is None or not isinstance(image, Image.Image):
            return self.upscale_array(image, scale, size)
        from vdsr_tf.io.images import exif_for_size, prepare

        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            raise ValueError(
                f"an image with {frames} frames: Upscaler.upscale_file keeps every "
                "frame (or upscale the frames of PIL.ImageSequence one by one)"
            )
        converted, meta, _ = prepare(image)
        out = Image.fromarray(
            self.upscale_array(np.asarray(converted), scale, size), converted.mode
        )
        if meta.get("exif"):
            meta["exif"] = exif_for_size(meta["exif"], *out.size)
        out.info.update(meta)
        return out

    def upscale_file(
        self,
        src,
        dst,
        scale=None,
        size=None,
        fmt=None,
        overwrite=False,
        quality=None,
        compression=None,
        strip=False,
    ):
        """Super-resolves an image file into another, every frame of it.

        The path the CLI takes for each file: the header is checked against
        ``max_pixels`` (input and output) before decoding; the image is read
        as a viewer shows it (``vdsr_tf.io.images.open_frames``); the output is
        written atomically with the EXIF (orientation reset), an ICC profile
        matching its pixels, and an animation's frame durations and loop
        count, where the format holds them.

        Args:
            src, dst: file paths; ``dst``'s extension picks the format
                unless ``fmt`` (a Pillow format name).
            scale, size: as ``upscale``.
            overwrite: replace an existing ``dst``.
            quality: 1-100 for JPEG (default 95) and WebP (lossy; default
                lossless).
            compression: 0-9, PNG's zlib level (default 6).
            strip: write no EXIF (the ICC profile stays: it defines the colours).

        Returns:
            ``(input (w, h), output (w, h), frames, notes)``.

        Raises:
            vdsr_tf.io.images.ImageError: an unreadable or over-limit file.
            FileExistsError: ``dst`` exists and not ``overwrite``.
            ValueError: an unsupported output format, several frames for a
                format that holds one, or a quality / compression the format
                does not take.
            OSError: ``dst`` cannot be written (nothing is left behind).
        """
        from vdsr_tf.io.images import check_encoding, format_for, save_frames

        if os.path.exists(dst) and not overwrite:
            raise FileExistsError(f"output {dst} exists (use --overwrite)")
        fmt = fmt or format_for(dst)
        check_encoding([fmt], quality, compression)  # before the work
        frames, out, meta, notes = self._upscale_frames(src, scale, size, fmt)
        notes += save_frames(
            out, dst, fmt, meta, overwrite, quality=quality, compression=compression, strip=strip
        )
        return frames[0].size, out[0].size, len(out), notes

    def upscale_files(self, inputs, output, scale=None, size=None, **options):
        """Super-resolves image and video files and folders into a file or
        folder: ``vdsr-upscale``.

        The command's batch, with the same options and the same code
        (``vdsr_tf.inference.batch``): a file that fails is recorded and the
        batch goes on; outputs that exist are kept (``existing="skip"``), so
        running the same call again after a stop finishes the rest.

        Args:
            inputs: a path or a list of files and folders.
            output: an output file (one input file) or folder.
            scale, size: as ``upscale``.
            **options: ``recursive``, ``fmt`` ("png", "jpg", ...: every
                output's format; default each input's own), ``suffix``
                (added to each output's name), ``existing`` ("skip",
                "overwrite" or "fail"), ``quality``, ``compression``,
                ``strip`` (as ``upscale_file``), ``report`` (a JSON file
                path, written atomically, also when the batch stops),
                ``on_file`` (called with each file's record as it is done)
                and ``video`` (a dict of ``upscale_video``'s ``codec``,
                ``crf``, ``on_corrupt`` and ``batch`` for the videos among
                the inputs, which keep their container whatever ``fmt``).

        Returns:
            A ``vdsr_tf.inference.batch.BatchResult``: ``.files`` (a record
            per input: input, output, status, sizes, seconds, error),
            ``.counts`` and ``.status`` (0, or 1 if any file failed).

        Raises:
            vdsr_tf.inference.batch.BatchError (a ValueError): inputs,
                outputs or options that cannot make a batch, before any work.
        """
        from vdsr_tf.inference import batch

        if isinstance(inputs, (str, os.PathLike)):
            inputs = [inputs]
        return batch.upscale_files(self, inputs, output, scale=scale, size=size, **options)

    def upscale_video(
        self,
        src,
        dst,
        scale=None,
        size=None,
        codec=None,
        crf=None,
        overwrite=False,
        on_corrupt="fail",
        batch=None,
        progress=None,
    ):
        """Super-resolves a video file into another, frame by frame
        (``vdsr_tf.inference.video``; needs PyAV: ``pip install "vdsr-tf[video]"``).

        Each frame goes through ``upscale_arrays``, as an image would. The
        output is in the container ``dst``'s extension names (on the command
        line, the input's), with the input's timestamps (variable frame
        rate included), rotation,
        colour tags, and its audio and subtitle streams, copied without
        re-encoding. It is written to a temporary file renamed at the end:
        a stop leaves no file, and a rerun starts over.

        Args:
            src, dst: file paths; ``dst`` ends in .mp4, .m4v, .mov, .mkv,
                .webm or .avi.
            scale, size: as ``upscale``; ``size`` is (H, W) as a player
                shows the video (its rotation applied). The output is
                rounded down to even sizes, which the encoders need (a note
                says so).
            codec: "h264", "hevc", "vp9", "av1", "ffv1" or "prores"; None:
                the input's own where it is one of these and ``dst``'s
                container holds it, else H.264 (VP9 for .webm).
            crf: the encoder's constant quality, lower is better (default:
                h264 18, hevc 20, vp9 24, av1 28).
            overwrite: replace an existing ``dst``.
            on_corrupt: "fail" (the default: a corrupt frame or a truncated
                file is an error) or "skip" (such frames are dropped and
                counted in a note; the others keep their timestamps).
            batch: frames per network call (default 8 with Keras on a GPU,
                else 1).
            progress: a callable ``progress(frames_done, frames_total)``
                (``frames_total`` from the header, or None).

        Returns:
            ``(input (w, h), output (w, h), frames, notes)``.

        Raises:
            vdsr_tf.io.video.VideoError: an unreadable, corrupt or
                truncated video, or an output over ``max_pixels``.
            FileExistsError: ``dst`` exists and not ``overwrite``.
            ValueError: an unknown codec, a CRF out of range, or a container
                that cannot hold the streams.
            ImportError: PyAV is not installed.
            OSError: ``dst`` cannot be written (nothing is left behind).
        """
        from vdsr_tf.inference.video import upscale_video

        return upscale_video(
            self, src, dst, scale, size, codec, crf, overwrite, on_corrupt, batch, progress
        )

    def _upscale_frames(self, src, scale, size, fmt):
        """``(input frames, output frames, meta, notes)`` of a file path or
        bytes, checked against ``max_pixels`` and ``fmt`` before decoding."""
        from PIL import Image

        from vdsr_tf.io.images import ImageError, check_frames, open_frames

        def check(w, h, n):
            oh, ow = output_size((h, w), scale, size)
            if n * oh * ow > self.max_pixels:
                frames = f" x {n} frames" if n > 1 else ""
                raise ImageError(
                    f"the output, {ow}x{oh}{frames} (from {w}x{h}), would exceed "
                    f"the pixel limit of {self.max_pixels:,}"
                )
            check_frames(n, fmt)  # before decoding (save_frames checks it again)

        frames, meta, notes = open_frames(src, max_pixels=self.max_pixels, check=check)
        out = [
            Image.fromarray(self.upscale_array(np.asarray(f), scale, size), f.mode) for f in frames
        ]
        return frames, out, meta, notes

    def upscale_bytes(
        self, data, scale=None, size=None, fmt=None, quality=None, compression=None, strip=False
    ):
        """``upscale_file`` for an encoded image in memory (bytes in, bytes out).

        Decoded and encoded in memory by the same code as ``upscale_file``,
        so the bytes are exactly what ``vdsr-upscale`` writes for the same
        file (frames, EXIF, ICC profile, alpha).

        Args:
            data: the content of an image file.
            scale, size: as ``upscale``.
            fmt: output Pillow format name ("PNG", "JPEG", ...); None keeps
                the input's format (PNG for one no output format holds).
            quality, compression, strip: as ``upscale_file``.

        Returns:
            ``(output bytes, (input (w, h), output (w, h), frames, notes))``.

        Raises:
            vdsr_tf.io.images.ImageError, ValueError: as ``upscale_file``.
        """
        from vdsr_tf.io.images import ImageError, check_encoding, encode_frames, sniff_format

        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError(f"Expected the bytes of an image file, got {type(data).__name__}")
        if not data:
            raise ImageError("empty file (0 bytes)")
        fmt = fmt or sniff_format(data)
        check_encoding([fmt], quality, compression)
        frames, out, meta, notes = self._upscale_frames(bytes(data), scale, size, fmt)
        encoded, more = encode_frames(
            out, fmt, meta, quality=quality, compression=compression, strip=strip
        )
        return encoded, (frames[0].size, out[0].size, len(out), notes + more)


def _peak(image):
    """The value of white for an array's dtype; ValueError for others."""
    if image.dtype == np.uint8:
        return 255.0
    if image.dtype == np.uint16:
        return 65535.0
    if image.dtype in (np.float32, np.float64):
        if not np.all(np.isfinite(image)):
            raise ValueError("the image holds NaN or infinite values")
        lo, hi = float(image.min()), float(image.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"float images must be in [0, 1]; this one spans "
                f"[{lo:g}, {hi:g}] (divide uint8 data by 255)"
            )
        return 1.0
    raise ValueError(f"Expected a uint8, uint16, float32 or float64 image, got {image.dtype}")


def upscale(image, scale=None, size=None, weights=None, **kwargs):
    """One call: ``Upscaler(weights, **kwargs).upscale(image, scale, size)``.

    ``image`` is a numpy array (uint8, uint16, or float32 / float64 in
    [0, 1]; the result has the same dtype and range) or a PIL image. A Keras
    network is loaded once per weights file (``vdsr_tf.inference.engines.load_network``),
    and ``auto``'s choice is read from its cache, so repeated calls cost the
    upscaling and a few milliseconds; for many images, keep one ``Upscaler``.
    """
    return Upscaler(weights, **kwargs).upscale(image, scale=scale, size=size)
