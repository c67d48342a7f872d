"""SavedModel export for TF Serving, with the upscaler's maths inside the graph.

``export_saved_model`` writes TF Serving's layout ``DIR/<model_name>/<version>/``
(``saved_model.pb`` + ``variables/``, tag ``serve``) with three signatures:

* ``serving_default``: ``y`` float32 [N, H, W, 1], bicubic-upscaled Y in
  [0, 1] -> ``sr_y`` float32 [N, H, W, 1] (the network alone).
* ``upscale_image``: ``image_bytes`` string [N] (PNG / JPEG / WebP / BMP / GIF
  bytes) and ``scale`` float32 [N] (> 1, one per image) -> ``png_bytes``
  string [N]. Images in one batch may differ in size, mode and scale. Grey,
  grey + alpha, RGB and RGBA are handled like ``vdsr_tf.Upscaler`` does.
* ``upscale_rgb``: ``rgb`` uint8 [1, h, w, 3] and ``scale`` float32 [] ->
  ``sr_rgb`` uint8 [1, H, W, 3].

The colour conversion uses ``vdsr_tf.imresize``'s matrices and the bicubic
weights are built by ``vdsr_tf.imresize.enlarge_matrix`` inside the graph, so
the served model resizes exactly as the evaluated Python upscaler does (within
float32 rounding: outputs agree to 1 grey level).
"""

import os
import shutil
import tempfile

import tensorflow as tf
import tensorflow.experimental.numpy as tnp

from vdsr_tf import imresize as _ir


class _GraphNumpy:
    """``tf.experimental.numpy`` with an ``arange`` that takes tensor sizes."""

    def __getattr__(self, name):
        return getattr(tnp, name)

    @staticmethod
    def arange(*args):
        return tf.range(*args)


_XP = _GraphNumpy()
_RGB2YCC = tf.constant(_ir._RGB2YCBCR.T / 255.0, tf.float32)
_YCC2RGB = tf.constant(_ir._YCBCR2RGB.T * 255.0, tf.float32)
_OFFSET = tf.constant(_ir._YCBCR_OFFSET / 255.0, tf.float32)


def _enlarge(image, out_h, out_w):
    """MATLAB bicubic enlargement of float32 (h, w, c) to (out_h, out_w, c)."""
    shape = tf.shape(image)
    rows = tf.cast(_ir.enlarge_matrix(shape[0], out_h, _XP, "float64"), tf.float32)
    cols = tf.cast(_ir.enlarge_matrix(shape[1], out_w, _XP, "float64"), tf.float32)
    tall = tf.einsum("Hh,hwc->Hwc", rows, image)  # the vertical axis first, as imresize
    return tf.einsum("Ww,Hwc->HWc", cols, tall)


def _quantise(x):
    return tf.cast(tf.clip_by_value(tf.floor(x * 255.0 + 0.5), 0.0, 255.0), tf.uint8)


class VDSRServing(tf.Module):
    """The exported module: the Keras model plus graph-side pre/post-processing."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def _network(self, y):
        return tf.cast(self.model(y, training=False), tf.float32)

    def _upscale(self, image, scale):
        """uint8 (h, w, c), c in 1..4, float32 scale -> uint8 (H, W, c)."""
        tf.debugging.assert_greater(scale, 1.0, message="scale must be > 1")
        shape = tf.shape(image)
        out_h = tf.cast(tf.floor(tf.cast(shape[0], tf.float32) * scale + 0.5), tf.int32)
        out_w = tf.cast(tf.floor(tf.cast(shape[1], tf.float32) * scale + 0.5), tf.int32)
        x = tf.cast(image, tf.float32) / 255.0
        channels = shape[2]
        colour_channels = tf.where(channels >= 3, 3, 1)
        colour = x[:, :, :colour_channels]

        def grey():
            up = _enlarge(colour[:, :, :1], out_h, out_w)
            return _quantise(self._network(up[None])[0])

        def rgb():
            ycc = tf.einsum("hwc,cd->hwd", colour[:, :, :3], _RGB2YCC) + _OFFSET
            up = _enlarge(ycc, out_h, out_w)
            y = self._network(up[None, :, :, :1])[0]
            sr = tf.concat([y, up[:, :, 1:]], axis=-1)
            return _quantise(tf.einsum("hwc,cd->hwd", sr - _OFFSET, _YCC2RGB))

        out = tf.cond(colour_channels == 3, rgb, grey)
        out = tf.reshape(out, [out_h, out_w, colour_channels])

        def with_alpha():
            alpha = _enlarge(x[:, :, -1:], out_h, out_w)
            return tf.concat([out, _quantise(alpha)], axis=-1)

        has_alpha = tf.logical_or(tf.equal(channels, 2), tf.equal(channels, 4))
        return tf.cond(has_alpha, with_alpha, lambda: out)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name="y")])
    def serving_default(self, y):
        """y: float32 [N, H, W, 1], bicubic-upscaled Y in [0, 1] -> {"sr_y": same shape}."""
        return {"sr_y": self._network(y)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes"),
                                  tf.TensorSpec([None], tf.float32, name="scale")])
    def upscale_image(self, image_bytes, scale):
        """image_bytes: string [N] encoded images; scale: float32 [N], each > 1
        -> {"png_bytes": string [N]}, PNGs in the input's mode (grey, grey+alpha,
        RGB, RGBA) of size round(h * scale) x round(w * scale)."""

        def one(args):
            data, s = args
            image = tf.io.decode_image(data, dtype=tf.uint8, expand_animations=False)
            return tf.io.encode_png(self._upscale(image, s))

        tf.debugging.assert_equal(tf.shape(image_bytes), tf.shape(scale),
                                  message="image_bytes and scale need one entry per image")
        png = tf.map_fn(one, (image_bytes, scale), fn_output_signature=tf.string)
        return {"png_bytes": png}

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name="rgb"),
                                  tf.TensorSpec([], tf.float32, name="scale")])
    def upscale_rgb(self, rgb, scale):
        """rgb: uint8 [1, h, w, 3]; scale: float32 [] > 1 -> {"sr_rgb": uint8 [1, H, W, 3]}."""
        return {"sr_rgb": self._upscale(rgb[0], scale)[None]}


def export_saved_model(model, output_dir, model_name="vdsr", version=1, overwrite=False):
    """Writes ``output_dir/model_name/version/`` for TF Serving.

    Args:
        model: a VDSR Keras model (TensorFlow backend).
        output_dir: the model base folder (TF Serving's ``--model_base_path``
            parent).
        model_name: folder name of the model.
        version: positive integer version folder.
        overwrite: replace an existing version folder.

    Returns:
        The version folder's path. It is written to a temporary folder beside
        it first and renamed, so a failed export leaves nothing behind.

    Raises:
        FileExistsError: if the version exists and not ``overwrite``.
        ValueError: on a bad name or version.
    """
    if not model_name or os.sep in model_name or model_name.startswith("."):
        raise ValueError(f"Bad model name {model_name!r}")
    if int(version) < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    base = os.path.join(output_dir, model_name)
    path = os.path.join(base, str(int(version)))
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists (use --overwrite or another --version)")
    os.makedirs(base, exist_ok=True)
    module = VDSRServing(model)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=base)
    try:
        tf.saved_model.save(module, tmp, signatures={
            "serving_default": module.serving_default,
            "upscale_image": module.upscale_image,
            "upscale_rgb": module.upscale_rgb,
        })
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return path


__all__ = ["export_saved_model", "VDSRServing"]
