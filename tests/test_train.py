"""Training with fit: a tiny run learns, checkpoints resume, schedules behave."""

import os
import signal

import keras
import numpy as np
import pytest

from vdsr_tf import config as C
from vdsr_tf.data import degradation, pipeline
from vdsr_tf.io import images as imageio
from vdsr_tf.io.checkpoint import read_state
from vdsr_tf.training.schedule import VDSRSchedule, make_schedule
from vdsr_tf.training.trainer import train

SAMPLES = imageio.sample_images_dir()
HR = os.path.join(SAMPLES, "HR")


def tiny_config(**updates):
    base = {
        "model.depth": 3,
        "model.filters": 8,
        "data.patch_size": 24,
        "data.batch_size": 8,
        "data.patches_per_image": 8,
        "data.shuffle_buffer": 32,
        "steps": 6,
        "steps_per_epoch": 2,
        "optim.optimizer": "adam",
        "optim.learning_rate": 1e-3,
        "optim.schedule": "constant",
        "optim.warmup_fraction": 0.0,
    }
    base.update(updates)
    return C.override(C.get_preset("paper"), **base)


def _data_mse(model, batch):
    x, y = batch
    return float(np.mean((np.asarray(model(x)) - y) ** 2))


@pytest.mark.slow(reason="trains")
def test_tiny_training_run_lowers_the_loss(tmp_path):
    cfg = tiny_config(steps=60, steps_per_epoch=20)  # three epochs: the curve has a slope
    held_out = next(iter(pipeline.make_dataset(HR, cfg.data, seed=123)))
    held_out = (held_out[0].numpy(), held_out[1].numpy())
    keras.utils.set_random_seed(cfg.seed)
    from vdsr_tf.training.trainer import build_model

    before = _data_mse(build_model(cfg), held_out)
    model, history = train(cfg, HR, str(tmp_path), verbose=0)
    after = _data_mse(model, held_out)
    assert after < 0.7 * before, (before, after)
    assert len(history.history["loss"]) == 3
    assert history.history["loss"][-1] < history.history["loss"][0]
    for name in ("config.json", "checkpoint.npz", "vdsr.weights.h5", "history.csv"):
        assert os.path.exists(tmp_path / name), name
    assert C.from_json((tmp_path / "config.json").read_text()) == cfg
    assert any(p.startswith("events") for p in os.listdir(tmp_path / "logs" / "train"))


class _Interrupt(Exception):
    pass


class _StopAfter(keras.callbacks.Callback):
    """Simulates a crash at an epoch end, after the checkpoint was written."""

    def __init__(self, epochs, record):
        super().__init__()
        self.epochs, self.record = epochs, record

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            self.record["iterations"] = int(np.asarray(self.model.optimizer.iterations))
            self.record["opt"] = [np.array(v) for v in self.model.optimizer.variables]
            self.record["weights"] = [np.array(w) for w in self.model.get_weights()]
            raise _Interrupt()


class _Record(keras.callbacks.Callback):
    def __init__(self, record):
        super().__init__()
        self.record = record

    def on_train_begin(self, logs=None):
        self.record["iterations"] = int(np.asarray(self.model.optimizer.iterations))
        self.record["opt"] = [np.array(v) for v in self.model.optimizer.variables]
        self.record["weights"] = [np.array(w) for w in self.model.get_weights()]

    def on_epoch_begin(self, epoch, logs=None):
        self.record.setdefault("epochs", []).append(epoch)


@pytest.mark.slow(reason="trains, interrupts and resumes")
def test_resume_after_interruption(tmp_path):
    cfg = tiny_config()
    out = str(tmp_path / "run")
    at_crash, at_resume = {}, {}
    with pytest.raises(_Interrupt):
        train(cfg, HR, out, verbose=0, extra_callbacks=[_StopAfter(2, at_crash)])
    meta = read_state(os.path.join(out, "checkpoint.npz"))[0]
    assert (meta["epoch"], meta["step"], meta["patches_total"]) == (2, 4, 4 * 8)
    assert meta["data"] == degradation.fingerprint(degradation.load_y_planes(HR))
    assert not os.path.exists(os.path.join(out, "vdsr.weights.h5"))
    model, _ = train(cfg, HR, out, verbose=0, extra_callbacks=[_Record(at_resume)])
    # The same command continues at the right step with the optimizer state.
    assert at_resume["iterations"] == at_crash["iterations"] == 4
    assert at_resume["epochs"] == [2]
    for a, b in zip(at_resume["opt"], at_crash["opt"]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(at_resume["weights"], at_crash["weights"]):
        np.testing.assert_array_equal(a, b)
    assert int(np.asarray(model.optimizer.iterations)) == 6
    assert os.path.exists(os.path.join(out, "vdsr.weights.h5"))
    # Running it again once complete does nothing, except write the final weights if a
    # kill came between the last checkpoint and them.
    assert train(cfg, HR, out, verbose=0)[1] is None
    final = [np.array(w) for w in model.get_weights()]
    os.remove(os.path.join(out, "vdsr.weights.h5"))
    again, history = train(cfg, HR, out, verbose=0)
    assert history is None
    again.load_weights(os.path.join(out, "vdsr.weights.h5"))
    for a, b in zip(again.get_weights(), final):
        np.testing.assert_array_equal(a, b)
    # A killed run's CSV row past its checkpoint (and half a row) is dropped on resume.
    history_csv = os.path.join(out, "history.csv")
    rows = open(history_csv).read().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2"]
    from vdsr_tf.training.trainer import _truncate_history

    with open(history_csv, "a") as f:
        f.write("3,0.1,0.2\n4,0.1")
    _truncate_history(history_csv, 2)
    assert open(history_csv).read().splitlines() == rows[:3]


class _SignalAt(keras.callbacks.Callback):
    """Sends this process SIGTERM at the end of batch ``batch`` of epoch ``epoch``
    (after the checkpoint callback's own check of that batch)."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self._now = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self._now = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self._now, batch) == (self.epoch, self.batch):
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow(reason="trains, is stopped by SIGTERM twice, resumes")
def test_sigterm_checkpoints_the_current_step_and_the_run_resumes_there(tmp_path):
    from vdsr_tf.training.callbacks import Preempted

    cfg = tiny_config(steps=12, steps_per_epoch=4)
    out = str(tmp_path / "run")
    previous = signal.getsignal(signal.SIGTERM)
    # Mid-epoch: signalled at epoch 1's first batch end, stopped after its second step.
    with pytest.raises(Preempted) as stop:
        train(cfg, HR, out, verbose=0, extra_callbacks=[_SignalAt(1, 0)])
    assert (stop.value.signum, stop.value.step) == (signal.SIGTERM, 6)
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is put back
    meta = read_state(os.path.join(out, "checkpoint.npz"))[0]
    assert (meta["epoch"], meta["step"], meta["patches_total"]) == (1, 6, 6 * 8)
    assert os.path.exists(os.path.join(out, "vdsr.weights.h5"))  # the weights so far
    # The same command resumes at step 6, finishes epoch 1 (2 steps), and is
    # signalled again on its last step: the epoch ends first (history row, checkpoint).
    at_resume = {}
    with pytest.raises(Preempted) as stop:
        train(cfg, HR, out, verbose=0, extra_callbacks=[_Record(at_resume), _SignalAt(1, 0)])
    assert at_resume["iterations"] == 6 and at_resume["epochs"] == [1]
    assert stop.value.step == 8
    meta = read_state(os.path.join(out, "checkpoint.npz"))[0]
    assert (meta["epoch"], meta["step"]) == (2, 8)
    at_resume = {}
    model, history = train(cfg, HR, out, verbose=0, extra_callbacks=[_Record(at_resume)])
    assert at_resume["iterations"] == 8 and at_resume["epochs"] == [2]
    assert int(np.asarray(model.optimizer.iterations)) == 12
    rows = open(os.path.join(out, "history.csv")).read().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2"]  # each epoch once


@pytest.mark.slow(reason="trains, is stopped by SIGTERM, resumes")
def test_sigterm_in_a_last_epoch_past_the_planned_steps(tmp_path):
    """10 steps of 4 per epoch: fit runs 3 whole epochs (12 steps). Stopped at step
    10, the resumed run finishes the epoch (2 steps) and ends at 12, as uninterrupted."""
    from vdsr_tf.training.callbacks import Preempted

    cfg = tiny_config(steps=10, steps_per_epoch=4)
    out = str(tmp_path / "run")
    with pytest.raises(Preempted) as stop:
        train(cfg, HR, out, verbose=0, extra_callbacks=[_SignalAt(2, 0)])
    assert stop.value.step == 10
    model, _ = train(cfg, HR, out, verbose=0)
    assert int(np.asarray(model.optimizer.iterations)) == 12
    rows = open(os.path.join(out, "history.csv")).read().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2"]


@pytest.mark.slow(reason="trains, then resumes")
def test_resume_refuses_a_different_config(tmp_path):
    out = str(tmp_path / "run")
    train(tiny_config(steps=2), HR, out, verbose=0)
    with pytest.raises(ValueError, match=r"different config \(seed: 0 -> 1\)"):
        train(tiny_config(steps=2, seed=1), HR, out, verbose=0)


@pytest.mark.slow(reason="trains, then resumes on packed data")
def test_resume_refuses_different_data_but_takes_the_same_data_packed(tmp_path):
    cfg = tiny_config(steps=4)
    out = str(tmp_path / "run")
    train(cfg, HR, out, verbose=0, time_budget_s=1e-3)
    one = tmp_path / "one"
    one.mkdir()
    first = sorted(os.listdir(HR))[0]
    (one / first).write_bytes(open(os.path.join(HR, first), "rb").read())
    with pytest.raises(ValueError, match="different data"):
        train(cfg, str(one), out, verbose=0)
    # The same images as an .npz pack are the same data: the run resumes.
    pack = str(tmp_path / "hr.npz")
    degradation.pack_y_planes(HR, pack)
    model, history = train(cfg, pack, out, verbose=0)
    assert len(history.history["loss"]) == 1
    assert int(np.asarray(model.optimizer.iterations)) == 4


@pytest.mark.slow(reason="trains twice")
def test_init_from_starts_a_new_run_from_earlier_weights(tmp_path):
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    model_a, _ = train(tiny_config(steps=2), HR, first, verbose=0)
    model_b, _ = train(
        tiny_config(steps=2),
        HR,
        second,
        verbose=0,
        time_budget_s=1e-3,
        init_from=os.path.join(first, "checkpoint.npz"),
        extra_callbacks=[_Record(rec := {})],
    )
    assert rec["iterations"] == 0  # a new run: fresh optimizer and schedule
    for a, b in zip(model_a.get_weights(), rec["weights"]):
        np.testing.assert_array_equal(a, b)
    meta = read_state(os.path.join(second, "checkpoint.npz"))[0]
    assert meta["patches_total"] == 2 * 8 + 2 * 8  # 2 steps before, 2 in this first epoch
    with pytest.raises(ValueError, match="a different architecture"):
        train(
            tiny_config(steps=2, **{"model.filters": 4}),
            HR,
            str(tmp_path / "c"),
            verbose=0,
            init_from=os.path.join(first, "checkpoint.npz"),
        )


@pytest.mark.slow(reason="trains with validation")
def test_validation_logs_per_scale_psnr(tmp_path):
    cfg = tiny_config(steps=2, **{"data.scales": "2,3", "model.zero_init_residual": True})
    _, history = train(cfg, HR, str(tmp_path), val_dir=SAMPLES, verbose=0)
    for s in (2, 3):
        # Two steps from a zero-initialised residual: near bicubic (~30 dB).
        assert 25 < history.history[f"val_psnr_x{s}"][-1] < 40
    assert os.listdir(tmp_path / "logs" / "validation")


@pytest.mark.slow(reason="trains")
def test_time_budget_stops_resumably_and_writes_weights(tmp_path):
    cfg = tiny_config(steps=8)
    _, history = train(cfg, HR, str(tmp_path), verbose=0, time_budget_s=1e-3)
    assert len(history.history["loss"]) == 1
    assert read_state(str(tmp_path / "checkpoint.npz"))[0]["epoch"] == 1
    assert os.path.exists(tmp_path / "vdsr.weights.h5")


def test_step_schedule_with_warmup():
    optim = C.get_preset("paper").optim
    sched = make_schedule(C.OptimConfig(**{**optim.__dict__, "warmup_fraction": 0.1}), 100)
    lr = [float(sched(s)) for s in range(100)]
    assert lr[0] == pytest.approx(0.001)
    assert lr[5] == pytest.approx(0.001 + 0.099 * 0.5)
    assert lr[10] == pytest.approx(0.1)
    assert lr[24] == pytest.approx(0.1) and lr[25] == pytest.approx(0.01)
    assert lr[50] == pytest.approx(0.001) and lr[75] == pytest.approx(0.0001)


def test_cosine_schedule_and_serialisation():
    sched = VDSRSchedule(1.0, 100, kind="cosine", warmup_steps=10, warmup_start=0.0)
    assert float(sched(0)) == pytest.approx(0.0)
    assert float(sched(10)) == pytest.approx(1.0)
    assert float(sched(55)) == pytest.approx(0.5, abs=1e-6)
    assert float(sched(100)) == pytest.approx(0.0, abs=1e-6)
    again = VDSRSchedule.from_config(sched.get_config())
    assert float(again(55)) == pytest.approx(float(sched(55)))


@pytest.mark.parametrize("lr", [0.5, 0.05])
def test_fixed_clipvalue_bounds_every_gradient_value_whatever_the_lr(lr):
    # optim.clipvalue is the paper's "fixed clip" arm: the bound does not move
    # with the learning rate (the adaptive theta/lr clip does).
    from vdsr_tf.training.schedule import make_optimizer

    optim = C.OptimConfig(
        optimizer="sgd", learning_rate=lr, momentum=0.0, schedule="constant", clipvalue=0.1
    )
    opt = make_optimizer(optim, total_steps=10)
    w = keras.Variable(np.zeros(3, np.float32))
    opt.apply([keras.ops.convert_to_tensor(np.array([5.0, -5.0, 0.05], np.float32))], [w])
    np.testing.assert_allclose(np.asarray(w), [-lr * 0.1, lr * 0.1, -lr * 0.05], rtol=1e-6)
