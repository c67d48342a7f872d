r"""vdsr-upscale-beam: upscale every image a glob matches, on Apache Beam.

    vdsr-upscale-beam --input_pattern='photos/*.jpg' --output_dir=out --scale=2
    vdsr-upscale-beam --input_pattern='gs://bucket/in/**' --output_dir=gs://bucket/out \
        --scale=2 --runner=DataflowRunner --project=P --region=R \
        --temp_location=gs://bucket/tmp --setup_file=./setup.py

Needs ``pip install "vdsr-tf[beam]"``. Each output is what vdsr-upscale writes
for the same file, written atomically; inputs whose output exists are skipped,
so a rerun after a crash (a worker killed, a machine lost) does only the rest,
and first removes the temporary files the crash left. Run one job per output
folder at a time. Files that fail are listed in
OUTPUT_DIR/vdsr_failed.tsv (path, tab, reason) and the pipeline goes on. Any
flag not listed below is a Beam pipeline option (--runner, --direct_num_workers,
...); the default runner is the DirectRunner. Exit status: 0, 1 if any file
failed, 2 for a usage error.
"""

import contextlib
import logging as std_logging
import sys
import threading

from absl import flags

from vdsr_tf import cli
from vdsr_tf.cli import CliError, entry_point
from vdsr_tf.cli import flags as shared

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "input_pattern",
    None,
    "A glob of input files (local, gs://, s3://, "
    "hdfs:// where Beam has the filesystem); ** matches subfolders.",
)
flags.DEFINE_string(
    "output_dir", None, "Output folder; outputs keep their paths relative to the pattern's folder."
)
shared.define_resize_flags()
shared.define_output_flags("Refuse outputs with more pixels than this.")
shared.define_weights_flag(" (local or on a Beam filesystem), or 'bicubic'")
flags.DEFINE_string("model", None, "A .tflite file to run with LiteRT instead of Keras.")
shared.define_precision_flag(
    "auto",
    "The network's precision on each worker (auto: the "
    "fastest path there within 0.05 dB of fp32, timed once per "
    "machine; fp32: exact; see vdsr-upscale).",
)


@entry_point("vdsr-upscale-beam")
def main(argv):
    if not FLAGS["verbosity"].present:
        from absl import logging

        # Beam logs through the root logger: its INFO lines and import-time warnings
        # (optional GCP clients) would bury the summary. --verbosity=0 shows them.
        logging.set_verbosity(logging.ERROR)
    try:
        import apache_beam as beam
        from apache_beam.io.filesystems import FileSystems
        from apache_beam.options.pipeline_options import PipelineOptions
    except ImportError:
        raise CliError('Apache Beam is not installed: pip install "vdsr-tf[beam]"') from None
    from vdsr_tf.cli.batch import parse_size
    from vdsr_tf.inference.beam import (
        DEAD_LETTER,
        UpscaleModelHandler,
        build_pipeline,
        local_copy,
        metric_totals,
        remove_stale_temporaries,
        unknown_options,
    )
    from vdsr_tf.ops.tiling import check_scale_size

    beam_args = argv[1:]
    positional = [a for a in beam_args if not a.startswith("-")]
    if positional:
        raise CliError(f"unexpected arguments {positional}: inputs go in --input_pattern")
    unknown = unknown_options(beam_args)
    if unknown:
        raise CliError(
            f"unknown flag --{unknown[0]}: not a flag of vdsr-upscale-beam nor a "
            "Beam pipeline option (see vdsr-upscale-beam --help)"
        )
    if not FLAGS.input_pattern or not FLAGS.output_dir:
        raise CliError("--input_pattern and --output_dir are required")
    if FLAGS.weights and FLAGS.model:
        raise CliError("--weights is for Keras, --model for LiteRT: give one")
    try:
        size = parse_size(FLAGS.size) if FLAGS.size else None
        check_scale_size(FLAGS.scale, size, names=("--scale", "--size"))
        handler = UpscaleModelHandler(
            FLAGS.scale,
            size,
            weights=FLAGS.weights,
            tflite_model=FLAGS.model,
            tile=FLAGS.tile,
            ensemble=FLAGS.ensemble,
            max_pixels=FLAGS.max_pixels,
            precision=FLAGS.precision,
        )
    except ValueError as e:
        raise CliError(str(e))
    try:
        matched = FileSystems.match([FLAGS.input_pattern], limits=[1])[0].metadata_list
    except Exception as e:  # noqa: BLE001 -- each filesystem raises its own errors
        raise CliError(f"cannot list {FLAGS.input_pattern}: {str(e).splitlines()[0]}")
    if not matched:
        raise CliError(f"no file matches {FLAGS.input_pattern}")
    if FLAGS.model and not FileSystems.exists(FLAGS.model):
        raise CliError(f"no such file: {FLAGS.model}")
    if FLAGS.weights and FLAGS.weights != "bicubic":
        from vdsr_tf.io.presets import LOAD_ERRORS, resolve

        try:  # here, before any worker: a bucket's copy, a hub download, the checks
            resolve(local_copy(FLAGS.weights, ["config.json", "metadata.json"]))
        except LOAD_ERRORS as e:
            raise CliError(str(e))
        except Exception as e:  # noqa: BLE001 -- each filesystem raises its own errors
            raise CliError(f"cannot read {FLAGS.weights}: {str(e).splitlines()[0]}")
    if not FileSystems.exists(FLAGS.output_dir):
        try:
            FileSystems.mkdirs(FLAGS.output_dir)
        except Exception as e:  # noqa: BLE001
            raise CliError(f"cannot create {FLAGS.output_dir}: {str(e).splitlines()[0]}")

    left = remove_stale_temporaries(FLAGS.output_dir)
    if left:
        print(
            f"vdsr-upscale-beam: removed {len(left)} temporary files of an earlier, "
            "interrupted run",
            file=sys.stderr,
        )
    if not FLAGS["verbosity"].present and not any(
        a.lstrip("-").startswith("default_sdk_harness_log_level") for a in beam_args
    ):  # worker processes (multi_processing, Dataflow) log INFO lines by default
        beam_args = beam_args + ["--default_sdk_harness_log_level=ERROR"]
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
    build_pipeline(pipeline, FLAGS.input_pattern, FLAGS.output_dir, handler, FLAGS.format)
    try:
        with _runner_errors_quiet(not FLAGS["verbosity"].present) as lost:
            result = pipeline.run()
            result.wait_until_finish()
    except Exception as e:  # noqa: BLE001 -- a runner's failure: a worker lost, a job failed
        why = (str(e).strip().splitlines() or ["no message"])[0]
        print(
            f"vdsr-upscale-beam: error: the pipeline failed ({type(e).__name__}: {why}"
            + (f"; {lost[0]}" if lost else "")
            + "). The outputs already written are complete; run the same command "
            "again to do the rest (-v shows the runner's log).",
            file=sys.stderr,
        )
        return 1
    for line in lost:  # a thread of the runner failed, yet the pipeline finished
        print(f"vdsr-upscale-beam: note: the runner reported: {line}", file=sys.stderr)
    totals = metric_totals(result)
    seconds = totals.get("upscale_milliseconds", 0) / 1000
    print(
        f"{totals.get('written', 0)} written, {totals.get('failures', 0)} failed "
        f"(listed in {FileSystems.join(FLAGS.output_dir, DEAD_LETTER)}), "
        f"{totals.get('skipped_existing', 0)} already there, "
        f"{totals.get('skipped_not_images', 0)} not images; "
        f"{totals.get('output_pixels', 0):,} output pixels in {seconds:.1f} s of upscaling",
        file=sys.stderr,
    )
    return 1 if totals.get("failures", 0) else 0


@contextlib.contextmanager
def _runner_errors_quiet(active):
    """While the pipeline runs (unless ``active`` is False: -v or --verbosity),
    the runner's own error logs and its threads' tracebacks (a worker that
    died: the DirectRunner logs its gRPC errors, and its launcher thread
    raises) are kept from the terminal. Yields the list the threads' errors
    are collected in, one line each, for the command's own lines."""
    lines = []
    if not active:
        yield lines
        return
    root, hook = std_logging.getLogger(), threading.excepthook
    level = root.level
    root.setLevel(std_logging.CRITICAL)
    threading.excepthook = lambda args: lines.append(
        (str(args.exc_value).strip().splitlines() or [args.exc_type.__name__])[0]
    )
    try:
        yield lines
    finally:
        root.setLevel(level)
        threading.excepthook = hook


def run():
    cli.run(main, "vdsr-upscale-beam", __name__, __doc__, known_only=True)


if __name__ == "__main__":
    run()
