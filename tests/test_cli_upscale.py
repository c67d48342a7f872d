"""vdsr-upscale from the command line, as a user runs it."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vdsr_tf.imageio import sample_images_dir
from vdsr_tf.evaluate import benchmark_pairs
from vdsr_tf.metrics import psnr

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = sample_images_dir()


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "vdsr_tf.cli.upscale", *args], env=env,
                          capture_output=True, text=True, timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def weights(tiny_weights):
    return tiny_weights


def test_batch_with_bad_files_continues_and_fails_at_the_end(tmp_path, weights):
    src = tmp_path / "in"
    shutil.copytree(os.path.join(SAMPLES, "LR_bicubic", "X2"), src)
    (src / "bad.png").write_bytes(b"not an image")
    (src / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    proc = run_cli(str(src), "--scale=2", f"--output={out}", f"--weights={weights}", "--tile=32")
    assert proc.returncode == 1
    errors = [l for l in proc.stderr.splitlines() if ": error: " in l]
    assert len(errors) == 2 and all(os.path.basename(l.split(":")[0]) in ("bad.png", "empty.jpg")
                                    for l in errors)
    assert "Traceback" not in proc.stderr
    assert "2 written, 2 failed" in proc.stderr
    assert sorted(os.listdir(out)) == ["bird.png", "butterfly.png"]  # no temporary files left
    assert Image.open(out / "bird.png").size == (288, 288)
    # Existing outputs are kept without --overwrite ...
    again = run_cli(str(src / "bird.png"), "--scale=2", f"--output={out}", f"--weights={weights}")
    assert again.returncode == 1 and "exists" in again.stderr
    # ... and replaced with it; --format changes the extension.
    again = run_cli(str(src / "bird.png"), str(src / "butterfly.png"), "--scale=3", "--overwrite",
                    f"--output={out}", f"--weights={weights}", "--format=webp")
    assert again.returncode == 0, again.stderr[-2000:]
    assert Image.open(out / "bird.webp").size == (432, 432)


def test_single_file_size_and_formats(tmp_path, weights):
    lr = os.path.join(SAMPLES, "LR_bicubic", "X4", "bird.png")
    for name in ("a.jpg", "b.tif", "c.png"):
        proc = run_cli(lr, "--size=200x90", f"--output={tmp_path / name}", f"--weights={weights}")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert Image.open(tmp_path / name).size == (200, 90)
    assert "-> " in proc.stdout


@pytest.mark.parametrize("args,message", [
    (["IN", "--scale=1", "--output=o.png"], "--scale must be > 1"),
    (["IN", "--scale=0.5", "--output=o.png"], "--scale must be > 1"),
    (["/nonexistent.png", "--scale=2", "--output=o.png"], "input not found"),
    (["IN", "IN", "--scale=2", "--output=FILE"], "is a file"),
    (["IN", "--output=o.png"], "exactly one of --scale or --size"),
    (["IN", "--size=12by3", "--output=o.png"], "--size must look like"),
    (["IN", "--scale=2", "--output=o.xyz"], "unsupported extension"),
    (["IN", "--scale=2", "--output=o.png", "--weights=/nope.weights.h5"], "No such weights file"),
])
def test_usage_errors_are_one_clear_line(tmp_path, args, message):
    lr = os.path.join(SAMPLES, "LR_bicubic", "X4", "bird.png")
    (tmp_path / "file").write_text("x")
    args = [a.replace("IN", lr).replace("FILE", str(tmp_path / "file")) for a in args]
    proc = run_cli(*args, cwd=str(tmp_path))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "o.png")


def test_demo(tmp_path):
    proc = run_cli("--demo", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "vdsr_demo_butterfly_x3.png"
    assert Image.open(out).size == (255, 255)
    assert str(out.name) in proc.stdout


def _score_folder(out_dir, set_dir, scale):
    values = []
    for name, _, hr in benchmark_pairs(set_dir, scale):
        sr = np.asarray(Image.open(os.path.join(out_dir, name)))
        values.append(psnr(sr, hr, crop_border=scale))
    return float(np.mean(values))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upscale_scores_equal_eval_scores(tmp_path, weights, scale):
    """Acceptance: vdsr-upscale on LR folders scores what vdsr-eval reports."""
    from vdsr_tf.cli.eval import run_eval

    sets = [("samples", SAMPLES)]
    data = os.environ.get("VDSR_DATA_DIR", os.path.join(REPO, "..", "shared", "datasets"))
    if os.path.isdir(os.path.join(data, "Set5")):
        sets.append(("Set5", os.path.join(data, "Set5")))
    for name, set_dir in sets:
        out = tmp_path / name
        proc = run_cli(os.path.join(set_dir, "LR_bicubic", f"X{scale}"), f"--scale={scale}",
                       f"--output={out}", f"--weights={weights}")
        assert proc.returncode == 0, proc.stderr[-2000:]
        got = _score_folder(str(out), set_dir, scale)
        expected = run_eval(os.path.dirname(set_dir), [os.path.basename(set_dir)], [scale],
                            weights, baseline=False, out=open(os.devnull, "w"))
        assert got == pytest.approx(expected[os.path.basename(set_dir)][f"x{scale}"]["psnr"], abs=0.02)
