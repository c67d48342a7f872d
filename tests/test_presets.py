"""Presets and handles: one loader under VDSR.from_preset, Upscaler.from_preset
and every command's --weights (vdsr_tf.io.presets, vdsr_tf.models.loading).

The hub handles run their clients' own code with no network: huggingface_hub
in offline mode over a cache folder laid out as the library lays it out
(``models--owner--name/{blobs,refs,snapshots}``, its "Manage the cache"
guide), and kagglehub over its cache folder
(``models/owner/model/framework/variation/version`` and the ``.complete``
marker beside it), for a versioned handle, which it serves from the cache.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from vdsr_tf.inference.upscaler import Upscaler
from vdsr_tf.io import presets
from vdsr_tf.io.bundled import bundled_weights_info
from vdsr_tf.models.loading import load_pretrained
from vdsr_tf.models.vdsr import VDSR, build_args, build_vdsr, save_to_preset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(7)
IMAGE = (RNG.random((20, 24, 3)) * 255).astype(np.uint8)
PLANE = RNG.random((1, 15, 17, 1), dtype=np.float32)
TINY = dict(depth=3, filters=8)


def _tiny(**kwargs):
    model = build_vdsr(**{**TINY, **kwargs})
    # Random (not zero) last layer, so a wrong weight shows in the output.
    model.set_weights([w + RNG.normal(0, 0.05, w.shape) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """A depth-3, 8-filter preset folder, with metadata and scores."""
    folder = tmp_path_factory.mktemp("presets") / "tiny"
    model = _tiny()
    save_to_preset(
        model,
        folder,
        metadata={
            "recipe": "none: random weights",
            "patches_seen": 0,
            "scores": {"Set5": {"x2": {"psnr": 30.5, "ssim": 0.9}}},
        },
    )
    return str(folder), model


def _same_outputs(a, b, plane=PLANE):
    np.testing.assert_array_equal(np.asarray(a(plane)), np.asarray(b(plane)))


# -- the format ---------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        dict(depth=5, filters=16, clip_theta=0.01, clip_mode="norm"),
        dict(weight_decay=0.0, residual=False, zero_init_residual=True, clip_theta=None),
        dict(kernel_initializer="glorot_uniform", compute_dtype="mixed_bfloat16", name="mine"),
        dict(kernel_initializer=keras.initializers.HeNormal(seed=3)),
    ],
)
def test_build_args_round_trip_every_argument(kwargs):
    args = build_args(build_vdsr(**kwargs))
    assert build_args(build_vdsr(**args)) == args
    expected = {
        "depth": 20,
        "filters": 64,
        "clip_theta": 1e-4,
        "clip_mode": "value",
        "weight_decay": 1e-4,
        "residual": True,
        "zero_init_residual": False,
        "compute_dtype": None,
        "name": "vdsr",
    }
    expected.update({k: v for k, v in kwargs.items() if k != "kernel_initializer"})
    assert {k: args[k] for k in expected} == expected
    json.dumps(args)  # config.json can hold it
    if isinstance(kwargs.get("kernel_initializer"), keras.initializers.HeNormal):
        assert args["kernel_initializer"]["config"]["seed"] == 3
    else:
        assert args["kernel_initializer"] == kwargs.get("kernel_initializer", "he_normal")


def test_saved_preset_has_the_format_and_loads_back_equal(tiny_preset):
    folder, model = tiny_preset
    assert sorted(os.listdir(folder)) == [
        "README.md",
        "config.json",
        "metadata.json",
        "model.weights.h5",
    ]
    config = json.load(open(os.path.join(folder, "config.json")))
    assert config["class_name"] == "VDSR" and config["registered_name"] == "vdsr_tf>VDSR"
    assert config["config"] == build_args(model)
    meta = json.load(open(os.path.join(folder, "metadata.json")))
    assert meta["sha256"] == presets.file_sha256(os.path.join(folder, "model.weights.h5"))
    assert meta["architecture"] == {"depth": 3, "filters": 8, "residual": True}
    assert meta["parameter_count"] == model.count_params()
    assert meta["recipe"] == "none: random weights" and meta["format"] == presets.FORMAT
    card = open(os.path.join(folder, "README.md")).read()
    assert card == presets.model_card(meta, config["config"])
    assert "| Set5 | 30.50 / 0.9000 |" in card and meta["sha256"] in card
    loaded = VDSR.from_preset(folder)
    assert loaded.clip_theta == model.clip_theta and build_args(loaded) == build_args(model)
    _same_outputs(loaded, model)


def test_keras_loads_a_preset_folder_itself(tiny_preset):
    """config.json is Keras's serialized form: keras.saving.load_model reads
    the folder (as it reads hf:// repos) once VDSR is registered."""
    folder, model = tiny_preset
    loaded = keras.saving.load_model(folder)
    assert type(loaded) is VDSR
    _same_outputs(loaded, model)


def test_bundled_weights_are_a_preset():
    source = presets.resolve("bundled")
    assert source.kind == "preset" and source.bundled and source.path == presets.BUNDLED
    assert source.metadata == bundled_weights_info()
    assert source.config["depth"] == 20 and source.config["filters"] == 64
    for precision in ("fp32", "int8"):
        assert source.tflite(precision) == os.path.join(
            presets.BUNDLED, source.metadata["tflite"][precision]["file"]
        )
    card = open(os.path.join(presets.BUNDLED, "README.md")).read()
    assert card == presets.model_card(source.metadata, source.config)  # written from it
    assert "| Set5 | 37.46 / 0.9584 [37.53] |" in card
    assert presets.is_bundled(None) and presets.is_bundled("bundled")
    assert presets.is_bundled(os.path.join(presets.BUNDLED, "model.weights.h5"))
    assert not presets.is_bundled("hf://owner/bundled")


@pytest.mark.parametrize("backend", ["keras", "litert"])
def test_upscaler_from_preset_bundled_equals_upscaler(backend):
    default = Upscaler(precision="fp32", backend=backend)
    for handle in ("bundled", presets.BUNDLED):
        other = Upscaler.from_preset(handle, precision="fp32", backend=backend)
        assert other.describe() == default.describe()
        np.testing.assert_array_equal(
            other.upscale(IMAGE, scale=2), default.upscale(IMAGE, scale=2)
        )


def test_upscaler_from_preset_bundled_takes_the_default_path(monkeypatch):
    """precision="auto" (the default): "bundled" is the bundled weights, so the
    same measured choice, not the exact path other presets get."""
    from vdsr_tf.inference import engines

    picked = ("litert-int8", "the fastest here (test)")
    monkeypatch.setattr(
        engines, "resolve_auto", lambda w, m, b, t: picked if w is None and m is None else None
    )
    monkeypatch.setattr("vdsr_tf.inference.upscaler.resolve_auto", engines.resolve_auto)
    a, b = Upscaler(), Upscaler.from_preset("bundled")
    assert (
        (a.backend, a.precision, a.why)
        == (b.backend, b.precision, b.why)
        == ("litert", "int8", picked[1])
    )
    np.testing.assert_array_equal(a.upscale(IMAGE, scale=2), b.upscale(IMAGE, scale=2))


def test_from_preset_bundled_is_load_pretrained():
    _same_outputs(VDSR.from_preset("bundled"), load_pretrained())


# -- each handle kind ---------------------------------------------------------
def test_every_local_handle_kind_loads_the_same_network(tiny_preset, tmp_path, monkeypatch):
    folder, model = tiny_preset
    keras_file = str(tmp_path / "tiny.keras")
    model.save(keras_file)
    bare = str(tmp_path / "bare.weights.h5")
    build_vdsr().save_weights(bare)  # no config beside: the default 20 x 64
    monkeypatch.setattr(presets, "_REGISTRY", dict(presets._REGISTRY))  # no leak
    presets.register_preset("tiny-test", folder)
    for handle in (folder, os.path.join(folder, "model.weights.h5"), keras_file, "tiny-test"):
        _same_outputs(load_pretrained(handle), model)
        up = Upscaler(weights=handle, precision="fp32")
        reference = Upscaler(model=model, precision="fp32")
        np.testing.assert_array_equal(up.upscale(IMAGE, scale=2), reference.upscale(IMAGE, scale=2))
    assert len(load_pretrained(bare).layers) == 22
    with pytest.raises(ValueError, match="preset name"):
        presets.register_preset("a/b", folder)


def test_keras_file_round_trip_keeps_the_clip_in_train_step(tmp_path):
    """The .keras file keeps train_step's theta/lr clip: after loading, one
    SGD step (no momentum) moves no weight by more than theta."""
    model = build_vdsr(**TINY, clip_theta=1e-3, clip_mode="value", weight_decay=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = load_pretrained(path)
    assert (loaded.clip_theta, loaded.clip_mode) == (1e-3, "value")
    before = [np.array(w) for w in loaded.get_weights()]
    x = np.random.default_rng(0).random((4, 12, 12, 1), dtype=np.float32)
    history = loaded.fit(x, x + 5, batch_size=4, epochs=1, verbose=0)  # large gradients
    assert history.history["clip_fraction"][0] > 0.5  # the clip acted
    moved = max(np.abs(np.array(a) - b).max() for a, b in zip(loaded.get_weights(), before))
    assert 0.5e-3 < moved <= 1e-3 + 1e-6  # float32 rounding of weights near 1


# -- the bad cases --------------------------------------------------------------
def _copy(folder, tmp_path):
    return shutil.copytree(folder, tmp_path / "copy")


def test_missing_file_is_named(tiny_preset, tmp_path):
    copy = _copy(tiny_preset[0], tmp_path)
    os.remove(copy / "model.weights.h5")
    with pytest.raises(presets.PresetError, match="has no model.weights.h5") as e:
        load_pretrained(str(copy))
    assert "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError, match="preset names: .*bundled"):
        load_pretrained("no-such-preset")


def test_sha256_mismatch_is_refused(tiny_preset, tmp_path):
    copy = _copy(tiny_preset[0], tmp_path)
    build_vdsr(**TINY).save_weights(str(copy / "model.weights.h5"))  # other weights
    with pytest.raises(ValueError, match="does not match the sha256 in metadata.json") as e:
        Upscaler.from_preset(str(copy))
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="sha256"):
        load_pretrained(str(copy / "model.weights.h5"))


def test_config_of_another_model_is_refused(tiny_preset, tmp_path):
    copy = _copy(tiny_preset[0], tmp_path)
    path = copy / "config.json"
    config = json.loads(path.read_text())
    other = dict(
        config, module="keras_hub.src.models.bert.bert_backbone", class_name="BertBackbone"
    )
    path.write_text(json.dumps(other))
    with pytest.raises(presets.PresetError, match="BertBackbone, not vdsr-tf's VDSR"):
        load_pretrained(str(copy))
    deeper = dict(config, config=dict(config["config"], depth=5))
    path.write_text(json.dumps(deeper))
    with pytest.raises(ValueError, match="does not hold weights of depth 5, 8 filters"):
        load_pretrained(str(copy))
    unknown = dict(config, config=dict(config["config"], heads=4))
    path.write_text(json.dumps(unknown))
    with pytest.raises(presets.PresetError, match="an argument build_vdsr does not take"):
        load_pretrained(str(copy))
    path.write_text("{not json")
    with pytest.raises(presets.PresetError, match="cannot be read as JSON"):
        load_pretrained(str(copy))


@pytest.mark.parametrize(
    "handle,error,message",
    [
        ("s3x://bucket/x", presets.PresetError, "unknown scheme s3x://"),
        ("hf://just-a-name", presets.PresetError, "hf://owner/name"),
        ("kaggle://a/b", presets.PresetError, "kaggle://owner/model/framework/variation"),
    ],
)
def test_bad_handles(handle, error, message):
    with pytest.raises(error, match=message):
        presets.resolve(handle)


@pytest.mark.parametrize("scheme,module", [("hf", "huggingface_hub"), ("kaggle", "kagglehub")])
def test_missing_hub_extra_names_what_to_install(monkeypatch, scheme, module):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(ImportError, match=rf"need {module}: pip install 'vdsr-tf\[hub\]'"):
        Upscaler.from_preset(f"{scheme}://owner/model/keras/tiny/1")


# -- the hubs, offline, through their own clients -------------------------------
def _blob(path):
    """The name the Hub gives a file's blob: git's sha1 of small files, the
    sha256 of LFS ones (the weights)."""
    data = open(path, "rb").read()
    if path.endswith(".h5"):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def hf_cache(root, repo, folder, commit="0123456789abcdef0123456789abcdef01234567"):
    """Lays ``folder``'s files out as huggingface_hub caches a download of
    ``repo`` at ``commit`` on ``main``: blobs, a snapshot of symlinks to
    them, and the ref."""
    storage = root / ("models--" + repo.replace("/", "--"))
    snapshot = storage / "snapshots" / commit
    for sub in ("blobs", "refs"):
        (storage / sub).mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    for name in sorted(os.listdir(folder)):
        blob = storage / "blobs" / _blob(os.path.join(folder, name))
        shutil.copyfile(os.path.join(folder, name), blob)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)
    (storage / "refs" / "main").write_text(commit)
    return snapshot


def kaggle_cache(root, handle, folder):
    """Lays ``folder``'s files out as kagglehub caches the versioned model
    ``handle`` (owner/model/framework/variation/version)."""
    target = root / "models" / handle
    shutil.copytree(folder, target)
    (target.parent / f"{target.name}.complete").write_text("")
    return target


@pytest.fixture
def offline_hubs(tmp_path, tiny_preset, monkeypatch):
    """The tiny preset in both hubs' caches, both clients offline."""
    constants = pytest.importorskip("huggingface_hub.constants")
    pytest.importorskip("kagglehub")
    hf_root, kaggle_root = tmp_path / "hf", tmp_path / "kaggle"
    hf_cache(hf_root, "alice/vdsr-tiny", tiny_preset[0])
    kaggle_cache(kaggle_root, "alice/vdsr/keras/tiny/1", tiny_preset[0])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(kaggle_root))
    return {
        "HF_HUB_CACHE": str(hf_root),
        "HF_HUB_OFFLINE": "1",
        "KAGGLEHUB_CACHE": str(kaggle_root),
    }


def test_hub_handles_load_through_their_clients_offline(offline_hubs, tiny_preset):
    folder, model = tiny_preset
    reference = Upscaler(model=model, precision="fp32").upscale(IMAGE, scale=3)
    for handle in ("hf://alice/vdsr-tiny", "kaggle://alice/vdsr/keras/tiny/1"):
        source = presets.resolve(handle)
        assert source.kind == "preset" and source.path != folder
        assert source.sha256 == tiny_preset_sha(folder)
        up = Upscaler.from_preset(handle, precision="fp32")
        np.testing.assert_array_equal(up.upscale(IMAGE, scale=3), reference)
    assert "snapshots" in presets.resolve("hf://alice/vdsr-tiny").path
    commit = os.path.basename(presets.resolve("hf://alice/vdsr-tiny").path)
    _same_outputs(load_pretrained(f"hf://alice/vdsr-tiny@{commit}"), model)
    with pytest.raises(
        presets.HubError, match="cannot get hf://alice/other through huggingface_hub"
    ):
        presets.resolve("hf://alice/other")  # not cached, and offline


def tiny_preset_sha(folder):
    return json.load(open(os.path.join(folder, "metadata.json")))["sha256"]


# -- every command's --weights ----------------------------------------------------
def run_cli(module, *args, env=None):
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", f"vdsr_tf.cli.{module}", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def handles(tiny_preset, tmp_path, offline_hubs):
    """Every kind of handle to the tiny network, and the environment that
    makes the hub ones resolve offline in a subprocess."""
    folder, model = tiny_preset
    keras_file = str(tmp_path / "tiny.keras")
    model.save(keras_file)
    return {
        "folder": folder,
        "weights": os.path.join(folder, "model.weights.h5"),
        "keras": keras_file,
        "hf": "hf://alice/vdsr-tiny",
        "kaggle": "kaggle://alice/vdsr/keras/tiny/1",
    }


@pytest.mark.slow(reason="one vdsr-upscale subprocess per handle kind")
def test_upscale_weights_takes_every_handle_kind(handles, offline_hubs, tiny_preset, tmp_path):
    from vdsr_tf.io.images import read_image, sample_images_dir, save_array

    src = str(tmp_path / "in.png")
    save_array(IMAGE, src)
    expected = Upscaler(model=tiny_preset[1], precision="fp32").upscale(IMAGE, scale=2)
    for kind, handle in handles.items():
        out = str(tmp_path / f"{kind}.png")
        proc = run_cli(
            "upscale", src, "--scale=2", f"--weights={handle}", "--precision=fp32",
            f"--output={out}", env=offline_hubs,
        )  # fmt: skip
        assert proc.returncode == 0, (kind, proc.stderr[-2000:])
        np.testing.assert_array_equal(read_image(out), expected, err_msg=kind)
    butterfly = os.path.join(sample_images_dir(), "LR_bicubic", "X3", "butterfly.png")
    out = str(tmp_path / "butterfly.png")
    proc = run_cli(
        "upscale", butterfly, "--scale=3", "--weights=bundled", "--precision=fp32", f"--output={out}"
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = Upscaler(precision="fp32").upscale(read_image(butterfly), scale=3)
    assert expected.shape[:2] == (255, 255)
    np.testing.assert_array_equal(read_image(out), expected)


@pytest.mark.slow(reason="vdsr-eval, vdsr-export and vdsr-train in subprocesses")
def test_other_commands_take_hub_and_preset_handles(handles, offline_hubs, tiny_preset, tmp_path):
    from vdsr_tf.io.images import sample_images_dir

    samples = sample_images_dir()
    scores = {}
    for kind in ("hf", "folder"):
        js = str(tmp_path / f"{kind}.json")
        proc = run_cli(
            "eval", f"--benchmark_dir={os.path.dirname(samples)}", "--sets=samples",
            "--scales=2", f"--weights={handles[kind]}", f"--json={js}", env=offline_hubs,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        scores[kind] = json.load(open(js))["samples"]
    assert scores["hf"] == scores["folder"]
    out = str(tmp_path / "exported")
    proc = run_cli(
        "export", "--format=preset", f"--weights={handles['kaggle']}", f"--output={out}",
        f"--scores={tmp_path / 'hf.json'}", env=offline_hubs,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.load(open(os.path.join(out, "metadata.json")))
    assert meta["scores"] == {"samples": scores["hf"]} and meta["recipe"] == "none: random weights"
    _same_outputs(load_pretrained(out), tiny_preset[1])
    run = str(tmp_path / "run")
    proc = run_cli(
        "train", f"--data={samples}/HR", f"--output_dir={run}", "--depth=3", "--filters=8",
        "--patch_size=24", "--batch_size=2", "--steps=1", "--steps_per_epoch=1",
        f"--init_from={handles['hf']}", env=offline_hubs,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "New run from the weights of hf://alice/vdsr-tiny" in proc.stderr
    from vdsr_tf.io.checkpoint import read_state

    meta, weights, _ = read_state(os.path.join(run, "checkpoint.npz"))
    assert meta["init_from"] == "hf://alice/vdsr-tiny"
    # One step from the preset's weights: every weight still within 0.1 of them.
    start = tiny_preset[1].get_weights()
    assert max(np.abs(np.asarray(w) - s).max() for w, s in zip(weights, start)) < 0.1


@pytest.mark.slow(reason="vdsr-upscale subprocesses")
@pytest.mark.parametrize(
    "break_it,message",
    [
        ("sha256", "does not match the sha256 in metadata.json"),
        ("missing", "has no model.weights.h5"),
        ("offline", "cannot get hf://alice/missing through huggingface_hub"),
    ],
)
def test_upscale_bad_handles_give_one_line(tiny_preset, tmp_path, offline_hubs, break_it, message):
    copy = _copy(tiny_preset[0], tmp_path)
    handle = str(copy)
    if break_it == "sha256":
        build_vdsr(**TINY).save_weights(str(copy / "model.weights.h5"))
    elif break_it == "missing":
        os.remove(copy / "model.weights.h5")
    else:
        handle = "hf://alice/missing"
    src = str(tmp_path / "in.png")
    from vdsr_tf.io.images import save_array

    save_array(IMAGE, src)
    proc = run_cli(
        "upscale", src, "--scale=2", f"--weights={handle}", f"--output={tmp_path / 'o.png'}",
        env=offline_hubs,
    )  # fmt: skip
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not os.path.exists(tmp_path / "o.png")
