"""vdsr-train's library entry on the JAX backend with TensorFlow unimportable,
as on the GPU machine: trains from a packed .npz, is interrupted by its time
budget, resumes, and finishes. Prints one JSON line.

Usage: KERAS_BACKEND=jax python tests/jax_train_check.py PACK.npz OUT_DIR
"""

import json
import os
import sys

if os.environ.get("KERAS_BACKEND") != "jax":
    raise SystemExit("run with KERAS_BACKEND=jax")
sys.modules["tensorflow"] = None  # any TF import now raises ImportError

from vdsr_tf import config  # noqa: E402
from vdsr_tf.io.checkpoint import read_state  # noqa: E402
from vdsr_tf.io.images import sample_images_dir  # noqa: E402
from vdsr_tf.training.trainer import train  # noqa: E402

pack, out = sys.argv[1:3]
cfg = config.override(
    config.get_preset("paper"),
    **{
        "model.depth": 3,
        "model.filters": 8,
        "data.patch_size": 24,
        "data.batch_size": 8,
        "data.shuffle_buffer": 32,
        "steps": 6,
        "steps_per_epoch": 2,
    },
)
_, first = train(cfg, pack, out, val_dir=sample_images_dir(), verbose=0, time_budget_s=1e-3)
meta = read_state(os.path.join(out, "checkpoint.npz"))[0]
after_first = {"epoch": meta["epoch"], "step": meta["step"]}
model, second = train(cfg, pack, out, val_dir=sample_images_dir(), verbose=0)
print(
    json.dumps(
        {
            "first_epochs": len(first.history["loss"]),
            "after_first": after_first,
            "second_epochs": len(second.history["loss"]),
            "val_psnr_x2": second.history["val_psnr_x2"][-1],
            "final_weights": os.path.exists(os.path.join(out, "vdsr.weights.h5")),
            "tf_loaded": sys.modules.get("tensorflow") is not None,
        }
    )
)
