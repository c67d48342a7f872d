"""The ``tf.data`` training pipeline: MATLAB-bicubic patches in TensorFlow ops.

``make_dataset`` (and its Keras-friendly shortcut ``patch_dataset``) reads
folders of images, packed ``.npz`` Y planes or TFDS datasets, and samples what
``vdsr_tf.data.degradation`` samples in numpy, bit for bit: the resize passes
run ``vdsr_tf.ops.imresize.tap_sum`` on the same ``band_weights`` tables.

Example:

```python
model.fit(vdsr_tf.patch_dataset("images/", batch_size=64), steps_per_epoch=100)
```
"""

import numpy as np

from vdsr_tf.data.degradation import _expand_sources, _visit_args, load_y_planes
from vdsr_tf.io.images import list_images, read_y, to_y
from vdsr_tf.ops.dihedral import dihedral_tables
from vdsr_tf.ops.imresize import (
    band_weights,
    max_taps,
    scaled_size,
    tap_sum,
    to_uint8,
    unit_levels,
)


# -- the tf.data pipeline ----------------------------------------------------
def _resize_tables(in_hw, out_hw, scale):
    """``band_weights`` of both passes of ``imresize(image of in_hw, out_hw)``.

    Args:
        in_hw, out_hw: (H, W) ints.
        scale: the MATLAB scale (both axes), or None for ``out / in`` per axis.

    Returns:
        ``[start_rows, band_rows, start_cols, band_cols]`` (int32 (out,) and
        float64 (out, T)), T = ``max_taps(scale)``; empty (0-row) tables for
        a zero size.
    """
    taps = max_taps(1.0 if scale is None else scale)
    tables = []
    for n, m in zip(in_hw, out_hw):
        if n < 1 or m < 1:
            tables += [np.zeros([0], np.int32), np.zeros([0, taps])]
        else:
            tables += list(band_weights(int(n), int(m), m / n if scale is None else scale, taps))
    return tables


def _tf_resize_rows(x, start, band):
    """One resize pass along axis 0 of a 2-D tensor with ``band_weights`` tables.

    The taps are accumulated left to right in float64, the order of
    ``imresize``'s numpy pass, and uint8 input is rounded with the one
    rounding rule: the result is bit-identical to ``imresize`` (tests pin
    this). Zero-weight padding taps (at clamped indices) add +0.0.
    """
    import tensorflow as tf
    import tensorflow.experimental.numpy as tnp

    last = tf.shape(x)[0] - 1
    xf = tf.cast(x, tf.float64)
    acc = tap_sum(band[:, None, :], lambda k: tf.gather(xf, tf.minimum(start + k, last)))
    return to_uint8(acc, tnp) if x.dtype == tf.uint8 else tf.cast(acc, x.dtype)


def _tf_resize(x, tables):
    """``imresize`` of a 2-D tensor (rows first) with ``_resize_tables``' tables."""
    import tensorflow as tf

    tall = _tf_resize_rows(x, tables[0], tables[1])
    return tf.transpose(_tf_resize_rows(tf.transpose(tall), tables[2], tables[3]))


def _tf_tables(plan, inputs, count, taps):
    """``tf.numpy_function(plan, inputs)`` returning ``count`` (start, band)
    table pairs, the i-th band with ``taps[i]`` columns."""
    import tensorflow as tf

    out = tf.numpy_function(plan, inputs, [tf.int32, tf.float64] * count, stateful=False)
    return [
        tf.ensure_shape(t, [None] if i % 2 == 0 else [None, taps[i // 2]])
        for i, t in enumerate(out)
    ]


def _tf_shrunk(hr, factor, patch_size, scale):
    """``degraded_pair``'s down-size step in TF ops: ``hr`` shrunk by ``factor``
    unless that leaves it smaller than ``patch_size + scale`` (or factor is 1).
    ``scale`` may be a tensor."""
    import tensorflow as tf

    if factor == 1.0:
        return hr

    def plan(h, w, margin):  # one Python call per visit: the sizes and both tables
        h, w = int(h), int(w)
        shrink = min(h, w) * factor >= int(margin)
        out = (scaled_size(h, factor), scaled_size(w, factor)) if shrink else (0, 0)
        return _resize_tables((h, w), out, factor)

    tables = _tf_tables(
        plan, [tf.shape(hr)[0], tf.shape(hr)[1], patch_size + scale], 2, [max_taps(factor)] * 2
    )
    return tf.cond(tf.size(tables[0]) > 0, lambda: _tf_resize(hr, tables), lambda: hr)


def _tf_degraded(hr, scale, patch_size):
    """``degrade`` in TF ops after the down-size step, all but the last pass.

    The enlargement's horizontal pass is left to the caller with its tables,
    so that the sampler computes it only inside the patches it cuts (each
    output pixel is computed exactly as in the whole-image pass).

    Returns:
        ``(tall, y, start, band)``: float32 (H', W' / scale), the bicubic LR
        enlarged vertically; float32 (H', W') the HR target in [0, 1]; the
        horizontal pass's ``band_weights`` tables. Empty (0-size) tensors when
        the modcropped image is smaller than a patch.
    """
    import tensorflow as tf

    levels = tf.constant(unit_levels())
    h, w = tf.shape(hr)[0], tf.shape(hr)[1]
    h, w = h - h % scale, w - w % scale
    hr = hr[:h, :w]

    def plan(h, w):  # one Python call per visit: the four passes' tables
        h, w = int(h), int(w)
        if h < patch_size or w < patch_size:
            h = w = 0
        lr = (h // scale, w // scale)
        return _resize_tables((h, w), lr, 1.0 / scale) + _resize_tables(lr, (h, w), None)

    tables = _tf_tables(plan, [h, w], 4, [max_taps(1.0 / scale)] * 2 + [max_taps(1.0)] * 2)

    def pair():
        lr = tf.gather(levels, tf.cast(_tf_resize(hr, tables[:4]), tf.int32))
        return _tf_resize_rows(lr, tables[4], tables[5]), tf.gather(levels, tf.cast(hr, tf.int32))

    def empty():
        return tf.zeros([0, 0], tf.float32), tf.zeros([0, 0], tf.float32)

    tall, y = tf.cond(tf.logical_and(h >= patch_size, w >= patch_size), pair, empty)
    return tall, y, tables[6], tables[7]


def _tf_degraded_pair(hr, factor, scale, patch_size):
    """``degraded_pair`` in TF ops, bit-identical to it (tests pin this).

    Args:
        hr: uint8 (H, W) tensor.
        factor, scale, patch_size: Python numbers, as ``degraded_pair``.

    Returns:
        ``(x, y)`` float32 (H', W') tensors, both (0, 0) where
        ``degraded_pair`` returns None.
    """
    import tensorflow as tf

    tall, y, start, band = _tf_degraded(
        _tf_shrunk(hr, factor, patch_size, scale), scale, patch_size
    )
    return tf.transpose(_tf_resize_rows(tf.transpose(tall), start, band)), y


def _tf_sample_visit(plane, visit_seed, patch_size, scales, downsize, augment, count):
    """One image visit of the tf.data pipeline, in TF ops: ``sample_image_patches``'
    steps (draw a factor and a scale, degrade as ``_tf_degraded_pair`` does,
    aligned random patches, one random flip/rotation each), with TF's
    stateless random numbers seeded by ``visit_seed``. The input patches are
    bit-identical to windows of ``degraded_pair``'s input image.

    Returns:
        ``(x, y, s)``: float32 (n, P, P, 1) twice and int32 (n,), n = ``count``
        or 0 when the image is smaller than a patch.
    """
    import tensorflow as tf

    p = patch_size

    def seed(k):
        return tf.stack([tf.cast(visit_seed, tf.int64), tf.constant(k, tf.int64)])

    def draw(k, shape, high):
        return tf.random.stateless_uniform(shape, seed(k), 0, high, dtype=tf.int32)

    # Two switches (factor, then scale) rather than one per combination: a
    # third of the graph to trace.
    scales = [int(s) for s in scales]
    pick_f, pick_s = draw(0, [], len(downsize)), draw(1, [], len(scales))
    scale = tf.gather(scales, pick_s)
    shrunk = tf.switch_case(
        pick_f, [(lambda f=float(f): _tf_shrunk(plane, f, p, scale)) for f in downsize]
    )
    tall, y, start, band = tf.switch_case(
        pick_s, [(lambda s=s: _tf_degraded(shrunk, s, p)) for s in scales]
    )
    h, w = tf.shape(y)[0], tf.shape(y)[1]
    n = tf.where(h >= p, count, 0)
    tops = draw(2, [n], tf.maximum(h - p + 1, 1))
    lefts = draw(3, [n], tf.maximum(w - p + 1, 1))
    ks = draw(4, [n], 8) if augment else tf.zeros([n], tf.int32)
    rows = tops[:, None] + tf.range(p)[None, :]  # (n, P)
    cols = lefts[:, None] + tf.range(p)[None, :]
    # The enlargement's horizontal pass inside the patches only: the band
    # weights of each patch column, taps left to right in float64, as
    # _tf_resize_rows computes every column of the whole image.
    strips = tf.cast(tf.gather(tall, rows), tf.float64)  # (n, P, W / scale)
    col_start, col_band = tf.gather(start, cols), tf.gather(band, cols)  # (n, P[, T])
    last = tf.shape(tall)[1] - 1
    acc = tap_sum(
        col_band[:, None, :, :],
        lambda k: tf.gather(strips, tf.minimum(col_start + k, last), axis=2, batch_dims=1),
    )
    x_patches = tf.cast(acc, tf.float32)
    rows_k, cols_k = dihedral_tables(p)
    flat = tf.gather(tf.constant((rows_k * p + cols_k).reshape(8, p * p)), ks)

    def turn(patches):  # (n, P, P) -> (n, P, P, 1), one flip/rotation each
        turned = tf.gather(tf.reshape(patches, [n, p * p]), flat, batch_dims=1)
        return tf.reshape(turned, [n, p, p, 1])

    y_patches = tf.gather(tf.gather(y, rows), cols, axis=2, batch_dims=1)
    return turn(x_patches), turn(y_patches), tf.fill([n], scale)


def parse_tfds_spec(spec):
    """``"tfds:NAME[:SPLIT]"`` -> ``(name, split or None)``; ValueError otherwise."""
    parts = spec.split(":")
    if parts[0] != "tfds" or len(parts) not in (2, 3) or not parts[1]:
        raise ValueError(f"Expected tfds:NAME[:SPLIT], got {spec!r}")
    return parts[1], (parts[2] if len(parts) == 3 else None)


def _tfds_images(spec, data_dir, manual_dir=None):
    """uint8 images of a TFDS dataset named by ``tfds:NAME[:SPLIT]``.

    The package's own builders (``vdsr_tf.data.tfds_builders``: set5, set14, b100,
    urban100, sr291) are registered first; with ``manual_dir`` a dataset not
    yet prepared under ``data_dir`` is prepared from local files.
    """
    import vdsr_tf.data.tfds_builders as builders

    name, split = parse_tfds_spec(spec)
    ds = builders.load(name, split=split or "train", data_dir=data_dir, manual_dir=manual_dir)
    key = None
    for candidate in ("hr", "image"):
        if candidate in ds.element_spec:
            key = candidate
    if key is None:
        raise ValueError(
            f"TFDS dataset {name!r} has no 'hr' or 'image' feature "
            f"(features: {sorted(ds.element_spec)})"
        )
    return ds.map(lambda ex: ex[key])


def _y_plane_dataset(sources, data_dir=None, manual_dir=None):
    """A tf.data dataset of uint8 (H, W) Y planes from mixed sources."""
    import tensorflow as tf

    def numpy_planes(fn, inputs):
        return tf.ensure_shape(
            tf.numpy_function(fn, inputs, tf.uint8, stateful=False), (None, None)
        )

    parts = []
    for source in _expand_sources(sources):
        if source.startswith("tfds:"):
            # TFDS images (H, W, C): Y is taken here; files and packs are Y already.
            parts.append(
                _tfds_images(source, data_dir, manual_dir).map(
                    lambda image: numpy_planes(to_y, [image]), num_parallel_calls=tf.data.AUTOTUNE
                )
            )
        elif source.endswith(".npz"):
            planes = load_y_planes(source)
            parts.append(
                tf.data.Dataset.from_generator(
                    lambda planes=planes: iter(planes),
                    output_signature=tf.TensorSpec((None, None), tf.uint8),
                )
            )
        else:
            # The package's one decoder (``vdsr_tf.io.images``), in parallel.
            parts.append(
                tf.data.Dataset.from_tensor_slices(list_images(source)).map(
                    lambda path: numpy_planes(lambda p: read_y(p.decode()), [path]),
                    num_parallel_calls=tf.data.AUTOTUNE,
                )
            )
    ds = parts[0]
    for part in parts[1:]:
        ds = ds.concatenate(part)
    return ds


def make_dataset(sources, data_config, seed=0, data_dir=None, with_scale=False, manual_dir=None):
    """The training ``tf.data`` pipeline.

    Steps, in order: Y channel; cache in memory; repeat and shuffle the images;
    per image visit, ``sample_image_patches`` (down-size augmentation, a random
    scale, modcrop, MATLAB bicubic down then up, aligned random patches,
    flips/rotations); shuffle the patches; batch; prefetch.

    Args:
        sources: folder(s) of images, packed ``.npz`` file(s), or
            ``"tfds:NAME[:SPLIT]"`` specs (TFDS datasets prepared under
            ``data_dir``; nothing is downloaded).
        data_config: a ``vdsr_tf.config.DataConfig``.
        seed: int; the same seed gives the same batches.
        data_dir: TFDS data directory for ``tfds:`` sources.
        with_scale: also yield each pair's scale (int32 (B,)), as ``(x, y, s)``.
        manual_dir: local files to prepare ``tfds:`` sources from on first use.

    Returns:
        An infinite ``tf.data.Dataset`` of ``(x, y)`` float32 batches, both
        (B, P, P, 1): ``x`` the bicubic-upscaled input (about [0, 1]), ``y`` the
        HR target in [0, 1].
    """
    import tensorflow as tf

    args = _visit_args(data_config)
    planes = _y_plane_dataset(sources, data_dir, manual_dir).cache()
    planes = planes.repeat().shuffle(512, seed=seed)
    visit_seeds = tf.data.Dataset.random(seed=seed).map(lambda s: tf.math.floormod(s, 2**31))

    # Plain TF ops, no Python control flow on tensors: AutoGraph's conversion
    # would only slow the tracing down (twice as long).
    @tf.autograph.experimental.do_not_convert
    def sample(plane, visit_seed):
        return _tf_sample_visit(plane, visit_seed, **args)

    ds = tf.data.Dataset.zip((planes, visit_seeds))
    ds = ds.map(sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.unbatch().shuffle(data_config.shuffle_buffer, seed=seed)
    if not with_scale:
        ds = ds.map(lambda x, y, s: (x, y))
    ds = ds.batch(data_config.batch_size, drop_remainder=True)
    options = tf.data.Options()
    options.threading.max_intra_op_parallelism = 1
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def patch_dataset(
    sources,
    patch_size=41,
    scales=(2, 3, 4),
    batch_size=64,
    downsize=(1.0, 0.7, 0.5),
    augment=True,
    seed=0,
    data_dir=None,
):
    """Keras-friendly shortcut for ``make_dataset``: ``model.fit(patch_dataset(...))``.

    Args:
        sources: folder(s) of HR images, ``.npz`` packs or ``tfds:NAME`` specs.
        patch_size, scales, batch_size, downsize, augment: see ``DataConfig``.
        seed: the sampling seed.
        data_dir: TFDS data directory for ``tfds:`` sources.

    Returns:
        An infinite ``tf.data.Dataset`` of ``(x, y)`` float32 (B, P, P, 1)
        batches: bicubic-upscaled input and HR target, in [0, 1].
    """
    from vdsr_tf.config import DataConfig

    cfg = DataConfig(
        patch_size=patch_size,
        scales=tuple(scales),
        batch_size=batch_size,
        downsize=tuple(downsize),
        augment=augment,
    )
    return make_dataset(sources, cfg, seed=seed, data_dir=data_dir)
