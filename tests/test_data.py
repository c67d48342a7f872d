"""The training data: degradation, patch sampling, tf.data and numpy samplers."""

import os

import numpy as np
import pytest

from vdsr_tf.config import DataConfig
from vdsr_tf.data import degradation, pipeline
from vdsr_tf.io import images as imageio
from vdsr_tf.ops import dihedral
from vdsr_tf.ops.imresize import imresize, max_taps

SAMPLES_HR = os.path.join(imageio.sample_images_dir(), "HR")
CFG = DataConfig(patch_size=24, batch_size=8, patches_per_image=4, shuffle_buffer=16)


def _planes():
    return degradation.load_y_planes(SAMPLES_HR)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_degrade_is_matlab_down_then_up(scale):
    hr = _planes()[0][:50, :61]
    x, y = degradation.degrade(hr, scale)
    h, w = 50 - 50 % scale, 61 - 61 % scale
    assert x.shape == y.shape == (h, w)
    assert x.dtype == y.dtype == np.float32
    lr = imresize(hr[:h, :w], scale=1 / scale)
    np.testing.assert_array_equal(x, imresize(lr.astype(np.float32) / 255, output_shape=(h, w)))
    np.testing.assert_array_equal(y, hr[:h, :w] / np.float32(255))


def test_sample_image_patches_shapes_ranges_and_seed():
    plane = _planes()[1]
    args = dict(patch_size=24, scales=(2, 3, 4), downsize=(1.0, 0.7, 0.5), augment=True, count=5)
    x, y, s = degradation.sample_image_patches(plane, 7, **args)
    assert x.shape == y.shape == (5, 24, 24, 1)
    assert x.dtype == y.dtype == np.float32
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert -0.1 < x.min() and x.max() < 1.1
    assert set(s.tolist()) <= {2, 3, 4} and len(set(s.tolist())) == 1
    x2, y2, _ = degradation.sample_image_patches(plane, 7, **args)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _, _ = degradation.sample_image_patches(plane, 8, **args)
    assert not np.array_equal(x, x3)
    # The input is a blurred version of the target: close, but not equal.
    assert 0 < np.abs(x - y).mean() < 0.1


def test_small_images_yield_no_patches():
    x, y, s = degradation.sample_image_patches(
        np.zeros((10, 10), np.uint8), 0, 24, (2,), (1.0,), True, 3
    )
    assert x.shape == (0, 24, 24, 1) and s.shape == (0,)


def test_dihedral_covers_eight_distinct_transforms():
    a = np.arange(9, dtype=np.float32).reshape(3, 3, 1)
    outs = {dihedral.dihedral(a, k).tobytes() for k in range(8)}
    assert len(outs) == 8
    rect = np.arange(6, dtype=np.float32).reshape(2, 3, 1)
    for k in range(8):
        np.testing.assert_array_equal(dihedral.undo_dihedral(dihedral.dihedral(rect, k), k), rect)


@pytest.mark.slow(reason="builds and draws from the tf.data pipeline several times")
def test_tf_dataset_shapes_ranges_and_determinism():
    ds = pipeline.make_dataset(SAMPLES_HR, CFG, seed=3)
    batches = [(x.numpy(), y.numpy()) for x, y in ds.take(3)]
    for x, y in batches:
        assert x.shape == y.shape == (8, 24, 24, 1)
        assert x.dtype == np.float32
        assert 0.0 <= y.min() and y.max() <= 1.0
    again = [
        (x.numpy(), y.numpy()) for x, y in pipeline.make_dataset(SAMPLES_HR, CFG, seed=3).take(3)
    ]
    for (x1, y1), (x2, y2) in zip(batches, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    other = next(iter(pipeline.make_dataset(SAMPLES_HR, CFG, seed=4)))[0].numpy()
    assert not np.array_equal(batches[0][0], other)


@pytest.mark.slow(reason="draws many batches from tf.data")
def test_tf_dataset_draws_every_scale():
    ds = pipeline.make_dataset(SAMPLES_HR, CFG, seed=0, with_scale=True)
    seen = set()
    for _, _, s in ds.take(12):
        seen.update(s.numpy().tolist())
    assert seen == {2, 3, 4}


def test_tf_degradation_is_bit_identical_to_numpy():
    """The tf.data pipeline's TF-op degradation equals ``degraded_pair`` bit for
    bit, for every factor and scale and for images too small to shrink or to
    use, traced in a graph (as tf.data runs it)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, shape).astype(np.uint8)
        for shape in ((60, 75), (41, 50), (100, 43), (30, 30))
    ]
    spec = [tf.TensorSpec([None, None], tf.uint8)]
    for factor in (1.0, 0.7, 0.5):
        for scale in (2, 3, 4):
            fn = tf.function(
                lambda im, f=factor, s=scale: pipeline._tf_degraded_pair(im, f, s, 24),
                input_signature=spec,
            )
            for hr in images:
                want = degradation.degraded_pair(hr, factor, scale, 24)
                x, y = (t.numpy() for t in fn(hr))
                if want is None:
                    assert x.size == 0 and y.size == 0
                else:
                    np.testing.assert_array_equal(x, want[0])
                    np.testing.assert_array_equal(y, want[1])


def _matlab_lr_files(set_dir):
    """(HR path, scale, LR path) of a set folder, where the LR file exists."""
    out = []
    for hr in imageio.list_images(os.path.join(set_dir, "HR")):
        for s in (2, 3, 4):
            lr = os.path.join(set_dir, "LR_bicubic", f"X{s}", os.path.basename(hr))
            if os.path.exists(lr):
                out.append((hr, s, lr))
    return out


def _tf_shrink_matches(files):
    """The TF-op resize (weights from ``imresize.band_weights``) reproduces
    each MATLAB LR file exactly."""
    import tensorflow as tf

    from vdsr_tf.ops.imresize import modcrop

    taps = {s: max_taps(1.0 / s) for s in (2, 3, 4)}
    shrinks = {
        s: tf.function(
            lambda x, *tables: pipeline._tf_resize(x, tables),
            input_signature=[
                tf.TensorSpec([None, None], tf.uint8),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None, taps[s]], tf.float64),
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None, taps[s]], tf.float64),
            ],
        )
        for s in (2, 3, 4)
    }
    for hr_path, s, lr_path in files:
        hr = modcrop(imageio.read_image(hr_path, alpha=False), s)
        hr = hr if hr.ndim == 3 else hr[..., None]
        want = imageio.read_image(lr_path, alpha=False)
        tables = pipeline._resize_tables(
            hr.shape[:2], (hr.shape[0] // s, hr.shape[1] // s), 1.0 / s
        )
        got = np.stack(
            [
                shrinks[s](np.ascontiguousarray(hr[..., c]), *tables).numpy()
                for c in range(hr.shape[-1])
            ],
            axis=-1,
        )
        np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=f"{lr_path}")


def test_tf_resize_reproduces_the_bundled_matlab_lr_files():
    """Always runs: the bundled sample set's MATLAB-made LR files (x2, x3, x4)."""
    files = _matlab_lr_files(imageio.sample_images_dir())
    assert len(files) == 6
    _tf_shrink_matches(files)


# 357 files of Set5, Set14 and B100 (RGB: 3 planes each): about 20 s.
def test_tf_resize_reproduces_every_matlab_lr_file(datasets_dir):
    files = [
        f
        for name in ("Set5", "Set14", "B100")
        for f in _matlab_lr_files(os.path.join(datasets_dir, name))
    ]
    assert len(files) == 3 * (5 + 14 + 100)
    _tf_shrink_matches(files)


def test_tf_visit_patches_are_aligned_windows_of_the_degraded_pair():
    """Each patch pair of a TF visit is the same window of the numpy
    degraded pair, under one of the 8 flips/rotations."""
    import tensorflow as tf
    from numpy.lib.stride_tricks import sliding_window_view

    plane = _planes()[0][:70, :90]
    p = 16
    for scale in (2, 3):
        x, y, s = (
            t.numpy()
            for t in pipeline._tf_sample_visit(
                tf.constant(plane), tf.constant(11, tf.int64), p, (scale,), (1.0,), True, 12
            )
        )
        assert x.shape == (12, p, p, 1) and set(s.tolist()) == {scale}
        want_x, want_y = degradation.degraded_pair(plane, 1.0, scale, p)
        windows_x = sliding_window_view(want_x, (p, p))
        windows_y = sliding_window_view(want_y, (p, p))
        turns = set()
        for px, py in zip(x, y):
            hits = [
                (k, pos)
                for k in range(8)
                for pos in zip(
                    *np.nonzero(
                        np.all(windows_x == dihedral.undo_dihedral(px, k)[..., 0], axis=(-2, -1))
                    )
                )
            ]
            assert hits, "patch not found in the degraded image"
            k, (r, c) = hits[0]
            np.testing.assert_array_equal(dihedral.undo_dihedral(py, k)[..., 0], windows_y[r, c])
            turns.add(k)
        assert len(turns) >= 3  # the flips/rotations are drawn


def test_numpy_sampler_shapes_and_determinism():
    planes = _planes()
    a = degradation.PatchSampler(planes, CFG, seed=5).batches()
    b = degradation.PatchSampler(planes, CFG, seed=5).batches()
    for _ in range(3):
        (xa, ya), (xb, yb) = next(a), next(b)
        assert xa.shape == ya.shape == (8, 24, 24, 1)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_numpy_sampler_pairs_are_sample_image_patches_outputs():
    """Every pair the TF-free sampler yields is one that the shared per-image
    function produces, i.e. the two samplers have the same semantics."""
    planes = _planes()
    sampler = degradation.PatchSampler(planes, CFG, seed=1)
    x, y = next(sampler.batches())
    # Every pair must come from one of the first visits' shared-function output.
    args = degradation._visit_args(CFG)
    cand = []
    for (i, seed), _ in zip(degradation.PatchSampler(planes, CFG, seed=1).visits(), range(12)):
        xs, ys, _ = degradation.sample_image_patches(planes[i], seed, **args)
        cand.extend(zip(xs, ys))
    keys = {(a.tobytes(), b.tobytes()) for a, b in cand}
    assert all((a.tobytes(), b.tobytes()) in keys for a, b in zip(x, y))


@pytest.mark.slow(reason="packs the 291 training images")
def test_pack_and_load_round_trip(tmp_path):
    path = str(tmp_path / "pack.npz")
    assert degradation.pack_y_planes(SAMPLES_HR, path) == 2
    loaded = degradation.load_y_planes(path)
    for a, b in zip(loaded, _planes()):
        np.testing.assert_array_equal(a, b)
    batch = next(iter(pipeline.make_dataset(path, CFG, seed=0)))
    assert batch[0].shape == (8, 24, 24, 1)


def test_missing_or_empty_sources(tmp_path):
    with pytest.raises(FileNotFoundError):
        imageio.list_images(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError):
        imageio.list_images(str(tmp_path))


def test_to_y_modes():
    rgb = np.full((2, 2, 3), 255, np.uint8)
    assert imageio.to_y(rgb)[0, 0] == 235
    assert imageio.to_y(np.full((2, 2, 4), 255, np.uint8))[0, 0] == 235
    grey = np.full((2, 2), 7, np.uint8)
    assert imageio.to_y(grey)[0, 0] == 7
    with pytest.raises(ValueError):
        imageio.to_y(np.zeros((2, 2), np.float32))


@pytest.mark.slow(reason="prepares a TFDS set")
def test_tfds_source_offline(tmp_path):
    """A TFDS dataset prepared locally is read by name, with no network."""
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    class VdsrTestImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict({"hr": tfds.features.Image()})
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for path in imageio.list_images(SAMPLES_HR):
                yield os.path.basename(path), {"hr": path}

    data_dir = str(tmp_path / "tfds")
    VdsrTestImages(data_dir=data_dir).download_and_prepare()
    ds = pipeline.make_dataset("tfds:vdsr_test_images", CFG, seed=0, data_dir=data_dir)
    x, y = next(iter(ds))
    assert x.shape == (8, 24, 24, 1) and y.dtype == tf.float32
