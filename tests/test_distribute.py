"""Data-parallel training equals single-device training on the same global batch,
on both backends, with two CPU devices; and mixed precision trains."""

import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(backend, mode, out):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("KERAS_BACKEND", None)
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tests", "distribute_check.py"),
            backend,
            mode,
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow(reason="trains on two logical devices in subprocesses")
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_data_parallel_equals_single_device(backend, tmp_path):
    if backend == "jax":
        pytest.importorskip("jax")
    _run(backend, "none,data_parallel", tmp_path / "MODE.npz")  # one process, both runs
    single, multi = np.load(tmp_path / "none.npz"), np.load(tmp_path / "data_parallel.npz")
    assert int(single["devices"]) == 1 and int(multi["devices"]) == 2
    np.testing.assert_allclose(multi["loss"], single["loss"], rtol=1e-5)
    # The clip binds in this run (theta/lr = 0.02); clipping each replica's
    # share instead of the global gradient moved weights by ~0.06 here.
    for i in range(6):
        np.testing.assert_allclose(multi[f"arr_{i}"], single[f"arr_{i}"], atol=1e-5)


@pytest.mark.slow(reason="trains under mixed_bfloat16")
def test_mixed_bfloat16_trains_with_float32_output(tmp_path):
    import keras

    from vdsr_tf import config as C
    from vdsr_tf.io.images import sample_images_dir
    from vdsr_tf.training.trainer import train

    cfg = C.override(
        C.get_preset("modern"),
        **{
            "model.depth": 3,
            "model.filters": 8,
            "data.patch_size": 24,
            "data.batch_size": 4,
            "data.shuffle_buffer": 8,
            "steps": 2,
            "steps_per_epoch": 2,
            "mixed_precision": "mixed_bfloat16",
        },
    )
    try:
        model, history = train(
            cfg, os.path.join(sample_images_dir(), "HR"), str(tmp_path), verbose=0
        )
        assert model.get_layer("conv1").compute_dtype == "bfloat16"
        assert model.get_layer("skip").compute_dtype == "float32"
        assert model.output.dtype == "float32"
        assert np.isfinite(history.history["loss"]).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")
