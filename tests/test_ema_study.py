"""benchmarks/ema_study.py, the weight-average study of issue 38: its dry run
(a tiny network on the bundled samples, TensorFlow unimportable), its cache
of finished runs and its refusals."""

import json
import math
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "benchmarks", "ema_study.py")


def _study(env, *args):
    return subprocess.run(
        [sys.executable, SCRIPT, *args],
        cwd=os.path.join(REPO, "benchmarks"),
        env=dict(env, KERAS_BACKEND="jax"),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow(reason="two tiny trainings and their scoring (about 20 s)")
def test_dry_run_scores_every_arm_and_reuses_finished_runs(tmp_path, no_tf_env):
    out = tmp_path / "ema"
    proc = _study(no_tf_env, "--dry_run", f"--output_dir={out}", "--decays=0.9,0.99")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "ema_study.json").read_text())
    assert summary["flags"]["decays"] == [0.9, 0.99] and summary["flags"]["seeds"] == 1
    assert sorted(summary["runs"]) == ["seed0_cycle1", "seed0_cycle2"]
    cells = set(summary["bicubic"])
    assert len(cells) == 3 and all(c.endswith(("/x2", "/x3", "/x4")) for c in cells)
    for run in summary["runs"].values():
        assert sorted(run) == ["ema 0.9", "ema 0.99", "final", "seconds"]
        for arm in ("final", "ema 0.9", "ema 0.99"):
            assert set(run[arm]) == cells
            assert all(math.isfinite(v) and 5 < v < 60 for v in run[arm].values())
    # The averages are not the final weights (they trail them).
    run = summary["runs"]["seed0_cycle1"]
    assert run["ema 0.99"] != run["final"]
    # One seed: no verdict may count.
    assert [c["cycle"] for c in summary["cycles"]] == [1, 2]
    assert all(c["verdict"].startswith("n/a") for c in summary["cycles"])
    table = (out / "ema_study.md").read_text()
    assert table.count("\n| ") == 3 and "| ema 0.9 | ema 0.99 | final |" in table

    # A rerun trains nothing: finished runs are read back.
    stamps = {r: (out / r / "result.json").stat().st_mtime_ns for r in summary["runs"]}
    proc = _study(no_tf_env, "--dry_run", f"--output_dir={out}", "--decays=0.9,0.99")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {r: (out / r / "result.json").stat().st_mtime_ns for r in stamps} == stamps
    # Other settings would read those runs as theirs: refused.
    proc = _study(no_tf_env, "--dry_run", f"--output_dir={out}", "--decays=0.9")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"ema_study: error: {out} holds runs with other decays: give another --output_dir"
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--decays=0.99,1"], "--decays must be in (0, 1): ['0.99', '1']"),
        (["--decays=x"], "--decays: could not convert string to float: 'x'"),
        (["--steps=100", "--every=7"], "--every (7) must divide --steps (100)"),
        (["--seeds=0"], "--steps, --every, --cycles and --seeds must be >= 1"),
    ],
)
def test_bad_flags_are_one_line_and_write_nothing(tmp_path, no_tf_env, args, message):
    out = tmp_path / "ema"
    proc = _study(no_tf_env, f"--output_dir={out}", *args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"ema_study: error: {message}"]
    assert not out.exists()
