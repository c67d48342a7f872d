"""The Upscaler: colour modes, any scale, exact tiling, ensemble, PIL I/O."""

import io
import os

import numpy as np
import pytest
from PIL import Image

import vdsr_tf
from vdsr_tf.inference.upscaler import Upscaler, output_size
from vdsr_tf.io.images import (
    ImageError,
    open_image,
    sample_images_dir,
    save_image,
    to_supported,
)
from vdsr_tf.models.vdsr import build_vdsr
from vdsr_tf.ops.imresize import imresize
from vdsr_tf.ops.tiling import slices, tiles

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def model():
    # The real 20-layer network (receptive field 41): tiling exactness depends on it.
    return build_vdsr()


@pytest.fixture(scope="module")
def small():
    return build_vdsr(depth=3, filters=8)


def test_tiled_equals_whole_image(model):
    # Equal up to float32 accumulation order: oneDNN picks other kernels for
    # other shapes (and on AVX2 vs AVX-512 machines), which moves results by
    # up to ~2e-6. Too little context moves them by > 1e-3 (next test).
    y = RNG.random((150, 170)).astype(np.float32)
    whole = Upscaler(model=model, tile=0).predict_y(y)
    for tile in (40, 64, 100):
        np.testing.assert_allclose(
            Upscaler(model=model, tile=tile).predict_y(y), whole, rtol=0, atol=1e-5
        )


def test_tiled_images_equal_whole_after_quantisation(model):
    """What users see: 8-bit outputs of tiled and whole-image runs differ on
    fewer than 0.1 % of the values (a float difference can cross a rounding
    boundary), and never by more than 1 level."""
    image = RNG.integers(0, 256, (75, 85, 3)).astype(np.uint8)
    whole = Upscaler(model=model, tile=0).upscale(image, scale=2).astype(int)
    for tile in (40, 64):
        diff = np.abs(Upscaler(model=model, tile=tile).upscale(image, scale=2) - whole)
        assert diff.max() <= 1
        assert np.mean(diff > 0) < 0.001


def test_too_little_context_would_differ(model):
    """The equality test above can fail: with context 0 tiles differ."""
    y = RNG.random((90, 90)).astype(np.float32)
    up = Upscaler(model=model, tile=40)
    whole = Upscaler(model=model, tile=0).predict_y(y)
    out = np.empty_like(y)
    for box, _ in tiles(90, 90, 40, 0):
        out[slices(box)] = up._run(np.ascontiguousarray(y[slices(box)]))
    assert np.abs(out - whole).max() > 1e-3
    assert up.context == 20


def test_tiles_cover_the_image_once():
    seen = np.zeros((101, 77), int)
    for box, window in tiles(101, 77, 32, 20):
        seen[slices(box)] += 1
        assert window[:2] <= box[:2] and window[2] >= box[2] and window[3] >= box[3]
    assert (seen == 1).all()


def test_ensemble_is_tiled_exactly_and_differs_from_plain(model):
    y = RNG.random((70, 90)).astype(np.float32)
    whole = Upscaler(model=model, tile=0, ensemble=True).predict_y(y)
    # Float32 accumulation order differs between tile shapes (see above).
    np.testing.assert_allclose(
        Upscaler(model=model, tile=32, ensemble=True).predict_y(y), whole, rtol=0, atol=1e-5
    )
    assert np.abs(whole - Upscaler(model=model, tile=0).predict_y(y)).max() > 1e-4


def test_ensemble_of_identity_is_identity():
    up = Upscaler(model=build_vdsr(depth=3, filters=8, zero_init_residual=True), ensemble=True)
    y = RNG.random((20, 31)).astype(np.float32)
    np.testing.assert_allclose(up.predict_y(y), y, atol=1e-6)


@pytest.mark.parametrize("shape", [(23, 31), (23, 31, 1), (23, 31, 3), (23, 31, 4), (23, 31, 2)])
@pytest.mark.parametrize("scale", [2, 2.5, 3.7])
def test_modes_and_scales(small, shape, scale):
    image = RNG.integers(0, 256, shape).astype(np.uint8)
    out = Upscaler(model=small).upscale(image, scale=scale)
    assert out.dtype == np.uint8
    assert out.shape[:2] == (round(23 * scale), round(31 * scale))
    assert out.shape[2:] == image.shape[2:]
    if len(shape) == 3 and shape[-1] in (2, 4):
        alpha = imresize(image[..., -1] / np.float32(255), output_shape=out.shape[:2])
        np.testing.assert_array_equal(out[..., -1], np.clip(np.floor(alpha * 255 + 0.5), 0, 255))


def test_exact_size(small):
    out = Upscaler(model=small).upscale(np.zeros((10, 20, 3), np.uint8), size=(31, 45))
    assert out.shape == (31, 45, 3)


def test_zero_residual_model_is_bicubic_on_y(small):
    """With a zero residual the output is bicubic Y (plus bicubic CbCr)."""
    ident = build_vdsr(depth=3, filters=8, zero_init_residual=True)
    lr = np.asarray(Image.open(os.path.join(sample_images_dir(), "LR_bicubic", "X2", "bird.png")))
    out = Upscaler(model=ident).upscale(lr, scale=2)
    bic = Upscaler("bicubic").upscale(lr, scale=2)
    # Float-path bicubic vs MATLAB uint8 bicubic: within rounding.
    assert np.abs(out.astype(int) - bic).max() <= 2


@pytest.mark.parametrize(
    "kwargs",
    [dict(scale=1.0), dict(scale=0.5), dict(), dict(scale=2, size=(9, 9)), dict(size=(5, 5))],
)
def test_bad_scale_or_size(small, kwargs):
    with pytest.raises(ValueError):
        Upscaler(model=small).upscale(np.zeros((8, 8), np.uint8), **kwargs)


def test_bad_arrays_and_pixel_limit(small):
    up = Upscaler(model=small, max_pixels=1000)
    with pytest.raises(ValueError, match="pixel limit"):
        up.upscale(np.zeros((20, 20), np.uint8), scale=2)
    with pytest.raises(ValueError, match="uint8, uint16, float32 or float64"):
        up.upscale(np.zeros((8, 8), np.int64), scale=2)
    with pytest.raises(ValueError, match="shape"):
        up.upscale(np.zeros((8, 8, 5), np.uint8), scale=2)


def test_pil_in_pil_out_keeps_icc(small):
    from vdsr_tf.io.images import srgb_profile

    im = Image.fromarray(RNG.integers(0, 256, (12, 14, 3)).astype(np.uint8))
    im.info["icc_profile"] = srgb_profile()
    out = Upscaler(model=small).upscale(im, scale=2)
    assert isinstance(out, Image.Image) and out.size == (28, 24) and out.mode == "RGB"
    assert out.info["icc_profile"] == srgb_profile()


def test_one_call_form_and_model_attribute(small, tmp_path):
    path = str(tmp_path / "w.weights.h5")
    build_vdsr().save_weights(path)
    out = vdsr_tf.upscale(np.zeros((8, 8), np.uint8), 2, weights=path)
    assert out.shape == (16, 16)
    assert Upscaler(path).model.count_params() == 665_921


def test_missing_bundled_weights_message(monkeypatch, tmp_path):
    import vdsr_tf.io.bundled as b
    from vdsr_tf.io import presets

    # An install whose bundled preset folder has no Keras weights (the lite one).
    monkeypatch.setattr(presets, "BUNDLED", str(tmp_path))
    monkeypatch.setitem(presets._REGISTRY, "bundled", str(tmp_path))
    monkeypatch.setattr(b, "_WEIGHTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no bundled Keras weights"):
        Upscaler(backend="keras")
    monkeypatch.setattr(b, "bundled_tflite_path", lambda precision="fp32": str(tmp_path / "x"))
    with pytest.raises(FileNotFoundError, match="No such TFLite model file"):
        Upscaler(backend="litert")
    with pytest.raises(FileNotFoundError, match="no bundled Keras weights"):
        Upscaler()  # no bundled .tflite either: the default is Keras


def test_output_size_rounds():
    assert output_size((10, 15), scale=2.5) == (25, 38)
    assert output_size((5, 7), scale=2.5) == (13, 18)  # 12.5 -> 13, 17.5 -> 18
    assert output_size((3, 3), size=(7, 8)) == (7, 8)


# -- file I/O --------------------------------------------------------------------
def test_to_supported_conversions():
    cases = {
        "P": Image.new("P", (4, 4)),
        "1": Image.new("1", (4, 4)),
        "I;16": Image.fromarray(np.full((4, 4), 65535, np.uint16)),
        "CMYK": Image.new("CMYK", (4, 4)),
        "RGBa": Image.new("RGBa", (4, 4)),
    }
    expected = {"P": "RGB", "1": "L", "I;16": "L", "CMYK": "RGB", "RGBa": "RGBA"}
    for mode, im in cases.items():
        out, notes = to_supported(im)
        assert out.mode == expected[mode] and notes, mode
    assert np.asarray(to_supported(cases["I;16"])[0]).max() == 255
    rgb = Image.new("RGB", (2, 2))
    assert to_supported(rgb) == (rgb, [])


def test_open_image_applies_exif_orientation(tmp_path):
    im = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees
    path = str(tmp_path / "o.jpg")
    im.save(path, exif=exif)
    out, notes = open_image(path)
    assert out.size == (10, 20)
    assert "EXIF orientation applied" in notes


@pytest.mark.parametrize(
    "content,match", [(b"", "empty"), (b"hello", "not an image"), (None, "truncated")]
)
def test_open_image_errors(tmp_path, content, match):
    path = tmp_path / "x.png"
    if content is None:
        buf = io.BytesIO()
        Image.fromarray(RNG.integers(0, 256, (64, 64, 3)).astype(np.uint8)).save(buf, "PNG")
        content = buf.getvalue()[:500]
    path.write_bytes(content)
    with pytest.raises(ImageError, match=match):
        open_image(str(path))


def test_open_image_pixel_limit(tmp_path):
    path = str(tmp_path / "big.png")
    Image.new("L", (100, 100)).save(path)
    with pytest.raises(ImageError, match="pixel limit"):
        open_image(path, max_pixels=5000)


def test_save_image_is_atomic_and_refuses_overwrite(tmp_path):
    path = str(tmp_path / "o.jpg")
    notes = save_image(Image.new("RGBA", (4, 4)), path)
    assert Image.open(path).mode == "RGB" and notes
    with pytest.raises(FileExistsError):
        save_image(Image.new("RGB", (4, 4)), path)
    save_image(Image.new("RGB", (5, 5)), path, overwrite=True)
    assert Image.open(path).size == (5, 5)
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    with pytest.raises(ValueError, match="extension"):
        save_image(Image.new("RGB", (4, 4)), str(tmp_path / "o.xyz"))
    assert sorted(os.listdir(tmp_path)) == ["o.jpg"]
