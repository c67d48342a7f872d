"""TFLite export (vdsr_tf.export.tflite) and the LiteRT runner (vdsr_tf.litert)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ai_edge_litert")

from vdsr_tf.data import degrade, load_y_planes
from vdsr_tf.imageio import sample_images_dir  # noqa: E402
from vdsr_tf.export.tflite import QUANTIZATIONS, calibration_patches, export_tflite  # noqa: E402
from vdsr_tf.litert import LiteRTPredictor  # noqa: E402
from vdsr_tf.model import build_vdsr  # noqa: E402
from vdsr_tf.upscaler import Upscaler  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = sample_images_dir()
BIRD_X2 = os.path.join(SAMPLES, "LR_bicubic", "X2", "bird.png")


def _random_image(h, w, seed=0):
    return np.random.default_rng(seed).random((1, h, w, 1), np.float32)


@pytest.fixture(scope="module")
def hr_planes():
    return load_y_planes(os.path.join(SAMPLES, "HR"))


@pytest.fixture(scope="module")
def real_input(hr_planes):
    """float32 (1, 72, 88, 1): a bicubic-degraded (x3) crop of a real image."""
    x, _ = degrade(hr_planes[0], 3)
    return np.ascontiguousarray(x[40:112, 30:118])[None, :, :, None]


@pytest.fixture(scope="module")
def small():
    """depth 3 x 16 filters (context 3): the middle kernel has 2304 weights, above
    TFLite's 1024-element threshold, so "dynamic" really quantizes it."""
    import keras

    keras.utils.set_random_seed(0)
    return build_vdsr(depth=3, filters=16)


@pytest.fixture(scope="module")
def variants(small, hr_planes, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tflite")
    return {q: export_tflite(small, str(folder / f"small_{q}.tflite"), q,
                             representative_planes=hr_planes, num_calibration=16)
            for q in QUANTIZATIONS}


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_each_variant_converts_and_runs_on_any_size(variants, quantization):
    info = variants[quantization]
    assert info["quantization"] == quantization
    assert info["bytes"] == os.path.getsize(info["path"]) > 0
    predictor = LiteRTPredictor(info["path"])
    assert predictor.context == 3  # read from the model's three 3x3 convs
    for h, w in [(37, 53), (64, 24), (37, 53)]:
        y = predictor(_random_image(h, w))
        assert y.shape == (1, h, w, 1) and y.dtype == np.float32
        assert np.isfinite(y).all()


def test_quantized_variants_are_smaller(variants):
    size = {q: v["bytes"] for q, v in variants.items()}
    assert size["fp16"] < size["fp32"] and size["dynamic"] < size["fp16"]
    assert size["int8"] < size["fp16"]


def test_accuracy_against_keras(small, variants, real_input):
    # Measured max abs (depth 3 x 16, He init, so a large random residual):
    # fp32 0; fp16 5.6e-4 (noise) / 2.9e-4 (real image); dynamic 1.5e-2 and
    # int8 3.3e-2 on the real image (int8: 0.68 on noise, see below).
    x = _random_image(45, 61, seed=1)
    ref = np.asarray(small(x))
    ref_real = np.asarray(small(real_input))

    def err(q, inp, expected):
        return float(np.abs(LiteRTPredictor(variants[q]["path"])(inp) - expected).max())

    assert err("fp32", x, ref) < 1e-4
    assert err("fp16", x, ref) < 2e-3
    assert err("fp16", real_input, ref_real) < 2e-3
    assert err("dynamic", real_input, ref_real) < 0.05
    # int8 is calibrated on real patches; uniform noise saturates its ranges,
    # so it is judged on a real image only.
    assert err("int8", real_input, ref_real) < 0.1


def test_real_network_fp32_matches_keras(tmp_path):
    import keras

    keras.utils.set_random_seed(1)
    model = build_vdsr()  # the 20 x 64 network
    info = export_tflite(model, str(tmp_path / "vdsr.tflite"))
    assert 2.5e6 < info["bytes"] < 2.9e6  # 665,921 float32 parameters
    assert os.listdir(tmp_path) == ["vdsr.tflite"]  # no temporary file left
    predictor = LiteRTPredictor(info["path"])
    assert predictor.context == 20
    for h, w in [(48, 64), (31, 40)]:
        x = _random_image(h, w, seed=h)
        assert np.abs(predictor(x) - np.asarray(model(x))).max() < 1e-4
    # Through the Upscaler, tiled: the same uint8 image as the Keras model.
    lr = np.asarray(Image.open(BIRD_X2).convert("RGB"))[:40, :48]
    keras_sr = Upscaler(model=model, tile=48).upscale(lr, scale=2)
    lite_sr = Upscaler(predictor=predictor, tile=48).upscale(lr, scale=2)
    assert lite_sr.shape == keras_sr.shape == (80, 96, 3)
    assert np.abs(lite_sr.astype(int) - keras_sr).max() <= 1


def test_calibration_patches_are_real_and_deterministic(hr_planes):
    a = calibration_patches(hr_planes, 10, patch_size=21, seed=3)
    b = calibration_patches(hr_planes, 10, patch_size=21, seed=3)
    assert a.shape == (10, 21, 21, 1) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert -0.2 < a.min() and a.max() < 1.2 and a.std() > 0.01


def test_bad_quantization_name(small, tmp_path):
    with pytest.raises(ValueError, match="fp32, fp16, dynamic, int8"):
        export_tflite(small, str(tmp_path / "m.tflite"), quantization="int4")
    assert os.listdir(tmp_path) == []


def test_predictor_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such TFLite"):
        LiteRTPredictor(str(tmp_path / "missing.tflite"))
    text = tmp_path / "weights.h5"
    text.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(ValueError, match="not a TFLite model"):
        LiteRTPredictor(str(text))
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"\0\0\0\0TFL3" + b"\xff" * 64)
    with pytest.raises(ValueError, match="not a valid TFLite model"):
        LiteRTPredictor(str(broken))


def test_runs_without_tensorflow_or_keras(small, variants, tmp_path):
    script = textwrap.dedent("""
        import sys
        sys.modules["tensorflow"] = None
        sys.modules["keras"] = None
        import numpy as np
        from PIL import Image
        from vdsr_tf.litert import LiteRTPredictor
        from vdsr_tf.upscaler import Upscaler

        lr = np.asarray(Image.open(sys.argv[2]).convert("RGB"))
        sr = Upscaler(predictor=LiteRTPredictor(sys.argv[1]), tile=64).upscale(lr, scale=2)
        np.save(sys.argv[3], sr)
        assert sys.modules["tensorflow"] is None and sys.modules["keras"] is None
        print("ok", sr.shape)
    """)
    out = tmp_path / "sr.npy"
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-c", script, variants["fp32"]["path"], BIRD_X2,
                           str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sr = np.load(out)
    lr = np.asarray(Image.open(BIRD_X2).convert("RGB"))
    assert sr.shape == (2 * lr.shape[0], 2 * lr.shape[1], 3)
    keras_sr = Upscaler(model=small, tile=64).upscale(lr, scale=2)
    assert np.abs(sr.astype(int) - keras_sr).max() <= 1


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "vdsr_tf.cli.upscale", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_tflite_backend(small, variants, tmp_path):
    out = tmp_path / "bird_x2.png"
    proc = run_cli(BIRD_X2, "--scale=2", f"--output={out}", "--backend=tflite",
                   f"--model={variants['int8']['path']}", "--tile=64")
    assert proc.returncode == 0, proc.stderr[-2000:]
    sr = np.asarray(Image.open(out))
    lr = np.asarray(Image.open(BIRD_X2).convert("RGB"))
    assert sr.shape == (2 * lr.shape[0], 2 * lr.shape[1], 3)
    # int8 is close to, not equal to, the Keras model.
    keras_sr = Upscaler(model=small).upscale(lr, scale=2)
    assert np.abs(sr.astype(int) - keras_sr).mean() < 3


@pytest.mark.parametrize("args, message", [
    (["--backend=tflite"], "--backend=tflite needs --model"),
    (["--model=m.tflite"], "--model is for --backend=tflite"),
    (["--backend=tflite", "--model=missing.tflite"], "No such TFLite model file"),
    (["--backend=tflite", f"--model={BIRD_X2}"], "not a TFLite model"),
])
def test_cli_tflite_usage_errors(tmp_path, args, message):
    proc = run_cli(BIRD_X2, "--scale=2", f"--output={tmp_path / 'o.png'}", *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "o.png")
