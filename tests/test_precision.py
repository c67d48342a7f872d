"""precision="auto": the choice, the per-machine timing cache, and every
precision's output against exact fp32.

The choice and the cache are tested with injected timings and costs (no
timing is asserted); the images with the bundled weights on this CPU.
"""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image

from vdsr_tf.inference import engines
from vdsr_tf.inference import precision as P
from vdsr_tf.inference.upscaler import Upscaler
from vdsr_tf.io import bundled
from vdsr_tf.io.images import sample_images_dir

COSTS = {
    "litert-fp32": {"x2": 0.0, "x3": 0.0, "x4": 0.0},
    "keras-bf16": {"x2": -0.01, "x3": -0.003, "x4": 0.01},
    "litert-int8": {"x2": -0.029, "x3": -0.017, "x4": -0.012},
}
ALL = {"litert-fp32": 2.2, "keras-fp32": 1.9, "keras-bf16": 1.0, "litert-int8": 0.5}


# -- the choice ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "timings, winner",
    [
        (ALL, "litert-int8"),  # AVX-512 VNNI: int8 fastest
        ({**ALL, "litert-int8": 2.2}, "keras-bf16"),  # AMX: bf16 fastest
        (
            {**ALL, "keras-bf16": 3.0, "litert-int8": 2.3, "litert-fp32": 1.9, "keras-fp32": 3.1},
            "litert-fp32",
        ),  # AVX2: int8 no faster, LiteRT fp32 fastest
        ({"litert-fp32": 1.0, "keras-fp32": 1.0}, "litert-fp32"),  # a tie: PATHS order
    ],
)
def test_the_fastest_path_within_the_bound_wins(timings, winner):
    name, reason = P.choose(timings, COSTS)
    assert name == winner
    assert f"within {P.QUALITY_BOUND_DB} dB" in reason
    assert f"{timings[winner] * 1e3:.0f} ms" in reason


def test_a_path_over_the_bound_never_wins_however_fast():
    over = {**COSTS, "litert-int8": {"x2": -0.02, "x3": -0.051, "x4": 0.0}}  # one scale over
    name, reason = P.choose({**ALL, "litert-int8": 0.001}, over)
    assert name == "keras-bf16"
    assert "litert-int8 (loses 0.051 dB > 0.05 dB)" in reason
    # A path whose cost nobody measured is not chosen either; fp32 always may be.
    name, reason = P.choose({"keras-fp32": 9.0, "litert-int8": 0.1}, {})
    assert name == "keras-fp32" and "quality cost not measured" in reason
    assert P.quality_loss("keras-fp32", {}) == 0.0
    assert P.quality_loss("keras-bf16", COSTS) == pytest.approx(0.01)  # a gain is no loss
    with pytest.raises(ValueError, match="no path within"):
        P.choose({"litert-int8": 0.1}, over)


def test_bound_is_inclusive_and_configurable():
    edge = {"litert-int8": {"x2": -0.05, "x3": 0.0, "x4": -0.01}}
    assert P.choose({"keras-fp32": 1.0, "litert-int8": 0.5}, edge)[0] == "litert-int8"
    assert P.choose({"keras-fp32": 1.0, "litert-int8": 0.5}, edge, bound=0.02)[0] == "keras-fp32"


# -- the cache ---------------------------------------------------------------------------
def _key(**kw):
    args = dict(
        candidates=["keras-fp32", "litert-int8"],
        threads=2,
        weights_sha256="ab",
        versions={"vdsr_tf": "0.1.0", "ai-edge-litert": "2.3.0"},
        cpu="Some CPU",
    )
    args.update(kw)
    return P.cache_key(**args)


def test_cache_folder_follows_the_environment(tmp_path):
    assert P.cache_dir({"VDSR_TF_CACHE": "/a", "XDG_CACHE_HOME": "/b"}) == "/a"
    assert P.cache_dir({"XDG_CACHE_HOME": "/b"}) == os.path.join("/b", "vdsr_tf")
    assert P.cache_dir({}) == os.path.join(os.path.expanduser("~"), ".cache", "vdsr_tf")


def test_cache_is_keyed_by_cpu_threads_versions_and_weights(tmp_path):
    timings = {"keras-fp32": 0.1, "litert-int8": 0.03}
    base = _key()
    assert P.write_timings(base, timings, str(tmp_path)) == P.cache_file(base, str(tmp_path))
    assert P.read_timings(base, str(tmp_path)) == timings
    for other in (
        _key(cpu="Another CPU"),
        _key(threads=4),
        _key(weights_sha256="cd"),
        _key(versions={"vdsr_tf": "0.2.0", "ai-edge-litert": "2.3.0"}),
        _key(candidates=["keras-fp32", "keras-bf16", "litert-int8"]),
    ):
        assert P.cache_file(other, str(tmp_path)) != P.cache_file(base, str(tmp_path))
        assert P.read_timings(other, str(tmp_path)) is None
    # Same content, another order: the same key.
    assert P.cache_file(
        _key(candidates=["litert-int8", "keras-fp32"]), str(tmp_path)
    ) == P.cache_file(base, str(tmp_path))


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"\x00\xff garbage",
        b"[]",
        b'{"key": 1}',
        b"null",
        "KEY_WITH_TIMINGS",
        "NEGATIVE",
        "NAN",
        "STRING",
        "OTHER_KEY",
    ],
)
def test_a_corrupt_cache_file_means_measuring_again(tmp_path, content):
    key = _key()
    path = P.cache_file(key, str(tmp_path))
    good = {"key": key, "timings": {"keras-fp32": 0.1, "litert-int8": 0.03}}
    if content == "KEY_WITH_TIMINGS":  # timings for other candidates
        content = json.dumps({**good, "timings": {"keras-fp32": 0.1}}).encode()
    elif content == "NEGATIVE":
        content = json.dumps({**good, "timings": {"keras-fp32": -1, "litert-int8": 0.03}}).encode()
    elif content == "NAN":
        content = json.dumps(
            {**good, "timings": {"keras-fp32": float("nan"), "litert-int8": 0.03}}
        ).encode()
    elif content == "STRING":
        content = json.dumps(
            {**good, "timings": {"keras-fp32": "fast", "litert-int8": 0.03}}
        ).encode()
    elif content == "OTHER_KEY":  # a hash collision, or a file copied from elsewhere
        content = json.dumps({**good, "key": _key(cpu="elsewhere")}).encode()
    with open(path, "wb") as f:
        f.write(content)
    assert P.read_timings(key, str(tmp_path)) is None
    # ... and the next write replaces it with a good one.
    P.write_timings(key, good["timings"], str(tmp_path))
    assert P.read_timings(key, str(tmp_path)) == good["timings"]


def test_an_unwritable_cache_means_no_cache_not_an_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert (
        P.write_timings(_key(), {"keras-fp32": 0.1, "litert-int8": 0.1}, str(blocker / "cache"))
        is None
    )
    assert P.read_timings(_key(), str(blocker / "cache")) is None

    def refuse(*args, **kwargs):  # a read-only home (chmod does not stop root)
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr("vdsr_tf.io.atomic.atomic_write_text", refuse)  # the folder exists
    assert P.write_timings(_key(), {"keras-fp32": 0.1, "litert-int8": 0.1}, str(tmp_path)) is None
    monkeypatch.setattr(os, "makedirs", refuse)
    assert (
        P.write_timings(_key(), {"keras-fp32": 0.1, "litert-int8": 0.1}, str(tmp_path / "ro"))
        is None
    )
    with P.measuring_lock(_key(), str(tmp_path / "ro")):  # no lock, no error
        pass


def test_concurrent_writers_never_leave_a_broken_file(tmp_path):
    """Four processes rewrite the same key's file 300 times each while this
    one reads it: from the first whole record on, every read is whole."""
    key = _key()
    script = (
        "import sys, json; from vdsr_tf.inference import precision as P\n"
        "key = json.loads(sys.argv[1]); n = float(sys.argv[2])\n"
        "for i in range(300):\n"
        "    P.write_timings(key, {'keras-fp32': n + i, 'litert-int8': n}, sys.argv[3])\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, json.dumps(key), str(w + 1), str(tmp_path)])
        for w in range(4)
    ]
    reads = []
    while any(p.poll() is None for p in procs):
        reads.append(P.read_timings(key, str(tmp_path)))
    assert all(p.wait() == 0 for p in procs)
    # Once the file exists, it is always whole: a torn write would read as None.
    first = next(i for i, r in enumerate(reads) if r is not None)
    assert all(r is not None and set(r) == {"keras-fp32", "litert-int8"} for r in reads[first:]), (
        sum(r is None for r in reads[first:])
    )
    assert P.read_timings(key, str(tmp_path)) is not None
    assert os.listdir(tmp_path) == [os.path.basename(P.cache_file(key, str(tmp_path)))]


def test_one_process_measures_while_the_others_wait(tmp_path):
    """A process holding the measuring lock writes its timings before it lets
    go: a second process that takes the lock then finds them."""
    key = _key()
    script = (
        "import sys, json, time, pathlib; from vdsr_tf.inference import precision as P\n"
        "key = json.loads(sys.argv[1])\n"
        "with P.measuring_lock(key, sys.argv[2]):\n"
        "    pathlib.Path(sys.argv[2], 'locked').touch()\n"
        "    time.sleep(1.0)\n"
        "    P.write_timings(key, {'keras-fp32': 0.2, 'litert-int8': 0.05}, sys.argv[2])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(key), str(tmp_path)])
    while not (tmp_path / "locked").exists():
        assert proc.poll() is None, "the child ended before taking the lock"
    with P.measuring_lock(key, str(tmp_path)):
        assert P.read_timings(key, str(tmp_path)) == {"keras-fp32": 0.2, "litert-int8": 0.05}
    assert proc.wait() == 0


def test_a_cost_must_be_known_at_every_scale():
    assert P.quality_loss("litert-int8", {"litert-int8": {"x2": -0.01}}) is None
    assert (
        P.quality_loss("litert-int8", {"litert-int8": {"x2": -0.01, "x3": float("nan"), "x4": 0}})
        is None
    )
    assert P.quality_loss("litert-int8", {"litert-int8": None}) is None
    assert P.quality_loss("litert-int8", None) is None
    # A bf16 path that gains everywhere loses nothing, but is not called exact.
    gains = {"keras-bf16": {"x2": 0.01, "x3": 0.0, "x4": 0.02}}
    name, reason = P.choose({"keras-fp32": 1.0, "keras-bf16": 0.5}, gains)
    assert name == "keras-bf16" and "exact" not in reason and "loses 0.000 dB" in reason


# -- auto's resolution, with injected timings ----------------------------------------------
@pytest.fixture
def injected(monkeypatch, tmp_path):
    """auto on the bundled weights with the four paths installed, timings
    ``ALL`` and costs ``COSTS`` injected: ``.calls`` lists each measurement's
    paths, ``.threads`` the thread counts the engines got, ``.failing`` the
    paths that fail to load, ``.info`` the weights' metadata."""
    state = types.SimpleNamespace(calls=[], threads=[], failing=set())
    monkeypatch.setenv("VDSR_TF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(engines, "gpu_visible", lambda: False)
    monkeypatch.setattr(
        engines,
        "bundled_candidates",
        lambda backend=None: [n for n in P.PATHS if backend in (None, P.PATHS[n][0])],
    )
    state.info = dict(bundled.bundled_weights_info(), set5_psnr_change=COSTS)
    monkeypatch.setattr(bundled, "bundled_weights_info", lambda: state.info)

    def measure(forwards, failed):
        state.calls.append(sorted(forwards))
        return {n: ALL[n] for n in forwards}

    def forward(name, threads):
        state.threads.append(threads)
        if name in state.failing:
            raise RuntimeError(f"{name} cannot load here\nsecond line")
        return name

    monkeypatch.setattr(engines, "measure", measure)
    monkeypatch.setattr(engines, "_forward", forward)
    return state


def test_auto_measures_once_then_reads_the_cache(injected):
    calls = injected.calls
    name, reason = engines.resolve_auto()
    assert name == "litert-int8" and "measured now, cached in" in reason
    assert calls == [sorted(P.PATHS)]
    name, reason = engines.resolve_auto()
    assert name == "litert-int8" and "measured earlier" in reason and len(calls) == 1
    assert set(injected.threads) == {None}  # the engines' own default: every core of the mask
    # Another thread count is another key: measured again, with that count.
    assert engines.resolve_auto(threads=1)[0] == "litert-int8" and len(calls) == 2
    assert injected.threads[-1] == 1
    # A backend restricts the choice (and the key).
    assert engines.resolve_auto(backend="keras")[0] == "keras-bf16"
    assert calls[-1] == ["keras-bf16", "keras-fp32"]


def test_auto_skips_paths_over_the_bound_without_timing_them(injected):
    calls, info = injected.calls, injected.info
    info["set5_psnr_change"] = {**COSTS, "litert-int8": {"x2": -0.12, "x3": -0.05, "x4": -0.05}}
    name, reason = engines.resolve_auto()
    assert name == "keras-bf16" and "litert-int8 (loses 0.120 dB > 0.05 dB)" in reason
    assert "litert-int8" not in calls[-1]


def test_auto_with_a_corrupt_cache_measures_again(injected):
    calls = injected.calls
    engines.resolve_auto()
    folder = os.environ["VDSR_TF_CACHE"]
    (path,) = [os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".json")]
    with open(path, "w") as f:
        f.write('{"key": ')
    assert engines.resolve_auto()[0] == "litert-int8" and len(calls) == 2


def test_a_path_that_fails_here_is_left_out_and_nothing_is_cached(injected):
    calls = injected.calls
    injected.failing.add("litert-int8")
    name, reason = engines.resolve_auto()
    assert name == "keras-bf16"
    assert "litert-int8 (failed here: RuntimeError: litert-int8 cannot load here)" in reason
    assert "not cached, since a path failed" in reason
    assert engines.resolve_auto()[0] == "keras-bf16" and len(calls) == 2  # tried again
    injected.failing.update(P.PATHS)
    name, reason = engines.resolve_auto()
    assert name == "litert-fp32" and "every other path failed here" in reason


def test_auto_without_metadata_runs_an_exact_path(injected, monkeypatch):
    calls = injected.calls
    monkeypatch.setattr(bundled, "bundled_weights_info", lambda: None)
    name, reason = engines.resolve_auto()
    assert name == "keras-fp32" and calls == [["keras-fp32", "litert-fp32"]]
    assert "keras-bf16 (quality cost not measured)" in reason


def test_auto_on_a_gpu_runs_keras_bf16_without_timing(injected, monkeypatch):
    calls, info = injected.calls, injected.info
    monkeypatch.setattr(engines, "gpu_visible", lambda: True)
    monkeypatch.setattr(engines, "_keras_sees_gpu", lambda: True)
    name, reason = engines.resolve_auto()
    assert name == "keras-bf16" and "a GPU is visible" in reason and not calls
    info["set5_psnr_change"] = {}
    assert engines.resolve_auto()[0] == "keras-fp32"
    # A CPU-only build of Keras cannot use the GPU: the CPU choice, measured.
    monkeypatch.setattr(engines, "_keras_sees_gpu", lambda: False)
    assert engines.resolve_auto()[0] == "keras-fp32" and calls


def test_auto_runs_other_weights_exact(tiny_weights):
    name, reason = engines.resolve_auto(weights=tiny_weights)
    assert name == "keras-fp32" and "never measured" in reason
    assert engines.resolve_auto(weights=tiny_weights, backend="litert")[0] == "litert-fp32"
    up = Upscaler(tiny_weights)
    assert (up.backend, up.precision) == ("keras", "fp32")


def test_candidates_follow_the_cpu():
    assert "keras-bf16" in engines.bundled_candidates(flags={"avx512_bf16"})
    assert "keras-bf16" in engines.bundled_candidates(flags={"amx_bf16"})
    assert "keras-bf16" not in engines.bundled_candidates(flags={"avx2", "fma"})
    assert engines.bundled_candidates(backend="litert", flags={"avx2"}) == [
        "litert-fp32",
        "litert-int8",
    ]


def test_bf16_needs_the_instructions_or_a_gpu(monkeypatch):
    monkeypatch.setattr(engines, "gpu_visible", lambda: False)
    monkeypatch.setattr(engines, "cpu_info", lambda: ("Old CPU", {"avx2", "fma"}))
    with pytest.raises(ValueError, match="needs a GPU or a CPU with AVX512-BF16"):
        Upscaler(precision="bf16")
    with pytest.raises(ValueError, match="runs on the keras backend"):
        Upscaler(precision="bf16", backend="litert")
    monkeypatch.setattr(engines, "cpu_info", lambda: ("New CPU", {"avx512_bf16"}))
    engines.check_path("keras", "bf16")  # no error


def test_threads_default_to_the_affinity_mask():
    from vdsr_tf.inference.litert import LiteRTPredictor

    assert P.default_threads() == len(os.sched_getaffinity(0))
    assert Upscaler(precision="fp32", backend="litert").predictor.num_threads == len(
        os.sched_getaffinity(0)
    )
    assert Upscaler(precision="int8", threads=1).predictor.num_threads == 1
    assert " on 1 thread: " in Upscaler(precision="int8", threads=1).describe()
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        Upscaler(threads=0)
    with pytest.raises(ValueError, match="give no backend, precision or threads"):
        Upscaler(predictor=LiteRTPredictor(bundled.bundled_tflite_path()), threads=2)


# -- every precision against fp32, on a sample image ---------------------------------------
# The documented tolerance of each path against Keras fp32 after uint8 rounding
# (BUILD.md, "CPU inference"): the largest difference in levels, and the share
# of values more than one level apart. Measured on an AMD EPYC Zen 4: bf16 max
# 2 / 4 levels and 0.03 % / 0.34 % over one level on the bird / butterfly;
# int8 2 / 3 levels and 0.06 % / 0.43 %.
TOLERANCE = {"fp32": (1, 0.0), "bf16": (8, 0.01), "int8": (8, 0.01)}


@pytest.mark.slow(reason="runs the real network on every path")
@pytest.mark.parametrize("precision", ["auto", "fp32", "bf16", "int8"])
def test_every_precision_gives_the_fp32_image_within_its_tolerance(precision):
    if precision == "bf16" and not P.cpu_has_bf16(P.cpu_info()[1]):
        pytest.skip("this CPU has no bf16 dot products (avx512_bf16 / amx_bf16)")
    src = os.path.join(sample_images_dir(), "LR_bicubic", "X2", "butterfly.png")
    image = Image.open(src).convert("RGB")
    reference = Upscaler(precision="fp32", backend="keras").upscale(image, scale=2)
    up = Upscaler(precision=precision)
    out = up.upscale(image, scale=2)
    assert out.size == reference.size and out.mode == reference.mode == "RGB"
    level, share = TOLERANCE[up.precision]
    diff = np.abs(np.asarray(out, int) - np.asarray(reference, int))
    assert diff.max() <= level and (diff > 1).mean() <= share, (diff.max(), (diff > 1).mean())
    grey = Image.open(src).convert("L")
    assert up.upscale(grey, scale=3).mode == "L"
    assert up.upscale(grey, scale=3).size == (grey.width * 3, grey.height * 3)
