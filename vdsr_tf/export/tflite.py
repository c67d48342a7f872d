"""Export a VDSR Keras model to a TFLite (LiteRT) flatbuffer.

Four variants, all with a dynamic (1, H, W, 1) float32 input and output, so
one runner (``vdsr_tf.litert.LiteRTPredictor``) serves all of them and any
image size is accepted through ``resize_tensor_input``:

* ``"fp32"``: no optimisation; matches Keras to float rounding.
* ``"fp16"``: float16 weights (half the size), computed in float32.
* ``"dynamic"``: int8 weights (a quarter of the size), activations float.
  Weight tensors below TFLite's 1024-element threshold stay float32.
* ``"int8"``: int8 weights and activations, calibrated on real training
  patches (MATLAB-bicubic-degraded, ``vdsr_tf.data.PatchSampler``); a
  QUANTIZE op at the input and a DEQUANTIZE at the output keep the float32
  boundary.

Conversion uses ``tf.lite.TFLiteConverter.from_keras_model``, which keeps the
model's unknown spatial dimensions (shape signature ``[-1, -1, -1, 1]``), so
no variant needs a fixed input shape. ``from_concrete_functions`` is not used:
it produced NaN models with this TensorFlow build.
"""

import contextlib
import io
import os
import tempfile
import warnings

import numpy as np
from absl import logging

from vdsr_tf.files import atomic_write_bytes

QUANTIZATIONS = ("fp32", "fp16", "dynamic", "int8")


def check_quantization(quantization):
    """Returns ``quantization`` if it is a known variant name.

    Raises:
        ValueError: naming the valid variants otherwise.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"Unknown quantization {quantization!r}; valid: {', '.join(QUANTIZATIONS)}")
    return quantization


def calibration_patches(planes, num, patch_size=41, scales=(2, 3, 4), seed=0):
    """Real VDSR input patches for int8 calibration.

    Args:
        planes: list of uint8 (H, W) HR Y planes in [0, 255] (``load_y_planes``);
            each at least ``patch_size`` pixels per side.
        num: number of patches (>= 1).
        patch_size: side of the square patches, in pixels.
        scales: degradation scales drawn per image visit.
        seed: sampling seed; the same seed gives the same patches.

    Returns:
        float32 (num, patch_size, patch_size, 1): bicubic-upscaled LR Y in
        about [0, 1] (bicubic overshoot kept), the network's input.
    """
    from vdsr_tf.config import DataConfig
    from vdsr_tf.data import PatchSampler

    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    if not planes:
        raise ValueError("calibration needs at least one Y plane")
    per_image = 8
    config = DataConfig(patch_size=patch_size, scales=tuple(scales), downsize=(1.0, 0.7, 0.5),
                        augment=True, patches_per_image=per_image, batch_size=1,
                        shuffle_buffer=max(1, min(num, 8 * per_image)))
    pairs = PatchSampler(list(planes), config, seed=seed).pairs()
    return np.stack([next(pairs)[0] for _ in range(num)]).astype(np.float32)


def _default_planes():
    """uint8 Y planes of the bundled sample HR images."""
    from vdsr_tf.data import load_y_planes
    from vdsr_tf.imageio import sample_images_dir

    return load_y_planes(os.path.join(sample_images_dir(), "HR"))


def _configure(converter, quantization, patches):
    """Sets a converter's optimisation options for one variant (in place)."""
    import tensorflow as tf

    if quantization == "fp32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        def representative_dataset():
            for patch in patches:
                yield [patch[None]]

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32


def export_tflite(model, path, quantization="fp32", representative_planes=None,
                  num_calibration=200, patch_size=41, seed=0, scales=(2, 3, 4)):
    """Converts a VDSR Keras model to a ``.tflite`` file with a dynamic H x W.

    Args:
        model: a VDSR Keras model (``build_vdsr`` / ``load_pretrained``)
            mapping float32 (B, H, W, 1) bicubic Y in [0, 1] to SR Y.
        path: destination ``.tflite`` file; its folder must exist. Written
            atomically (temporary file + rename).
        quantization: one of ``QUANTIZATIONS``: "fp32", "fp16", "dynamic",
            "int8" (see the module docstring).
        representative_planes: int8 only: list of uint8 (H, W) HR Y planes
            to cut calibration patches from; None uses the bundled sample
            HR images (``sample_images_dir()/HR``, two images).
        num_calibration: int8 only: number of calibration patches.
        patch_size: int8 only: side of the calibration patches in pixels.
        seed: int8 only: patch sampling seed.
        scales: int8 only: degradation scales of the calibration patches.

    Returns:
        ``{"path": str, "bytes": int, "quantization": str}``.

    Raises:
        ValueError: for an unknown ``quantization`` (the message lists the
            valid ones) or bad calibration arguments.
        FileNotFoundError: if the destination folder does not exist.
    """
    check_quantization(quantization)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Output folder does not exist: {folder}")
    patches = None
    if quantization == "int8":
        planes = _default_planes() if representative_planes is None else representative_planes
        patches = calibration_patches(planes, num_calibration, patch_size, scales, seed)
        logging.info("int8 calibration: %d patches of %dx%d from %d images",
                     len(patches), patch_size, patch_size, len(planes))

    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    _configure(converter, quantization, patches)
    printed = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
        # Raised for int8 because inference_input_type stays float32, so no
        # input quantization statistics are needed.
        warnings.filterwarnings("ignore", "Statistics for quantized inputs")
        # Keras prints its intermediate SavedModel's signature to stdout.
        data = converter.convert()
    logging.debug("converter output:\n%s", printed.getvalue())
    atomic_write_bytes(path, data)
    logging.info("wrote %s (%s, %d bytes)", path, quantization, len(data))
    return {"path": path, "bytes": len(data), "quantization": quantization}
