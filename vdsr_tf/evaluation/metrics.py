"""PSNR and SSIM with the super-resolution literature's conventions.

The evaluation protocol (numpy, :func:`psnr` and :func:`ssim`):

* SR and HR are uint8 images, RGB or grayscale, of the same shape.
* RGB images are scored on the luma of MATLAB ``rgb2ycbcr``,
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``, kept in float64 and
  NOT rounded to 8 bits: MATLAB's ``rgb2ycbcr(im2double(img)) * 255``, and
  BasicSR's ``test_y_channel`` convention. Measured on Set5 with bicubic
  upscaling of the ``LR_bicubic`` files, unrounded Y gives 33.67 / 30.40 /
  28.43 dB at x2 / x3 / x4 against the published 33.66 / 30.39 / 28.42,
  while uint8-rounded Y gives 33.64 / 30.39 / 28.42; only the unrounded
  convention is within 0.01 dB at every scale after rounding to 2 decimals.
* ``crop_border`` pixels (the scale, by convention) are shaved on each side.
* PSNR uses peak 255. SSIM is Wang et al.'s ``ssim_index``: 11x11 Gaussian
  window with sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering,
  mean of the SSIM map.

:class:`PSNRMetric` is the training-time Keras metric on float images in
[0, 1]. This module imports keras but not TensorFlow, so it loads on the
JAX-only GPU machine.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from vdsr_tf.ops.colour import rgb2y

_PEAK = 255.0


_SSIM_WINDOW = 11


_SSIM_SIGMA = 1.5


_SSIM_K1 = 0.01


_SSIM_K2 = 0.03


# PSNRMetric floors the per-image MSE here, i.e. caps PSNR at 100 dB, so one
# perfect reconstruction cannot turn the running mean into inf.
_METRIC_MIN_MSE = 1e-10


def _check_crop_border(crop_border) -> int:
    """Returns ``crop_border`` as an int >= 0, or raises ValueError."""
    if (
        isinstance(crop_border, (bool, np.bool_))
        or not isinstance(crop_border, (int, np.integer))
        or crop_border < 0
    ):
        raise ValueError(f"crop_border must be a non-negative int, got {crop_border!r}.")
    return int(crop_border)


def _prepare(
    sr: np.ndarray, hr: np.ndarray, crop_border: int, test_y_channel: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Validates a pair and returns float64 (H', W', C') planes to score.

    Args:
        sr: uint8 (H, W), (H, W, 1) or (H, W, 3) in [0, 255].
        hr: uint8, same shape as ``sr``.
        crop_border: non-negative int, pixels shaved on each side.
        test_y_channel: score only MATLAB's luma when the input has 3
            channels.

    Returns:
        Two float64 arrays of shape (H - 2 c, W - 2 c, C'), values in
        [0, 255]; C' is 1 for Y or grayscale input, else 3.

    Raises:
        ValueError: on mismatched shapes, non-uint8 dtype, an unsupported
            number of channels or a crop that leaves nothing.
    """
    sr = np.asarray(sr)
    hr = np.asarray(hr)
    if sr.shape != hr.shape:
        raise ValueError(f"sr and hr must have the same shape, got {sr.shape} and {hr.shape}.")
    if sr.dtype != np.uint8 or hr.dtype != np.uint8:
        raise ValueError(f"sr and hr must be uint8 in [0, 255], got {sr.dtype} and {hr.dtype}.")
    if sr.ndim == 2:
        sr, hr = sr[..., None], hr[..., None]
    if sr.ndim != 3 or sr.shape[-1] not in (1, 3):
        raise ValueError(f"images must be (H, W), (H, W, 1) or (H, W, 3), got shape {sr.shape}.")
    crop_border = _check_crop_border(crop_border)
    h, w = sr.shape[:2]
    if 2 * crop_border >= min(h, w):
        raise ValueError(
            f"crop_border={crop_border} leaves nothing of an image of shape {sr.shape}."
        )
    sr = sr.astype(np.float64)
    hr = hr.astype(np.float64)
    if test_y_channel and sr.shape[-1] == 3:
        # Unrounded Y on the [0, 255] scale; see the module docstring.
        sr = rgb2y(sr / 255.0)[..., None] * 255.0
        hr = rgb2y(hr / 255.0)[..., None] * 255.0
    if crop_border:
        c = crop_border
        sr = sr[c:-c, c:-c]
        hr = hr[c:-c, c:-c]
    return sr, hr


def psnr(
    sr: np.ndarray,
    hr: np.ndarray,
    crop_border: int = 0,
    test_y_channel: bool = True,
) -> float:
    """Peak signal-to-noise ratio in dB with peak 255.

    Args:
        sr: uint8 (H, W), (H, W, 1) or (H, W, 3) in [0, 255], the
            reconstruction.
        hr: uint8 of the same shape, the ground truth.
        crop_border: pixels shaved on each side before scoring (the scale).
        test_y_channel: for 3-channel input, score only the unrounded luma
            of MATLAB ``rgb2ycbcr``; otherwise all channels.

    Returns:
        PSNR in dB; ``float('inf')`` for identical images.

    Raises:
        ValueError: on mismatched shapes, non-uint8 input, an unsupported
            number of channels or a crop that leaves nothing.
    """
    sr, hr = _prepare(sr, hr, crop_border, test_y_channel)
    mse = float(np.mean((sr - hr) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(_PEAK**2 / mse)


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', size, sigma)``.

    Returns:
        float64 (size,) summing to 1; its outer product with itself is the
        normalised 2-D window.
    """
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / np.sum(g)


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 2-D 'valid' correlation (MATLAB ``filter2(w, x, 'valid')``).

    Args:
        image: float64 (H, W).
        window: float64 (k,), the 1-D factor of a symmetric separable window.

    Returns:
        float64 (H - k + 1, W - k + 1).
    """
    k = window.shape[0]
    h, w = image.shape
    rows = sum(window[i] * image[i : i + h - k + 1] for i in range(k))
    return sum(window[i] * rows[:, i : i + w - k + 1] for i in range(k))


def _ssim_plane(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two float64 (H, W) planes on the [0, 255] scale."""
    window = _gaussian_window(_SSIM_WINDOW, _SSIM_SIGMA)
    c1 = (_SSIM_K1 * _PEAK) ** 2
    c2 = (_SSIM_K2 * _PEAK) ** 2
    mu_a = _filter_valid(a, window)
    mu_b = _filter_valid(b, window)
    mu_aa = mu_a * mu_a
    mu_bb = mu_b * mu_b
    mu_ab = mu_a * mu_b
    var_a = _filter_valid(a * a, window) - mu_aa
    var_b = _filter_valid(b * b, window) - mu_bb
    cov = _filter_valid(a * b, window) - mu_ab
    ssim_map = ((2.0 * mu_ab + c1) * (2.0 * cov + c2)) / (
        (mu_aa + mu_bb + c1) * (var_a + var_b + c2)
    )
    return float(np.mean(ssim_map))


def ssim(
    sr: np.ndarray,
    hr: np.ndarray,
    crop_border: int = 0,
    test_y_channel: bool = True,
) -> float:
    """Structural similarity (Wang et al. 2004, MATLAB ``ssim_index``).

    11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03 on [0, 255],
    'valid' filtering (no padding), mean of the SSIM map. Multi-channel
    input scored without ``test_y_channel`` is the mean over channels.

    Args:
        sr: uint8 (H, W), (H, W, 1) or (H, W, 3) in [0, 255], the
            reconstruction.
        hr: uint8 of the same shape, the ground truth.
        crop_border: pixels shaved on each side before scoring (the scale).
        test_y_channel: for 3-channel input, score only the unrounded luma
            of MATLAB ``rgb2ycbcr``; otherwise every channel.

    Returns:
        SSIM in [-1, 1]; 1.0 for identical images.

    Raises:
        ValueError: on mismatched shapes, non-uint8 input, an unsupported
            number of channels, or fewer than 11x11 pixels left after the
            crop.
    """
    sr, hr = _prepare(sr, hr, crop_border, test_y_channel)
    if min(sr.shape[:2]) < _SSIM_WINDOW:
        raise ValueError(
            f"ssim needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after "
            f"cropping, got {sr.shape[:2]}."
        )
    values = [_ssim_plane(sr[..., c], hr[..., c]) for c in range(sr.shape[-1])]
    return float(np.mean(values))


@keras.saving.register_keras_serializable(package="vdsr_tf")
class PSNRMetric(keras.metrics.Metric):
    """Mean per-image PSNR (peak 1.0) for training on float images.

    PSNR is computed for each image of a batch, then averaged over all
    images seen since the last reset (weighted by ``sample_weight`` if
    given). No quantisation and no colour conversion: it is meant for the
    Y-channel tensors the model trains on. The per-image MSE is floored at
    1e-10, so a perfect image counts as 100 dB instead of inf. Uses only
    ``keras.ops`` and therefore runs on the TensorFlow and JAX backends.

    Args:
        crop_border: non-negative int, pixels shaved on each side before
            scoring.
        name: metric name.
        dtype: dtype of the state and of the computation (default float32).
    Example:

    ```python
    model.compile(optimizer="adam", loss="mse", metrics=[vdsr_tf.PSNRMetric()])
    ```
    """

    def __init__(self, crop_border: int = 0, name: str = "psnr", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.crop_border = _check_crop_border(crop_border)
        self.total = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, name="total"
        )
        self.count = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, name="count"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Accumulates the PSNR of each image in the batch.

        Args:
            y_true: float (B, H, W, C) in [0, 1], ground truth.
            y_pred: float (B, H, W, C), prediction, same shape.
            sample_weight: optional (B,) per-image weights.
        """
        y_true = ops.cast(y_true, self.dtype)
        y_pred = ops.cast(y_pred, self.dtype)
        c = self.crop_border
        if c:
            y_true = y_true[:, c:-c, c:-c, :]
            y_pred = y_pred[:, c:-c, c:-c, :]
        mse = ops.mean(ops.square(y_pred - y_true), axis=(1, 2, 3))
        per_image = -10.0 * ops.log10(ops.maximum(mse, _METRIC_MIN_MSE))
        if sample_weight is None:
            weights = ops.ones_like(per_image)
        else:
            weights = ops.reshape(ops.cast(sample_weight, self.dtype), (-1,))
            weights = ops.broadcast_to(weights, ops.shape(per_image))
        self.total.assign_add(ops.sum(per_image * weights))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        """Mean PSNR in dB (0 before any update)."""
        return ops.divide_no_nan(self.total, self.count)

    def get_config(self):
        """Constructor arguments, for ``from_config``."""
        config = super().get_config()
        config["crop_border"] = self.crop_border
        return config
