"""Training with ``fit``: optimizer and schedule from a config, callbacks, resume.

``train(config, sources, output_dir, ...)`` builds (or resumes) a VDSR model,
trains it with ``model.fit`` on ``vdsr_tf.data.make_dataset``, and writes into
``output_dir``:

* ``config.json``: the recipe;
* ``checkpoint.keras`` + ``checkpoint.json``: model and optimizer state after
  the last finished epoch (written atomically);
* ``logs/``: TensorBoard scalars and validation images (TF backend), and
  ``history.csv``;
* ``vdsr.weights.h5``: the final weights.

Running the same command again resumes from the checkpoint at the right step.
"""

import contextlib
import json
import math
import os
import time

import keras
from absl import logging
from keras import ops

from vdsr_tf import config as config_lib
from vdsr_tf.metrics import PSNRMetric
from vdsr_tf.model import build_vdsr, load_model

CHECKPOINT = "checkpoint.keras"
CHECKPOINT_STATE = "checkpoint.json"
FINAL_WEIGHTS = "vdsr.weights.h5"


@keras.saving.register_keras_serializable(package="vdsr_tf")
class VDSRSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then step, cosine or constant learning-rate decay.

    Args:
        peak: learning rate after the warm-up.
        total_steps: steps of the whole run.
        kind: "step", "cosine" or "constant".
        boundaries: for "step", the steps where lr is divided by ``factor``.
        factor: the step divisor.
        warmup_steps: steps of linear warm-up from ``warmup_start * peak``.
        warmup_start: start of the warm-up as a fraction of ``peak``.
    """

    def __init__(self, peak, total_steps, kind="step", boundaries=(), factor=10.0,
                 warmup_steps=0, warmup_start=0.01):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.kind = kind
        self.boundaries = [int(b) for b in boundaries]
        self.factor = float(factor)
        self.warmup_steps = int(warmup_steps)
        self.warmup_start = float(warmup_start)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = ops.convert_to_tensor(self.peak, "float32")
        if self.kind == "step":
            for boundary in self.boundaries:
                lr = ops.where(step >= boundary, lr / self.factor, lr)
        elif self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            lr = lr * 0.5 * (1.0 + ops.cos(math.pi * progress))
        if self.warmup_steps:
            frac = ops.clip(step / self.warmup_steps, 0.0, 1.0)
            ramp = self.warmup_start + (1.0 - self.warmup_start) * frac
            lr = ops.where(step < self.warmup_steps, self.peak * ramp, lr)
        return lr

    def get_config(self):
        return dict(peak=self.peak, total_steps=self.total_steps, kind=self.kind,
                    boundaries=self.boundaries, factor=self.factor,
                    warmup_steps=self.warmup_steps, warmup_start=self.warmup_start)


def make_schedule(optim, total_steps):
    """The ``VDSRSchedule`` of an ``OptimConfig`` over ``total_steps``."""
    return VDSRSchedule(
        peak=optim.learning_rate,
        total_steps=total_steps,
        kind=optim.schedule,
        boundaries=[round(f * total_steps) for f in optim.step_boundaries],
        factor=optim.step_factor,
        warmup_steps=round(optim.warmup_fraction * total_steps),
        warmup_start=optim.warmup_start,
    )


def make_optimizer(optim, total_steps):
    """A Keras optimizer for an ``OptimConfig`` (schedule included)."""
    lr = make_schedule(optim, total_steps)
    if optim.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=optim.momentum, clipnorm=optim.clipnorm)
    if optim.optimizer == "adam":
        return keras.optimizers.Adam(lr, clipnorm=optim.clipnorm)
    if optim.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=optim.adam_weight_decay,
                                      clipnorm=optim.clipnorm)
    raise ValueError(f"Unknown optimizer {optim.optimizer!r}; valid: sgd, adam, adamw")


def build_model(config):
    """A compiled VDSR model for a ``TrainConfig`` (MSE loss, PSNR metric)."""
    m = config.model
    model = build_vdsr(depth=m.depth, filters=m.filters, clip_theta=m.clip_theta,
                       weight_decay=m.weight_decay, residual=m.residual,
                       zero_init_residual=m.zero_init_residual)
    model.compile(optimizer=make_optimizer(config.optim, config.steps), loss="mse",
                  metrics=[PSNRMetric()])
    return model


class ValidationCallback(keras.callbacks.Callback):
    """Per-scale PSNR/SSIM on a benchmark set at the end of each epoch.

    Adds ``val_psnr_x{s}`` and ``val_ssim_x{s}`` to the epoch logs (so the
    progress bar, CSV and TensorBoard see them) and, when ``log_dir`` is set
    and TensorFlow is available, writes a ``bicubic | VDSR | HR`` crop per
    scale as a TensorBoard image.

    Args:
        set_dir: a folder with ``HR/`` and ``LR_bicubic/X{s}/``.
        scales: scales to score.
        log_dir: TensorBoard directory for the images, or None.
    """

    def __init__(self, set_dir, scales, log_dir=None):
        super().__init__()
        self.set_dir = set_dir
        self.scales = tuple(scales)
        self.log_dir = log_dir
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        from vdsr_tf.evaluate import benchmark_pairs, comparison_strip, evaluate_set
        from vdsr_tf.upscaler import Upscaler

        logs = logs if logs is not None else {}
        upscaler, bicubic = Upscaler(model=self.model), Upscaler("bicubic")
        strips = []
        for s in self.scales:
            r = evaluate_set(upscaler, self.set_dir, s, keep_images=True)
            logs[f"val_psnr_x{s}"] = r["psnr"]
            logs[f"val_ssim_x{s}"] = r["ssim"]
            _, sr, hr = r["images"][0]
            lr = next(benchmark_pairs(self.set_dir, s))[1]
            strips.append(comparison_strip(bicubic.upscale(lr, size=hr.shape[:2]), sr, hr))
        logging.info("epoch %d validation: %s", epoch + 1, ", ".join(
            f"x{s} {logs[f'val_psnr_x{s}']:.2f} dB" for s in self.scales))
        self._write_images(epoch, strips)

    def _write_images(self, epoch, strips):
        if not self.log_dir:
            return
        try:
            import tensorflow as tf
        except ImportError:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "validation"))
        with self._writer.as_default():
            for s, strip in zip(self.scales, strips):
                tf.summary.image(f"bicubic_vdsr_hr_x{s}", strip[None], step=epoch + 1)
        self._writer.flush()


class CheckpointCallback(keras.callbacks.Callback):
    """Saves model + optimizer state and the finished epoch count, atomically."""

    def __init__(self, output_dir):
        super().__init__()
        self.output_dir = output_dir

    def on_epoch_end(self, epoch, logs=None):
        path = os.path.join(self.output_dir, CHECKPOINT)
        tmp = os.path.join(self.output_dir, "checkpoint.tmp.keras")
        self.model.save(tmp)
        os.replace(tmp, path)
        state = {"epoch": epoch + 1, "step": int(ops.convert_to_numpy(self.model.optimizer.iterations))}
        _write_json(os.path.join(self.output_dir, CHECKPOINT_STATE), state)


class TimeBudget(keras.callbacks.Callback):
    """Stops training at an epoch end when the next epoch would pass the budget."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self._start = self._epoch_start = None

    def on_train_begin(self, logs=None):
        self._start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        if now - self._start + (now - self._epoch_start) > self.seconds:
            logging.info("Time budget of %.0f s reached after epoch %d; stopping "
                         "(run the same command again to resume).", self.seconds, epoch + 1)
            self.model.stop_training = True


def training_data(sources, data_config, seed, data_dir=None, manual_dir=None):
    """The patch stream for ``fit``: tf.data where TensorFlow is installed,
    else (the JAX-only GPU machine) the numpy ``PatchSampler`` with the same
    per-image sampling, over folders or packed ``.npz`` files."""
    from vdsr_tf import data

    try:
        import tensorflow  # noqa: F401
    except ImportError:
        if any(str(s).startswith("tfds:") for s in data._expand_sources(sources)):
            raise ValueError("tfds: sources need TensorFlow; pack the images with "
                             "vdsr-train --pack_to=FILE.npz on a machine that has it") from None
        logging.info("TensorFlow not installed: using the numpy PatchSampler.")
        return data.PatchSampler(data.load_y_planes(sources), data_config, seed).batches()
    return data.make_dataset(sources, data_config, seed=seed, data_dir=data_dir,
                             manual_dir=manual_dir)


DISTRIBUTIONS = ("none", "data_parallel", "multi_worker")


@contextlib.contextmanager
def distribution_scope(kind="none"):
    """Data-parallel training with the backend's own engine.

    * ``"none"``: one device.
    * ``"data_parallel"``: every local accelerator (or every logical CPU
      device when there is none): ``tf.distribute.MirroredStrategy`` on the
      TensorFlow backend, ``keras.distribution.DataParallel`` on JAX.
    * ``"multi_worker"``: ``tf.distribute.MultiWorkerMirroredStrategy``
      (TensorFlow; the cluster comes from ``TF_CONFIG``).

    Build, compile and ``fit`` the model inside the scope. The batch size is
    the global batch; the adaptive clip applies to the global gradient.

    Yields:
        The number of devices (replicas).
    """
    if kind not in DISTRIBUTIONS:
        raise ValueError(f"Unknown distribution {kind!r}; valid: {list(DISTRIBUTIONS)}")
    if kind == "none":
        yield 1
        return
    backend = keras.backend.backend()
    if backend == "jax":
        if kind != "data_parallel":
            raise ValueError("On the JAX backend use data_parallel (multi-host JAX is "
                             "configured by keras.distribution.initialize)")
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield len(devices)
        finally:
            keras.distribution.set_distribution(None)
        return
    import tensorflow as tf

    if kind == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
    with strategy.scope():
        yield strategy.num_replicas_in_sync


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def train(config, sources, output_dir, val_dir=None, data_dir=None,
          time_budget_s=None, verbose="auto", extra_callbacks=(), manual_dir=None,
          distribute="none"):
    """Trains (or resumes) a VDSR model with ``fit``.

    Args:
        config: a ``TrainConfig``.
        sources: training images (see ``vdsr_tf.data.make_dataset``).
        output_dir: where the run's files go; an existing checkpoint there is
            resumed, provided its ``config.json`` matches ``config``.
        val_dir: a benchmark set folder scored each epoch, or None.
        data_dir: TFDS data directory for ``tfds:`` sources.
        time_budget_s: stop at the first epoch end after which another epoch
            would exceed this many seconds (checkpoint kept, resumable).
        verbose: ``fit``'s verbosity.
        extra_callbacks: more Keras callbacks.
        manual_dir: local files to prepare ``tfds:`` sources from on first use.
        distribute: ``distribution_scope`` kind: "none", "data_parallel" or
            "multi_worker".

    Returns:
        ``(model, history)``; ``history`` is the ``fit`` History, or None
        when the run was already complete.
    """
    config_lib.validate(config)
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    try:
        with distribution_scope(distribute) as replicas:
            if replicas > 1:
                logging.info("Data-parallel training on %d devices (global batch %d).",
                             replicas, config.data.batch_size)
            return _train(config, sources, output_dir, val_dir, data_dir, time_budget_s,
                          verbose, extra_callbacks, manual_dir)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _train(config, sources, output_dir, val_dir, data_dir, time_budget_s, verbose,
           extra_callbacks, manual_dir):
    os.makedirs(output_dir, exist_ok=True)
    steps_per_epoch = min(config.steps_per_epoch, config.steps)
    epochs = math.ceil(config.steps / steps_per_epoch)
    config_path = os.path.join(output_dir, "config.json")
    ckpt_path = os.path.join(output_dir, CHECKPOINT)
    initial_epoch = 0
    if os.path.exists(ckpt_path):
        with open(config_path) as f:
            saved = config_lib.from_json(f.read())
        if saved != config:
            raise ValueError(
                f"{output_dir} holds a checkpoint of a different config; use "
                "another --output_dir or the same settings to resume.")
        with open(os.path.join(output_dir, CHECKPOINT_STATE)) as f:
            initial_epoch = json.load(f)["epoch"]
        model = load_model(ckpt_path)
        logging.info("Resuming %s at epoch %d (step %d).", output_dir, initial_epoch,
                     int(ops.convert_to_numpy(model.optimizer.iterations)))
    else:
        keras.utils.set_random_seed(config.seed)
        model = build_model(config)
        _write_json(config_path, config_lib.to_dict(config))
    if initial_epoch >= epochs:
        logging.info("Run in %s is already complete (%d epochs).", output_dir, epochs)
        return model, None

    # A resumed run draws a fresh patch stream rather than replaying epoch 0's.
    dataset = training_data(sources, config.data, config.seed + 7919 * initial_epoch,
                            data_dir, manual_dir)
    log_dir = os.path.join(output_dir, "logs")
    callbacks = []
    if val_dir:
        callbacks.append(ValidationCallback(val_dir, config.data.scales, log_dir))
    callbacks += [CheckpointCallback(output_dir),
                  keras.callbacks.CSVLogger(os.path.join(output_dir, "history.csv"),
                                            append=initial_epoch > 0)]
    if keras.backend.backend() == "tensorflow":
        callbacks.append(keras.callbacks.TensorBoard(log_dir, update_freq="epoch"))
    if time_budget_s:
        callbacks.append(TimeBudget(time_budget_s))
    callbacks += list(extra_callbacks)
    history = model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch,
                        initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose,
                        shuffle=False)
    with open(os.path.join(output_dir, CHECKPOINT_STATE)) as f:
        done = json.load(f)["epoch"]
    if done >= epochs:
        tmp = os.path.join(output_dir, "final.tmp.weights.h5")
        model.save_weights(tmp)
        os.replace(tmp, os.path.join(output_dir, FINAL_WEIGHTS))
        logging.info("Training complete; weights in %s",
                     os.path.join(output_dir, FINAL_WEIGHTS))
    return model, history
