"""Training-pipeline throughput: patches/s of the tf.data pipeline and the numpy sampler.

    python benchmarks/pipeline_throughput.py [--data=DIR[,DIR]] [--batches=100]

Prints one table. Data defaults to ../shared/datasets/train/{T91,BSD200}.
"""

import os
import platform
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
_ROOT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "datasets", "train"
)
flags.DEFINE_list(
    "data", [os.path.join(_ROOT, "T91"), os.path.join(_ROOT, "BSD200")], "Image folders."
)
flags.DEFINE_integer("batches", 100, "Batches timed after warm-up.")
flags.DEFINE_integer("batch_size", 64, "Patches per batch.")
flags.DEFINE_integer("patch_size", 41, "Patch side.")


def _rate(batches, n, batch_size):
    for _ in range(5):  # warm-up: cache fill, thread start
        next(batches)
    start = time.perf_counter()
    for _ in range(n):
        next(batches)
    return n * batch_size / (time.perf_counter() - start)


def main(argv):
    del argv
    from vdsr_tf.config import DataConfig
    from vdsr_tf.data.degradation import PatchSampler, load_y_planes
    from vdsr_tf.data.pipeline import make_dataset

    cfg = DataConfig(batch_size=FLAGS.batch_size, patch_size=FLAGS.patch_size)
    rows = []
    ds = make_dataset(FLAGS.data, cfg, seed=0)
    rows.append(("tf.data (make_dataset)", _rate(iter(ds), FLAGS.batches, cfg.batch_size)))
    planes = load_y_planes(FLAGS.data)
    rows.append(
        (
            "numpy PatchSampler",
            _rate(PatchSampler(planes, cfg, seed=0).batches(), FLAGS.batches, cfg.batch_size),
        )
    )
    print(
        f"# {time.strftime('%Y-%m-%d')} {platform.node()} {os.cpu_count()} CPUs, "
        f"{len(planes)} images, batch {cfg.batch_size}, patch {cfg.patch_size}, "
        f"scales {cfg.scales}, downsize {cfg.downsize}"
    )
    print("| sampler | patches/s |\n|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
    app.run(main)
