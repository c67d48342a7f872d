"""Time and peak memory of the upscaler on this machine.

    python benchmarks/upscale_speed.py [--cases=256x256:2,256x256:3,256x256:4,1920x1080:2] [--tile=256]

Each case runs in a fresh process (so peak RSS is that case's own): an RGB
image of the given size (W x H) is upscaled by the scale with the 20 x 64
network (random weights: the cost does not depend on them). Prints one table:
wall time of the upscale call (after one warm-up call on a small image, so
tracing is not counted), achieved GFLOP/s of the network (1.33 MFLOP per
output pixel), and the process's peak RSS.
"""

import json
import os
import platform
import resource
import subprocess
import sys
import time

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "cases", ["256x256:2", "256x256:3", "256x256:4", "1920x1080:2"], "WxH:scale cases."
)
flags.DEFINE_integer("tile", 384, "Tile side (0: whole image).")
flags.DEFINE_boolean("ensemble", False, "Self-ensemble.")
flags.DEFINE_string("_child", None, "Internal: run one case and print JSON.")


def child(case, tile, ensemble):
    import numpy as np

    from vdsr_tf.inference.upscaler import Upscaler
    from vdsr_tf.models.vdsr import build_vdsr, flops_per_pixel

    size, scale = case.split(":")
    w, h = (int(v) for v in size.split("x"))
    scale = float(scale)
    up = Upscaler(model=build_vdsr(), tile=tile, ensemble=ensemble)
    up.upscale(np.zeros((32, 32, 3), np.uint8), scale=2)  # trace once
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3)).astype(np.uint8)
    start = time.perf_counter()
    out = up.upscale(image, scale=scale)
    seconds = time.perf_counter() - start
    pixels = out.shape[0] * out.shape[1] * (8 if ensemble else 1)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "case": case,
                "out": f"{out.shape[1]}x{out.shape[0]}",
                "seconds": seconds,
                "gflops": flops_per_pixel() * pixels / seconds / 1e9,
                "peak_rss_mb": rss_mb,
            }
        )
    )


def main(argv):
    del argv
    if FLAGS._child:
        child(FLAGS._child, FLAGS.tile, FLAGS.ensemble)
        return
    print(
        f"# {time.strftime('%Y-%m-%d')} {platform.node()}, {os.cpu_count()} CPUs, "
        f"tile {FLAGS.tile}, ensemble {FLAGS.ensemble}"
    )
    print(
        "| input | scale | output | time (s) | GFLOP/s | peak RSS (MB) |\n|---|---|---|---|---|---|"
    )
    for case in FLAGS.cases:
        proc = subprocess.run(
            [
                sys.executable,
                os.path.abspath(__file__),
                f"--_child={case}",
                f"--tile={FLAGS.tile}",
                f"--ensemble={FLAGS.ensemble}",
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONPATH=REPO),
        )
        if proc.returncode:
            print(f"| {case} | failed: {proc.stderr.strip().splitlines()[-1]} |")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        size, scale = case.split(":")
        print(
            f"| {size} | {scale} | {r['out']} | {r['seconds']:.2f} | {r['gflops']:.0f} | "
            f"{r['peak_rss_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
