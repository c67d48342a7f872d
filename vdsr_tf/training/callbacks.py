"""The callbacks of a training run: validation, checkpoints, a time budget.

* ``ValidationCallback``: PSNR per scale on a benchmark folder after each
  epoch, through the same ``Upscaler`` users run (so training validates
  the inference path), and comparison images for TensorBoard.
* ``CheckpointCallback``: the whole training state in one atomic file
  (``vdsr_tf.io.checkpoint``) after each epoch, and at the current step when
  a SIGTERM or Ctrl-C stops the run (``Preempted``).
* ``TimeBudget``: stops resumably before a wall-clock budget runs out.

Example:

```python
model.fit(vdsr_tf.patch_dataset("images/"), steps_per_epoch=100, epochs=10,
          callbacks=[vdsr_tf.ValidationCallback("Set5/", scales=(2, 3, 4))])
```
"""

import contextlib
import os
import signal
import time

import keras
from absl import logging
from keras import ops

from vdsr_tf.io.checkpoint import CHECKPOINT, save_state


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
        skip: a callable; when it returns True the epoch is not scored (a
            stopping run: ``CheckpointCallback.stopping``).
    """

    def __init__(self, set_dir, scales, log_dir=None, skip=None):
        super().__init__()
        self.skip = skip
        self.set_dir = set_dir
        self.scales = tuple(scales)
        self.log_dir = log_dir
        self._writer = None
        self._upscaler = None

    def on_epoch_end(self, epoch, logs=None):
        from vdsr_tf.evaluation.benchmark import (
            benchmark_pairs,
            comparison_strip,
            evaluate_set,
        )
        from vdsr_tf.inference.upscaler import Upscaler

        logs = logs if logs is not None else {}
        if self.skip is not None and self.skip():
            logging.info("epoch %d validation skipped: the run is stopping", epoch + 1)
            for s in self.scales:  # the same history.csv columns as every other epoch
                logs[f"val_psnr_x{s}"] = logs[f"val_ssim_x{s}"] = float("nan")
            return
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
        logging.info(
            "epoch %d validation: %s",
            epoch + 1,
            ", ".join(f"x{s} {logs[f'val_psnr_x{s}']:.2f} dB" for s in self.scales),
        )
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


class Preempted(KeyboardInterrupt):
    """Training stopped by a signal, after writing a checkpoint at ``step``
    (None: a second signal, which stops without one).

    A ``KeyboardInterrupt``, so that the command exits with 128 + ``signum``
    (143 for SIGTERM, 130 for Ctrl-C) and nothing catches it by accident.
    """

    def __init__(self, signum, step=None):
        where = f" at step {step}" if step is not None else ""
        super().__init__(f"{signal.Signals(signum).name}{where}")
        self.signum, self.step = int(signum), step


class CheckpointCallback(keras.callbacks.Callback):
    """Saves the training state (model, optimizer, counters) atomically each
    epoch, and at the current step when a signal asks the run to stop.

    Inside ``signals_caught()``, SIGTERM (a preemptible machine's notice) and
    SIGINT (Ctrl-C) only set a flag; after the step that is running (``fit``:
    its batch end; the fast engine: its jitted call), the state is written at
    that step and ``Preempted`` is raised. A second signal stops as soon as
    the running native call returns, without a new checkpoint (the last one
    stays). A signal in the run's last step stops nothing (``finished``).

    Args:
        output_dir: the run folder (``checkpoint.npz`` goes there).
        meta: dict stored with every state (config, data fingerprint, ...);
            ``epoch`` (epochs finished), ``step`` and ``patches_total`` are
            added.
        batch_size: patches per step, to count patches.
        patches_before: patches seen by the runs this one started from.
    """

    def __init__(self, output_dir, meta, batch_size, patches_before=0):
        super().__init__()
        self.output_dir = output_dir
        self.meta = dict(meta)
        self.batch_size = batch_size
        self.patches_before = patches_before
        self.signum = None  # the signal that asked the run to stop
        self.finished = lambda step: False  # whether ``step`` ends the run
        self._epoch = 0  # the epoch in progress
        self._closing = False

    def save(self, epochs_done):
        """Writes the state now; returns its step."""
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        meta = dict(
            self.meta,
            epoch=epochs_done,
            step=step,
            patches_total=self.patches_before + step * self.batch_size,
        )
        save_state(os.path.join(self.output_dir, CHECKPOINT), self.model, meta)
        return step

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self.stop_if_signalled()

    def on_epoch_end(self, epoch, logs=None):
        step = self.save(epoch + 1)
        if self.signum is not None and not self.finished(step):  # came in its last step
            self._stop(step)

    def on_train_batch_end(self, batch, logs=None):
        # After an epoch's last step the epoch end comes first (its history
        # row, then the checkpoint), so that the epoch is logged once.
        if batch + 1 < (self.params or {}).get("steps", batch + 2):
            self.stop_if_signalled()

    @property
    def stopping(self):
        """Whether a signal asked the run to stop (validation is skipped then)."""
        return self.signum is not None

    def stop_if_signalled(self):
        """After a signal: the checkpoint at the current step, then ``Preempted``."""
        if self.signum is not None:
            self._stop(self.save(self._epoch))

    def _stop(self, step):
        logging.info(
            "Stopped by %s at step %d: checkpoint written (run the same command to resume).",
            signal.Signals(self.signum).name,
            step,
        )
        raise Preempted(self.signum, step)

    @contextlib.contextmanager
    def signals_caught(self, signals=(signal.SIGTERM, signal.SIGINT)):
        """While active, ``signals`` ask for a stop at the next step's end
        (main thread only; elsewhere signals are left alone)."""

        def on_signal(signum, frame):
            if self._closing:
                return
            if self.signum is not None:  # the second one: stop now (after a native call)
                raise Preempted(signum)
            self.signum = signum

        previous = {}
        try:
            for s in signals:
                previous[s] = signal.signal(s, on_signal)
        except ValueError:  # not the main thread
            pass
        self._closing = False
        try:
            yield self
        finally:
            self._closing = True  # a signal while the handlers are put back is ignored
            for s, handler in previous.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)


class TimeBudget(keras.callbacks.Callback):
    """Stops training at an epoch end when the next epoch would pass the budget.

    Args:
        seconds: budget counted from the start of training, or None.
        deadline: a ``time.monotonic()`` value not to pass, or None.
        steps_per_epoch: the steps of a full epoch; with it, an epoch of
            fewer steps (the rest of one, after a resume) is scaled up to a
            full one in the estimate.
    """

    def __init__(self, seconds=None, deadline=None, steps_per_epoch=None):
        super().__init__()
        self.seconds = seconds
        self.deadline = deadline
        self.steps_per_epoch = steps_per_epoch
        self._start = self._epoch_start = None

    def on_train_begin(self, logs=None):
        if self._start is None:  # a resumed partial epoch is a second fit call
            self._start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        took = now - self._epoch_start
        steps = (self.params or {}).get("steps")
        if self.steps_per_epoch and steps and steps < self.steps_per_epoch:
            took *= self.steps_per_epoch / steps
        next_end = now + took
        limits = [self._start + self.seconds if self.seconds else None, self.deadline]
        if any(limit is not None and next_end > limit for limit in limits):
            logging.info(
                "Time budget reached after epoch %d; stopping (run the same "
                "command again to resume).",
                epoch + 1,
            )
            self.model.stop_training = True
