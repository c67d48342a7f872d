"""Training: optimizer and schedule from a config, two engines, callbacks, resume.

``train(config, sources, output_dir, ...)`` builds (or resumes) a VDSR model
and trains it with one of two engines that run the same ``train_step``:

* ``"fit"``: ``model.fit`` on ``vdsr_tf.data.make_dataset`` (or the numpy
  ``PatchSampler`` where TensorFlow is missing), any backend;
* ``"fast"`` (JAX): the data on the accelerator and K steps per jitted call
  (``vdsr_tf.fast``), for GPUs, where ``fit`` is input-bound.

It writes into ``output_dir``:

* ``config.json``: the recipe;
* ``checkpoint.npz``: model, optimizer (step, schedule position), the
  data's fingerprint and counters after the last finished epoch, in one
  atomic write (``vdsr_tf.checkpoint``);
* ``logs/``: TensorBoard scalars and validation images (TF backend), and
  ``history.csv`` (with ``clip_fraction``: the share of gradient values the
  theta/lr clip cut);
* ``vdsr.weights.h5``: the weights at the end of the run, also when a time
  budget stopped it early.

Running the same command again resumes from the checkpoint at the right step;
a different config or different training data is refused, naming the
difference. ``init_from`` starts a new run from earlier weights instead.
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
from vdsr_tf.checkpoint import (config_difference, read_state, restore, save_state,
                                weights_digest)
from vdsr_tf.files import atomic_path, atomic_write_text, remove_stale_temporaries
from vdsr_tf.losses import get_loss
from vdsr_tf.metrics import PSNRMetric
from vdsr_tf.model import build_vdsr, bundled_weights_path

CHECKPOINT = "checkpoint.npz"
FINAL_WEIGHTS = "vdsr.weights.h5"
HISTORY = "history.csv"
ENGINES = ("fit", "fast")


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
        self.total_steps_variable = None

    def bind(self, optimizer):
        """Keeps ``total_steps`` in a variable of ``optimizer`` (before it is built).

        The cosine then reads the run's length from optimizer state, so it is
        saved and restored with the optimizer, and the fast engine can fit
        the cycle to a time budget without recompiling its step.

        Returns:
            The float32 scalar variable.
        """
        self.total_steps_variable = optimizer.add_variable(
            shape=(), initializer=keras.initializers.Constant(float(self.total_steps)),
            dtype="float32", name="schedule_total_steps")
        return self.total_steps_variable

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = ops.convert_to_tensor(self.peak, "float32")
        if self.kind == "step":
            for boundary in self.boundaries:
                lr = ops.where(step >= boundary, lr / self.factor, lr)
        elif self.kind == "cosine":
            total = (float(self.total_steps) if self.total_steps_variable is None
                     else ops.cast(self.total_steps_variable, "float32"))
            span = ops.maximum(total - self.warmup_steps, 1.0)
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
    """A Keras optimizer for an ``OptimConfig``, its schedule bound to it
    (``VDSRSchedule.bind``: the run's length is optimizer state)."""
    lr = make_schedule(optim, total_steps)
    clip = {"clipnorm": optim.clipnorm, "clipvalue": optim.clipvalue}
    if optim.optimizer == "sgd":
        opt = keras.optimizers.SGD(lr, momentum=optim.momentum, **clip)
    elif optim.optimizer == "adam":
        opt = keras.optimizers.Adam(lr, **clip)
    elif optim.optimizer == "adamw":
        opt = keras.optimizers.AdamW(lr, weight_decay=optim.adam_weight_decay, **clip)
    else:
        raise ValueError(f"Unknown optimizer {optim.optimizer!r}; valid: sgd, adam, adamw")
    lr.bind(opt)
    return opt


def build_model(config):
    """A compiled VDSR model for a ``TrainConfig`` (its loss, PSNR metric)."""
    m = config.model
    model = build_vdsr(depth=m.depth, filters=m.filters, clip_theta=m.clip_theta,
                       clip_mode=m.clip_mode,
                       weight_decay=m.weight_decay, residual=m.residual,
                       zero_init_residual=m.zero_init_residual)
    model.compile(optimizer=make_optimizer(config.optim, config.steps),
                  loss=get_loss(config.optim.loss), metrics=[PSNRMetric()])
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
        self._upscaler = None

    def on_epoch_end(self, epoch, logs=None):
        from vdsr_tf.evaluate import benchmark_pairs, comparison_strip, evaluate_set
        from vdsr_tf.upscaler import Upscaler

        logs = logs if logs is not None else {}
        if self._upscaler is None or self._upscaler.model is not self.model:
            # One compiled forward for the whole run (it reads the current
            # weights at each call).
            self._upscaler = Upscaler(model=self.model)
        upscaler, bicubic = self._upscaler, Upscaler("bicubic")
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
    """Saves the training state (model, optimizer, counters) atomically each epoch.

    Args:
        output_dir: the run folder (``checkpoint.npz`` goes there).
        meta: dict stored with every state (config, data fingerprint, ...);
            ``epoch``, ``step`` and ``patches_total`` are added.
        batch_size: patches per step, to count patches.
        patches_before: patches seen by the runs this one started from.
    """

    def __init__(self, output_dir, meta, batch_size, patches_before=0):
        super().__init__()
        self.output_dir = output_dir
        self.meta = dict(meta)
        self.batch_size = batch_size
        self.patches_before = patches_before

    def on_epoch_end(self, epoch, logs=None):
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        meta = dict(self.meta, epoch=epoch + 1, step=step,
                    patches_total=self.patches_before + step * self.batch_size)
        save_state(os.path.join(self.output_dir, CHECKPOINT), self.model, meta)


class TimeBudget(keras.callbacks.Callback):
    """Stops training at an epoch end when the next epoch would pass the budget.

    Args:
        seconds: budget counted from the start of training, or None.
        deadline: a ``time.monotonic()`` value not to pass, or None.
    """

    def __init__(self, seconds=None, deadline=None):
        super().__init__()
        self.seconds = seconds
        self.deadline = deadline
        self._start = self._epoch_start = None

    def on_train_begin(self, logs=None):
        self._start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        next_end = now + (now - self._epoch_start)
        limits = [self._start + self.seconds if self.seconds else None, self.deadline]
        if any(limit is not None and next_end > limit for limit in limits):
            logging.info("Time budget reached after epoch %d; stopping (run the same "
                         "command again to resume).", epoch + 1)
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
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True))


def train(config, sources, output_dir, val_dir=None, data_dir=None,
          time_budget_s=None, verbose="auto", extra_callbacks=(), manual_dir=None,
          distribute="none", engine="fit", steps_per_call=100, init_from=None,
          pool_workers=None):
    """Trains (or resumes) a VDSR model.

    Args:
        config: a ``TrainConfig``.
        sources: training images (see ``vdsr_tf.data.make_dataset``).
        output_dir: where the run's files go; an existing checkpoint there is
            resumed, provided the config and the training data match it.
        val_dir: a benchmark set folder scored each epoch, or None.
        data_dir: TFDS data directory for ``tfds:`` sources.
        time_budget_s: stop at the first epoch end after which another epoch
            would exceed this many seconds (checkpoint and weights written,
            resumable).
        verbose: ``fit``'s verbosity.
        extra_callbacks: more Keras callbacks.
        manual_dir: local files to prepare ``tfds:`` sources from on first use.
        distribute: ``distribution_scope`` kind: "none", "data_parallel" or
            "multi_worker" (``fit`` engine only).
        engine: "fit" or "fast" (JAX backend; ``vdsr_tf.fast``).
        steps_per_call: K, train steps per jitted call of the fast engine.
        init_from: start a new run from these weights (not a resume): a
            state file (``checkpoint.npz``), a ``.weights.h5`` file, or
            "bundled" for the shipped weights. Ignored when resuming.
        pool_workers: host processes that build the fast engine's pool.

    Returns:
        ``(model, history)``; ``history`` is the Keras History (the fast
        engine adds ``pool_seconds``, ``compile_seconds`` and
        ``train_seconds``), or None when the run was already complete.
    """
    config_lib.validate(config)
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; valid: {list(ENGINES)}")
    if engine == "fast":
        if keras.backend.backend() != "jax":
            raise ValueError("--engine=fast needs the JAX backend: set KERAS_BACKEND=jax "
                             f"(the backend is {keras.backend.backend()!r})")
        if distribute != "none":
            raise ValueError("--engine=fast runs on one device; use --engine=fit to distribute")
        if steps_per_call < 1:
            raise ValueError(f"steps_per_call must be >= 1, got {steps_per_call}")
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    try:
        with distribution_scope(distribute) as replicas:
            if replicas > 1:
                logging.info("Data-parallel training on %d devices (global batch %d).",
                             replicas, config.data.batch_size)
            return _train(config, sources, output_dir, val_dir, data_dir, time_budget_s,
                          verbose, extra_callbacks, manual_dir, engine, steps_per_call,
                          init_from, pool_workers)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _training_planes(sources):
    """The Y planes and their fingerprint; (None, spec digest) for tfds: sources."""
    import hashlib

    from vdsr_tf import data

    expanded = data._expand_sources(sources)
    if any(s.startswith("tfds:") for s in expanded):
        return None, "tfds:" + hashlib.sha256(",".join(expanded).encode()).hexdigest()
    planes = data.load_y_planes(expanded)
    return planes, data.fingerprint(planes)


def load_initial_weights(model, init_from):
    """Loads ``init_from`` (state file, ``.weights.h5`` or "bundled") into ``model``.

    Returns:
        The patches the source had seen (0 when unknown).

    Raises:
        FileNotFoundError, ValueError: a missing file, or weights of another
            architecture (named).
    """
    if init_from == "bundled":
        init_from = bundled_weights_path()
        if not os.path.exists(init_from):
            raise FileNotFoundError("--init_from=bundled: this install has no bundled weights")
    if not os.path.isfile(init_from):
        raise FileNotFoundError(f"--init_from: no such file: {init_from}")
    if init_from.endswith(".weights.h5"):
        try:
            model.load_weights(init_from)
        except Exception as e:  # h5py/keras raise several types for a bad file
            raise ValueError(f"--init_from: {init_from} does not fit this architecture "
                             f"(depth {len(model.layers) - 2}): {str(e).splitlines()[0][:200]}"
                             ) from None
        meta_path = init_from[: -len(".weights.h5")] + ".weights.json"
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                return int(json.load(f).get("patches_seen", 0))
        return 0
    meta, weights, _ = read_state(init_from)
    try:
        restore(model, weights)
    except ValueError as e:
        raise ValueError(f"--init_from: {init_from}: {e}") from None
    return int(meta.get("patches_total", 0))


def _train(config, sources, output_dir, val_dir, data_dir, time_budget_s, verbose,
           extra_callbacks, manual_dir, engine, steps_per_call, init_from, pool_workers):
    os.makedirs(output_dir, exist_ok=True)
    for path in remove_stale_temporaries(output_dir):
        logging.info("Removed %s (left by a killed run).", path)
    steps_per_epoch = min(config.steps_per_epoch, config.steps)
    epochs = math.ceil(config.steps / steps_per_epoch)
    state_path = os.path.join(output_dir, CHECKPOINT)
    planes, data_hash = _training_planes(sources)
    if engine == "fast" and planes is None:
        raise ValueError("--engine=fast reads image folders or .npz packs, not tfds: sources; "
                         "pack them with vdsr-train --pack_to=FILE.npz")
    keras.utils.set_random_seed(config.seed)
    model = build_model(config)
    initial_epoch, patches_before = 0, 0
    meta = {"config": config_lib.to_dict(config), "data": data_hash, "engine": engine}
    if os.path.exists(state_path):
        saved, weights, optimizer = read_state(state_path)
        # A field added since the checkpoint was written takes its default
        # (the behaviour the run had), so older checkpoints still resume.
        diff = config_difference(config_lib.to_dict(config_lib.from_dict(saved["config"])),
                                 meta["config"])
        if diff:
            raise ValueError(
                f"{output_dir} holds a checkpoint of a different config ({'; '.join(diff)}); "
                "use another --output_dir or the same settings to resume.")
        if saved["data"] != data_hash:
            raise ValueError(
                f"{output_dir} holds a checkpoint trained on different data (fingerprint "
                f"{saved['data'][:12]}, these sources {data_hash[:12]}); use the same "
                "images to resume, or another --output_dir")
        model.optimizer.build(model.trainable_variables)
        restore(model, weights, optimizer)
        initial_epoch = saved["epoch"]
        patches_before = saved.get("patches_total", 0) - saved["step"] * config.data.batch_size
        meta["init_from"] = saved.get("init_from")
        _truncate_history(os.path.join(output_dir, HISTORY), initial_epoch)
        logging.info("Resuming %s at epoch %d (step %d); restored weights sha256 %s.",
                     output_dir, initial_epoch, saved["step"],
                     weights_digest([ops.convert_to_numpy(v) for v in model.weights]))
    else:
        if init_from:
            patches_before = load_initial_weights(model, init_from)
            meta["init_from"] = os.path.basename(str(init_from))
            logging.info("New run from the weights of %s (%d patches seen).", init_from,
                         patches_before)
        _write_json(os.path.join(output_dir, "config.json"), config_lib.to_dict(config))
    if initial_epoch >= epochs:
        logging.info("Run in %s is already complete (%d epochs).", output_dir, epochs)
        if not os.path.exists(os.path.join(output_dir, FINAL_WEIGHTS)):
            _write_weights(model, output_dir)  # killed after its last checkpoint
        return model, None

    log_dir = os.path.join(output_dir, "logs")
    callbacks = []
    if val_dir:
        callbacks.append(ValidationCallback(val_dir, config.data.scales, log_dir))
    # The history row first, then the checkpoint: a kill between the two leaves
    # a row past the checkpoint, which the resume removes (_truncate_history).
    callbacks += [keras.callbacks.CSVLogger(os.path.join(output_dir, HISTORY),
                                            append=initial_epoch > 0),
                  CheckpointCallback(output_dir, meta, config.data.batch_size, patches_before)]
    if keras.backend.backend() == "tensorflow":
        callbacks.append(keras.callbacks.TensorBoard(log_dir, update_freq="epoch"))
    if time_budget_s:
        callbacks.append(TimeBudget(time_budget_s))
    callbacks += list(extra_callbacks)
    if engine == "fast":
        from vdsr_tf import fast

        pool = fast.DevicePool(planes, config.data, workers=pool_workers)
        logging.info("Device pool: %d degraded images, %.1f M pixels, %.0f MB, built in %.1f s.",
                     pool.variants, pool.pixels / 1e6, pool.nbytes / 1e6, pool.build_seconds)
        history = fast.fit_fast(model, pool, config.data.batch_size, config.steps,
                                steps_per_epoch, initial_epoch=initial_epoch,
                                steps_per_call=steps_per_call, seed=config.seed,
                                callbacks=callbacks, verbose=verbose != 0)
        history.pool_seconds = pool.build_seconds
    else:
        # A resumed run draws a fresh patch stream rather than replaying epoch 0's.
        dataset = training_data(sources, config.data, config.seed + 7919 * initial_epoch,
                                data_dir, manual_dir)
        history = model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch,
                            initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose,
                            shuffle=False)
    step = int(ops.convert_to_numpy(model.optimizer.iterations))
    weights_path = _write_weights(model, output_dir)
    total = run_length(model, config.steps)
    if step >= total:
        logging.info("Training complete (%d steps); weights in %s", step, weights_path)
    else:
        logging.info("Stopped at step %d of %d (run the same command to resume); "
                     "weights so far in %s", step, total, weights_path)
    return model, history


def _write_weights(model, output_dir):
    """Writes the run's final ``vdsr.weights.h5`` atomically; returns its path."""
    path = os.path.join(output_dir, FINAL_WEIGHTS)
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)
    return path


def _truncate_history(path, epochs):
    """Keeps the header and the rows of the first ``epochs`` epochs of a
    history.csv (a killed run may have logged an epoch it did not checkpoint,
    or half a row)."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        lines = f.read().splitlines(keepends=True)
    keep = lines[:1]
    for line in lines[1:]:
        first = line.split(",", 1)[0]
        if line.endswith("\n") and first.isdigit() and int(first) < epochs:
            keep.append(line)
    if keep != lines:
        atomic_write_text(path, "".join(keep))


def schedule_length_variable(optimizer):
    """The ``schedule_total_steps`` variable bound to ``optimizer``'s ``VDSRSchedule``
    (``VDSRSchedule.bind``), or None. Reads the optimizer's ``_learning_rate``
    (a Keras internal, pinned by tests/test_keras_internals.py)."""
    return getattr(getattr(optimizer, "_learning_rate", None), "total_steps_variable", None)


def run_length(model, default):
    """The run's length in steps: the schedule's bound variable (which the
    fast engine may fit to a deadline), else ``default``."""
    var = schedule_length_variable(model.optimizer)
    return int(round(float(ops.convert_to_numpy(var)))) if var is not None else int(default)
