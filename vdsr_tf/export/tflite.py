"""Export a VDSR Keras model to a TFLite (LiteRT) flatbuffer.

Five variants, each with a float32 (1, H, W, 1) input and output, so one
runner (``vdsr_tf.inference.litert.LiteRTPredictor``) serves all of them:

* ``"fp32"``: no optimisation; matches Keras to float rounding.
* ``"fp16"``: float16 weights (half the size), computed in float32.
* ``"dynamic"``: int8 weights (a quarter of the size), activations float.
  Weight tensors below TFLite's 1024-element threshold stay float32.
* ``"int8"``: int8 weights and activations, calibrated on real training
  patches (MATLAB-bicubic-degraded, ``vdsr_tf.data.degradation.PatchSampler``); a
  QUANTIZE op at the input and a DEQUANTIZE at the output keep the float32
  boundary. For accelerators that run integer models only; it costs 0.05 to
  0.15 dB.
* ``"mixed_int8"``: the same int8 calibration for the hidden layers, but the
  first and the last convolution and the skip ``Add`` stay float32 (the
  one-channel layers carry the image itself and its fine residual, where
  int8 steps are visible). What ``Upscaler(precision="int8")`` runs: within
  0.03 dB of fp32 (BUILD.md "CPU inference").

By default H and W are dynamic (shape signature ``[-1, -1, -1, 1]``): any
image size through ``resize_tensor_input``, on the CPU. GPU and NPU delegates
need static shapes: ``fixed_size=S`` writes a (1, S, S, 1) model, which the
runner applies to any image of at least S x S through overlapping windows
with the same result. Conversion uses
``tf.lite.TFLiteConverter.from_keras_model`` (of ``static_model`` for a
static input); ``from_concrete_functions`` is not used: it produced NaN
models with this TensorFlow build.
"""

import contextlib
import io
import os
import tempfile
import warnings

import numpy as np
from absl import logging

from vdsr_tf.io.atomic import atomic_write_bytes

QUANTIZATIONS = ("fp32", "fp16", "dynamic", "int8", "mixed_int8")
CALIBRATED = ("int8", "mixed_int8")  # the variants that need calibration patches


def check_quantization(quantization):
    """Returns ``quantization`` if it is a known variant name.

    Raises:
        ValueError: naming the valid variants otherwise.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"Unknown quantization {quantization!r}; valid: {', '.join(QUANTIZATIONS)}"
        )
    return quantization


def calibration_patches(
    planes, num, patch_size=41, scales=(2, 3, 4), seed=0, downsize=(1.0, 0.7, 0.5)
):
    """Real VDSR input patches for int8 calibration.

    Args:
        planes: list of uint8 (H, W) HR Y planes in [0, 255] (``load_y_planes``);
            each at least ``patch_size`` pixels per side.
        num: number of patches (>= 1).
        patch_size: side of the square patches, in pixels.
        scales: degradation scales drawn per image visit.
        seed: sampling seed; the same seed gives the same patches.
        downsize: HR downsizing factors drawn per visit (training's).

    Returns:
        float32 (num, patch_size, patch_size, 1): bicubic-upscaled LR Y in
        about [0, 1] (bicubic overshoot kept), the network's input.
    """
    from vdsr_tf.config import DataConfig
    from vdsr_tf.data.degradation import PatchSampler

    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    planes = [p for p in planes if min(p.shape[:2]) >= patch_size]
    if not planes:
        raise ValueError(
            f"calibration needs at least one Y plane of {patch_size} pixels or more per side"
        )
    per_image = 8
    config = DataConfig(
        patch_size=patch_size,
        scales=tuple(scales),
        downsize=tuple(downsize),
        augment=True,
        patches_per_image=per_image,
        batch_size=1,
        shuffle_buffer=max(1, min(num, 8 * per_image)),
    )
    pairs = PatchSampler(list(planes), config, seed=seed).pairs()
    return np.stack([next(pairs)[0] for _ in range(num)]).astype(np.float32)


def _default_planes():
    """uint8 Y planes of the bundled sample HR images."""
    from vdsr_tf.data.degradation import load_y_planes
    from vdsr_tf.io.images import sample_images_dir

    return load_y_planes(os.path.join(sample_images_dir(), "HR"))


def _configure(converter, quantization, patches):
    """Sets a converter's optimisation options for one variant (in place)."""
    import tensorflow as tf

    if quantization == "fp32":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantization in CALIBRATED:

        def representative_dataset():
            for patch in patches:
                yield [patch[None]]

        converter.representative_dataset = representative_dataset
    if quantization == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32


def _mixed_int8(converter, patches):
    """int8 hidden layers with a float first and last convolution and skip
    add: the quantizer's denylist (``QuantizationDebugOptions``) names the
    two convolutions' output tensors, read from the float conversion."""
    import tensorflow as tf

    from vdsr_tf.io.tflite_file import conv_outputs

    with tempfile.TemporaryDirectory() as tmp:
        float_path = os.path.join(tmp, "float.tflite")
        with open(float_path, "wb") as f:
            f.write(converter("fp32").convert())
        names = conv_outputs(float_path)
    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=[names[0], names[-1]], denylisted_ops=["ADD"]
    )
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter("mixed_int8"),
        debug_dataset=lambda: iter([[patches[:1]]]),
        debug_options=options,
    )
    return debugger.get_nondebug_quantized_model()


def _parse_fixed(fixed_size):
    """None, S or (H, W) -> None or (H, W)."""
    if fixed_size is None:
        return None
    h, w = (fixed_size, fixed_size) if np.isscalar(fixed_size) else fixed_size
    if int(h) < 1 or int(w) < 1:
        raise ValueError(f"fixed_size must be positive, got {fixed_size}")
    return int(h), int(w)


def static_model(model, fixed_size):
    """The same network with a static (1, H, W, 1) input, sharing its weights."""
    import keras

    h, w = fixed_size
    inputs = keras.Input(batch_shape=(1, h, w, 1), name="y")
    return keras.Model(inputs, model(inputs), name=f"{model.name}_{h}x{w}")


def export_tflite(
    model,
    path,
    quantization="fp32",
    representative_planes=None,
    num_calibration=None,
    patch_size=None,
    seed=0,
    scales=(2, 3, 4),
    fixed_size=None,
):
    """Converts a VDSR Keras model to a ``.tflite`` file.

    Args:
        model: a VDSR Keras model (``build_vdsr`` / ``load_pretrained``)
            mapping float32 (B, H, W, 1) bicubic Y in [0, 1] to SR Y.
        path: destination ``.tflite`` file; its folder must exist. Written
            atomically (temporary file + rename).
        quantization: one of ``QUANTIZATIONS``: "fp32", "fp16", "dynamic",
            "int8", "mixed_int8" (see the module docstring).
        representative_planes: int8 variants only: list of uint8 (H, W) HR Y planes
            to cut calibration patches from; None uses the bundled sample
            HR images (``sample_images_dir()/HR``, two images).
        num_calibration: int8 variants only: number of calibration patches; None:
            200 for 41-pixel patches, and as many pixels for larger ones.
        patch_size: int8 variants only: side of the calibration patches in pixels;
            None: 41, or the static input size. A dynamic int8 model
            calibrated with the patches of a static one gets the same
            quantization, so the two give the same pixels.
        seed: int8 variants only: patch sampling seed.
        scales: int8 variants only: degradation scales of the calibration patches.
        fixed_size: None for a dynamic H x W input (CPU), or S / (H, W)
            for a static (1, H, W, 1) input, which GPU and NPU delegates
            need; ``LiteRTPredictor`` tiles any image with it.

    Returns:
        ``{"path": str, "bytes": int, "quantization": str, "fixed_size":
        (H, W) or None, "ops": {name: count}}``.

    Raises:
        ValueError: for an unknown ``quantization`` (the message lists the
            valid ones), a bad ``fixed_size`` or bad calibration arguments.
        FileNotFoundError: if the destination folder does not exist.
    """
    check_quantization(quantization)
    fixed = _parse_fixed(fixed_size)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Output folder does not exist: {folder}")
    patches = None
    if quantization in CALIBRATED:
        size = patch_size or (max(fixed) if fixed else 41)
        if fixed and size < max(fixed):
            raise ValueError(
                f"calibration patches of {size} pixels cannot feed a {fixed[0]}x{fixed[1]} input"
            )
        num = num_calibration or max(4, -(-200 * 41 * 41 // (size * size)))
        planes = _default_planes() if representative_planes is None else representative_planes
        downsize = (1.0, 0.7, 0.5) if size <= 64 else (1.0,)
        patches = calibration_patches(planes, num, size, scales, seed, downsize)
        if fixed:
            patches = patches[:, : fixed[0], : fixed[1]]
        logging.info(
            "int8 calibration: %d patches of %dx%d from %d images",
            len(patches),
            size,
            size,
            len(planes),
        )

    import tensorflow as tf

    def converter(variant):
        conv = tf.lite.TFLiteConverter.from_keras_model(
            static_model(model, fixed) if fixed else model
        )
        _configure(conv, variant, patches)
        return conv

    printed = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
        # Raised for int8 because inference_input_type stays float32, so no
        # input quantization statistics are needed.
        warnings.filterwarnings("ignore", "Statistics for quantized inputs")
        # Keras prints its intermediate SavedModel's signature to stdout.
        if quantization == "mixed_int8":
            data = _mixed_int8(converter, patches)
        else:
            data = converter(quantization).convert()
    logging.debug("converter output:\n%s", printed.getvalue())
    atomic_write_bytes(path, data)
    logging.info("wrote %s (%s, %d bytes)", path, quantization, len(data))
    from vdsr_tf.io.tflite_file import op_counts

    return {
        "path": path,
        "bytes": len(data),
        "quantization": quantization,
        "fixed_size": fixed,
        "ops": op_counts(path),
    }
