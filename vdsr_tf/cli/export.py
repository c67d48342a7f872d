r"""vdsr-export: write the model for TF Serving (SavedModel), devices (TFLite)
or sharing (a preset folder).

    vdsr-export --format=saved_model --output=models [--model_name=vdsr] [--version=N]
    vdsr-export --format=tflite --quantization=fp32|fp16|dynamic|int8|mixed_int8 --output=vdsr.tflite \
        [--calibration_data=../shared/datasets/train/T91] [--fixed_size=256]
    vdsr-export --format=preset --weights=runs/mine --output=my-vdsr [--scores=eval.json] [--tflite]

--fixed_size writes a static 1 x S x S x 1 model for GPU and NPU delegates (the
LiteRT runner tiles any image with it; pass a dynamic model as vdsr-upscale's
--fallback_model for images smaller than S).

--weights picks the weights (default: the bundled ones): any handle (a preset
name or folder, a .keras or .weights.h5 file, a vdsr-train run folder, hf://,
kaggle://). A preset keeps what is known of the weights in its metadata.json
and README.md model card: the source preset's metadata, a run's recipe and
patches seen, and --scores (vdsr-eval --json of these weights).
"""

import os

from absl import flags

from vdsr_tf import cli
from vdsr_tf.cli import CliError, entry_point
from vdsr_tf.cli import flags as shared
from vdsr_tf.export.tflite import CALIBRATED, QUANTIZATIONS
from vdsr_tf.io.presets import LOAD_ERRORS

FLAGS = flags.FLAGS
flags.DEFINE_enum("format", None, ["saved_model", "tflite", "preset"], "What to write.")
flags.DEFINE_string(
    "output",
    None,
    "saved_model: the base folder; tflite: the .tflite file; preset: the preset folder.",
)
shared.define_weights_flag()
flags.DEFINE_string("model_name", "vdsr", "saved_model: model folder name.")
flags.DEFINE_integer(
    "version",
    None,
    "saved_model: version folder (a positive integer); "
    "default: the next free number under the model folder.",
)
flags.DEFINE_enum(
    "quantization",
    "fp32",
    list(QUANTIZATIONS),
    "tflite: weight/activation precision (mixed_int8: int8 inside, the first and "
    "last layers and the skip add in float).",
)
flags.DEFINE_list(
    "calibration_data",
    None,
    "tflite int8 and mixed_int8: HR image folders or .npz packs for "
    "the representative dataset of training patches (default: the bundled samples).",
)
shared.define_tile_flags(
    "saved_model: requests whose input or output has more pixels get "
    "InvalidArgument (checked from the header, before decoding).",
    "saved_model: tile side in output pixels; the served graph's memory is bounded by it.",
)
flags.DEFINE_integer(
    "fixed_size",
    None,
    "tflite: a static 1 x S x S x 1 input (GPU/NPU delegates need one); default: dynamic H x W.",
)
flags.DEFINE_string(
    "scores", None, "preset: vdsr-eval --json results of these weights, for the metadata and card."
)
flags.DEFINE_boolean(
    "tflite",
    False,
    "preset: also write the LiteRT variants (fp32 and mixed_int8, int8 calibrated "
    "on --calibration_data).",
)
flags.DEFINE_boolean("overwrite", False, "Replace an existing output.")


@entry_point("vdsr-export")
def main(argv):
    if len(argv) > 1:
        raise CliError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.format:
        raise CliError("--format is required (saved_model, tflite or preset)")
    if not FLAGS.output:
        raise CliError("--output is required")
    if FLAGS.format == "preset":
        others = [
            f"--{n}"
            for n in ("quantization", "fixed_size", "model_name", "version", "tile", "max_pixels")
            if FLAGS[n].present
        ]
        if others or (FLAGS.calibration_data and not FLAGS.tflite):
            raise CliError(
                f"{', '.join(others) or '--calibration_data'}: not for --format=preset "
                "(--calibration_data goes with --tflite)"
            )
        return _preset()
    if FLAGS.scores or FLAGS.tflite:
        raise CliError("--scores and --tflite are for --format=preset")
    from vdsr_tf.models.loading import load_pretrained
    from vdsr_tf.models.vdsr import float32_copy

    try:
        model = float32_copy(load_pretrained(FLAGS.weights))
    except LOAD_ERRORS as e:
        raise CliError(str(e))
    if FLAGS.tile < 1 or FLAGS.max_pixels < 1:
        raise CliError("--tile and --max_pixels must be positive")
    if FLAGS.format == "saved_model":
        from vdsr_tf.export.saved_model import export_saved_model

        if os.path.exists(FLAGS.output) and not os.path.isdir(FLAGS.output):
            raise CliError(f"--output {FLAGS.output} is a file; give a folder")
        try:
            path = export_saved_model(
                model,
                FLAGS.output,
                FLAGS.model_name,
                FLAGS.version,
                overwrite=FLAGS.overwrite,
                tile=FLAGS.tile,
                max_pixels=FLAGS.max_pixels,
            )
        except (FileExistsError, ValueError) as e:
            raise CliError(str(e))
        print(
            f"SavedModel written to {path} (version {os.path.basename(path)}, with TF "
            "Serving warm-up requests)"
        )
        return 0
    if FLAGS.fixed_size is not None and FLAGS.fixed_size < 1:
        raise CliError("--fixed_size must be positive")
    if not FLAGS.output.endswith(".tflite"):
        raise CliError(f"--output {FLAGS.output} should end in .tflite")
    if os.path.exists(FLAGS.output) and not FLAGS.overwrite:
        raise CliError(f"{FLAGS.output} exists (use --overwrite)")
    from vdsr_tf.export.tflite import export_tflite

    planes = _calibration()[0] if FLAGS.quantization in CALIBRATED else None
    try:
        info = export_tflite(
            model,
            FLAGS.output,
            quantization=FLAGS.quantization,
            representative_planes=planes,
            fixed_size=FLAGS.fixed_size,
        )
    except ValueError as e:
        raise CliError(str(e))
    shape = "1x{}x{}x1".format(*info["fixed_size"]) if info["fixed_size"] else "dynamic HxW"
    ops = ", ".join(f"{name} x{n}" for name, n in info["ops"].items())
    print(
        f"TFLite ({info['quantization']}, {shape}) written to {info['path']} "
        f"({info['bytes']:,} bytes; ops: {ops})"
    )
    return 0


def _calibration():
    """``--calibration_data``'s Y planes and their description (None: the
    exporter's default, the bundled samples)."""
    if not FLAGS.calibration_data:
        return None, None
    from vdsr_tf.export.preset import calibration_set

    try:
        return calibration_set(FLAGS.calibration_data)
    except FileNotFoundError as e:
        raise CliError(str(e))


def _preset():
    """``--format=preset``: the preset folder of --weights."""
    import json

    from vdsr_tf.export.preset import export_preset, scores_from_eval

    if os.path.exists(FLAGS.output) and not FLAGS.overwrite:
        raise CliError(f"{FLAGS.output} exists (use --overwrite)")
    scores = None
    if FLAGS.scores:
        try:
            with open(FLAGS.scores) as f:
                scores = json.load(f)
        except (OSError, ValueError) as e:
            raise CliError(f"--scores {FLAGS.scores}: {str(e).splitlines()[0]}")
        try:
            if not isinstance(scores, dict):
                raise ValueError("not vdsr-eval --json results")
            scores_from_eval(scores)
        except ValueError as e:
            raise CliError(f"--scores {FLAGS.scores}: {e}")
    planes, calibration = _calibration() if FLAGS.tflite else (None, None)
    try:
        meta = export_preset(
            FLAGS.weights,
            FLAGS.output,
            scores=scores,
            tflite=FLAGS.tflite,
            representative_planes=planes,
            calibration=calibration,
            overwrite=FLAGS.overwrite,
        )
    except LOAD_ERRORS as e:
        raise CliError(str(e))
    files = sorted(os.listdir(FLAGS.output))
    print(
        f"Preset written to {FLAGS.output} ({', '.join(files)}; weights sha256 "
        f"{meta['sha256'][:16]}...). Load it with --weights={FLAGS.output} or "
        f'vdsr_tf.Upscaler.from_preset("{FLAGS.output}")'
    )
    return 0


def run():
    cli.run(main, "vdsr-export", __name__, __doc__)


if __name__ == "__main__":
    run()
