"""The GPU release job's dry run: every stage on CPU, no TensorFlow, no network.

tools/train_release.sh --dry_run trains a tiny network on the bundled samples
with the fast engine, scores it and writes the flat output folder. Two runs in
a row show the chain's training state advancing, so the GPU job cannot rot
between GPU leases.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dry_run(out, env, *extra):
    start = time.monotonic()
    proc = subprocess.run(
        [
            "bash",
            os.path.join(REPO, "tools", "train_release.sh"),
            f"--output_dir={out}",
            "--dry_run",
            "--budget_s=30",
            f"--python={sys.executable}",
            "--steps_per_call=5",  # the loop is unrolled on the CPU: compile time grows with K
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return time.monotonic() - start


@pytest.mark.slow(reason="runs the release training chain twice")
def test_dry_run_twice_advances_the_chain(tmp_path, no_tf_env):
    from vdsr_tf.io.checkpoint import read_state

    first, second = tmp_path / "one", tmp_path / "two"
    seconds = _dry_run(first, no_tf_env)
    seconds += _dry_run(second, no_tf_env, f"--state={first / 'state.npz'}")
    assert seconds < 180
    for out in (first, second):
        files = sorted(os.listdir(out))
        assert {"vdsr.weights.h5", "state.npz", "scores.json", "log.json", "job.log"} <= set(files)
        assert len(files) <= 8 and all(os.path.isfile(out / f) for f in files)  # flat
        log = json.loads((out / "log.json").read_text())
        assert log["tensorflow_loaded"] is False and log["backend"] == "cpu"
        assert log["steps"] > 0 and log["patches_per_s"] > 0 and log["pool_seconds"] >= 0
        scores = json.loads((out / "scores.json").read_text())
        assert all(10 < v["psnr"] < 60 for v in scores.values())
    meta1, w1, _ = read_state(str(first / "state.npz"))
    meta2, w2, opt2 = read_state(str(second / "state.npz"))
    assert (meta1["cycles"], meta2["cycles"]) == (1, 2)
    assert meta2["patches_total"] > meta1["patches_total"] > 0
    assert len(meta2["runs"]) == 2 and opt2 is None
    assert any(not np.array_equal(a, b) for a, b in zip(w1, w2))  # trained further
