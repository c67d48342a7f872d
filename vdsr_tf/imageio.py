"""Image files in and out: the package's one image reader and writer (Pillow).

``open_image`` is the one decoder: every consumer (the training data, both
samplers, the TFDS builders, the evaluation, the upscaler and its CLI) reads
files through it or through ``read_image`` / ``read_y`` built on it. It
applies the EXIF orientation, checks a pixel limit before decoding, keeps the
ICC profile, and converts every mode to L, LA, RGB or RGBA with one policy
(``to_supported``): palettes to RGB(A), 16-bit grey to 8-bit grey over the
full range, CMYK and others to RGB. Grey stays grey, so its Y is the grey
value. ``save_image`` writes atomically (``vdsr_tf.files``) in the format
named by the extension, keeping the ICC profile. Nothing outside this module
calls ``Image.open`` or ``tf.io.decode_*``, except the SavedModel's graph,
which decodes the bytes TF Serving receives.
"""

import os

import numpy as np

from vdsr_tf.files import atomic_write
from vdsr_tf.imresize import rgb2y, to_uint8

SUPPORTED_MODES = ("L", "LA", "RGB", "RGBA")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
           ".tif": "TIFF", ".tiff": "TIFF"}


class ImageError(ValueError):
    """A file that cannot be read as an image, or is over the pixel limit."""


def format_for(path):
    """Pillow format name for a path's extension; ValueError if unsupported."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"Unsupported output extension {ext!r} for {path}; use one of "
                         f"{', '.join(sorted(FORMATS))}")
    return FORMATS[ext]


def to_supported(im):
    """Converts a PIL image to L, LA, RGB or RGBA.

    Returns:
        ``(image, notes)``: the converted image (the input itself when already
        supported) and a list of human-readable notes on what was changed.
    """
    from PIL import Image

    notes = []
    mode = im.mode
    if mode in SUPPORTED_MODES:
        return im, notes
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        target = "RGBA" if has_alpha else "RGB"
        notes.append(f"palette image converted to {target}")
        return im.convert(target), notes
    if mode == "1":
        notes.append("1-bit image converted to 8-bit grayscale")
        return im.convert("L"), notes
    if mode.startswith("I") or mode == "F":
        # 16-bit (or 32-bit) grayscale: map the full range to 8 bits.
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or a.max() <= 65535 else float(a.max())
        if mode == "F":
            top = 1.0 if a.max() <= 1.0 else float(a.max())
        notes.append(f"{mode} grayscale reduced to 8 bits (0..{top:g} -> 0..255)")
        a = to_uint8(a / top * 255.0)
        return Image.fromarray(a, "L"), notes
    if mode in ("RGBa", "La"):
        target = "RGBA" if mode == "RGBa" else "LA"
        notes.append(f"premultiplied {mode} converted to {target}")
        return im.convert(target), notes
    notes.append(f"{mode} image converted to RGB")
    return im.convert("RGB"), notes


def open_image(path, max_pixels=None):
    """Opens an image file, orientation applied, in a supported mode.

    Args:
        path: file path.
        max_pixels: refuse (before decoding) images with more input pixels.

    Returns:
        ``(image, notes)``: a loaded PIL image in L/LA/RGB/RGBA (``info``
        keeps the ICC profile) and a list of notes on conversions.

    Raises:
        ImageError: for a missing, empty, corrupt, truncated or over-limit
            file, with a one-line message.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not os.path.isfile(path):
        raise ImageError("not a file")
    if os.path.getsize(path) == 0:
        raise ImageError("empty file (0 bytes)")
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w < 1 or h < 1:
                raise ImageError(f"zero-sized image ({w}x{h})")
            if max_pixels and w * h > max_pixels:
                raise ImageError(f"{w}x{h} exceeds the pixel limit of {max_pixels:,}")
            icc = im.info.get("icc_profile")
            notes = []
            if im.getexif().get(0x0112, 1) != 1:
                notes.append("EXIF orientation applied")
            im = ImageOps.exif_transpose(im)
            im.load()
            im, more = to_supported(im)
            if icc:
                im.info["icc_profile"] = icc
            return im, notes + more
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image file (format not recognised)") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"too large: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"corrupt or truncated image: {e}") from None


def read_image(path, alpha=True, max_pixels=None):
    """Reads an image file as a uint8 array (``open_image``'s decoding).

    Args:
        path: file path.
        alpha: keep an alpha channel; False drops it.
        max_pixels: refuse (before decoding) images with more pixels.

    Returns:
        uint8 (H, W) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or
        (H, W, 4) RGBA, in [0, 255].

    Raises:
        ImageError: as ``open_image``.
    """
    image = np.asarray(open_image(path, max_pixels)[0])
    if not alpha and image.ndim == 3 and image.shape[-1] in (2, 4):
        image = image[..., :-1]
        image = image[..., 0] if image.shape[-1] == 1 else image
    return np.ascontiguousarray(image)


def to_y(image):
    """The uint8 Y plane of an image: MATLAB ``rgb2ycbcr`` luma, or grey as is.

    Args:
        image: uint8, (H, W), (H, W, 1|2) grey (+ alpha), (H, W, 3|4) RGB
            (+ alpha); alpha is ignored.

    Returns:
        uint8 (H, W) in [0, 255].
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"Expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[-1] in (1, 2):
        return image[..., 0]
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        return rgb2y(image[..., :3])
    raise ValueError(f"Unsupported image shape {image.shape}")


def read_y(path):
    """Reads an image file and returns its uint8 (H, W) Y plane (``to_y``)."""
    return to_y(read_image(path, alpha=False))


def list_images(folder):
    """Sorted paths of the image files directly inside ``folder``.

    Raises:
        FileNotFoundError: if ``folder`` is not a directory or holds no images.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Not a directory: {folder}")
    paths = sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not paths:
        raise FileNotFoundError(
            f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}"
        )
    return paths


def sample_images_dir():
    """The bundled sample set: a folder with ``HR/`` and ``LR_bicubic/X{2,3,4}/``.

    Two Set5 images (bird, butterfly), so demos and tests run without any
    download.
    """
    return os.path.join(os.path.dirname(__file__), "weights", "samples")


def save_image(im, path, fmt=None, overwrite=False):
    """Writes a PIL image atomically; returns notes on format adaptations.

    Args:
        im: PIL image (L, LA, RGB or RGBA).
        path: destination; its extension picks the format unless ``fmt``.
        fmt: Pillow format name, or None.
        overwrite: replace an existing file.

    Raises:
        FileExistsError: if ``path`` exists and not ``overwrite``.
        ValueError: for an unsupported extension.
    """
    fmt = fmt or format_for(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists (use --overwrite)")
    notes = []
    if fmt == "JPEG" and im.mode in ("LA", "RGBA"):
        notes.append("alpha dropped (JPEG has none)")
        im2 = im.convert("L" if im.mode == "LA" else "RGB")
        im2.info.update(im.info)
        im = im2
    kwargs = {}
    if im.info.get("icc_profile"):
        kwargs["icc_profile"] = im.info["icc_profile"]
    if fmt == "JPEG":
        kwargs["quality"] = 95
    elif fmt == "WEBP":
        kwargs["lossless"] = True
    atomic_write(path, lambda f: im.save(f, format=fmt, **kwargs))
    return notes


def save_array(array, path, overwrite=True):
    """Writes a uint8 (H, W) or (H, W, 3|4) array as an image (format by extension)."""
    from PIL import Image

    return save_image(Image.fromarray(np.asarray(array)), path, overwrite=overwrite)
