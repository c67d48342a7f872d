"""Tests for vdsr_tf.ops.imresize: MATLAB exactness, shapes, colour conversion."""

import numpy as np
import pytest
from PIL import Image

from vdsr_tf.ops.colour import rgb2y, rgb2ycbcr, ycbcr2rgb
from vdsr_tf.ops.imresize import bicubic_weights, imresize, modcrop

SETS = ("Set5", "Set14", "B100")
SCALES = (2, 3, 4)


def _load(path):
    """Image file as a uint8 array, (H, W) for grayscale, (H, W, 3) for RGB."""
    with Image.open(path) as img:
        return np.asarray(img)


# --- MATLAB exactness against the LR_bicubic files --------------------------


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("set_name", SETS)
def test_matches_matlab_lr_files(datasets_dir, set_name, scale):
    hr_paths = sorted((datasets_dir / set_name / "HR").glob("*.png"))
    assert hr_paths, f"no HR images under {datasets_dir / set_name}"
    failures = []
    for hr_path in hr_paths:
        # Only names present in HR/: some LR folders hold extra files.
        lr_path = datasets_dir / set_name / "LR_bicubic" / f"X{scale}" / hr_path.name
        hr = _load(hr_path)
        lr = _load(lr_path)
        out = imresize(modcrop(hr, scale), scale=1.0 / scale)
        if out.shape != lr.shape or out.dtype != lr.dtype:
            failures.append(
                f"{hr_path.name}: got {out.shape} {out.dtype}, want {lr.shape} {lr.dtype}"
            )
        elif not np.array_equal(out, lr):
            differs = out != lr
            if differs.ndim == 3:
                differs = differs.any(axis=-1)
            failures.append(
                f"{hr_path.name}: {np.count_nonzero(differs)} of {differs.size} pixels differ"
            )
    assert not failures, "\n".join(failures)


def test_grayscale_file_keeps_its_channels(datasets_dir):
    hr = _load(datasets_dir / "Set14" / "HR" / "img_003.png")
    lr = _load(datasets_dir / "Set14" / "LR_bicubic" / "X3" / "img_003.png")
    assert hr.ndim == 2
    out = imresize(modcrop(hr, 3), scale=1 / 3)
    assert out.shape == lr.shape
    np.testing.assert_array_equal(out, lr)


# --- Shapes, dtypes and arguments -------------------------------------------


@pytest.mark.parametrize(
    "shape, scale, want",
    [
        ((10, 7), 0.5, (5, 4)),
        ((10, 7, 3), 2, (20, 14, 3)),
        ((255, 300), 1 / 3, (85, 100)),
        ((30, 30), 0.1, (3, 3)),
        ((9, 12, 1), 0.25, (3, 3, 1)),
    ],
)
def test_output_shape_from_scale(shape, scale, want):
    image = np.zeros(shape, dtype=np.uint8)
    assert imresize(image, scale=scale).shape == want


@pytest.mark.parametrize("out_hw", [(3, 9), (17, 5), (8, 8)])
def test_output_shape_argument(out_hw):
    image = np.random.default_rng(0).random((8, 8, 2), dtype=np.float32)
    out = imresize(image, output_shape=out_hw)
    assert out.shape == out_hw + (2,)


def test_identity_at_scale_one():
    image = np.random.default_rng(1).random((7, 9, 3))
    np.testing.assert_array_equal(imresize(image, scale=1.0), image)


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.5, 1.5, 2, 3, 4])
def test_constant_image_stays_constant(scale):
    out = imresize(np.full((24, 18, 3), 77, np.uint8), scale=scale)
    assert out.dtype == np.uint8
    assert np.all(out == 77)
    out = imresize(np.full((24, 18), 0.3, np.float64), scale=scale)
    np.testing.assert_allclose(out, 0.3, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_dtype_is_kept(dtype):
    image = np.random.default_rng(2).random((12, 10)) * 255
    out = imresize(image.astype(dtype), scale=0.5)
    assert out.dtype == dtype


def test_float_is_neither_rounded_nor_clipped():
    image = np.zeros((8, 8), np.float32)
    image[:, 4:] = 1.0
    out = imresize(image, scale=2)
    assert out.min() < 0.0 and out.max() > 1.0  # bicubic overshoot survives
    assert not np.allclose(out, np.round(out * 255) / 255)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"scale": 0.5, "output_shape": (2, 2)},
        {"scale": 0},
        {"scale": -2},
        {"scale": float("nan")},
        {"scale": float("inf")},
        {"scale": True},
        {"output_shape": (0, 3)},
        {"output_shape": (3, -1)},
        {"output_shape": (3,)},
        {"output_shape": (2.5, 3)},
    ],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4), np.uint8), **kwargs)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((4, 4), np.int32),
        np.zeros((4, 4), np.uint16),
        np.zeros((4, 4), bool),
        np.zeros((4,), np.uint8),
        np.zeros((2, 4, 4, 3), np.uint8),
        np.zeros((0, 4), np.uint8),
    ],
)
def test_bad_images_raise(image):
    with pytest.raises(ValueError):
        imresize(image, scale=2)


def test_bad_weight_arguments_raise():
    for args in [(0, 4), (4, 0), (4, 2, -0.5), (4, 2, 0.0)]:
        with pytest.raises(ValueError):
            bicubic_weights(*args)


def test_modcrop():
    image = np.arange(7 * 10 * 3).reshape(7, 10, 3)
    assert modcrop(image, 3).shape == (6, 9, 3)
    assert modcrop(image[..., 0], 2).shape == (6, 10)
    np.testing.assert_array_equal(modcrop(image, 4), image[:4, :8])
    with pytest.raises(ValueError):
        modcrop(image, 0)


# --- The weight matrix --------------------------------------------------------


@pytest.mark.parametrize(
    "in_size, out_size",
    [(12, 6), (12, 4), (12, 3), (13, 5), (5, 10), (4, 13), (1, 3), (6, 1)],
)
def test_weight_rows_sum_to_one(in_size, out_size):
    weights = bicubic_weights(in_size, out_size)
    assert weights.shape == (out_size, in_size)
    assert weights.dtype == np.float64
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_weights_identity_at_scale_one():
    np.testing.assert_array_equal(bicubic_weights(6, 6), np.eye(6))


def test_weights_band_width_when_shrinking():
    # Antialiasing widens the kernel to 4 * s input samples.
    weights = bicubic_weights(40, 10)
    assert np.count_nonzero(weights[5]) == 16
    narrow = bicubic_weights(40, 10, antialiasing=False)
    assert np.count_nonzero(narrow[5]) == 4


def test_upscale_by_two_hand_computed():
    # Output u = 1 samples the input at x = 0.75 (1-based): taps at -1, 0, 1,
    # 2 with Keys weights -0.0234375, 0.2265625, 0.8671875, -0.0703125. The
    # taps at -1 and 0 are clamped onto pixel 1. Output u = 4 samples x = 2.25,
    # away from the border, where a cubic reproduces a linear ramp exactly.
    weights = bicubic_weights(4, 8)
    np.testing.assert_allclose(weights[0], [1.0703125, -0.0703125, 0.0, 0.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(
        weights[1], [0.796875, 0.2265625, -0.0234375, 0.0], rtol=0, atol=1e-15
    )

    ramp = np.repeat(np.array([0.0, 10.0, 20.0, 30.0])[:, None], 3, axis=1)
    out = imresize(ramp, scale=2)
    assert out.shape == (8, 6)
    np.testing.assert_allclose(out[0], -0.703125, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[1], 1.796875, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[3], 12.5, rtol=0, atol=1e-12)

    out8 = imresize(ramp.astype(np.uint8), scale=2)
    # -0.70 saturates to 0 and 12.5 rounds half away from zero to 13.
    np.testing.assert_array_equal(out8[:4, 0], [0, 2, 7, 13])


@pytest.mark.parametrize("out_hw", [(6, 9), (9, 6)])
def test_uint8_rounds_per_pass_in_matlab_order(out_hw):
    # With unequal factors MATLAB resizes the smaller-factor axis first; the
    # per-pass uint8 rounding makes the order observable.
    image = np.random.default_rng(3).integers(0, 256, (12, 12), dtype=np.uint8)
    w_rows = bicubic_weights(12, out_hw[0])
    w_cols = bicubic_weights(12, out_hw[1])

    def to_u8(x):
        return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)

    if out_hw[0] <= out_hw[1]:
        want = to_u8(to_u8(w_rows @ image) @ w_cols.T)
    else:
        want = to_u8(w_rows @ to_u8(image @ w_cols.T))
    np.testing.assert_array_equal(imresize(image, output_shape=out_hw), want)


# --- Colour conversion ----------------------------------------------------------


def test_known_ycbcr_values():
    rgb = np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]], np.uint8)
    np.testing.assert_array_equal(rgb2ycbcr(rgb), [[235, 128, 128], [16, 128, 128], [81, 90, 240]])
    np.testing.assert_array_equal(rgb2y(rgb), [235, 16, 81])
    ycc = rgb2ycbcr(np.array([1.0, 1.0, 1.0], np.float32))
    assert ycc.dtype == np.float32
    np.testing.assert_allclose(ycc * 255, [235, 128, 128], atol=1e-4)
    np.testing.assert_allclose(rgb2y(np.zeros((2, 2, 3))), 16 / 255, atol=1e-15)


def test_rgb2y_equals_first_channel():
    rgb = np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(rgb2y(rgb), rgb2ycbcr(rgb)[..., 0])
    rgbf = rgb.astype(np.float32) / 255
    np.testing.assert_array_equal(rgb2y(rgbf), rgb2ycbcr(rgbf)[..., 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_round_trip(dtype):
    rgb = np.random.default_rng(5).random((32, 32, 3)).astype(dtype)
    back = ycbcr2rgb(rgb2ycbcr(rgb))
    assert back.dtype == dtype
    np.testing.assert_allclose(back, rgb, rtol=0, atol=1e-6)


def test_float_ycbcr2rgb_is_not_clipped():
    # Y = 235/255 with maximal Cr is outside the RGB gamut.
    out = ycbcr2rgb(np.array([235.0, 128.0, 240.0]) / 255)
    assert out[0] > 1.0


def test_uint8_round_trip():
    rgb = np.random.default_rng(6).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    ycc = rgb2ycbcr(rgb)
    assert ycc.dtype == np.uint8
    back = ycbcr2rgb(ycc)
    assert back.dtype == np.uint8
    diff = np.abs(back.astype(int) - rgb)
    # 8-bit YCbCr cannot hold every RGB colour: a few colours (0.35 % of all
    # 2^24) come back 2 levels off, none further.
    assert diff.max() <= 2
    assert np.mean(diff.max(axis=-1) <= 1) > 0.99
    # Greys have 220 luma levels for 256 grey levels: within 1, not exact.
    greys = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    grey_diff = np.abs(ycbcr2rgb(rgb2ycbcr(greys)).astype(int) - greys)
    assert grey_diff.max() <= 1


def test_colour_conversion_rejects_bad_input():
    with pytest.raises(ValueError):
        rgb2ycbcr(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError):
        rgb2y(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError):
        ycbcr2rgb(np.zeros((4, 3), np.int64))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_reproduces_the_bundled_matlab_lr_files(scale):
    """Always runs (CI may lack the full sets): the bundled samples' LR files
    were made by MATLAB ``imresize(HR, 1/s, 'bicubic')``."""
    import os

    from vdsr_tf.io.images import list_images, read_image, sample_images_dir

    root = sample_images_dir()
    paths = list_images(os.path.join(root, "HR"))
    assert len(paths) == 2
    for hr_path in paths:
        lr = read_image(os.path.join(root, "LR_bicubic", f"X{scale}", os.path.basename(hr_path)))
        hr = modcrop(read_image(hr_path), scale)
        np.testing.assert_array_equal(imresize(hr, scale=1 / scale), lr)
