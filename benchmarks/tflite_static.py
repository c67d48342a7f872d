"""Static-size TFLite models (for GPU / NPU delegates) against the dynamic ones.

    python benchmarks/tflite_static.py [--weights=FILE] [--size=256]
        [--set_dir=../shared/datasets/Set5] [--calib_dir=../shared/datasets/train/BSD200]

For fp32, fp16 and int8 it exports the dynamic-shape model and the static
(1, S, S, 1) one (``vdsr-export --fixed_size=S``; int8: both calibrated on the
same S-pixel patches), then prints:

* per model: file size, the operators it runs, the CPU latency of one S x S
  pass and of a 512 x 512 plane through ``LiteRTPredictor`` (the static model
  tiles it with overlapping S x S windows), LiteRT with ``--threads`` threads;
* on the benchmark set's LR files whose upscaled size is at least S (x2, x3,
  x4), through the ``Upscaler`` as ``vdsr-upscale --backend=litert`` runs
  it: how many output values differ between static and dynamic, and by how
  much;
* on the files smaller than S, the approximation used when no
  ``--fallback_model`` is given (edge-pad to S, run, crop) against the
  dynamic model: values differing, max difference, PSNR against the HR.

Default weights: the bundled ones.
"""

import os
import platform
import sys
import tempfile
import time

from absl import app, flags
from timing import median_seconds

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
_DATA = os.path.join(os.path.dirname(REPO), "shared", "datasets")

FLAGS = flags.FLAGS
flags.DEFINE_string("weights", None, "A .keras or .weights.h5 file; default: the bundled weights.")
flags.DEFINE_integer("size", 256, "The static input side S.")
flags.DEFINE_string("set_dir", os.path.join(_DATA, "Set5"), "Benchmark set (HR + LR_bicubic).")
flags.DEFINE_string(
    "calib_dir",
    os.path.join(_DATA, "train", "BSD200"),
    "HR images for int8 calibration (at least S pixels per side).",
)
flags.DEFINE_list("quantizations", ["fp32", "fp16", "int8"], "Variants.")
flags.DEFINE_integer("threads", 2, "LiteRT interpreter threads.")
flags.DEFINE_integer("runs", 3, "Timed runs (median reported).")


def main(argv):
    del argv
    import numpy as np

    from vdsr_tf.data.degradation import load_y_planes
    from vdsr_tf.evaluation.benchmark import benchmark_pairs
    from vdsr_tf.evaluation.metrics import psnr
    from vdsr_tf.export.tflite import export_tflite
    from vdsr_tf.inference.litert import LiteRTPredictor
    from vdsr_tf.inference.upscaler import Upscaler
    from vdsr_tf.models.loading import load_pretrained

    size = FLAGS.size
    model = load_pretrained(FLAGS.weights)
    planes = load_y_planes(FLAGS.calib_dir)
    print(
        f"# {time.strftime('%Y-%m-%d')} {platform.node()}, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}; weights: "
        f"{FLAGS.weights or 'bundled'}; S = {size}; LiteRT {FLAGS.threads} threads; "
        f"latency: median of {FLAGS.runs} after a warm-up"
    )
    rng = np.random.default_rng(0)
    window = rng.random((1, size, size, 1), np.float32)
    plane = rng.random((1, 512, 512, 1), np.float32)
    rows, parity, approx = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for q in FLAGS.quantizations:
            kwargs = {"patch_size": size, "representative_planes": planes} if q == "int8" else {}
            dyn = export_tflite(model, os.path.join(folder, f"dyn_{q}.tflite"), q, **kwargs)
            fix = export_tflite(
                model, os.path.join(folder, f"fix_{q}.tflite"), q, fixed_size=size, **kwargs
            )
            predictors = {}
            for kind, info in (("dynamic", dyn), ("static", fix)):
                p = LiteRTPredictor(info["path"], num_threads=FLAGS.threads)
                predictors[kind] = p
                rows.append(
                    (
                        f"{q} {kind}",
                        info["bytes"],
                        info["ops"],
                        1000 * median_seconds(lambda p=p: p(window), FLAGS.runs),
                        1000 * median_seconds(lambda p=p: p(plane), FLAGS.runs),
                    )
                )
            dyn_up = Upscaler(predictor=predictors["dynamic"])
            fix_up = Upscaler(predictor=predictors["static"])
            total = differ = worst = 0
            small = []
            for scale in (2, 3, 4):
                for name, lr, hr in benchmark_pairs(FLAGS.set_dir, scale):
                    a = dyn_up.upscale(lr, scale=scale)
                    b = fix_up.upscale(lr, scale=scale)
                    diff = np.abs(a.astype(int) - b)
                    if min(a.shape[:2]) >= size:
                        total, differ = total + diff.size, differ + int((diff > 0).sum())
                        worst = max(worst, int(diff.max()))
                    else:
                        small.append(
                            (
                                f"{name} x{scale}",
                                diff.size,
                                int((diff > 0).sum()),
                                int(diff.max()),
                                psnr(a, hr, scale),
                                psnr(b, hr, scale),
                            )
                        )
            parity.append((q, total, differ, worst))
            approx.append((q, small))
    print("\n| model | bytes | ops | one S×S pass ms | 512×512 plane ms |")
    print("|---|---|---|---|---|")
    for name, nbytes, ops, one, full in rows:
        text = ", ".join(f"{k} {v}" for k, v in ops.items())
        print(f"| {name} | {nbytes:,} | {text} | {one:.0f} | {full:.0f} |")
    print(
        f"\nStatic against dynamic on {os.path.basename(FLAGS.set_dir)} files of at least "
        f"{size} px (x2/x3/x4, through the Upscaler, uint8 RGB):"
    )
    print("| variant | values | differing | max difference |")
    print("|---|---|---|---|")
    for q, total, differ, worst in parity:
        print(f"| {q} | {total:,} | {differ:,} | {worst} |")
    print(
        f"\nFiles smaller than {size} px without a fallback (edge-pad to S, crop) against "
        "the dynamic model:"
    )
    print("| variant | file | values | differing | max difference | PSNR dynamic | PSNR padded |")
    print("|---|---|---|---|---|---|---|")
    for q, small in approx:
        for name, n, d, m, p_dyn, p_fix in small:
            print(
                f"| {q} | {name} | {n:,} | {d:,} ({100 * d / n:.2f} %) | {m} | "
                f"{p_dyn:.2f} | {p_fix:.2f} |"
            )


if __name__ == "__main__":
    app.run(main)
