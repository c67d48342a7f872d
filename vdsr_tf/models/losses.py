"""Losses of the VDSR recipes.

``PatchSumMSE`` is the paper's (Caffe's ``EuclideanLoss``): half the sum of
squared errors over each patch's pixels, averaged over the batch. Keras's
``"mse"`` averages over the pixels too, which makes every gradient about
``P * P / 2`` times smaller (840x for 41 x 41 patches). The paper's theta/lr
clip was tuned against the summed loss: with ``"mse"`` its bound
``theta / lr`` is never reached (BUILD.md, "The paper's recipe: theta").

Imports without TensorFlow.
"""

import keras
from keras import ops

from vdsr_tf.config import LOSSES

_PACKAGE = "vdsr_tf"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PatchSumMSE(keras.losses.Loss):
    """``0.5 * sum((y_pred - y_true) ** 2)`` over each sample, mean over the batch.

    Args:
        name: the loss name.
        reduction: Keras reduction over the batch; the default
            ``"sum_over_batch_size"`` gives the mean of the per-patch sums.

    Call arguments:
        y_true, y_pred: float, (B, H, W, C), values in about [0, 1].

    Returns:
        float32 scalar (or (B,) per-sample sums with ``reduction=None``).
    Example:

    ```python
    model.compile(optimizer="sgd", loss=vdsr_tf.PatchSumMSE(),
                  metrics=[vdsr_tf.PSNRMetric()])
    ```
    """

    def __init__(self, name="patch_sum_mse", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        y_true = ops.cast(y_true, "float32")
        err = ops.square(y_pred - y_true)
        axes = tuple(range(1, len(err.shape)))
        return 0.5 * ops.sum(err, axis=axes)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


def get_loss(name):
    """The Keras loss for a config name: ``"mse"`` or ``"patch_sum_mse"``."""
    if name == "mse":
        return "mse"
    if name == "patch_sum_mse":
        return PatchSumMSE()
    raise ValueError(f"Unknown loss {name!r}; valid: {list(LOSSES)}")
