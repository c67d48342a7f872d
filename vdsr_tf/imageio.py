"""Reading and writing real-world image files for the upscaler (Pillow).

``open_image`` applies the EXIF orientation, checks a pixel limit before
decoding, and converts every mode to one the upscaler handles (L, LA, RGB,
RGBA), returning notes on what it converted. ``save_image`` writes atomically
(temporary file in the same folder, then rename) in the format named by the
extension, keeping the ICC profile.
"""

import os
import tempfile

import numpy as np

SUPPORTED_MODES = ("L", "LA", "RGB", "RGBA")
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
        a = np.clip(np.floor(a / top * 255.0 + 0.5), 0, 255).astype(np.uint8)
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


def umask():
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".vdsr-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            im.save(f, format=fmt, **kwargs)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return notes
