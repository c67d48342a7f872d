"""A jitted JAX forward pass of a Keras VDSR model, for inference on JAX.

``jax_forward(model)`` pads images to a few bucket shapes and masks the
padding after every convolution, so one compile serves many image sizes and
the result is the unpadded network's. ``engines.compile_forward`` uses it
when Keras runs on JAX (the GPU machine).
"""

import jax
import keras
import numpy as np


def _chain_layers(model):
    """The model's layers after the input if it is build_vdsr's plain chain, else None."""
    layers = model.layers
    if not layers or not isinstance(layers[0], keras.layers.InputLayer):
        return None
    rest = layers[1:]
    ok = all(
        isinstance(l, (keras.layers.Conv2D, keras.layers.Add, keras.layers.Activation))
        for l in rest
    )
    return rest if ok and all(isinstance(l, keras.layers.Conv2D) for l in rest[:-1]) else None


def jax_forward(model, multiple=64):
    """``f(x: float32 (N, h, w, 1)) -> numpy (N, h, w, 1)``, one compile per bucket.

    Images are zero-padded to multiples of ``multiple`` and the padding is
    zeroed again after every convolution, which is what ``"same"`` padding
    does at the image border: the output equals the unpadded network's (up
    to the order of float accumulation) while 30 image sizes share a
    handful of compiled shapes. Models that are not ``build_vdsr``'s chain
    are compiled per shape instead.
    """
    layers = _chain_layers(model)

    @jax.jit
    def masked(trainable, non_trainable, x, mask):
        mapping = list(zip(model.trainable_variables, trainable)) + list(
            zip(model.non_trainable_variables, non_trainable)
        )
        with keras.StatelessScope(state_mapping=mapping):
            h = x
            for layer in layers:
                if isinstance(layer, keras.layers.Conv2D):
                    h = layer(h)
                    h = h * mask.astype(h.dtype)
                elif isinstance(layer, keras.layers.Add):
                    h = layer([x, h])
                else:
                    h = layer(h)
        return h

    @jax.jit
    def plain(trainable, non_trainable, x):
        y, _ = model.stateless_call(trainable, non_trainable, x, training=False)
        return y

    def forward(x):
        x = np.asarray(x, np.float32)
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        if layers is None:
            return np.asarray(plain(trainable, non_trainable, x))
        n, h, w, _ = x.shape
        hb, wb = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        padded = np.zeros((n, hb, wb, 1), np.float32)
        padded[:, :h, :w] = x
        mask = np.zeros((1, hb, wb, 1), np.float32)
        mask[:, :h, :w] = 1.0
        out = masked(trainable, non_trainable, padded, mask)
        return np.asarray(out)[:, :h, :w].astype(np.float32)

    return forward
