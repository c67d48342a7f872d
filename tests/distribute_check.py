"""Trains a few steps single-device or data-parallel and saves the weights.

Usage: python tests/distribute_check.py BACKEND MODES OUT_MODE.npz
BACKEND: tensorflow or jax; MODES: none, data_parallel, or both comma-separated
(each written to OUT with MODE replaced by its name). Two CPU devices are
made visible (TF logical devices; XLA host device count for JAX).
"""

import os
import sys

backend, mode, out = sys.argv[1:4]
os.environ["KERAS_BACKEND"] = backend
if backend == "jax":
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
else:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from vdsr_tf.models.vdsr import build_vdsr  # noqa: E402
from vdsr_tf.training.trainer import distribution_scope  # noqa: E402

rng = np.random.default_rng(0)
x = rng.random((8, 12, 12, 1)).astype("float32")
y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1).astype("float32")
for kind in mode.split(","):  # "none,data_parallel": both runs in this one process
    with distribution_scope(kind) as devices:
        keras.utils.set_random_seed(0)
        # theta/lr = 0.02: the clip binds, so its placement (global vs per replica) matters.
        model = build_vdsr(depth=3, filters=8, clip_theta=0.01, weight_decay=1e-2)
        model.compile(optimizer=keras.optimizers.SGD(0.5, momentum=0.9), loss="mse")
        history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    np.savez(
        out.replace("MODE", kind),
        devices=devices,
        loss=np.array(history.history["loss"]),
        *[np.asarray(w) for w in model.get_weights()],
    )
