"""Super-resolution of real images: colour handling and tiling around VDSR.

``Upscaler`` turns an image of any size and mode into a larger one:

* RGB goes through MATLAB YCbCr: Y is MATLAB-bicubic-upscaled and refined by
  the model, Cb and Cr are bicubic-upscaled. Grayscale stays grayscale. An
  alpha channel is bicubic-upscaled and kept.
* Any scale > 1 (non-integer too) or an exact output size.
* The output is made tile by tile (``vdsr_tf.processing``, the same code the
  SavedModel's graph runs), each tile's network input with ``context`` pixels
  of real image around it (the network's receptive-field radius), so the
  tiled result equals the whole-image one (to float rounding) and memory is
  bounded by the tile size.
* Optionally the geometric self-ensemble: the 8 flips/rotations, averaged.

With ``weights="bicubic"`` it is the plain MATLAB bicubic baseline. The
evaluation, the CLIs and the exporters' reference outputs all use this class.
"""

import numpy as np

from vdsr_tf import processing
from vdsr_tf.dihedral import dihedral, undo_dihedral
from vdsr_tf.imresize import imresize, quantise
from vdsr_tf.tiling import output_size, receptive_radius, tiles

DEFAULT_TILE = 384
DEFAULT_MAX_PIXELS = 100_000_000  # output pixels; about 10k x 10k


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


def network_context(model):
    """The tile context a Keras VDSR model needs: its receptive-field radius
    (``tiling.receptive_radius`` over its convolutions' kernel sizes)."""
    return receptive_radius(l.kernel_size[0] for l in model.layers if hasattr(l, "kernel_size"))


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
        return network_context(self.model)

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

    def _plan(self, height, width):
        """``tiling.tiles``' plan for an output of (height, width)."""
        tile = self.tile or max(height, width)
        return list(tiles(height, width, tile, self.context if self.tile else 0))

    def _tiled(self, height, width, channels, make_tile):
        """Assembles ``make_tile(tile, src)`` over the plan, reporting progress."""
        plan = self._plan(height, width)
        out = None
        for i, (dst, src) in enumerate(plan):
            box = (dst[0].start, dst[1].start, dst[0].stop, dst[1].stop)
            window = (src[0].start, src[1].start, src[0].stop, src[1].stop)
            part = make_tile(box, window)
            if out is None:
                out = np.empty((height, width, channels), part.dtype)
            out[dst] = part
            if self.progress:
                self.progress(i + 1, len(plan))
        return out

    def _network(self, plane):
        """float32 (h, w, 1) bicubic plane -> (h, w, 1) SR plane."""
        return self._run(np.ascontiguousarray(plane[:, :, 0]))[:, :, None]

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

        def make_tile(box, src):
            pred = self._run(np.ascontiguousarray(y[src[0]:src[2], src[1]:src[3]]))
            return pred[box[0] - src[0]:box[2] - src[0], box[1] - src[1]:box[3] - src[1], None]

        return self._tiled(h, w, 1, make_tile)[:, :, 0]

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
        full = image if image.ndim == 3 else image[:, :, None]
        channels = full.shape[-1]
        if self._forward is None:
            # The literature's baseline: MATLAB imresize of the uint8 image
            # (rounded after each pass); alpha enlarged in float.
            colour = imresize(full[:, :, : 3 if channels >= 3 else 1], output_shape=out_hw)
            colour = colour if colour.ndim == 3 else colour[:, :, None]
            if channels in (2, 4):
                alpha = quantise(imresize(full[:, :, -1] / np.float32(255), output_shape=out_hw))
                colour = np.concatenate([colour, alpha[:, :, None]], axis=-1)
            return colour if image.ndim == 3 else colour[:, :, 0]
        net, rest = processing.split(full, channels, np)
        out = self._tiled(out_hw[0], out_hw[1], channels, lambda box, src: processing.upscale_tile(
            net, rest, channels, out_hw, box, src, self._network, np))
        return out if image.ndim == 3 else out[:, :, 0]

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
