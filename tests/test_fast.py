"""The fast engine (JAX): one train_step, two drivers; the device pool; resume.

Each check runs in a fresh process with KERAS_BACKEND=jax and TensorFlow made
unimportable (tests/fast_check.py), as on the GPU machine.
"""

import csv
import json
import math
import os
import subprocess
import sys

import pytest

# Every test here is in the slow tier: the JAX engine's checks run in one subprocess (about 30 s).
pytestmark = pytest.mark.slow(reason="the JAX engine's checks run in one subprocess (about 30 s)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HR = os.path.join(REPO, "vdsr_tf", "samples", "HR")


def _jax_env():
    pytest.importorskip("jax")
    return dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")


def _check(*args):
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tests", "fast_check.py"), *args],
        env=_jax_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax" and result["tf_loaded"] is False
    return result


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    """Every check of tests/fast_check.py, run in one fresh process (a JAX start-up each
    would cost the suite about 30 s)."""
    return _check("all", str(tmp_path_factory.mktemp("fast") / "run"))


@pytest.mark.parametrize("arm", ["sgd", "adam", "sgd_norm"])
def test_fast_engine_matches_train_on_batch_step_for_step(checks, arm):
    r = checks[f"equivalence_{arm}"]
    assert r["traces"] == 1  # two calls of K=3 steps, one trace
    assert r["steps"] == r["ref_steps"] == 6
    assert min(r["clip_fraction"]) > 0  # the theta/lr clip binds in this setting
    assert r["max_moved"] > 1e-3  # the weights did move...
    assert r["max_diff"] < 1e-4  # ...to the same place (float tolerance)


def test_device_batches_are_aligned_crops_of_the_degraded_image(checks):
    r = checks["pool"]
    assert r["variants"] == 1
    assert r["found"] == r["patches"] == 24  # x and y: same window, same flip/rotation
    assert r["dihedrals"] >= 6  # the 8 transforms are drawn


def test_bucketed_masked_forward_equals_the_plain_network(checks):
    assert checks["forward"]["max_diff"] < 1e-5


def test_fast_resume_continues_bit_for_bit(checks):
    r = checks["resume"]
    assert (r["checkpoint_epoch"], r["checkpoint_step"]) == (2, 4)
    assert r["resumed_step"] == 4 and r["resumed_epochs"] == [2]
    assert r["same_weights"] and r["same_optimizer"]
    assert r["final_step"] == 6 and r["final_weights"]
    assert r["history_rows"] == 4  # header + epochs 1, 2 and 3


def test_fast_sigterm_resume_ends_with_the_uninterrupted_weights(checks):
    r = checks["preempt"]
    # Signalled as epoch 1 began: stopped after its first call (K = 2), mid-epoch.
    assert r["stopped_step"] == 8 and r["checkpoint"] == [1, 8]
    assert r["resumed_step"] == 8 and r["resumed_epochs"] == [1]
    assert r["final_step"] == 12 and r["history_epochs"] == ["0", "1"]
    # The batches after the resume are drawn from the step: the same as uninterrupted.
    assert r["max_diff_vs_uninterrupted"] <= 1e-6


def _vdsr_train(args, backend, block_tf):
    code = (
        "import sys\n"
        + ("sys.modules['tensorflow'] = None\n" if block_tf else "")
        + "from vdsr_tf.cli.train import run\n"
        f"sys.argv = ['vdsr-train'] + {args!r}\nrun()\n"
    )
    env = dict(_jax_env(), KERAS_BACKEND=backend)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )


def _history(run):
    with open(os.path.join(run, "history.csv")) as f:
        return list(csv.DictReader(f))


def test_acceptance_paper_preset_fast_engine_without_tensorflow(tmp_path):
    run = str(tmp_path / "RUN")
    proc = _vdsr_train(
        [
            "--preset=paper",
            "--engine=fast",
            "--depth=5",
            "--filters=16",
            "--batch_size=16",
            "--steps=60",
            "--steps_per_epoch=20",
            "--steps_per_call=4",  # unrolled on the CPU: compile time grows with K
            f"--data={HR}",
            f"--output_dir={run}",
        ],
        "jax",
        block_tf=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _history(run)
    assert len(rows) == 3
    assert float(rows[0]["clip_fraction"]) > 0
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert os.path.exists(os.path.join(run, "vdsr.weights.h5"))


def test_fast_engine_needs_jax_backend(tmp_path):
    proc = _vdsr_train(
        ["--engine=fast", f"--data={HR}", f"--output_dir={tmp_path}"], "tensorflow", block_tf=False
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("vdsr-train: error:") and "KERAS_BACKEND=jax" in lines[-1]
    assert "Traceback" not in proc.stderr
