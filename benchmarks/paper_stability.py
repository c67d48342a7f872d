"""Why SGD at lr 0.1 with the theta/lr clip diverged, and what fixes it.

    python benchmarks/paper_stability.py [--steps=100] [--batch_size=16]

Runs the paper network (20 x 64, He init, weight decay 1e-4) with SGD momentum
0.9 for a few steps under several variants of the paper recipe and prints, for
each: the fraction of gradient values that the theta/lr clip cuts at step 0,
the peak data MSE on a fixed held-out batch, the final one, and the fraction
of dead ReLU units (never positive on that batch) in the last hidden layer.
Uses the package's own trainer pieces (build_model, make_dataset, fit).
"""

import json
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "datasets", "train")
flags.DEFINE_list("data", [os.path.join(_ROOT, "T91"), os.path.join(_ROOT, "BSD200")], "Image folders.")
flags.DEFINE_integer("steps", 100, "Steps per variant.")
flags.DEFINE_integer("batch_size", 16, "Patches per step.")
flags.DEFINE_string("json", None, "Also write the rows here.")

VARIANTS = {
    "paper: lr 0.1, clip, no warm-up": {},
    "lr 0.1, no clip, no warm-up": {"model.clip_theta": "none"},
    "lr 0.1, clip, zero-init last layer": {"model.zero_init_residual": "true"},
    "lr 0.1, clip, 20% linear warm-up": {"optim.warmup_fraction": 0.2},
    "lr 0.01, clip, no warm-up": {"optim.learning_rate": 0.01},
}


def run_variant(updates, held):
    import keras
    import numpy as np

    from vdsr_tf import config as C
    from vdsr_tf.clipping import clip_bound
    from vdsr_tf.data import make_dataset
    from vdsr_tf.train import build_model

    base = {"steps": FLAGS.steps, "data.batch_size": FLAGS.batch_size,
            "optim.warmup_fraction": 0.0, "optim.schedule": "constant"}
    cfg = C.override(C.get_preset("paper"), **{**base, **updates})
    keras.utils.set_random_seed(0)
    model = build_model(cfg)
    x, y = held

    def data_mse():
        return float(np.mean((np.asarray(model(x)) - y) ** 2))

    import tensorflow as tf

    with tf.GradientTape() as tape:
        mse = tf.reduce_mean((model(x, training=True) - y) ** 2)
    grads = tape.gradient(mse, model.trainable_weights)
    bound = float(clip_bound(cfg.optim.learning_rate * (cfg.optim.warmup_start if cfg.optim.warmup_fraction else 1.0), 0.01))
    clipped = float(sum(np.sum(np.abs(g.numpy()) > bound) for g in grads) /
                    sum(g.numpy().size for g in grads))
    curve = [data_mse()]

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if (batch + 1) % 10 == 0:
                curve.append(data_mse())

    model.fit(make_dataset(FLAGS.data, cfg.data, seed=0), steps_per_epoch=FLAGS.steps, epochs=1,
              verbose=0, shuffle=False, callbacks=[Probe()])
    hidden = keras.Model(model.input, model.get_layer(f"conv{cfg.model.depth - 1}").output)
    dead = float(np.mean(np.max(np.asarray(hidden(x)), axis=(0, 1, 2)) <= 0))
    bicubic = float(np.mean((x - y) ** 2))
    return {"clipped_at_step0": clipped, "mse_start": curve[0], "mse_peak": max(curve),
            "mse_end": curve[-1], "bicubic_mse": bicubic, "dead_relu_last_hidden": dead,
            "curve": curve}


def main(argv):
    del argv
    from vdsr_tf import config as C
    from vdsr_tf.data import make_dataset

    cfg = C.override(C.get_preset("paper"), **{"data.batch_size": 64})
    x, y = next(iter(make_dataset(FLAGS.data, cfg.data, seed=12345)))
    held = (x.numpy(), y.numpy())
    rows = {}
    print(f"| variant ({FLAGS.steps} steps, batch {FLAGS.batch_size}) | clipped at step 0 | "
          "MSE start | MSE peak | MSE end | bicubic MSE | dead ReLUs |\n|---|---|---|---|---|---|---|")
    for name, updates in VARIANTS.items():
        r = run_variant(updates, held)
        rows[name] = r
        print(f"| {name} | {r['clipped_at_step0']:.4f} | {r['mse_start']:.3g} | {r['mse_peak']:.3g} | "
              f"{r['mse_end']:.3g} | {r['bicubic_mse']:.3g} | {r['dead_relu_last_hidden']:.2f} |",
              flush=True)
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    app.run(main)
