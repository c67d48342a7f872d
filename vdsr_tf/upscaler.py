"""Super-resolution of real images: colour handling and tiling around VDSR.

``Upscaler`` turns an image of any size and mode into a larger one:

* RGB goes through MATLAB YCbCr: Y is MATLAB-bicubic-upscaled and refined by
  the model, Cb and Cr are bicubic-upscaled. Grayscale stays grayscale. An
  alpha channel is bicubic-upscaled and kept.
* Any scale > 1 (non-integer too) or an exact output size.
* The model runs tile by tile, each tile with ``CONTEXT`` pixels of real
  image around it (the network's receptive-field radius), so the tiled result
  equals the whole-image one and memory is bounded by the tile size.
* Optionally the geometric self-ensemble: the 8 flips/rotations, averaged.

With ``weights="bicubic"`` it is the plain MATLAB bicubic baseline. The
evaluation, the CLIs and the exporters' reference outputs all use this class.
"""

import numpy as np

from vdsr_tf.data import dihedral, undo_dihedral
from vdsr_tf.imresize import imresize, rgb2ycbcr, ycbcr2rgb

DEFAULT_TILE = 384
DEFAULT_MAX_PIXELS = 100_000_000  # output pixels; about 10k x 10k
_STRIP = 128  # rows per colour-conversion strip


def _compile_forward(model):
    """A compiled ``f(x: float32 (N, H, W, 1)) -> numpy (N, H, W, 1)``.

    One trace serves every tile shape on TensorFlow (the spatial dims are left
    unknown) and one per size bucket on JAX.
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        fn = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)],
        )
        return lambda x: fn(x).numpy()
    if keras.backend.backend() == "jax":
        from vdsr_tf.fast import jax_forward

        # Padded to a few bucket shapes (and masked, so results are those of
        # the unpadded network): one compile serves many image sizes.
        return jax_forward(model)
    return lambda x: np.asarray(model(x, training=False))


def output_size(in_hw, scale=None, size=None):
    """The SR size (H, W): ``in * scale`` rounded half up per axis, or ``size``.

    Raises:
        ValueError: unless exactly one of ``scale`` (> 1) or ``size``
            (positive (H, W), at least the input size) is given.
    """
    if (scale is None) == (size is None):
        raise ValueError("Give exactly one of scale or size")
    if size is not None:
        h, w = (int(v) for v in size)
        if h < in_hw[0] or w < in_hw[1]:
            raise ValueError(
                f"size {h}x{w} (HxW) is smaller than the input {in_hw[0]}x{in_hw[1]}; "
                "VDSR only enlarges")
        return h, w
    scale = float(scale)
    if not scale > 1.0 or not np.isfinite(scale):
        raise ValueError(f"scale must be a number > 1, got {scale}")
    # Half rounds up (12.5 -> 13), not to even as Python's round() would.
    return (int(np.floor(in_hw[0] * scale + 0.5)), int(np.floor(in_hw[1] * scale + 0.5)))


def tiles(height, width, tile, context):
    """Near-equal tiles of at most ``tile`` x ``tile`` covering an (H, W) image.

    Yields ``(out, src)`` slice pairs: ``out`` = (rows, cols) of the tile in the
    image; ``src`` = the same region grown by up to ``context`` pixels per side
    (clipped to the image). Running the network on ``src`` and keeping the
    ``out`` part equals running it on the whole image when ``context`` is at
    least the receptive-field radius.
    """
    # Near-equal tiles (512 px with tile 384 gives 2 x 256, not 384 + 128):
    # less context overhead per output pixel.
    step_h = -(-height // -(-height // tile))
    step_w = -(-width // -(-width // tile))
    for top in range(0, height, step_h):
        for left in range(0, width, step_w):
            bottom, right = min(top + step_h, height), min(left + step_w, width)
            src = (slice(max(top - context, 0), min(bottom + context, height)),
                   slice(max(left - context, 0), min(right + context, width)))
            yield (slice(top, bottom), slice(left, right)), src


class Upscaler:
    """VDSR super-resolution of numpy arrays and PIL images.

    Args:
        weights: None for the bundled pretrained weights, a ``.keras`` or
            ``.weights.h5`` path, or ``"bicubic"`` for the MATLAB bicubic
            baseline (no network).
        model: a VDSR Keras model to use instead of ``weights``.
        tile: tile side in output pixels (memory is bounded by it); None or 0
            runs each image in one piece.
        ensemble: average the 8 flips/rotations (about 8x slower, sharper).
        max_pixels: refuse outputs larger than this many pixels.
        progress: a callable ``progress(done_tiles, total_tiles)`` or None.
        predictor: instead of a Keras model, any callable mapping float32
            (1, h, w, 1) to (1, h, w, 1) with a ``context`` attribute (its
            receptive-field radius in pixels), e.g. a LiteRT interpreter
            wrapper (``vdsr_tf.litert``). Then Keras is never imported.

    Raises:
        FileNotFoundError: if the weights file (or bundled weights) is missing.
    """

    def __init__(self, weights=None, model=None, tile=DEFAULT_TILE, ensemble=False,
                 max_pixels=DEFAULT_MAX_PIXELS, progress=None, predictor=None):
        if predictor is not None and model is not None:
            raise ValueError("Give a model or a predictor, not both")
        if model is None and predictor is None and weights != "bicubic":
            from vdsr_tf.model import load_pretrained

            model = load_pretrained(weights)
        if tile is not None and tile < 0:
            raise ValueError(f"tile must be >= 0, got {tile}")
        self.model = model
        self.tile = tile or None
        self.ensemble = bool(ensemble)
        self.max_pixels = max_pixels
        self.progress = progress
        self.predictor = predictor
        self._forward = predictor or (_compile_forward(model) if model is not None else None)

    @property
    def context(self):
        """Pixels of context per tile side: the receptive-field radius."""
        if self.predictor is not None:
            return int(self.predictor.context)
        convs = [l for l in self.model.layers if hasattr(l, "kernel_size")]
        return sum((l.kernel_size[0] - 1) // 2 for l in convs)

    # -- the Y plane --------------------------------------------------------
    def _run(self, y):
        """The model (and ensemble) on one float32 (h, w) array."""
        if not self.ensemble:
            return self._forward(y[None, :, :, None])[0, :, :, 0]
        acc = np.zeros(y.shape, np.float64)
        for k in range(8):
            t = np.ascontiguousarray(dihedral(y[:, :, None], k))
            acc += undo_dihedral(self._forward(t[None])[0], k)[:, :, 0]
        return (acc / 8).astype(np.float32)

    def predict_y(self, y):
        """Refines a bicubic-upscaled Y plane with the model, tile by tile.

        Args:
            y: float32 (H, W), Y in [0, 1] (bicubic output, overshoot allowed).

        Returns:
            float32 (H, W), the SR Y (not clipped). ``y`` itself for bicubic.
        """
        y = np.asarray(y, np.float32)
        if self._forward is None:
            return y
        h, w = y.shape
        if self.tile is None or (h <= self.tile and w <= self.tile):
            out = self._run(y)
            if self.progress:
                self.progress(1, 1)
            return out
        out = np.empty_like(y)
        ctx = self.context
        plan = list(tiles(h, w, self.tile, ctx))
        for i, (dst, src) in enumerate(plan):
            pred = self._run(np.ascontiguousarray(y[src]))
            r0, c0 = dst[0].start - src[0].start, dst[1].start - src[1].start
            out[dst] = pred[r0 : r0 + dst[0].stop - dst[0].start,
                            c0 : c0 + dst[1].stop - dst[1].start]
            if self.progress:
                self.progress(i + 1, len(plan))
        return out

    def upscale_y(self, lr_y, out_hw):
        """float32 (h, w) LR Y in [0, 1] -> float32 (H, W) SR Y."""
        return self.predict_y(imresize(np.asarray(lr_y, np.float32), output_shape=out_hw))

    # -- whole images -------------------------------------------------------
    def upscale_array(self, image, scale=None, size=None):
        """Super-resolves a uint8 numpy image.

        Args:
            image: uint8 (h, w) or (h, w, 1) grayscale, (h, w, 3) RGB, or
                (h, w, 2) / (h, w, 4) with alpha last.
            scale: factor > 1; the output is ``round(h * scale) x round(w * scale)``.
            size: exact output (H, W) instead of ``scale``.

        Returns:
            uint8 array with the input's channel layout, (H, W[, C]).
        """
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ValueError(f"Expected a uint8 image, got dtype {image.dtype}")
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4)):
            raise ValueError(f"Expected (h, w) or (h, w, 1|2|3|4), got shape {image.shape}")
        if min(image.shape[:2]) < 1:
            raise ValueError(f"Empty image of shape {image.shape}")
        out_hw = output_size(image.shape[:2], scale, size)
        if out_hw[0] * out_hw[1] > self.max_pixels:
            raise ValueError(
                f"output {out_hw[1]}x{out_hw[0]} exceeds the pixel limit of {self.max_pixels:,}")
        if image.ndim == 3 and image.shape[-1] in (2, 4):
            colour = self.upscale_array(image[..., :-1], size=out_hw)
            # Alpha in float, rounded once (as the SavedModel's graph does).
            alpha = _quantise(imresize(image[..., -1] / np.float32(255), output_shape=out_hw))
            colour = colour if colour.ndim == 3 else colour[..., None]
            return np.concatenate([colour, alpha[..., None]], axis=-1)
        if self._forward is None:
            # The literature's baseline: MATLAB imresize of the uint8 image.
            return imresize(image, output_shape=out_hw)
        if image.ndim == 2 or image.shape[-1] == 1:
            y = self.upscale_y(image.reshape(image.shape[:2]) / np.float32(255), out_hw)
            sr = _quantise(y)
            return sr if image.ndim == 2 else sr[..., None]
        ycc = rgb2ycbcr(image.astype(np.float32) / np.float32(255))
        y = self.upscale_y(ycc[..., 0], out_hw)
        cb = imresize(np.ascontiguousarray(ycc[..., 1]), output_shape=out_hw)
        cr = imresize(np.ascontiguousarray(ycc[..., 2]), output_shape=out_hw)
        # Back to RGB in strips: no full-size float64 (H, W, 3) temporaries.
        out = np.empty(out_hw + (3,), np.uint8)
        for r in range(0, out_hw[0], _STRIP):
            rows = slice(r, r + _STRIP)
            out[rows] = _quantise(ycbcr2rgb(np.stack([y[rows], cb[rows], cr[rows]], axis=-1)))
        return out

    def upscale(self, image, scale=None, size=None):
        """Super-resolves a numpy array or a PIL image; returns the same kind.

        Args:
            image: a uint8 numpy array (see ``upscale_array``) or a PIL image
                (modes L, LA, RGB, RGBA directly; others are converted, see
                ``vdsr_tf.imageio.to_supported``).
            scale: factor > 1, or
            size: exact output (H, W).

        Returns:
            The SR image: a numpy array, or a PIL image of the (converted)
            mode with the input's ICC profile.
        """
        try:
            from PIL import Image
        except ImportError:  # numpy-only use
            Image = None
        if Image is not None and isinstance(image, Image.Image):
            from vdsr_tf.imageio import to_supported

            converted, _ = to_supported(image)
            out = Image.fromarray(self.upscale_array(np.asarray(converted), scale, size))
            if image.info.get("icc_profile"):
                out.info["icc_profile"] = image.info["icc_profile"]
            return out
        return self.upscale_array(image, scale, size)


def upscale(image, scale=None, size=None, weights=None, **kwargs):
    """One call: ``Upscaler(weights, **kwargs).upscale(image, scale, size)``."""
    return Upscaler(weights, **kwargs).upscale(image, scale=scale, size=size)


def _quantise(x):
    """float in [0, 1] -> uint8, rounded half up, saturated."""
    return np.clip(np.floor(x * 255.0 + 0.5), 0, 255).astype(np.uint8)
