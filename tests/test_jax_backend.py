"""The training path on the JAX backend, with no TensorFlow importable."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow(reason="trains on JAX in a subprocess")
def test_fit_on_jax_without_tensorflow_lowers_the_loss():
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "jax_fit_check.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax"
    assert result["tf_loaded"] is False
    assert result["after"] < 0.7 * result["before"], result
    assert result["tile_diff"] < 1e-5
    assert 10 < result["val_psnr_x2"] < 60


@pytest.mark.slow(reason="trains and resumes on JAX in a subprocess")
def test_train_resume_on_jax_without_tensorflow(tmp_path):
    """The GPU machine's path: packed data, time budget, resume, no TensorFlow."""
    pytest.importorskip("jax")
    from vdsr_tf.data.degradation import pack_y_planes
    from vdsr_tf.io.images import sample_images_dir

    pack = str(tmp_path / "train_y.npz")
    pack_y_planes(os.path.join(sample_images_dir(), "HR"), pack)
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=REPO)
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tests", "jax_train_check.py"),
            pack,
            str(tmp_path / "run"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["tf_loaded"] is False
    assert result["first_epochs"] == 1 and result["after_first"] == {"epoch": 1, "step": 2}
    assert result["second_epochs"] == 2 and result["final_weights"]
    assert 5 < result["val_psnr_x2"] < 60
