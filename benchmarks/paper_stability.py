"""Does the paper's recipe (SGD at lr 0.1, the theta/lr clip, the summed loss) train?

    python benchmarks/paper_stability.py [--steps=100] [--batch_size=16]

Runs the paper network (20 x 64, He init, weight decay 1e-4) with SGD momentum
0.9 for a few steps under several variants of the paper recipe and prints, for
each: the fraction of gradient values that the theta/lr clip would cut at
step 0 at the first learning rate and at lr 0.1, the mean fraction it did cut
during the run (``clip_fraction``), the peak data MSE on a fixed held-out
batch, the final one, and the fraction of dead ReLU units (never positive on
that batch) in the last hidden layer. The paper preset uses the paper's loss
(``PatchSumMSE``, half the sum over each patch); "mean MSE" rows use Keras's
per-pixel mean, as this project did before.
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
flags.DEFINE_list("variants", None, "Run only these rows (by number, from 1).")

VARIANTS = {
    "paper: summed loss, lr 0.1, clip, no warm-up": {},
    "summed loss, lr 0.1, no clip": {"model.clip_theta": "none"},
    "summed loss, lr 0.1, clip, 2% warm-up (preset)": {"optim.warmup_fraction": 0.02},
    "summed loss, lr 0.1, clip, 20% warm-up": {"optim.warmup_fraction": 0.2},
    "mean MSE, lr 0.1, clip, no warm-up": {"optim.loss": "mse"},
    "summed loss, lr 0.01, clip, no warm-up": {"optim.learning_rate": 0.01},
    "summed loss, lr 0.1, clip, zero-init last layer": {"model.zero_init_residual": "true"},
    "summed loss, lr 0.1, clip theta 0.001, 2% warm-up": {"model.clip_theta": 0.001,
                                                          "optim.warmup_fraction": 0.02},
    "summed loss, lr 0.1, clip, 2% warm-up, no momentum": {"optim.momentum": 0.0,
                                                           "optim.warmup_fraction": 0.02},
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
        pred = model(x, training=True)
        loss = model.compute_loss(x=x, y=y, y_pred=pred, training=True)
    grads = [g.numpy() for g in tape.gradient(loss, model.trainable_weights)]
    lr0 = float(model.optimizer.learning_rate)  # step 0 (the warm-up's start)

    def cut(lr):
        bound = float(clip_bound(lr, cfg.model.clip_theta or 0.01))
        return float(sum(np.sum(np.abs(g) > bound) for g in grads) / sum(g.size for g in grads))

    curve = [data_mse()]

    class Probe(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if (batch + 1) % 10 == 0:
                curve.append(data_mse())

    history = model.fit(make_dataset(FLAGS.data, cfg.data, seed=0), steps_per_epoch=FLAGS.steps,
                        epochs=1, verbose=0, shuffle=False, callbacks=[Probe()])
    hidden = keras.Model(model.input, model.get_layer(f"conv{cfg.model.depth - 1}").output)
    dead = float(np.mean(np.max(np.asarray(hidden(x)), axis=(0, 1, 2)) <= 0))
    bicubic = float(np.mean((x - y) ** 2))
    return {"clipped_at_step0": cut(lr0), "clipped_at_lr_0.1": cut(0.1),
            "clip_fraction_mean": history.history["clip_fraction"][-1],
            "mse_start": curve[0], "mse_peak": max(curve),
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
          "at lr 0.1 | clipped in the run | MSE start | MSE peak | MSE end | bicubic MSE | "
          "dead ReLUs |\n|---|---|---|---|---|---|---|---|---|")
    chosen = [int(v) for v in FLAGS.variants] if FLAGS.variants else range(1, len(VARIANTS) + 1)
    for i, (name, updates) in enumerate(VARIANTS.items(), start=1):
        if i not in chosen:
            continue
        r = run_variant(updates, held)
        rows[name] = r
        print(f"| {name} | {r['clipped_at_step0']:.4f} | {r['clipped_at_lr_0.1']:.4f} | "
              f"{r['clip_fraction_mean']:.4f} | {r['mse_start']:.3g} | {r['mse_peak']:.3g} | "
              f"{r['mse_end']:.3g} | {r['bicubic_mse']:.3g} | {r['dead_relu_last_hidden']:.2f} |",
              flush=True)
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    app.run(main)
