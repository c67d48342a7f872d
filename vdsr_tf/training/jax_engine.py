"""The fast training engine (JAX): the data on the accelerator, K steps per call.

``fit`` on JAX is input-bound on a GPU (9-15k patches/s of 41 x 41 on an
H100, against about 118k/s for the card's bf16 limit): batches are cut on the
host and copied over, one step per dispatch. This engine removes both costs
and keeps everything else:

* ``DevicePool``: every (image, down-size factor, scale) combination of the
  training set is degraded once on the host, with the same maths as the
  ``tf.data`` pipeline (``vdsr_tf.data.degradation.degraded_pair``: MATLAB-exact bicubic,
  the 1.0/0.7/0.5 down-size augmentation), in parallel processes, and put on
  the device (inputs float16, targets uint8; about 0.5 GB for the 291
  images). Batches are cut on the device: a uniform (image, factor, scale)
  combination, a uniform position, one of the 8 flips/rotations, which is
  the distribution the ``tf.data`` pipeline draws from.
* ``make_multi_step``: one jitted call runs the model's own JAX
  ``train_step(state, data)`` K times in a ``lax.scan``, sampling each batch
  on the device. The loss, the theta/lr clip and the optimizer update exist
  only in ``VDSR.train_step``.
* ``fit_fast``: the epoch loop around it, driving the same Keras callbacks
  as ``fit`` (checkpoints, CSV history, validation, time budget).
* ``jax_forward``: inference for validation and evaluation that pads images
  to a few bucket shapes and masks the padding after every convolution, so
  one compile serves many image sizes and the result equals the unpadded
  network's.

Needs ``KERAS_BACKEND=jax``; imports without TensorFlow.
"""

import concurrent.futures
import math
import multiprocessing
import os
import sys
import time
import types

import jax
import jax.numpy as jnp
import keras
import numpy as np
from absl import logging

from vdsr_tf.data.degradation import degraded_variants
from vdsr_tf.ops.dihedral import dihedral_tables
from vdsr_tf.ops.imresize import unit_levels
from vdsr_tf.training.schedule import run_length, schedule_length_variable


def _check_backend():
    if keras.backend.backend() != "jax":
        raise ValueError(
            "the fast engine needs the JAX backend: set KERAS_BACKEND=jax "
            f"(the backend is {keras.backend.backend()!r}); or use --engine=fit"
        )


# -- the device-resident pool -------------------------------------------------
def build_host_pool(planes, data_config, workers=None):
    """Every degraded (x, y) pair of the training set, on the host.

    Args:
        planes: list of uint8 (H, W) HR Y planes.
        data_config: a ``DataConfig`` (patch_size, scales, downsize).
        workers: processes to use; None uses every core, 1 none.

    Returns:
        A list of ``(x float16, y uint8)`` (H', W') pairs, in image order.
    """
    c = data_config
    jobs = [(p, tuple(c.downsize), tuple(c.scales), c.patch_size) for p in planes]
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        results = [degraded_variants(*job) for job in jobs]
    else:
        # spawn, not fork: the parent may hold JAX's or TensorFlow's threads.
        # The workers need only vdsr_tf.data.degradation; hiding the caller's script from
        # spawn keeps it from re-running a script without a __main__ guard.
        ctx = multiprocessing.get_context("spawn")
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as ex:
                results = list(ex.map(degraded_variants, *zip(*jobs), chunksize=4))
        finally:
            sys.modules["__main__"] = main
    return [pair for variants in results for pair in variants]


class DevicePool:
    """The training set's degraded image pairs on the accelerator.

    Args:
        planes: list of uint8 (H, W) HR Y planes (``data.load_y_planes``).
        data_config: a ``DataConfig``; ``patch_size``, ``scales``,
            ``downsize`` and ``augment`` are used.
        workers: host processes for the degradation (None: every core).

    Attributes:
        arrays: the device arrays, passed to ``sample`` (a tuple).
        variants: number of degraded image pairs.
        pixels: their total pixel count.
        build_seconds: wall time of the host work and the copy to the device.
    """

    def __init__(self, planes, data_config, workers=None):
        start = time.perf_counter()
        self.patch_size = p = data_config.patch_size
        self.augment = bool(data_config.augment)
        pairs = build_host_pool(planes, data_config, workers)
        if not pairs:
            raise ValueError(f"No training image is at least {p} x {p} pixels")
        sizes = np.array([x.shape for x, _ in pairs], np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes[:, 0] * sizes[:, 1])[:-1]])
        self.pixels = int(np.sum(sizes[:, 0] * sizes[:, 1]))
        if self.pixels >= 2**31:
            raise ValueError(
                f"The pool has {self.pixels:,} pixels; the device indexing "
                "is int32 (at most 2**31): use fewer images or downsize factors"
            )
        x = np.concatenate([a.ravel() for a, _ in pairs])
        y = np.concatenate([b.ravel() for _, b in pairs])
        rows, cols = dihedral_tables(p)
        levels = unit_levels()  # the very floats of the numpy pipeline
        self.variants = len(pairs)
        self.arrays = tuple(
            jax.device_put(a)
            for a in (
                x,
                y,
                offsets.astype(np.int32),
                sizes[:, 0].astype(np.int32),
                sizes[:, 1].astype(np.int32),
                rows,
                cols,
                levels,
            )
        )
        jax.block_until_ready(self.arrays)
        self.build_seconds = time.perf_counter() - start
        self.nbytes = sum(int(a.nbytes) for a in self.arrays)

    def sample(self, arrays, key, batch_size):
        """A batch cut on the device (traceable; call inside ``jit``).

        Args:
            arrays: ``self.arrays`` (an argument, not a closure, so that the
                jitted function does not embed the pool as a constant).
            key: a JAX PRNG key.
            batch_size: B.

        Returns:
            ``(x, y)`` float32 (B, P, P, 1): bicubic input and HR target.
        """
        x, y, offsets, heights, widths, rows, cols, levels = arrays
        p = self.patch_size
        kv, kt, kl, kd = jax.random.split(key, 4)
        v = jax.random.randint(kv, (batch_size,), 0, offsets.shape[0])
        h, w = heights[v], widths[v]
        top = jax.random.randint(kt, (batch_size,), 0, h - p + 1)
        left = jax.random.randint(kl, (batch_size,), 0, w - p + 1)
        if self.augment:
            k = jax.random.randint(kd, (batch_size,), 0, 8)
        else:
            k = jnp.zeros((batch_size,), jnp.int32)
        e = (slice(None), None, None)
        index = offsets[v][e] + (top[e] + rows[k]) * w[e] + left[e] + cols[k]
        xb = x[index].astype(jnp.float32)[..., None]
        yb = levels[y[index].astype(jnp.int32)][..., None]
        return xb, yb


# -- the multi-step driver ----------------------------------------------------
def get_state(model):
    """The model's JAX training state ``(trainable, non_trainable, optimizer, metrics)``."""
    return (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )


def set_state(model, state):
    """Writes a JAX training state back into the model's variables."""
    trainable, non_trainable, optimizer, metrics = state
    for refs, values in (
        (model.trainable_variables, trainable),
        (model.non_trainable_variables, non_trainable),
        (model.optimizer.variables, optimizer),
        (model.metrics_variables, metrics),
    ):
        for ref, value in zip(refs, values):
            ref.assign(value)


def make_multi_step(model, pool, batch_size, steps, on_trace=None, unroll=None):
    """A jitted ``f(state, key, pool.arrays) -> (state, key, logs)``: K steps.

    Each of the ``steps`` iterations samples a batch on the device and calls
    ``model.train_step(state, batch)``, the same function ``fit`` calls.
    ``logs`` are those of the last step (epoch averages of the metrics).

    Args:
        model: a compiled, built VDSR model (JAX backend).
        pool: a ``DevicePool``.
        batch_size: patches per step.
        steps: K, steps per call.
        on_trace: called each time the function is traced (tests count them).
        unroll: ``lax.scan``'s unroll. None: fully unrolled on the CPU
            backend, where XLA runs convolutions inside a rolled loop about
            10x slower (measured: 43 against 504 patches/s for a 5 x 16
            network, BUILD.md), a rolled loop elsewhere (compile time does
            not grow with K; 31k patches/s of 48 x 48 on an H200).
    """
    _check_backend()
    if unroll is None:
        unroll = True if jax.default_backend() == "cpu" else 1

    def multi(state, key, arrays):
        if on_trace is not None:
            on_trace()

        def body(carry, _):
            state, key = carry
            key, sub = jax.random.split(key)
            logs, state = model.train_step(state, pool.sample(arrays, sub, batch_size))
            return (state, key), logs

        if unroll is True:  # a Python loop: no XLA while loop at all (even for K = 1)
            carry = (state, key)
            for _ in range(steps):
                carry, logs = body(carry, None)
            return carry + (logs,)
        (state, key), logs = jax.lax.scan(body, (state, key), None, length=steps, unroll=unroll)
        return state, key, jax.tree_util.tree_map(lambda v: v[-1], logs)

    return jax.jit(multi)


def build_for_training(model, batch_size, patch_size):
    """Creates the optimizer's and the compiled metrics' variables, as ``fit`` does.

    Uses Keras's ``_symbolic_build`` (an internal, pinned by
    tests/test_keras_internals.py).
    """
    spec = np.zeros((batch_size, patch_size, patch_size, 1), np.float32)
    model._symbolic_build(data_batch=(spec, spec))
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


class FitScheduleToDeadline(keras.callbacks.Callback):
    """Sets the schedule's length so that the cosine ends at ``deadline``.

    After each epoch past the first (which holds the compile), measures the
    steps per second and sets the bound ``schedule_total_steps`` variable to
    the step that the deadline allows, rounded down to ``multiple``. The
    GPU release job uses it: whatever the card's speed, the run ends with a
    finished cycle.

    Args:
        deadline: ``time.monotonic()`` value by which training must end.
        multiple: steps per call (the total is kept a multiple of it).
        floor: never set a total below this step count.
    """

    def __init__(self, deadline, multiple, floor=0):
        super().__init__()
        self.deadline, self.multiple, self.floor = deadline, multiple, floor
        self._t = self._step = None
        self.rate = None

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        step = int(np.asarray(self.model.optimizer.iterations))
        if self._t is not None and step > self._step:
            self.rate = (step - self._step) / (now - self._t)
            left = max(self.deadline - now, 0.0)
            total = step + int(self.rate * left) // self.multiple * self.multiple
            total = max(total, self.floor, step)
            schedule_length_variable(self.model.optimizer).assign(float(total))
        self._t, self._step = now, step


def fit_fast(
    model,
    pool,
    batch_size,
    total_steps,
    steps_per_epoch,
    initial_epoch=0,
    steps_per_call=100,
    seed=0,
    callbacks=(),
    verbose=True,
    initial_step=None,
    preemption=None,
):
    """Trains like ``model.fit`` with the data on the device.

    Epoch e covers steps ``[e * steps_per_epoch, (e + 1) * steps_per_epoch)``
    (the last one ends at the run's length, which the schedule's bound
    variable may change during training: ``FitScheduleToDeadline``). Keras
    callbacks see the same hooks and logs as under ``fit``; the model's
    variables hold the current state whenever a callback runs. The batches
    of the call that starts at step s come from ``fold_in(key(seed), s)``,
    so a run resumed at any call boundary (an epoch's end, or the step a
    signal stopped it at) draws exactly what an uninterrupted one would.

    Args:
        model: a compiled VDSR model (JAX backend).
        pool: a ``DevicePool``.
        batch_size: patches per step.
        total_steps: the run's length when the schedule has no bound variable.
        steps_per_epoch: steps between callbacks' epoch ends.
        initial_epoch: the epoch to start at (resume).
        initial_step: the step to start at, inside ``initial_epoch`` (a
            checkpoint written on a signal); None: the epoch's first.
        steps_per_call: K, train steps per jitted call; reduced to a divisor
            of ``steps_per_epoch``.
        seed: sampling seed.
        callbacks: Keras callbacks.
        verbose: log each epoch.
        preemption: a ``CheckpointCallback`` checked after each call:
            when it is ``stopping`` (a signal came), the state is copied into
            the model and its ``stop_if_signalled`` writes the checkpoint
            and raises (after an epoch's last call, its epoch end does).

    Returns:
        The ``keras.callbacks.History``, with ``compile_seconds`` (the first
        call's compile time) and ``train_seconds`` attributes set.
    """
    _check_backend()
    k = math.gcd(int(steps_per_call), int(steps_per_epoch))
    if k != steps_per_call:
        logging.info(
            "steps_per_call %d does not divide steps_per_epoch %d; using %d.",
            steps_per_call,
            steps_per_epoch,
            k,
        )
    build_for_training(model, batch_size, pool.patch_size)
    history = keras.callbacks.History()
    cbs = keras.callbacks.CallbackList(list(callbacks) + [history], model=model)
    compiled = {}
    history.compile_seconds = 0.0
    model.stop_training = False
    cbs.on_train_begin()
    start = time.monotonic()
    epoch = initial_epoch
    first = initial_epoch * steps_per_epoch if initial_step is None else initial_step
    while not model.stop_training:
        step = start_step = max(epoch * steps_per_epoch, first)
        end = min((epoch + 1) * steps_per_epoch, run_length(model, total_steps))
        if step >= end:
            break
        model.reset_metrics()
        cbs.on_epoch_begin(epoch)
        state = get_state(model)
        t0 = time.monotonic()
        compile_s = 0.0
        while step < end:
            n = min(k, end - step)
            key = jax.random.fold_in(jax.random.key(seed), step)
            if n not in compiled:
                c0 = time.monotonic()
                fn = make_multi_step(model, pool, batch_size, n)
                compiled[n] = fn.lower(state, key, pool.arrays).compile()
                compile_s += time.monotonic() - c0
            state, _, logs = compiled[n](state, key, pool.arrays)
            step += n
            if preemption is not None and preemption.stopping and step < end:
                set_state(model, state)
                preemption.stop_if_signalled()
        jax.block_until_ready(state)
        seconds = time.monotonic() - t0 - compile_s
        history.compile_seconds += compile_s
        set_state(model, state)
        logs = {name: float(np.asarray(v)) for name, v in logs.items()}
        logs["patches_per_s"] = (end - start_step) * batch_size / max(seconds, 1e-9)
        if verbose:
            logging.info(
                "epoch %d (step %d): %s",
                epoch + 1,
                end,
                ", ".join(f"{name} {v:.4g}" for name, v in logs.items()),
            )
        cbs.on_epoch_end(epoch, logs)
        epoch += 1
    cbs.on_train_end()
    history.train_seconds = time.monotonic() - start
    return history
