"""Presets from any weights: ``vdsr-export --format=preset``.

``export_preset`` writes a preset folder (``vdsr_tf.io.presets``) from any
weights handle, with what is known of them carried into ``metadata.json``:
the source preset's metadata, or, for a ``vdsr-train`` run's weights, the
recipe from its ``config.json`` and the patches seen from its checkpoint;
``vdsr-eval --json``'s scores when given; and optionally the LiteRT
variants (fp32 and ``mixed_int8``), recorded with their sha256 and the
weights' sha256 they were converted from, which ``vdsr-upscale
--backend=litert`` then runs instead of converting.
"""

import json
import os

from vdsr_tf.export.tflite import export_tflite
from vdsr_tf.io import presets
from vdsr_tf.io.atomic import atomic_directory
from vdsr_tf.models.vdsr import (
    build_args,
    float32_copy,
    load_source,
    write_preset,
    write_preset_files,
)

# The LiteRT variants of a preset: the engine's precision -> quantization.
TFLITE_VARIANTS = {"fp32": "fp32", "int8": "mixed_int8"}
# Metadata that describes the files of one preset (or its place: "handle"), not the weights.
_FILE_KEYS = (
    "format", "sha256", "tflite", "date_saved", "vdsr_tf_version", "keras_version", "handle",
)  # fmt: skip
# What describes the scores, and goes stale when new ones come.
_SCORE_KEYS = ("scores", "paper", "below_paper", "label")


def inherited_metadata(source):
    """What ``source``'s metadata (or its ``vdsr-train`` run folder) says of
    the weights, without what describes its files."""
    meta = {k: v for k, v in (source.metadata or {}).items() if k not in _FILE_KEYS}
    folder = os.path.dirname(os.path.abspath(source.weights))
    run_config = os.path.join(folder, presets.CONFIG)
    if source.metadata is None and os.path.basename(source.weights) == presets.RUN_WEIGHTS:
        try:
            with open(run_config) as f:
                config = json.load(f)
        except (OSError, ValueError):
            return meta
        if "optim" in config and "data" in config:
            meta["recipe"] = _recipe(config)
        checkpoint = os.path.join(folder, "checkpoint.npz")
        if os.path.isfile(checkpoint):
            from vdsr_tf.io.checkpoint import read_state

            try:
                meta["patches_seen"] = int(read_state(checkpoint)[0].get("patches_total", 0))
            except (OSError, ValueError):  # a damaged checkpoint: the count is unknown
                pass
    return meta


def _recipe(config):
    optim, data = config["optim"], config["data"]
    return (
        f"vdsr-train: {optim['optimizer']} at lr {optim['learning_rate']:g} "
        f"({optim['schedule']} schedule), {config['steps']} steps of {data['batch_size']} "
        f"{data['patch_size']}x{data['patch_size']} patches, scales "
        f"{'/'.join(str(s) for s in data['scales'])}, {config.get('mixed_precision', 'float32')}"
    )


def scores_from_eval(results):
    """The ``scores`` of ``vdsr-eval --json``'s results (the bicubic
    baseline left out), and the paper's PSNR for the same cells.

    Raises:
        ValueError: for a file that is not ``vdsr-eval``'s JSON.
    """
    scores = {}
    for name, cells in results.items():
        if name == "bicubic":
            continue
        if not isinstance(cells, dict) or not all(
            isinstance(c, dict) and "psnr" in c for c in cells.values()
        ):
            raise ValueError(f"not vdsr-eval --json results: {name!r} has no PSNR per scale")
        scores[name] = {x: {k: c[k] for k in ("psnr", "ssim") if k in c} for x, c in cells.items()}
    if not scores:
        raise ValueError("vdsr-eval --json results with no set")
    paper = {
        name: {x: presets.PAPER_PSNR[name][x] for x in cells if x in presets.PAPER_PSNR[name]}
        for name, cells in scores.items()
        if name in presets.PAPER_PSNR
    }
    return scores, {k: v for k, v in paper.items() if v}


def calibration_set(sources):
    """``(planes, description)`` of an int8 calibration set: the Y planes of
    ``sources`` (image files and folders) and what ``add_tflite`` records,
    "N images: T91, BSD200".

    Raises:
        FileNotFoundError: a source that does not exist.
    """
    from vdsr_tf.data.degradation import load_y_planes

    planes = load_y_planes(sources)
    names = ", ".join(os.path.basename(os.path.normpath(p)) for p in sources)
    return planes, f"{len(planes)} images: {names}"


def add_tflite(folder, model, metadata, representative_planes=None, calibration=None):
    """Writes the LiteRT variants of ``model`` into a preset ``folder``
    (``vdsr.fp32.tflite``, ``vdsr.mixed_int8.tflite``) and records them in
    ``metadata["tflite"]`` (file, quantization, bytes, sha256, the weights'
    sha256, ops; the int8 calibration). ``representative_planes``: the int8
    calibration's Y planes (None: the bundled samples), named by
    ``calibration``."""
    records = {}
    for precision, quantization in TFLITE_VARIANTS.items():
        name = f"vdsr.{quantization}.tflite"
        result = export_tflite(
            model,
            os.path.join(folder, name),
            quantization=quantization,
            representative_planes=representative_planes,
        )
        records[precision] = {
            "file": name,
            "quantization": quantization,
            "bytes": result["bytes"],
            "sha256": presets.file_sha256(result["path"]),
            "weights_sha256": metadata["sha256"],
            "ops": result["ops"],
        }
    records["int8"]["calibration"] = calibration or "the bundled sample images"
    metadata["tflite"] = records
    return records


def export_preset(
    handle,
    folder,
    scores=None,
    metadata=None,
    tflite=False,
    representative_planes=None,
    calibration=None,
    overwrite=False,
):
    """Writes the preset folder of the weights ``handle`` names, atomically.

    Args:
        handle: any weights handle (``vdsr_tf.io.presets.resolve``; None:
            the bundled weights).
        folder: the preset folder to write.
        scores: ``vdsr-eval --json``'s results for these weights, or None.
        metadata: more metadata (wins over what is inherited).
        tflite: also write the LiteRT variants (fp32 and ``mixed_int8``).
        representative_planes, calibration: the int8 calibration's Y planes
            and their description (None: the bundled samples).
        overwrite: replace an existing ``folder``.

    Returns:
        The metadata written.

    Raises:
        FileNotFoundError, ValueError, ImportError, OSError: as ``resolve``;
            FileExistsError for an existing folder without ``overwrite``.
    """
    source = presets.resolve(handle)
    model = load_source(source)
    meta = inherited_metadata(source)
    if scores is not None:
        for key in _SCORE_KEYS:  # of the old scores
            meta.pop(key, None)
        meta["scores"], meta["paper"] = scores_from_eval(scores)
    meta.update(metadata or {})
    with atomic_directory(os.fspath(folder), overwrite=overwrite) as tmp:
        meta = write_preset(model, tmp, meta)
        if tflite:
            add_tflite(tmp, float32_copy(model), meta, representative_planes, calibration)
            write_preset_files(tmp, build_args(model), meta)
    return meta
