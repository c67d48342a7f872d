r"""vdsr-eval: the standard benchmark table (PSNR / SSIM on MATLAB Y).

    vdsr-eval --benchmark_dir=../shared/datasets --sets=Set5,Set14,B100 --scales=2,3,4 \
        [--weights=PATH|bicubic] --json=results.json --compare_dir=compare/
"""

import json
import os
import sys

from absl import flags

from vdsr_tf import cli
from vdsr_tf.cli import CliError, entry_point
from vdsr_tf.cli import flags as shared
from vdsr_tf.io.presets import LOAD_ERRORS

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "benchmark_dir", None, "Folder holding the sets (each with HR/ and LR_bicubic/)."
)
shared.define_deprecated_alias("data_dir", "benchmark_dir")
flags.DEFINE_list("sets", ["Set5", "Set14", "B100"], "Sets to score.")
flags.DEFINE_list("scales", ["2", "3", "4"], "Scales to score.")
shared.define_weights_flag(", or 'bicubic' for the baseline alone")
flags.DEFINE_string("json", None, "Write the numbers to this JSON file.")
flags.DEFINE_string("compare_dir", None, "Write one bicubic | VDSR | HR PNG per set here.")
flags.DEFINE_boolean("baseline", True, "Also score bicubic and show it beside the model.")
flags.DEFINE_string("tfds_data_dir", None, "TFDS data directory for tfds:NAME sets.")
flags.DEFINE_string(
    "manual_dir",
    None,
    "Local files (the ../shared/datasets layout) to prepare tfds:NAME sets from on first use.",
)
flags.DEFINE_boolean("ensemble", False, "Average the 8 flips/rotations (self-ensemble).")
flags.DEFINE_boolean("demo", False, "Score the bundled sample images (no --benchmark_dir needed).")
shared.define_precision_flag(
    "fp32",
    "The network's precision (fp32: exact, the reference scores; auto: what "
    "vdsr-upscale runs by default here; bf16, int8: see vdsr-upscale --help).",
)
PROG = "vdsr-eval"


def _rounded(result):
    """The JSON entry of one set and scale: PSNR to 4 decimals, SSIM to 5."""
    return {"psnr": round(result["psnr"], 4), "ssim": round(result["ssim"], 5)}


def run_eval(
    data_dir,
    sets,
    scales,
    weights=None,
    baseline=True,
    compare_dir=None,
    ensemble=False,
    out=sys.stdout,
    tfds_data_dir=None,
    manual_dir=None,
    precision="fp32",
):
    """Scores ``weights`` (or bicubic) and returns the JSON-shaped results.

    Returns:
        ``{set: {"x{s}": {"psnr", "ssim"}}}`` for the model (bicubic numbers
        if ``weights == "bicubic"``), plus ``"bicubic"`` with the same shape
        when ``baseline`` and a model is scored. ``precision`` is the
        ``Upscaler``'s (fp32, the exact path, unless told otherwise).
    """
    from vdsr_tf.evaluation.benchmark import comparison_strip, evaluate_set
    from vdsr_tf.inference.upscaler import Upscaler
    from vdsr_tf.io.images import save_array

    bicubic = Upscaler("bicubic")
    only_bicubic = weights == "bicubic"
    model_upscaler = (
        bicubic
        if only_bicubic
        else Upscaler(weights or None, ensemble=ensemble, precision=precision)
    )
    results, base = {}, {}
    header = f"{'set':<8}{'scale':>6}  {'bicubic PSNR/SSIM':>20}"
    if not only_bicubic:
        header += f"  {'VDSR PSNR/SSIM':>20}"
    print(header, file=out)
    for name in sets:
        set_dir = name if name.startswith("tfds:") else os.path.join(data_dir, name)
        key_name = name.split(":")[1] if name.startswith("tfds:") else name
        tfds_args = dict(data_dir=tfds_data_dir, manual_dir=manual_dir)
        strips = []
        for s in scales:
            key = f"x{s}"
            b = (
                evaluate_set(bicubic, set_dir, s, keep_images=True, **tfds_args)
                if (baseline or only_bicubic)
                else None
            )
            m = (
                b
                if only_bicubic
                else evaluate_set(model_upscaler, set_dir, s, keep_images=True, **tfds_args)
            )
            results.setdefault(key_name, {})[key] = _rounded(m)
            line = f"{name:<8}{key:>6}  "
            if b is not None:
                base.setdefault(key_name, {})[key] = _rounded(b)
                line += f"{b['psnr']:>12.2f} / {b['ssim']:.4f}"
            else:
                line += f"{'-':>20}"
            if not only_bicubic:
                line += f"  {m['psnr']:>12.2f} / {m['ssim']:.4f}"
            print(line, file=out, flush=True)
            if compare_dir and b is not None:
                _, bic, hr = b["images"][0]
                strips.append(comparison_strip(bic, m["images"][0][1], hr))
        if compare_dir and strips:
            import numpy as np

            os.makedirs(compare_dir, exist_ok=True)
            width = max(s.shape[1] for s in strips)
            rows = [
                np.pad(s, ((0, 4), (0, width - s.shape[1]), (0, 0)), constant_values=255)
                for s in strips
            ]
            save_array(np.concatenate(rows, axis=0), os.path.join(compare_dir, f"{key_name}.png"))
    if base and not only_bicubic:
        results["bicubic"] = base
    return results


@entry_point(PROG)
def main(argv):
    if len(argv) > 1:
        raise CliError(f"Unexpected arguments: {argv[1:]}")
    shared.warn_deprecated(PROG)
    data_dir, sets, weights = FLAGS.benchmark_dir, FLAGS.sets, FLAGS.weights
    if FLAGS.demo:
        from vdsr_tf.io.bundled import bundled_weights_path
        from vdsr_tf.io.images import sample_images_dir

        data_dir, sets = os.path.split(sample_images_dir())
        sets = [sets]
        if not weights and not os.path.exists(bundled_weights_path()):
            print(
                "vdsr-eval: this build has no bundled weights yet; scoring the bicubic "
                "baseline on the bundled samples. Pass --weights=FILE to score a model."
            )
            weights = "bicubic"
    if not data_dir and not all(n.startswith("tfds:") for n in sets):
        raise CliError("--benchmark_dir is required (or --demo, or tfds:NAME sets)")
    try:
        scales = [int(s) for s in FLAGS.scales]
    except ValueError:
        raise CliError(f"--scales must be integers, got {FLAGS.scales}")
    if any(s < 2 for s in scales):
        raise CliError("--scales must be integers >= 2")
    for name in sets:
        if not name.startswith("tfds:") and not os.path.isdir(os.path.join(data_dir, name)):
            raise CliError(f"set {name!r} not found in {data_dir}")
    try:
        results = run_eval(
            data_dir,
            sets,
            scales,
            weights,
            FLAGS.baseline,
            FLAGS.compare_dir,
            FLAGS.ensemble,
            tfds_data_dir=FLAGS.tfds_data_dir,
            manual_dir=FLAGS.manual_dir,
            precision=FLAGS.precision,
        )
    except LOAD_ERRORS as e:
        raise CliError(str(e))
    if FLAGS.json:
        from vdsr_tf.io.atomic import atomic_write_text

        atomic_write_text(FLAGS.json, json.dumps(results, indent=2))
    return 0


def run():
    cli.run(main, "vdsr-eval", __name__, __doc__)


if __name__ == "__main__":
    run()
