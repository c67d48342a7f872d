"""Super-resolution of whole images: colour handling around the VDSR model.

``Upscaler`` turns an LR image into an SR image: RGB goes through MATLAB
YCbCr, the Y plane is MATLAB-bicubic-upscaled and refined by the model, Cb and
Cr are bicubic-upscaled; grayscale stays grayscale. With no model it is plain
bicubic (the baseline). Evaluation, the CLIs and the exporters' reference
outputs all go through this class.
"""

import numpy as np

from vdsr_tf.imresize import imresize, rgb2ycbcr, ycbcr2rgb


def _compile_forward(model):
    """A compiled ``f(x: float32 (1, H, W, 1)) -> (1, H, W, 1)`` numpy function."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        fn = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)],
            reduce_retracing=True,
        )
        return lambda x: fn(x).numpy()
    if keras.backend.backend() == "jax":
        import jax

        @jax.jit
        def fn(trainable, non_trainable, x):
            y, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return y

        return lambda x: np.asarray(
            fn(
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                x,
            )
        )
    return lambda x: np.asarray(model(x, training=False))


def output_size(in_hw, scale=None, size=None):
    """The SR size: ``round(in * scale)`` per axis, or ``size`` = (H, W)."""
    if (scale is None) == (size is None):
        raise ValueError("Give exactly one of scale or size")
    if size is not None:
        h, w = (int(v) for v in size)
        if h < 1 or w < 1:
            raise ValueError(f"size must be positive, got {size}")
        return h, w
    scale = float(scale)
    if not scale > 1.0:
        raise ValueError(f"scale must be > 1, got {scale}")
    return int(round(in_hw[0] * scale)), int(round(in_hw[1] * scale))


class Upscaler:
    """VDSR super-resolution of numpy images.

    Args:
        model: a VDSR Keras model, or None for plain bicubic upscaling
            (MATLAB ``imresize`` of the uint8 image, the benchmarks' baseline).
    """

    def __init__(self, model=None):
        self.model = model
        self._forward = _compile_forward(model) if model is not None else None

    def predict_y(self, y):
        """Refines a bicubic-upscaled Y plane with the model.

        Args:
            y: float32 (H, W), Y in [0, 1] (bicubic output, overshoot allowed).

        Returns:
            float32 (H, W), the SR Y (not clipped). ``y`` itself without a model.
        """
        if self._forward is None:
            return y
        return self._forward(y[None, :, :, None].astype(np.float32))[0, :, :, 0]

    def upscale_y(self, lr_y, out_hw):
        """float32 (h, w) LR Y in [0, 1] -> float32 (H, W) SR Y."""
        up = imresize(lr_y.astype(np.float32), output_shape=out_hw)
        return self.predict_y(up)

    def upscale(self, image, scale=None, size=None):
        """Super-resolves a uint8 image.

        Args:
            image: uint8 (h, w) grayscale or (h, w, 3) RGB.
            scale: factor > 1 (output ``round(h * scale) x round(w * scale)``).
            size: exact output (H, W) instead of ``scale``.

        Returns:
            uint8 array, (H, W) or (H, W, 3) like the input.
        """
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ValueError(f"Expected a uint8 image, got {image.dtype}")
        out_hw = output_size(image.shape[:2], scale, size)
        if self.model is None:
            # The literature's baseline: MATLAB imresize of the uint8 image.
            return imresize(image, output_shape=out_hw)
        if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1):
            y = self.upscale_y(image.reshape(image.shape[:2]) / np.float32(255), out_hw)
            sr = _quantise(y)
            return sr if image.ndim == 2 else sr[..., None]
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"Expected (h, w) or (h, w, 3), got {image.shape}")
        ycc = rgb2ycbcr(image.astype(np.float32) / np.float32(255))
        y = self.upscale_y(ycc[..., 0], out_hw)
        cbcr = imresize(ycc[..., 1:], output_shape=out_hw)
        rgb = ycbcr2rgb(np.concatenate([y[..., None], cbcr], axis=-1))
        return _quantise(rgb)


def _quantise(x):
    """float in [0, 1] -> uint8, rounded half up, saturated."""
    return np.clip(np.floor(x * 255.0 + 0.5), 0, 255).astype(np.uint8)
