"""The learning rate over a run, and the optimizer that follows it.

``VDSRSchedule``: linear warm-up, then the paper's step decay (lr / 10 at
given fractions of the run), cosine or constant; ``make_optimizer`` builds
SGD (momentum), Adam or AdamW from an ``OptimConfig``. The run's length is a
variable of the optimizer (``schedule_length_variable``), saved with it, so a
resumed run keeps its schedule (``run_length``).
"""

import math

import keras
from keras import ops


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

    def __init__(
        self,
        peak,
        total_steps,
        kind="step",
        boundaries=(),
        factor=10.0,
        warmup_steps=0,
        warmup_start=0.01,
    ):
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
            shape=(),
            initializer=keras.initializers.Constant(float(self.total_steps)),
            dtype="float32",
            name="schedule_total_steps",
        )
        return self.total_steps_variable

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = ops.convert_to_tensor(self.peak, "float32")
        if self.kind == "step":
            for boundary in self.boundaries:
                lr = ops.where(step >= boundary, lr / self.factor, lr)
        elif self.kind == "cosine":
            total = (
                float(self.total_steps)
                if self.total_steps_variable is None
                else ops.cast(self.total_steps_variable, "float32")
            )
            span = ops.maximum(total - self.warmup_steps, 1.0)
            progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            lr = lr * 0.5 * (1.0 + ops.cos(math.pi * progress))
        if self.warmup_steps:
            frac = ops.clip(step / self.warmup_steps, 0.0, 1.0)
            ramp = self.warmup_start + (1.0 - self.warmup_start) * frac
            lr = ops.where(step < self.warmup_steps, self.peak * ramp, lr)
        return lr

    def get_config(self):
        return dict(
            peak=self.peak,
            total_steps=self.total_steps,
            kind=self.kind,
            boundaries=self.boundaries,
            factor=self.factor,
            warmup_steps=self.warmup_steps,
            warmup_start=self.warmup_start,
        )


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
