"""Batch upscaling on Apache Beam: the RunInference handler and vdsr-upscale-beam
on the DirectRunner, against vdsr-upscale's own outputs."""

import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

beam = pytest.importorskip("apache_beam", reason="needs the beam extra (apache-beam)")

from apache_beam.ml.inference.base import RunInference  # noqa: E402
from apache_beam.testing.util import assert_that  # noqa: E402

from vdsr_tf.cli import batch  # noqa: E402
from vdsr_tf.inference import beam as vbeam  # noqa: E402
from vdsr_tf.inference.upscaler import Upscaler  # noqa: E402
from vdsr_tf.io.images import sample_images_dir  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LR = os.path.join(sample_images_dir(), "LR_bicubic", "X4")
TILE = 32


def _mixed_folder(root):
    """Good files (RGB PNGs, a grey JPEG with EXIF orientation, an animated GIF,
    one in a subfolder), bad ones, and a text file that is not an image."""
    src = root / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(os.path.join(LR, "bird.png"), src / "bird.png")
    shutil.copy(os.path.join(LR, "butterfly.png"), src / "sub" / "butterfly.png")
    rng = np.random.default_rng(0)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rng.integers(0, 256, (20, 30), np.uint8)).save(
        src / "grey.jpg", exif=exif.tobytes(), quality=90
    )
    frames = [Image.fromarray(np.full((12, 16, 3), 50 * i, np.uint8)) for i in range(3)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    (src / "bad.png").write_bytes(b"not an image at all")
    (src / "empty.jpg").write_bytes(b"")
    data = (src / "bird.png").read_bytes()
    (src / "truncated.png").write_bytes(data[: len(data) // 3])
    (src / "notes.txt").write_text("not an image")
    good = ["anim.gif", "bird.png", "grey.jpg", "sub/butterfly.png"]
    bad = ["bad.png", "empty.jpg", "truncated.png"]
    return src, good, bad


def _tree(folder):
    return sorted(
        os.path.relpath(os.path.join(r, n), folder)
        for r, _, names in os.walk(folder)
        for n in names
    )


@pytest.mark.slow(reason="runs a Beam pipeline twice")
def test_pipeline_matches_vdsr_upscale_and_reruns_do_nothing(tmp_path, tiny_weights, capsys):
    src, good, bad = _mixed_folder(tmp_path)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vdsr_tf.cli.upscale_beam",
            f"--input_pattern={src}/**",
            f"--output_dir={out}",
            "--scale=2",
            f"--weights={os.path.dirname(tiny_weights)}",  # a handle: the run's folder
            f"--tile={TILE}",
            "--runner=DirectRunner",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]  # some files failed
    assert "Traceback" not in proc.stderr
    assert "4 written, 3 failed" in proc.stderr and "1 not images" in proc.stderr
    assert _tree(out) == sorted(good + [vbeam.DEAD_LETTER])  # no temporary files

    # vdsr-upscale's batch over the same files: the same bytes, the same reasons.
    ref = tmp_path / "ref"
    files = [str(src / name) for name in good + bad]
    destinations = [str(ref / name) for name in good + bad]
    assert batch.run_batch(Upscaler(tiny_weights, tile=TILE), files, destinations, scale=2) == 1
    said = {
        line.split(": error: ")[0]: line.split(": error: ")[1]
        for line in capsys.readouterr().err.splitlines()
        if ": error: " in line
    }
    for name in good:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    with Image.open(out / "anim.gif") as im:
        assert im.n_frames == 3
    lines = (out / vbeam.DEAD_LETTER).read_text().splitlines()
    dead = dict(line.split("\t") for line in lines)
    assert sorted(dead) == sorted(str(src / name) for name in bad)
    for path, reason in dead.items():
        assert reason == said[path]

    # A second run: everything is there or still bad, nothing new is written.
    before = {name: os.stat(out / name).st_mtime_ns for name in good}
    pipeline = beam.Pipeline(runner="DirectRunner")
    handler = vbeam.UpscaleModelHandler(scale=2, weights=tiny_weights, tile=TILE)
    vbeam.build_pipeline(pipeline, f"{src}/**", str(out), handler)
    result = pipeline.run()
    result.wait_until_finish()
    totals = vbeam.metric_totals(result)
    assert totals.get("written", 0) == 0 and totals["skipped_existing"] == 4
    assert totals["failures"] == 3
    assert {name: os.stat(out / name).st_mtime_ns for name in good} == before
    assert _tree(out) == sorted(good + [vbeam.DEAD_LETTER])


def test_handler_takes_bytes_arrays_and_pil_images(tiny_weights):
    up = Upscaler(tiny_weights, tile=TILE)
    png = open(os.path.join(LR, "bird.png"), "rb").read()
    array = np.asarray(Image.open(io.BytesIO(png)))
    grey16 = (array[:, :, 0].astype(np.uint16) * 257)[:30, :40]
    expected_png, _ = up.upscale_bytes(png, scale=3)
    expected = [up.upscale(array, scale=3), up.upscale(grey16, scale=3)]
    handler = vbeam.UpscaleModelHandler(scale=3, weights=tiny_weights, tile=TILE)

    def check(results):
        by_kind = {type(r.example).__name__: r.inference for r in results}
        assert by_kind["bytes"].data == expected_png and by_kind["bytes"].format == "PNG"
        assert by_kind["bytes"].output_size == (array.shape[1] * 3, array.shape[0] * 3)
        arrays = sorted(
            (r.inference for r in results if isinstance(r.example, np.ndarray)),
            key=lambda a: a.dtype.itemsize,
        )
        assert arrays[0].dtype == np.uint8 and np.array_equal(arrays[0], expected[0])
        assert arrays[1].dtype == np.uint16 and np.array_equal(arrays[1], expected[1])
        assert by_kind["Image"].size == (array.shape[1] * 3, array.shape[0] * 3)

    with beam.Pipeline(runner="DirectRunner") as p:
        results = (
            p
            | beam.Create([png, array, grey16, Image.fromarray(array)], reshuffle=False)
            | RunInference(handler)
        )
        assert_that(results, check)


def test_handler_failures_go_to_the_dead_letter_output(tiny_weights):
    handler = vbeam.UpscaleModelHandler(
        scale=2, weights=tiny_weights, tile=TILE, output_format="JPEG"
    )
    frames = [Image.new("RGB", (8, 8), (40 * i, 0, 0)) for i in range(2)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])

    def reasons(failures):
        got = sorted(str(reason) for _, (_, reason, _) in failures)
        assert len(got) == 2
        assert got[0].startswith("2 frames, but JPEG holds one image")
        assert got[1] == "not an image file (format not recognised)"

    with beam.Pipeline(runner="DirectRunner") as p:
        good, bad = (
            p
            | beam.Create([b"garbage", gif.getvalue()], reshuffle=False)
            | RunInference(handler).with_exception_handling()
        )
        assert_that(bad.failed_inferences, reasons)


@pytest.mark.slow(reason="one vdsr-upscale-beam subprocess per case")
def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        vbeam.UpscaleModelHandler(scale=0.5)
    with pytest.raises(ValueError, match="Unknown output format"):
        vbeam.UpscaleModelHandler(scale=2, output_format="XYZ")
    assert vbeam.unknown_options(["--runner=DirectRunner", "--direct_num_workers=2"]) == []
    assert vbeam.unknown_options(["--sclae=2"]) == ["sclae"]
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vdsr_tf.cli.upscale_beam",
            f"--input_pattern={tmp_path}/*.png",
            f"--output_dir={tmp_path}/out",
            "--scale=2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"vdsr-upscale-beam: error: no file matches {tmp_path}/*.png"
    )


def test_destinations_keep_paths_under_the_pattern():
    assert vbeam.pattern_base("/data/photos/**/*.jpg") == "/data/photos/"
    assert vbeam.pattern_base("gs://b/in/x*.png") == "gs://b/in/"
    assert vbeam.destination("/data/photos/a/b.jpg", "/data/photos/", "/out", "png") == (
        "/out/a/b.png"
    )
    assert vbeam.destination("gs://b/in/x1.png", "gs://b/in/", "gs://b/out") == (
        "gs://b/out/x1.png"
    )


def test_handler_runs_litert_models(tmp_path):
    """tflite_model: the bundled LiteRT model, behind a lock (Beam shares one model
    among a worker's threads; a LiteRT interpreter is not thread-safe)."""
    from vdsr_tf.inference.litert import LiteRTPredictor
    from vdsr_tf.io.bundled import bundled_tflite_path

    image = np.asarray(Image.open(os.path.join(LR, "bird.png")))[:24, :20]
    expected = Upscaler(predictor=LiteRTPredictor(bundled_tflite_path())).upscale(image, scale=2)
    handler = vbeam.UpscaleModelHandler(scale=2, tflite_model=bundled_tflite_path())
    upscaler = handler.load_model()
    assert upscaler.context == 20
    [result] = handler.run_inference([image], upscaler)
    np.testing.assert_array_equal(result.inference, expected)


def test_handler_passes_the_precision_to_the_workers_upscaler():
    image = np.asarray(Image.open(os.path.join(LR, "bird.png")))[:24, :20]
    handler = vbeam.UpscaleModelHandler(scale=2, precision="int8")
    upscaler = handler.load_model()
    assert (upscaler.backend, upscaler.precision) == ("litert", "int8")
    [result] = handler.run_inference([image], upscaler)
    np.testing.assert_array_equal(
        result.inference, Upscaler(precision="int8").upscale(image, scale=2)
    )
    with pytest.raises(ValueError, match="has its own precision"):
        vbeam.UpscaleModelHandler(scale=2, tflite_model="m.tflite", precision="fp32")
    with pytest.raises(ValueError, match="Unknown precision"):
        vbeam.UpscaleModelHandler(scale=2, precision="fp8")


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    out = tmp_path / "out"
    (out / "sub" / f"beam-temp-{vbeam.DEAD_LETTER}-x").mkdir(parents=True)  # not at the top
    (out / f"beam-temp-{vbeam.DEAD_LETTER}-0a1b").mkdir()
    (out / f"beam-temp-{vbeam.DEAD_LETTER}-0a1b" / "u.vdsr_failed.tsv").write_text("x")
    ours = [out / ".a.png.0123abcd.tmp", out / "sub" / ".b.jpg.89abcdef.tmp"]
    theirs = [out / "a.png", out / "notes.tmp", out / ".c.png.tmp", out / "sub" / "b.jpg"]
    for path in ours + theirs:
        path.write_bytes(b"x")
    removed = vbeam.remove_stale_temporaries(str(out))
    assert len(removed) == 3
    assert not any(p.exists() for p in ours)
    assert all(p.exists() for p in theirs)
    assert sorted(p.name for p in out.iterdir()) == [".c.png.tmp", "a.png", "notes.tmp", "sub"]


@pytest.mark.slow(reason="runs vdsr-upscale-beam with two worker processes three times")
def test_a_killed_worker_loses_nothing_and_the_rerun_finishes(tmp_path, load_script):
    """Issue 34's trial at small scale (tools/beam_kill_trial.py has the full one):
    one of the DirectRunner's two worker processes is SIGKILLed mid-run."""
    trial = load_script("tools/beam_kill_trial.py")
    summary = trial.trial(
        str(tmp_path), files=30, corrupt_every=10, kill_after=5, hang_s=90, log=lambda m: None
    )
    assert summary["ok"], summary["failures"]
    killed, rerun, again = (summary["runs"][k] for k in ("killed", "rerun", "again"))
    assert killed["killed_worker"] is not None
    # The DirectRunner does not retry a lost worker's bundle: the run fails with one
    # line (or, in a narrow window, hangs and is killed), and the rerun is the recovery.
    assert killed["hung"] or (
        killed["returncode"] == 1
        and killed["lines"][-1].startswith("vdsr-upscale-beam: error: the pipeline failed")
    )
    assert rerun["returncode"] == again["returncode"] == 1  # the corrupt files fail each time
    assert again["lines"][-1].startswith("0 written, 3 failed")
    assert summary["good_files_lost"] == summary["outputs_invalid"] == 0
    assert summary["dead_letter_lines"] == 3 and summary["third_run_wrote"] == 0
