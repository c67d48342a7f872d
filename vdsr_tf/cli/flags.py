"""The flags the commands share, each defined once.

A command calls the ``define_*`` functions it needs when it is imported. This
module disclaims the flags it defines (``flags.disclaim_key_flags``), so absl
attributes each one to the command's module, and ``--help`` lists every flag
the command takes. Values are read, never written: a command that derives a
value (``--demo``'s defaults) keeps it in a local variable.

Old spellings stay for one release as deprecated aliases
(``define_deprecated_alias``); ``warn_deprecated`` names the new one.
"""

import sys

from absl import flags

from vdsr_tf.inference.engines import BACKENDS
from vdsr_tf.inference.precision import PRECISIONS
from vdsr_tf.io.images import FORMATS
from vdsr_tf.ops.tiling import DEFAULT_MAX_PIXELS, DEFAULT_TILE

flags.disclaim_key_flags()

# --backend takes the API's names (engines.BACKENDS); "tflite" is the old
# spelling of "litert".
_OLD_BACKENDS = {"tflite": "litert"}
DEPRECATED_ALIASES = {}  # old flag name -> new flag name


def define_resize_flags():
    """``--scale`` and ``--size``: how large the output is."""
    flags.DEFINE_float("scale", None, "Enlargement factor > 1 (non-integer allowed).")
    flags.DEFINE_string("size", None, "Exact output size WxH instead of --scale.")


def define_output_flags(
    max_pixels_help="Refuse outputs with more pixels than this (all "
    "frames of an animation together), before decoding.",
):
    """``--format``, ``--tile``, ``--ensemble`` and ``--max_pixels``."""
    flags.DEFINE_enum(
        "format",
        None,
        [ext[1:] for ext in FORMATS],
        "Output format for every file (default: keep each input's extension).",
    )
    define_tile_flags(max_pixels_help)
    flags.DEFINE_boolean("ensemble", False, "Average the 8 flips/rotations (8x slower).")


def define_tile_flags(
    max_pixels_help, tile_help="Tile side in output pixels (bounds memory); 0 = whole image."
):
    """``--tile`` and ``--max_pixels``, with the library's defaults."""
    flags.DEFINE_integer("tile", DEFAULT_TILE, tile_help, lower_bound=0)
    flags.DEFINE_integer("max_pixels", DEFAULT_MAX_PIXELS, max_pixels_help, lower_bound=1)


def define_weights_flag(extra=""):
    """``--weights``: a preset or weights handle; default the bundled weights."""
    flags.DEFINE_string(
        "weights",
        None,
        "The model: a preset name (bundled), a preset folder, a .keras or .weights.h5 "
        "file, a vdsr-train run folder, hf://owner/name[@revision] or "
        "kaggle://owner/model/framework/variation[/version] (pip install "
        "'vdsr-tf[hub]')" + extra + "; default: the bundled weights.",
    )


def define_precision_flag(default="auto", help_text=""):
    """``--precision``: auto, fp32, bf16 or int8 (``Upscaler(precision=)``)."""
    flags.DEFINE_enum("precision", default, list(PRECISIONS), help_text)


def define_backend_flag(help_text):
    """``--backend``: keras or litert (tflite: deprecated spelling of litert)."""
    flags.DEFINE_enum(
        "backend",
        None,
        list(BACKENDS) + list(_OLD_BACKENDS),
        help_text + " (tflite: the old spelling of litert, deprecated).",
    )


def backend(value, prog):
    """The ``--backend`` value in the API's spelling, warning on an old one."""
    if value in _OLD_BACKENDS:
        print(
            f"{prog}: warning: --backend={value} is deprecated; use "
            f"--backend={_OLD_BACKENDS[value]}",
            file=sys.stderr,
        )
        return _OLD_BACKENDS[value]
    return value


def define_deprecated_alias(old, new):
    """``--old`` as another spelling of ``--new`` (absl sets ``--new`` from it)."""
    flags.DEFINE_alias(old, new)
    DEPRECATED_ALIASES[old] = new


def warn_deprecated(prog, flag_values=flags.FLAGS):
    """One stderr line for each deprecated alias given on the command line."""
    for old, new in DEPRECATED_ALIASES.items():
        if old in flag_values and flag_values[old].present:
            print(
                f"{prog}: warning: --{old} is deprecated and goes in the next release; use --{new}",
                file=sys.stderr,
            )
