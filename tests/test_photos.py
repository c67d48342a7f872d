"""Photos as users have them, through the Python API and the per-file path the
CLI takes: EXIF orientation and metadata, colour profiles, animations, numpy
arrays of several dtypes, the model cache, and write failures."""

import errno
import io
import os
import struct
import warnings

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

import vdsr_tf
from vdsr_tf.cli import batch
from vdsr_tf.inference import batch as batches
from vdsr_tf.inference import engines
from vdsr_tf.inference.upscaler import Upscaler
from vdsr_tf.io import images as imageio
from vdsr_tf.io.images import ImageError
from vdsr_tf.models.vdsr import build_vdsr

RNG = np.random.default_rng(3)
MAKE, DATE, ORIENTATION, EXIF_IFD, PIXEL_X, PIXEL_Y = 0x010F, 0x0132, 0x0112, 0x8769, 0xA002, 0xA003


@pytest.fixture(scope="module")
def up():
    return Upscaler(model=build_vdsr(depth=3, filters=8), tile=0)


def _phone_jpeg(path, h=14, w=22, orientation=6):
    """A JPEG stored w x h whose EXIF says 'rotate 90 CW' (a phone held upright),
    with a camera make, a date and the recorded pixel size."""
    exif = Image.Exif()
    exif[ORIENTATION], exif[MAKE], exif[DATE] = orientation, "PhoneCo", "2026:11:26 10:00:00"
    ifd = exif.get_ifd(EXIF_IFD)
    ifd[PIXEL_X], ifd[PIXEL_Y] = w, h
    Image.fromarray(RNG.integers(0, 256, (h, w, 3)).astype(np.uint8)).save(
        path, exif=exif.tobytes(), quality=95
    )
    return path


def _exif(data):
    exif = Image.Exif()
    exif.load(data)
    return exif


# -- EXIF ---------------------------------------------------------------------
def test_pil_input_is_upright_and_keeps_its_exif(tmp_path, up):
    path = _phone_jpeg(str(tmp_path / "phone.jpg"))
    with Image.open(path) as im:
        out = up.upscale(im, scale=2)
        upright = ImageOps.exif_transpose(im)
    assert out.size == (28, 44)  # shown 14 x 22, as a viewer shows it
    np.testing.assert_array_equal(np.asarray(out), np.asarray(up.upscale(upright, scale=2)))
    exif = _exif(out.info["exif"])
    assert ORIENTATION not in exif and exif[MAKE] == "PhoneCo" and exif[DATE].startswith("2026")
    assert (exif.get_ifd(EXIF_IFD)[PIXEL_X], exif.get_ifd(EXIF_IFD)[PIXEL_Y]) == (28, 44)


@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "tif"])
def test_files_keep_exif_where_the_format_holds_it(tmp_path, up, ext):
    src = _phone_jpeg(str(tmp_path / "phone.jpg"))
    dst = str(tmp_path / f"out.{ext}")
    in_size, out_size, frames, notes = up.upscale_file(src, dst, scale=2)
    assert (in_size, out_size, frames) == ((14, 22), (28, 44), 1)
    with Image.open(dst) as im:
        assert im.size == (28, 44)
        exif = im.getexif()
    assert exif.get(ORIENTATION, 1) == 1 and exif[MAKE] == "PhoneCo"
    assert "EXIF orientation applied" in notes


def test_formats_without_exif_say_so(tmp_path, up):
    src = _phone_jpeg(str(tmp_path / "phone.jpg"))
    for ext in ("gif", "bmp"):
        notes = up.upscale_file(src, str(tmp_path / f"out.{ext}"), scale=2)[3]
        assert any("EXIF not kept" in n for n in notes), notes
        assert Image.open(tmp_path / f"out.{ext}").size == (28, 44)


def test_damaged_exif_is_dropped_not_fatal(tmp_path, up):
    path = str(tmp_path / "bad_exif.jpg")
    Image.fromarray(RNG.integers(0, 256, (10, 12, 3)).astype(np.uint8)).save(
        path, exif=b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff"
    )
    im, notes = imageio.open_image(path)
    assert im.size == (12, 10) and "exif" not in im.info
    assert up.upscale_file(path, str(tmp_path / "o.png"), scale=2)[1] == (24, 20)


# -- colour -------------------------------------------------------------------
def _s15(x):
    return struct.pack(">i", int(round(x * 65536)))


def cmyk_profile():
    """A small ICC v2 CMYK -> Lab printer profile (a lut16 A2B0 tag with a
    3-point grid), written here so that the tests need no profile files. Its
    inks have a cast, so a managed conversion differs from Pillow's naive one."""
    pts = np.linspace(0, 1, 3)
    clut = []
    for c in pts:
        for m in pts:
            for y in pts:
                for k in pts:
                    r, g, b = (1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)
                    lab = (
                        100 * (0.3 * r + 0.6 * g + 0.1 * b),
                        60 * (r - g) + 10,
                        60 * (g - b) - 10,
                    )
                    clut += [lab[0] / 100 * 0xFF00, (lab[1] + 128) * 256, (lab[2] + 128) * 256]
    clut = np.clip(np.round(clut), 0, 65535).astype(">u2").tobytes()
    ramp = np.array([0, 65535], ">u2").tobytes()
    lut = (
        b"mft2"
        + b"\0" * 4
        + bytes([4, 3, 3, 0])
        + b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
        + struct.pack(">HH", 2, 2)
        + ramp * 4
        + clut
        + ramp * 3
    )
    text = b"vdsr test CMYK\0"
    desc = (
        b"desc"
        + b"\0" * 4
        + struct.pack(">I", len(text))
        + text
        + struct.pack(">II", 0, 0)
        + struct.pack(">HB", 0, 0)
        + b"\0" * 67
    )
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    tags = [
        (b"desc", desc),
        (b"wtpt", b"XYZ " + b"\0" * 4 + d50),
        (b"cprt", b"text" + b"\0" * 4 + b"none\0"),
        (b"A2B0", lut),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        body += b"\0" * (-(offset + len(body)) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (
        struct.pack(">I", offset + len(body))
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + b"prtrCMYKLab "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 28
        + d50
        + b"\0" * 48
    )
    return header + struct.pack(">I", len(tags)) + table + body


def test_cmyk_jpeg_is_converted_with_its_profile(tmp_path, up):
    icc = cmyk_profile()
    cmyk = Image.fromarray(RNG.integers(0, 256, (12, 10, 4)).astype(np.uint8), "CMYK")
    path = str(tmp_path / "print.jpg")
    cmyk.save(path, icc_profile=icc, quality=100)
    with Image.open(path) as raw:
        raw.load()
        managed = ImageCms.profileToProfile(
            raw,
            ImageCms.ImageCmsProfile(io.BytesIO(icc)),
            ImageCms.createProfile("sRGB"),
            outputMode="RGB",
        )
        naive = raw.convert("RGB")
    im, notes = imageio.open_image(path)
    assert im.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(im), np.asarray(managed))
    assert np.abs(np.asarray(im, int) - np.asarray(naive)).mean() > 5  # the profile mattered
    assert any("embedded ICC profile" in n for n in notes)
    # The output carries a profile of its own pixels' space (sRGB), not the CMYK one.
    dst = str(tmp_path / "print_x2.png")
    up.upscale_file(path, dst, scale=2)
    with Image.open(dst) as out:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(out.info["icc_profile"]))
    assert profile.profile.xcolor_space.strip() == "RGB"


def test_cmyk_without_profile_and_mismatched_profiles(tmp_path):
    path = str(tmp_path / "plain.jpg")
    Image.fromarray(RNG.integers(0, 256, (6, 6, 4)).astype(np.uint8), "CMYK").save(path)
    im, notes = imageio.open_image(path)
    assert im.mode == "RGB" and "icc_profile" not in im.info
    assert any("without colour management" in n for n in notes)
    srgb = imageio.srgb_profile()
    grey = Image.fromarray(RNG.integers(0, 256, (6, 6)).astype(np.uint8), "L")
    grey.info["icc_profile"] = srgb  # an RGB profile on grey pixels
    out, meta, notes = imageio.prepare(grey)
    assert "icc_profile" not in meta and any("describes RGB" in n for n in notes)
    rgb = Image.new("RGB", (4, 4))
    rgb.info["icc_profile"] = srgb
    assert imageio.prepare(rgb)[1]["icc_profile"] == srgb  # a matching profile is kept
    rgb.info["icc_profile"] = b"not a profile"
    assert "icc_profile" not in imageio.prepare(rgb)[1]


# -- animations ---------------------------------------------------------------
def _animation(path, fmt, frames=3, size=(14, 10), mode="RGB"):
    h, w = size
    ims = [
        Image.fromarray(np.full((h, w, 3), 40 + 70 * i, np.uint8)).convert(mode)
        for i in range(frames)
    ]
    ims[0].save(
        path,
        format=fmt,
        save_all=True,
        append_images=ims[1:],
        duration=[100, 200, 300][:frames],
        loop=2,
        **({"lossless": True} if fmt == "WEBP" else {}),
    )
    return path


@pytest.mark.parametrize("ext,fmt", [("gif", "GIF"), ("webp", "WEBP"), ("png", "PNG")])
def test_animations_keep_every_frame_durations_and_loop(tmp_path, up, ext, fmt):
    src = _animation(str(tmp_path / f"anim.{ext}"), fmt)
    dst = str(tmp_path / f"anim_x2.{ext}")
    in_size, out_size, frames, _ = up.upscale_file(src, dst, scale=2)
    assert (in_size, out_size, frames) == ((10, 14), (20, 28), 3)
    with Image.open(dst) as im:
        assert im.n_frames == 3 and im.size == (20, 28) and im.info.get("loop") == 2
        durations, means = [], []
        for i in range(3):
            im.seek(i)
            im.load()
            durations.append(im.info["duration"])
            means.append(np.asarray(im.convert("L"), float).mean())
    assert durations == [100, 200, 300]
    assert means[0] < means[1] < means[2]  # three different frames, in order


def test_animations_are_never_cut_to_one_frame(tmp_path, up):
    src = _animation(str(tmp_path / "anim.gif"), "GIF")
    with pytest.raises(ImageError, match="3 frames.*JPEG holds one"):
        up.upscale_file(src, str(tmp_path / "anim.jpg"), scale=2)
    assert sorted(os.listdir(tmp_path)) == ["anim.gif"]
    with Image.open(src) as im, pytest.raises(ValueError, match="3 frames.*upscale_file"):
        up.upscale(im, scale=2)


# -- numpy --------------------------------------------------------------------
@pytest.mark.parametrize("channels", [None, 3, 4])
def test_numpy_dtypes_round_trip(up, channels):
    shape = (9, 11) if channels is None else (9, 11, channels)
    u8 = RNG.integers(0, 256, shape).astype(np.uint8)
    ref = up.upscale(u8, scale=2).astype(float)
    for dtype, peak in ((np.float32, 1.0), (np.float64, 1.0), (np.uint16, 65535.0)):
        x = u8 / 255.0 * peak
        x = np.round(x).astype(dtype) if dtype == np.uint16 else x.astype(dtype)
        out = up.upscale(x, scale=2)
        assert out.dtype == dtype and out.shape == ref.shape
        assert out.min() >= 0 and out.max() <= peak
        # The same picture, without the uint8 rounding: within one uint8 level.
        assert np.abs(out / peak * 255.0 - ref).max() <= 1.0 + 1e-3
    bicubic = Upscaler("bicubic").upscale(u8 / 255.0, scale=2)
    assert bicubic.dtype == np.float64 and 0 <= bicubic.min() and bicubic.max() <= 1


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.full((4, 4), 1.5, np.float32), r"\[0, 1\]"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.zeros((4, 4), np.int32), "uint8, uint16, float32"),
    ],
)
def test_bad_numpy_arrays_are_clear_errors(up, bad, match):
    with pytest.raises(ValueError, match=match):
        up.upscale(bad, scale=2)


def test_upscale_function_loads_each_weights_file_once(tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    from vdsr_tf import config as C

    cfg = C.override(C.get_preset("paper"), **{"model.depth": 3, "model.filters": 8})
    (folder / "config.json").write_text(C.to_json(cfg))
    path = str(folder / "vdsr.weights.h5")
    build_vdsr(depth=3, filters=8).save_weights(path)
    x = RNG.integers(0, 256, (8, 9, 3)).astype(np.uint8)
    before = engines._cached_network.cache_info()
    first = vdsr_tf.upscale(x, scale=2, weights=path, tile=0)
    second = vdsr_tf.upscale(x, scale=2, weights=path, tile=0)
    after = engines._cached_network.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    np.testing.assert_array_equal(first, second)
    # A changed file is a new entry, never a stale model.
    model = build_vdsr(depth=3, filters=8)
    model.set_weights([w + 0.05 for w in model.get_weights()])
    model.save_weights(path)
    os.utime(path, ns=(1, 1))  # a different stamp even on a coarse clock
    third = vdsr_tf.upscale(x, scale=2, weights=path, tile=0)
    assert engines._cached_network.cache_info().misses - after.misses == 1
    assert not np.array_equal(first, third)


# -- limits and write failures ------------------------------------------------
def test_pixel_limit_names_the_output(tmp_path):
    path = str(tmp_path / "small.png")
    Image.new("RGB", (100, 100)).save(path)
    bicubic = Upscaler("bicubic", max_pixels=1_000_000)
    with pytest.raises(
        ImageError,
        match=r"the output, 100000x100000 \(from 100x100\), would "
        r"exceed the pixel limit of 1,000,000",
    ):
        bicubic.upscale_file(path, str(tmp_path / "big.png"), scale=1000)
    assert sorted(os.listdir(tmp_path)) == ["small.png"]


def test_decompression_bomb_warning_does_not_leak(tmp_path):
    # A PNG header claiming 10000 x 9000 (more than Pillow's warning threshold)
    # and no pixel data: a clean error, no warning on the terminal.
    import zlib

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    path = tmp_path / "bomb.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 10000, 9000, 8, 0, 0, 0, 0))
        + chunk(b"IEND", b"")
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageError):
            imageio.open_image(str(path), max_pixels=100_000_000)
    assert not [w for w in caught if "DecompressionBomb" in type(w.message).__name__]


def _batch_files(tmp_path, n=3):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(n):
        Image.fromarray(RNG.integers(0, 256, (6, 7, 3)).astype(np.uint8)).save(src / f"{i}.png")
    jobs, skipped, _ = batches.collect_inputs([str(src)])
    out = tmp_path / "out"
    out.mkdir()
    return [s for s, _ in jobs], batches.output_paths(jobs, str(out), True, None), out


@pytest.mark.parametrize("code,stops", [(errno.ENOSPC, True), (errno.EACCES, False)])
def test_write_failures_name_the_file_and_leave_nothing(tmp_path, monkeypatch, capsys, code, stops):
    files, destinations, out = _batch_files(tmp_path)

    def failing_save(im, fp, **kwargs):
        with open(fp, "wb") as f:  # half a file, then the error
            f.write(b"partial")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Image.Image, "save", failing_save)
    status = batch.run_batch(Upscaler("bicubic"), files, destinations, scale=2)
    err = capsys.readouterr().err
    assert status == 1
    errors = [l for l in err.splitlines() if ": error: cannot write " in l]
    assert len(errors) == (1 if stops else 3)
    assert os.strerror(code) in errors[0] and destinations[0] in errors[0]
    assert ("stopping: nothing more can be written; 2 files not processed" in err) == stops
    assert os.listdir(out) == []  # no partial file, no temporary file


def test_recursive_folders_mirror_and_count_skipped(tmp_path):
    src = tmp_path / "photos"
    (src / "2025" / "june").mkdir(parents=True)
    for rel in ("a.png", "2025/b.jpg", "2025/june/c.gif"):
        Image.new("RGB", (5, 4)).save(src / rel)
    (src / "notes.txt").write_text("x")
    out = src / "big"  # inside the input folder: not read back as input
    jobs, skipped, folder_given = batches.collect_inputs(
        [str(src)], recursive=True, output=str(out)
    )
    assert folder_given and sorted(n for _, n in jobs) == ["2025/b.jpg", "2025/june/c.gif", "a.png"]
    assert skipped == [str(src / "notes.txt")]
    destinations = batches.output_paths(jobs, str(out), True, "bmp")
    assert (
        batch.run_batch(Upscaler("bicubic"), [s for s, _ in jobs], destinations, scale=2, fmt="bmp")
        == 0
    )
    assert sorted(
        os.path.relpath(os.path.join(r, f), out) for r, _, fs in os.walk(out) for f in fs
    ) == ["2025/b.bmp", "2025/june/c.bmp", "a.bmp"]
    jobs, skipped, _ = batches.collect_inputs([str(src)], output=str(out))
    assert [n for _, n in jobs] == ["a.png"] and str(src / "2025") + os.sep in skipped
    with pytest.raises(batches.BatchError, match="both be written"):
        batches.output_paths([("x/a.png", "a.png"), ("y/a.jpg", "a.jpg")], str(out), True, "png")


def test_pages_of_different_sizes_are_a_clear_error(tmp_path, up):
    path = str(tmp_path / "scan.tif")
    Image.new("RGB", (10, 8)).save(path, save_all=True, append_images=[Image.new("RGB", (20, 8))])
    with pytest.raises(ImageError, match="frame 2 is 20x8, frame 1 10x8"):
        up.upscale_file(path, str(tmp_path / "scan_x2.tif"), scale=2)
    assert os.listdir(tmp_path) == ["scan.tif"]
    same = str(tmp_path / "pages.tif")
    Image.new("RGB", (10, 8)).save(same, save_all=True, append_images=[Image.new("RGB", (10, 8))])
    assert up.upscale_file(same, str(tmp_path / "pages_x2.tif"), scale=2)[2] == 2
