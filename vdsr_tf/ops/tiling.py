"""Output size, tile plan and receptive field: the geometry of upscaling.

One definition of each, shared by the numpy ``Upscaler``, the SavedModel's
graph and the LiteRT runner. The arithmetic is written with operators that
numpy scalars, Python ints and TensorFlow tensors all support, so the graph
computes exactly what the Python code does. Imports numpy only.
"""

import numpy as np


def receptive_radius(kernel_sizes):
    """Receptive-field radius in pixels of a stack of stride-1 convolutions.

    Each k x k "same" convolution reaches ``(k - 1) // 2`` pixels further, so
    20 layers of 3x3 (VDSR) see 20 pixels on each side. A tile computed with
    at least this much real image around it equals the whole-image result.

    Args:
        kernel_sizes: the kernel side of each convolution, in order.

    Returns:
        int >= 0.
    """
    return int(sum((int(k) - 1) // 2 for k in kernel_sizes))


def network_context(model):
    """The tile context a Keras VDSR model needs: its receptive-field radius
    (``tiling.receptive_radius`` over its convolutions' kernel sizes)."""
    return receptive_radius(l.kernel_size[0] for l in model.layers if hasattr(l, "kernel_size"))


def check_scale_size(scale, size, names=("scale", "size")):
    """The package's one check of an enlargement request: exactly one of
    ``scale`` (a finite number > 1) or ``size`` (positive (H, W)).

    Args:
        names: how the messages name the two (``("--scale", "--size")`` for
            a command line).

    Raises:
        ValueError: otherwise.
    """
    if (scale is None) == (size is None):
        raise ValueError(f"give exactly one of {names[0]} or {names[1]}")
    try:
        ok = scale is None or (float(scale) > 1.0 and np.isfinite(float(scale)))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{names[0]} must be a number > 1, got {scale!r}")
    try:
        ok = size is None or (len(size) == 2 and min(int(v) for v in size) >= 1)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{names[1]} must be a positive (H, W), got {size!r}")


def output_size(in_hw, scale=None, size=None):
    """The SR size (H, W): ``in * scale`` rounded half up per axis, or ``size``.

    The product is taken in float64 (``scaled_length``), so the served graph
    and the Python upscaler agree for every input size.

    Raises:
        ValueError: unless exactly one of ``scale`` (> 1) or ``size``
            (positive (H, W), at least the input size) is given.
    """
    check_scale_size(scale, size)
    if size is not None:
        h, w = (int(v) for v in size)
        if h < in_hw[0] or w < in_hw[1]:
            raise ValueError(
                f"size {h}x{w} (HxW) is smaller than the input {in_hw[0]}x{in_hw[1]}; "
                "VDSR only enlarges"
            )
        return h, w
    scale = float(scale)
    return (int(scaled_length(in_hw[0], scale)), int(scaled_length(in_hw[1], scale)))


def scaled_length(length, scale, xp=np):
    """``floor(length * scale + 0.5)`` in float64: half rounds up (12.5 -> 13),
    not to even as Python's ``round`` would.

    Args:
        length: int or int tensor.
        scale: float or float tensor.
        xp: the array namespace (numpy or ``tf.experimental.numpy``).

    Returns:
        float64 scalar (cast to int by the caller).
    """
    return xp.floor(xp.asarray(length, dtype="float64") * xp.asarray(scale, dtype="float64") + 0.5)


def tile_steps(height, width, tile):
    """Row and column step of the near-equal tiles of at most ``tile`` pixels.

    512 px with tile 384 gives 2 x 256, not 384 + 128: less context overhead
    per output pixel. Works on ints and integer tensors alike.
    """
    return -(-height // -(-height // tile)), -(-width // -(-width // tile))


def tile_window(top, left, step_h, step_w, height, width, context, minimum, maximum):
    """The output region of the tile at (top, left) and its source window.

    Args:
        top, left: the tile's first row and column.
        step_h, step_w: from ``tile_steps``.
        height, width: the image size.
        context: pixels of real image kept around the tile per side.
        minimum, maximum: elementwise min / max for the operands' kind
            (``min``/``max`` for ints, ``tf.minimum``/``tf.maximum`` in graphs).

    Returns:
        ``(bottom, right, src_top, src_left, src_bottom, src_right)``: the
        tile covers rows ``top:bottom`` and columns ``left:right``; the
        network runs on ``src_top:src_bottom, src_left:src_right``.
    """
    bottom, right = minimum(top + step_h, height), minimum(left + step_w, width)
    return (
        bottom,
        right,
        maximum(top - context, 0),
        maximum(left - context, 0),
        minimum(bottom + context, height),
        minimum(right + context, width),
    )


def tiles(height, width, tile, context):
    """Near-equal tiles of at most ``tile`` x ``tile`` covering an (H, W) image.

    Yields ``(box, window)`` pairs of boxes, the package's one form of a
    tile (``(top, left, bottom, right)``, as the tile pipeline and the
    SavedModel graph take them; ``slices(box)`` indexes an array): ``box``,
    the tile in the image; ``window``, the same region grown by up to
    ``context`` pixels per side (clipped to the image). Running the network
    on ``window`` and keeping the ``box`` part equals running it on the whole
    image when ``context`` is at least the receptive-field radius.
    """
    step_h, step_w = tile_steps(height, width, tile)
    for top in range(0, height, step_h):
        for left in range(0, width, step_w):
            bottom, right, st, sl, sb, sr = tile_window(
                top, left, step_h, step_w, height, width, context, min, max
            )
            yield (top, left, bottom, right), (st, sl, sb, sr)


def slices(box):
    """``(rows, cols)`` slices of a ``(top, left, bottom, right)`` box."""
    return slice(box[0], box[2]), slice(box[1], box[3])


def fixed_windows(length, window, context):
    """Windows of exactly ``window`` pixels along one axis of ``length`` pixels,
    for a model with a static input size, and the part of each that is kept.

    The windows overlap by ``2 * context``; the last one is placed flush with
    the end of the axis. Every kept pixel has at least ``context`` pixels of
    real image on each side inside its window, or lies within ``context`` of
    the image border (where the network sees its zero padding in both cases),
    so the assembled result equals running the network on the whole axis.

    Args:
        length: the axis length, at least ``window``.
        window: the model's input size along the axis, > 2 * context.
        context: the receptive-field radius.

    Returns:
        A list of ``(start, keep_from, keep_to)`` in image coordinates: the
        window covers ``start:start + window`` and gives ``keep_from:keep_to``;
        the kept ranges partition ``0:length``.

    Raises:
        ValueError: if ``length < window`` or ``window <= 2 * context``.
    """
    if length < window:
        raise ValueError(f"an axis of {length} pixels is shorter than the window ({window})")
    if window <= 2 * context:
        raise ValueError(
            f"a window of {window} pixels leaves nothing inside a context of {context}"
        )
    starts = list(range(0, length - window, window - 2 * context)) + [length - window]
    cuts = [0] + [s + context for s in starts[1:]] + [length]
    return [(s, cuts[i], cuts[i + 1]) for i, s in enumerate(starts)]


def grow_window(start, stop, least, length):
    """``(start, stop)`` widened to at least ``least`` pixels inside ``[0, length)``
    (to the whole axis when it is shorter): a fixed-size model then gets a
    window it can run. More context never changes the kept pixels."""
    if stop - start >= least or length <= least:
        return (start, stop) if length > least else (0, length)
    stop = min(length, start + least)
    return stop - least, stop


# 512 output pixels per tile side: a 512 x 512 output (a 256 x 256 image at
# x2) is one window, with no tile context to recompute; a 552 x 552 window of
# 20 x 64 float32 activations stays under 1.5 GB peak RSS.
DEFAULT_TILE = 512


DEFAULT_MAX_PIXELS = 100_000_000  # output pixels; about 10k x 10k
