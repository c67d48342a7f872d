"""The VDSR network and its Keras model class with the adaptive-clipping step.

``build_vdsr`` returns a functional model: ``depth`` 3x3 convolutions with no
pooling, ``depth - 1`` of them with ``filters`` channels and ReLU, the last one
to 1 channel with no activation, and a final ``Add`` of the input (the skip
connection). The model maps a bicubic-upscaled Y image to the super-resolved Y
image. Its ``train_step`` clips every gradient value to ``theta / lr`` before
the optimizer update (``vdsr_tf.models.clipping``), on the TensorFlow and on the JAX
backend.

Its files: ``VDSR.from_preset`` / ``load_source`` read a preset or weights file
(``vdsr_tf.io.presets`` resolves the handle), ``save_to_preset`` writes a preset
folder.

This module imports without TensorFlow (it is used on a JAX-only GPU machine).
"""

import datetime
import json
import os

import keras
from keras import ops

from vdsr_tf.io import presets
from vdsr_tf.io.atomic import atomic_directory, atomic_write_text
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

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """The model of a ``get_config`` (the functional graph, as ``.keras``
        files hold it), or of ``build_vdsr``'s arguments (as a preset's
        ``config.json`` holds them)."""
        if "layers" in config:
            return super().from_config(config, custom_objects)
        try:
            return build_vdsr(**config)
        except TypeError as e:  # an argument build_vdsr does not take
            raise ValueError(f"Not arguments of build_vdsr: {e}") from None

    # -- presets -------------------------------------------------------------
    @classmethod
    def from_preset(cls, handle="bundled"):
        """The model a preset handle names, weights loaded and checked.

        Args:
            handle: a preset name (``"bundled"``: the weights shipped in the
                package), a preset folder, a ``.keras`` or ``.weights.h5``
                file, ``"hf://owner/name"`` or ``"kaggle://owner/model/keras/variation"``
                (``vdsr_tf.io.presets.resolve``).

        Raises:
            FileNotFoundError, ValueError, ImportError, OSError: one line each:
                a missing file, a folder that is not a preset or a config of
                another model, a sha256 mismatch, a hub client not installed,
                a hub that cannot be reached.
        Example:

        ```python
        model = vdsr_tf.VDSR.from_preset("bundled")
        ```
        """
        return load_source(presets.resolve(handle))

    def save_to_preset(self, folder, metadata=None, overwrite=False):
        """Writes this network as a preset folder (``config.json``,
        ``model.weights.h5``, ``metadata.json``, ``README.md``); see
        ``save_to_preset``. Returns ``folder``."""
        return save_to_preset(self, folder, metadata=metadata, overwrite=overwrite)

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


def build_args(model):
    """Every ``build_vdsr`` argument of a VDSR network, read from its layers,
    so that ``build_vdsr(**build_args(model))`` builds the same network.

    Raises:
        ValueError: for a model without VDSR's 3x3 convolutions.
    """
    arch = architecture(model)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    regularizer = convs[0].kernel_regularizer
    policy = convs[0].dtype_policy.name
    zeros = keras.initializers.Zeros
    return {
        **arch,
        "clip_theta": getattr(model, "clip_theta", None),
        "clip_mode": getattr(model, "clip_mode", "value"),
        # L2(l2=weight_decay / 2): doubling is exact in binary floating point.
        "weight_decay": 2 * float(regularizer.l2) if regularizer is not None else 0.0,
        "kernel_initializer": _initializer_name(convs[0].kernel_initializer),
        "zero_init_residual": isinstance(convs[-1].kernel_initializer, zeros)
        and not isinstance(convs[0].kernel_initializer, zeros),
        "compute_dtype": None if policy == "float32" else policy,
        "name": model.name,
    }


def _initializer_name(initializer):
    """A Keras initializer as its string name ("he_normal") when that names
    the same configuration, else its serialized dict."""
    import re

    config = keras.initializers.serialize(initializer)
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", config["class_name"]).lower()
    try:
        if keras.initializers.serialize(keras.initializers.get(name)) == config:
            return name
    except ValueError:  # not a built-in name
        pass
    return config


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


def float32_copy(model):
    """``model`` itself when it computes in float32, else its float32 copy
    (``compute_copy``): what inference and export run."""
    if all(l.dtype_policy.name == "float32" for l in model.layers if l.weights):
        return model
    return compute_copy(model, "float32")


def flops_per_pixel(depth=20, filters=64):
    """Multiply-adds x 2 per output pixel of the network (1.33 MFLOP default)."""
    return 2 * 9 * (filters + (depth - 2) * filters * filters + filters)


# -- presets and weights files --------------------------------------------------
# The network's files live here, beside the class whose ``from_preset`` and
# ``save_to_preset`` use them; ``vdsr_tf.models.loading.load_pretrained`` is
# ``load_source(resolve(handle))`` too.
def load_weights(model, path, described=None):
    """``model.load_weights(path)`` with one clear error for a file that is not
    weights of ``model``'s architecture (``described``: how to name it;
    default: its depth and width).

    Raises:
        ValueError: naming the file, the architecture and the loader's reason.
    """
    try:
        model.load_weights(path)
    except Exception as e:  # h5py/keras raise several types for a bad file
        if described is None:
            try:
                arch = architecture(model)
                described = f"depth {arch['depth']}, {arch['filters']} filters"
            except ValueError:  # not a VDSR network: name it instead
                described = model.name
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path} does not hold weights of {described}: {first}") from None


def load_source(source):
    """The Keras model of a resolved ``vdsr_tf.io.presets.Source``."""
    if source.kind == "keras":
        try:
            return keras.saving.load_model(source.path)
        except (ValueError, TypeError, KeyError, OSError) as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise presets.PresetError(f"{source.handle} is not a VDSR model: {first}") from None
    config = dict(source.config or {})
    try:
        model = build_vdsr(**config)
    except TypeError as e:  # an argument build_vdsr does not take
        raise presets.PresetError(
            f"{source.handle}: {presets.CONFIG} has an argument build_vdsr does not take ({e})"
        ) from None
    load_weights(
        model,
        source.weights,
        None if config else "the default 20 x 64 network (no config.json beside it)",
    )
    return model


def save_to_preset(model, folder, metadata=None, overwrite=False):
    """Writes a VDSR network as a preset folder, in one atomic step.

    ``config.json`` holds every ``build_vdsr`` argument (read from the
    model's layers), ``model.weights.h5`` the weights, ``metadata.json``
    ``metadata`` plus the format, the versions of vdsr-tf and Keras, the
    parameter count, the date and the weights' sha256, and ``README.md`` the
    model card (``vdsr_tf.io.presets.model_card``).

    Args:
        model: a network ``build_vdsr`` builds (any depth and width).
        folder: the preset folder to write.
        metadata: what you know of the weights, e.g. ``recipe``,
            ``patches_seen``, ``scores`` (``vdsr-eval --json``'s sets),
            ``training_data``, ``terms``, ``license``, ``version``,
            ``description``. A ``tflite`` entry is dropped (the variants
            belong to the files: ``vdsr-export --format=preset --tflite``).
        overwrite: replace an existing ``folder``.

    Raises:
        ValueError: for a network ``build_vdsr`` does not build.
        FileExistsError: if ``folder`` exists and not ``overwrite``.

    Example:

    ```python
    model.save_to_preset("my-vdsr", metadata={"recipe": "fine-tuned on my photos"})
    vdsr_tf.Upscaler.from_preset("my-vdsr")
    ```
    """
    with atomic_directory(os.fspath(folder), overwrite=overwrite) as tmp:
        write_preset(model, tmp, metadata)
    return os.fspath(folder)


def write_preset(model, folder, metadata=None):
    """``save_to_preset``'s files, written into an existing ``folder``.

    Returns:
        The metadata written.
    """
    import vdsr_tf

    args = build_args(model)
    shapes = [tuple(w.shape) for w in build_vdsr(**args).weights]
    if shapes != [tuple(w.shape) for w in model.weights]:
        raise ValueError(f"{model.name} is not a network build_vdsr builds; save it as .keras")
    meta = {k: v for k, v in (metadata or {}).items() if k != "tflite"}
    weights = os.path.join(folder, presets.WEIGHTS)
    model.save_weights(weights)
    meta.update(
        format=presets.FORMAT,
        sha256=presets.file_sha256(weights),
        architecture={k: args[k] for k in ("depth", "filters", "residual")},
        parameter_count=int(model.count_params()),
        vdsr_tf_version=vdsr_tf.__version__,
        keras_version=keras.__version__,
        date_saved=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    write_preset_files(folder, args, meta)
    return meta


def write_preset_files(folder, args, metadata):
    """Writes a preset's ``config.json``, ``metadata.json`` and ``README.md``
    (the weights are the caller's)."""
    config = {
        "module": presets.MODULE,
        "class_name": presets.CLASS_NAME,
        "config": args,
        "registered_name": presets.REGISTERED_NAME,
    }
    atomic_write_text(os.path.join(folder, presets.CONFIG), json.dumps(config, indent=2) + "\n")
    atomic_write_text(os.path.join(folder, presets.METADATA), json.dumps(metadata, indent=2) + "\n")
    atomic_write_text(os.path.join(folder, presets.CARD), presets.model_card(metadata, args))
