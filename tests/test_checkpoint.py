"""Training state: one atomic file, refused when it does not fit."""

import os

import numpy as np
import pytest

from vdsr_tf.io import checkpoint
from vdsr_tf.models.vdsr import build_vdsr


def test_state_round_trip_with_and_without_optimizer(tmp_path):
    import keras

    model = build_vdsr(depth=3, filters=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.optimizer.build(model.trainable_variables)
    path = str(tmp_path / "s.npz")
    checkpoint.save_state(path, model, {"step": 3, "note": "x"})
    meta, weights, opt = checkpoint.read_state(path)
    assert meta == {"step": 3, "note": "x"}
    assert len(weights) == len(model.weights) and len(opt) == len(model.optimizer.variables)
    other = build_vdsr(depth=3, filters=4)
    other.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    checkpoint.restore(other, weights, opt)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    checkpoint.save_state(path, model, {}, include_optimizer=False)
    assert checkpoint.read_state(path)[2] is None
    with pytest.raises(ValueError, match="architecture"):
        checkpoint.restore(build_vdsr(depth=3, filters=5), weights)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = str(tmp_path / "s.bin")
    checkpoint.atomic_write(path, lambda f: f.write(b"old"))

    def broken(f):
        f.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        checkpoint.atomic_write(path, broken)
    assert open(path, "rb").read() == b"old"
    assert os.listdir(tmp_path) == ["s.bin"]


def test_config_difference_names_fields():
    a = {"seed": 0, "optim": {"learning_rate": 0.1, "step_boundaries": [0.25]}}
    b = {"seed": 0, "optim": {"learning_rate": 0.01, "step_boundaries": (0.25,)}}
    assert checkpoint.config_difference(a, b) == ["optim.learning_rate: 0.1 -> 0.01"]


def test_not_a_state_file(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"nope")
    with pytest.raises(ValueError, match="not a vdsr-tf training state"):
        checkpoint.read_state(str(bad))
    with pytest.raises(FileNotFoundError):
        checkpoint.read_state(str(tmp_path / "missing.npz"))
