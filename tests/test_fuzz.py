"""A seeded sample of tools/fuzz_images.py: damaged PNG, JPEG, GIF, WebP and
TIFF files through the CLI's per-file path end in a valid output or one clean
error line, quickly, leaving no stray file. (The full run and the SavedModel's
share are in BUILD.md; tests/test_saved_model.py runs a SavedModel sample.)"""

import os

import pytest


@pytest.fixture(scope="module")
def fuzz(load_script):
    return load_script("tools/fuzz_images.py")


def test_every_seed_file_upscales(fuzz, tmp_path):
    from vdsr_tf.inference.batch import upscale_one
    from vdsr_tf.inference.upscaler import Upscaler

    up = Upscaler("bicubic")
    seeds = fuzz.seed_files()
    assert {f for f, _ in seeds} == set(fuzz.FORMATS) and len(seeds) >= 20
    for (fmt, variant), data in seeds.items():
        src = tmp_path / f"{variant}.{fmt}"
        src.write_bytes(data)
        ext = "png" if fmt in ("jpg", "tif") and variant == "animated" else fmt
        in_size, out_size, _, _ = upscale_one(
            up, str(src), str(tmp_path / f"{variant}_x2.{ext}"), 2.0, None
        )
        assert out_size == (2 * in_size[0], 2 * in_size[1]), (fmt, variant)


def test_mutations_change_the_files(fuzz):
    seeds = fuzz.seed_files()
    sample = list(fuzz.cases(60, seed=11))
    assert {m for _, _, m, _ in sample} == set(fuzz.MUTATIONS)
    changed = sum(data not in seeds.values() for _, _, _, data in sample)
    assert changed >= 55  # (a splice may repeat a block zero times... rarely)


def test_seeded_sample_no_crash_hang_or_stray_file(fuzz, tmp_path):
    summary = fuzz.run_cli_path(400, seed=2026, workdir=str(tmp_path))
    assert summary["crashes"] == 0, summary["first_crashes"]
    assert summary["hangs"] == 0 and summary["stray_files"] == 0, summary
    assert summary["stderr_output"] == 0, summary["first_stderr"]
    outcomes = summary["counts"]
    # Both outcomes occur for every format: the sample exercises decoders, not just the sniffing.
    for fmt in fuzz.FORMATS:
        assert outcomes.get(f"{fmt}/error", 0) > 0, outcomes
    assert sum(v for k, v in outcomes.items() if k.endswith("/output")) > 50, outcomes
    assert os.listdir(tmp_path) == []
