"""fit under KERAS_BACKEND=jax with TensorFlow made unimportable.

Trains a tiny model from the TF-free PatchSampler and prints one JSON line
with the data loss before and after. Run by tests/test_jax_backend.py.
"""

import json
import os
import sys

if os.environ.get("KERAS_BACKEND") != "jax":
    raise SystemExit("run with KERAS_BACKEND=jax")
sys.modules["tensorflow"] = None  # any TF import now raises ImportError

import keras  # noqa: E402
import numpy as np  # noqa: E402

from vdsr_tf import config  # noqa: E402
from vdsr_tf.data import degradation
from vdsr_tf.evaluation.benchmark import evaluate_set  # noqa: E402
from vdsr_tf.inference.upscaler import Upscaler  # noqa: E402
from vdsr_tf.io import images as imageio
from vdsr_tf.training import trainer

if __name__ == "__main__":
    cfg = config.override(
        config.get_preset("paper"),
        **{
            "model.depth": 3,
            "model.filters": 8,
            "data.patch_size": 24,
            "data.batch_size": 8,
            "data.shuffle_buffer": 32,
            "optim.optimizer": "adam",
            "optim.learning_rate": 1e-3,
            "optim.schedule": "constant",
            "optim.warmup_fraction": 0.0,
            "steps": 60,
        },
    )
    planes = degradation.load_y_planes(os.path.join(imageio.sample_images_dir(), "HR"))
    held = next(degradation.PatchSampler(planes, cfg.data, seed=99).batches())
    keras.utils.set_random_seed(0)
    model = trainer.build_model(cfg)

    def mse():
        return float(np.mean((np.asarray(model(held[0])) - held[1]) ** 2))

    before = mse()
    history = model.fit(
        degradation.PatchSampler(planes, cfg.data, seed=0).batches(),
        steps_per_epoch=60,
        epochs=1,
        verbose=0,
    )
    # Evaluation runs TF-free too (the GPU machine scores its own runs).
    tiled = Upscaler(model=model, tile=48).predict_y(held[0][0, :, :, 0])
    whole = np.asarray(model(held[0][:1]))[0, :, :, 0]
    score = evaluate_set(Upscaler(model=model), imageio.sample_images_dir(), 2)["psnr"]
    print(
        json.dumps(
            {
                "backend": keras.backend.backend(),
                "before": before,
                "after": mse(),
                "tile_diff": float(np.abs(tiled - whole).max()),
                "val_psnr_x2": score,
                "psnr": history.history["psnr"][-1],
                "tf_loaded": sys.modules.get("tensorflow") is not None,
            }
        )
    )
