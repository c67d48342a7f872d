"""The VDSR paper's adjustable gradient clipping rule.

Kim et al. (CVPR 2016, section 3.2) clip every gradient value to
``[-theta / lr, theta / lr]``. The update of a plain SGD step is ``lr * g``, so
the clip bounds it to ``theta`` per weight whatever the learning rate: that is
what lets the paper start at lr = 0.1.

Pure ``keras.ops`` code: it runs inside the TensorFlow and the JAX train steps
alike, and imports without TensorFlow.
"""

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


def clip_by_lr(grads, lr, theta, loss_scale=1.0):
    """Clips every gradient value to ``[-theta / lr, +theta / lr]``.

    Args:
        grads: list of gradient tensors (any shapes, float dtypes); ``None``
            entries are passed through.
        lr: the optimizer's learning rate at the current step, > 0.
        theta: the paper's clip parameter (0.01 in its recipe), > 0.
        loss_scale: factor by which ``grads`` are scaled (mixed-precision loss
            scaling); the bound is scaled with it so that the clip applies to
            the true gradient.

    Returns:
        A list of tensors of the same shapes and dtypes as ``grads``.
    """
    bound = clip_bound(lr, theta) * ops.cast(loss_scale, "float32")
    clipped = []
    for g in grads:
        if g is None:
            clipped.append(None)
            continue
        b = ops.cast(bound, g.dtype)
        clipped.append(ops.clip(g, -b, b))
    return clipped
