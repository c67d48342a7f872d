"""MATLAB's colour conversions: ``rgb2ycbcr``, ``ycbcr2rgb`` and the Y channel.

The BT.601 studio-swing matrices of MATLAB's ``rgb2ycbcr``, applied in float64
and rounded with ``imresize.to_uint8`` for uint8 input, as MATLAB does; the
float forms (``ycbcr_from_float_rgb``, ``rgb_from_float_ycbcr``) are written
against an array namespace, so the upscaler and the SavedModel graph convert
colour with the same code.
"""

from __future__ import annotations

import numpy as np

from vdsr_tf.ops.imresize import _check_image_dtype, to_uint8

# MATLAB's rgb2ycbcr matrix: R, G, B in [0, 1] -> Y, Cb, Cr minus their
# offsets, on the [0, 255] scale (white gives Y - 16 = 219).
_RGB2YCBCR = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=np.float64,
)


_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64)


_YCBCR2RGB = np.linalg.inv(_RGB2YCBCR)


def _check_colour_input(image, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim < 1 or image.shape[-1] != 3:
        raise ValueError(f"{what} must have 3 channels in its last axis, got shape {image.shape}.")
    _check_image_dtype(image, what)
    return image


def _combine(image, coeffs, constants, xp=np):
    """Per-pixel affine colour map, evaluated like MATLAB's ``imlincomb``.

    ``out[..., p] = c[p, 0] x0 + c[p, 1] x1 + c[p, 2] x2 + k[p]``, summed left
    to right in float64. The fixed order (rather than a BLAS matmul) matters:
    some colours land exactly on .5 before uint8 rounding.

    Args:
        image: (..., 3) real array (or tensor, with ``xp``).
        coeffs: float64 (P, 3) numpy.
        constants: float64 (P,) numpy.
        xp: the array namespace.

    Returns:
        float64 (..., P).
    """
    x = xp.asarray(image, dtype="float64")
    channels = [
        float(c[0]) * x[..., 0] + float(c[1]) * x[..., 1] + float(c[2]) * x[..., 2] + float(k)
        for c, k in zip(coeffs, constants)
    ]
    return xp.stack(channels, axis=-1)


def ycbcr_from_float_rgb(rgb, xp=np):
    """Float MATLAB ``rgb2ycbcr``: (..., 3) RGB in [0, 1] -> float32 YCbCr on
    the [0, 1] scale. Works on numpy arrays and graph tensors (``xp``)."""
    return xp.asarray(_combine(rgb, _RGB2YCBCR / 255.0, _YCBCR_OFFSET / 255.0, xp), dtype="float32")


def rgb_from_float_ycbcr(ycbcr, xp=np):
    """Float MATLAB ``ycbcr2rgb``: the inverse of :func:`ycbcr_from_float_rgb`,
    float32, not clipped."""
    return xp.asarray(
        _combine(ycbcr, 255.0 * _YCBCR2RGB, -(_YCBCR2RGB @ _YCBCR_OFFSET), xp), dtype="float32"
    )


def _rgb2ycbcr_rows(rgb: np.ndarray, rows: slice) -> np.ndarray:
    """The ``rows`` channels of MATLAB's rgb2ycbcr, same dtype as ``rgb``."""
    coeffs = _RGB2YCBCR[rows] / 255.0
    if rgb.dtype == np.uint8:
        return to_uint8(_combine(rgb, coeffs, _YCBCR_OFFSET[rows]))
    out = _combine(rgb, coeffs, _YCBCR_OFFSET[rows] / 255.0)
    return out.astype(rgb.dtype, copy=False)


def rgb2ycbcr(rgb: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr``: ITU-R BT.601 studio-range YCbCr.

    With R, G, B in [0, 255]: ``Y = 16 + (65.481 R + 128.553 G + 24.966 B)
    / 255``, ``Cb = 128 + (-37.797 R - 74.203 G + 112 B) / 255``,
    ``Cr = 128 + (112 R - 93.786 G - 18.214 B) / 255``.

    Args:
        rgb: (..., 3) array, e.g. (H, W, 3). uint8 in [0, 255], or floating
            point in [0, 1].

    Returns:
        (..., 3) array of the same dtype. uint8: rounded half away from zero
        and saturated; Y in [16, 235], Cb and Cr in [16, 240]. Floating
        point: unrounded, on the [0, 1] scale (Y in [16/255, 235/255]).

    Raises:
        ValueError: if the last axis is not 3 or the dtype is unsupported.
    """
    rgb = _check_colour_input(rgb, "rgb")
    return _rgb2ycbcr_rows(rgb, slice(0, 3))


def ycbcr2rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Exact inverse of :func:`rgb2ycbcr` (MATLAB ``ycbcr2rgb``).

    uint8 round trips are within 1 grey level for 99.65 % of all 2^24
    colours and within 2 for the rest: YCbCr quantised to 8 bits cannot hold
    every RGB colour.

    Args:
        ycbcr: (..., 3) array. uint8 in [0, 255], or floating point on the
            [0, 1] scale of :func:`rgb2ycbcr`'s float output.

    Returns:
        (..., 3) RGB array of the same dtype. uint8: rounded half away from
        zero and clipped to [0, 255]. Floating point: nominally in [0, 1] but
        NOT clipped (MATLAB clips), so triples outside the RGB gamut give
        values outside [0, 1] and the float round trip is exact up to
        rounding error; clip before display or quantisation.

    Raises:
        ValueError: if the last axis is not 3 or the dtype is unsupported.
    """
    ycbcr = _check_colour_input(ycbcr, "ycbcr")
    coeffs = 255.0 * _YCBCR2RGB
    offsets = _YCBCR2RGB @ _YCBCR_OFFSET
    if ycbcr.dtype == np.uint8:
        return to_uint8(_combine(ycbcr, coeffs, -255.0 * offsets))
    return _combine(ycbcr, coeffs, -offsets).astype(ycbcr.dtype, copy=False)


def rgb2y(rgb: np.ndarray) -> np.ndarray:
    """Luma (Y) of MATLAB ``rgb2ycbcr``, bit-identical to its channel 0.

    Args:
        rgb: (..., 3) array, e.g. (H, W, 3). uint8 in [0, 255], or floating
            point in [0, 1].

    Returns:
        (...) array (channel axis dropped) of the same dtype. uint8: rounded
        half away from zero, in [16, 235]. Floating point: unrounded, in
        [16/255, 235/255].

    Raises:
        ValueError: if the last axis is not 3 or the dtype is unsupported.
    """
    rgb = _check_colour_input(rgb, "rgb")
    return _rgb2ycbcr_rows(rgb, slice(0, 1))[..., 0]
