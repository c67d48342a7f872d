"""vdsr-train and vdsr-eval from the command line, as a user runs them."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vdsr_tf.io import images as imageio

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = imageio.sample_images_dir()


def run_cli(module, *args, timeout=600):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", f"vdsr_tf.cli.{module}", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_train_print_config_applies_flags_and_set():
    proc = run_cli(
        "train",
        "--preset=modern",
        "--steps=123",
        "--scales=2,3",
        "--set=optim.warmup_fraction=0.1",
        "--print_config",
    )
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)
    assert cfg["steps"] == 123
    assert cfg["data"]["scales"] == [2, 3]
    assert cfg["optim"]["optimizer"] == "adam"
    assert cfg["optim"]["warmup_fraction"] == 0.1


@pytest.mark.slow(reason="one vdsr-train subprocess per case")
@pytest.mark.parametrize(
    "args,message",
    [
        (["--set=optim.lr=1", "--print_config"], "valid keys"),
        (["--preset=nope", "--print_config"], "valid presets"),
        (["--output_dir=x"], "--data is required"),
        (["--data=/nonexistent/folder", "--output_dir=OUT"], "Not a directory"),
    ],
)
def test_train_bad_arguments_give_clear_errors(tmp_path, args, message):
    args = [a.replace("OUT", str(tmp_path / "o")) for a in args]
    proc = run_cli("train", *args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow(reason="trains, then scores, in subprocesses")
def test_train_then_eval_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "train",
        f"--data={SAMPLES}/HR",
        f"--output_dir={out}",
        "--preset=modern",
        "--depth=3",
        "--filters=8",
        "--patch_size=24",
        "--batch_size=8",
        "--steps=4",
        "--steps_per_epoch=2",
        f"--val_dir={SAMPLES}",
        "--set=model.zero_init_residual=true",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    weights = out / "vdsr.weights.h5"
    assert weights.exists()
    js = tmp_path / "r.json"
    proc = run_cli(
        "eval",
        f"--benchmark_dir={os.path.dirname(SAMPLES)}",
        "--sets=samples",
        "--scales=2,4",
        f"--weights={weights}",
        f"--json={js}",
        f"--compare_dir={tmp_path / 'cmp'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(js.read_text())
    assert set(results) == {"samples", "bicubic"}
    for key in ("x2", "x4"):
        assert set(results["samples"][key]) == {"psnr", "ssim"}
        # 4 steps from a zero-initialised residual: close to bicubic.
        assert abs(results["samples"][key]["psnr"] - results["bicubic"]["samples"][key]["psnr"]) < 3
        assert 0 < results["bicubic"]["samples"][key]["ssim"] <= 1
    assert (tmp_path / "cmp" / "samples.png").exists()
    assert "bicubic PSNR/SSIM" in proc.stdout and "VDSR PSNR/SSIM" in proc.stdout

    # The run's final weights as a preset, with those scores: loaded back, the same network.
    preset = tmp_path / "preset"
    proc = run_cli(
        "export", "--format=preset", f"--weights={out}", f"--scores={js}", f"--output={preset}"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    from vdsr_tf.models.loading import load_pretrained

    meta = json.loads((preset / "metadata.json").read_text())
    assert meta["scores"] == {"samples": results["samples"]}
    assert meta["patches_seen"] == 4 * 8 and meta["recipe"].startswith("vdsr-train: adam")
    assert meta["architecture"] == {"depth": 3, "filters": 8, "residual": True}
    x = np.random.default_rng(0).random((1, 21, 19, 1), dtype=np.float32)
    a, b = load_pretrained(str(preset)), load_pretrained(str(weights))
    np.testing.assert_array_equal(np.asarray(a(x)), np.asarray(b(x)))
    assert json.loads((preset / "config.json").read_text())["config"]["zero_init_residual"]


@pytest.mark.slow(reason="scores the samples in a subprocess")
def test_eval_demo_runs_without_arguments():
    proc = run_cli("eval", "--demo")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "samples" in proc.stdout


@pytest.mark.slow(reason="one vdsr-eval subprocess per case")
@pytest.mark.parametrize(
    "args,message",
    [
        (["--data_dir=/nonexistent", "--sets=Set5"], "not found"),
        (["--demo", "--scales=1"], ">= 2"),
        (["--demo", "--weights=/nonexistent.weights.h5"], "No such preset, folder or weights file"),
    ],
)
def test_eval_bad_arguments_give_clear_errors(args, message):
    proc = run_cli("eval", *args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow(reason="scores Set5 in a subprocess")
def test_eval_bicubic_matches_the_published_anchor(datasets_dir, tmp_path):
    """Acceptance: bicubic on Set5 is 33.66 / 30.39 / 28.42 dB (+-0.02)."""
    js = tmp_path / "b.json"
    proc = run_cli(
        "eval",
        f"--benchmark_dir={datasets_dir}",
        "--sets=Set5",
        "--weights=bicubic",
        f"--json={js}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(js.read_text())
    assert "bicubic" not in results
    for key, expected in {"x2": 33.66, "x3": 30.39, "x4": 28.42}.items():
        assert results["Set5"][key]["psnr"] == pytest.approx(expected, abs=0.02)
    assert "33.67" in proc.stdout


@pytest.mark.slow(reason="runs README's Python snippets in a subprocess")
def test_readme_python_snippets_run_as_written(tmp_path):
    """Every ```python block of README.md except the fit snippet (run below):
    fresh interpreter, an empty working folder, nothing but the package."""
    text = open(os.path.join(REPO, "README.md")).read()
    fit = text.split("<!-- fit-snippet -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    blocks = [b.split("```", 1)[0] for b in text.split("```python")[1:]]
    blocks = [b for b in blocks if b != fit]
    assert blocks, "README.md has no other Python snippet"
    for block in blocks:
        proc = subprocess.run(
            [sys.executable, "-c", block],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            env=dict(os.environ, PYTHONPATH=REPO),
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "bird_x2.5.png").exists()


def test_docs_refer_to_nothing_outside_the_repository():
    for name in ("README.md", "BUILD.md"):
        text = open(os.path.join(REPO, name)).read()
        assert "DESIGN.md" not in text, name


@pytest.mark.slow(reason="trains with README's fit snippet in a subprocess")
def test_readme_fit_snippet_runs_as_written():
    text = open(os.path.join(REPO, "README.md")).read()
    block = text.split("<!-- fit-snippet -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    history = namespace["model"].history.history
    assert len(history["loss"]) == 2
    assert all(v == v for v in history["loss"])  # no NaN
    assert min(history["clip_fraction"]) > 0  # the snippet's setting is one where the clip acts
