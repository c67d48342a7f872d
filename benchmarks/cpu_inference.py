"""CPU inference: TF vs LiteRT (fp32, int8), experiments, and cost growth.

    python benchmarks/cpu_inference.py [--quick] [--plot=benchmarks/results/cost_growth.png]

Every measurement runs in a fresh process (so its peak RSS is its own) on the
paper's 20 x 64 network with random weights (cost does not depend on them).
Prints markdown tables:

1. backends: one network pass on a 256x256 and a 512x512 Y plane (no tiling)
   and the full tiled 1920x1080 -> 3840x2160 RGB upscale, for TF (one
   ``tf.function``), LiteRT fp32 and LiteRT int8: ms, GFLOP/s (1.33 MFLOP per
   output pixel), peak RSS;
2. experiments: threads, oneDNN off, tile size, a batch of tiles per call;
3. cost growth: time and peak RSS of the tiled TF upscale against output size,
   plus a PNG plot.
"""

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FLAGS = flags.FLAGS
flags.DEFINE_boolean("quick", False, "Smaller cases (for a smoke run).")
flags.DEFINE_string("plot", os.path.join(REPO, "benchmarks", "results", "cost_growth.png"),
                    "Where to write the cost-growth plot.")
flags.DEFINE_string("_child", None, "Internal: JSON spec of one measurement.")

FLOP_PER_PIXEL = 2 * (9 * 64 + 18 * 9 * 64 * 64 + 9 * 64)


def _predictor(spec, tmp):
    """(forward callable or None, upscaler kwargs) for a backend spec."""
    from vdsr_tf.model import build_vdsr

    model = build_vdsr()
    if spec["backend"] == "tf":
        return model, {"model": model}
    from vdsr_tf.export.tflite import export_tflite
    from vdsr_tf.litert import LiteRTPredictor

    path = os.path.join(tmp, "m.tflite")
    export_tflite(model, path, quantization=spec["backend"].split("_")[1], num_calibration=64)
    return None, {"predictor": LiteRTPredictor(path, num_threads=spec.get("threads", 2))}


def child(spec):
    import numpy as np

    if spec["backend"] == "tf" and spec.get("threads"):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(1)
    from vdsr_tf.upscaler import Upscaler

    with tempfile.TemporaryDirectory() as tmp:
        model, kwargs = _predictor(spec, tmp)
        up = Upscaler(tile=spec.get("tile", 384), **kwargs)
        rng = np.random.default_rng(0)
        if spec["kind"] == "pass":
            s, batch = spec["size"], spec.get("batch", 1)
            x = rng.random((batch, s, s, 1)).astype(np.float32)
            forward = up._forward
            forward(x)  # warm-up / trace
            runs = []
            for _ in range(3):
                t = time.perf_counter()
                forward(x)
                runs.append(time.perf_counter() - t)
            seconds = sorted(runs)[1]
            pixels = batch * s * s
        else:
            w, h = spec["size"]
            up.upscale(np.zeros((40, 40, 3), np.uint8), scale=2)  # warm-up / trace
            image = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
            t = time.perf_counter()
            out = up.upscale(image, scale=2)
            seconds = time.perf_counter() - t
            pixels = out.shape[0] * out.shape[1]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "pixels": pixels, "rss_mb": rss}))


def measure(spec, env=None):
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), f"--_child={json.dumps(spec)}"],
                          capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO, **(env or {})))
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["gflops"] = FLOP_PER_PIXEL * r["pixels"] / r["seconds"] / 1e9
    return r


def row(label, r):
    return f"| {label} | {r['seconds'] * 1000:,.0f} | {r['gflops']:.0f} | {r['rss_mb']:.0f} |"


def main(argv):
    del argv
    if FLAGS._child:
        child(json.loads(FLAGS._child))
        return
    big = (480, 270) if FLAGS.quick else (1920, 1080)
    print(f"# {time.strftime('%Y-%m-%d')} {platform.node()}, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}; 20x64 VDSR, random weights")
    print("\n## Backends\n\n| case | ms | GFLOP/s | peak RSS (MB) |\n|---|---|---|---|")
    for backend in ("tf", "tflite_fp32", "tflite_int8"):
        for s in (256, 512):
            print(row(f"{backend}, one pass {s}x{s}", measure(
                {"backend": backend, "kind": "pass", "size": s})), flush=True)
        print(row(f"{backend}, tiled {big[0]}x{big[1]} -> x2", measure(
            {"backend": backend, "kind": "image", "size": big})), flush=True)

    print("\n## Experiments (512x512 pass unless noted)\n\n"
          "| experiment | ms | GFLOP/s | peak RSS (MB) |\n|---|---|---|---|")
    print(row("tf, 1 intra-op thread", measure(
        {"backend": "tf", "kind": "pass", "size": 512, "threads": 1})), flush=True)
    print(row("tf, oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)", measure(
        {"backend": "tf", "kind": "pass", "size": 512}, {"TF_ENABLE_ONEDNN_OPTS": "0"})), flush=True)
    print(row("tf, batch of 4 tiles 296x296 per call", measure(
        {"backend": "tf", "kind": "pass", "size": 296, "batch": 4})), flush=True)
    print(row("tf, 1 tile 296x296 per call", measure(
        {"backend": "tf", "kind": "pass", "size": 296})), flush=True)
    for backend in ("tflite_fp32", "tflite_int8"):
        print(row(f"{backend}, 1 thread", measure(
            {"backend": backend, "kind": "pass", "size": 512, "threads": 1})), flush=True)
    for tile in (128, 256, 384, 768):
        print(row(f"tf, tiled {big[0]}x{big[1]} -> x2, tile {tile}", measure(
            {"backend": "tf", "kind": "image", "size": big, "tile": tile})), flush=True)

    print("\n## Cost growth (tf, tile 384, RGB x2)\n\n"
          "| output | Mpixels | s | us / output pixel | peak RSS (MB) |\n|---|---|---|---|---|")
    sizes = [(128, 72), (240, 135), (480, 270)] if FLAGS.quick else \
        [(256, 256), (512, 288), (960, 540), (1280, 720), (1920, 1080)]
    points = []
    for w, h in sizes:
        r = measure({"backend": "tf", "kind": "image", "size": (w, h)})
        mp = r["pixels"] / 1e6
        points.append((mp, r["seconds"], r["rss_mb"]))
        print(f"| {2 * w}x{2 * h} | {mp:.2f} | {r['seconds']:.2f} | "
              f"{r['seconds'] / r['pixels'] * 1e6:.2f} | {r['rss_mb']:.0f} |", flush=True)
    _plot(points, FLAGS.plot)
    print(f"\nplot: {os.path.relpath(FLAGS.plot, REPO)}")


def _plot(points, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mp, seconds, rss = zip(*points)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(mp, seconds, "o-")
    a.set_xlabel("output Mpixels")
    a.set_ylabel("time (s)")
    a.set_title("time grows linearly")
    b.plot(mp, rss, "o-", color="tab:red")
    b.set_xlabel("output Mpixels")
    b.set_ylabel("peak RSS (MB)")
    b.set_ylim(0, max(rss) * 1.3)
    b.set_title("memory (tiled)")
    fig.suptitle("vdsr-upscale on 2 CPU cores (TF, tile 384)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    app.run(main)
