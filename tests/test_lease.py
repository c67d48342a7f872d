"""tools/lease.sh, issue 38's prepared device calls: the second call's dry run
(the throughput levers at tiny sizes, TensorFlow unimportable) and the
refusals. The first call's dry run is in tests/test_release.py, where it
trains the chain's second cycle."""

import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEASE = os.path.join(REPO, "tools", "lease.sh")


def _lease(env, *args):
    return subprocess.run(
        ["bash", LEASE, f"--python={sys.executable}", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow(reason="two tiny throughput runs of the fast engine (about 20 s)")
def test_call_2_dry_run_measures_every_lever(tmp_path, no_tf_env):
    out = tmp_path / "out"
    proc = _lease(no_tf_env, "--call=2", "--dry_run", f"--output_dir={out}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = sorted(os.listdir(out))
    assert files == ["lease.log", "levers_48.json", "levers_64.json"]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files)
    for name, patch, ks in (("levers_48.json", 48, [1, 2]), ("levers_64.json", 64, [1])):
        levers = json.loads((out / name).read_text())
        assert levers["tensorflow_loaded"] is False
        assert levers["patch_size"] == patch and levers["mixed_precision"] == "mixed_bfloat16"
        assert [r["k"] for r in levers["rows"]] == ks
        assert all(r["engine"] == "fast" and r["patches_per_s"] > 0 for r in levers["rows"])
    log = (out / "lease.log").read_text()
    assert "== levers, 48² patches" in log and "== levers, 64² patches" in log


@pytest.mark.parametrize(
    "args, message",
    [
        (["--call=3"], "--call must be 1 or 2, not '3'"),
        (["--call=1"], "--wheelhouse is required on the device (tools/wheelhouse.sh)"),
        (
            ["--call=2", "--dry_run", "--state=x.npz"],
            "--state and --peak_lr are for call 1 (the cycle)",
        ),
        (
            ["--call=2", "--dry_run", "--peak_lr=1e-4"],
            "--state and --peak_lr are for call 1 (the cycle)",
        ),
        (["--call=1", "--frobnicate"], "unknown argument --frobnicate"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path, args, message):
    out = tmp_path / "out"
    proc = _lease(dict(os.environ), f"--output_dir={out}", *args)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"lease.sh: error: {message}"]
    assert not out.exists()


def test_a_flag_the_job_refuses_stops_call_1_before_the_latency_part(tmp_path, no_tf_env):
    out = tmp_path / "out"
    proc = _lease(no_tf_env, "--call=1", "--dry_run", f"--output_dir={out}", "--peak_lr=0")
    assert proc.returncode == 2
    assert proc.stdout.strip().splitlines() == [
        "train_release.sh: error: --peak_lr must be > 0, not 0"
    ]
    assert sorted(os.listdir(out)) == ["job.log"]  # no latency.json: nothing ran


@pytest.mark.slow(reason="one tiny throughput row of the fast engine (about 8 s)")
def test_a_part_that_stops_after_a_row_keeps_it(tmp_path, no_tf_env):
    # The second batch size is refused after the first one's row is measured: the row
    # is already in the JSON, as it would be when a time limit cuts the part short.
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "train_throughput.py")]
        + ["--engines=fast", "--depth=3", "--filters=8", "--patch_size=16"]
        + ["--batch_sizes=4,0", "--steps_per_call=1", "--seconds=0.2", f"--json={out}"],
        env=dict(no_tf_env, KERAS_BACKEND="jax"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0 and "data.batch_size must be >= 1" in proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["batch"], r["k"]) for r in rows] == [(4, 1)] and rows[0]["patches_per_s"] > 0
