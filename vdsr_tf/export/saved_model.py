"""SavedModel export for TF Serving, running the upscaler's own code in the graph.

``export_saved_model`` writes TF Serving's layout ``DIR/<model_name>/<version>/``
(``saved_model.pb`` + ``variables/``, tag ``serve``) with three signatures:

* ``serving_default``: ``y`` float32 [N, H, W, 1], bicubic-upscaled Y in
  [0, 1] -> ``sr_y`` float32 [N, H, W, 1] (the network alone).
* ``upscale_image``: ``image_bytes`` string [N] (PNG / JPEG / WebP / BMP / GIF
  bytes) and ``scale`` float32 [N] (> 1, one per image) -> ``png_bytes``
  string [N]. Images in one batch may differ in size, mode and scale. Grey,
  grey + alpha, RGB and RGBA are handled as ``vdsr_tf.Upscaler`` does.
* ``upscale_rgb``: ``rgb`` uint8 [1, h, w, 3] and ``scale`` float32 [] ->
  ``sr_rgb`` uint8 [1, H, W, 3].

The image signatures run ``vdsr_tf.ops.pipeline`` (colour, MATLAB-bicubic
enlargement, rounding) and ``vdsr_tf.ops.tiling`` (output size, tile plan,
receptive field), the code ``vdsr_tf.Upscaler`` runs, through a
``tf.experimental.numpy`` namespace, tile by tile in a ``tf.while_loop``:
the outputs agree with ``vdsr-upscale --precision=fp32``'s up to float
accumulation order,
and memory is bounded by the tile, not the image. A request whose input or
output exceeds the pixel limit fails with InvalidArgument before anything
is decoded: the width and height are read from the PNG, JPEG, GIF, BMP or
WebP header.
"""

import os

import tensorflow as tf
import tensorflow.experimental.numpy as tnp

from vdsr_tf.io.atomic import atomic_directory
from vdsr_tf.ops import pipeline, tiling
from vdsr_tf.ops.tiling import DEFAULT_MAX_PIXELS, DEFAULT_TILE, network_context


class _GraphNumpy:
    """``tf.experimental.numpy`` with ``arange``/``shape`` that take and give
    tensor sizes, and ``take`` with int32 indices."""

    def __getattr__(self, name):
        return getattr(tnp, name)

    @staticmethod
    def arange(*args):
        return tf.range(*args)

    @staticmethod
    def shape(x):
        return tf.shape(x)

    @staticmethod
    def take(x, indices, axis):
        return tf.gather(x, indices, axis=axis)

    @staticmethod
    def asarray(x, dtype=None):
        x = tf.convert_to_tensor(x)
        return x if dtype is None else tf.cast(x, dtype)


_XP = _GraphNumpy()
# The shared processing code is plain tensor arithmetic: AutoGraph converting
# it (recursively) only made the export three times slower.
_plain = tf.autograph.experimental.do_not_convert


def _bytes_at(data, start, length):
    """int64 [length]: bytes ``start ..`` of a (zero-padded) string scalar."""
    return tf.cast(tf.io.decode_raw(tf.strings.substr(data, start, length), tf.uint8), tf.int64)


def _little(b):
    return tf.reduce_sum(
        b * tf.bitwise.left_shift(tf.ones_like(b), 8 * tf.range(tf.size(b, out_type=tf.int64)))
    )


def _big(b):
    return _little(tf.reverse(b, [0]))


def header_size(data):
    """(height, width) int64 from an encoded image's header, without decoding.

    PNG (IHDR), GIF (screen descriptor), BMP (DIB header), JPEG (SOF, via
    ``tf.image.extract_jpeg_shape``) and WebP (VP8, VP8L, VP8X); (-1, -1)
    for anything else (the decoder then rejects it).
    """
    padded = tf.strings.join([data, tf.constant(b"\0" * 32)])
    head = tf.strings.substr(padded, 0, 16)

    def png():
        return _big(_bytes_at(padded, 20, 4)), _big(_bytes_at(padded, 16, 4))

    def gif():
        return _little(_bytes_at(padded, 8, 2)), _little(_bytes_at(padded, 6, 2))

    def bmp():
        h = _little(_bytes_at(padded, 22, 4))
        h = tf.where(h >= 2**31, 2**32 - h, h)  # negative height: top-down rows
        return h, _little(_bytes_at(padded, 18, 4))

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
        return shape[0], shape[1]

    def webp():
        chunk = tf.strings.substr(padded, 12, 4)

        def vp8x():
            return _little(_bytes_at(padded, 27, 3)) + 1, _little(_bytes_at(padded, 24, 3)) + 1

        def vp8l():
            bits = _little(_bytes_at(padded, 21, 4))
            return (
                tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 14), 0x3FFF) + 1,
                tf.bitwise.bitwise_and(bits, 0x3FFF) + 1,
            )

        def vp8():
            return (
                tf.bitwise.bitwise_and(_little(_bytes_at(padded, 28, 2)), 0x3FFF),
                tf.bitwise.bitwise_and(_little(_bytes_at(padded, 26, 2)), 0x3FFF),
            )

        return tf.case(
            [(tf.equal(chunk, "VP8X"), vp8x), (tf.equal(chunk, "VP8L"), vp8l)], default=vp8
        )

    def unknown():
        return tf.constant(-1, tf.int64), tf.constant(-1, tf.int64)

    starts = tf.strings.substr
    return tf.case(
        [
            (tf.equal(starts(head, 0, 8), b"\x89PNG\r\n\x1a\n"), png),
            (tf.equal(starts(head, 0, 4), b"GIF8"), gif),
            (tf.equal(starts(head, 0, 2), b"BM"), bmp),
            (tf.equal(starts(head, 0, 2), b"\xff\xd8"), jpeg),
            (
                tf.logical_and(
                    tf.equal(starts(head, 0, 4), b"RIFF"), tf.equal(starts(head, 8, 4), b"WEBP")
                ),
                webp,
            ),
        ],
        default=unknown,
    )


# Markers of an animation, by container: an animated WebP's flag and ANIM /
# ANMF chunks, an APNG's acTL chunk, a GIF's loop extension. TF 2.21's
# decode_image is not memory safe on damaged animated WebP
# (tools/fuzz_images.py: heap corruption or a segfault on 28 of 72 mutants of
# an animated WebP, none of 328 of still ones), and it keeps only the first
# frame of the others: the served model refuses them all.
_ANIMATION_MARKERS = {
    "webp": (b"ANIM", b"ANMF"),
    "png": (b"acTL",),
    "gif": (b"NETSCAPE2.0", b"ANIMEXTS1.0"),
}


def is_animation(data):
    """bool: whether encoded image bytes are an animation (a search of the
    bytes, before any decoder sees them)."""
    flat = tf.reshape(data, [1])

    def has(markers):
        return tf.reduce_any(
            tf.stack([tf.strings.split(flat, sep=m).row_lengths()[0] > 1 for m in markers])
        )

    head = tf.strings.substr(tf.strings.join([data, tf.constant(b"\0" * 32)]), 0, 21)
    webp = tf.logical_and(
        tf.equal(tf.strings.substr(head, 0, 4), b"RIFF"),
        tf.equal(tf.strings.substr(head, 8, 4), b"WEBP"),
    )
    flags = tf.logical_and(
        tf.equal(tf.strings.substr(head, 12, 4), b"VP8X"),  # its flags:
        tf.bitwise.bitwise_and(_bytes_at(head, 20, 1)[0], 2) > 0,
    )  # animated
    return tf.case(
        [
            (webp, lambda: tf.logical_or(flags, has(_ANIMATION_MARKERS["webp"]))),
            (
                tf.equal(tf.strings.substr(head, 0, 8), b"\x89PNG\r\n\x1a\n"),
                lambda: has(_ANIMATION_MARKERS["png"]),
            ),
            (
                tf.equal(tf.strings.substr(head, 0, 4), b"GIF8"),
                lambda: has(_ANIMATION_MARKERS["gif"]),
            ),
        ],
        default=lambda: tf.constant(False),
    )


class VDSRServing(tf.Module):
    """The exported module: the Keras model plus the upscaler's processing.

    Args:
        model: a VDSR Keras model (TensorFlow backend).
        tile: tile side in output pixels (memory is bounded by it).
        max_pixels: the largest input and output, in pixels, a request may
            have.
    """

    def __init__(self, model, tile=DEFAULT_TILE, max_pixels=DEFAULT_MAX_PIXELS):
        super().__init__()
        self.model = model
        self.tile = int(tile)
        self.context = network_context(model)
        self.max_pixels = int(max_pixels)

    def _network(self, plane):
        """float32 (h, w, 1) -> (h, w, 1): the model on one plane."""
        return tf.cast(self.model(plane[None], training=False), tf.float32)[0]

    def _check_pixels(self, height, width, what):
        pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
        return tf.debugging.assert_less_equal(
            pixels,
            tf.constant(self.max_pixels, tf.int64),
            message=f"the {what} exceeds the pixel limit of {self.max_pixels:,} pixels",
        )

    def _output_size(self, shape, scale):
        tf.debugging.assert_greater(scale, 1.0, message="scale must be > 1")
        return (
            tf.cast(tiling.scaled_length(shape[0], scale, _XP), tf.int32),
            tf.cast(tiling.scaled_length(shape[1], scale, _XP), tf.int32),
        )

    def _upscale(self, image, scale, channels):
        """uint8 (h, w, channels) and float32 scale -> uint8 (H, W, channels)."""
        out_h, out_w = self._output_size(tf.shape(image), scale)
        with tf.control_dependencies([self._check_pixels(out_h, out_w, "output")]):
            net, rest = _plain(pipeline.split)(image, channels, _XP)
        step_h, step_w = tiling.tile_steps(out_h, out_w, self.tile)
        strips = tf.TensorArray(tf.uint8, size=0, dynamic_size=True, infer_shape=False)
        # One tile at a time (tf.while_loop would run up to 10 iterations at
        # once): a request's memory is one tile's network activations.
        for top in tf.range(0, out_h, step_h):
            tf.autograph.experimental.set_loop_options(parallel_iterations=1)
            row = tf.TensorArray(tf.uint8, size=0, dynamic_size=True, infer_shape=False)
            for left in tf.range(0, out_w, step_w):
                tf.autograph.experimental.set_loop_options(parallel_iterations=1)
                bottom, right, *src = _plain(tiling.tile_window)(
                    top, left, step_h, step_w, out_h, out_w, self.context, tf.minimum, tf.maximum
                )
                part = _plain(pipeline.upscale_tile)(
                    net,
                    rest,
                    channels,
                    (out_h, out_w),
                    (top, left, bottom, right),
                    tuple(src),
                    self._network,
                    _XP,
                    tf.cond,
                )
                row = row.write(row.size(), tf.transpose(part, [1, 0, 2]))
            strips = strips.write(strips.size(), tf.transpose(row.concat(), [1, 0, 2]))
        return tf.ensure_shape(strips.concat(), [None, None, channels])

    def _upscale_encoded(self, data, scale):
        """Encoded image bytes -> PNG bytes of the SR image (same mode)."""
        height, width = _plain(header_size)(data)
        still = tf.debugging.assert_equal(
            is_animation(data),
            False,
            message="animated images (GIF, WebP, APNG) are not "
            "supported by the served model: send one frame, or use vdsr-upscale, which keeps "
            "every frame",
        )
        with tf.control_dependencies([still, self._check_pixels(height, width, "input")]):
            image = tf.io.decode_image(data, dtype=tf.uint8, expand_animations=False)
        channels = tf.shape(image)[2]
        branches = [
            (
                lambda c=c: tf.io.encode_png(
                    self._upscale(tf.ensure_shape(image, [None, None, c]), scale, c)
                )
            )
            for c in (1, 2, 3, 4)
        ]
        return tf.switch_case(channels - 1, branches)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name="y")])
    def serving_default(self, y):
        """y: float32 [N, H, W, 1], bicubic-upscaled Y in [0, 1] -> {"sr_y": same shape}."""
        return {"sr_y": tf.cast(self.model(y, training=False), tf.float32)}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="image_bytes"),
            tf.TensorSpec([None], tf.float32, name="scale"),
        ]
    )
    def upscale_image(self, image_bytes, scale):
        """image_bytes: string [N] encoded images; scale: float32 [N], each > 1
        -> {"png_bytes": string [N]}, PNGs in the input's mode (grey, grey+alpha,
        RGB, RGBA) of size round(h * scale) x round(w * scale)."""
        tf.debugging.assert_equal(
            tf.shape(image_bytes),
            tf.shape(scale),
            message="image_bytes and scale need one entry per image",
        )
        # One image at a time, so that a batch of N requests (TF Serving's
        # batching) holds one image's working memory, not up to 10.
        png = tf.map_fn(
            lambda args: self._upscale_encoded(*args),
            (image_bytes, scale),
            fn_output_signature=tf.string,
            parallel_iterations=1,
        )
        return {"png_bytes": png}

    @tf.function(
        input_signature=[
            tf.TensorSpec([1, None, None, 3], tf.uint8, name="rgb"),
            tf.TensorSpec([], tf.float32, name="scale"),
        ]
    )
    def upscale_rgb(self, rgb, scale):
        """rgb: uint8 [1, h, w, 3]; scale: float32 [] > 1 -> {"sr_rgb": uint8 [1, H, W, 3]}."""
        shape = tf.shape(rgb)
        with tf.control_dependencies([self._check_pixels(shape[1], shape[2], "input")]):
            return {"sr_rgb": self._upscale(rgb[0], scale, 3)[None]}


WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def _sample_image(height, width, channels, seed):
    """A deterministic uint8 test card: gradients plus a little noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = (255 * (x / max(width - 1, 1) + y / max(height - 1, 1)) / 2)[:, :, None]
    noise = rng.normal(0, 12, (height, width, channels))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def warmup_requests():
    """TF Serving warm-up records: ``[(signature, {input: numpy array})]``.

    Each signature at the sizes a first client is likely to send: the
    network alone on a small and on a full 384-pixel tile (plus context),
    ``upscale_image`` on a PNG (RGB, x2) and a grey JPEG (x3) in one batch,
    ``upscale_rgb`` on a small RGB image.
    """
    import io

    import numpy as np
    from PIL import Image

    def encoded(image, fmt):
        buffer = io.BytesIO()
        Image.fromarray(image.squeeze()).save(buffer, format=fmt)
        return buffer.getvalue()

    y_small = _sample_image(64, 64, 1, 0).astype(np.float32)[None] / 255
    y_tile = _sample_image(424, 424, 1, 1).astype(np.float32)[None] / 255
    images = np.array(
        [encoded(_sample_image(48, 64, 3, 2), "PNG"), encoded(_sample_image(40, 40, 1, 3), "JPEG")],
        dtype=object,
    )
    return [
        ("serving_default", {"y": y_small}),
        ("serving_default", {"y": y_tile}),
        ("upscale_image", {"image_bytes": images, "scale": np.array([2.0, 3.0], np.float32)}),
        (
            "upscale_rgb",
            {"rgb": _sample_image(48, 48, 3, 4)[None], "scale": np.array(2.0, np.float32)},
        ),
    ]


def write_warmup(version_dir, model_name):
    """Writes ``assets.extra/tf_serving_warmup_requests`` (a TFRecord file of
    ``PredictionLog`` protos, TF Serving's warm-up format) into a SavedModel
    folder. TF Serving replays them when it loads the version, so the first
    client request does not pay for the first run of each signature.

    Returns:
        The number of records written.
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    folder = os.path.join(version_dir, "assets.extra")
    os.makedirs(folder, exist_ok=True)
    records = warmup_requests()
    with tf.io.TFRecordWriter(os.path.join(version_dir, WARMUP_FILE)) as writer:
        for signature, inputs in records:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return len(records)


def next_version(base):
    """The next free version number under a model folder: one more than the
    largest numeric subfolder, 1 for a new model."""
    numbers = (
        [int(name) for name in os.listdir(base) if name.isdigit()] if os.path.isdir(base) else []
    )
    return max(numbers, default=0) + 1


def export_saved_model(
    model,
    output_dir,
    model_name="vdsr",
    version=None,
    overwrite=False,
    tile=DEFAULT_TILE,
    max_pixels=DEFAULT_MAX_PIXELS,
    warmup=True,
):
    """Writes ``output_dir/model_name/version/`` for TF Serving.

    Args:
        model: a VDSR Keras model (TensorFlow backend).
        output_dir: the model base folder (TF Serving's ``--model_base_path``
            parent).
        model_name: folder name of the model.
        version: positive integer version folder; None: the next free
            number (``next_version``), so a new export sits beside the
            served one and TF Serving switches to it.
        overwrite: replace an existing version folder (only with an
            explicit ``version``).
        tile: tile side in output pixels; the graph's memory is bounded by it.
        max_pixels: requests with a larger input or output get InvalidArgument.
        warmup: write TF Serving warm-up records (``write_warmup``).

    Returns:
        The version folder's path. It is written to a temporary folder beside
        it first and renamed, so a failed export leaves nothing behind.

    Raises:
        FileExistsError: if the version exists and not ``overwrite``.
        ValueError: on a bad name or version.
    """
    if not model_name or os.sep in model_name or model_name.startswith("."):
        raise ValueError(f"Bad model name {model_name!r}")
    base = os.path.join(output_dir, model_name)
    if version is None:
        version = next_version(base)
    if int(version) < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    path = os.path.join(base, str(int(version)))
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"{path} exists (use --overwrite, another --version, or no "
            "--version for the next free one)"
        )
    os.makedirs(base, exist_ok=True)
    module = VDSRServing(model, tile=tile, max_pixels=max_pixels)
    with atomic_directory(path, overwrite=overwrite) as tmp:
        tf.saved_model.save(
            module,
            tmp,
            signatures={
                "serving_default": module.serving_default,
                "upscale_image": module.upscale_image,
                "upscale_rgb": module.upscale_rgb,
            },
        )
        if warmup:
            write_warmup(tmp, model_name)
    return path


__all__ = [
    "export_saved_model",
    "header_size",
    "is_animation",
    "next_version",
    "VDSRServing",
    "warmup_requests",
    "write_warmup",
]
