"""Tests for vdsr_tf.evaluation.metrics: PSNR / SSIM conventions and the Keras metric."""

import math

import keras
import numpy as np
import pytest
from PIL import Image

from vdsr_tf.evaluation import metrics
from vdsr_tf.ops.colour import rgb2y
from vdsr_tf.ops.imresize import imresize

# Published bicubic PSNR on Set5 (SRCNN / VDSR papers) and the SSIM this
# implementation measured, pinned against regressions.
# The VDSR paper's bicubic row for Set5 (PSNR / SSIM), published numbers.
SET5_BICUBIC = {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)}


def _random_pair(shape, seed=0, noise=12):
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, shape, dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-noise, noise + 1, shape), 0, 255)
    return sr.astype(np.uint8), hr


# --- PSNR -------------------------------------------------------------------


def test_psnr_of_mse_one():
    hr = np.zeros((8, 8), np.uint8)
    assert metrics.psnr(hr + 1, hr) == pytest.approx(48.1308036, abs=1e-6)


def test_psnr_hand_computed():
    hr = np.full((4, 4), 100, np.uint8)
    sr = hr.copy()
    sr[1, 2] = 116  # MSE = 16^2 / 16 = 16
    want = 10 * math.log10(255**2 / 16)
    assert want == pytest.approx(36.0896, abs=1e-4)
    assert metrics.psnr(sr, hr) == pytest.approx(want, abs=1e-12)
    assert metrics.psnr(sr[..., None], hr[..., None]) == pytest.approx(want, abs=1e-12)


def test_psnr_on_rgb_uses_unrounded_y():
    hr = np.full((6, 6, 3), 100, np.uint8)
    sr = np.full((6, 6, 3), 110, np.uint8)
    # A grey step of 10 moves Y by 10 * 219 / 255, unrounded.
    want_y = 10 * math.log10(255**2 / (10 * 219 / 255) ** 2)
    assert metrics.psnr(sr, hr) == pytest.approx(want_y, abs=1e-9)
    want_rgb = 10 * math.log10(255**2 / 100)
    rgb_psnr = metrics.psnr(sr, hr, test_y_channel=False)
    assert rgb_psnr == pytest.approx(want_rgb, abs=1e-9)


def test_psnr_identical_is_inf():
    sr, _ = _random_pair((10, 12, 3))
    assert metrics.psnr(sr, sr) == float("inf")


def test_crop_border():
    hr = np.full((20, 20, 3), 50, np.uint8)
    sr = hr.copy()
    sr[:2] = 200
    sr[:, -2:] = 0
    assert math.isfinite(metrics.psnr(sr, hr))
    assert math.isfinite(metrics.psnr(sr, hr, crop_border=1))
    assert metrics.psnr(sr, hr, crop_border=2) == float("inf")
    assert metrics.ssim(sr, hr) < 1.0
    assert metrics.ssim(sr, hr, crop_border=2) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("fn", [metrics.psnr, metrics.ssim])
def test_bad_inputs_raise(fn):
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\(16, 16, 3\).*\(16, 15, 3\)"):
        fn(a, a[:, :15])
    with pytest.raises(ValueError):
        fn(a.astype(np.float32), a.astype(np.float32))
    with pytest.raises(ValueError):
        fn(a[..., :2], a[..., :2])
    with pytest.raises(ValueError):
        fn(a, a, crop_border=8)
    with pytest.raises(ValueError):
        fn(a, a, crop_border=-1)


# --- SSIM -------------------------------------------------------------------


def _ssim_reference(a, b):
    """Wang et al.'s SSIM written out window by window (slow, obvious)."""
    x = np.arange(11) - 5.0
    window = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            mu_a, mu_b = np.sum(window * pa), np.sum(window * pb)
            var_a = np.sum(window * (pa - mu_a) ** 2)
            var_b = np.sum(window * (pb - mu_b) ** 2)
            cov = np.sum(window * (pa - mu_a) * (pb - mu_b))
            values.append(
                (2 * mu_a * mu_b + c1)
                * (2 * cov + c2)
                / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
            )
    return float(np.mean(values))


@pytest.mark.parametrize("seed, noise", [(0, 12), (1, 60)])
def test_ssim_matches_direct_loop(seed, noise):
    sr, hr = _random_pair((16, 16), seed=seed, noise=noise)
    assert metrics.ssim(sr, hr) == pytest.approx(_ssim_reference(sr, hr), abs=1e-10)


def test_ssim_rgb_scores_unrounded_y():
    sr, hr = _random_pair((24, 20, 3), seed=2)
    y_sr = rgb2y(sr.astype(np.float64) / 255) * 255
    y_hr = rgb2y(hr.astype(np.float64) / 255) * 255
    want = _ssim_reference(y_sr[2:-2, 2:-2], y_hr[2:-2, 2:-2])
    assert metrics.ssim(sr, hr, crop_border=2) == pytest.approx(want, abs=1e-10)
    per_channel = np.mean([_ssim_reference(sr[..., c], hr[..., c]) for c in range(3)])
    rgb_ssim = metrics.ssim(sr, hr, test_y_channel=False)
    assert rgb_ssim == pytest.approx(per_channel, abs=1e-10)


def test_ssim_identical_is_one():
    sr, _ = _random_pair((32, 40, 3), seed=3)
    assert metrics.ssim(sr, sr) == pytest.approx(1.0, abs=1e-12)


def test_ssim_needs_a_full_window():
    a = np.zeros((12, 12), np.uint8)
    metrics.ssim(a, a, crop_border=0)
    with pytest.raises(ValueError):
        metrics.ssim(a, a, crop_border=1)


# --- The literature's anchor ------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_set5_bicubic_anchor(datasets_dir, scale):
    want_psnr, want_ssim = SET5_BICUBIC[scale]
    psnrs, ssims = [], []
    for hr_path in sorted((datasets_dir / "Set5" / "HR").glob("*.png")):
        lr_path = datasets_dir / "Set5" / "LR_bicubic" / f"X{scale}" / hr_path.name
        with Image.open(lr_path) as img:
            lr = np.asarray(img)
        with Image.open(hr_path) as img:
            hr = np.asarray(img)[: scale * lr.shape[0], : scale * lr.shape[1]]
        sr = imresize(lr, scale=scale)
        psnrs.append(metrics.psnr(sr, hr, crop_border=scale))
        ssims.append(metrics.ssim(sr, hr, crop_border=scale))
    assert len(psnrs) == 5
    # The papers' 33.66 / 30.39 / 28.42 came from a Y-only double pipeline;
    # this RGB uint8 one lands 0.010-0.015 dB above them (33.674, 30.405,
    # 28.430), i.e. within 0.01 once rounded to two decimals.
    assert abs(round(float(np.mean(psnrs)), 2) - want_psnr) <= 0.01 + 1e-9
    # SSIM against the published value, not one this code produced. Measured gap:
    # +0.0004 / +0.0007 / +0.0007 (0.93029, 0.86891, 0.81114), for the same reason
    # as the PSNR's: the paper's bicubic images were made on Y in double, these
    # are MATLAB's RGB uint8 files scored on unrounded Y (scoring Y rounded to
    # uint8 instead lands -0.0007 / -0.0004 / -0.0003 from the paper).
    assert float(np.mean(ssims)) == pytest.approx(want_ssim, abs=0.001)


# --- Keras metric -----------------------------------------------------------


def _numpy_psnr_per_image(y_true, y_pred, crop=0):
    if crop:
        y_true = y_true[:, crop:-crop, crop:-crop]
        y_pred = y_pred[:, crop:-crop, crop:-crop]
    mse = np.mean((y_true.astype(np.float64) - y_pred) ** 2, axis=(1, 2, 3))
    return -10 * np.log10(mse)


@pytest.mark.parametrize("crop_border", [0, 2])
def test_keras_psnr_metric(crop_border):
    rng = np.random.default_rng(7)
    batches = []
    for batch_size in (3, 2):
        y_true = rng.random((batch_size, 12, 10, 1)).astype(np.float32)
        noise = rng.normal(0, rng.uniform(0.01, 0.1), y_true.shape)
        batches.append((y_true, (y_true + noise).astype(np.float32)))
    metric = metrics.PSNRMetric(crop_border=crop_border)
    assert metric.name == "psnr"
    for y_true, y_pred in batches:
        metric.update_state(y_true, y_pred)
    want = np.mean(np.concatenate([_numpy_psnr_per_image(t, p, crop_border) for t, p in batches]))
    assert float(metric.result()) == pytest.approx(want, rel=1e-5)

    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_keras_psnr_metric_sample_weight_and_perfect_images():
    y = np.random.default_rng(8).random((2, 8, 8, 1)).astype(np.float32)
    y_pred = y.copy()
    y_pred[1] += 0.1  # MSE 0.01 -> 20 dB; image 0 is perfect -> capped 100 dB
    metric = metrics.PSNRMetric()
    metric.update_state(y, y_pred)
    assert float(metric.result()) == pytest.approx(60.0, rel=1e-4)
    metric.reset_state()
    metric.update_state(y, y_pred, sample_weight=np.array([0.0, 1.0]))
    assert float(metric.result()) == pytest.approx(20.0, rel=1e-4)


def test_keras_psnr_metric_config_round_trip():
    metric = metrics.PSNRMetric(crop_border=3, name="val_psnr")
    config = metric.get_config()
    assert config["crop_border"] == 3
    clone = metrics.PSNRMetric.from_config(config)
    assert clone.name == "val_psnr"
    assert clone.crop_border == 3
    assert clone.get_config() == config
    with pytest.raises(ValueError):
        metrics.PSNRMetric(crop_border=-1)


def test_keras_psnr_metric_in_compiled_evaluate():
    rng = np.random.default_rng(9)
    x = rng.random((5, 10, 10, 1)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1).astype(np.float32)
    model = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Identity()])
    model.compile(loss="mse", metrics=[metrics.PSNRMetric(crop_border=1)])
    logs = model.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    want = np.mean(_numpy_psnr_per_image(y, x, crop=1))
    assert logs["psnr"] == pytest.approx(want, rel=1e-5)
