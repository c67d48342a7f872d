"""Training state in one file, written atomically: weights, optimizer, metadata.

A state file is an uncompressed ``.npz`` holding

* ``weight_000`` ...: the model's variables (``model.weights`` order);
* ``optimizer_000`` ...: the optimizer's variables (step counter, moments,
  the schedule's length), absent from a weights-only state;
* ``meta``: UTF-8 JSON (step, epoch, the config, the training data's
  fingerprint, patches seen, ...).

It is written to a temporary file in the same folder, flushed to disk and
renamed over the old one, so a kill at any moment leaves either the previous
state or the new one, never a mix of two epochs. Both training engines
(``fit`` and the fast JAX engine) read and write this format, and so does the
GPU release job. Imports without TensorFlow.
"""

import json
import os

import numpy as np

from vdsr_tf.io.atomic import atomic_write

_WEIGHT = "weight_{:03d}"


_OPTIMIZER = "optimizer_{:03d}"

# The training state's file name in a run folder.
CHECKPOINT = "checkpoint.npz"


def save_state(path, model, meta, include_optimizer=True):
    """Writes ``model`` (and its optimizer) with ``meta`` to ``path`` atomically.

    Args:
        path: the ``.npz`` file.
        model: a Keras model; its optimizer is saved when it is built and
            ``include_optimizer``.
        meta: a JSON-serialisable dict.
        include_optimizer: False writes a weights-only state (a third of the
            size with Adam), enough to start a new run from (``--init_from``).
    """
    arrays = {_WEIGHT.format(i): np.asarray(v) for i, v in enumerate(model.weights)}
    optimizer = getattr(model, "optimizer", None)
    if include_optimizer and optimizer is not None and optimizer.built:
        for i, v in enumerate(optimizer.variables):
            arrays[_OPTIMIZER.format(i)] = np.asarray(v)
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_state(path):
    """Reads a state file.

    Returns:
        ``(meta, weights, optimizer)``: the dict, the list of weight arrays
        and the list of optimizer arrays (None for a weights-only state).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a state file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such state file: {path}")
    try:
        with np.load(path) as z:
            names = set(z.files)
            meta = json.loads(bytes(z["meta"]).decode())
            weights = [z[_WEIGHT.format(i)] for i in range(_count(names, _WEIGHT))]
            n_opt = _count(names, _OPTIMIZER)
            optimizer = [z[_OPTIMIZER.format(i)] for i in range(n_opt)] if n_opt else None
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path} is not a vdsr-tf training state: {e}") from None
    return meta, weights, optimizer


def weights_digest(arrays):
    """sha256 of weight arrays (dtype, shape and bytes, in order): equal
    digests mean bit-identical weights. ``vdsr-train`` logs the digest of the
    weights it restored on resume."""
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _count(names, pattern):
    n = 0
    while pattern.format(n) in names:
        n += 1
    return n


def restore(model, weights, optimizer=None):
    """Loads weight (and optimizer) arrays from ``read_state`` into ``model``.

    The optimizer is built first if needed.

    Raises:
        ValueError: if the arrays do not fit the model or its optimizer,
            naming the first mismatch.
    """
    if len(weights) != len(model.weights):
        raise ValueError(
            f"the state holds {len(weights)} weight arrays, the model has "
            f"{len(model.weights)} (a different depth?)"
        )
    for var, value in zip(model.weights, weights):
        if tuple(var.shape) != tuple(value.shape):
            raise ValueError(
                f"weight {var.path}: state shape {tuple(value.shape)}, model "
                f"shape {tuple(var.shape)} (a different architecture?)"
            )
    for var, value in zip(model.weights, weights):
        var.assign(value)
    if optimizer is None:
        return
    opt = model.optimizer
    if not opt.built:
        opt.build(model.trainable_variables)
    if len(optimizer) != len(opt.variables):
        raise ValueError(
            f"the state holds {len(optimizer)} optimizer arrays, this optimizer "
            f"has {len(opt.variables)} (a different optimizer?)"
        )
    for var, value in zip(opt.variables, optimizer):
        var.assign(value)


def config_difference(saved, current):
    """Names the fields where two config dicts differ: ``"a.b: 1 -> 2"``, ..."""
    out = []

    def walk(a, b, prefix):
        for key in sorted(set(a) | set(b)):
            va, vb = a.get(key), b.get(key)
            if isinstance(va, dict) and isinstance(vb, dict):
                walk(va, vb, f"{prefix}{key}.")
            elif va != vb and not (
                isinstance(va, (list, tuple))
                and isinstance(vb, (list, tuple))
                and list(va) == list(vb)
            ):
                out.append(f"{prefix}{key}: {va!r} -> {vb!r}")

    walk(saved, current, "")
    return out
