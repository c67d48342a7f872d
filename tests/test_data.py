"""The training data: degradation, patch sampling, tf.data and numpy samplers."""

import os

import numpy as np
import pytest

from vdsr_tf import data, dihedral, imageio
from vdsr_tf.config import DataConfig
from vdsr_tf.imresize import imresize

SAMPLES_HR = os.path.join(imageio.sample_images_dir(), "HR")
CFG = DataConfig(patch_size=24, batch_size=8, patches_per_image=4, shuffle_buffer=16)


def _planes():
    return data.load_y_planes(SAMPLES_HR)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_degrade_is_matlab_down_then_up(scale):
    hr = _planes()[0][:50, :61]
    x, y = data.degrade(hr, scale)
    h, w = 50 - 50 % scale, 61 - 61 % scale
    assert x.shape == y.shape == (h, w)
    assert x.dtype == y.dtype == np.float32
    lr = imresize(hr[:h, :w], scale=1 / scale)
    np.testing.assert_array_equal(x, imresize(lr.astype(np.float32) / 255, output_shape=(h, w)))
    np.testing.assert_array_equal(y, hr[:h, :w] / np.float32(255))


def test_sample_image_patches_shapes_ranges_and_seed():
    plane = _planes()[1]
    args = dict(patch_size=24, scales=(2, 3, 4), downsize=(1.0, 0.7, 0.5), augment=True, count=5)
    x, y, s = data.sample_image_patches(plane, 7, **args)
    assert x.shape == y.shape == (5, 24, 24, 1)
    assert x.dtype == y.dtype == np.float32
    assert 0.0 <= y.min() and y.max() <= 1.0
    assert -0.1 < x.min() and x.max() < 1.1
    assert set(s.tolist()) <= {2, 3, 4} and len(set(s.tolist())) == 1
    x2, y2, _ = data.sample_image_patches(plane, 7, **args)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _, _ = data.sample_image_patches(plane, 8, **args)
    assert not np.array_equal(x, x3)
    # The input is a blurred version of the target: close, but not equal.
    assert 0 < np.abs(x - y).mean() < 0.1


def test_small_images_yield_no_patches():
    x, y, s = data.sample_image_patches(np.zeros((10, 10), np.uint8), 0, 24, (2,), (1.0,), True, 3)
    assert x.shape == (0, 24, 24, 1) and s.shape == (0,)


def test_dihedral_covers_eight_distinct_transforms():
    a = np.arange(9, dtype=np.float32).reshape(3, 3, 1)
    outs = {dihedral.dihedral(a, k).tobytes() for k in range(8)}
    assert len(outs) == 8
    rect = np.arange(6, dtype=np.float32).reshape(2, 3, 1)
    for k in range(8):
        np.testing.assert_array_equal(dihedral.undo_dihedral(dihedral.dihedral(rect, k), k), rect)


def test_tf_dataset_shapes_ranges_and_determinism():
    ds = data.make_dataset(SAMPLES_HR, CFG, seed=3)
    batches = [(x.numpy(), y.numpy()) for x, y in ds.take(3)]
    for x, y in batches:
        assert x.shape == y.shape == (8, 24, 24, 1)
        assert x.dtype == np.float32
        assert 0.0 <= y.min() and y.max() <= 1.0
    again = [(x.numpy(), y.numpy()) for x, y in data.make_dataset(SAMPLES_HR, CFG, seed=3).take(3)]
    for (x1, y1), (x2, y2) in zip(batches, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    other = next(iter(data.make_dataset(SAMPLES_HR, CFG, seed=4)))[0].numpy()
    assert not np.array_equal(batches[0][0], other)


def test_tf_dataset_draws_every_scale():
    ds = data.make_dataset(SAMPLES_HR, CFG, seed=0, with_scale=True)
    seen = set()
    for _, _, s in ds.take(12):
        seen.update(s.numpy().tolist())
    assert seen == {2, 3, 4}


def test_numpy_sampler_shapes_and_determinism():
    planes = _planes()
    a = data.PatchSampler(planes, CFG, seed=5).batches()
    b = data.PatchSampler(planes, CFG, seed=5).batches()
    for _ in range(3):
        (xa, ya), (xb, yb) = next(a), next(b)
        assert xa.shape == ya.shape == (8, 24, 24, 1)
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_numpy_sampler_pairs_are_sample_image_patches_outputs():
    """Every pair the TF-free sampler yields is one that the shared per-image
    function produces, i.e. the two samplers have the same semantics."""
    planes = _planes()
    sampler = data.PatchSampler(planes, CFG, seed=1)
    x, y = next(sampler.batches())
    # Every pair must come from one of the first visits' shared-function output.
    args = data._visit_args(CFG)
    cand = []
    for (i, seed), _ in zip(data.PatchSampler(planes, CFG, seed=1).visits(), range(12)):
        xs, ys, _ = data.sample_image_patches(planes[i], seed, **args)
        cand.extend(zip(xs, ys))
    keys = {(a.tobytes(), b.tobytes()) for a, b in cand}
    assert all((a.tobytes(), b.tobytes()) in keys for a, b in zip(x, y))


def test_pack_and_load_round_trip(tmp_path):
    path = str(tmp_path / "pack.npz")
    assert data.pack_y_planes(SAMPLES_HR, path) == 2
    loaded = data.load_y_planes(path)
    for a, b in zip(loaded, _planes()):
        np.testing.assert_array_equal(a, b)
    batch = next(iter(data.make_dataset(path, CFG, seed=0)))
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


def test_tfds_source_offline(tmp_path):
    """A TFDS dataset prepared locally is read by name, with no network."""
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    class VdsrTestImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict({"hr": tfds.features.Image()}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for path in imageio.list_images(SAMPLES_HR):
                yield os.path.basename(path), {"hr": path}

    data_dir = str(tmp_path / "tfds")
    VdsrTestImages(data_dir=data_dir).download_and_prepare()
    ds = data.make_dataset("tfds:vdsr_test_images", CFG, seed=0, data_dir=data_dir)
    x, y = next(iter(ds))
    assert x.shape == (8, 24, 24, 1) and y.dtype == tf.float32
