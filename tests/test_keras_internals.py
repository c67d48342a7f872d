"""Pins of the Keras internals the training code relies on.

If a Keras upgrade renames or reshapes one of these, this file fails first,
with the name of the internal, instead of a training run failing deep inside
a jitted step. Used by ``vdsr_tf.models.vdsr.VDSR._jax_train_step``,
``vdsr_tf.training.jax_engine`` and ``vdsr_tf.training.trainer``.
"""

import inspect

import keras
import pytest


def _params(fn):
    return list(inspect.signature(fn).parameters)


def test_jax_trainer_compute_loss_and_updates():
    pytest.importorskip("jax")
    from keras.src.backend.jax.trainer import JAXTrainer

    assert _params(JAXTrainer.compute_loss_and_updates) == [
        "self",
        "trainable_variables",
        "non_trainable_variables",
        "metrics_variables",
        "x",
        "y",
        "sample_weight",
        "training",
        "optimizer_variables",
    ]


def test_jax_trainer_update_metrics_variables():
    pytest.importorskip("jax")
    from keras.src.backend.jax.trainer import JAXTrainer

    assert _params(JAXTrainer._update_metrics_variables) == [
        "self",
        "metrics_variables",
        "unscaled_loss",
        "x",
        "y",
        "y_pred",
        "sample_weight",
    ]


def test_trainer_symbolic_build_takes_a_data_batch():
    from keras.src.trainers.trainer import Trainer

    assert "data_batch" in _params(Trainer._symbolic_build)


def test_optimizer_keeps_its_schedule_in_learning_rate_attribute():
    from vdsr_tf import config as C
    from vdsr_tf.training.schedule import (
        VDSRSchedule,
        make_optimizer,
        schedule_length_variable,
    )

    opt = make_optimizer(C.get_preset("release").optim, 100)
    assert isinstance(opt._learning_rate, VDSRSchedule)
    assert opt._learning_rate.total_steps_variable in opt.variables
    assert schedule_length_variable(opt) is opt._learning_rate.total_steps_variable


def test_stateless_scope_and_stateless_apply_are_public():
    assert hasattr(keras, "StatelessScope")
    assert "optimizer_variables" in _params(keras.optimizers.Optimizer.stateless_apply)
