"""vdsr-upscale: super-resolve image and video files of any size.

    vdsr-upscale photo.jpg --scale=2 --output=photo_x2.jpg
    vdsr-upscale clip.mp4 --scale=2          # writes clip_x2.mp4 beside it
    vdsr-upscale clip.mkv --scale=2 --video_codec=hevc --crf=22 --output=big.mkv
    vdsr-upscale photos/ more.png --scale=3.5 --output=out/ [--format=png]
    vdsr-upscale photos/ --recursive --scale=2 --output=out/ --report=run.json
    vdsr-upscale photos/ --scale=2 --output=photos/ --suffix=_x2   # beside the inputs
    vdsr-upscale photos/ --scale=2 --output=out/ --format=webp --quality=90
    vdsr-upscale img.png --size=1920x1080 --output=big.png
    vdsr-upscale photo.jpg --scale=2 --precision=fp32 --output=exact.jpg
    vdsr-upscale -v photo.jpg --scale=2 --output=photo_x2.jpg   # says which path runs
    vdsr-upscale --demo

The network runs on the fastest path this machine has within 0.05 dB of exact
fp32 on Set5 (--precision=auto: LiteRT int8, Keras bf16, or fp32; timed once
per machine and cached); --precision=fp32 is exact.

Photos are read as a viewer shows them (EXIF orientation, colour profile) and
written with their EXIF (--strip drops it) and a matching profile; animated
GIF, WebP and PNG keep every frame. Each output keeps its input's format
unless --format; --quality and --compression set the encoder. Without
--output, one input file is written beside itself as NAME_x2.EXT (or NAME
and --suffix).

Videos (.mp4, .m4v, .mov, .mkv, .webm, .avi; needs pip install
'vdsr-tf[video]') go frame by frame through the same path as images and keep
their container, timestamps, rotation, colour tags, and audio and subtitle
streams (copied, not re-encoded); --video_codec and --crf set the encoder,
sizes are rounded down to even numbers. A corrupt frame or a truncated file
fails the video unless --on_corrupt=skip. A stopped video leaves no file;
the same command starts it over.

A bad file gets a one-line error and the batch goes on. Outputs are written
atomically (never half a file). An output that exists is kept, not redone
(--existing=skip), so after a stop (Ctrl-C, SIGTERM, a full disk) the same
command finishes exactly the rest; --overwrite redoes them, --existing=fail
counts them as failures. No output may replace an input.

Output: a line per written file on stdout ("IN (WxH) -> OUT (WxH)"); errors,
notes, progress and the summary on stderr; --report=FILE.json records every
file (written, kept, failed, not processed), also when the run stops.

Exit status:
    0    every file written or kept
    1    a file failed, or the run stopped because nothing more could be written
    2    a usage error (nothing was written)
    130  stopped by Ctrl-C (SIGINT)
    143  stopped by SIGTERM
"""

import os
import sys

from absl import flags

from vdsr_tf import cli
from vdsr_tf.cli import CliError, batch, entry_point
from vdsr_tf.cli import flags as shared
from vdsr_tf.inference.batch import EXISTING, Progress, default_output, plan
from vdsr_tf.io.presets import LOAD_ERRORS
from vdsr_tf.io.video import is_video
from vdsr_tf.ops.tiling import check_scale_size

FLAGS = flags.FLAGS
PROG = "vdsr-upscale"
shared.define_resize_flags()
flags.DEFINE_string(
    "output",
    None,
    "Output file (one input) or folder; default for one input file: NAME_x2.EXT beside it.",
)
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
flags.DEFINE_enum(
    "existing",
    "skip",
    list(EXISTING),
    "An output file that already exists: skip (keep it, so a rerun "
    "finishes a stopped batch), overwrite (redo it), fail (an error for that file).",
)
flags.DEFINE_boolean("overwrite", False, "Redo outputs that exist: --existing=overwrite.")
flags.DEFINE_string(
    "suffix",
    "",
    "Added to each output's name in an output folder (_x2: photo.jpg -> "
    "photo_x2.jpg); with it, --output may be the input folder.",
)
flags.DEFINE_integer(
    "quality",
    None,
    "Encoder quality 1-100 for jpg (default 95) and webp (lossy; default lossless).",
    lower_bound=1,
    upper_bound=100,
)
flags.DEFINE_integer(
    "compression",
    None,
    "PNG's zlib compression level 0-9 (default 6; the pixels are the same).",
    lower_bound=0,
    upper_bound=9,
)
flags.DEFINE_boolean(
    "strip",
    False,
    "Write no EXIF (camera, date, GPS) or XMP; the ICC colour profile stays.",
)
flags.DEFINE_string(
    "report",
    None,
    "Write a JSON report here: every file's input, output, status, sizes, "
    "seconds and error; written atomically, also when the run fails or stops.",
)
flags.DEFINE_integer(
    "gpu",
    None,
    "The GPU to run on (its number, as CUDA_VISIBLE_DEVICES counts; -1: the "
    "CPU only). Default: the first visible GPU, else the CPU.",
    lower_bound=-1,
)
flags.DEFINE_boolean(
    "quiet", False, "Print only errors (also -q): no per-file lines, notes or summary."
)
flags.DEFINE_boolean("demo", False, "Upscale a bundled sample image x3 (no other arguments).")
flags.DEFINE_boolean(
    "version",
    False,
    "Print the package version, the bundled weights' "
    "metadata (version, training, scores, sha256) and the path the other "
    "flags would run the network on, then exit.",
)
flags.DEFINE_boolean(
    "progress",
    None,
    "Show a progress bar: tiles of an image, frames, fps and ETA of a video "
    "(default: when stderr is a terminal).",
)
flags.DEFINE_string(
    "video_codec",
    None,
    "Videos: encode with h264, hevc, vp9, av1, ffv1 (lossless) or prores "
    "(default: the input's codec where it is one of these, else h264; vp9 for .webm).",
)
flags.DEFINE_integer(
    "crf",
    None,
    "Videos: the encoder's constant quality, lower is better (default: "
    "h264 18, hevc 20, vp9 24, av1 28; h264 and hevc take 0-51, vp9 and av1 0-63).",
    lower_bound=0,
    upper_bound=63,
)
flags.DEFINE_enum(
    "on_corrupt",
    "fail",
    ["fail", "skip"],
    "Videos: a corrupt frame or a truncated file fails the video (fail), or "
    "such frames are dropped and counted in a note (skip).",
)
flags.DEFINE_integer(
    "video_batch",
    None,
    "Videos: frames per network call (default: 8 with Keras on a GPU, else 1).",
    lower_bound=1,
)


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
    scale, output, existing, weights = FLAGS.scale, FLAGS.output, _existing(), FLAGS.weights
    if FLAGS.demo:
        if inputs:
            raise CliError("--demo takes no inputs")
        inputs, scale, output, weights = _demo(scale, output, weights)
        existing = "overwrite"
    if not inputs:
        raise CliError("give at least one input file or folder (or --demo)")
    try:
        size = batch.parse_size(FLAGS.size) if FLAGS.size else None
        check_scale_size(scale, size, names=("--scale", "--size"))
    except ValueError as e:
        raise CliError(str(e))
    if "-" in inputs or output == "-":
        return _stdio(inputs, output, scale, size, existing, backend, weights)
    suffix = FLAGS.suffix
    if output is None and len(inputs) == 1 and os.path.isfile(inputs[0]):
        output, suffix = default_output(inputs[0], scale, size, FLAGS.format, suffix), ""
    video = dict(
        codec=FLAGS.video_codec,
        crf=FLAGS.crf,
        on_corrupt=FLAGS.on_corrupt,
        batch=FLAGS.video_batch,
    )
    try:
        work = plan(
            inputs,
            output,
            FLAGS.recursive,
            FLAGS.format,
            suffix,
            FLAGS.quality,
            FLAGS.compression,
            FLAGS.report,
            existing,
            video,
        )
    except ValueError as e:  # BatchError included
        raise CliError(str(e))
    _gpu()
    enabled = FLAGS.progress if FLAGS.progress is not None else sys.stderr.isatty()
    progress = Progress(len(work.files), enabled and not FLAGS.quiet)
    upscaler = make_upscaler(backend, weights, progress.tiles)
    if FLAGS.verbose:
        print(f"{PROG}: network path: {upscaler.describe()}", file=sys.stderr)
    with batch.sigterm_stops():
        return batch.run_batch(
            upscaler,
            work.files,
            work.destinations,
            scale,
            size,
            FLAGS.format,
            existing,
            work.skipped,
            progress,
            quiet=FLAGS.quiet,
            report=FLAGS.report,
            quality=FLAGS.quality,
            compression=FLAGS.compression,
            strip=FLAGS.strip,
            video=video,
        )


def _stdio(inputs, output, scale, size, existing, backend, weights):
    """One image through standard input and/or output (``-``), as filters do:
    ``vdsr-upscale - --scale=2 --output=- --format=png < in.jpg > out.png``.
    The output keeps the input's format unless ``--format`` (or the output
    file's extension). The lines are a batch's (``batch.printer``,
    ``batch.summary``), all on stderr when the image goes to stdout."""
    from vdsr_tf.inference.batch import FAILED, FLAG_NAMES, KEPT, WRITTEN, BatchResult
    from vdsr_tf.io.atomic import atomic_write_bytes
    from vdsr_tf.io.images import FORMATS, check_encoding, format_for, sniff_format

    if len(inputs) != 1:
        raise CliError("- (standard input or output) is one image: give one input")
    for flag in ("recursive", "report", "suffix"):
        if FLAGS[flag].present:
            raise CliError(f"--{flag} is for files and folders, not - (standard input or output)")
    src = inputs[0]
    if output is None:
        raise CliError("--output is required (- for standard output)")
    if is_video(src) or is_video(output):
        raise CliError("videos are read and written as files, not - (standard input or output)")
    if output == "-" and sys.stdout.isatty():
        raise CliError("--output=- writes an image to standard output, which is a terminal")
    if output != "-" and os.path.isdir(output):
        raise CliError(f"--output {output} is a folder; name the file for - (standard input)")
    if output != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(output))):
        raise CliError(f"output folder {os.path.dirname(os.path.abspath(output))} does not exist")
    result = BatchResult(([src], [output]), (), {})
    record = result.files[0]
    on_file = batch.printer(FLAGS.quiet, sys.stderr if output == "-" else None)
    if output != "-" and os.path.exists(output) and existing != "overwrite":
        if existing == "skip":
            record["status"] = KEPT
            print(batch.summary(result), file=sys.stderr)
            return 0
        record.update(status=FAILED, error=f"output {output} exists (use --overwrite)")
        on_file(record)
        return 1
    if src == "-":
        data = sys.stdin.buffer.read()
    elif os.path.isfile(src):
        with open(src, "rb") as f:
            data = f.read()
    else:
        raise CliError(f"input not found: {src}")
    try:  # --format, else the output file's extension, else (stdout) the input's format
        fmt = FORMATS["." + FLAGS.format] if FLAGS.format else None
        fmt = fmt or (sniff_format(data) if output == "-" else format_for(output))
        check_encoding([fmt], FLAGS.quality, FLAGS.compression, names=FLAG_NAMES)
    except ValueError as e:
        raise CliError(str(e))
    _gpu()
    upscaler = make_upscaler(backend, weights)
    try:
        encoded, (in_size, out_size, frames, notes) = upscaler.upscale_bytes(
            data,
            scale,
            size,
            fmt,
            quality=FLAGS.quality,
            compression=FLAGS.compression,
            strip=FLAGS.strip,
        )
        if output == "-":
            sys.stdout.buffer.write(encoded)
            sys.stdout.buffer.flush()
        else:
            atomic_write_bytes(output, encoded)
        record.update(
            status=WRITTEN, input_size=in_size, output_size=out_size, frames=frames, notes=notes
        )
    except ValueError as e:  # ImageError included: the one file's error
        record.update(status=FAILED, error=str(e))
    except OSError as e:
        record.update(status=FAILED, error=f"cannot write {output}: {e.strerror or e}")
    on_file(record)
    return result.status


def _gpu():
    """``--gpu``, applied before the upscaler (and its framework) is made."""
    if FLAGS.gpu is not None:
        try:
            batch.choose_gpu(FLAGS.gpu)
        except ValueError as e:
            raise CliError(str(e))


def _existing():
    """``--existing``, with ``--overwrite`` as its shorthand."""
    if FLAGS.overwrite and FLAGS["existing"].present and FLAGS.existing != "overwrite":
        raise CliError(f"--overwrite contradicts --existing={FLAGS.existing}")
    return "overwrite" if FLAGS.overwrite else FLAGS.existing


def _demo(scale, output, weights):
    """``--demo``'s inputs, scale, output and weights (flags given win)."""
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
    return inputs, scale, output, weights


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
    except LOAD_ERRORS as e:
        raise CliError(str(e))


def run_cli():
    cli.run(main, "vdsr-upscale", __name__, __doc__, aliases={"-v": "--verbose", "-q": "--quiet"})


if __name__ == "__main__":
    run_cli()
