"""Training data: MATLAB-bicubic-degraded patch pairs, as tf.data or numpy.

One sample: from one HR Y plane draw a down-size factor and a scale, degrade
the image with MATLAB-exact bicubic down then up (``degraded_pair``), and cut
aligned random patch pairs with random flips and 90-degree rotations. The
resize weights come from one place (``vdsr_tf.ops.imresize.band_weights``) and
are applied in two engines that give bit-identical images:

* ``make_dataset``: a ``tf.data`` pipeline in TF ops (``_tf_degraded_pair``,
  ``_tf_sample_visit``; parallel map with AUTOTUNE, so it scales with the
  host's cores) over a folder of images, a packed ``.npz`` of Y planes, or a
  TFDS dataset (``"tfds:NAME[:SPLIT]"`` with a local ``data_dir``): Y
  channel, cache, shuffle images, sample patches (stateless random numbers
  seeded per visit), shuffle patches, batch, prefetch.
* ``PatchSampler`` (numpy, ``sample_image_patches``) and the fast engine's
  device pool (``degraded_variants``): the same degradation without
  TensorFlow, for the JAX-only GPU machine.

Both samplers are deterministic for a given seed (their random streams
differ: TF's and numpy's generators).
"""

import os

import numpy as np

from vdsr_tf.io.atomic import atomic_write
from vdsr_tf.io.images import list_images, read_y
from vdsr_tf.ops.dihedral import dihedral
from vdsr_tf.ops.imresize import imresize, modcrop, to_uint8


def _expand_sources(sources):
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    return [os.fspath(s) for s in sources]


def load_y_planes(sources):
    """Loads the Y planes of every image in folders or packed ``.npz`` files.

    Args:
        sources: a path or a list of paths; each a folder of images or an
            ``.npz`` written by ``pack_y_planes``.

    Returns:
        A list of uint8 (H, W) arrays.
    """
    planes = []
    for source in _expand_sources(sources):
        if source.endswith(".npz"):
            with np.load(source) as packed:
                planes.extend(packed[k] for k in sorted(packed.files))
        else:
            planes.extend(read_y(p) for p in list_images(source))
    return planes


def pack_y_planes(sources, path):
    """Writes the Y planes of ``sources`` to a compressed ``.npz`` at ``path``.

    The 291 training images pack to about 27 MB, small enough to carry to the
    GPU machine. The file is written to a temporary name and renamed, so an
    interrupted pack leaves no partial file.

    Returns:
        The number of planes written.
    """
    planes = load_y_planes(sources)
    atomic_write(
        path, lambda f: np.savez_compressed(f, **{f"y{i:05d}": p for i, p in enumerate(planes)})
    )
    return len(planes)


# -- the sample maths (numpy) -----------------------------------------------
def degrade(hr_y, scale):
    """MATLAB bicubic down by ``scale`` then up: the VDSR input and target.

    Args:
        hr_y: uint8 (H, W) Y plane; it is modcropped to a multiple of scale.
        scale: integer scale >= 2.

    Returns:
        ``(x, y)``, float32 (H', W') each, H' = H - H % scale: ``x`` the
        bicubic-upscaled LR (about [0, 1], overshoot kept), ``y`` the HR in
        [0, 1]. The LR is quantised to uint8 like the benchmarks' LR files,
        then upscaled in float.
    """
    hr = modcrop(hr_y, scale)
    lr = imresize(hr, scale=1.0 / scale)
    x = imresize(lr.astype(np.float32) / 255.0, output_shape=hr.shape)
    return x, hr.astype(np.float32) / 255.0


def degraded_pair(hr_y, factor, scale, patch_size):
    """The whole-image training pair of one (down-size factor, scale) draw.

    The image is shrunk by ``factor`` with MATLAB bicubic unless that would
    leave it smaller than ``patch_size + scale`` (then the factor is
    ignored), then ``degrade``d by ``scale``. Both samplers (``tf.data`` and
    numpy, through ``sample_image_patches``) and the fast engine's device
    pool (``vdsr_tf.training.jax_engine``) get their pairs here.

    Args:
        hr_y: uint8 (H, W).
        factor: down-size factor in (0, 1].
        scale: integer scale >= 2.
        patch_size: patch side P.

    Returns:
        ``(x, y)`` float32 (H', W') as ``degrade`` returns them, or None when
        the (shrunk, modcropped) image is smaller than P.
    """
    if factor != 1.0 and min(hr_y.shape) * factor >= patch_size + scale:
        hr_y = imresize(hr_y, scale=factor)
    h, w = hr_y.shape[0] - hr_y.shape[0] % scale, hr_y.shape[1] - hr_y.shape[1] % scale
    if h < patch_size or w < patch_size:
        return None
    return degrade(hr_y, scale)


def sample_image_patches(hr_y, seed, patch_size, scales, downsize, augment, count):
    """Aligned random patch pairs from one HR Y plane.

    Steps: draw a down-size factor from ``downsize`` and a scale from
    ``scales``; ``degraded_pair``; cut ``count`` patches at uniform random
    positions, the same window in input and target; apply one random
    flip/rotation per pair.

    Args:
        hr_y: uint8 (H, W).
        seed: int; the same seed gives the same patches.
        patch_size: patch side P.
        scales: sequence of integer scales.
        downsize: sequence of factors in (0, 1].
        augment: apply random flips/rotations.
        count: patches to cut.

    Returns:
        ``(x, y, s)``: float32 (count, P, P, 1) inputs and targets, and int32
        (count,) scales. Zero patches when the image is smaller than P.
    """
    rng = np.random.default_rng(seed)
    factor = float(downsize[rng.integers(len(downsize))])
    scale = int(scales[rng.integers(len(scales))])
    p = patch_size
    pair = degraded_pair(hr_y, factor, scale, p)
    if pair is None:
        empty = np.zeros((0, p, p, 1), np.float32)
        return empty, empty, np.zeros((0,), np.int32)
    x, y = pair
    h, w = x.shape
    tops = rng.integers(0, h - p + 1, size=count)
    lefts = rng.integers(0, w - p + 1, size=count)
    ks = rng.integers(0, 8, size=count) if augment else np.zeros(count, int)
    xs = np.empty((count, p, p, 1), np.float32)
    ys = np.empty((count, p, p, 1), np.float32)
    for i, (t, l, k) in enumerate(zip(tops, lefts, ks)):
        xs[i] = dihedral(x[t : t + p, l : l + p, None], k)
        ys[i] = dihedral(y[t : t + p, l : l + p, None], k)
    return xs, ys, np.full((count,), scale, np.int32)


def degraded_variants(plane, downsize, scales, patch_size):
    """``degraded_pair`` for every (factor, scale) combination of one image.

    Returns:
        A list of ``(x, y)`` pairs, ``x`` float16 and ``y`` uint8 (H', W')
        (``y`` is exactly the HR pixels, ``x`` rounded to float16), in
        ``downsize`` x ``scales`` order, skipping pairs smaller than a patch.
        Used by the fast engine's device pool; a top-level numpy function so
        that worker processes can run it without importing Keras.
    """
    out = []
    for factor in downsize:
        for scale in scales:
            pair = degraded_pair(plane, float(factor), int(scale), patch_size)
            if pair is not None:
                x, y = pair
                out.append((x.astype(np.float16), to_uint8(y * 255.0)))
    return out


def fingerprint(planes):
    """sha256 hex digest of a list of uint8 (H, W) Y planes, in order.

    A folder and the ``.npz`` packed from it give the same digest; resuming
    a run checks it so that a checkpoint is never continued on other data.
    """
    import hashlib

    digest = hashlib.sha256()
    for plane in planes:
        plane = np.ascontiguousarray(plane, np.uint8)
        digest.update(np.asarray(plane.shape, np.int64).tobytes())
        digest.update(plane.tobytes())
    return digest.hexdigest()


def _visit_args(data_config):
    c = data_config
    return dict(
        patch_size=c.patch_size,
        scales=tuple(c.scales),
        downsize=tuple(c.downsize),
        augment=c.augment,
        count=c.patches_per_image,
    )


# -- the TF-free sampler --------------------------------------------------------
class PatchSampler:
    """Batches of training patch pairs in numpy, with no TensorFlow.

    Same semantics as ``make_dataset``: each visit of an image (in a shuffled
    order, reshuffled every pass) yields ``patches_per_image`` pairs, which
    go through a shuffle pool of ``shuffle_buffer`` pairs before batching.

    Args:
        planes: list of uint8 (H, W) HR Y planes (``load_y_planes``).
        data_config: a ``vdsr_tf.config.DataConfig``.
        seed: int seed; the same seed gives the same batches.
    Example:

    ```python
    sampler = vdsr_tf.PatchSampler(load_y_planes(["images/"]), vdsr_tf.DataConfig())
    x, y = next(sampler.batches())  # float32 (64, 41, 41, 1) each, without TensorFlow
    ```
    """

    def __init__(self, planes, data_config, seed=0):
        if not planes:
            raise ValueError("PatchSampler needs at least one image")
        self.planes = planes
        self.config = data_config
        self.seed = seed

    def visits(self):
        """Yields ``(image_index, visit_seed)`` forever: shuffled passes."""
        rng = np.random.default_rng([self.seed, 0])
        while True:
            for i in rng.permutation(len(self.planes)):
                yield int(i), int(rng.integers(2**31))

    def pairs(self):
        """Yields ``(x, y)`` pairs of float32 (P, P, 1) arrays forever."""
        args = _visit_args(self.config)
        rng = np.random.default_rng([self.seed, 1])
        pool_x, pool_y = [], []
        for i, visit_seed in self.visits():
            x, y, _ = sample_image_patches(self.planes[i], visit_seed, **args)
            pool_x.extend(x)
            pool_y.extend(y)
            while len(pool_x) >= self.config.shuffle_buffer:
                j = int(rng.integers(len(pool_x)))
                pool_x[j], pool_x[-1] = pool_x[-1], pool_x[j]
                pool_y[j], pool_y[-1] = pool_y[-1], pool_y[j]
                yield pool_x.pop(), pool_y.pop()

    def batches(self, batch_size=None):
        """Yields ``(x, y)`` float32 batches (B, P, P, 1) forever."""
        batch_size = batch_size or self.config.batch_size
        pairs = self.pairs()
        while True:
            xs, ys = zip(*(next(pairs) for _ in range(batch_size)))
            yield np.stack(xs), np.stack(ys)
