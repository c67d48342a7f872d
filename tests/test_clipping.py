"""The theta/lr clip: the pure rule, and the train step on both backends."""

import functools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from keras import ops

from vdsr_tf.models.clipping import clip_bound, clip_by_lr

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THETA = 0.01


def test_clip_by_lr_values():
    g = [np.array([-5.0, -0.05, 0.0, 0.05, 5.0], "float32"), None]
    out = clip_by_lr(g, lr=0.1, theta=THETA)
    np.testing.assert_allclose(ops.convert_to_numpy(out[0]), [-0.1, -0.05, 0.0, 0.05, 0.1])
    assert out[1] is None
    np.testing.assert_allclose(float(clip_bound(0.5, 0.01)), 0.02)


def test_clip_scales_with_loss_scale():
    out = clip_by_lr([np.array([1e6], "float32")], lr=0.1, theta=THETA, loss_scale=1024.0)
    np.testing.assert_allclose(ops.convert_to_numpy(out[0]), [0.1 * 1024], rtol=1e-6)


@functools.cache  # one subprocess per backend, shared by the tests below
def _run_check(backend):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    if backend == "jax":
        pytest.importorskip("jax")
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "clip_check.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow(reason="trains a network in a subprocess per backend")
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_train_step_never_moves_a_weight_more_than_theta(backend):
    result = _run_check(backend)
    assert result["backend"] == backend
    tol = 1e-6
    # With the clip, plain SGD moves no weight by more than theta, and the
    # huge gradients saturate it, so some weight moves by theta exactly.
    for change in result["clipped"]:
        assert change <= THETA + tol
        assert change == pytest.approx(THETA, rel=1e-4)
    # Without it the same step moves weights far more: the check can fail.
    assert result["unclipped"][0] > 100 * THETA
    # lr jumps from 0.01 to 1.0 after one step; a clip that used a stale
    # lr (bound theta/0.01) would move weights by up to 100 x theta.
    for change in result["scheduled"]:
        assert change <= THETA + tol
    assert result["scheduled"][1] == pytest.approx(THETA, rel=1e-4)


@pytest.mark.slow(reason="trains a network in a subprocess per backend")
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_norm_mode_never_moves_the_weights_further_than_theta(backend):
    # clip_mode="norm": the step's L2 norm over all weights is at most theta,
    # at the current learning rate, and exactly theta when the clip binds.
    result = _run_check(backend)
    for change in result["norm_clipped"]:
        assert change == pytest.approx(THETA, rel=1e-4)
    assert result["norm_unclipped"][0] > 100 * THETA
    for change in result["norm_scheduled"]:
        assert change <= THETA * (1 + 1e-4)
    assert result["norm_scheduled"][1] == pytest.approx(THETA, rel=1e-4)


def test_norm_mode_scales_the_whole_gradient_by_one_factor():
    g = [np.array([3.0, 0.0], "float32"), None, np.array([[4.0]], "float32")]  # norm 5
    out, fraction = clip_by_lr(g, lr=0.1, theta=0.1, mode="norm", return_fraction=True)
    np.testing.assert_allclose(ops.convert_to_numpy(out[0]), [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(out[2]), [[0.8]], rtol=1e-6)
    assert out[1] is None and float(fraction) == 1.0
    # Below the bound nothing changes and nothing counts as cut.
    out, fraction = clip_by_lr(g, lr=0.01, theta=0.1, mode="norm", return_fraction=True)
    np.testing.assert_allclose(ops.convert_to_numpy(out[0]), [3.0, 0.0])
    assert float(fraction) == 0.0
    # With loss scaling the bound applies to the unscaled gradient.
    out = clip_by_lr(
        [np.array([3e3, 4e3], "float32")], lr=0.1, theta=0.1, mode="norm", loss_scale=1000.0
    )
    np.testing.assert_allclose(ops.convert_to_numpy(out[0]), [600.0, 800.0], rtol=1e-5)


def test_unknown_clip_mode_is_refused():
    with pytest.raises(ValueError, match="clip mode 'sign'"):
        clip_by_lr([np.zeros(2, "float32")], lr=0.1, theta=0.1, mode="sign")
