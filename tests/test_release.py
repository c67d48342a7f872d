"""The GPU release job's dry run: every stage on CPU, no TensorFlow, no network.

tools/train_release.sh --dry_run trains a tiny network on the bundled samples
with the fast engine, scores it and writes the flat output folder. Two runs in
a row (the second as tools/lease.sh --call=1 runs it, with the latency part
after it) show the chain's training state advancing, so the GPU job cannot
rot between GPU leases.
"""

import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _documented_command():
    """The dry run's command line as BUILD.md writes it (DIR and PY to fill in)."""
    with open(os.path.join(REPO, "BUILD.md"), encoding="utf-8") as f:
        found = re.findall(
            r"`(tools/train_release\.sh --dry_run [^`]*--output_dir=DIR[^`]*)`", f.read()
        )
    assert len(found) == 1, f"BUILD.md should give the dry run's command once: {found}"
    return found[0]


def _script(path, env, *args):
    """Runs a repository shell script (``tools/...``) with ``args``."""
    return subprocess.run(
        ["bash", os.path.join(REPO, path), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard; the job's own budget is what the tests check
    )


def _dry_run(out, env, *extra):
    words = [
        w.replace("DIR", str(out)).replace("PY", sys.executable)
        for w in shlex.split(_documented_command())
    ]
    proc = _script(words[0], env, *words[1:], *extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "log.json").read_text())


def test_documented_dry_run_fills_in_its_placeholders():
    words = shlex.split(_documented_command())
    assert words[0] == "tools/train_release.sh" and "--dry_run" in words
    assert any(w == "--output_dir=DIR" for w in words) and any(w == "--python=PY" for w in words)
    assert not any(w.startswith("--budget_s") for w in words)  # the dry run's default budget


@pytest.mark.slow(reason="runs the release training chain twice")
def test_dry_run_twice_advances_the_chain(tmp_path, no_tf_env):
    from vdsr_tf.io.checkpoint import read_state

    first, second = tmp_path / "one", tmp_path / "two"
    logs = [_dry_run(first, no_tf_env)]
    # The second cycle as a lease's first call runs it: the job, then the latency part.
    proc = _script(
        "tools/lease.sh",
        no_tf_env,
        "--call=1",
        "--dry_run",
        f"--output_dir={second}",
        f"--python={sys.executable}",
        f"--state={first / 'state.npz'}",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    logs.append(json.loads((second / "log.json").read_text()))
    latency = json.loads((second / "latency.json").read_text())
    assert latency["tensorflow_loaded"] is False and set(latency["forward"]) >= {"bf16", "fp32"}
    assert set(latency["upscale"]) == {"512", "None"}
    assert "== latency" in (second / "job.log").read_text()  # appended to the job's log
    # As written, the dry run keeps its own short budget (not the GPU job's 540 s)
    # and the CPU's short jitted loop.
    assert all(log["budget_s"] == 20 and log["steps_per_call"] == 5 for log in logs)
    for out in (first, second):
        files = sorted(os.listdir(out))
        assert {"vdsr.weights.h5", "state.npz", "scores.json", "log.json", "job.log"} <= set(files)
        # What the device tool brings back: at most 8 plain files, plainly named.
        assert len(files) <= 8 and all(os.path.isfile(out / f) for f in files)
        assert all(re.fullmatch(r"[A-Za-z0-9._-]+", f) for f in files)
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

    # --score_only scores a state again with the job's own scorer: the same numbers.
    again = tmp_path / "again"
    proc = _script(
        "tools/train_release.sh",
        no_tf_env,
        f"--output_dir={again}",
        "--dry_run",
        "--score_only",
        f"--python={sys.executable}",
        f"--state={second / 'state.npz'}",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(os.listdir(again)) == ["job.log", "scores.json"]  # nothing trained
    rescored = json.loads((again / "scores.json").read_text())
    scored = json.loads((second / "scores.json").read_text())
    assert sorted(rescored) == sorted(scored)
    for cell, v in scored.items():
        assert rescored[cell]["psnr"] == pytest.approx(v["psnr"], abs=2e-3), cell


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--budget_s=0", "--budget_s must be > 0, not 0"),
        ("--steps_per_call=0", "--steps_per_call must be >= 1, not 0"),
        ("--state=no/such/state.npz", "--state: no such file: no/such/state.npz"),
        ("--score_only", "--score_only needs a --state file, not none"),
        ("--bench=no/such.npz", "--bench: no such file: no/such.npz"),
        ("--peak_lr=-1e-4", "--peak_lr must be > 0, not -0.0001"),
        (
            "--set=model.nope=3",
            "--set: Unknown model key(s) ['nope']; valid keys: ['depth', "
            "'filters', 'clip_theta', 'clip_mode', 'weight_decay', 'residual', 'zero_init_residual']",
        ),
    ],
)
def test_bad_flags_are_one_line(tmp_path, no_tf_env, flag, message):
    # Checked before the job imports JAX: with JAX unimportable the answer is the same line.
    (tmp_path / "block_tf" / "sitecustomize.py").write_text(
        "import sys\nsys.modules['tensorflow'] = None\nsys.modules['jax'] = None\n"
    )
    proc = subprocess.run(
        ["bash", os.path.join(REPO, "tools", "train_release.sh"), f"--output_dir={tmp_path}"]
        + ["--dry_run", f"--python={sys.executable}", flag],
        env=no_tf_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout.strip().splitlines() == [f"train_release.sh: error: {message}"]
    assert not (tmp_path / "state.npz").exists()
