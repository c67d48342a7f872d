"""TFLite export (vdsr_tf.export.tflite) and the LiteRT runner (vdsr_tf.inference.litert)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ai_edge_litert")

from vdsr_tf.data.degradation import degrade, load_y_planes
from vdsr_tf.export.tflite import QUANTIZATIONS, calibration_patches, export_tflite  # noqa: E402
from vdsr_tf.inference.litert import LiteRTPredictor  # noqa: E402
from vdsr_tf.inference.upscaler import Upscaler  # noqa: E402
from vdsr_tf.io.images import sample_images_dir  # noqa: E402
from vdsr_tf.models.vdsr import build_vdsr  # noqa: E402

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
    return {
        q: export_tflite(
            small,
            str(folder / f"small_{q}.tflite"),
            q,
            representative_planes=hr_planes,
            num_calibration=16,
        )
        for q in QUANTIZATIONS
    }


@pytest.mark.slow(reason="converts each LiteRT variant")
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
    assert size["int8"] < size["fp16"] and size["mixed_int8"] < size["fp16"]


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
    # Float first and last layers: closer than full int8.
    assert err("mixed_int8", real_input, ref_real) < err("int8", real_input, ref_real)


@pytest.mark.slow(reason="converts the real network")
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
        from vdsr_tf.inference.litert import LiteRTPredictor
        from vdsr_tf.inference.upscaler import Upscaler

        lr = np.asarray(Image.open(sys.argv[2]).convert("RGB"))
        sr = Upscaler(predictor=LiteRTPredictor(sys.argv[1]), tile=64).upscale(lr, scale=2)
        np.save(sys.argv[3], sr)
        assert sys.modules["tensorflow"] is None and sys.modules["keras"] is None
        print("ok", sr.shape)
    """)
    out = tmp_path / "sr.npy"
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run(
        [sys.executable, "-c", script, variants["fp32"]["path"], BIRD_X2, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    sr = np.load(out)
    lr = np.asarray(Image.open(BIRD_X2).convert("RGB"))
    assert sr.shape == (2 * lr.shape[0], 2 * lr.shape[1], 3)
    keras_sr = Upscaler(model=small, tile=64).upscale(lr, scale=2)
    assert np.abs(sr.astype(int) - keras_sr).max() <= 1


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run(
        [sys.executable, "-m", "vdsr_tf.cli.upscale", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_tflite_backend(small, variants, tmp_path):
    out = tmp_path / "bird_x2.png"
    # --backend=tflite: the old spelling, still taken for one release, with a warning.
    proc = run_cli(
        BIRD_X2,
        "--scale=2",
        f"--output={out}",
        "--backend=tflite",
        f"--model={variants['int8']['path']}",
        "--tile=64",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--backend=tflite is deprecated; use --backend=litert" in proc.stderr
    sr = np.asarray(Image.open(out))
    lr = np.asarray(Image.open(BIRD_X2).convert("RGB"))
    assert sr.shape == (2 * lr.shape[0], 2 * lr.shape[1], 3)
    # int8 is close to, not equal to, the Keras model.
    keras_sr = Upscaler(model=small).upscale(lr, scale=2)
    assert np.abs(sr.astype(int) - keras_sr).mean() < 3


@pytest.mark.slow(reason="one vdsr-upscale subprocess per case")
@pytest.mark.parametrize(
    "args, message",
    [
        (["--backend=keras", "--model=m.tflite"], "are .tflite files for --backend=litert"),
        (["--backend=keras", "--precision=int8"], "precision='int8' runs on the litert backend"),
        (["--model=m.tflite", "--precision=int8"], "a --model file has its own"),
        (["--weights=w.weights.h5", "--model=m.tflite"], "not both"),
        (["--fallback_model=m.tflite"], "is for a static-size --model"),
        (["--precision=int4"], "--precision"),
        (["--backend=litert", "--precision=bf16"], "precision='bf16' runs on the keras backend"),
        (["--threads=0"], "--threads=0: 0 is not a positive integer"),
        (["--backend=litert", "--model=missing.tflite"], "No such TFLite model file"),
        (["--backend=litert", f"--model={BIRD_X2}"], "not a TFLite model"),
    ],
)
def test_cli_tflite_usage_errors(tmp_path, args, message):
    proc = run_cli(BIRD_X2, "--scale=2", f"--output={tmp_path / 'o.png'}", *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "o.png")


# -- static-size models for GPU / NPU delegates ---------------------------------------
FIXED = 160


@pytest.fixture(scope="module")
def six():
    """depth 6 x 8 filters: context 6, so the windows' overlaps are exercised."""
    import keras

    keras.utils.set_random_seed(2)
    return build_vdsr(depth=6, filters=8)


@pytest.fixture(scope="module")
def fixed_pairs(six, tmp_path_factory):
    """{quantization: (dynamic info, static FIXED x FIXED info)}; the int8 pair
    calibrated on the same FIXED-pixel patches."""
    folder = tmp_path_factory.mktemp("fixed")
    pairs = {}
    for q in ("fp32", "fp16", "int8"):
        kwargs = {"patch_size": FIXED, "num_calibration": 4} if q == "int8" else {}
        pairs[q] = (
            export_tflite(six, str(folder / f"dyn_{q}.tflite"), q, **kwargs),
            export_tflite(six, str(folder / f"fix_{q}.tflite"), q, fixed_size=FIXED, **kwargs),
        )
    return pairs


@pytest.mark.slow(reason="converts static-size models")
def test_static_models_have_static_shapes_and_report_their_ops(fixed_pairs):
    from ai_edge_litert.interpreter import Interpreter

    from vdsr_tf.io.tflite_file import op_counts

    for dynamic, fixed in fixed_pairs.values():
        assert fixed["fixed_size"] == (FIXED, FIXED) and dynamic["fixed_size"] is None
        detail = Interpreter(model_path=fixed["path"]).get_input_details()[0]
        assert list(detail["shape_signature"]) == [1, FIXED, FIXED, 1]
        assert fixed["ops"] == op_counts(fixed["path"])
        assert fixed["ops"]["CONV_2D"] == 6 and fixed["ops"]["ADD"] == 1
    assert fixed_pairs["int8"][1]["ops"].get("QUANTIZE") == 1
    assert LiteRTPredictor(fixed_pairs["fp32"][1]["path"]).min_window == (FIXED, FIXED)


@pytest.mark.slow(reason="runs static and dynamic models over Set5")
def test_static_models_give_the_dynamic_models_pixels_on_set5(fixed_pairs, datasets_dir):
    """The acceptance check: Set5 LR files whose upscaled size is at least the
    static input, through the Upscaler (colour, tiles of 200 px, windows widened
    to the model's input), static and dynamic variant by variant."""
    from vdsr_tf.io.images import read_image

    for q, (dynamic, fixed) in fixed_pairs.items():
        dyn = Upscaler(predictor=LiteRTPredictor(dynamic["path"]), tile=200)
        fix = Upscaler(predictor=LiteRTPredictor(fixed["path"]), tile=200)
        for scale in (2, 3, 4):
            folder = datasets_dir / "Set5" / "LR_bicubic" / f"X{scale}"
            for path in sorted(folder.glob("*.png")):
                lr = read_image(str(path))
                if min(lr.shape[:2]) * scale < FIXED:
                    continue
                a, b = dyn.upscale(lr, scale=scale), fix.upscale(lr, scale=scale)
                # Same pixels; +-1 allowed where float rounding meets a .5 boundary.
                diff = np.abs(a.astype(int) - b)
                assert diff.max() <= 1 and (diff > 0).mean() < 1e-4, (q, path.name, scale)


def test_static_model_tiles_planes_and_falls_back_for_small_ones(fixed_pairs):
    dynamic, fixed = fixed_pairs["fp32"]
    dyn = LiteRTPredictor(dynamic["path"])
    with_fallback = LiteRTPredictor(fixed["path"], fallback=dynamic["path"])
    alone = LiteRTPredictor(fixed["path"])
    for h, w in [(FIXED, FIXED), (FIXED + 1, 333), (401, FIXED + 7)]:
        x = _random_image(h, w, seed=h + w)
        assert np.abs(alone(x) - dyn(x)).max() < 1e-5, (h, w)
    small_plane = _random_image(100, 300, seed=5)
    np.testing.assert_array_equal(with_fallback(small_plane), dyn(small_plane))
    approx = alone(small_plane)  # edge-padded to the window: exact away from the padding
    assert approx.shape == small_plane.shape
    assert np.abs(approx - dyn(small_plane))[:, : 100 - 6].max() < 1e-5
    with pytest.raises(ValueError, match="dynamic-shape"):
        LiteRTPredictor(fixed["path"], fallback=fixed["path"])


def test_cli_static_model_with_fallback(fixed_pairs, tmp_path):
    dynamic, fixed = fixed_pairs["fp32"]
    out = tmp_path / "bird.png"
    proc = run_cli(
        BIRD_X2,
        "--scale=2",
        f"--output={out}",
        "--backend=litert",
        f"--model={fixed['path']}",
        f"--fallback_model={dynamic['path']}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lr = np.asarray(Image.open(BIRD_X2).convert("RGB"))
    ref = Upscaler(predictor=LiteRTPredictor(dynamic["path"])).upscale(lr, scale=2)
    assert np.abs(np.asarray(Image.open(out)).astype(int) - ref).max() <= 1
    proc = run_cli(
        BIRD_X2,
        "--scale=2",
        f"--output={tmp_path / 'x.png'}",
        "--backend=litert",
        f"--model={dynamic['path']}",
        f"--fallback_model={dynamic['path']}",
    )
    assert proc.returncode == 2 and "is for a static-size --model" in proc.stderr


def test_bundled_tflite_is_the_bundled_weights(tmp_path, real_input):
    """vdsr.fp32.tflite and vdsr.mixed_int8.tflite were converted from the
    bundled weights: the recorded digests match the files, fp32 computes what
    the Keras model computes, and int8 keeps its first and last convolution
    (and the skip add) in float around int8 hidden layers."""
    import hashlib

    from ai_edge_litert import schema_py_generated as schema

    from vdsr_tf.io.bundled import (
        BUNDLED_TFLITE,
        bundled_tflite_path,
        bundled_weights_info,
        bundled_weights_path,
    )
    from vdsr_tf.io.tflite_file import _operators, op_counts
    from vdsr_tf.models.loading import load_pretrained

    info = bundled_weights_info()

    def digest(path):
        return hashlib.sha256(open(path, "rb").read()).hexdigest()

    assert sorted(info["tflite"]) == sorted(BUNDLED_TFLITE)
    for precision, lite in info["tflite"].items():
        assert lite["weights_sha256"] == info["sha256"] == digest(bundled_weights_path())
        assert lite["sha256"] == digest(bundled_tflite_path(precision))
    x = _random_image(40, 56, seed=9) * 0.8 + 0.1
    keras_y = np.asarray(load_pretrained()(x))
    assert np.abs(LiteRTPredictor(bundled_tflite_path())(x) - keras_y).max() < 1e-4
    # int8 is calibrated on real patches; noise saturates it: judged on a real image.
    real = np.asarray(load_pretrained()(real_input))
    int8_err = np.abs(LiteRTPredictor(bundled_tflite_path("int8"))(real_input) - real)
    assert int8_err.max() < 0.03 and int8_err.mean() < 0.003  # measured 0.0087, 0.0010
    kinds = [
        graph.Tensors(op.Inputs(1)).Type()
        for code, op, graph in _operators(bundled_tflite_path("int8"))
        if code == schema.BuiltinOperator.CONV_2D
    ]
    assert kinds == [schema.TensorType.FLOAT32] + [schema.TensorType.INT8] * 18 + [
        schema.TensorType.FLOAT32
    ]
    assert op_counts(bundled_tflite_path("int8")) == {
        "CONV_2D": 20,
        "QUANTIZE": 1,
        "DEQUANTIZE": 1,
        "ADD": 1,
    }


# -- the exact CPU path (LiteRT fp32) and --precision=int8 ------------------------------
@pytest.mark.slow(reason="converts the real network to LiteRT")
def test_exact_cpu_path_is_litert_and_equals_keras(monkeypatch):
    """Without a GPU, precision="fp32" runs the bundled weights on LiteRT
    fp32, which equals the Keras model after uint8 rounding but for float
    rounding: under 0.1 % of values differ, by one level at most."""
    from vdsr_tf.inference import engines

    monkeypatch.setattr(engines, "gpu_visible", lambda: False)
    lite = Upscaler(precision="fp32")
    assert lite.backend == "litert" and lite.model is None
    keras_up = Upscaler(backend="keras", precision="fp32")
    assert keras_up.backend == "keras"
    lr = np.asarray(Image.open(BIRD_X2).convert("RGB"))
    for scale in (2, 3.5):
        a = lite.upscale(lr, scale=scale).astype(int)
        b = keras_up.upscale(lr, scale=scale).astype(int)
        assert np.abs(a - b).max() <= 1 and (a != b).mean() < 1e-3
    monkeypatch.setattr(engines, "gpu_visible", lambda: True)
    assert Upscaler(precision="fp32").backend == "keras"  # a GPU build of Keras is faster there


@pytest.mark.slow(reason="calibrates and converts an int8 model")
def test_int8_keeps_quality_on_the_samples():
    """precision="int8" (the bundled mixed_int8 model) against fp32 on the two
    bundled sample images (Set5's bird and butterfly; not in the calibration
    set): measured -0.043 / -0.022 / -0.023 dB at x2 / x3 / x4. The Set5
    numbers (-0.029 / -0.017 / -0.012) are in BUILD.md."""
    from vdsr_tf.evaluation.benchmark import evaluate_set

    fp32, int8 = Upscaler(precision="fp32"), Upscaler(precision="int8")
    assert int8.backend == "litert" and int8.precision == "int8"
    for scale in (2, 3, 4):
        loss = (
            evaluate_set(fp32, SAMPLES, scale)["psnr"] - evaluate_set(int8, SAMPLES, scale)["psnr"]
        )
        assert -0.02 < loss < 0.06, (scale, loss)


def test_litert_backend_converts_other_weights(small, tiny_weights):
    """backend="litert" converts a Keras model or a weights file (once per
    file version) and computes what Keras computes."""
    from vdsr_tf.models.loading import load_pretrained

    x = _random_image(37, 41, seed=3)
    from_model = Upscaler(model=small, backend="litert")
    assert from_model.backend == "litert" and from_model.context == 3
    assert np.abs(from_model._forward(x) - np.asarray(small(x))).max() < 1e-4
    path = tiny_weights
    a, b = Upscaler(path, backend="litert"), Upscaler(path, backend="litert")
    assert a.predictor is b.predictor  # converted once
    assert np.abs(a._forward(x) - np.asarray(load_pretrained(path)(x))).max() < 1e-4
    assert Upscaler(path).backend == "keras"  # other weights default to Keras
    int8 = Upscaler(model=small, precision="int8")
    assert int8.backend == "litert" and os.path.basename(int8.predictor.path).endswith(
        "int8.tflite"
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"backend": "onnx"}, "Unknown backend 'onnx'"),
        ({"precision": "int4"}, "Unknown precision 'int4'"),
        ({"backend": "keras", "precision": "int8"}, "runs on the litert backend"),
    ],
)
def test_upscaler_engine_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Upscaler(**kwargs)


def test_a_predictor_takes_no_engine_options():
    with pytest.raises(ValueError, match="give no backend, precision"):
        Upscaler(predictor=lambda x: x, backend="keras")
    with pytest.raises(ValueError, match="give no backend, precision"):
        Upscaler(predictor=lambda x: x, precision="int8")


def test_cli_says_which_path_runs_and_why(tmp_path):
    """-v names the path auto picked (the session's timing cache: the same
    choice as Upscaler() here) and why, and the output is that path's;
    --version names it too."""
    import re

    out = tmp_path / "x2.png"
    proc = run_cli("-v", BIRD_X2, "--scale=2", f"--output={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    [line] = [l for l in proc.stderr.splitlines() if "network path:" in l]
    auto = Upscaler()
    assert f"network path: {auto.describe().split(':')[0]}: " in line, line
    lr = np.asarray(Image.open(BIRD_X2).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(Image.open(out)), auto.upscale(lr, scale=2))
    proc = run_cli("--version", "--precision=fp32")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(
        r"network path: (litert|keras)-fp32( on \d+ threads?)?: precision='fp32' "
        "asked for",
        proc.stdout,
    ), proc.stdout
    assert "Set5 PSNR change against fp32" in proc.stdout


def test_cli_precision_int8(tmp_path):
    out = tmp_path / "x2.png"
    proc = run_cli(BIRD_X2, "--scale=2", f"--output={out}", "--precision=int8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lr = np.asarray(Image.open(BIRD_X2).convert("RGB"))
    expected = Upscaler(precision="int8").upscale(lr, scale=2)
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)
