"""Training: optimizer and schedule from a config, two engines, callbacks, resume.

``train(config, sources, output_dir, ...)`` builds (or resumes) a VDSR model
and trains it with one of two engines that run the same ``train_step``:

* ``"fit"``: ``model.fit`` on ``vdsr_tf.data.pipeline.make_dataset`` (or the numpy
  ``PatchSampler`` where TensorFlow is missing), any backend;
* ``"fast"`` (JAX): the data on the accelerator and K steps per jitted call
  (``vdsr_tf.training.jax_engine``), for GPUs, where ``fit`` is input-bound.

It writes into ``output_dir``:

* ``config.json``: the recipe;
* ``checkpoint.npz``: model, optimizer (step, schedule position), the
  data's fingerprint and counters after the last finished epoch, or at the
  step a SIGTERM or Ctrl-C stopped the run, in one atomic write
  (``vdsr_tf.io.checkpoint``);
* ``logs/``: TensorBoard scalars and validation images (TF backend), and
  ``history.csv`` (with ``clip_fraction``: the share of gradient values the
  theta/lr clip cut);
* ``vdsr.weights.h5``: the weights at the end of the run, also when a time
  budget or a signal stopped it early.

Running the same command again resumes from the checkpoint at its step (in
the middle of an epoch after a signal); a different config or different
training data is refused, naming the difference. A SIGTERM (a preemptible
machine's notice) or Ctrl-C is honoured after the running step (``fit``) or
jitted call (fast engine): the checkpoint is written at that step, and
``Preempted`` raised (``vdsr-train`` exits 143 or 130). ``init_from`` starts a new run from earlier weights instead.
"""

import contextlib
import json
import math
import os

import keras
from absl import logging
from keras import ops

from vdsr_tf import config as config_lib
from vdsr_tf.config import DISTRIBUTIONS, ENGINES
from vdsr_tf.evaluation.metrics import PSNRMetric
from vdsr_tf.io.atomic import atomic_path, atomic_write_text, remove_stale_temporaries
from vdsr_tf.io.checkpoint import (
    CHECKPOINT,
    config_difference,
    read_state,
    restore,
    weights_digest,
)
from vdsr_tf.io.presets import LOAD_ERRORS, resolve
from vdsr_tf.models.losses import get_loss
from vdsr_tf.models.vdsr import build_vdsr, load_source, load_weights
from vdsr_tf.training.callbacks import (
    CheckpointCallback,
    Preempted,
    TimeBudget,
    ValidationCallback,
)
from vdsr_tf.training.schedule import make_optimizer, run_length

FINAL_WEIGHTS = "vdsr.weights.h5"


HISTORY = "history.csv"


def build_model(config):
    """A compiled VDSR model for a ``TrainConfig`` (its loss, PSNR metric)."""
    m = config.model
    model = build_vdsr(
        depth=m.depth,
        filters=m.filters,
        clip_theta=m.clip_theta,
        clip_mode=m.clip_mode,
        weight_decay=m.weight_decay,
        residual=m.residual,
        zero_init_residual=m.zero_init_residual,
    )
    model.compile(
        optimizer=make_optimizer(config.optim, config.steps),
        loss=get_loss(config.optim.loss),
        metrics=[PSNRMetric()],
    )
    return model


def training_data(sources, data_config, seed, data_dir=None, manual_dir=None):
    """The patch stream for ``fit``: tf.data where TensorFlow is installed,
    else (the JAX-only GPU machine) the numpy ``PatchSampler`` with the same
    per-image sampling, over folders or packed ``.npz`` files."""
    from vdsr_tf.data import degradation, pipeline

    try:
        import tensorflow  # noqa: F401
    except ImportError:
        if any(str(s).startswith("tfds:") for s in degradation._expand_sources(sources)):
            raise ValueError(
                "tfds: sources need TensorFlow; pack the images with "
                "vdsr-train --pack_to=FILE.npz on a machine that has it"
            ) from None
        logging.info("TensorFlow not installed: using the numpy PatchSampler.")
        return degradation.PatchSampler(
            degradation.load_y_planes(sources), data_config, seed
        ).batches()
    return pipeline.make_dataset(
        sources, data_config, seed=seed, data_dir=data_dir, manual_dir=manual_dir
    )


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
            raise ValueError(
                "On the JAX backend use data_parallel (multi-host JAX is "
                "configured by keras.distribution.initialize)"
            )
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


def train(
    config,
    sources,
    output_dir,
    val_dir=None,
    data_dir=None,
    time_budget_s=None,
    verbose="auto",
    extra_callbacks=(),
    manual_dir=None,
    distribute="none",
    engine="fit",
    steps_per_call=100,
    init_from=None,
    pool_workers=None,
):
    """Trains (or resumes) a VDSR model.

    Args:
        config: a ``TrainConfig``.
        sources: training images (see ``vdsr_tf.data.pipeline.make_dataset``).
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
        engine: "fit" or "fast" (JAX backend; ``vdsr_tf.training.jax_engine``).
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
            raise ValueError(
                "--engine=fast needs the JAX backend: set KERAS_BACKEND=jax "
                f"(the backend is {keras.backend.backend()!r})"
            )
        if distribute != "none":
            raise ValueError("--engine=fast runs on one device; use --engine=fit to distribute")
        if steps_per_call < 1:
            raise ValueError(f"steps_per_call must be >= 1, got {steps_per_call}")
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    try:
        with distribution_scope(distribute) as replicas:
            if replicas > 1:
                logging.info(
                    "Data-parallel training on %d devices (global batch %d).",
                    replicas,
                    config.data.batch_size,
                )
            return _train(
                config,
                sources,
                output_dir,
                val_dir,
                data_dir,
                time_budget_s,
                verbose,
                extra_callbacks,
                manual_dir,
                engine,
                steps_per_call,
                init_from,
                pool_workers,
            )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _training_planes(sources):
    """The Y planes and their fingerprint; (None, spec digest) for tfds: sources."""
    import hashlib

    from vdsr_tf.data import degradation

    expanded = degradation._expand_sources(sources)
    if any(s.startswith("tfds:") for s in expanded):
        return None, "tfds:" + hashlib.sha256(",".join(expanded).encode()).hexdigest()
    planes = degradation.load_y_planes(expanded)
    return planes, degradation.fingerprint(planes)


def load_initial_weights(model, init_from):
    """Loads ``init_from`` into ``model``: a state file (``checkpoint.npz``,
    the release job's ``state.npz``) or any weights handle
    (``vdsr_tf.io.presets``: "bundled", a preset folder or name, a
    ``.weights.h5`` or ``.keras`` file, ``hf://``, ``kaggle://``).

    Returns:
        The patches the source had seen (0 when unknown).

    Raises:
        FileNotFoundError, ValueError, ImportError, OSError: a missing file,
            weights of another architecture (named), a bad preset, a hub
            that cannot give the files; prefixed with ``init_from:``.
    """
    if os.fspath(init_from).endswith(".npz"):
        if not os.path.isfile(init_from):
            raise FileNotFoundError(f"init_from: No such state file: {init_from}")
        meta, weights, _ = read_state(init_from)
        try:
            restore(model, weights)
        except ValueError as e:
            raise ValueError(f"init_from: {init_from}: {e}") from None
        return int(meta.get("patches_total", 0))
    try:
        source = resolve(init_from)
        if source.kind == "keras":  # a whole model: its arrays, checked as a state's
            restore(model, load_source(source).get_weights())
        else:
            load_weights(model, source.weights)
    except LOAD_ERRORS as e:
        raise type(e)(f"init_from: {e}") from None
    return int((source.metadata or {}).get("patches_seen", 0))


def _train(
    config,
    sources,
    output_dir,
    val_dir,
    data_dir,
    time_budget_s,
    verbose,
    extra_callbacks,
    manual_dir,
    engine,
    steps_per_call,
    init_from,
    pool_workers,
):
    os.makedirs(output_dir, exist_ok=True)
    for path in remove_stale_temporaries(output_dir):
        logging.info("Removed %s (left by a killed run).", path)
    steps_per_epoch = min(config.steps_per_epoch, config.steps)
    epochs = math.ceil(config.steps / steps_per_epoch)
    state_path = os.path.join(output_dir, CHECKPOINT)
    planes, data_hash = _training_planes(sources)
    if engine == "fast" and planes is None:
        raise ValueError(
            "--engine=fast reads image folders or .npz packs, not tfds: sources; "
            "pack them with vdsr-train --pack_to=FILE.npz"
        )
    keras.utils.set_random_seed(config.seed)
    model = build_model(config)
    initial_epoch, initial_step, patches_before = 0, 0, 0
    meta = {"config": config_lib.to_dict(config), "data": data_hash, "engine": engine}
    if os.path.exists(state_path):
        saved, weights, optimizer = read_state(state_path)
        # A field added since the checkpoint was written takes its default
        # (the behaviour the run had), so older checkpoints still resume.
        diff = config_difference(
            config_lib.to_dict(config_lib.from_dict(saved["config"])), meta["config"]
        )
        if diff:
            raise ValueError(
                f"{output_dir} holds a checkpoint of a different config ({'; '.join(diff)}); "
                "use another --output_dir or the same settings to resume."
            )
        if saved["data"] != data_hash:
            raise ValueError(
                f"{output_dir} holds a checkpoint trained on different data (fingerprint "
                f"{saved['data'][:12]}, these sources {data_hash[:12]}); use the same "
                "images to resume, or another --output_dir"
            )
        model.optimizer.build(model.trainable_variables)
        restore(model, weights, optimizer)
        initial_epoch, initial_step = saved["epoch"], saved["step"]
        patches_before = saved.get("patches_total", 0) - saved["step"] * config.data.batch_size
        meta["init_from"] = saved.get("init_from")
        _truncate_history(os.path.join(output_dir, HISTORY), initial_epoch)
        logging.info(
            "Resuming %s at epoch %d (step %d); restored weights sha256 %s.",
            output_dir,
            initial_epoch,
            saved["step"],
            weights_digest([ops.convert_to_numpy(v) for v in model.weights]),
        )
    else:
        if init_from:
            patches_before = load_initial_weights(model, init_from)
            meta["init_from"] = str(init_from)
            logging.info(
                "New run from the weights of %s (%d patches seen).", init_from, patches_before
            )
        _write_json(os.path.join(output_dir, "config.json"), config_lib.to_dict(config))
    if initial_epoch >= epochs:
        logging.info("Run in %s is already complete (%d epochs).", output_dir, epochs)
        # Killed after its last checkpoint, a run may have no final weights, or a
        # signal's weights from earlier: write the checkpoint's (cheap).
        _write_weights(model, output_dir)
        return model, None

    log_dir = os.path.join(output_dir, "logs")
    checkpoints = CheckpointCallback(output_dir, meta, config.data.batch_size, patches_before)
    # A signal during the run's last step stops nothing: the run is finished.
    checkpoints.finished = lambda step: (
        step >= (epochs * steps_per_epoch if engine == "fit" else run_length(model, config.steps))
    )
    callbacks = []
    if val_dir:
        callbacks.append(
            ValidationCallback(
                val_dir, config.data.scales, log_dir, skip=lambda: checkpoints.stopping
            )
        )
    # The history row first, then the checkpoint: a kill between the two leaves
    # a row past the checkpoint, which the resume removes (_truncate_history).
    csv_log = keras.callbacks.CSVLogger(os.path.join(output_dir, HISTORY), append=initial_epoch > 0)
    callbacks += [csv_log, checkpoints]
    if keras.backend.backend() == "tensorflow":
        callbacks.append(keras.callbacks.TensorBoard(log_dir, update_freq="epoch"))
    if time_budget_s:
        callbacks.append(TimeBudget(time_budget_s, steps_per_epoch=steps_per_epoch))
    callbacks += list(extra_callbacks)

    def run_engine():
        """Trains from ``initial_step`` (inside epoch ``initial_epoch`` after a
        signal's checkpoint) to the run's end; returns the History."""
        if engine == "fast":
            from vdsr_tf.training import jax_engine

            pool = jax_engine.DevicePool(planes, config.data, workers=pool_workers)
            logging.info(
                "Device pool: %d degraded images, %.1f M pixels, %.0f MB, built in %.1f s.",
                pool.variants,
                pool.pixels / 1e6,
                pool.nbytes / 1e6,
                pool.build_seconds,
            )
            history = jax_engine.fit_fast(
                model,
                pool,
                config.data.batch_size,
                config.steps,
                steps_per_epoch,
                initial_epoch=initial_epoch,
                initial_step=initial_step,
                steps_per_call=steps_per_call,
                seed=config.seed,
                callbacks=callbacks,
                verbose=verbose != 0,
                preemption=checkpoints,
            )
            history.pool_seconds = pool.build_seconds
            return history

        def fit(epoch, offset, **kwargs):
            # A resumed run draws a fresh patch stream rather than replaying epoch 0's.
            seed = config.seed + 7919 * epoch + 1_000_003 * offset
            data = training_data(sources, config.data, seed, data_dir, manual_dir)
            return model.fit(
                data,
                initial_epoch=epoch,
                callbacks=callbacks,
                verbose=verbose,
                shuffle=False,
                **kwargs,
            )

        epoch, history = initial_epoch, None
        done_in_epoch = initial_step - epoch * steps_per_epoch
        end = (epoch + 1) * steps_per_epoch  # fit's epochs are all this long
        if done_in_epoch > 0 and initial_step < end:  # stopped inside this epoch: finish it
            history = fit(
                epoch, done_in_epoch, epochs=epoch + 1, steps_per_epoch=end - initial_step
            )
            epoch += 1
            csv_log.append = True
            if model.stop_training or epoch >= epochs:
                return history
        rest = fit(epoch, 0, epochs=epochs, steps_per_epoch=steps_per_epoch)
        if history is None:
            return rest
        for name, values in rest.history.items():
            history.history.setdefault(name, []).extend(values)
        history.epoch += rest.epoch
        return history

    try:
        with checkpoints.signals_caught():
            history = run_engine()
            step = int(ops.convert_to_numpy(model.optimizer.iterations))
            weights_path = _write_weights(model, output_dir)  # a signal now: exit 0
    except Preempted as e:
        if e.step is not None:
            _write_weights(model, output_dir)
        raise
    total = run_length(model, config.steps)
    if step >= total:
        logging.info("Training complete (%d steps); weights in %s", step, weights_path)
    else:
        logging.info(
            "Stopped at step %d of %d (run the same command to resume); weights so far in %s",
            step,
            total,
            weights_path,
        )
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
