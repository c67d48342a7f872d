"""The files shipped in the package: the ``"bundled"`` preset
(``vdsr_tf/presets/bundled``: pretrained weights, their metadata and model
card, and their LiteRT conversions; ``vdsr_tf.io.presets``). Imports nothing
beyond the standard library, so the light (LiteRT-only) install can read them
too.
"""

import json
import os

from vdsr_tf.io.presets import BUNDLED, METADATA, WEIGHTS

_WEIGHTS = BUNDLED


# The LiteRT models converted from the bundled weights, by precision: fp32
# (XNNPACK's float convolutions) and int8 (``mixed_int8``: int8 hidden
# layers, float ends and skip add).
BUNDLED_TFLITE = {"fp32": "vdsr.fp32.tflite", "int8": "vdsr.mixed_int8.tflite"}


def bundled_weights_path():
    """Path of the pretrained weights shipped in the package (may not exist)."""
    return os.path.join(_WEIGHTS, WEIGHTS)


def bundled_tflite_path(precision="fp32"):
    """Path of the bundled ``.tflite`` model of ``precision`` ("fp32" or
    "int8"; the file may not exist).

    Raises:
        ValueError: for another precision (LiteRT has no bf16 model).
    """
    if precision not in BUNDLED_TFLITE:
        raise ValueError(
            f"No bundled LiteRT model of precision {precision!r}; there are: "
            f"{', '.join(BUNDLED_TFLITE)}"
        )
    return os.path.join(_WEIGHTS, BUNDLED_TFLITE[precision])


def bundled_weights_info():
    """Metadata of the bundled weights, or None when none are bundled.

    Returns:
        The dict of the bundled preset's ``metadata.json``: ``version``, ``date``,
        ``sha256``, ``architecture``, ``recipe``, ``patches_seen``,
        ``scores`` (``{set: {"x2": {"psnr", "ssim"}, ...}}``, from
        ``vdsr-eval``), ``label``, ``tflite`` (``{precision: {...}}``: each
        bundled LiteRT model's file name, quantization, sha256 and the
        weights' sha256 it was converted from), ``set5_psnr_change``
        (``{path: {"x2": dB, ...}}``: each inference path's Set5 PSNR minus
        Keras fp32's, what ``precision="auto"`` bounds; see
        ``vdsr_tf.inference.precision``) and more.
    """
    path = os.path.join(_WEIGHTS, METADATA)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
