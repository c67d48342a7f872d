"""The files shipped in the package: pretrained weights, their metadata and
their LiteRT conversion. Imports nothing beyond the standard library, so the
light (LiteRT-only) install can read them too.
"""

import json
import os

_WEIGHTS = os.path.join(os.path.dirname(__file__), "weights")

# The LiteRT model converted from the bundled weights (fp16 weights, float32
# compute on CPU: half the size of fp32, the same PSNR; BUILD.md "TFLite").
BUNDLED_TFLITE = "vdsr.fp16.tflite"


def bundled_weights_path():
    """Path of the pretrained weights shipped in the package (may not exist)."""
    return os.path.join(_WEIGHTS, "vdsr.weights.h5")


def bundled_tflite_path():
    """Path of the bundled ``.tflite`` model (may not exist)."""
    return os.path.join(_WEIGHTS, BUNDLED_TFLITE)


def bundled_weights_info():
    """Metadata of the bundled weights, or None when none are bundled.

    Returns:
        The dict of ``weights/vdsr.weights.json``: ``version``, ``date``,
        ``sha256``, ``architecture``, ``recipe``, ``patches_seen``,
        ``scores`` (``{set: {"x2": {"psnr", "ssim"}, ...}}``, from
        ``vdsr-eval``), ``label``, ``tflite`` (the bundled LiteRT model's
        file name, sha256 and the weights it was converted from) and more.
    """
    path = os.path.join(_WEIGHTS, "vdsr.weights.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
