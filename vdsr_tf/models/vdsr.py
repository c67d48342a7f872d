"""The VDSR network and its Keras model class with the adaptive-clipping step.

``build_vdsr`` returns a functional model: ``depth`` 3x3 convolutions with no
pooling, ``depth - 1`` of them with ``filters`` channels and ReLU, the last one
to 1 channel with no activation, and a final ``Add`` of the input (the skip
connection). The model maps a bicubic-upscaled Y image to the super-resolved Y
image. Its ``train_step`` clips every gradient value to ``theta / lr`` before
the optimizer update (``vdsr_tf.models.clipping``), on the TensorFlow and on the JAX
backend.

This module imports without TensorFlow (it is used on a JAX-only GPU machine).
"""

import keras
from keras import ops

from vdsr_tf.models.clipping import CLIP_MODES, clip_by_lr

_PACKAGE = "vdsr_tf"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class VDSR(keras.Model):
    """A functional Keras model whose ``train_step`` applies the theta/lr clip.

    Build it with ``build_vdsr``. ``clip_theta=None`` (or 0) disables the
    clip, which gives Keras's own train step.

    Args:
        clip_theta: the clip parameter theta (> 0), or None for no clipping.
        clip_mode: ``"value"`` (the paper's rule: every gradient value to
            ``[-theta/lr, theta/lr]``) or ``"norm"`` (the global gradient
            norm to at most ``theta/lr``); see ``vdsr_tf.models.clipping``.
        *args, **kwargs: the functional ``keras.Model`` arguments
            (``inputs``, ``outputs``, ``name``).
    Example:

    ```python
    model = vdsr_tf.build_vdsr()  # a VDSR: 20 x 64, the theta/lr clip in train_step
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=vdsr_tf.PatchSumMSE())
    model.fit(vdsr_tf.patch_dataset("images/"), steps_per_epoch=100, epochs=10)
    ```
    """

    def __init__(self, *args, clip_theta=1e-4, clip_mode="value", **kwargs):
        super().__init__(*args, **kwargs)
        if clip_theta is not None and clip_theta < 0:
            raise ValueError(f"clip_theta must be >= 0 or None, got {clip_theta}")
        if clip_mode not in CLIP_MODES:
            raise ValueError(f"clip_mode must be one of {list(CLIP_MODES)}, got {clip_mode!r}")
        self.clip_theta = float(clip_theta) if clip_theta else None
        self.clip_mode = clip_mode
        # Fraction of gradient values the theta/lr bound cut, averaged over
        # the epoch's steps (0 without a clip): is the paper's clip acting?
        self.clip_fraction_tracker = keras.metrics.Mean(name="clip_fraction")

    def get_config(self):
        config = super().get_config()
        config["clip_theta"] = self.clip_theta
        config["clip_mode"] = self.clip_mode
        return config

    # -- the adaptive clip --------------------------------------------------
    def _clip(self, grads, lr):
        """``clip_by_lr`` with this model's theta: ``(grads, clipped_fraction)``."""
        if not self.clip_theta:
            return grads, ops.convert_to_tensor(0.0, "float32")
        scale = 1.0
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            scale = self.optimizer.scale_loss(1.0)
        return clip_by_lr(
            grads, lr, self.clip_theta, loss_scale=scale, return_fraction=True, mode=self.clip_mode
        )

    def train_step(self, *args):
        """One optimisation step: loss, theta/lr clip of every gradient, update.

        On the JAX backend the signature is Keras's stateless
        ``train_step(state, data) -> (logs, state)``; on TensorFlow it is
        ``train_step(data) -> logs``.
        """
        if keras.backend.backend() == "jax":
            return self._jax_train_step(*args)
        if keras.backend.backend() == "tensorflow":
            return self._tf_train_step(*args)
        raise NotImplementedError(
            "VDSR.train_step supports the tensorflow and jax backends, not "
            f"{keras.backend.backend()!r}."
        )

    def _tf_train_step(self, data):
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            scaled_loss = self.optimizer.scale_loss(loss)
        weights = self.trainable_weights
        grads = tape.gradient(scaled_loss, weights)
        if replicas > 1:
            # Clip the global gradient, not each replica's share: sum over
            # replicas first, then hand the optimizer 1/N of the clipped sum
            # (its own all-reduce adds the N shares back up).
            ctx = tf.distribute.get_replica_context()
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            grads, fraction = self._clip(grads, self.optimizer.learning_rate)
            grads = [g / replicas for g in grads]
        else:
            grads, fraction = self._clip(grads, self.optimizer.learning_rate)
        self.optimizer.apply(grads, weights)
        self.clip_fraction_tracker.update_state(fraction)
        for metric in self.metrics:
            if metric.name == "loss":
                # Under a strategy Keras divides each replica's loss by the
                # replica count; the logged loss is the undivided one.
                metric.update_state(loss * replicas, sample_weight=ops.shape(x)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _jax_train_step(self, state, data):
        import jax

        trainable, non_trainable, opt_vars, metric_vars = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        grad_fn = jax.value_and_grad(self.compute_loss_and_updates, has_aux=True)
        (_, aux), grads = grad_fn(
            trainable,
            non_trainable,
            metric_vars,
            x,
            y,
            sample_weight,
            training=True,
            optimizer_variables=opt_vars,
        )
        loss, y_pred, non_trainable, metric_vars = aux
        # The learning rate (and loss scale) are functions of optimizer state,
        # which must be read from the values passed in, not the variables.
        mapping = list(zip(self.optimizer.variables, opt_vars))
        with keras.StatelessScope(state_mapping=mapping):
            grads, fraction = self._clip(grads, self.optimizer.learning_rate)
        trainable, opt_vars = self.optimizer.stateless_apply(opt_vars, grads, trainable)
        metric_mapping = list(zip(self.metrics_variables, metric_vars))
        with keras.StatelessScope(state_mapping=metric_mapping) as scope:
            self.clip_fraction_tracker.update_state(fraction)
        metric_vars = [
            scope.get_current_value(v) if scope.get_current_value(v) is not None else value
            for v, value in metric_mapping
        ]
        # Keras internals (pinned by tests/test_keras_internals.py):
        # compute_loss_and_updates above, _update_metrics_variables here.
        logs, metric_vars = self._update_metrics_variables(
            metric_vars, loss, x, y, y_pred, sample_weight
        )
        return logs, (trainable, non_trainable, opt_vars, metric_vars)


def build_vdsr(
    depth=20,
    filters=64,
    clip_theta=1e-4,
    clip_mode="value",
    weight_decay=1e-4,
    residual=True,
    kernel_initializer="he_normal",
    zero_init_residual=False,
    compute_dtype=None,
    name="vdsr",
):
    """Builds the VDSR network (Kim, Lee, Lee, CVPR 2016).

    Args:
        depth: number of 3x3 convolution layers (>= 2). The paper uses 20.
        filters: channels of the hidden layers. The paper uses 64.
        clip_theta: theta of the adaptive gradient clip (gradient values are
            clipped to ``[-theta/lr, theta/lr]``, so that a plain SGD step
            moves no weight by more than theta); None disables it. The paper does not
            state theta; 1e-4 trains the paper's recipe (SGD at lr 0.1 with
            ``PatchSumMSE``), 0.01 does not (see ``vdsr_tf.models.clipping``).
        clip_mode: ``"value"`` (the paper's per-value rule) or ``"norm"``
            (the global gradient norm bounded by ``theta/lr``).
        weight_decay: L2 weight decay on the conv kernels, as in the paper
            (1e-4): the kernels' loss term is ``weight_decay / 2 * sum(w**2)``
            so that its gradient is ``weight_decay * w``, Caffe's convention.
            0 disables it.
        residual: True (the paper) adds the input to the last layer's output,
            so the convolutions predict the residual. False makes the network
            predict the image itself (for the paper's residual-learning study).
        kernel_initializer: initializer of the conv kernels; the paper uses
            He et al.'s ("he_normal"). Biases start at zero.
        zero_init_residual: start the last layer at zero, so that the
            untrained network is exactly bicubic (output == input) instead of
            bicubic plus a random residual.
        compute_dtype: dtype policy of the convolutions, e.g.
            ``"mixed_bfloat16"`` (bf16 arithmetic, float32 weights); None
            follows Keras's global policy. The skip ``Add`` and the input are
            float32 under any policy.
        name: model name.

    Returns:
        A ``VDSR`` model mapping ``x: float32 (B, H, W, 1)``, the
        bicubic-upscaled Y channel in [0, 1], to the super-resolved Y channel
        of the same shape (not clipped; clip to [0, 1] before quantising).
        ``H`` and ``W`` are free.
    Example:

    ```python
    model = vdsr_tf.build_vdsr(depth=20, filters=64, clip_theta=1e-4)
    sr = model.predict(x)  # x: float32 (N, H, W, 1), the bicubic-upscaled Y in [0, 1]
    ```
    """
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    if filters < 1:
        raise ValueError(f"filters must be >= 1, got {filters}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None

    def conv(channels, activation, index, initializer=kernel_initializer):
        return keras.layers.Conv2D(
            channels,
            3,
            padding="same",
            activation=activation,
            kernel_initializer=initializer,
            kernel_regularizer=regularizer,
            dtype=compute_dtype,
            name=f"conv{index}",
        )

    inputs = keras.Input(shape=(None, None, 1), name="y_bicubic")
    h = inputs
    for i in range(1, depth):
        h = conv(filters, "relu", i)(h)
    h = conv(1, None, depth, "zeros" if zero_init_residual else kernel_initializer)(h)
    if residual:
        # The add is kept in float32 under mixed precision: the residual is a
        # small correction to values in [0, 1].
        h = keras.layers.Add(name="skip", dtype="float32")([inputs, h])
    else:
        h = keras.layers.Activation("linear", name="image", dtype="float32")(h)
    return VDSR(inputs=inputs, outputs=h, clip_theta=clip_theta, clip_mode=clip_mode, name=name)


def architecture(model):
    """``build_vdsr``'s ``depth``, ``filters`` and ``residual`` of a VDSR model.

    Raises:
        ValueError: for a model without VDSR's 3x3 convolutions.
    """
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    if len(convs) < 2 or any(tuple(l.kernel_size) != (3, 3) for l in convs):
        raise ValueError(f"{model.name} is not a VDSR network (3x3 convolutions only)")
    residual = any(isinstance(l, keras.layers.Add) for l in model.layers)
    return {"depth": len(convs), "filters": convs[0].filters, "residual": residual}


def compute_copy(model, compute_dtype):
    """An inference copy of a VDSR model, its convolutions computing in
    ``compute_dtype`` (e.g. ``"mixed_bfloat16"``) with the same float32 weights.

    Returns:
        A ``VDSR`` model with the same inputs and outputs as ``model``:
        float32 (B, H, W, 1) in and out.
    """
    copy = build_vdsr(
        **architecture(model),
        compute_dtype=compute_dtype,
        clip_theta=None,
        weight_decay=0,
        name=f"{model.name}_{compute_dtype}",
    )
    copy.set_weights(model.get_weights())
    return copy


def flops_per_pixel(depth=20, filters=64):
    """Multiply-adds x 2 per output pixel of the network (1.33 MFLOP default)."""
    return 2 * 9 * (filters + (depth - 2) * filters * filters + filters)
