"""Typed config: presets, overrides, JSON, validation."""

import dataclasses

import pytest

from vdsr_tf import config as C


@pytest.mark.parametrize("name", sorted(C.PRESETS))
def test_presets_are_valid_and_round_trip(name):
    cfg = C.get_preset(name)
    C.validate(cfg)
    assert C.from_json(C.to_json(cfg)) == cfg


def test_paper_preset_is_the_paper_recipe():
    cfg = C.get_preset("paper")
    assert cfg.optim.optimizer == "sgd"
    assert cfg.optim.learning_rate == 0.1
    assert cfg.optim.momentum == 0.9
    assert cfg.optim.schedule == "step"
    assert len(cfg.optim.step_boundaries) == 3 and cfg.optim.step_factor == 10.0
    assert cfg.model.weight_decay == 1e-4 and cfg.model.clip_theta == 1e-4
    assert cfg.model.clip_mode == "value" and cfg.optim.warmup_fraction == 0.0
    assert (cfg.model.depth, cfg.model.filters) == (20, 64)
    assert cfg.data.scales == (2, 3, 4) and cfg.data.patch_size == 41


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ValueError, match="paper"):
        C.get_preset("nope")


def test_override_converts_strings():
    cfg = C.override(
        C.get_preset("paper"),
        **{
            "optim.learning_rate": "0.01",
            "data.scales": "2,4",
            "steps": "10",
            "model.zero_init_residual": "true",
            "model.clip_theta": "none",
        },
    )
    assert cfg.optim.learning_rate == 0.01
    assert cfg.data.scales == (2, 4)
    assert cfg.steps == 10
    assert cfg.model.zero_init_residual is True
    assert cfg.model.clip_theta is None
    assert dataclasses.is_dataclass(cfg)


@pytest.mark.parametrize("key", ["optim.lr", "nope", "model.depth.x", "batch_size"])
def test_unknown_keys_raise_with_valid_keys(key):
    with pytest.raises(ValueError, match="valid|group"):
        C.override(C.get_preset("paper"), **{key: 1})


def test_from_dict_rejects_unknown_nested_key():
    with pytest.raises(ValueError, match="valid keys"):
        C.from_dict({"data": {"patchsize": 3}})


@pytest.mark.parametrize(
    "key,value",
    [
        ("data.scales", "1,2"),
        ("optim.optimizer", "rmsprop"),
        ("steps", "0"),
        ("data.downsize", "1.5"),
        ("optim.clipvalue", "0"),
        ("optim.clipnorm", "-1"),
    ],
)
def test_out_of_range_values_raise(key, value):
    with pytest.raises(ValueError):
        C.override(C.get_preset("paper"), **{key: value})


def test_clip_mode_round_trips_through_the_config_json_into_the_model():
    from vdsr_tf.training.trainer import build_model

    cfg = C.override(
        C.get_preset("paper"),
        **{"model.clip_mode": "norm", "model.depth": "3", "model.filters": "4"},
    )
    again = C.from_json(C.to_json(cfg))
    assert again.model.clip_mode == "norm" and again == cfg
    assert build_model(again).clip_mode == "norm"
    with pytest.raises(ValueError, match="model.clip_mode must be value or norm"):
        C.override(cfg, **{"model.clip_mode": "sign"})


def test_a_checkpoint_config_written_before_clip_mode_still_matches():
    # Configs saved before a field existed are read with its default.
    saved = C.to_dict(C.get_preset("release"))
    del saved["model"]["clip_mode"]
    assert C.from_dict(saved) == C.get_preset("release")


def test_clipnorm_and_clipvalue_together_are_refused_by_the_config():
    # Keras optimizers take one of them; the config says so before training starts.
    with pytest.raises(ValueError, match="optim.clipnorm and optim.clipvalue cannot both"):
        C.override(C.get_preset("paper"), **{"optim.clipnorm": "1", "optim.clipvalue": "0.1"})


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        C.get_preset("paper").steps = 3
