"""The GPU machine's prepared benchmarks: their dry run, as the GPU host runs them.

benchmarks/gpu_suite.sh runs the inference latency, training throughput and
paper-claims scripts in one command; its --dry_run (tiny sizes, the bundled
samples, CPU) runs here with TensorFlow unimportable, so the scripts cannot
rot between GPU leases. The claims' verdict rule is pinned separately.
"""

import json
import math
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import seed_stats  # noqa: E402  (benchmarks/ is not a package)

SUITE = os.path.join(REPO, "benchmarks", "gpu_suite.sh")


def _suite(out, env, *args):
    return subprocess.run(
        ["bash", SUITE, f"--output_dir={out}", f"--python={sys.executable}", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow(reason="runs every GPU-suite script end to end on tiny sizes")
def test_gpu_suite_dry_run(tmp_path, no_tf_env):
    # Slow (about a minute): 3 tiny trainings for throughput, 9 for the claims.
    out = tmp_path / "out"
    env = dict(no_tf_env, TMPDIR=str(tmp_path))  # the claims' runs go to $TMPDIR/vdsr_claims
    proc = _suite(out, env, "--dry_run", "--parts=latency,throughput,claims")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = sorted(os.listdir(out))
    assert files == [
        "claims.json",
        "claims.md",
        "latency.json",
        "suite.log",
        "throughput_float32.json",
        "throughput_mixed_bfloat16.json",
    ]

    latency = json.loads((out / "latency.json").read_text())
    assert latency["tensorflow_loaded"] is False and latency["backend"] == "cpu"
    assert set(latency["forward"]) == {"bf16", "fp32", "fp32_highest"}
    for row in latency["forward"].values():
        assert row["ms"] > 0 and row["tflops"] > 0
    assert set(latency["upscale"]) == {"512", "None"}
    assert all(row["s"] > 0 for row in latency["upscale"].values())

    for policy in ("mixed_bfloat16", "float32"):
        tp = json.loads((out / f"throughput_{policy}.json").read_text())
        assert tp["tensorflow_loaded"] is False and tp["mixed_precision"] == policy
        assert [(r["engine"], r["k"]) for r in tp["rows"]] == [("fast", 1), ("fast", 2)]
        assert all(r["patches_per_s"] > 0 for r in tp["rows"])

    claims = json.loads((out / "claims.json").read_text())
    assert list(claims["claims"]) == ["residual", "clip", "depth", "scales"]
    # paper preset, no clip, a fixed clip, no clip at lr/10, and Adam (the residual run).
    assert len(claims["claims"]["clip"]["arms"]) == 5
    assert len(claims["claims"]["scales"]["arms"]) == 4
    for claim in claims["claims"].values():
        # One seed in a dry run: no claim may count.
        assert claim["tests"] and all(t["verdict"].startswith("n/a") for t in claim["tests"])
        for arm in claim["arms"].values():
            for s in ("x2", "x3", "x4"):
                assert arm[s]["diverged"] or 5 < arm[s]["mean"] < 60
    md = (out / "claims.md").read_text()
    for claim in ("residual", "clip", "depth", "scales"):
        assert f"#### {claim}" in md
    assert "Convergence" in md and "clip_fraction" in md

    # A rerun with other claims trains nothing: runs are found by their config.
    work = tmp_path / "vdsr_claims"
    runs = sorted(os.listdir(work / "runs"))
    stamps = [os.stat(work / "runs" / r / "result.json").st_mtime_ns for r in runs]
    assert len(runs) == 10  # residual 2 arms, clip 4 more, depth 1 more, scales 3 more
    rerun = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "benchmarks", "paper_claims.py"),
            "--dry_run",
            f"--output_dir={work}",
            "--claims=scales,depth",
        ],
        env=dict(env, KERAS_BACKEND="jax"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert sorted(os.listdir(work / "runs")) == runs
    assert [os.stat(work / "runs" / r / "result.json").st_mtime_ns for r in runs] == stamps
    assert "#### depth" in rerun.stdout and "#### scales" in rerun.stdout


def test_gpu_suite_refuses_unknown_arguments(tmp_path):
    proc = _suite(tmp_path / "out", dict(os.environ), "--parts=latency,nonsense")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "gpu_suite.sh: error: unknown part nonsense (valid: latency, throughput, claims)"
    ]
    assert not (tmp_path / "out").exists()  # nothing half-written
    proc = _suite(tmp_path / "out", dict(os.environ), "--frobnicate")
    assert proc.returncode == 2 and "unknown argument --frobnicate" in proc.stderr


def _arm(*values):
    return seed_stats.stats(list(values))


@pytest.mark.parametrize(
    "a, b, verdict",
    [
        ((30.0, 30.1, 30.2), (29.0, 29.1, 29.2), "yes"),  # gap 1.0 > 2 x 0.2
        ((30.0, 30.1, 30.2), (29.8, 29.9, 30.0), "no (within spread)"),  # gap 0.2 < 0.4
        ((29.0, 29.1, 29.2), (30.0, 30.1, 30.2), "no (reversed)"),
        ((30.0, 30.1, 30.2), (29.0, float("nan"), 29.2), "yes (other diverged)"),
        ((float("nan"), 30.1, 30.2), (29.0, 29.1, 29.2), "no (diverged)"),
        ((float("nan"),) * 3, (float("inf"),) * 3, "both diverged"),
        ((30.0, 30.1), (29.0, 29.1), "n/a (< 3 seeds)"),  # too few seeds to count
    ],
)
def test_a_difference_counts_only_beyond_twice_the_seed_range(a, b, verdict):
    gap, got = seed_stats.compare(_arm(*a), _arm(*b))
    assert got == verdict
    if verdict in ("yes", "no (within spread)", "no (reversed)"):
        assert gap == pytest.approx(sum(a) / 3 - sum(b) / 3)


@pytest.mark.parametrize(
    "a, b, verdict",
    [
        ((30.0, 30.1, 30.2), (30.1, 30.2, 30.3), "yes"),  # 0.1 below: within a 0.1 margin
        ((30.0, 30.1, 30.2), (30.2, 30.3, 30.4), "no"),  # 0.2 below
        ((31.0, 31.1, 31.2), (30.0, 30.1, 30.2), "yes"),  # above
        ((float("nan"), 30.1, 30.2), (30.0, 30.1, 30.2), "no"),  # diverged
        ((30.0, 30.1), (30.0, 30.1), "n/a (< 3 seeds)"),
    ],
)
def test_as_good_as_means_at_most_the_margin_below(a, b, verdict):
    gap, got = seed_stats.within(_arm(*a), _arm(*b), 0.1 + 1e-9)
    assert got == verdict


def test_seed_stats_report_the_range_and_divergence():
    s = _arm(1.0, 4.0, 2.5)
    assert (s["mean"], s["range"], s["n"], s["diverged"]) == (2.5, 3.0, 3, 0)
    assert seed_stats.fmt(s) == "2.50 ± 1.50"
    d = _arm(1.0, float("nan"), float("inf"))
    assert d["diverged"] == 2 and math.isnan(d["mean"])
    assert seed_stats.fmt(d) == "diverged (2/3)"
