"""The adaptive-clip acceptance check, run in a fresh process per backend.

Usage: KERAS_BACKEND=jax python tests/clip_check.py
Prints one JSON line. TensorFlow is made unimportable under JAX, which
also proves that the training modules do not need it.
"""

import json
import os
import sys

if os.environ.get("KERAS_BACKEND") == "jax":
    sys.modules["tensorflow"] = None  # any TF import now raises ImportError

import keras  # noqa: E402
import numpy as np  # noqa: E402

from vdsr_tf.models.vdsr import build_vdsr  # noqa: E402


def max_change(theta, lr, clip=True, schedule=None, mode="value"):
    """Two plain-SGD steps on inputs with huge gradients; per step, max |dw|
    (``mode="value"``) or the L2 norm of dw over all weights (``"norm"``)."""
    keras.utils.set_random_seed(0)
    model = build_vdsr(
        depth=3, filters=8, clip_theta=theta if clip else None, weight_decay=0, clip_mode=mode
    )
    model.compile(optimizer=keras.optimizers.SGD(schedule or lr, momentum=0.0), loss="mse")
    rng = np.random.default_rng(0)
    x = (rng.random((4, 16, 16, 1)) * 100).astype("float32")
    y = -x
    changes = []
    for _ in range(2):
        before = [np.array(w) for w in model.get_weights()]
        model.train_on_batch(x, y)
        after = model.get_weights()
        if mode == "norm":
            changes.append(
                float(
                    np.sqrt(
                        sum(np.sum((a.astype(np.float64) - b) ** 2) for a, b in zip(after, before))
                    )
                )
            )
        else:
            changes.append(max(float(np.abs(a - b).max()) for a, b in zip(after, before)))
    return changes


if __name__ == "__main__":
    theta = 0.01
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([1], [0.01, 1.0])
    result = {
        "backend": keras.backend.backend(),
        "clipped": max_change(theta, 0.5),
        "unclipped": max_change(theta, 0.5, clip=False),
        "scheduled": max_change(theta, None, schedule=schedule),
        "norm_clipped": max_change(theta, 0.5, mode="norm"),
        "norm_unclipped": max_change(theta, 0.5, clip=False, mode="norm"),
        "norm_scheduled": max_change(theta, None, schedule=schedule, mode="norm"),
    }
    print(json.dumps(result))
