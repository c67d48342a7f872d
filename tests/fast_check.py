"""Checks of the fast engine, run in a fresh process with KERAS_BACKEND=jax and
TensorFlow made unimportable (as on the GPU machine). Prints one JSON line.

Usage: KERAS_BACKEND=jax python tests/fast_check.py CHECK [ARGS...]
  equivalence OPTIMIZER [MODE]  fast engine vs train_on_batch on the same batches
  resume OUT_DIR          a run killed after epoch 2 resumes bit for bit
  pool                    device batches are crops of the degraded images
  forward                 bucketed, masked inference equals the plain call
"""

import json
import os
import sys

if os.environ.get("KERAS_BACKEND") != "jax":
    raise SystemExit("run with KERAS_BACKEND=jax")
sys.modules["tensorflow"] = None  # any TF import now raises ImportError

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from vdsr_tf import config as C  # noqa: E402
from vdsr_tf.data import degradation  # noqa: E402
from vdsr_tf.inference import jax_forward
from vdsr_tf.io import images as imageio
from vdsr_tf.ops import dihedral
from vdsr_tf.training import jax_engine
from vdsr_tf.training.trainer import build_model, train  # noqa: E402

HR = os.path.join(imageio.sample_images_dir(), "HR")


def tiny(**updates):
    base = {
        "model.depth": 3,
        "model.filters": 8,
        "data.patch_size": 24,
        "data.batch_size": 4,
        "steps": 6,
        "steps_per_epoch": 2,
        "optim.warmup_fraction": 0.0,
    }
    base.update(updates)
    return C.override(C.get_preset("paper"), **base)


def equivalence(optimizer, clip_mode="value"):
    # The paper's summed loss with SGD at lr 0.1 makes the theta/lr clip bind
    # (per value, or by global norm); Adam at lr 1e-3 with theta 1e-4 as well.
    updates = {
        "optim.optimizer": optimizer,
        "optim.schedule": "constant",
        "model.clip_mode": clip_mode,
    }
    if optimizer == "adam":
        updates.update({"optim.learning_rate": 1e-3, "model.clip_theta": 1e-4})
    if clip_mode == "norm":
        # A global-norm bound of theta per step: 0.01, so that 6 steps move the
        # weights measurably (at the default 1e-4 they move < 1e-3 in all).
        updates["model.clip_theta"] = 0.01
    cfg = tiny(**updates)
    pool = jax_engine.DevicePool(degradation.load_y_planes(HR), cfg.data, workers=1)
    b, n = cfg.data.batch_size, 3
    keras.utils.set_random_seed(0)
    fast_model = build_model(cfg)
    initial = [np.array(w) for w in fast_model.get_weights()]
    jax_engine.build_for_training(fast_model, b, pool.patch_size)
    traces = []
    step_fn = jax_engine.make_multi_step(fast_model, pool, b, n, on_trace=lambda: traces.append(1))
    key = jax.random.key(7)
    state = jax_engine.get_state(fast_model)
    fractions = []
    for _ in range(2):  # two calls of the same shape: one trace
        state, key, logs = step_fn(state, key, pool.arrays)
        fractions.append(float(logs["clip_fraction"]))
    jax_engine.set_state(fast_model, state)
    # The same batches, drawn with the same keys, through Keras's own
    # train_on_batch (which calls the same train_step one step at a time).
    keras.utils.set_random_seed(0)
    ref = build_model(cfg)
    key = jax.random.key(7)
    for _ in range(2 * n):
        key, sub = jax.random.split(key)
        x, y = pool.sample(pool.arrays, sub, b)
        ref.train_on_batch(np.asarray(x), np.asarray(y))
    diffs = [
        float(np.abs(np.asarray(a) - np.asarray(r)).max())
        for a, r in zip(fast_model.weights, ref.weights)
    ]
    moved = [float(np.abs(np.asarray(a) - r).max()) for a, r in zip(fast_model.weights, initial)]
    return {
        "traces": len(traces),
        "max_diff": max(diffs),
        "max_moved": max(moved),
        "clip_fraction": fractions,
        "steps": int(np.asarray(fast_model.optimizer.iterations)),
        "ref_steps": int(np.asarray(ref.optimizer.iterations)),
    }


class _Crash(Exception):
    pass


class _CrashAfter(keras.callbacks.Callback):
    def __init__(self, epochs, record):
        super().__init__()
        self.epochs, self.record = epochs, record

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:  # after the checkpoint callback ran
            self.record["weights"] = [np.array(w) for w in self.model.get_weights()]
            self.record["opt"] = [np.array(v) for v in self.model.optimizer.variables]
            raise _Crash()


class _AtStart(keras.callbacks.Callback):
    def __init__(self, record):
        super().__init__()
        self.record = record

    def on_train_begin(self, logs=None):
        self.record["weights"] = [np.array(w) for w in self.model.get_weights()]
        self.record["opt"] = [np.array(v) for v in self.model.optimizer.variables]
        self.record["step"] = int(np.asarray(self.model.optimizer.iterations))

    def on_epoch_begin(self, epoch, logs=None):
        self.record.setdefault("epochs", []).append(epoch)


def resume(out):
    cfg = tiny()
    crashed, resumed = {}, {}
    try:
        train(
            cfg,
            HR,
            out,
            engine="fast",
            steps_per_call=2,
            verbose=0,
            pool_workers=1,
            extra_callbacks=[_CrashAfter(2, crashed)],
        )
    except _Crash:
        pass
    from vdsr_tf.io.checkpoint import read_state

    meta = read_state(os.path.join(out, "checkpoint.npz"))[0]
    model, history = train(
        cfg,
        HR,
        out,
        engine="fast",
        steps_per_call=2,
        verbose=0,
        pool_workers=1,
        extra_callbacks=[_AtStart(resumed)],
    )
    same_weights = all(np.array_equal(a, b) for a, b in zip(crashed["weights"], resumed["weights"]))
    same_opt = all(np.array_equal(a, b) for a, b in zip(crashed["opt"], resumed["opt"]))
    return {
        "checkpoint_step": meta["step"],
        "checkpoint_epoch": meta["epoch"],
        "resumed_step": resumed["step"],
        "resumed_epochs": resumed["epochs"],
        "same_weights": same_weights,
        "same_optimizer": same_opt,
        "final_step": int(np.asarray(model.optimizer.iterations)),
        "history_rows": len(open(os.path.join(out, "history.csv")).read().splitlines()),
        "final_weights": os.path.exists(os.path.join(out, "vdsr.weights.h5")),
    }


class _SignalAtEpoch(keras.callbacks.Callback):
    """SIGTERM to this process as epoch ``epoch`` begins (after the checkpoint
    callback's check), so the engine stops after that epoch's first call."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            import signal

            os.kill(os.getpid(), signal.SIGTERM)


def preempt(out):
    """SIGTERM inside an epoch: the checkpoint at the current call's step, exit
    by ``Preempted``; the resumed run ends with the uninterrupted run's weights."""
    from vdsr_tf.io.checkpoint import read_state
    from vdsr_tf.training.callbacks import Preempted

    cfg = tiny(steps=12, steps_per_epoch=6)
    options = dict(engine="fast", steps_per_call=2, verbose=0, pool_workers=1)
    plain, _ = train(cfg, HR, out + "_plain", **options)
    stopped = None
    try:
        train(cfg, HR, out, extra_callbacks=[_SignalAtEpoch(1)], **options)
    except Preempted as e:
        stopped = e.step
    meta = read_state(os.path.join(out, "checkpoint.npz"))[0]
    resumed = {}
    model, _ = train(cfg, HR, out, extra_callbacks=[_AtStart(resumed)], **options)
    diff = max(
        float(np.abs(np.asarray(a) - np.asarray(b)).max())
        for a, b in zip(model.weights, plain.weights)
    )
    return {
        "stopped_step": stopped,
        "checkpoint": [meta["epoch"], meta["step"]],
        "resumed_step": resumed["step"],
        "resumed_epochs": resumed["epochs"],
        "final_step": int(np.asarray(model.optimizer.iterations)),
        "max_diff_vs_uninterrupted": diff,
        "history_epochs": [
            line.split(",")[0]
            for line in open(os.path.join(out, "history.csv")).read().splitlines()[1:]
        ],
    }


def pool_check():
    """Every device batch is a crop of a degraded image, flipped/rotated alike in x and y."""
    plane = degradation.load_y_planes(HR)[0][:40, :44]
    cfg = C.DataConfig(patch_size=16, scales=(3,), downsize=(1.0,))
    pool = jax_engine.DevicePool([plane], cfg, workers=1)
    x_full, y_full = degradation.degraded_pair(plane, 1.0, 3, 16)
    xs, ys = pool.sample(pool.arrays, jax.random.key(3), 24)
    xs, ys = np.asarray(xs)[..., 0], np.asarray(ys)[..., 0]
    found, ks = 0, set()
    h, w = x_full.shape
    for xp, yp in zip(xs, ys):
        hit = False
        for t in range(h - 15):
            for l in range(w - 15):
                for k in range(8):
                    cx = dihedral.dihedral(x_full[t : t + 16, l : l + 16, None], k)[..., 0]
                    if np.array_equal(cx.astype(np.float16).astype(np.float32), xp):
                        cy = dihedral.dihedral(y_full[t : t + 16, l : l + 16, None], k)[..., 0]
                        if np.array_equal(cy, yp):
                            hit = True
                            ks.add(k)
                            break
                if hit:
                    break
            if hit:
                break
        found += hit
    return {"patches": len(xs), "found": found, "dihedrals": len(ks), "variants": pool.variants}


def forward_check():
    from vdsr_tf.models.vdsr import build_vdsr

    keras.utils.set_random_seed(1)
    model = build_vdsr(depth=4, filters=8)
    forward = jax_forward.jax_forward(model, multiple=32)
    rng = np.random.default_rng(0)
    diffs = []
    for h, w in ((37, 50), (60, 33), (64, 64)):
        x = rng.random((1, h, w, 1)).astype(np.float32)
        diffs.append(float(np.abs(forward(x) - np.asarray(model(x))).max()))
    return {"max_diff": max(diffs)}


if __name__ == "__main__":
    check = sys.argv[1]
    if check == "equivalence":
        result = equivalence(*sys.argv[2:4])
    elif check == "resume":
        result = resume(sys.argv[2])
    elif check == "preempt":
        result = preempt(sys.argv[2])
    elif check == "pool":
        result = pool_check()
    elif check == "forward":
        result = forward_check()
    elif check == "all":  # every check in this one process (one JAX start-up for the suite)
        result = {
            "equivalence_sgd": equivalence("sgd"),
            "equivalence_adam": equivalence("adam"),
            "equivalence_sgd_norm": equivalence("sgd", "norm"),
            "pool": pool_check(),
            "forward": forward_check(),
            "resume": resume(sys.argv[2]),
            "preempt": preempt(sys.argv[2] + "_preempt"),
        }
    else:
        raise SystemExit(f"unknown check {check}")
    result["tf_loaded"] = sys.modules.get("tensorflow") is not None
    result["backend"] = keras.backend.backend()
    print(json.dumps(result))
