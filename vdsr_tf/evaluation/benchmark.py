"""The benchmark protocol: score an upscaler on Set5 / Set14 / B100-style sets.

A set folder holds ``HR/*.png`` and ``LR_bicubic/X{s}/*.png`` (MATLAB-made LR).
For each image the LR file goes through the ``Upscaler`` to a uint8 image and
is scored against ``HR[:s*h, :s*w]`` on MATLAB Y with ``s`` pixels shaved
(``vdsr_tf.evaluation.metrics``).
"""

import os

import numpy as np

from vdsr_tf.evaluation.metrics import psnr, ssim
from vdsr_tf.io.images import list_images, read_image, to_y


def benchmark_pairs(set_dir, scale, data_dir=None, manual_dir=None):
    """Yields ``(name, lr, hr)`` uint8 images of one set at one scale.

    Args:
        set_dir: a folder with ``HR/`` and ``LR_bicubic/X{scale}/``, or
            ``"tfds:NAME"`` for a ``vdsr_tf.data.tfds_builders`` benchmark prepared
            under ``data_dir`` (from ``manual_dir`` on first use).
        scale: 2, 3 or 4.

    ``hr`` is cropped to ``scale`` x the LR size. For folders, only names
    present in both ``HR`` and ``LR_bicubic/X{scale}`` are used. Grayscale
    images are (H, W), colour (H, W, 3).

    Raises:
        FileNotFoundError: if the set or the scale's LR folder is missing.
    """
    if str(set_dir).startswith("tfds:"):
        yield from _tfds_pairs(set_dir, scale, data_dir, manual_dir)
        return
    lr_dir = os.path.join(set_dir, "LR_bicubic", f"X{scale}")
    hr_paths = list_images(os.path.join(set_dir, "HR"))
    if not os.path.isdir(lr_dir):
        raise FileNotFoundError(f"No LR images for x{scale}: {lr_dir} is missing")
    found = False
    for hr_path in hr_paths:
        name = os.path.basename(hr_path)
        lr_path = os.path.join(lr_dir, name)
        if not os.path.exists(lr_path):
            continue
        found = True
        lr = read_image(lr_path, alpha=False)
        hr = read_image(hr_path, alpha=False)
        h, w = lr.shape[0] * scale, lr.shape[1] * scale
        yield name, lr, hr[:h, :w]
    if not found:
        raise FileNotFoundError(f"No LR files in {lr_dir} match {set_dir}/HR")


def _squeeze_grey(image):
    return image[..., 0] if image.shape[-1] == 1 else image[..., :3]


def _tfds_pairs(spec, scale, data_dir, manual_dir):
    import tensorflow_datasets as tfds

    import vdsr_tf.data.tfds_builders as builders
    from vdsr_tf.data.pipeline import parse_tfds_spec

    name, split = parse_tfds_spec(spec)
    ds = builders.load(name, split=split or "test", data_dir=data_dir, manual_dir=manual_dir)
    key = f"lr_x{scale}"
    if key not in ds.element_spec:
        raise FileNotFoundError(f"TFDS dataset {name!r} has no {key} feature")
    for ex in tfds.as_numpy(ds):
        lr, hr = _squeeze_grey(ex[key]), _squeeze_grey(ex["hr"])
        h, w = lr.shape[0] * scale, lr.shape[1] * scale
        yield ex["name"].decode(), lr, hr[:h, :w]


def evaluate_set(upscaler, set_dir, scale, keep_images=False, data_dir=None, manual_dir=None):
    """Mean PSNR / SSIM of ``upscaler`` on one set at one scale.

    Returns:
        ``{"psnr": float, "ssim": float, "n": int}``, plus ``"images"``: a list
        of ``(name, sr, hr)`` uint8 arrays when ``keep_images``.
    """
    return evaluate_pairs(
        upscaler, benchmark_pairs(set_dir, scale, data_dir, manual_dir), scale, keep_images
    )


def evaluate_pairs(upscaler, pairs, scale, keep_images=False):
    """Mean PSNR / SSIM of ``upscaler`` over ``(name, lr, hr)`` uint8 pairs.

    ``hr`` is already cropped to ``scale`` x the LR size; grayscale (H, W)
    pairs are scored as they are (e.g. Y planes), colour ones on MATLAB Y.
    Returns what ``evaluate_set`` does.
    """
    psnrs, ssims, images = [], [], []
    for name, lr, hr in pairs:
        sr = upscaler.upscale(lr, size=hr.shape[:2])
        psnrs.append(psnr(sr, hr, crop_border=scale))
        ssims.append(ssim(sr, hr, crop_border=scale))
        if keep_images:
            images.append((name, sr, hr))
    result = {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "n": len(psnrs)}
    if keep_images:
        result["images"] = images
    return result


def pack_benchmark_y(data_dir, sets, scales, path):
    """Writes the Y planes of benchmark sets (HR and MATLAB LR) to one ``.npz``.

    Keys are ``SET/HR/NAME`` and ``SET/X{s}/NAME`` (uint8 MATLAB Y); the GPU
    release job scores its weights on them where the PNG files do not
    travel. Written atomically.
    """
    from vdsr_tf.io.atomic import atomic_write

    arrays = {}
    for name in sets:
        folder = os.path.join(data_dir, name)
        for s in scales:
            for img, lr, _ in benchmark_pairs(folder, s):
                arrays[f"{name}/X{s}/{img}"] = to_y(lr)
                hr_key = f"{name}/HR/{img}"
                if hr_key not in arrays:  # uncropped, once per image (not per scale)
                    arrays[hr_key] = to_y(read_image(os.path.join(folder, "HR", img), alpha=False))
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
    return len(arrays)


def packed_pairs(packed, set_name, scale):
    """``(name, lr_y, hr_y)`` uint8 pairs of one set and scale from ``pack_benchmark_y``'s file
    (an open ``np.load`` object or a dict), ``hr_y`` cropped to ``scale`` x the LR size."""
    prefix = f"{set_name}/X{scale}/"
    names = sorted(k[len(prefix) :] for k in packed.keys() if k.startswith(prefix))
    if not names:
        raise FileNotFoundError(f"No {set_name} x{scale} planes in the pack")
    for img in names:
        lr = packed[prefix + img]
        hr = packed[f"{set_name}/HR/{img}"]
        yield img, lr, hr[: lr.shape[0] * scale, : lr.shape[1] * scale]


def comparison_strip(bicubic, sr, hr, crop=96, zoom=2):
    """A uint8 RGB strip ``bicubic | sr | hr`` of one centre crop, zoomed.

    Args:
        bicubic, sr, hr: uint8 images of the same shape ((H, W) or (H, W, 3)).
        crop: side of the centre crop (clamped to the image).
        zoom: nearest-neighbour zoom of the crop.
    """

    def prepare(im):
        im = im if im.ndim == 3 else np.repeat(im[..., None], 3, axis=-1)
        h, w = im.shape[:2]
        c = min(crop, h, w)
        t, l = (h - c) // 2, (w - c) // 2
        patch = im[t : t + c, l : l + c]
        return patch.repeat(zoom, axis=0).repeat(zoom, axis=1)

    gap = np.full((prepare(hr).shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([prepare(bicubic), gap, prepare(sr), gap, prepare(hr)], axis=1)
