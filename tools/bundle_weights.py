"""Bundles weights from a release run into the package, if they are better.

    python tools/bundle_weights.py --run=DIR --eval_json=EVAL.json [--version=V] [--force]
    python tools/bundle_weights.py --tflite_only   # re-convert the bundled weights' .tflite files
    python tools/bundle_weights.py --costs_only    # re-measure the paths' Set5 costs

DIR is a train_release.sh output folder (vdsr.weights.h5, state.npz,
log.json); EVAL.json is ``vdsr-eval --json`` of those weights on Set5, Set14
and B100 at x2/x3/x4 (the reference scores). The weights are bundled when
their mean PSNR over the nine cells beats the bundled weights' (or with
--force): the ``"bundled"`` preset folder ``vdsr_tf/presets/bundled``
(``vdsr_tf.io.presets``), written in one swap: a clean 20 x 64
``model.weights.h5`` (no optimizer state), ``config.json``, ``metadata.json``
with the architecture, recipe, patches seen, scores, date, version and the
file's sha256, the ``README.md`` model card, and the LiteRT conversions
``vdsr.fp32.tflite`` and ``vdsr.mixed_int8.tflite`` (the CPU
default and ``--precision=int8``; int8 calibrated on --calibration_data and
checked on Set5) with their sha256 under ``"tflite"``, and every inference
path's Set5 PSNR change against Keras fp32 under ``"set5_psnr_change"``
(LiteRT fp32, Keras bf16, LiteRT int8: what ``precision="auto"`` bounds;
bf16 needs a CPU with AVX512-BF16 or AMX-BF16). Add the CHANGELOG.md entry
and the BUILD.md training-history row by hand, and the cycle's point to the
chain's history with ``tools/chain_chart.py --add`` (bundled or not).
"""

import datetime
import json
import os
import sys

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from vdsr_tf.io.presets import PAPER_PSNR  # noqa: E402 (the repository's package)

FLAGS = flags.FLAGS
flags.DEFINE_string("run", None, "A train_release.sh output folder.")
flags.DEFINE_string("eval_json", None, "vdsr-eval --json of the run's weights.")
flags.DEFINE_string("version", None, "Weights version (default: the date and cycle).")
flags.DEFINE_boolean("force", False, "Bundle even if not better than the bundled weights.")
flags.DEFINE_boolean(
    "tflite_only",
    False,
    "Only convert the bundled weights to the bundled "
    ".tflite files again (and record them in metadata.json).",
)
flags.DEFINE_boolean(
    "costs_only",
    False,
    "Only measure the inference paths' Set5 PSNR "
    "change against Keras fp32 again (and record it in metadata.json).",
)
flags.DEFINE_list(
    "calibration_data",
    [os.path.join(REPO, "..", "shared", "datasets", "train", "T91")],
    "HR image folders whose training patches calibrate the int8 model.",
)
flags.DEFINE_string(
    "set5",
    os.path.join(REPO, "..", "shared", "datasets", "Set5"),
    "Set5 (HR + LR_bicubic) for the inference paths' PSNR change.",
)

PAPER = {s: PAPER_PSNR[s] for s in ("Set5", "Set14", "B100")}


def mean_psnr(scores):
    return sum(scores[s][x]["psnr"] for s in PAPER for x in PAPER[s]) / 9


def bundle_tflite(model, info, folder):
    """Writes the fp32 and mixed_int8 ``.tflite`` files of ``model`` into the
    preset ``folder`` and records them in ``info["tflite"]``."""
    from vdsr_tf.export.preset import add_tflite, calibration_set

    planes, calibration = calibration_set(FLAGS.calibration_data)
    for record in add_tflite(folder, model, info, planes, calibration).values():
        print(f"Bundled {record['file']} ({record['quantization']}, {record['bytes']:,} bytes)")


def record_costs(model, info):
    """Measures each inference path of ``model`` (and the bundled ``.tflite``
    files) on Set5 against Keras fp32 and records ``info["set5_psnr_change"]``
    (``{path: {"x2": dB, ...}}``, negative is a loss) with where it was
    measured."""
    from vdsr_tf.evaluation.benchmark import evaluate_set
    from vdsr_tf.inference.litert import LiteRTPredictor
    from vdsr_tf.inference.precision import cpu_info
    from vdsr_tf.inference.upscaler import Upscaler
    from vdsr_tf.io.bundled import bundled_tflite_path

    def psnr(upscaler):
        return {f"x{s}": evaluate_set(upscaler, FLAGS.set5, s)["psnr"] for s in (2, 3, 4)}

    reference = psnr(Upscaler(model=model, precision="fp32"))
    paths = {
        "litert-fp32": Upscaler(predictor=LiteRTPredictor(bundled_tflite_path("fp32"))),
        "keras-bf16": Upscaler(model=model, precision="bf16"),
        "litert-int8": Upscaler(predictor=LiteRTPredictor(bundled_tflite_path("int8"))),
    }
    info["set5_psnr_change"] = {}
    for name, upscaler in paths.items():
        scores = psnr(upscaler)
        info["set5_psnr_change"][name] = {
            x: round(scores[x] - reference[x], 4) + 0.0 for x in scores
        }  # no -0.0
        print(f"{name} Set5 PSNR change:", info["set5_psnr_change"][name])
    cpu, flags_seen = cpu_info()
    info["set5_psnr_change_measured"] = {
        "date": datetime.date.today().isoformat(),
        "against": "Keras fp32 (vdsr-eval's path)",
        "cpu": cpu
        + " ("
        + " ".join(
            f
            for f in ("avx2", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
            if f in flags_seen
        )
        + ")",
        "command": "python tools/bundle_weights.py --costs_only",
    }


def main(argv):
    del argv
    from vdsr_tf.io.atomic import atomic_directory
    from vdsr_tf.io.bundled import bundled_weights_info
    from vdsr_tf.io.checkpoint import read_state
    from vdsr_tf.io.presets import BUNDLED
    from vdsr_tf.models.vdsr import build_args, build_vdsr, write_preset, write_preset_files

    if FLAGS.tflite_only or FLAGS.costs_only:
        from vdsr_tf.models.loading import load_pretrained

        info, model = bundled_weights_info(), load_pretrained()
        if FLAGS.tflite_only:
            bundle_tflite(model, info, BUNDLED)
        record_costs(model, info)
        write_preset_files(BUNDLED, build_args(model), info)
        return 0
    if not FLAGS.run or not FLAGS.eval_json:
        raise app.UsageError("--run and --eval_json are required (or --tflite_only)")

    with open(FLAGS.eval_json) as f:
        scores = json.load(f)
    missing = [f"{s} {x}" for s in PAPER for x in PAPER[s] if x not in scores.get(s, {})]
    if missing:
        raise app.UsageError(f"{FLAGS.eval_json} lacks {', '.join(missing)}")
    current = bundled_weights_info()
    new_mean = mean_psnr(scores)
    if current and not FLAGS.force and new_mean <= mean_psnr(current["scores"]):
        print(
            f"Not bundled: mean PSNR {new_mean:.3f} <= bundled {mean_psnr(current['scores']):.3f}"
        )
        return 1
    meta, weights, _ = read_state(os.path.join(FLAGS.run, "state.npz"))
    model_cfg = meta["config"]["model"]
    model = build_vdsr(depth=model_cfg["depth"], filters=model_cfg["filters"])
    model.set_weights(weights)
    with open(os.path.join(FLAGS.run, "log.json")) as f:
        log = json.load(f)
    runs = meta.get("runs", [])
    below = [f"{s} {x}" for s in PAPER for x in PAPER[s] if scores[s][x]["psnr"] < PAPER[s][x]]
    # What the preset's metadata keeps of the weights and of the data's terms.
    keep = ("name", "handle", "training_data", "terms", "license")
    info = {k: current[k] for k in keep if current and k in current}
    info.update(
        {
            "version": FLAGS.version or f"{datetime.date.today().isoformat()}.c{meta['cycles']}",
            "date": datetime.date.today().isoformat(),
            "recipe": (
                f"release preset: {meta['config']['optim']['optimizer']}, cosine warm "
                f"restarts ({meta['cycles']} cycles), {meta['config']['data']['patch_size']}"
                f"x{meta['config']['data']['patch_size']} patches, batch "
                f"{meta['config']['data']['batch_size']}, {meta['config']['mixed_precision']},"
                " scales 2/3/4 in one model, the 291 images (T91 + BSD200)"
            ),
            "patches_seen": meta["patches_total"],
            "gpu_seconds": round(sum(r.get("train_seconds", 0) for r in runs), 1),
            "device": log.get("device"),
            "scores": {s: {x: scores[s][x] for x in PAPER[s]} for s in PAPER},
            "paper": PAPER,
            "below_paper": below,
            "label": (
                f"GPU-trained, {meta['cycles']} cycles, {meta['patches_total'] / 1e6:.1f} M "
                f"patches, Set5 x2 = {scores['Set5']['x2']['psnr']:.2f} dB"
                + (
                    f"; below the paper in {len(below)} of 9 cells"
                    if below
                    else "; at or above the paper in all 9 cells"
                )
            ),
        }
    )
    # The whole preset folder in one swap: weights, metadata, card, LiteRT files.
    with atomic_directory(BUNDLED, overwrite=True) as tmp:
        info = write_preset(model, tmp, info)
        bundle_tflite(model, info, tmp)
        write_preset_files(tmp, build_args(model), info)
    record_costs(model, info)  # runs the bundled files, now in place
    write_preset_files(BUNDLED, build_args(model), info)
    print(f"Bundled {BUNDLED} ({info['label']}); sha256 {info['sha256']}")
    return 0


if __name__ == "__main__":
    app.run(main)
