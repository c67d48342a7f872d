"""Why the paper's recipe did not train: one change at a time, by measurement.

    python benchmarks/clip_study.py --output_dir=runs/clip_study \
        [--arms=1,5,19] [--seeds=3] [--depth=20 --filters=32] [--steps=200]
        [--batch_size=64] [--eval_every=50] [--mixed_precision=mixed_bfloat16]

Every arm starts from the paper's recipe (``BASE``: the summed loss, SGD at lr
0.1 with momentum 0.9, weight decay 1e-4 in the loss, the per-value theta/lr
clip with theta = 0.01 in the model's ``train_step``, He init, biases) and
changes one thing. The learning rate stays at 0.1: the runs are the first
steps of the paper's schedule, whose first drop comes after a quarter of the
run. Each arm runs ``--seeds`` times; seed s fixes the initial weights and
the training stream (``--steps`` batches of 41 x 41 patches from T91, drawn
by ``vdsr_tf.data.degradation.PatchSampler``), the same for every arm. Every
``--eval_every`` steps the script records:

- the PSNR of the network's output on a fixed batch of 256 held-out BSD200
  patches (and the bicubic input's);
- ``clip_fraction``: the share of gradient values that the clip cut, averaged
  over the steps since the last point (``norm`` mode: the share of steps);
- the dead ReLUs: the share of hidden channels (all layers, and the last
  hidden layer) that are never positive on 64 held-out patches.

A run whose output is not finite stops there (``diverged``). A run whose
``.json`` exists is not run again, so an interrupted study resumes. Writes
``study.json`` and ``study.md`` (the tables of BUILD.md) under
``--output_dir``.

Two arms are not in the package: the clip of the update after momentum
(``UpdateClippedSGD`` below) and the network without biases (biases frozen at
zero); the rest are ``build_vdsr`` and Keras options.
"""

import json
import math
import os
import sys
import time

from absl import app, flags, logging
from seed_stats import fmt, stats

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
SHARED = os.path.join(os.path.dirname(REPO), "shared", "datasets", "train")

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "Where the runs and the tables go.")
flags.DEFINE_list("arms", None, "Run only these arms (numbers from 1, as in the table).")
flags.DEFINE_integer("seeds", 3, "Runs per arm (seeds 0..N-1).")
flags.DEFINE_integer("depth", 20, "Convolution layers (the paper: 20).")
flags.DEFINE_integer("filters", 32, "Hidden channels (the paper: 64).")
flags.DEFINE_integer("steps", 200, "Training steps per run.")
flags.DEFINE_integer("batch_size", 64, "Patches per step (the paper: 64).")
flags.DEFINE_integer("eval_every", 50, "Steps between measurements.")
flags.DEFINE_enum(
    "mixed_precision",
    "mixed_bfloat16",
    ["float32", "mixed_bfloat16"],
    "Compute policy (bf16 is 2-4x faster on CPUs with AVX512-BF16 or AMX).",
)
flags.DEFINE_string("train_dir", os.path.join(SHARED, "T91"), "Training images.")
flags.DEFINE_string("held_dir", os.path.join(SHARED, "BSD200"), "Held-out images.")

# The paper's recipe, as this project read it until this study.
BASE = dict(
    theta=0.01,
    clip_mode="value",
    clip_at="gradient",
    optimizer="sgd",
    lr=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    decay_at="loss",
    loss="patch_sum",
    init="he_normal",
    zero_last=False,
    biases=True,
    warmup=0.0,
)

# (label, changes to BASE); numbered from 1 in this order.
ARMS = [
    ("paper as read before: theta 0.01", {}),
    ("no clip", {"theta": None}),
    ("theta 1e-3", {"theta": 1e-3}),
    ("theta 3e-4", {"theta": 3e-4}),
    ("theta 1e-4", {"theta": 1e-4}),
    ("theta 3e-5", {"theta": 3e-5}),
    ("theta 1e-5", {"theta": 1e-5}),
    ("loss summed over the batch too", {"loss": "batch_sum"}),
    ("per-pixel mean loss (Keras mse)", {"loss": "mse"}),
    ("global-norm clip theta/lr, theta 0.01", {"clip_mode": "norm"}),
    (
        "global-norm clip theta/lr, theta 0.04 (pytorch-vdsr's 0.4 at lr 0.1)",
        {"clip_mode": "norm", "theta": 0.04},
    ),
    ("clip the update after momentum to theta", {"clip_at": "update"}),
    ("linear warm-up over the first 10% of steps", {"warmup": 0.1}),
    ("no momentum", {"momentum": 0.0}),
    ("Caffe's MSRA init (untruncated He)", {"init": "msra"}),
    ("last layer zero-initialised", {"zero_last": True}),
    ("no biases", {"biases": False}),
    ("weight decay after the clip (decoupled)", {"decay_at": "optimizer"}),
    ("theta 1e-4, no momentum", {"theta": 1e-4, "momentum": 0.0}),
    ("theta 1e-4, last layer zero-initialised", {"theta": 1e-4, "zero_last": True}),
    ("theta 1e-4, clip the update after momentum", {"theta": 1e-4, "clip_at": "update"}),
    (
        "reference: Adam 5e-4, per-pixel mse, clipnorm 1, no decay",
        {"optimizer": "adam", "lr": 5e-4, "loss": "mse", "theta": None, "weight_decay": 0.0},
    ),
]


def update_clipped_sgd(theta, **kwargs):
    """SGD whose momentum step ``v = m v - lr g`` is clipped to ``[-theta, theta]``
    per value before it is applied (and kept as the momentum)."""
    import keras
    from keras import ops

    class UpdateClippedSGD(keras.optimizers.SGD):
        def update_step(self, gradient, variable, learning_rate):
            lr = ops.cast(learning_rate, variable.dtype)
            g = ops.cast(gradient, variable.dtype)
            v = self.momentums[self._get_variable_index(variable)]
            step = ops.clip(self.momentum * v - lr * g, -theta, theta)
            self.assign(v, step)
            self.assign_add(variable, step)

    return UpdateClippedSGD(**kwargs)


def _sample(planes_dir, seed, count, batch_size):
    """``count`` batches of (x, y) float32 from ``PatchSampler`` (the paper's sampling)."""
    import numpy as np

    from vdsr_tf import config as C
    from vdsr_tf.data import degradation

    batches = degradation.PatchSampler(
        degradation.load_y_planes([planes_dir]), C.DataConfig(batch_size=batch_size), seed=seed
    ).batches()
    xs, ys = zip(*(next(batches) for _ in range(count)))
    return np.concatenate(xs), np.concatenate(ys)


def _cached(path, make):
    import numpy as np

    from vdsr_tf.io.atomic import atomic_write

    if not os.path.exists(path):
        x, y = make()
        atomic_write(path, lambda f: np.savez(f, x=x, y=y), suffix=".npz")
    with np.load(path) as f:
        return f["x"], f["y"]


def _psnr(pred, y):
    import numpy as np

    pred = np.asarray(pred, np.float64)
    if not np.all(np.isfinite(pred)):
        return float("nan")
    mse = float(np.mean((np.clip(pred, 0.0, 1.0) - y) ** 2))
    return 10.0 * math.log10(1.0 / mse) if mse > 0 else 99.0


def build(arm, seed):
    """The compiled model of an arm (the seed fixes the initial weights)."""
    import keras

    from vdsr_tf.models.losses import PatchSumMSE
    from vdsr_tf.models.vdsr import build_vdsr
    from vdsr_tf.training.schedule import VDSRSchedule

    keras.utils.set_random_seed(seed)
    init = (
        "he_normal"
        if arm["init"] == "he_normal"
        else keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal")
    )
    in_step = arm["clip_at"] == "gradient"
    model = build_vdsr(
        depth=FLAGS.depth,
        filters=FLAGS.filters,
        clip_theta=arm["theta"] if in_step else None,
        clip_mode=arm["clip_mode"],
        weight_decay=arm["weight_decay"] if arm["decay_at"] == "loss" else 0.0,
        kernel_initializer=init,
        zero_init_residual=arm["zero_last"],
    )
    if not arm["biases"]:
        for layer in model.layers:
            if isinstance(layer, keras.layers.Conv2D):
                layer.bias.trainable = False  # stays at its zero initial value
    warm = round(arm["warmup"] * FLAGS.steps)
    lr = VDSRSchedule(arm["lr"], FLAGS.steps, kind="constant", warmup_steps=warm)
    decay = arm["weight_decay"] if arm["decay_at"] == "optimizer" else None
    if arm["optimizer"] == "adam":
        opt = keras.optimizers.Adam(lr, clipnorm=1.0)
    elif not in_step:
        opt = update_clipped_sgd(
            arm["theta"], learning_rate=lr, momentum=arm["momentum"], weight_decay=decay
        )
    else:
        opt = keras.optimizers.SGD(lr, momentum=arm["momentum"], weight_decay=decay)
    loss = {"patch_sum": PatchSumMSE(), "batch_sum": PatchSumMSE(reduction="sum"), "mse": "mse"}[
        arm["loss"]
    ]
    model.compile(optimizer=opt, loss=loss)
    return model


def run(arm, seed, train, held):
    """Trains one arm for one seed; returns its curve."""
    import keras
    import numpy as np

    x, y = train
    hx, hy = held
    model = build(arm, seed)
    hidden = keras.Model(
        model.input, [model.get_layer(f"conv{i}").output for i in range(1, FLAGS.depth)]
    )
    every = FLAGS.eval_every
    curve = []

    def measure(step, fractions):
        acts = [np.asarray(a, np.float32) for a in hidden(hx[:64])]
        dead = [np.max(a, axis=(0, 1, 2)) <= 0 for a in acts]
        curve.append(
            {
                "step": step,
                "psnr": _psnr(model.predict(hx, batch_size=64, verbose=0), hy),
                "clip_fraction": float(np.mean(fractions)) if fractions else 0.0,
                "dead_relu": float(np.mean(np.concatenate(dead))),
                "dead_relu_last": float(np.mean(dead[-1])),
            }
        )

    class Probe(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.fractions, self.previous = [], 0.0

        def on_train_batch_end(self, batch, logs=None):
            # logs hold the epoch's running mean: recover this step's value.
            mean = float((logs or {}).get("clip_fraction", 0.0))
            self.fractions.append(mean * (batch + 1) - self.previous * batch)
            self.previous = mean
            if (batch + 1) % every == 0:
                measure(batch + 1, self.fractions)
                self.fractions = []
                if not math.isfinite(curve[-1]["psnr"]):
                    self.model.stop_training = True

    measure(0, [])
    t0 = time.time()
    model.fit(
        x,
        y,
        batch_size=FLAGS.batch_size,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[Probe(), keras.callbacks.TerminateOnNaN()],
    )
    diverged = (
        not all(math.isfinite(c["psnr"]) for c in curve) or len(curve) <= FLAGS.steps // every
    )
    return {
        "seed": seed,
        "curve": curve,
        "diverged": diverged,
        "seconds": round(time.time() - t0, 1),
    }


def _cell(runs, i, key="psnr"):
    values = [r["curve"][i][key] if i < len(r["curve"]) else float("nan") for r in runs]
    return stats(values)


def tables(results, bicubic):
    points = [c["step"] for c in next(iter(results.values()))[0]["curve"]]
    head = " | ".join(f"step {p}" for p in points[1:])
    lines = [
        f"Bicubic on the held-out patches: {bicubic:.2f} dB.",
        "",
        f"| # | arm | PSNR at {head} | above bicubic at the end, seeds | clip_fraction, "
        "mean | dead ReLUs at the end: all / last hidden |",
        "|---|---|" + "---|" * (len(points) - 1) + "---|---|---|",
    ]
    for n, (label, _) in enumerate(ARMS, start=1):
        runs = results.get(label)
        if not runs:
            continue
        cells = [fmt(_cell(runs, i)) for i in range(1, len(points))]
        above = sum(1 for r in runs if not r["diverged"] and r["curve"][-1]["psnr"] > bicubic)
        fraction = sum(
            sum(c["clip_fraction"] for c in r["curve"][1:]) / max(len(r["curve"]) - 1, 1)
            for r in runs
        ) / len(runs)
        dead = _cell(runs, len(points) - 1, "dead_relu")
        last = _cell(runs, len(points) - 1, "dead_relu_last")
        dead_cell = (
            "diverged"
            if all(r["diverged"] for r in runs)
            else f"{dead['mean']:.2f} / {last['mean']:.2f}"
        )
        lines.append(
            f"| {n} | {label} | "
            + " | ".join(cells)
            + f" | {above}/{len(runs)} | {fraction:.3f} | {dead_cell} |"
        )
    return lines


def main(argv):
    del argv
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    if FLAGS.steps % FLAGS.eval_every:
        raise app.UsageError("--steps must be a multiple of --eval_every")
    for d in (FLAGS.train_dir, FLAGS.held_dir):
        if not os.path.isdir(d):
            raise app.UsageError(f"no image folder {d} (see --train_dir, --held_dir)")
    import keras

    keras.mixed_precision.set_global_policy(FLAGS.mixed_precision)
    from vdsr_tf.io.atomic import atomic_write_text

    out = FLAGS.output_dir
    os.makedirs(os.path.join(out, "runs"), exist_ok=True)
    chosen = {int(a) for a in FLAGS.arms} if FLAGS.arms else set(range(1, len(ARMS) + 1))
    held = _cached(os.path.join(out, "held.npz"), lambda: _sample(FLAGS.held_dir, 12345, 1, 256))
    bicubic = _psnr(held[0], held[1])
    tag = f"d{FLAGS.depth}f{FLAGS.filters}b{FLAGS.batch_size}n{FLAGS.steps}{FLAGS.mixed_precision}"
    results = {}
    for seed in range(FLAGS.seeds):
        train = None
        for n, (label, changes) in enumerate(ARMS, start=1):
            if n not in chosen:
                continue
            path = os.path.join(out, "runs", f"{tag}-arm{n:02d}-s{seed}.json")
            if not os.path.exists(path):
                if train is None:
                    train = _cached(
                        os.path.join(out, f"train-{tag}-s{seed}.npz"),
                        lambda seed=seed: _sample(
                            FLAGS.train_dir, seed, FLAGS.steps, FLAGS.batch_size
                        ),
                    )
                logging.info("arm %d (%s), seed %d", n, label, seed)
                result = run({**BASE, **changes}, seed, train, held)
                result["arm"] = {**BASE, **changes}
                atomic_write_text(path, json.dumps(result, indent=1))
            with open(path) as f:
                results.setdefault(label, []).append(json.load(f))
    precision = "bf16 compute (mixed_bfloat16)" if "bfloat16" in FLAGS.mixed_precision else "fp32"
    report = [
        f"{FLAGS.depth} x {FLAGS.filters} network (depth x width), {precision}, "
        f"{FLAGS.steps} steps of {FLAGS.batch_size} 41 x 41 T91 patches at lr "
        f"{BASE['lr']:g} (no drop), {FLAGS.seeds} seeds per arm; PSNR (dB) on 256 held-out "
        "BSD200 patches, mean ± half the seed range.",
        "",
    ] + tables(results, bicubic)
    atomic_write_text(os.path.join(out, "study.md"), "\n".join(report) + "\n")
    atomic_write_text(
        os.path.join(out, "study.json"),
        json.dumps(
            {
                "settings": {
                    k: getattr(FLAGS, k)
                    for k in (
                        "depth",
                        "filters",
                        "steps",
                        "batch_size",
                        "eval_every",
                        "seeds",
                        "mixed_precision",
                    )
                },
                "bicubic": bicubic,
                "arms": results,
            },
            indent=1,
        ),
    )
    print("\n".join(report))


if __name__ == "__main__":
    app.run(main)
