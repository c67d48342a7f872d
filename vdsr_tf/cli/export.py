r"""vdsr-export: write the model for TF Serving (SavedModel) or devices (TFLite).

    vdsr-export --format=saved_model --output=models [--model_name=vdsr] [--version=N]
    vdsr-export --format=tflite --quantization=fp32|fp16|dynamic|int8|mixed_int8 --output=vdsr.tflite \
        [--calibration_data=../shared/datasets/train/T91] [--fixed_size=256]

--fixed_size writes a static 1 x S x S x 1 model for GPU and NPU delegates (the
LiteRT runner tiles any image with it; pass a dynamic model as vdsr-upscale's
--fallback_model for images smaller than S).

--weights picks the weights (default: the bundled ones).
"""

import os

from absl import flags

from vdsr_tf import cli
from vdsr_tf.cli import CliError, entry_point
from vdsr_tf.cli import flags as shared
from vdsr_tf.export.tflite import CALIBRATED, QUANTIZATIONS

FLAGS = flags.FLAGS
flags.DEFINE_enum("format", None, ["saved_model", "tflite"], "What to write.")
flags.DEFINE_string("output", None, "saved_model: the base folder; tflite: the .tflite file.")
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
flags.DEFINE_boolean("overwrite", False, "Replace an existing output.")


@entry_point("vdsr-export")
def main(argv):
    if len(argv) > 1:
        raise CliError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.format:
        raise CliError("--format is required (saved_model or tflite)")
    if not FLAGS.output:
        raise CliError("--output is required")
    from vdsr_tf.models.loading import load_pretrained

    try:
        model = load_pretrained(FLAGS.weights)
    except (FileNotFoundError, ValueError) as e:
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
    from vdsr_tf.data.degradation import load_y_planes
    from vdsr_tf.export.tflite import export_tflite

    planes = None
    if FLAGS.quantization in CALIBRATED and FLAGS.calibration_data:
        try:
            planes = load_y_planes(FLAGS.calibration_data)
        except FileNotFoundError as e:
            raise CliError(str(e))
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


def run():
    cli.run(main, "vdsr-export", __name__, __doc__)


if __name__ == "__main__":
    run()
