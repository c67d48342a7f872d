"""The VDSR paper's adjustable gradient clipping rule, and its global-norm variant.

Kim et al. (CVPR 2016, section 3.2) clip every gradient value to
``[-theta / lr, theta / lr]``. The update of a plain SGD step is ``lr * g``, so
the clip bounds it to ``theta`` per weight whatever the learning rate: that is
what lets the paper start at lr = 0.1. The paper does not state theta; with
momentum 0.9 the bound on the update grows to ``theta / (1 - 0.9) = 10 theta``
per weight, which must stay well below the weights themselves (He init: about
0.06). theta = 0.01 and 1e-3 kill most ReLUs within 50 steps and the network
returns its input; 1e-4 (``build_vdsr``'s default) trains: BUILD.md ("The
paper's recipe: theta").

Two modes:

* ``"value"`` (the paper's rule): every gradient value is clipped to
  ``[-theta / lr, theta / lr]``;
* ``"norm"``: the whole gradient (all tensors together) is scaled down to a
  global L2 norm of at most ``theta / lr``, which bounds the step's norm to
  ``theta`` (caffe-vdsr's and pytorch-vdsr's kind of clip, with an adaptive
  bound).

Pure ``keras.ops`` code: it runs inside the TensorFlow and the JAX train steps
alike, and imports without TensorFlow.
"""

import math

from keras import ops

from vdsr_tf.config import CLIP_MODES


def clip_bound(lr, theta):
    """The clip bound ``theta / lr``.

    Args:
        lr: scalar learning rate (Python float or backend scalar), > 0.
        theta: scalar clip parameter, > 0.

    Returns:
        A float32 backend scalar.
    """
    return ops.cast(theta, "float32") / ops.cast(lr, "float32")


def global_norm(grads):
    """The L2 norm of all ``grads`` together (``None`` entries skipped), float32."""
    total = ops.convert_to_tensor(0.0, "float32")
    for g in grads:
        if g is not None:
            total = total + ops.sum(ops.square(ops.cast(g, "float32")))
    return ops.sqrt(total)


def clip_by_lr(grads, lr, theta, loss_scale=1.0, return_fraction=False, mode="value"):
    """Clips the gradient to the bound ``theta / lr``, per value or by global norm.

    Args:
        grads: list of gradient tensors (any shapes, float dtypes); ``None``
            entries are passed through.
        lr: the optimizer's learning rate at the current step, > 0.
        theta: the clip parameter, > 0: the largest step ``lr * g`` that
            the clip lets through, per value (``"value"``) or as a global
            L2 norm (``"norm"``).
        loss_scale: factor by which ``grads`` are scaled (mixed-precision loss
            scaling); the bound is scaled with it so that the clip applies to
            the true gradient.
        return_fraction: also return the share the clip cut, a float32
            scalar in [0, 1]: for ``"value"`` the fraction of gradient values
            beyond the bound, for ``"norm"`` 1.0 when the global norm was
            beyond it (every value is then scaled down), else 0.0.
        mode: ``"value"`` (the paper's rule) or ``"norm"``.

    Returns:
        A list of tensors of the same shapes and dtypes as ``grads``, and the
        clipped fraction when ``return_fraction``.

    Raises:
        ValueError: for an unknown ``mode``.
    """
    if mode not in CLIP_MODES:
        raise ValueError(f"Unknown clip mode {mode!r}; valid: {list(CLIP_MODES)}")
    bound = clip_bound(lr, theta) * ops.cast(loss_scale, "float32")
    if mode == "norm":
        norm = global_norm(grads)
        factor = ops.minimum(1.0, bound / ops.maximum(norm, 1e-30))
        clipped = [None if g is None else g * ops.cast(factor, g.dtype) for g in grads]
        if return_fraction:
            return clipped, ops.cast(norm > bound, "float32")
        return clipped
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
