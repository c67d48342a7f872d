"""The engines that run the network for an ``Upscaler``, and ``auto``'s pick.

Two engines (``backend``): Keras (TensorFlow's oneDNN convolutions, or JAX;
fp32, or bf16 under ``mixed_bfloat16``) and LiteRT (XNNPACK; fp32, or the
bundled ``mixed_int8`` model). The bundled weights come with their LiteRT
conversions; other weights run on Keras unless ``backend="litert"``, which
converts them once per process.

``resolve_auto`` is ``precision="auto"``: for the bundled weights, Keras on
a GPU when one is visible, else the fastest path measured on this CPU
within 0.05 dB of fp32 (``vdsr_tf.inference.precision``); for other weights, whose
bf16 and int8 costs nobody measured, exact fp32.
"""

import functools
import importlib.util
import json
import os
import tempfile

from absl import logging

from vdsr_tf.inference.precision import (
    PATHS,
    cache_file,
    cache_key,
    choose,
    cpu_has_bf16,
    cpu_info,
    default_threads,
    first_line,
    measure,
    measuring_lock,
    not_eligible,
    path_name,
    quality_loss,
    read_timings,
    within_bound,
    write_timings,
)
from vdsr_tf.io import bundled, presets

BACKENDS = ("keras", "litert")


_BF16_POLICY = "mixed_bfloat16"


def compile_forward(model):
    """A compiled ``f(x: float32 (N, H, W, 1)) -> numpy (N, H, W, 1)``.

    One trace serves every tile shape on TensorFlow (the spatial dims are left
    unknown) and one per size bucket on JAX.
    """
    import keras
    import numpy as np

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        fn = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)],
        )
        return lambda x: fn(x).numpy()
    if keras.backend.backend() == "jax":
        from vdsr_tf.inference.jax_forward import jax_forward

        # Padded to a few bucket shapes (and masked, so results are those of
        # the unpadded network): one compile serves many image sizes.
        return jax_forward(model)
    return lambda x: np.asarray(model(x, training=False))


def _in_precision(model, precision):
    """``model`` itself for fp32; its ``mixed_bfloat16`` copy for bf16."""
    if precision != "bf16":
        return model
    from vdsr_tf.models.vdsr import compute_copy

    return compute_copy(model, _BF16_POLICY)


class _Loaded:
    """A resolved ``Source``, equal to another (as a cache key) when it names
    the same weights file, in the same version (``stamp``: the mtimes and
    sizes of the weights and of the config beside them that was read)."""

    def __init__(self, source):
        self.source = source
        stamps = []
        for p in (source.weights, os.path.join(os.path.dirname(source.weights), presets.CONFIG)):
            try:
                st = os.stat(p)
                stamps.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stamps.append(None)
        self.key = (source.kind, os.path.realpath(source.path), tuple(stamps))

    def __eq__(self, other):
        return isinstance(other, _Loaded) and other.key == self.key

    def __hash__(self):
        return hash(self.key)

    def model(self):
        """The Keras model, computing in float32 (a preset may record the
        mixed policy it was trained under)."""
        from vdsr_tf.models.vdsr import float32_copy, load_source

        return float32_copy(load_source(self.source))


@functools.lru_cache(maxsize=4)
def _cached_network(loaded, precision):
    """``(model, forward)`` for a resolved handle (``_Loaded``): a changed
    file is a new entry."""
    model = _in_precision(loaded.model(), precision)
    return model, compile_forward(model)


def load_network(weights=None, precision="fp32"):
    """``(model, forward)`` for ``weights`` (a handle, ``vdsr_tf.io.presets``;
    None: the bundled weights) in ``precision`` ("fp32" or "bf16"), loaded
    and compiled once per process and file version: Upscalers made with the
    same weights share them, and a file that changes is loaded again.

    Raises:
        FileNotFoundError, ValueError, ImportError, OSError: as
            ``vdsr_tf.io.presets.resolve``.
    """
    source = presets.resolve(weights)  # downloads a hub handle; checks the sha256
    return _cached_network(_Loaded(source), precision)


def keras_network(weights=None, model=None, precision="fp32"):
    """``(model, forward)`` of a Keras model (or of ``load_network(weights)``)
    in ``precision`` ("fp32" or "bf16")."""
    if model is None:
        return load_network(weights, precision)
    model = _in_precision(model, precision)
    return model, compile_forward(model)


def set_keras_threads(threads):
    """Runs TensorFlow's convolutions on ``threads`` threads (None: its own
    default, which follows the affinity mask). TensorFlow takes this once per
    process, before its runtime starts; later, a different count is logged
    and ignored. JAX's CPU pool is its own."""
    if threads is None:
        return
    import keras

    if keras.backend.backend() != "tensorflow":
        logging.info(
            "threads=%d applies to LiteRT; the %s backend sizes its own pool",
            threads,
            keras.backend.backend(),
        )
        return
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:
        logging.warning(
            "TensorFlow is already running with its own thread count; threads=%d "
            "takes effect in a new process",
            threads,
        )


def gpu_visible():
    """Whether an NVIDIA GPU is visible to this process (without importing
    TensorFlow: a GPU build of Keras is faster there than LiteRT on CPU)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    try:
        return bool(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return False


def _keras_sees_gpu():
    """Whether Keras's backend can run on the visible GPU (a CPU-only build
    of TensorFlow or JAX cannot, nor one that does not import)."""
    try:
        import keras
    except ImportError:
        return False

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if keras.backend.backend() == "jax":
        import jax

        return jax.default_backend() == "gpu"
    return False


def _has(module):
    return importlib.util.find_spec(module) is not None


def default_backend(weights=None, model=None, precision="fp32"):
    """The engine for an explicit ``precision`` when none is named: LiteRT
    for int8, Keras for bf16; for fp32, LiteRT for the bundled weights (their
    ``.tflite`` is bundled) on a machine without a GPU when ``ai-edge-litert``
    is installed, else Keras."""
    if precision == "int8":
        return "litert"
    if precision == "bf16" or not _has("ai_edge_litert"):
        return "keras"
    if not _has("keras"):
        return "litert"
    own = weights is None and model is None and os.path.exists(bundled.bundled_tflite_path())
    return "litert" if own and not gpu_visible() else "keras"


def check_path(backend, precision):
    """Raises ValueError for an engine and precision that do not go together,
    or bf16 where neither the CPU nor a GPU can do it."""
    if backend == "keras" and precision == "int8":
        raise ValueError("precision='int8' runs on the litert backend")
    if backend == "keras" and not _has("keras"):
        raise ValueError(
            f"precision={precision!r} runs on Keras, which this install lacks "
            "(pip install vdsr-tf); use 'int8' or 'fp32' (LiteRT)"
        )
    if backend == "litert" and precision == "bf16":
        raise ValueError(
            "precision='bf16' runs on the keras backend (LiteRT's XNNPACK has no bf16 convolutions)"
        )
    if precision == "bf16" and not gpu_visible() and not cpu_has_bf16(cpu_info()[1]):
        raise ValueError(
            "precision='bf16' needs a GPU or a CPU with AVX512-BF16 or AMX-BF16, "
            "and this one has neither; use 'int8' or 'fp32'"
        )


@functools.lru_cache(maxsize=4)
def _converted(loaded, precision, threads):
    """A ``LiteRTPredictor`` of a resolved handle (``_Loaded``) converted to
    ``.tflite`` (once per process, file version, precision and thread count)."""
    return _convert(loaded.model(), precision, threads)


def _convert(model, precision, threads):
    """A ``LiteRTPredictor`` of a Keras model, converted in a temporary
    folder that lives as long as the predictor (int8: ``mixed_int8``,
    calibrated on the bundled sample images)."""
    from vdsr_tf.export.tflite import export_tflite
    from vdsr_tf.inference.litert import LiteRTPredictor

    folder = tempfile.TemporaryDirectory(prefix="vdsr_tflite_", ignore_cleanup_errors=True)
    path = os.path.join(folder.name, f"vdsr.{precision}.tflite")
    logging.info("Converting the model to LiteRT (%s) for the litert backend", precision)
    export_tflite(model, path, quantization="mixed_int8" if precision == "int8" else "fp32")
    predictor = LiteRTPredictor(path, num_threads=threads)
    predictor._folder = folder  # removed with the predictor
    return predictor


def litert_predictor(weights=None, model=None, precision="fp32", threads=None):
    """A ``LiteRTPredictor`` for the bundled weights (their bundled
    ``.tflite``), a preset or weights handle (the preset's own ``.tflite``
    of that precision, else converted) or a Keras model (converted), on
    ``threads`` threads (None: every core this process may use).

    Raises:
        FileNotFoundError: if the weights or the bundled model is missing.
        ValueError: for a precision LiteRT does not run.
    """
    from vdsr_tf.inference.litert import LiteRTPredictor

    check_path("litert", precision)
    if model is not None:
        return _convert(model, precision, threads)
    if weights is None:
        return LiteRTPredictor(bundled.bundled_tflite_path(precision), num_threads=threads)
    source = presets.resolve(weights)
    own = source.tflite(precision)  # the preset's variant, converted from these weights
    if own is not None:
        return LiteRTPredictor(own, num_threads=threads)
    if not _has("keras"):
        raise ValueError(
            f"{source.handle} has no .tflite model of precision {precision!r}, and "
            "converting its weights needs Keras (pip install vdsr-tf)"
        )
    return _converted(_Loaded(source), precision, threads)


def _keras_backend_name():
    """The Keras backend a later ``import keras`` will pick, read without
    importing it (which would import TensorFlow)."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def _versions(candidates):
    """``{package: version}`` of vdsr-tf and the engines ``candidates`` use."""
    from importlib import metadata

    import vdsr_tf

    packages = []
    if any(PATHS[n][0] == "litert" for n in candidates):
        packages.append("ai-edge-litert")
    if any(PATHS[n][0] == "keras" for n in candidates):
        backend = _keras_backend_name()
        packages += ["keras", backend]
    versions = {"vdsr_tf": vdsr_tf.__version__}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def bundled_candidates(backend=None, flags=None):
    """The paths that can run the bundled weights here, in ``PATHS`` order:
    engine installed, its model file present, bf16 only on a CPU with bf16
    dot products, and only ``backend``'s when one is named."""
    flags = cpu_info()[1] if flags is None else flags
    keras_ok = _has("keras") and os.path.exists(bundled.bundled_weights_path())
    litert_ok = _has("ai_edge_litert")
    names = []
    for name, (engine, precision) in PATHS.items():
        if backend and engine != backend:
            continue
        if engine == "keras" and not keras_ok:
            continue
        if engine == "litert" and not (
            litert_ok and os.path.exists(bundled.bundled_tflite_path(precision))
        ):
            continue
        if precision == "bf16" and not cpu_has_bf16(flags, unknown=False):
            continue
        names.append(name)
    return names


def _forward(name, threads):
    """The network function of one path of the bundled weights."""
    engine, precision = PATHS[name]
    if engine == "litert":
        return litert_predictor(precision=precision, threads=threads)
    set_keras_threads(threads)
    return load_network(None, precision)[1]


def resolve_auto(weights=None, model=None, backend=None, threads=None):
    """What ``precision="auto"`` runs.

    Args:
        weights, model: as ``Upscaler`` (both None: the bundled weights).
        backend: restrict the choice to one engine ("keras" or "litert").
        threads: the engines' thread count (None: every core this process
            may use); part of the timing cache's key.

    Returns:
        ``(path name, reason)``, e.g. ``("litert-int8", "the fastest ...")``.
    """

    def exact(why):
        return path_name(backend or default_backend(weights, model, "fp32"), "fp32"), why

    if weights is not None or model is not None:
        return exact(
            "weights other than the bundled ones run exact (fp32): their bf16 and "
            "int8 quality costs were never measured"
        )
    info = bundled.bundled_weights_info() or {}
    costs = info.get("set5_psnr_change") or {}
    if (
        backend in (None, "keras")
        and gpu_visible()
        and _has("keras")
        and os.path.exists(bundled.bundled_weights_path())
        and _keras_sees_gpu()
    ):
        name = "keras-bf16" if within_bound(["keras-bf16"], costs)[0] else "keras-fp32"
        return name, (
            f"a GPU is visible: Keras runs the network there in {PATHS[name][1]}"
            + (
                f" (loses {quality_loss(name, costs):.3f} dB on Set5 at worst)"
                if name == "keras-bf16"
                else ""
            )
        )
    candidates = bundled_candidates(backend)
    kept, refused = within_bound(candidates, costs)
    if not kept:  # nothing runs here: the exact path's loader says why
        return exact("no path for the bundled weights is installed")
    if len(kept) == 1:
        return kept[0], "the one path available here" + not_eligible(refused)
    key = cache_key(kept, threads or default_threads(), info.get("sha256"), _versions(kept))
    timings, source = read_timings(key), None
    if timings is None:
        with measuring_lock(key):
            timings = read_timings(key)  # another process may have measured meanwhile
            if timings is None:
                timings, source = _time_paths(kept, threads, key, refused)
    if timings is None:
        return exact("every other path failed here" + not_eligible(refused))
    name, reason = choose(timings, costs)
    source = source or f"measured earlier, cached in {cache_file(key)}"
    return name, f"{reason}{not_eligible(refused)} ({source})"


def _time_paths(names, threads, key, refused):
    """Times ``names`` and caches the result; a path that fails to load or
    run is left out (into ``refused``), and then nothing is cached, so the
    next process tries it again. Returns ``(timings or None, source)``."""
    logging.info("Timing %s on this machine (once; the result is cached)", ", ".join(names))
    forwards, failed = {}, {}
    for name in names:
        try:
            forwards[name] = _forward(name, threads)
        except Exception as e:  # noqa: BLE001 -- an engine that cannot load here is no candidate
            failed[name] = first_line(e)
    timings = measure(forwards, failed=failed)
    refused.update({n: f"failed here: {why}" for n, why in failed.items()})
    if failed:
        logging.warning(
            "Not timed, failed here: %s", "; ".join(f"{n}: {w}" for n, w in failed.items())
        )
        return timings or None, "measured now; not cached, since a path failed"
    where = write_timings(key, timings)
    return timings, (
        f"measured now, cached in {where}"
        if where
        else "measured now; not cached (the cache folder cannot be written)"
    )
