"""Training survives kill -9: a three-kill run of tools/kill_soak.py (the
twenty-kill run is in BUILD.md)."""

import pytest


@pytest.mark.slow(reason="kills a training process three times and resumes it")
def test_three_kills_resume_bit_for_bit(tmp_path, load_script):
    soak = load_script("tools/kill_soak.py")
    # Seed 3 puts one kill in the start-up and two in training (so two resumes are checked).
    summary = soak.soak(kills=3, seed=3, workdir=str(tmp_path), log=lambda m: None)
    assert summary["ok"], summary["failures"]
    assert summary["kills"] == 3 and summary["final_step"] == summary["planned_steps"]
    assert summary["resumes_checked"] >= 1
    assert summary["resumes_bit_identical"] == summary["resumes_checked"]
    assert summary["history_epochs"] == summary["planned_steps"] // 3


@pytest.mark.slow(reason="sends a training process SIGTERM twice and resumes it")
def test_sigterm_checkpoints_the_step_and_exits_143(tmp_path, load_script):
    soak = load_script("tools/kill_soak.py")
    # Seed 3 with 10 steps per epoch: both signals land in training, inside an epoch.
    summary = soak.soak(
        kills=2, seed=3, workdir=str(tmp_path), steps_per_epoch=10, sig="TERM", log=lambda m: None
    )
    assert summary["ok"], summary["failures"]
    assert summary["term_checkpoints"] >= 1  # each: exit 143 within 30 s, checkpoint at its step
    assert summary["resumes_bit_identical"] == summary["resumes_checked"] >= 1
    assert summary["final_step"] == 150 and summary["history_epochs"] == 15
