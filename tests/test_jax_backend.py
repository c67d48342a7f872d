"""The training path on the JAX backend, with no TensorFlow importable."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_fit_on_jax_without_tensorflow_lowers_the_loss():
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tests", "jax_fit_check.py")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    assert result["tf_loaded"] is False
    assert result["after"] < 0.7 * result["before"], result
    assert result["tile_diff"] < 1e-5
    assert 10 < result["val_psnr_x2"] < 60
