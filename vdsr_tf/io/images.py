"""Image files in and out: the package's one image reader and writer (Pillow).

``open_image`` is the one decoder: every consumer (the training data, both
samplers, the TFDS builders, the evaluation, the upscaler and its CLI) reads
files through it, through ``read_image`` / ``read_y`` built on it, or through
``open_frames`` (every frame of an animation, for the upscaler). Each image
goes through ``prepare``, the same step the Python API applies to PIL images:

* the EXIF orientation is applied and the rest of the EXIF (camera, date,
  ...) is kept with the orientation tag reset;
* colours are managed: CMYK (and Lab) pixels with an embedded profile are
  converted to sRGB with that profile (Pillow's ImageCms) and get an sRGB
  profile; a profile that does not match the pixels is dropped;
* every mode becomes L, LA, RGB or RGBA with one policy (``to_supported``):
  palettes to RGB(A), 16-bit grey to 8-bit grey over the full range, others
  to RGB. Grey stays grey, so its Y is the grey value.

A pixel limit is checked from the header, before decoding. Anything a
damaged file makes Pillow raise becomes an ``ImageError`` with a one-line
message. ``save_image`` / ``save_frames`` write atomically
(``vdsr_tf.io.atomic``) in the format named by the extension, keeping EXIF, ICC
profile, frame durations and loop count where the format holds them. Nothing
outside this module calls ``Image.open`` or ``tf.io.decode_*``, except the
SavedModel's graph, which decodes the bytes TF Serving receives.
"""

import contextlib
import functools
import io
import os
import re
import warnings

import numpy as np

from vdsr_tf.io.atomic import atomic_path
from vdsr_tf.io.stderr import fd2_filtered
from vdsr_tf.ops.colour import rgb2y
from vdsr_tf.ops.imresize import to_uint8

SUPPORTED_MODES = ("L", "LA", "RGB", "RGBA")


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".gif": "GIF",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


# What each output format holds: several frames, EXIF, an ICC profile, alpha.
_MULTI_FRAME = {"PNG", "WEBP", "GIF", "TIFF"}


_HOLDS_EXIF = {"PNG", "JPEG", "WEBP", "TIFF"}


_HOLDS_ICC = {"PNG", "JPEG", "WEBP", "TIFF"}


_HOLDS_XMP = {"PNG", "JPEG", "WEBP", "TIFF"}


_HOLDS_ALPHA = {"PNG", "WEBP", "GIF", "TIFF", "BMP"}


# The encoder settings a user may choose, and the formats that take each
# (``check_encoding``): quality 1-100 for the lossy encoders (WebP is lossless
# unless a quality is given), compression 0-9 for PNG's zlib level.
TAKES_QUALITY = {"JPEG", "WEBP"}


TAKES_COMPRESSION = {"PNG"}


JPEG_QUALITY = 95  # without --quality


# EXIF tags: orientation (IFD0), the Exif IFD, and the pixel size recorded in it.
_ORIENTATION, _EXIF_IFD, _PIXEL_X, _PIXEL_Y = 0x0112, 0x8769, 0xA002, 0xA003


# Tags that describe a file's layout, not the photo: a TIFF's own IFD0 (which
# Pillow's getexif returns) holds them; copied into another file they would
# contradict it. Orientation is applied to the pixels, then reset.
_STRUCTURAL = {
    254,
    255,
    256,
    257,
    258,
    259,
    262,
    266,
    273,
    _ORIENTATION,
    277,
    278,
    279,
    280,
    281,
    284,
    317,
    320,
    322,
    323,
    324,
    325,
    338,
    339,
    340,
    341,
    347,
    530,
    531,
    532,
    34675,
}


# EXIF orientation -> the transposition that shows the image upright (EXIF 2.3).
_UPRIGHT = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}


# The colour space each supported mode's ICC profile must describe.
_PROFILE_SPACE = {"L": "GRAY", "LA": "GRAY", "RGB": "RGB", "RGBA": "RGB"}


class ImageError(ValueError):
    """A file that cannot be read as an image, or is over the pixel limit."""


def check_frames(frames, fmt):
    """Refuses ``frames`` > 1 for a Pillow format that holds one image (JPEG,
    BMP): an animation is never cut to its first frame.

    Raises:
        ImageError: naming the formats that keep every frame.
    """
    if frames > 1 and fmt not in _MULTI_FRAME:
        raise ImageError(
            f"{frames} frames, but {fmt} holds one image; write .gif, .webp, "
            ".png (APNG) or .tif to keep every frame"
        )


def format_for(path):
    """Pillow format name for a path's extension; ValueError if unsupported."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise ValueError(
            f"Unsupported output extension {ext!r} for {path}; use one of "
            f"{', '.join(sorted(FORMATS))}"
        )
    return FORMATS[ext]


def sniff_format(data):
    """The output format that keeps an encoded image's own format: its Pillow
    format name when an output can be written in it (an MPO, a phone's
    multi-picture JPEG, is JPEG), else "PNG". Reads the header only; bytes
    Pillow cannot identify give "PNG" too (reading them reports the error).
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                fmt = "JPEG" if im.format == "MPO" else im.format
    except Exception:  # noqa: BLE001 -- any header Pillow cannot read
        return "PNG"
    return fmt if fmt in FORMATS.values() else "PNG"


def to_supported(im):
    """Converts a PIL image to L, LA, RGB or RGBA (pixels only; see ``prepare``).

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
        a = to_uint8(np.nan_to_num(a) / top * 255.0)
        return Image.fromarray(a, "L"), notes
    if mode in ("RGBa", "La"):
        target = "RGBA" if mode == "RGBa" else "LA"
        notes.append(f"premultiplied {mode} converted to {target}")
        return im.convert(target), notes
    notes.append(f"{mode} image converted to RGB")
    return im.convert("RGB"), notes


def _profile_space(icc):
    """The colour space an ICC profile describes ('RGB', 'CMYK', 'GRAY', ...),
    None if it cannot be read, '' if ImageCms is not available."""
    try:
        from PIL import ImageCms
    except ImportError:
        return ""
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile.xcolor_space.strip()
    except Exception:  # lcms rejects the bytes: the profile is damaged
        return None


@functools.lru_cache(maxsize=1)
def srgb_profile():
    """The bytes of an sRGB ICC profile (littlecms's built-in), made once per
    process: littlecms stamps each new profile with the current time, so two
    calls a second apart would otherwise give different bytes."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _manage_colours(im, icc):
    """CMYK / Lab pixels to sRGB, with the embedded profile when there is one.

    Returns:
        ``(image, icc, notes)``: the image (converted or the input), the ICC
        profile that now describes it (or None), notes.
    """
    if im.mode not in ("CMYK", "LAB"):
        return im, icc, []
    space = _profile_space(icc) if icc else None
    expected = "CMYK" if im.mode == "CMYK" else "Lab"
    try:
        from PIL import ImageCms

        if im.mode == "LAB" and not icc:
            source, how = ImageCms.createProfile("LAB"), "the CIE Lab profile"
        elif space == expected:
            source, how = ImageCms.ImageCmsProfile(io.BytesIO(icc)), "its embedded ICC profile"
        else:
            source = None
        if source is not None:
            out = ImageCms.profileToProfile(
                im, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            return out, srgb_profile(), [f"{im.mode} converted to sRGB with {how}"]
    except ImportError:
        pass
    except Exception as e:  # a profile lcms cannot build a transform from
        return (
            im.convert("RGB"),
            None,
            [f"{im.mode} converted to RGB without colour management (profile unusable: {e})"],
        )
    return (
        im.convert("RGB"),
        None,
        [f"{im.mode} converted to RGB without colour management (no {expected} profile embedded)"],
    )


def _exif(im):
    """``(orientation, exif bytes without the orientation tag or None, notes)``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data": a note below instead
            exif = im.getexif()
            orientation = exif.get(_ORIENTATION, 1)
            for tag in _STRUCTURAL & set(exif):
                del exif[tag]
            if len(exif) == 0:
                return orientation, None, []
            exif.get_ifd(_EXIF_IFD)  # parsed now, so tobytes writes it
            return orientation, exif.tobytes(), []
    except Exception:  # a damaged EXIF block: the pixels are still good
        return 1, None, ["EXIF unreadable; dropped"]


def exif_for_size(exif, width, height):
    """EXIF bytes with the recorded pixel size set to ``width`` x ``height``
    (where the EXIF records one)."""
    from PIL import Image

    if not exif:
        return exif
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # damaged tags: kept as Pillow reads them
            data = Image.Exif()
            data.load(exif)
            ifd = data.get_ifd(_EXIF_IFD)
            if _PIXEL_X in ifd or _PIXEL_Y in ifd:
                ifd[_PIXEL_X], ifd[_PIXEL_Y] = int(width), int(height)
            return data.tobytes()
    except Exception:  # EXIF Pillow cannot rewrite: the output goes without it
        return None


def _upright(im, orientation):
    from PIL import Image

    name = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    return im.transpose(getattr(Image.Transpose, name)) if name else im


def prepare(im, orientation=None, exif=None):
    """A PIL image as the upscaler takes it, without changing ``im``.

    The EXIF orientation is applied, CMYK / Lab colours managed, the mode
    made L, LA, RGB or RGBA, and the ICC profile kept if it describes the
    result's pixels.

    Args:
        im: a loaded PIL image.
        orientation, exif: for the frames of an animation, the first frame's
            (``_exif``); None reads them from ``im``.

    Returns:
        ``(image, meta, notes)``: the image (possibly ``im`` itself), a dict
        with ``icc_profile`` and ``exif`` (bytes, orientation tag reset) where
        they apply, and notes on what was changed.
    """
    notes = []
    if orientation is None:
        orientation, exif, notes = _exif(im)
    turned = orientation not in (1, None) and orientation in _UPRIGHT
    xmp = _xmp(im, turned)
    if turned:
        im = _upright(im, orientation)
        notes.append("EXIF orientation applied")
    icc = im.info.get("icc_profile") or None
    im, icc, more = _manage_colours(im, icc)
    notes += more
    im, more = to_supported(im)
    notes += more
    if icc:
        space = _profile_space(icc)
        if space is None:
            notes.append("damaged ICC profile dropped")
            icc = None
        elif space and space != _PROFILE_SPACE[im.mode]:
            notes.append(f"ICC profile dropped: it describes {space}, the pixels are {im.mode}")
            icc = None
    meta = {k: v for k, v in (("icc_profile", icc), ("exif", exif), ("xmp", xmp)) if v}
    return im, meta, notes


# XMP's copy of the orientation (tiff:Orientation, attribute or element): reset
# with EXIF's, since the pixels are upright.
_XMP_ORIENTATION = re.compile(rb"(tiff:Orientation(?:=[\"']|>))\s*[2-8]\s*(?=[\"'<])")


def _xmp(im, turned):
    """The XMP packet (bytes) a JPEG, WebP, PNG or TIFF carries, its orientation
    reset to 1 when the pixels were turned upright (``turned``); None without one."""
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if not xmp:
        return None
    xmp = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
    return _XMP_ORIENTATION.sub(rb"\g<1>1", xmp) if turned else xmp


def _check_size(w, h, max_pixels):
    if w < 1 or h < 1:
        raise ImageError(f"zero-sized image ({w}x{h})")
    if max_pixels and w * h > max_pixels:
        raise ImageError(f"{w}x{h} exceeds the pixel limit of {max_pixels:,}")


def _opened(path, read, max_pixels=None):
    """Opens ``path`` (a file path, or an encoded image's bytes) with Pillow and
    returns ``read(im)``, every failure an ImageError.

    The size is checked against ``max_pixels`` before any pixel is decoded. A damaged file can make Pillow's
    decoders raise almost anything (OSError, SyntaxError, struct.error,
    IndexError, ...): all of it is reported as a corrupt file.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(path, (bytes, bytearray, memoryview)):
        if not len(path):
            raise ImageError("empty file (0 bytes)")
        path = io.BytesIO(path)
    elif not os.path.isfile(path):
        raise ImageError("not a file")
    elif os.path.getsize(path) == 0:
        raise ImageError("empty file (0 bytes)")
    said = []
    try:
        with warnings.catch_warnings(), _decoder_messages(said):
            # Our own limit is checked from the header, and damage is reported
            # as an error or a note: Pillow's warnings (DecompressionBombWarning,
            # "Corrupt EXIF data", ...) would only leak to the terminal.
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                _check_size(*im.size, max_pixels)
                return read(im)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image file (format not recognised)") from None
    except Image.DecompressionBombError as e:
        raise ImageError(f"too large: {e}") from None
    except MemoryError:
        raise ImageError("too large to decode in the memory available") from None
    except Exception as e:  # noqa: BLE001 -- see the docstring
        if not _raised_outside_package(e):
            raise  # a bug of ours, not a bad file: let it show
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        if not isinstance(e, OSError):
            detail = f"{type(e).__name__}: {detail}"
        if said:
            detail += f" ({said[0]})"
        raise ImageError(f"corrupt or truncated image: {detail}") from None


def _raised_outside_package(error):
    """Whether the innermost frame of ``error``'s traceback is outside vdsr_tf
    (in Pillow or a C decoder it called): a damaged file, not our bug."""
    tb = error.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the package
    return not os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(here + os.sep)


_QUIET = {"on": False}


@contextlib.contextmanager
def quiet_decoders():
    """While active, what C decoders print on stderr during ``open_image`` /
    ``open_frames`` (libtiff's "ZIPDecode: Decoding error ...", libjpeg's
    "Premature end of JPEG file", ...) is caught: its first line is added to
    the ``ImageError`` of a file that fails, and dropped for one that reads.

    It redirects the process's file descriptor 2 while a file is decoded, so
    it is for command-line programs (``vdsr-upscale`` uses it), not for
    threaded servers.
    """
    previous, _QUIET["on"] = _QUIET["on"], True
    try:
        yield
    finally:
        _QUIET["on"] = previous


@contextlib.contextmanager
def _decoder_messages(said):
    """Catches fd-2 output into ``said`` (lines) when ``quiet_decoders`` is on."""
    if not _QUIET["on"]:
        yield
        return

    def keep(line):  # a decoder's message: kept for the error, not shown
        if line.strip() and len(said) < 32:
            said.append(" ".join(line.split())[:512])
        return False

    with fd2_filtered(keep):
        yield


def open_image(path, max_pixels=None):
    """Opens an image file (its first frame), ``prepare``d.

    Args:
        path: file path.
        max_pixels: refuse (before decoding) images with more input pixels.

    Returns:
        ``(image, notes)``: a loaded PIL image in L/LA/RGB/RGBA whose ``info``
        holds ``icc_profile`` and ``exif`` where they apply (``prepare``), and
        a list of notes on conversions.

    Raises:
        ImageError: for a missing, empty, corrupt, truncated or over-limit
            file, with a one-line message.
    """

    def read(im):
        depth = _depth_notes(im)
        im.load()
        out, meta, notes = prepare(im)
        out = out.copy() if out is im else out
        out.info = dict(meta)
        return out, depth + notes

    return _opened(path, read, max_pixels)


def _depth_notes(im):
    """A note when Pillow decodes a 16-bit colour image (PNG, TIFF) to 8 bits
    per channel: read from the decoder's raw mode, before loading."""
    tile = getattr(im, "tile", None) or []
    args = tile[0][3] if tile and len(tile[0]) > 3 else None
    raw = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else ""
    if im.mode in ("RGB", "RGBA") and isinstance(raw, str) and ";16" in raw:
        return ["16-bit colour read as 8 bits per channel (Pillow decodes 8)"]
    return []


def _common_mode(modes):
    colour = any(m.startswith("RGB") for m in modes)
    alpha = any(m in ("LA", "RGBA") for m in modes)
    return ("RGB" if colour else "L") + ("A" if alpha else "")


def open_frames(path, max_pixels=None, check=None):
    """Every frame of an image file (one for a still image), ``prepare``d.

    An animated GIF, WebP or PNG gives its frames as shown (Pillow composes
    each frame over the previous ones), in one common mode.

    Args:
        path: file path, or the bytes of an image file.
        max_pixels: refuse files whose frames together have more pixels.
        check: ``check(width, height, frames)`` before decoding; may raise
            ``ImageError``.

    Returns:
        ``(frames, meta, notes)``: PIL images; a dict with ``icc_profile``,
        ``exif``, ``durations`` (ms per frame) and ``loop`` where they apply;
        notes (once per file).
    """

    def read(im):
        n = int(getattr(im, "n_frames", 1))
        w, h = im.size
        if max_pixels and n * w * h > max_pixels:
            raise ImageError(f"{n} frames of {w}x{h} exceed the pixel limit of {max_pixels:,}")
        if check is not None:
            check(w, h, n)
        depth = _depth_notes(im)  # before _exif, which may load a PNG
        orientation, exif, notes = _exif(im)
        notes = depth + notes
        frames, durations, meta = [], [], {}
        for i in range(n):
            im.seek(i)
            if im.size != (w, h):  # pages of a TIFF can differ; the limits were checked for one
                raise ImageError(
                    f"frame {i + 1} is {im.size[0]}x{im.size[1]}, frame 1 "
                    f"{w}x{h}: frames of different sizes are not supported"
                )
            im.load()
            frame, meta_i, more = prepare(im, orientation, exif)
            frames.append(frame.copy() if frame is im else frame)
            durations.append(im.info.get("duration"))
            if i == 0:
                meta, notes = meta_i, notes + more
                loop = im.info.get("loop")
        mode = _common_mode([f.mode for f in frames])
        frames = [f if f.mode == mode else f.convert(mode) for f in frames]
        if n > 1:
            meta["durations"] = [int(d) if isinstance(d, (int, float)) else 0 for d in durations]
            if loop is not None:
                meta["loop"] = int(loop)
        return frames, meta, notes

    return _opened(path, read, max_pixels)


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
        raise FileNotFoundError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return paths


def sample_images_dir():
    """The bundled sample set: a folder with ``HR/`` and ``LR_bicubic/X{2,3,4}/``.

    Two Set5 images (bird, butterfly), so demos and tests run without any
    download.
    """
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "samples")


def save_image(im, path, fmt=None, overwrite=False, **encoding):
    """Writes a PIL image atomically (``save_frames`` with its ``info``).

    Returns:
        Notes on what the format could not hold (alpha, EXIF, colours).
    """
    return save_frames([im], path, fmt, dict(im.info), overwrite, **encoding)


def check_encoding(formats, quality=None, compression=None, names=("quality", "compression")):
    """Refuses encoder settings that are out of range, or that none of
    ``formats`` (Pillow format names; empty: not known yet) would use.

    Args:
        names: how the messages name the two (``("--quality", "--compression")``
            for a command line).

    Raises:
        ValueError: one line naming the setting and the formats that take it.
    """
    formats = set(formats)
    for name, value, low, high, takers, hint in (
        (names[0], quality, 1, 100, TAKES_QUALITY, "jpg and webp (webp: lossy)"),
        (names[1], compression, 0, 9, TAKES_COMPRESSION, "png (zlib level)"),
    ):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
        if formats and not formats & takers:
            shown = ", ".join(sorted(f.lower() for f in formats))
            raise ValueError(f"{name} applies to {hint} outputs, not to {shown}")


def save_frames(frames, path, fmt=None, meta=None, overwrite=False, **encoding):
    """Writes one image, or the frames of an animation, atomically.

    Args:
        frames: PIL images (L, LA, RGB or RGBA), all of one size and mode.
        path: destination; its extension picks the format unless ``fmt``.
        fmt: Pillow format name, or None.
        meta: ``icc_profile``, ``exif``, ``durations`` (ms per frame) and
            ``loop``, kept where the format holds them.
        overwrite: replace an existing file.
        **encoding: ``quality`` (1-100: JPEG, default 95; WebP, lossy, default
            lossless), ``compression`` (0-9: PNG's zlib level) and ``strip``
            (True: no EXIF; the ICC profile stays, it defines the colours).

    Returns:
        Notes on what the format could not hold.

    Raises:
        FileExistsError: if ``path`` exists and not ``overwrite``.
        ValueError: for an unsupported extension, several frames for a
            format that holds one (JPEG, BMP), or a bad encoder setting.
    """
    fmt = fmt or format_for(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists (use --overwrite)")
    frames, kwargs, notes = _save_args(frames, fmt, meta, **encoding)
    # Pillow writes to the temporary file by name: a multi-page TIFF is read back while
    # it is written, which a write-only file object does not allow.
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format=fmt, **kwargs)
    return notes


def encode_frames(frames, fmt, meta=None, **encoding):
    """``save_frames`` into memory: ``(the file's bytes, notes)``."""
    frames, kwargs, notes = _save_args(frames, fmt, meta, **encoding)
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, **kwargs)
    return buffer.getvalue(), notes


def _save_args(frames, fmt, meta, quality=None, compression=None, strip=False):
    """``(frames, Pillow save arguments, notes)`` of ``save_frames``."""
    check_encoding([fmt], quality, compression)
    meta, notes, frames = dict(meta or {}), [], list(frames)
    if strip:
        meta.pop("exif", None)
        meta.pop("xmp", None)
    check_frames(len(frames), fmt)
    mode = frames[0].mode
    if mode in ("LA", "RGBA") and fmt not in _HOLDS_ALPHA:
        notes.append(f"alpha dropped ({fmt} has none)")
        frames = [f.convert(mode[:-1]) for f in frames]
    kwargs = {}
    if meta.get("icc_profile"):
        if fmt in _HOLDS_ICC:
            kwargs["icc_profile"] = meta["icc_profile"]
        else:
            notes.append(f"ICC profile not kept ({fmt} has none)")
    if meta.get("exif"):
        if fmt in _HOLDS_EXIF and not (fmt == "JPEG" and len(meta["exif"]) > 65000):
            kwargs["exif"] = exif_for_size(meta["exif"], *frames[0].size) or b""
        else:
            notes.append(f"EXIF not kept ({fmt} cannot hold it)")
    if meta.get("xmp"):
        if fmt not in _HOLDS_XMP or (fmt == "JPEG" and len(meta["xmp"]) > 65000):
            notes.append(f"XMP not kept ({fmt} cannot hold it)")
        elif fmt == "PNG":
            from PIL import PngImagePlugin

            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", meta["xmp"].decode("utf-8", "replace"))
            kwargs["pnginfo"] = info
        elif fmt == "TIFF":  # tag 700 beside the EXIF tags (tiffinfo would replace them)
            from PIL import Image

            tags = Image.Exif()
            tags.load(kwargs.get("exif") or b"")
            tags[700] = meta["xmp"]
            kwargs["exif"] = tags.tobytes()
        else:
            kwargs["xmp"] = meta["xmp"]
    if fmt == "GIF":
        notes.append("GIF holds 256 colours: colours reduced")
        if mode in ("LA", "RGBA"):
            kwargs["disposal"] = 2  # transparent pixels show the background, not the last frame
    if fmt == "JPEG":
        kwargs["quality"] = JPEG_QUALITY if quality is None else quality
    elif fmt == "WEBP" and quality is None:
        kwargs["lossless"] = True
    elif fmt == "WEBP":
        kwargs["quality"] = quality
    elif fmt == "PNG" and compression is not None:
        kwargs["compress_level"] = compression
    if len(frames) > 1:
        kwargs.update(save_all=True, append_images=frames[1:])
        if meta.get("durations") and fmt != "TIFF":
            kwargs["duration"] = list(meta["durations"])
        loop = meta.get("loop")
        if fmt == "TIFF":
            notes.append("TIFF pages keep no frame durations")
        elif loop is not None:
            kwargs["loop"] = int(loop)
        elif fmt in ("PNG", "WEBP"):
            kwargs["loop"] = 1  # a GIF without a loop count plays once
    return frames, kwargs, notes


def save_array(array, path, overwrite=True):
    """Writes a uint8 (H, W) or (H, W, 3|4) array as an image (format by extension)."""
    from PIL import Image

    return save_image(Image.fromarray(np.asarray(array)), path, overwrite=overwrite)
