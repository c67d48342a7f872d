"""The VDSR paper's adjustable gradient clipping rule.

Kim et al. (CVPR 2016, section 3.2) clip every gradient value to
``[-theta / lr, theta / lr]``. The update of a plain SGD step is ``lr * g``, so
the clip bounds it to ``theta`` per weight whatever the learning rate: that is
what lets the paper start at lr = 0.1.

Pure ``keras.ops`` code: it runs inside the TensorFlow and the JAX train steps
alike, and imports without TensorFlow.
"""

import math

from keras import ops


def clip_bound(lr, theta):
    """The clip bound ``theta / lr``.

    Args:
        lr: scalar learning rate (Python float or backend scalar), > 0.
        theta: scalar clip parameter, > 0.

    Returns:
        A float32 backend scalar.
    """
    return ops.cast(theta, "float32") / ops.cast(lr, "float32")


def clip_by_lr(grads, lr, theta, loss_scale=1.0, return_fraction=False):
    """Clips every gradient value to ``[-theta / lr, +theta / lr]``.

    Args:
        grads: list of gradient tensors (any shapes, float dtypes); ``None``
            entries are passed through.
        lr: the optimizer's learning rate at the current step, > 0.
        theta: the paper's clip parameter (0.01 in its recipe), > 0.
        loss_scale: factor by which ``grads`` are scaled (mixed-precision loss
            scaling); the bound is scaled with it so that the clip applies to
            the true gradient.
        return_fraction: also return the fraction of gradient values that
            the bound cut (|g| > theta / lr), a float32 scalar in [0, 1].

    Returns:
        A list of tensors of the same shapes and dtypes as ``grads``, and the
        clipped fraction when ``return_fraction``.
    """
    bound = clip_bound(lr, theta) * ops.cast(loss_scale, "float32")
    clipped = []
    cut = ops.convert_to_tensor(0.0, "float32")
    total = 0
    for g in grads:
        if g is None:
            clipped.append(None)
            continue
        b = ops.cast(bound, g.dtype)
        clipped.append(ops.clip(g, -b, b))
        if return_fraction:
            cut = cut + ops.sum(ops.cast(ops.abs(g) > b, "float32"))
            total += math.prod(g.shape)
    if return_fraction:
        return clipped, cut / float(max(total, 1))
    return clipped
