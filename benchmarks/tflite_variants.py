"""Size, CPU latency and Set5 PSNR of the four TFLite variants against Keras.

    python benchmarks/tflite_variants.py [--weights=runs/NAME/vdsr.weights.h5]
        [--set_dir=../shared/datasets/Set5] [--calib_dir=../shared/datasets/train/T91]

Exports fp32 / fp16 / dynamic / int8 (``vdsr_tf.export.tflite``) to a
temporary folder and prints one markdown table:

* size of the file in MB (Keras: its float32 parameters);
* latency of one forward pass on a (1, S, S, 1) input, median of ``--runs``
  after one warm-up, LiteRT with ``--threads`` threads (Keras: TensorFlow's
  own thread pool), both through ``Upscaler.predict_y`` with no tiling;
* Set5 PSNR at x2 / x3 / x4 (``vdsr_tf.evaluation.benchmark.evaluate_set``);
* max and mean abs(SR Y - Keras SR Y) (Y in [0, 1]) on the bundled bird at x2
  (the network's output before uint8 rounding; 1/255 = 0.0039).

Without ``--weights`` a freshly built, random-init 20 x 64 network is used
(fine for sizes and latencies, meaningless PSNRs). int8 is calibrated on
patches of ``--calib_dir`` (training images, not the test set), else of the
bundled samples.
"""

import os
import platform
import statistics
import sys
import tempfile
import time

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
_DATA = os.path.join(os.path.dirname(REPO), "shared", "datasets")

FLAGS = flags.FLAGS
flags.DEFINE_string("weights", None, "A .keras or .weights.h5 file; default: random init 20x64.")
flags.DEFINE_string("set_dir", os.path.join(_DATA, "Set5"), "Benchmark set for PSNR.")
flags.DEFINE_string(
    "calib_dir",
    os.path.join(_DATA, "train", "T91"),
    "HR images for int8 calibration (default falls back to the samples).",
)
flags.DEFINE_integer("num_calibration", 200, "int8 calibration patches.")
flags.DEFINE_list("sizes", ["256", "512"], "Square input sides to time.")
flags.DEFINE_list("scales", ["2", "3", "4"], "Scales for the PSNR columns.")
flags.DEFINE_integer("threads", 2, "LiteRT interpreter threads.")
flags.DEFINE_integer("runs", 3, "Timed runs per size (median reported).")


def latency_ms(upscaler, side, runs):
    """Median ms of ``upscaler.predict_y`` on a (side, side) plane, after a warm-up."""
    import numpy as np

    y = np.random.default_rng(0).random((side, side), np.float32)
    upscaler.predict_y(y)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        upscaler.predict_y(y)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def reference_plane():
    """float32 (H, W) bicubic-x2 Y in [0, 1] of the bundled bird image."""
    import numpy as np

    from vdsr_tf.io.images import read_image, sample_images_dir
    from vdsr_tf.ops.colour import rgb2ycbcr
    from vdsr_tf.ops.imresize import imresize

    lr = read_image(os.path.join(sample_images_dir(), "LR_bicubic", "X2", "bird.png"), alpha=False)
    y = rgb2ycbcr(lr.astype(np.float32) / np.float32(255))[..., 0]
    return imresize(y, output_shape=(2 * y.shape[0], 2 * y.shape[1])).astype(np.float32)


def measure(upscaler, size_mb, sizes, scales, set_dir, runs, reference):
    """One table row's numbers; ``reference`` = (Y plane, Keras SR of it)."""
    import numpy as np

    from vdsr_tf.evaluation.benchmark import evaluate_set

    delta = np.abs(upscaler.predict_y(reference[0]) - reference[1])
    row = {"MB": size_mb, "max": float(delta.max()), "mean": float(delta.mean())}
    for side in sizes:
        row[f"{side}²"] = latency_ms(upscaler, side, runs)
    for s in scales if set_dir else ():
        row[f"x{s}"] = evaluate_set(upscaler, set_dir, s)["psnr"]
    return row


def main(argv):
    del argv
    from vdsr_tf.data.degradation import load_y_planes
    from vdsr_tf.export.tflite import QUANTIZATIONS, export_tflite
    from vdsr_tf.inference.litert import LiteRTPredictor
    from vdsr_tf.inference.upscaler import Upscaler
    from vdsr_tf.io.images import sample_images_dir
    from vdsr_tf.models.loading import load_pretrained
    from vdsr_tf.models.vdsr import build_vdsr

    sizes = [int(s) for s in FLAGS.sizes]
    scales = [int(s) for s in FLAGS.scales]
    model = load_pretrained(FLAGS.weights) if FLAGS.weights else build_vdsr()
    convs = [l for l in model.layers if hasattr(l, "kernel_size")]
    source = FLAGS.weights or "random init (no --weights): PSNRs are meaningless"
    set_dir = FLAGS.set_dir if os.path.isdir(FLAGS.set_dir) else None
    calib = (
        FLAGS.calib_dir
        if os.path.isdir(FLAGS.calib_dir)
        else os.path.join(sample_images_dir(), "HR")
    )
    planes = load_y_planes(calib)
    print(
        f"# {time.strftime('%Y-%m-%d')} {platform.node()}, {os.cpu_count()} CPUs; "
        f"network {len(convs)} layers x {convs[0].filters} filters "
        f"({model.count_params():,} parameters), weights: {source}"
    )
    print(
        f"# latency: median of {FLAGS.runs} after a warm-up, one (1, S, S, 1) pass, "
        f"LiteRT {FLAGS.threads} threads; int8 calibrated on {FLAGS.num_calibration} "
        f"patches of {calib} ({len(planes)} images)"
    )
    if set_dir is None:
        print(f"# note: {FLAGS.set_dir} not found; PSNR columns skipped")
    rows = {}
    plane = reference_plane()
    keras_upscaler = Upscaler(model=model)
    reference = (plane, keras_upscaler.predict_y(plane))
    rows["keras"] = measure(
        keras_upscaler,
        model.count_params() * 4 / 1e6,
        sizes,
        scales,
        set_dir,
        FLAGS.runs,
        reference,
    )
    with tempfile.TemporaryDirectory() as folder:
        for q in QUANTIZATIONS:
            start = time.perf_counter()
            info = export_tflite(
                model,
                os.path.join(folder, f"vdsr_{q}.tflite"),
                q,
                representative_planes=planes,
                num_calibration=FLAGS.num_calibration,
            )
            convert_s = time.perf_counter() - start
            predictor = LiteRTPredictor(info["path"], num_threads=FLAGS.threads)
            rows[q] = measure(
                Upscaler(predictor=predictor),
                info["bytes"] / 1e6,
                sizes,
                scales,
                set_dir,
                FLAGS.runs,
                reference,
            )
            rows[q]["convert s"] = convert_s
    columns = ["MB"] + [f"{s}² ms" for s in sizes]
    columns += [f"Set5 x{s} dB" for s in scales] if set_dir else []
    print("| variant | " + " | ".join(columns) + " | max / mean abs Δy vs Keras | convert s |")
    print("|---" * (len(columns) + 3) + "|")
    for name, row in rows.items():
        cells = [f"{row['MB']:.3f}"] + [f"{row[f'{s}²']:.0f}" for s in sizes]
        cells += [f"{row[f'x{s}']:.2f}" for s in scales] if set_dir else []
        cells.append(f"{row['max']:.2e} / {row['mean']:.1e}")
        cells.append(f"{row['convert s']:.1f}" if "convert s" in row else "—")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    app.run(main)
