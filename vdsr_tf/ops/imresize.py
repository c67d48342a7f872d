"""MATLAB-compatible bicubic resizing and colour conversion, in numpy only.

This module is the single implementation of two pieces of maths that the
whole package shares:

* MATLAB ``imresize(..., 'bicubic')``. :func:`bicubic_weights` builds the
  dense 1-D resampling matrix and :func:`scaled_size` the output length;
  :func:`imresize` applies the matrix along each axis. Other modules reuse
  both to express the resize as a matmul inside TensorFlow or JAX graphs.
* MATLAB ``rgb2ycbcr`` / ``ycbcr2rgb`` (ITU-R BT.601, studio range).

It imports nothing but numpy so that it loads on machines that have JAX but
no TensorFlow.

On uint8 input, :func:`imresize` reproduces every pixel of the
``LR_bicubic/X{2,3,4}`` files of Set5, Set14 and B100 (made with MATLAB
``imresize(HR, 1/s, 'bicubic')``). Measured against those files, three
details are load-bearing: rounding to uint8 after each 1-D pass (rounding
only at the end matches 86-90 % of the pixels), the vertical axis first
(81-86 % otherwise), and clamping taps past the border to the edge pixel
(mirroring them matches 98.8-99.4 %).
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Sequence, Tuple

import numpy as np

# Keys' cubic convolution parameter, as in MATLAB.
_CUBIC_A = -0.5


# Support of the unscaled cubic kernel, in input samples.
_CUBIC_SUPPORT = 4.0


# ``size * scale`` is a floating-point product: 0.1 * 30 is 3.0000000000000004
# and must still give 3 output pixels, so the ceil forgives this much excess.
_SIZE_EPS = 1e-9


# Size of the float64 accumulator block of a resize pass (fits in L2).
_BLOCK_BYTES = 1 << 19


def _check_size(name: str, value) -> int:
    """Returns ``value`` as an int >= 1, or raises ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}.")
    return int(value)


def _check_scale(scale) -> float:
    """Returns ``scale`` as a positive finite float, or raises ValueError."""
    if isinstance(scale, (bool, np.bool_)) or not isinstance(
        scale, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"scale must be a number, got {scale!r}.")
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 0.0:
        raise ValueError(f"scale must be a positive finite number, got {scale}.")
    return scale


def _check_image_dtype(image: np.ndarray, what: str) -> None:
    if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"{what} must be uint8 or floating point, got dtype {image.dtype}.")


def to_uint8(x, xp=np):
    """float on the [0, 255] scale -> uint8: the package's one rounding rule.

    Round half away from zero and saturate, as MATLAB casts: ``floor(x +
    0.5)`` is round-half-away for x >= 0, and every x < 0 saturates to 0
    either way. Every 8-bit output of the package (resize passes, colour
    conversion, the upscaler, the SavedModel graph, 16-bit file reduction)
    is rounded here.

    Args:
        x: float array or tensor, any shape.
        xp: the array namespace (numpy, or ``tf.experimental.numpy``).
    """
    return xp.asarray(xp.clip(xp.floor(x + 0.5), 0.0, 255.0), dtype="uint8")


def quantise(x, xp=np):
    """float in [0, 1] -> uint8 in [0, 255] with :func:`to_uint8`."""
    return to_uint8(x * 255.0, xp)


def unit_levels():
    """float32 (256,): ``level / 255`` for every uint8 level, by numpy's division.

    Pipelines that map uint8 to [0, 1] on a device or in a graph gather from
    this table instead of dividing: a compiled ``x / 255`` may become ``x *
    (1 / 255)``, which differs from numpy's division in the last bit.
    """
    return np.arange(256, dtype=np.float32) / np.float32(255.0)


def tap_sum(weights, gather):
    """The one resize pass of the package: ``sum_k weights[..., k] * gather(k)``.

    Every bicubic resize here, numpy or TensorFlow, whole image or window,
    is this sum: for each output sample, the inputs its taps read times the
    taps' weights, accumulated in float64 from the first tap to the last.
    The fixed order is what makes the numpy and TF pipelines bit-identical
    (and the uint8 rounding independent of any BLAS).

    Args:
        weights: float64 array or tensor (..., T), tap k's weights in
            ``weights[..., k]``, shaped to broadcast against ``gather(k)``.
        gather: ``k -> the inputs tap k reads``: a numpy array of any dtype
            (the product promotes it to float64), or a float64 tensor.

    Returns:
        The float64 sums, the broadcast shape of weights and inputs.
    """
    acc = None
    for k in range(weights.shape[-1]):
        term = weights[..., k] * gather(k)
        acc = term if acc is None else acc + term
    return acc


def vertical_first(scale_h, scale_w):
    """MATLAB's order of the two passes: the axis with the smaller factor
    first, the vertical one on ties (a bool, or a boolean tensor)."""
    return scale_h <= scale_w


def _cubic(x, xp=np):
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``).

    Args:
        x: float array of any shape, distances in input samples.
        xp: the array namespace (numpy, or ``tf.experimental.numpy`` when
            the matrix is built inside a TensorFlow graph).

    Returns:
        float64 array of the same shape, values in about [-0.074, 1]; zero
        for |x| >= 2.
    """
    a = _CUBIC_A
    ax = xp.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (a + 2.0) * ax3 - (a + 3.0) * ax2 + 1.0
    outer = a * ax3 - 5.0 * a * ax2 + 8.0 * a * ax - 4.0 * a
    zero = xp.zeros_like(ax)
    return xp.where(ax <= 1.0, inner, xp.where(ax <= 2.0, outer, zero))


def scaled_size(size: int, scale: float) -> int:
    """Output length of MATLAB ``imresize`` for one axis: ``ceil(size * scale)``.

    The product is allowed 1e-9 of floating-point excess before rounding up
    (so ``0.1 * 30`` gives 3, where MATLAB would give 4). For ``scale = 1/s``
    and sizes that are multiples of s this is exactly ``size / s``.

    Args:
        size: input length, >= 1.
        scale: positive factor.

    Returns:
        Output length, an int >= 1.

    Raises:
        ValueError: on a non-positive size or scale.
    """
    size = _check_size("size", size)
    scale = _check_scale(scale)
    return max(1, int(math.ceil(size * scale - _SIZE_EPS)))


def bicubic_weights(
    in_size: int,
    out_size: int,
    scale: Optional[float] = None,
    antialiasing: bool = True,
) -> np.ndarray:
    """Dense 1-D resampling matrix of MATLAB ``imresize(..., 'bicubic')``.

    Resizing a 1-D signal ``x`` of length ``in_size`` is ``W @ x``; an image
    axis is resized by contracting it with ``W``. The matrix is banded: row u
    has at most ``ceil(4 / scale) + 2`` non-zeros when shrinking with
    antialiasing, 4 otherwise.

    Semantics (MATLAB's): Keys cubic kernel with a = -0.5; when shrinking
    with antialiasing the kernel is evaluated as ``scale * cubic(scale * d)``
    over ``4 / scale`` taps; output pixel u (1-based) samples the input at
    ``u / scale + 0.5 * (1 - 1 / scale)``; each row is normalised to sum to
    1; taps past either border are clamped, i.e. their weight is added onto
    the edge pixel.

    Args:
        in_size: input length, >= 1.
        out_size: output length, >= 1.
        scale: scale factor, > 0; defaults to ``out_size / in_size``. MATLAB
            uses the caller's scale here, which differs slightly from the
            ratio of the sizes when :func:`scaled_size` had to round up.
        antialiasing: widen the kernel when shrinking (MATLAB's default).

    Returns:
        float64 array, shape (out_size, in_size); each row sums to 1 (up to
        rounding); entries lie in about [-0.1, 1].

    Raises:
        ValueError: on non-positive sizes or scale.
    """
    in_size = _check_size("in_size", in_size)
    out_size = _check_size("out_size", out_size)
    scale = _check_scale(out_size / in_size if scale is None else scale)

    if scale < 1.0 and antialiasing:
        kernel_width = _CUBIC_SUPPORT / scale

        def kernel(d):
            return scale * _cubic(scale * d)

    else:
        kernel_width = _CUBIC_SUPPORT
        kernel = _cubic

    weights, columns = _taps(in_size, out_size, scale, kernel, kernel_width)
    rows = np.broadcast_to(np.arange(out_size)[:, None], columns.shape)
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    # Clamped taps land on the same edge column, so weights must accumulate.
    np.add.at(matrix, (rows, columns.astype(np.int64)), weights)
    return matrix


def _taps(
    in_size, out_size, scale, kernel, kernel_width, xp=np, dtype="float64", first=0, count=None
):
    """Weights and (clamped, 0-based) input columns of every output pixel.

    The one implementation of MATLAB's sampling rule, written against an
    array namespace so that ``enlarge_window`` can build the same weights
    inside a TensorFlow graph for sizes known only at run time.

    Args:
        first, count: compute only output pixels ``first .. first + count - 1``
            (0-based; default all), for resizing one window of an image.

    Returns:
        ``(weights, columns)``, both float (count, taps): rows of weights
        summing to 1 and the input index each weight applies to.
    """

    def f(v):
        return xp.asarray(v, dtype=dtype)

    # Output pixel u (1-based) sits at input coordinate x (1-based).
    count = out_size if count is None else count
    u = f(xp.arange(first + 1, first + count + 1))
    x = u / scale + 0.5 * (1.0 - 1.0 / scale)
    left = xp.floor(x - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    positions = left[:, None] + f(xp.arange(taps))[None, :]
    weights = kernel(x[:, None] - positions)
    weights = weights / xp.sum(weights, axis=1, keepdims=True)
    columns = xp.clip(positions - 1.0, 0.0, f(in_size) - 1.0)
    return weights, columns


def _enlarge_axis(x, axis, in_size, out_size, first, count, xp):
    """Rows ``first .. first + count`` of the MATLAB bicubic enlargement of
    ``x`` along ``axis`` (0 or 1): a gather of the 6 taps of each output
    pixel, accumulated left to right in float64, cast to float32."""
    scale = xp.asarray(out_size, dtype="float64") / xp.asarray(in_size, dtype="float64")
    weights, columns = _taps(
        in_size,
        out_size,
        scale,
        lambda d: _cubic(d, xp),
        _CUBIC_SUPPORT,
        xp,
        "float64",
        first,
        count,
    )
    columns = xp.asarray(columns, dtype="int32")
    weights = weights[:, None, None, :] if axis == 0 else weights[None, :, None, :]
    acc = tap_sum(
        weights, lambda k: xp.asarray(xp.take(x, columns[:, k], axis=axis), dtype="float64")
    )
    return xp.asarray(acc, dtype="float32")


def enlarge_window(x, out_hw, rows, cols, xp=np, cond=None):
    """One window of the MATLAB bicubic enlargement of a float image.

    ``enlarge_window(x, (H, W), (0, H), (0, W))`` is ``imresize(x,
    output_shape=(H, W))`` for float input, up to float rounding (taps are
    gathered rather than read from a dense matrix). Computing only a window
    keeps memory bounded by the window, not the output: the upscaler and the
    SavedModel graph enlarge tile by tile. Works on numpy arrays and, with
    ``xp = tf.experimental.numpy``-like namespace and ``cond = tf.cond``, on
    tensors whose sizes are known only at run time.

    Args:
        x: float32 (h, w, c), values in any range (typically [0, 1]).
        out_hw: (H, W) >= (h, w), the full output size.
        rows, cols: ``(first, count)`` of the window in output pixels.
        xp: the array namespace.
        cond: ``cond(pred, true_fn, false_fn)`` for a tensor ``pred``; None
            for Python booleans.

    Returns:
        float32 (rows count, cols count, c).
    """
    in_h, in_w = xp.shape(x)[0], xp.shape(x)[1]
    out_h, out_w = out_hw

    def rows_then_cols():
        tall = _enlarge_axis(x, 0, in_h, out_h, rows[0], rows[1], xp)
        return _enlarge_axis(tall, 1, in_w, out_w, cols[0], cols[1], xp)

    def cols_then_rows():
        wide = _enlarge_axis(x, 1, in_w, out_w, cols[0], cols[1], xp)
        return _enlarge_axis(wide, 0, in_h, out_h, rows[0], rows[1], xp)

    pred = vertical_first(
        xp.asarray(out_h, dtype="float64") / xp.asarray(in_h, dtype="float64"),
        xp.asarray(out_w, dtype="float64") / xp.asarray(in_w, dtype="float64"),
    )
    if cond is None:
        return rows_then_cols() if pred else cols_then_rows()
    return cond(pred, rows_then_cols, cols_then_rows)


def _band(matrix: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Banded form of a matrix from :func:`bicubic_weights`.

    Args:
        matrix: float64 (out_size, in_size), every row with a non-zero.

    Returns:
        ``(start, band)``: int64 (out_size,) first column of each row's
        window, and float64 (out_size, taps) the matrix entries in that
        window, ``band[u, k] == matrix[u, start[u] + k]``; every non-zero of
        row u lies inside its window.
    """
    in_size = matrix.shape[1]
    nonzero = matrix != 0.0
    first = np.argmax(nonzero, axis=1)
    last = in_size - 1 - np.argmax(nonzero[:, ::-1], axis=1)
    taps = int(np.max(last - first)) + 1
    start = np.minimum(first, in_size - taps)
    columns = start[:, None] + np.arange(taps)[None, :]
    return start, np.take_along_axis(matrix, columns, axis=1)


def max_taps(scale: float) -> int:
    """An upper bound on the non-zeros per row of ``bicubic_weights`` at ``scale``
    (the tap positions of ``_taps``)."""
    width = _CUBIC_SUPPORT / scale if scale < 1.0 else _CUBIC_SUPPORT
    return int(math.ceil(width)) + 2


@functools.lru_cache(maxsize=4096)
def band_weights(in_size: int, out_size: int, scale: float, taps: Optional[int] = None):
    """The banded form of ``bicubic_weights(in_size, out_size, scale)``.

    Returns:
        ``(start, band)``: int32 (out_size,) first input index of each row's
        window, float64 (out_size, T) the weights in that window, T = ``taps``
        (zero-padded; default: the band's own width). Row u of the resize is
        ``sum_k band[u, k] * x[start[u] + k]`` (indices past the input are
        multiplied by zero weights). Cached: read-only arrays.
    """
    start, band = _band(bicubic_weights(in_size, out_size, scale))
    if taps is not None:
        if band.shape[1] > taps:
            raise ValueError(f"band of {band.shape[1]} taps exceeds {taps}")
        band = np.pad(band, ((0, 0), (0, taps - band.shape[1])))
    start = start.astype(np.int32)
    start.flags.writeable = False
    band.flags.writeable = False
    return start, band


def _resize_axis(
    image: np.ndarray,
    axis: int,
    out_size: int,
    scale: float,
    antialiasing: bool,
) -> np.ndarray:
    """One MATLAB 1-D resize pass along ``axis``, keeping the input dtype."""
    in_size = image.shape[axis]
    if antialiasing:
        start, band = band_weights(in_size, out_size, scale)
    else:
        start, band = _band(bicubic_weights(in_size, out_size, scale, antialiasing))
    # Gathering the few non-zeros of each row is much cheaper than a dense
    # matmul when enlarging, and the fixed summation order (taps left to
    # right) keeps the uint8 rounding independent of the BLAS in use.
    moved = np.moveaxis(image, axis, 0)
    flat = moved.reshape(in_size, -1)
    width = flat.shape[1]
    result = np.empty((out_size, width), dtype=image.dtype)
    # Blocks of output rows keep the float64 accumulator cache-resident,
    # which halves the time of large enlargements.
    block = max(1, _BLOCK_BYTES // (8 * width))
    for r0 in range(0, out_size, block):
        r1 = min(out_size, r0 + block)
        rows = start[r0:r1]
        a = tap_sum(band[r0:r1, None, :], lambda k, rows=rows: flat[rows + k])
        result[r0:r1] = to_uint8(a) if image.dtype == np.uint8 else a
    return np.moveaxis(result.reshape((out_size,) + moved.shape[1:]), 0, axis)


def imresize(
    image: np.ndarray,
    scale: Optional[float] = None,
    output_shape: Optional[Sequence[int]] = None,
    antialiasing: bool = True,
) -> np.ndarray:
    """MATLAB ``imresize(image, scale_or_size, 'bicubic')``, exact on uint8.

    Give exactly one of ``scale`` or ``output_shape``. With ``scale`` both
    axes use that factor and the output is ``scaled_size(H, scale) x
    scaled_size(W, scale)``, i.e. ``ceil(size * scale)`` as in MATLAB. With
    ``output_shape`` each axis uses the factor ``out / in``.

    The two 1-D passes run in MATLAB's order: the axis with the smaller
    factor first, the vertical axis (H) first when the factors are equal.
    uint8 input: each pass is computed in float64, then rounded half away
    from zero and saturated to uint8 before the next pass, exactly as MATLAB
    does. Floating-point input: each pass is computed in float64 and cast
    back to the input dtype, with no rounding and no clipping (bicubic
    overshoot can leave the input's range).

    Args:
        image: (H, W) or (H, W, C) array; uint8 in [0, 255], or floating
            point in any range (typically [0, 1]).
        scale: positive factor for both axes.
        output_shape: ``(out_h, out_w)``, positive ints.
        antialiasing: widen the kernel when shrinking (MATLAB's default).

    Returns:
        (out_h, out_w) or (out_h, out_w, C) array, same dtype as ``image``;
        C-contiguous.

    Raises:
        ValueError: if neither or both of ``scale`` and ``output_shape`` are
            given, on a non-positive scale or size, or on an unsupported
            dtype or number of dimensions.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}.")
    _check_image_dtype(image, "image")
    if (scale is None) == (output_shape is None):
        raise ValueError(
            "Give exactly one of scale or output_shape, got "
            f"scale={scale!r}, output_shape={output_shape!r}."
        )
    in_h, in_w = image.shape[:2]
    if in_h < 1 or in_w < 1:
        raise ValueError(f"image must be non-empty, got shape {image.shape}.")

    if scale is not None:
        scale = _check_scale(scale)
        scales = (scale, scale)
        sizes = (scaled_size(in_h, scale), scaled_size(in_w, scale))
    else:
        if len(output_shape) != 2:
            raise ValueError(f"output_shape must be (out_h, out_w), got {output_shape!r}.")
        sizes = (
            _check_size("output_shape[0]", output_shape[0]),
            _check_size("output_shape[1]", output_shape[1]),
        )
        scales = (sizes[0] / in_h, sizes[1] / in_w)

    order = (0, 1) if vertical_first(*scales) else (1, 0)
    out = image
    for axis in order:
        out = _resize_axis(out, axis, sizes[axis], scales[axis], antialiasing)
    return np.ascontiguousarray(out)


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crops the bottom and right so that H and W are multiples of ``scale``.

    Args:
        image: (H, W) or (H, W, C) array, any dtype and range.
        scale: positive int.

    Returns:
        The view ``image[:H - H % scale, :W - W % scale]``.

    Raises:
        ValueError: on a non-positive or non-integer scale, or an image with
            fewer than 2 dimensions.
    """
    scale = _check_size("scale", scale)
    image = np.asarray(image)
    if image.ndim < 2:
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}.")
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]
