"""vdsr-upscale from the command line, as a user runs it."""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vdsr_tf.evaluation.benchmark import benchmark_pairs
from vdsr_tf.evaluation.metrics import psnr
from vdsr_tf.io.images import sample_images_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = sample_images_dir()


def run_cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run(
        [sys.executable, "-m", "vdsr_tf.cli.upscale", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def weights(tiny_weights):
    return tiny_weights


@pytest.mark.slow(reason="a vdsr-upscale subprocess over a batch")
def test_batch_with_bad_files_continues_and_fails_at_the_end(tmp_path, weights, capsys):
    src = tmp_path / "in"
    shutil.copytree(os.path.join(SAMPLES, "LR_bicubic", "X2"), src)
    (src / "bad.png").write_bytes(b"not an image")
    (src / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    proc = run_cli(str(src), "--scale=2", f"--output={out}", f"--weights={weights}", "--tile=32")
    assert proc.returncode == 1
    errors = [l for l in proc.stderr.splitlines() if ": error: " in l]
    assert len(errors) == 2 and all(
        os.path.basename(l.split(":")[0]) in ("bad.png", "empty.jpg") for l in errors
    )
    assert "Traceback" not in proc.stderr
    assert "2 written, 2 failed" in proc.stderr
    assert sorted(os.listdir(out)) == ["bird.png", "butterfly.png"]  # no temporary files left
    assert Image.open(out / "bird.png").size == (288, 288)
    # Existing outputs are kept (a success), a failure with existing="fail", and replaced
    # with "overwrite"; --format changes the extension (vdsr-upscale's batch, in-process:
    # the flags are tested in tests/test_batch.py).
    from vdsr_tf.cli import batch
    from vdsr_tf.inference.upscaler import Upscaler

    up = Upscaler(weights)
    inputs = [str(src / "bird.png"), str(src / "butterfly.png")]
    assert batch.run_batch(up, inputs[:1], [str(out / "bird.png")], scale=2) == 0
    assert "0 written, 0 failed, 1 kept" in capsys.readouterr().err
    assert batch.run_batch(up, inputs[:1], [str(out / "bird.png")], 2, existing="fail") == 1
    assert "exists" in capsys.readouterr().err
    webp = [str(out / "bird.webp"), str(out / "butterfly.webp")]
    assert batch.run_batch(up, inputs, webp, scale=2, fmt="webp") == 0
    assert batch.run_batch(up, inputs, webp, scale=3, fmt="webp", existing="overwrite") == 0
    assert Image.open(out / "bird.webp").size == (432, 432)


def test_single_file_size(tmp_path, weights):
    # (Every output format is covered in-process: tests/test_photos.py.)
    lr = os.path.join(SAMPLES, "LR_bicubic", "X4", "bird.png")
    proc = run_cli(lr, "--size=200x90", f"--output={tmp_path / 'a.jpg'}", f"--weights={weights}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert Image.open(tmp_path / "a.jpg").size == (200, 90)
    assert "-> " in proc.stdout


@pytest.mark.slow(reason="a vdsr-upscale subprocess over a folder tree")
def test_recursive_folder_with_animation_and_exif(tmp_path, weights):
    src = tmp_path / "photos"
    (src / "trip").mkdir(parents=True)
    frames = [Image.new("RGB", (12, 8), (40 * i, 90, 200 - 40 * i)) for i in range(3)]
    frames[0].save(
        src / "trip" / "wave.gif",
        save_all=True,
        append_images=frames[1:],
        duration=[80, 90, 100],
        loop=0,
    )
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 8, "PhoneCo"
    Image.new("RGB", (10, 6), (10, 200, 30)).save(src / "phone.jpg", exif=exif.tobytes())
    (src / "readme.txt").write_text("not an image")
    out = tmp_path / "out"
    proc = run_cli(str(src), "--recursive", "--scale=2", f"--output={out}", f"--weights={weights}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 written, 0 failed, 1 skipped" in proc.stderr and "Traceback" not in proc.stderr
    with Image.open(out / "trip" / "wave.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (24, 16)
    with Image.open(out / "phone.jpg") as jpg:
        assert jpg.size == (12, 20) and jpg.getexif()[0x010F] == "PhoneCo"
        assert jpg.getexif().get(0x0112, 1) == 1


COMMANDS = ["upscale", "upscale_beam", "train", "eval", "export", "app"]


def _command(name, *args):
    return subprocess.run(
        [sys.executable, "-m", f"vdsr_tf.cli.{name}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=REPO),
    )


@pytest.mark.parametrize("name", COMMANDS)
def test_help_lists_the_commands_own_flags(name):
    # The flags defined once in vdsr_tf/cli/flags.py are listed as each command's own.
    own = {
        "upscale": [
            "--scale",
            "--size",
            "--output",
            "--tile",
            "--ensemble",
            "--weights",
            "--max_pixels",
            "--precision",
            "--backend=keras|litert|tflite",
        ],
        "upscale_beam": [
            "--input_pattern",
            "--scale",
            "--size",
            "--tile",
            "--weights",
            "--precision",
            "--max_pixels",
        ],
        "train": [
            "--data",
            "--output_dir",
            "--preset",
            "--engine",
            "--tfds_data_dir",
            "--optimizer=sgd|adam|adamw",
        ],
        "eval": ["--benchmark_dir", "--sets", "--weights", "--precision"],
        "export": ["--format", "--output", "--quantization"],
        "app": [
            "--host",
            "--port",
            "--share, --noshare",
            "--weights",
            "--max_pixels",
            "--precision",
        ],
    }[name]
    for flag in ("--help", "-h"):
        proc = _command(name, flag)
        assert proc.returncode == 0, proc.stderr
        assert all(f in proc.stdout for f in own), proc.stdout
        assert f"vdsr-{name.replace('_', '-')}" in proc.stdout.splitlines()[0]


@pytest.mark.parametrize(
    "name,flag",
    [
        ("upscale", "--scale=abc"),
        ("train", "--steps=many"),
        ("eval", "--ensemble=perhaps"),
        ("export", "--version=v1"),
        ("upscale", "--sclae=2"),
        ("app", "--port=-1"),
        ("app", "--max_file_size=lots"),
    ],
)
def test_malformed_flags_are_one_line_usage_errors(name, flag):
    proc = _command(name, flag)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vdsr-{name}: error: "), proc.stderr
    assert flag.split("=")[0].lstrip("-") in lines[0]


def test_several_inputs_need_an_output_folder(tmp_path):
    lr = os.path.join(SAMPLES, "LR_bicubic", "X4")
    proc = _command(
        "upscale",
        os.path.join(lr, "bird.png"),
        os.path.join(lr, "butterfly.png"),
        "--scale=2",
        f"--output={tmp_path / 'out.png'}",
    )
    assert proc.returncode == 2 and "looks like a file name" in proc.stderr
    proc = _command("upscale", lr, "--scale=2", f"--output={tmp_path / 'out.png'}")
    assert proc.returncode == 2 and "need an output folder" in proc.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "args,message",
    [
        (["IN", "--scale=1", "--output=o.png"], "--scale must be a number > 1"),
        (["IN", "--scale=0.5", "--output=o.png"], "--scale must be a number > 1"),
        (["/nonexistent.png", "--scale=2", "--output=o.png"], "input not found"),
        (["IN", "IN", "--scale=2", "--output=FILE"], "is a file"),
        (["IN", "--output=o.png"], "exactly one of --scale or --size"),
        (["IN", "--size=12by3", "--output=o.png"], "--size must look like"),
        (["IN", "--scale=2", "--output=o.xyz"], "unsupported extension"),
        (
            ["IN", "--scale=2", "--output=o.png", "--weights=/nope.weights.h5"],
            "No such preset, folder or weights file",
        ),
    ],
)
def test_usage_errors_are_one_clear_line(tmp_path, args, message):
    lr = os.path.join(SAMPLES, "LR_bicubic", "X4", "bird.png")
    (tmp_path / "file").write_text("x")
    args = [a.replace("IN", lr).replace("FILE", str(tmp_path / "file")) for a in args]
    proc = run_cli(*args, cwd=str(tmp_path))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "o.png")


def test_a_bare_v_means_verbose_and_absl_verbosity_still_parses():
    from vdsr_tf.cli import _apply_aliases

    aliases = {"-v": "--verbose"}
    assert _apply_aliases(["p", "-v", "a.png"], aliases) == ["p", "--verbose", "a.png"]
    assert _apply_aliases(["p", "a.png", "-v"], aliases) == ["p", "a.png", "--verbose"]
    assert _apply_aliases(["p", "-v", "1", "a.png"], aliases) == ["p", "-v", "1", "a.png"]
    assert _apply_aliases(["p", "-v=1"], aliases) == ["p", "-v=1"]
    assert _apply_aliases(["p", "--", "-v"], aliases) == ["p", "--", "-v"]


def test_demo(tmp_path):
    proc = run_cli("--demo", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "vdsr_demo_butterfly_x3.png"
    assert Image.open(out).size == (255, 255)
    assert str(out.name) in proc.stdout
    # Only the command's own lines (BUILD.md, "Quiet start-up"): no native log lines.
    assert all(_OWN_LINE.match(line) for line in proc.stderr.splitlines()), proc.stderr


_OWN_LINE = re.compile(r"vdsr-upscale|\d+ written, \d+ failed, [\d.]+ s$")


def _score_folder(out_dir, set_dir, scale):
    values = []
    for name, _, hr in benchmark_pairs(set_dir, scale):
        sr = np.asarray(Image.open(os.path.join(out_dir, name)))
        values.append(psnr(sr, hr, crop_border=scale))
    return float(np.mean(values))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upscale_scores_equal_eval_scores(tmp_path, weights, scale):
    """Acceptance: vdsr-upscale on LR folders scores what vdsr-eval reports.

    vdsr-upscale's batch runs in-process (``Upscaler.upscale_files``, what the
    command runs after parsing its flags; the flags are tested above)."""
    from vdsr_tf.cli.eval import run_eval
    from vdsr_tf.inference.upscaler import Upscaler

    sets = [("samples", SAMPLES)]
    data = os.environ.get("VDSR_DATA_DIR", os.path.join(REPO, "..", "shared", "datasets"))
    if os.path.isdir(os.path.join(data, "Set5")):
        sets.append(("Set5", os.path.join(data, "Set5")))
    for name, set_dir in sets:
        out = tmp_path / name
        out.mkdir()
        lr_dir = os.path.join(set_dir, "LR_bicubic", f"X{scale}")
        assert Upscaler(weights).upscale_files(lr_dir, str(out), scale=scale).status == 0
        got = _score_folder(str(out), set_dir, scale)
        expected = run_eval(
            os.path.dirname(set_dir),
            [os.path.basename(set_dir)],
            [scale],
            weights,
            baseline=False,
            out=open(os.devnull, "w"),
        )
        assert got == pytest.approx(
            expected[os.path.basename(set_dir)][f"x{scale}"]["psnr"], abs=0.02
        )


@pytest.mark.slow(reason="imports TensorFlow in a vdsr-upscale subprocess")
def test_demo_prints_only_its_own_lines(tmp_path):
    # TensorFlow's C++ start-up lines ("I0000 ... port.cc:153] oneDNN custom
    # operations are on ...", cuInit errors where there is no GPU) are dropped
    # unless -v is given: the Keras path imports TensorFlow here.
    proc = run_cli(
        "--demo", "--backend=keras", "--precision=fp32", f"--output={tmp_path / 'demo.png'}"
    )
    assert proc.returncode == 0, proc.stderr
    assert all(_OWN_LINE.match(line) for line in proc.stderr.splitlines()), proc.stderr
    assert proc.stdout.splitlines() == [
        f"{os.path.join(SAMPLES, 'LR_bicubic', 'X3', 'butterfly.png')}"
        f" (85x85) -> {tmp_path / 'demo.png'} (255x255)"
    ]


def test_native_lines_are_dropped_and_the_rest_kept(capfd):
    from vdsr_tf.io.stderr import native_lines_dropped

    with native_lines_dropped():
        os.write(2, b"I0000 00:00:1796318853.069829   16881 port.cc:153] oneDNN custom ops\n")
        os.write(
            2, b"E0000 00:00:1796318861.830459   16881 cuda_platform.cc:52] failed call to cuInit\n"
        )
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"UserWarning: something the user should see\n")
        os.write(2, b"our own line\n")  # what sys.stderr does outside pytest's capture
    assert capfd.readouterr().err.splitlines() == [
        "UserWarning: something the user should see",
        "our own line",
    ]


def test_lines_pass_as_they_come_even_when_the_block_fails(capfd):
    # The filter forwards each line as it arrives: what was written before an
    # error (or a crash) inside the block is not held back; ERROR lines that
    # are not the known cuInit noise stay.
    from vdsr_tf.io.stderr import native_lines_dropped

    with pytest.raises(RuntimeError), native_lines_dropped():
        os.write(2, b"E0000 00:00:1796318861.830459   16881 bfc_allocator.cc:1] out of memory\n")
        os.write(2, b"kept before the error\n")
        raise RuntimeError("inside the block")
    assert capfd.readouterr().err.splitlines() == [
        "E0000 00:00:1796318861.830459   16881 bfc_allocator.cc:1] out of memory",
        "kept before the error",
    ]
