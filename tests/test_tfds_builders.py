"""The TFDS builders: offline preparation from local files, and their use as sources."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

tfds = pytest.importorskip("tensorflow_datasets")

import vdsr_tf.data.tfds_builders as builders  # noqa: E402
from vdsr_tf.config import DataConfig  # noqa: E402
from vdsr_tf.data.pipeline import make_dataset  # noqa: E402
from vdsr_tf.evaluation.benchmark import evaluate_set  # noqa: E402
from vdsr_tf.inference.upscaler import Upscaler  # noqa: E402
from vdsr_tf.ops.imresize import imresize  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(0)


def _write(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory):
    """A tiny folder in the ../shared/datasets layout (Urban100 and train/ too)."""
    root = tmp_path_factory.mktemp("manual")
    for folder, n in (("Urban100", 2), ("Set5", 2)):
        for i in range(n):
            hr = RNG.integers(0, 256, (48, 60, 3)).astype(np.uint8)
            if i == 1:
                hr = hr[..., 0]  # one grayscale image
            name = f"img_{i:03d}.png"
            _write(str(root / folder / "HR" / name), hr)
            for s in (2, 3, 4):
                crop = hr[: 48 - 48 % s, : 60 - 60 % s]
                _write(
                    str(root / folder / "LR_bicubic" / f"X{s}" / name), imresize(crop, scale=1 / s)
                )
    for part, n in (("T91", 3), ("BSD200", 2)):
        for i in range(n):
            _write(
                str(root / "train" / part / f"t{i}.png"),
                RNG.integers(0, 256, (64, 70, 3)).astype(np.uint8),
            )
    return str(root)


def test_names_are_registered():
    assert set(builders.NAMES) <= set(tfds.list_builders())


def test_tfds_load_as_documented(manual_dir, tmp_path):
    ds = tfds.load(
        "urban100",
        split="test",
        data_dir=str(tmp_path),
        download_and_prepare_kwargs={
            "download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)
        },
    )
    examples = list(tfds.as_numpy(ds))
    assert len(examples) == 2
    by_name = {e["name"].decode(): e for e in examples}
    assert by_name["img_000.png"]["hr"].shape == (48, 60, 3)
    assert by_name["img_001.png"]["hr"].shape == (48, 60, 1)  # grey stays grey
    assert by_name["img_000.png"]["lr_x3"].shape == (16, 20, 3)


@pytest.mark.slow(reason="prepares the SR291 TFDS set")
def test_sr291_feeds_the_training_pipeline(manual_dir, tmp_path):
    cfg = DataConfig(patch_size=24, batch_size=4, patches_per_image=2, shuffle_buffer=8)
    x, y = next(
        iter(make_dataset("tfds:sr291", cfg, data_dir=str(tmp_path), manual_dir=manual_dir))
    )
    assert x.shape == y.shape == (4, 24, 24, 1)
    # Prepared once; later loads need no manual_dir.
    assert len(list(builders.load("sr291", data_dir=str(tmp_path)))) == 5


def test_unprepared_without_manual_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="manual_dir"):
        builders.load("b100", data_dir=str(tmp_path))


def test_missing_manual_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="laid out like"):
        builders.load("b100", data_dir=str(tmp_path / "d"), manual_dir=str(tmp_path))


def test_tfds_set_scores_like_the_folder(manual_dir, tmp_path):
    bicubic = Upscaler("bicubic")
    for s in (2, 4):
        folder = evaluate_set(bicubic, os.path.join(manual_dir, "Set5"), s)
        viatfds = evaluate_set(
            bicubic, "tfds:set5", s, data_dir=str(tmp_path), manual_dir=manual_dir
        )
        assert viatfds["n"] == folder["n"] == 2
        assert viatfds["psnr"] == pytest.approx(folder["psnr"], abs=1e-9)


def test_real_set5_through_tfds(datasets_dir, tmp_path):
    r = evaluate_set(
        Upscaler("bicubic"), "tfds:set5", 2, data_dir=str(tmp_path), manual_dir=str(datasets_dir)
    )
    assert r["n"] == 5 and r["psnr"] == pytest.approx(33.66, abs=0.02)


@pytest.mark.slow(reason="prepares a TFDS set and scores it in a subprocess")
def test_eval_cli_accepts_tfds_sets(manual_dir, tmp_path):
    js = tmp_path / "r.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vdsr_tf.cli.eval",
            "--sets=tfds:set5",
            "--scales=2",
            "--weights=bicubic",
            f"--tfds_data_dir={tmp_path / 'd'}",
            f"--manual_dir={manual_dir}",
            f"--json={js}",
        ],
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(json.loads(js.read_text())) == {"set5"}
