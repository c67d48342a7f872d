"""The files shipped in the package: pretrained weights, their metadata and
their LiteRT conversion. Imports nothing beyond the standard library, so the
light (LiteRT-only) install can read them too.
"""

import json
import os

_WEIGHTS = os.path.join(os.path.dirname(__file__), "weights")

# The LiteRT models converted from the bundled weights, by precision: fp32
# (XNNPACK's float convolutions, the fastest exact CPU path; BUILD.md "CPU
# inference") and mixed_int8 (int8 hidden layers, float ends and skip add).
BUNDLED_TFLITE = {"fp32": "vdsr.fp32.tflite", "int8": "vdsr.mixed_int8.tflite"}
PRECISIONS = tuple(BUNDLED_TFLITE)


def bundled_weights_path():
    """Path of the pretrained weights shipped in the package (may not exist)."""
    return os.path.join(_WEIGHTS, "vdsr.weights.h5")


def check_precision(precision):
    """Returns ``precision`` if it is one of ``PRECISIONS``.

    Raises:
        ValueError: naming the valid ones otherwise.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    return precision


def bundled_tflite_path(precision="fp32"):
    """Path of the bundled ``.tflite`` model of ``precision`` ("fp32" or
    "int8"; the file may not exist)."""
    return os.path.join(_WEIGHTS, BUNDLED_TFLITE[check_precision(precision)])


def bundled_weights_info():
    """Metadata of the bundled weights, or None when none are bundled.

    Returns:
        The dict of ``weights/vdsr.weights.json``: ``version``, ``date``,
        ``sha256``, ``architecture``, ``recipe``, ``patches_seen``,
        ``scores`` (``{set: {"x2": {"psnr", "ssim"}, ...}}``, from
        ``vdsr-eval``), ``label``, ``tflite`` (``{precision: {...}}``: each
        bundled LiteRT model's file name, quantization, sha256, the weights'
        sha256 it was converted from, and for int8 its Set5 PSNR change)
        and more.
    """
    path = os.path.join(_WEIGHTS, "vdsr.weights.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
