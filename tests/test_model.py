"""The network: architecture, skip connection, serialisation."""

import keras
import numpy as np
import pytest

from vdsr_tf.models.loading import load_model, load_pretrained
from vdsr_tf.models.vdsr import VDSR, build_vdsr, flops_per_pixel


def test_default_parameter_count():
    # 9*64+64 + 18*(9*64*64+64) + 9*64+1, the paper's network with biases.
    assert build_vdsr().count_params() == 665_921


def test_architecture():
    model = build_vdsr()
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 20
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert [c.filters for c in convs] == [64] * 19 + [1]
    assert all(c.activation is keras.activations.relu for c in convs[:-1])
    assert convs[-1].activation is keras.activations.linear
    assert not any("pool" in l.name for l in model.layers)
    # The model's last operation is the skip add of the input.
    assert isinstance(model.layers[-1], keras.layers.Add)
    assert model.input_shape == (None, None, None, 1)


@pytest.mark.parametrize("shape", [(1, 17, 23, 1), (2, 41, 41, 1)])
def test_zero_residual_gives_identity(shape):
    model = build_vdsr(depth=3, filters=8)
    last = model.get_layer("conv3")
    last.kernel.assign(np.zeros(last.kernel.shape, "float32"))
    last.bias.assign(np.zeros(last.bias.shape, "float32"))
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(model(x)), x)


def test_non_residual_variant_has_no_skip():
    model = build_vdsr(depth=3, filters=8, residual=False)
    assert not any(isinstance(l, keras.layers.Add) for l in model.layers)


def test_weight_decay_is_on_kernels_only():
    model = build_vdsr(depth=3, filters=8, weight_decay=1e-4)
    model(np.zeros((1, 8, 8, 1), "float32"))
    kernels = sum(
        float(np.sum(np.asarray(l.kernel) ** 2))
        for l in model.layers
        if isinstance(l, keras.layers.Conv2D)
    )
    reg = float(sum(np.asarray(v) for v in model.losses))
    np.testing.assert_allclose(reg, 0.5e-4 * kernels, rtol=1e-5)
    assert build_vdsr(depth=3, filters=8, weight_decay=0).losses == []


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(depth=1),
        dict(filters=0),
        dict(weight_decay=-1),
        dict(clip_theta=-0.1),
        dict(clip_mode="sign"),
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        build_vdsr(**kwargs)


def test_save_load_round_trip(tmp_path):
    model = build_vdsr(depth=4, filters=8, clip_theta=0.05, clip_mode="norm")
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="mse")
    x = np.random.default_rng(1).random((2, 12, 12, 1), dtype=np.float32)
    model.fit(x, x, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = load_model(path)
    assert type(loaded) is type(model)
    assert loaded.clip_theta == 0.05 and loaded.clip_mode == "norm"
    assert VDSR.from_config(model.get_config()).clip_mode == "norm"
    assert len([l for l in loaded.layers if isinstance(l, keras.layers.Conv2D)]) == 4
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b))


def test_load_pretrained_from_weights_file(tmp_path):
    model = build_vdsr()
    path = str(tmp_path / "vdsr.weights.h5")
    model.save_weights(path)
    loaded = load_pretrained(path)
    x = np.random.default_rng(2).random((1, 9, 9, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


def test_load_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_pretrained(str(tmp_path / "missing.weights.h5"))
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not an h5 file")
    with pytest.raises(ValueError):
        load_pretrained(str(bad))
    other = tmp_path / "x.txt"
    other.write_text("x")
    with pytest.raises(ValueError):
        load_pretrained(str(other))


def test_flops_per_pixel():
    assert flops_per_pixel() == 2 * (9 * 64 + 18 * 9 * 64 * 64 + 9 * 64)


def test_loss_scale_optimizer_clips_the_true_gradients():
    """Keras users training in mixed_float16 wrap their optimizer in a
    LossScaleOptimizer, so train_step sees gradients multiplied by the loss
    scale; the theta/lr bound must apply to the unscaled ones. With the clip
    binding, one step under a 1024x loss scale equals one plain step (without
    the unscaling, the effective bound would be 1024x tighter)."""
    from vdsr_tf.models.losses import PatchSumMSE

    rng = np.random.default_rng(0)
    x = rng.random((4, 16, 16, 1)).astype(np.float32)
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1).astype(np.float32)
    weights, fractions = [], []
    for scaled in (False, True):
        keras.utils.set_random_seed(0)
        model = build_vdsr(depth=3, filters=8, clip_theta=1e-4)
        optimizer = keras.optimizers.SGD(0.1)
        if scaled:
            optimizer = keras.optimizers.LossScaleOptimizer(
                optimizer, initial_scale=1024.0, dynamic_growth_steps=10**6
            )
        model.compile(optimizer=optimizer, loss=PatchSumMSE())
        logs = model.train_on_batch(x, y, return_dict=True)
        fractions.append(logs["clip_fraction"])
        weights.append(model.get_weights())
    assert min(fractions) > 0.1, fractions  # the clip binds
    assert fractions[0] == pytest.approx(fractions[1], abs=0.02)
    for plain, scaled in zip(*weights):
        np.testing.assert_allclose(scaled, plain, rtol=1e-4, atol=1e-6)
