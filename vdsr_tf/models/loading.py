"""Weights in and out of files: presets, ``.keras`` and ``.weights.h5``.

The one loader of the package is ``load_source(resolve(handle))``
(``vdsr_tf.io.presets.resolve``: a preset name, a folder, a file, an ``hf://``
or ``kaggle://`` handle; ``vdsr_tf.models.vdsr.load_source``): ``VDSR.from_preset``,
``load_pretrained``, ``Upscaler`` (so ``vdsr-upscale``, ``vdsr-upscale-beam``
and ``vdsr-eval``), the exporters and ``vdsr-train --init_from`` all name
weights with a handle and load them through it, with one set of messages.
"""

import keras

from vdsr_tf.io import presets
from vdsr_tf.models.vdsr import VDSR, load_source


def load_model(path):
    """Loads a ``.keras`` file (or a folder Keras saved unzipped) of a
    ``VDSR`` model, optimizer included."""
    return keras.saving.load_model(path, custom_objects={"VDSR": VDSR})


def load_pretrained(handle=None):
    """A VDSR model with trained weights.

    Args:
        handle: None or ``"bundled"`` for the bundled weights; a registered
            preset name; a preset folder; a ``.keras`` file; a
            ``.weights.h5`` file (its architecture from a ``config.json``
            beside it, a preset's or ``vdsr-train``'s, else the default
            20 x 64 network); a ``vdsr-train`` run folder (its final
            weights); ``hf://owner/name[@revision]`` or
            ``kaggle://owner/model/framework/variation[/version]``.

    Raises:
        FileNotFoundError: if the file, folder or name does not exist.
        ValueError: a folder that is not a preset, a config of another
            model, a weights file of another architecture, a sha256 that
            differs from the metadata's.
        ImportError: a hub handle whose client is not installed.
        OSError: a hub that cannot give the files.

    Example:

    ```python
    model = vdsr_tf.load_pretrained()  # the bundled weights
    sr = model.predict(x)  # x: float32 (N, H, W, 1), the bicubic-upscaled Y in [0, 1]
    ```
    """
    return load_source(presets.resolve(handle))
