"""The one image reader: odd files read the same through every consumer, and
nothing else in the package decodes files."""

import io
import os
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from vdsr_tf.data import degradation, pipeline
from vdsr_tf.evaluation import benchmark as evaluate
from vdsr_tf.io import images as imageio

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(0)
H, W = 40, 52


def _png16(array):
    """A 16-bit PNG (grey (H, W) or RGB (H, W, 3) uint16), written by hand:
    Pillow cannot write 16-bit RGB."""
    h, w = array.shape[:2]
    colour = 2 if array.ndim == 3 else 0
    raw = b"".join(b"\0" + array[r].astype(">u2").tobytes() for r in range(h))

    def chunk(kind, body):
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _odd_files(folder):
    """The odd files of the issue, by name (all H x W, the JPEG stored W x H)."""
    os.makedirs(folder, exist_ok=True)
    grad = np.linspace(0, 65535, H * W).reshape(H, W).astype(np.uint16)
    files = {
        "grey16.png": _png16(grad),
        "rgb16.png": _png16(np.stack([grad, grad[::-1], 65535 - grad], axis=-1)),
    }
    rgb = RNG.integers(0, 256, (H, W, 3)).astype(np.uint8)
    ims = {
        "la.png": Image.fromarray(np.stack([rgb[..., 0], rgb[..., 1]], -1), "LA"),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
    }
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 3
    ims["palette_transparent.png"] = pal
    for name, im in ims.items():
        buf = io.BytesIO()
        im.save(
            buf,
            format="JPEG" if name.endswith(".jpg") else "PNG",
            **({"transparency": 3} if name.startswith("palette") else {}),
        )
        files[name] = buf.getvalue()
    # Stored W x H, EXIF says "rotate 90 CW" (orientation 6): shown H x W.
    rotated = Image.fromarray(np.ascontiguousarray(np.rot90(rgb)))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    rotated.save(buf, format="JPEG", exif=exif, quality=95)
    files["exif_rotated.jpg"] = buf.getvalue()
    for name, content in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(content)
    return sorted(files)


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    """A set folder (HR/ and LR_bicubic/X2/ hold the same odd files) and a
    manual TFDS folder (train/T91 and train/BSD200)."""
    root = tmp_path_factory.mktemp("odd")
    names = _odd_files(str(root / "Set" / "HR"))
    _odd_files(str(root / "Set" / "LR_bicubic" / "X2"))
    _odd_files(str(root / "manual" / "train" / "T91"))
    _odd_files(str(root / "manual" / "train" / "BSD200"))
    return root, names


def test_the_reader_policy(odd):
    root, names = odd
    ys = {n: imageio.read_y(str(root / "Set" / "HR" / n)) for n in names}
    assert all(y.shape == (H, W) and y.dtype == np.uint8 for y in ys.values())
    assert ys["grey16.png"].min() == 0 and ys["grey16.png"].max() == 255  # grey stays grey
    la = imageio.read_image(str(root / "Set" / "HR" / "la.png"))
    assert la.shape == (H, W, 2)
    assert imageio.read_image(str(root / "Set" / "HR" / "palette_transparent.png")).shape[-1] == 4


def test_every_consumer_reads_the_same_pixels(odd):
    root, names = odd
    hr = str(root / "Set" / "HR")
    want = [imageio.read_y(os.path.join(hr, n)) for n in names]
    # The upscaler's CLI path.
    upscaler = [imageio.to_y(np.asarray(imageio.open_image(os.path.join(hr, n))[0])) for n in names]
    # Training data: the numpy sampler's planes and the tf.data pipeline's planes.
    numpy_planes = degradation.load_y_planes(hr)
    tf_planes = [p.numpy() for p in pipeline._y_plane_dataset(hr)]
    # Evaluation.
    pairs = {
        name: (lr, hr_img) for name, lr, hr_img in evaluate.benchmark_pairs(str(root / "Set"), 2)
    }
    eval_hr = [imageio.to_y(pairs[n][1]) for n in names]
    eval_lr = [imageio.to_y(pairs[n][0]) for n in names]
    want_lr = [imageio.read_y(str(root / "Set" / "LR_bicubic" / "X2" / n)) for n in names]
    for consumer, ref_planes in (
        (upscaler, want),
        (numpy_planes, want),
        (tf_planes, want),
        (eval_hr, want),
        (eval_lr, want_lr),
    ):
        assert len(consumer) == len(ref_planes)
        for name, got, ref in zip(names, consumer, ref_planes):
            np.testing.assert_array_equal(got, ref, err_msg=name)


def test_tfds_builder_reads_the_same_pixels(odd, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    import vdsr_tf.data.tfds_builders as builders

    root, names = odd
    ds = builders.load("sr291", data_dir=str(tmp_path / "tfds"), manual_dir=str(root / "manual"))
    got = {ex["name"].decode(): ex["hr"] for ex in tfds.as_numpy(ds)}
    for name in names:
        want = imageio.read_y(str(root / "manual" / "train" / "T91" / name))
        np.testing.assert_array_equal(imageio.to_y(got[f"T91/{name}"]), want, err_msg=name)


_DECODERS = re.compile(r"Image\.open\(|tf\.io\.decode_|tf\.image\.decode_|decode_image\(")


def test_only_imageio_decodes_files():
    """Outside the image I/O module nothing decodes images, except the
    SavedModel's graph (it decodes the bytes TF Serving receives)."""
    allowed = {
        os.path.join("vdsr_tf", "io", "images.py"): None,
        os.path.join("vdsr_tf", "export", "saved_model.py"): {"tf.io.decode_"},
    }
    offenders = []
    for folder, _, files in os.walk(os.path.join(REPO, "vdsr_tf")):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, REPO)
            with open(path) as f:
                found = set(_DECODERS.findall(f.read()))
            if rel in allowed:
                found -= allowed[rel] or found
            if found:
                offenders.append(f"{rel}: {sorted(found)}")
    assert not offenders, offenders
