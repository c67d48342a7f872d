"""vdsr-upscale: super-resolve image files of any size.

    vdsr-upscale photo.jpg --scale=2 --output=photo_x2.jpg
    vdsr-upscale photos/ more.png --scale=3.5 --output=out/ [--format=png]
    vdsr-upscale photos/ --recursive --scale=2 --output=out/
    vdsr-upscale img.png --size=1920x1080 --output=big.png
    vdsr-upscale photo.jpg --scale=2 --precision=fp32 --output=exact.jpg
    vdsr-upscale -v photo.jpg --scale=2 --output=photo_x2.jpg   # says which path runs
    vdsr-upscale --demo

The network runs on the fastest path this machine has within 0.05 dB of exact
fp32 on Set5 (--precision=auto: LiteRT int8, Keras bf16, or fp32; timed once
per machine and cached); --precision=fp32 is exact.

Photos are read as a viewer shows them (EXIF orientation, colour profile) and
written with their EXIF and a matching profile; animated GIF, WebP and PNG
keep every frame. A bad file gets a one-line error and the batch goes on; the
exit code is 1 if any file failed, 2 for a usage error. Outputs are written
atomically (never half a file) and never overwritten without --overwrite.
"""

import os
import sys

from absl import flags

from vdsr_tf import cli
from vdsr_tf.cli import CliError, batch, entry_point
from vdsr_tf.cli import flags as shared
from vdsr_tf.io.images import FORMATS
from vdsr_tf.ops.tiling import check_scale_size

FLAGS = flags.FLAGS
PROG = "vdsr-upscale"
shared.define_resize_flags()
flags.DEFINE_string("output", None, "Output file (one input) or folder.")
shared.define_output_flags()
flags.DEFINE_boolean(
    "recursive",
    False,
    "Also upscale the images in subfolders of input "
    "folders, mirroring the subfolders into --output.",
)
shared.define_weights_flag(", or 'bicubic'")
shared.define_backend_flag(
    "Run the network with Keras or LiteRT (XNNPACK); default: the one "
    "--precision picks (for other --weights keras; litert converts "
    "them, about 10 s)"
)
shared.define_precision_flag(
    "auto",
    "auto: the fastest path on this machine within 0.05 dB "
    "of fp32 on Set5 (the bundled weights; other --weights run fp32), "
    "measured once and cached in $VDSR_TF_CACHE or ~/.cache/vdsr_tf. "
    "fp32: exact. bf16: Keras with bf16 convolutions (a GPU, or a CPU "
    "with AVX512-BF16 or AMX). int8: LiteRT, int8 hidden layers. -v "
    "prints the choice and why.",
)
flags.DEFINE_integer(
    "threads",
    None,
    "CPU threads of the network (default: every core this process may run on).",
    lower_bound=1,
)
flags.DEFINE_boolean(
    "verbose",
    False,
    "Say which path runs the network, and why (also -v); show TensorFlow's own log lines.",
)
flags.DEFINE_string(
    "model",
    None,
    "A .tflite file (vdsr-export --format=tflite) to run "
    "instead of --weights (implies --backend=litert).",
)
flags.DEFINE_string(
    "fallback_model",
    None,
    "With a static-size --model (vdsr-export "
    "--fixed_size): a dynamic .tflite for images smaller than its input.",
)
flags.DEFINE_boolean("overwrite", False, "Replace existing output files.")
flags.DEFINE_boolean("demo", False, "Upscale a bundled sample image x3 (no other arguments).")
flags.DEFINE_boolean(
    "version",
    False,
    "Print the package version, the bundled weights' "
    "metadata (version, training, scores, sha256) and the path the other "
    "flags would run the network on, then exit.",
)
flags.DEFINE_boolean("progress", None, "Show a progress bar (default: when stderr is a terminal).")


def version_text():
    """The package version and a summary of the bundled weights' metadata."""
    import vdsr_tf
    from vdsr_tf.io.bundled import (
        bundled_tflite_path,
        bundled_weights_info,
        bundled_weights_path,
    )

    lines = [f"vdsr-tf {vdsr_tf.__version__}"]
    info = bundled_weights_info()
    if info is None:
        lines.append("bundled weights: none")
        return "\n".join(lines)
    arch = info["architecture"]
    where = bundled_weights_path()
    where = where if os.path.exists(where) else "Keras weights not in this install"
    lines += [
        f"bundled weights: {info['version']} ({info['date']}), {where}",
        f"  {info['label']}",
        f"  network: {arch['depth']} layers x {arch['filters']} filters; {info['recipe']}",
        f"  patches seen: {info['patches_seen']:,}",
        "  PSNR / SSIM on Y (vdsr-eval; the paper's PSNR in brackets):",
    ]
    for name, cells in info["scores"].items():
        lines.append(
            f"    {name:<6}"
            + "  ".join(
                f"{x} {v['psnr']:.2f} / {v['ssim']:.4f} [{info['paper'][name][x]:.2f}]"
                for x, v in cells.items()
            )
        )
    lines.append(f"  sha256: {info['sha256']}")
    for precision, lite in info.get("tflite", {}).items():
        if os.path.exists(bundled_tflite_path(precision)):
            lines.append(
                f"bundled LiteRT model ({precision}): {bundled_tflite_path(precision)} "
                f"({lite['quantization']}, sha256 {lite['sha256']})"
            )
    changes = info.get("set5_psnr_change", {})
    if changes:
        lines.append(
            "  Set5 PSNR change against fp32 (dB, x2 / x3 / x4): "
            + "; ".join(
                f"{name} " + " / ".join(f"{v:+.3f}" for v in change.values())
                for name, change in changes.items()
            )
        )
    return "\n".join(lines)


@entry_point(PROG)
def main(argv):
    inputs = argv[1:]
    backend = shared.backend(FLAGS.backend, PROG)
    if backend == "keras" and (FLAGS.model or FLAGS.fallback_model):
        raise CliError(
            "--model and --fallback_model are .tflite files for --backend=litert "
            "(Keras weights go in --weights)"
        )
    if FLAGS.model and FLAGS.weights:
        raise CliError("give --weights (Keras) or --model (.tflite), not both")
    if FLAGS.model and FLAGS.precision != "auto":
        raise CliError(
            "--precision picks a conversion of --weights; a --model file has its "
            "own (vdsr-export --quantization)"
        )
    if backend is not None and not FLAGS.model:
        from vdsr_tf.inference.engines import check_path

        try:  # the library's check, before any output folder is made
            check_path(backend, FLAGS.precision)
        except ValueError as e:
            raise CliError(str(e))
    if FLAGS.version:
        print(version_text())
        try:
            path = make_upscaler(backend, FLAGS.weights).describe()
        except CliError as e:
            path = f"none ({e})"
        print(f"network path: {path}")
        return 0
    if FLAGS.fallback_model and not FLAGS.model:
        raise CliError("--fallback_model is for a static-size --model")
    scale, output, overwrite, weights = FLAGS.scale, FLAGS.output, FLAGS.overwrite, FLAGS.weights
    if FLAGS.demo:
        if inputs:
            raise CliError("--demo takes no inputs")
        inputs, scale, output, overwrite, weights = _demo(scale, output, weights)
    if not inputs:
        raise CliError("give at least one input file or folder (or --demo)")
    try:
        size = batch.parse_size(FLAGS.size) if FLAGS.size else None
        check_scale_size(scale, size, names=("--scale", "--size"))
    except ValueError as e:
        raise CliError(str(e))
    if not output:
        raise CliError("--output is required")
    jobs, skipped, folder_given = batch.collect_inputs(inputs, FLAGS.recursive, output)
    to_folder = folder_given or len(inputs) > 1
    folder = _output_folder(output, to_folder, folder_given)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"output folder {folder} is not writable")
    destinations = batch.output_paths(jobs, output, to_folder, FLAGS.format)
    enabled = FLAGS.progress if FLAGS.progress is not None else sys.stderr.isatty()
    progress = batch.Progress(len(jobs), enabled)
    upscaler = make_upscaler(backend, weights, progress.tiles)
    if FLAGS.verbose:
        print(f"{PROG}: network path: {upscaler.describe()}", file=sys.stderr)
    return batch.run_batch(
        upscaler,
        [src for src, _ in jobs],
        destinations,
        scale,
        size,
        FLAGS.format,
        overwrite,
        skipped,
        progress,
    )


def _demo(scale, output, weights):
    """``--demo``'s inputs, scale, output, overwrite and weights (flags given win)."""
    from vdsr_tf.io.bundled import bundled_weights_info
    from vdsr_tf.io.images import sample_images_dir

    inputs = [os.path.join(sample_images_dir(), "LR_bicubic", "X3", "butterfly.png")]
    scale = scale if scale or FLAGS.size else 3.0
    output = output or "vdsr_demo_butterfly_x3.png"
    print(
        f"{PROG} --demo: writing {os.path.abspath(output)} (--output=PATH to write elsewhere)",
        file=sys.stderr,
    )
    info = bundled_weights_info()
    if weights is None and FLAGS.model is None and info is None:
        print(
            f"{PROG}: this build has no bundled weights yet; the demo uses bicubic. Pass "
            "--weights=FILE for a trained model.",
            file=sys.stderr,
        )
        weights = "bicubic"
    elif weights is None and FLAGS.model is None:
        print(f"{PROG}: bundled weights {info['version']}: {info['label']}", file=sys.stderr)
    return inputs, scale, output, True, weights


def _output_folder(output, to_folder, folder_given):
    """The folder outputs go to (made when several inputs need it); CliError
    for an output path that cannot be one."""
    if to_folder:
        if os.path.exists(output) and not os.path.isdir(output):
            raise CliError(f"--output {output} is a file, but several inputs need a folder")
        if os.path.splitext(output)[1].lower() in FORMATS and not os.path.isdir(output):
            raise CliError(
                f"--output {output} looks like a file name, but "
                f"{'a folder' if folder_given else 'several inputs'} need an output "
                "folder (e.g. --output=out/)"
            )
        try:
            os.makedirs(output, exist_ok=True)
        except OSError as e:
            raise CliError(f"cannot create output folder {output}: {e.strerror or e}")
        return output
    if os.path.isdir(output):
        return output
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise CliError(f"output folder {folder} does not exist")
    if not FLAGS.format and os.path.splitext(output)[1].lower() not in FORMATS:
        raise CliError(
            f"--output {output}: unsupported extension; use one of {', '.join(sorted(FORMATS))}"
        )
    return folder


def make_upscaler(backend, weights, progress=None):
    """The Upscaler the flags describe; CliError if it cannot be made."""
    from vdsr_tf.inference.upscaler import Upscaler

    options = dict(
        tile=FLAGS.tile, ensemble=FLAGS.ensemble, max_pixels=FLAGS.max_pixels, progress=progress
    )
    try:
        if FLAGS.model:
            from vdsr_tf.inference.litert import LiteRTPredictor

            predictor = LiteRTPredictor(
                FLAGS.model, num_threads=FLAGS.threads, fallback=FLAGS.fallback_model
            )
            if FLAGS.fallback_model and predictor.fixed is None:
                raise CliError(
                    f"--fallback_model is for a static-size --model; {FLAGS.model} takes any size"
                )
            return Upscaler(predictor=predictor, **options)
        return Upscaler(
            weights, backend=backend, precision=FLAGS.precision, threads=FLAGS.threads, **options
        )
    except (FileNotFoundError, ValueError, ImportError) as e:
        raise CliError(str(e))


def run_cli():
    cli.run(main, "vdsr-upscale", __name__, __doc__, aliases={"-v": "--verbose"})


if __name__ == "__main__":
    run_cli()
