"""Weights in and out of files: the bundled weights, ``.weights.h5`` and ``.keras``.

The one loader of the package: the upscaler, ``vdsr-eval``, the exporters and
``vdsr-train --init_from`` all find and check weights here, with one set of
messages.
"""

import hashlib
import json
import os

import keras

from vdsr_tf.io import bundled
from vdsr_tf.models.vdsr import VDSR, build_vdsr
from vdsr_tf.models.vdsr import architecture as architecture_of


def load_model(path):
    """Loads a ``.keras`` file saved from a ``VDSR`` model (optimizer included)."""
    return keras.saving.load_model(path, custom_objects={"VDSR": VDSR})


def weights_file(path=None):
    """The weights file ``path`` names, checked: None (or "bundled") is the
    bundled weights, whose sha256 must match ``vdsr.weights.json``.

    Raises:
        FileNotFoundError: if the file (or the bundled weights) is missing.
        ValueError: if the bundled weights are damaged.
    """
    if path is None or path == "bundled":
        path = bundled.bundled_weights_path()
        if not os.path.exists(path):
            raise FileNotFoundError(
                "This install has no bundled weights yet; pass a weights file "
                "(a .keras or .weights.h5 written by vdsr-train)."
            )
        info = bundled.bundled_weights_info()
        if info and info.get("sha256"):
            with open(path, "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != info["sha256"]:
                    raise ValueError(
                        f"The bundled weights {path} do not match their sha256 "
                        "in vdsr.weights.json (a damaged install?); reinstall"
                    )
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such weights file: {path}")
    return path


def load_weights(model, path, architecture=None):
    """``model.load_weights(path)`` with one clear error for a file that is not
    weights of ``model``'s architecture (``architecture``: how to name it;
    default: its depth and width).

    Raises:
        ValueError: naming the file, the architecture and the loader's reason.
    """
    try:
        model.load_weights(path)
    except Exception as e:  # h5py/keras raise several types for a bad file
        if architecture is None:
            try:
                arch = architecture_of(model)
                architecture = f"depth {arch['depth']}, {arch['filters']} filters"
            except ValueError:  # not a VDSR network: name it instead
                architecture = model.name
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path} does not hold weights of {architecture}: {first}") from None


def load_pretrained(path=None):
    """A VDSR model with trained weights.

    Args:
        path: a ``.keras`` model file, a ``.weights.h5`` file (the architecture
            is read from a ``config.json`` beside it, as ``vdsr-train``
            writes, else the default 20x64 network), or None for the bundled
            weights.

    Raises:
        FileNotFoundError: if the file (or the bundled weights) is missing.
        ValueError: if the file is not a model or weights file of this network.

    Example:

    ```python
    model = vdsr_tf.load_pretrained()  # the bundled weights
    sr = model.predict(x)  # x: float32 (N, H, W, 1), the bicubic-upscaled Y in [0, 1]
    ```
    """
    path = weights_file(path)
    if path.endswith(".keras"):
        return load_model(path)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"Expected a .keras or .weights.h5 file, got {path}")
    kwargs, model_cfg = {}, {}
    config_path = os.path.join(os.path.dirname(path), "config.json")
    if os.path.exists(config_path):
        with open(config_path) as f:
            model_cfg = json.load(f).get("model", {})
        kwargs = {k: model_cfg[k] for k in ("depth", "filters", "residual") if k in model_cfg}
    model = build_vdsr(**kwargs)
    load_weights(
        model, path, None if kwargs else "the default 20 x 64 network (no config.json beside it)"
    )
    return model
