"""Training throughput: ``fit`` against the fast engine, same network, same backend (JAX).

    KERAS_BACKEND=jax python benchmarks/train_throughput.py [--depth=20 --filters=64]
        [--batch_sizes=64,256] [--steps_per_call=1,50] [--patch_size=41]
        [--seconds=20] [--data=DIR_OR_NPZ] [--mixed_precision=float32] [--engines=fit,fast]

For each batch size: ``fit`` fed by the numpy ``PatchSampler`` (host sampling
included, as users run it without TensorFlow) and the fast engine at each K
(steps per jitted call, batches cut on the device). Times are taken after
``block_until_ready``, with the compile (and ``fit``'s first epoch) excluded
and reported apart. Prints a Markdown table: patches/s, 41 x 41-equivalent
patches/s and TFLOP/s (3 x 1.33 MFLOP per pixel for the 20 x 64 network).
Runs unchanged on the GPU machine.
"""

import datetime
import json
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
flags.DEFINE_integer("depth", 20, "Convolution layers.")
flags.DEFINE_integer("filters", 64, "Hidden channels.")
flags.DEFINE_integer("patch_size", 41, "Patch side.")
flags.DEFINE_list("batch_sizes", ["16", "64"], "Batch sizes.")
flags.DEFINE_list("steps_per_call", ["1", "10"], "K values of the fast engine.")
flags.DEFINE_list("engines", ["fit", "fast"], "Engines timed (fit, fast).")
flags.DEFINE_float("seconds", 20, "Timed seconds per row (after warm-up).")
flags.DEFINE_string("data", None, "Training images (default: the bundled samples).")
flags.DEFINE_enum("mixed_precision", "float32", ["float32", "mixed_bfloat16"], "Policy.")
flags.DEFINE_integer("pool_workers", None, "Processes building the device pool.")
flags.DEFINE_string("json", None, "Also write the rows here.")


def _config(batch):
    from vdsr_tf import config as C

    return C.override(
        C.get_preset("modern"),
        **{
            "model.depth": FLAGS.depth,
            "model.filters": FLAGS.filters,
            "data.patch_size": FLAGS.patch_size,
            "data.batch_size": batch,
            "mixed_precision": FLAGS.mixed_precision,
            "steps": 10**6,
        },
    )


def _fit_row(cfg, planes):
    import keras
    import numpy as np

    from vdsr_tf.data.degradation import PatchSampler
    from vdsr_tf.training.trainer import build_model

    keras.utils.set_random_seed(0)
    model = build_model(cfg)
    batches = PatchSampler(planes, cfg.data, seed=0).batches()
    t0 = time.perf_counter()
    model.fit(batches, steps_per_epoch=2, epochs=1, verbose=0)  # compile + warm-up
    first = time.perf_counter() - t0
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < FLAGS.seconds:
        model.fit(batches, steps_per_epoch=5, epochs=1, verbose=0)
        steps += 5
    np.asarray(model.weights[0])
    return steps * cfg.data.batch_size / (time.perf_counter() - t0), first


def _fast_row(cfg, pool, k):
    import jax
    import keras

    from vdsr_tf.training import jax_engine
    from vdsr_tf.training.trainer import build_model

    keras.utils.set_random_seed(0)
    model = build_model(cfg)
    jax_engine.build_for_training(model, cfg.data.batch_size, pool.patch_size)
    state, key = jax_engine.get_state(model), jax.random.key(0)
    t0 = time.perf_counter()
    step = jax_engine.make_multi_step(model, pool, cfg.data.batch_size, k)
    step = step.lower(state, key, pool.arrays).compile()
    compile_s = time.perf_counter() - t0
    state, key, _ = step(state, key, pool.arrays)
    jax.block_until_ready(state)
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < FLAGS.seconds:
        state, key, _ = step(state, key, pool.arrays)
        jax.block_until_ready(state)
        calls += 1
    return calls * k * cfg.data.batch_size / (time.perf_counter() - t0), compile_s


def main(argv):
    del argv
    import jax
    import keras

    if keras.backend.backend() != "jax":
        raise app.UsageError("run with KERAS_BACKEND=jax (both engines on the same backend)")
    unknown = set(FLAGS.engines) - {"fit", "fast"}
    if unknown or not FLAGS.engines:
        raise app.UsageError(f"--engines: unknown {sorted(unknown)}; valid: fit, fast")
    from vdsr_tf.data import degradation
    from vdsr_tf.io.images import sample_images_dir
    from vdsr_tf.models.vdsr import flops_per_pixel
    from vdsr_tf.training import jax_engine

    keras.mixed_precision.set_global_policy(FLAGS.mixed_precision)
    planes = degradation.load_y_planes(FLAGS.data or os.path.join(sample_images_dir(), "HR"))
    p = FLAGS.patch_size
    flop = 3 * flops_per_pixel(FLAGS.depth, FLAGS.filters) * p * p
    device = jax.devices()[0]
    print(
        f"device: {getattr(device, 'device_kind', device)}, {FLAGS.depth} x {FLAGS.filters}, "
        f"{p} x {p} patches, {FLAGS.mixed_precision}"
    )
    print(
        "| engine | batch | K | patches/s | 41x41-eq/s | TFLOP/s | compile / first epoch s |\n"
        "|---|---|---|---|---|---|---|"
    )
    rows = []

    def record(engine, batch, k, rate, setup, pool):
        # Each row is printed and written as soon as it is measured: a run cut
        # short by a time limit keeps the rows it finished.
        row = {
            "engine": engine,
            "batch": batch,
            "k": k,
            "patches_per_s": rate,
            "eq41_per_s": rate * p * p / 41**2,
            "tflops": rate * flop / 1e12,
            "setup_s": setup,
            "pool_s": pool.build_seconds,
        }
        rows.append(row)
        print(
            f"| {engine} | {batch} | {k if engine == 'fast' else '-'} | {rate:,.1f} | "
            f"{row['eq41_per_s']:,.1f} | {row['tflops']:.3f} | {setup:.1f} |",
            flush=True,
        )
        if FLAGS.json:
            from vdsr_tf.io.atomic import atomic_write_text

            summary = {
                "device": str(getattr(device, "device_kind", device)),
                "date": datetime.date.today().isoformat(),
                "depth": FLAGS.depth,
                "filters": FLAGS.filters,
                "patch_size": p,
                "mixed_precision": FLAGS.mixed_precision,
                "tensorflow_loaded": sys.modules.get("tensorflow") is not None,
                "rows": rows,
            }
            atomic_write_text(FLAGS.json, json.dumps(summary, indent=2))

    for batch in (int(b) for b in FLAGS.batch_sizes):
        cfg = _config(batch)
        pool = jax_engine.DevicePool(planes, cfg.data, workers=FLAGS.pool_workers)
        if "fit" in FLAGS.engines:
            record("fit", batch, 1, *_fit_row(cfg, planes), pool)
        for k in (int(v) for v in FLAGS.steps_per_call) if "fast" in FLAGS.engines else ():
            record("fast", batch, k, *_fast_row(cfg, pool, k), pool)


if __name__ == "__main__":
    app.run(main)
