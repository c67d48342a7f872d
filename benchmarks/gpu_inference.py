"""Inference latency on the accelerator (JAX): the bare network and the all-in Upscaler.

    KERAS_BACKEND=jax python benchmarks/gpu_inference.py [--size=1024] [--repeats=50]
        [--precisions=bf16,fp32,fp32_highest] [--json=OUT.json] [--dry_run]

1. The bundled 20 x 64 network's forward pass on one ``size`` x ``size`` Y
   plane already on the device, jitted (Keras ``stateless_call``), timed after
   ``block_until_ready``: the median of ``--repeats`` runs after ``--warmup``,
   with the compile time apart, and TFLOP/s at 1.33 MFLOP per output pixel.
   Precisions: ``bf16`` (Keras ``mixed_bfloat16``: bf16 convolutions, float32
   skip add), ``fp32`` (float32 with XLA's default precision, which lets
   the GPU's matrix units use TF32) and ``fp32_highest``
   (``jax_default_matmul_precision="highest"``: true float32 products).
2. The all-in ``Upscaler`` (the bundled weights, the Keras backend: on JAX,
   ``fast.jax_forward``; what ``Upscaler()`` picks where a GPU is visible:
   ``precision="auto"``, bf16) on a 1920 x 1080 RGB image at x2, to
   3840 x 2160, from the uint8 array to the uint8 array: colour conversion,
   bicubic, the network, host transfers. With the default tile and whole
   (``tile=None``); median of ``--upscale_repeats`` after one warm-up.

Runs on the GPU host from the release job's wheelhouse (no TensorFlow needed;
``benchmarks/gpu_suite.sh``). ``--dry_run``: a 64 x 64 plane, 3 repeats, a
96 x 64 image, on CPU (the test suite runs it with TensorFlow blocked).
"""

import datetime
import json
import os
import sys
import time

from absl import app, flags
from timing import median_seconds

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 1024, "Side of the Y plane of the bare forward pass.")
flags.DEFINE_integer("repeats", 50, "Timed runs of the bare forward pass.")
flags.DEFINE_integer("warmup", 5, "Untimed runs after the compile.")
flags.DEFINE_list("precisions", ["bf16", "fp32", "fp32_highest"], "Precisions timed.")
flags.DEFINE_list("image", ["1920", "1080"], "Width, height of the Upscaler's RGB input.")
flags.DEFINE_integer("upscale_repeats", 5, "Timed all-in upscales per tile setting.")
flags.DEFINE_string("json", None, "Also write the results here.")
flags.DEFINE_boolean("dry_run", False, "Small sizes, few repeats (CPU).")

POLICY = {"bf16": "mixed_bfloat16", "fp32": "float32", "fp32_highest": "float32"}


def _network(precision):
    """The bundled weights in a network built under ``precision``'s policy."""
    import keras

    from vdsr_tf.models.loading import load_pretrained
    from vdsr_tf.models.vdsr import build_vdsr

    trained = load_pretrained()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(POLICY[precision])
    try:
        model = build_vdsr(depth=len(trained.layers) - 2, filters=trained.layers[1].filters)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model.set_weights(trained.get_weights())
    return model


def forward_latency(precision, size, repeats, warmup):
    """Median seconds of the jitted forward pass on a (1, size, size, 1) plane."""
    import jax
    import numpy as np

    model = _network(precision)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def forward(tv, ntv, x):
        return model.stateless_call(tv, ntv, x, training=False)[0]

    x = jax.device_put(np.random.default_rng(0).random((1, size, size, 1), np.float32))
    matmul = "highest" if precision == "fp32_highest" else None
    with jax.default_matmul_precision(matmul):
        t0 = time.perf_counter()
        fn = jax.jit(forward).lower(trainable, non_trainable, x).compile()
        compile_s = time.perf_counter() - t0
        run = lambda: fn(trainable, non_trainable, x).block_until_ready()  # noqa: E731
        for _ in range(warmup - 1):  # median_seconds makes the last warm-up call
            run()
        seconds = median_seconds(run, repeats)
    out = np.asarray(fn(trainable, non_trainable, x))
    if not np.isfinite(out).all():
        raise RuntimeError(f"{precision}: the forward pass gave non-finite values")
    return seconds, compile_s


def upscale_latency(width, height, tile, repeats):
    """Median seconds of ``Upscaler(backend="keras").upscale_array`` at x2."""
    import numpy as np

    from vdsr_tf.inference.upscaler import Upscaler

    up = Upscaler(tile=tile, backend="keras")
    rgb = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return median_seconds(lambda: up.upscale_array(rgb, scale=2), repeats)


def main(argv):
    del argv
    import jax
    import keras

    if keras.backend.backend() != "jax":
        raise app.UsageError("run with KERAS_BACKEND=jax")
    from vdsr_tf.models.vdsr import flops_per_pixel
    from vdsr_tf.ops.tiling import DEFAULT_TILE

    size, repeats, warmup = FLAGS.size, FLAGS.repeats, FLAGS.warmup
    width, height = (int(v) for v in FLAGS.image)
    up_repeats = FLAGS.upscale_repeats
    if FLAGS.dry_run:
        size, repeats, warmup, width, height, up_repeats = 64, 3, 1, 96, 64, 1
    for p in FLAGS.precisions:
        if p not in POLICY:
            raise app.UsageError(f"Unknown precision {p!r}; valid: {', '.join(POLICY)}")
    device = jax.devices()[0]
    name = getattr(device, "device_kind", str(device))
    result = {
        "date": datetime.date.today().isoformat(),
        "device": name,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "keras": keras.__version__,
        "size": size,
        "repeats": repeats,
        "tensorflow_loaded": sys.modules.get("tensorflow") is not None,
        "forward": {},
        "upscale": {},
    }
    flop = flops_per_pixel() * size * size

    def save():
        # After every row: a run cut short by a time limit keeps what it measured.
        if FLAGS.json:
            from vdsr_tf.io.atomic import atomic_write_text

            atomic_write_text(FLAGS.json, json.dumps(result, indent=2))

    print(
        f"device: {name} ({jax.default_backend()}), jax {jax.__version__}, "
        f"keras {keras.__version__}, {result['date']}"
    )
    print(
        f"\n| forward, 20 x 64, {size} x {size} Y plane | median ms | TFLOP/s | compile s |\n"
        "|---|---|---|---|"
    )
    for p in FLAGS.precisions:
        seconds, compile_s = forward_latency(p, size, repeats, warmup)
        row = result["forward"][p] = {
            "ms": seconds * 1e3,
            "tflops": flop / seconds / 1e12,
            "compile_s": compile_s,
        }
        print(f"| {p} | {row['ms']:.2f} | {row['tflops']:.1f} | {compile_s:.1f} |", flush=True)
        save()
    print(
        f"\n| Upscaler, {width} x {height} RGB x2, uint8 to uint8 | tile | median s |\n"
        "|---|---|---|"
    )
    for tile in (DEFAULT_TILE, None):
        seconds = upscale_latency(width, height, tile, up_repeats)
        result["upscale"][str(tile)] = {"s": seconds}
        print(f"| Keras on JAX | {tile or 'whole image'} | {seconds:.3f} |", flush=True)
        save()


if __name__ == "__main__":
    app.run(main)
