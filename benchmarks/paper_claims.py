"""The VDSR paper's four claims, reproduced with the project's own trainer.

    python benchmarks/paper_claims.py --output_dir=runs/claims \
        [--claims=residual,clip,depth,scales] [--seeds=3] [--depth=10 --filters=16]
        [--steps=500 --epochs=5 --batch_size=32] [--data=train_y.npz] [--bench=bench_y.npz]
        [--dry_run]

Each claim compares arms (configs) trained with ``vdsr_tf.training.trainer.train`` (``fit``
on TensorFlow, the fast engine on JAX), ``--seeds`` runs per arm, each scored
on Set5's Y planes (MATLAB LR) at x2/x3/x4 after every epoch:

- ``residual``: residual learning against predicting the image itself
  (``model.residual=false``), Adam, the paper's Figure 3 question;
- ``clip``: the ``paper`` preset (summed loss, SGD lr 0.1, momentum 0.9, step
  drops, the adaptive theta/lr clip) against the same with no clip, with a
  fixed clip of every value to theta / 0.1 (the adaptive bound at lr 0.1,
  then fixed), with no clip at lr 0.01, and against Adam (the ``residual``
  claim's base arm) at equal steps;
- ``depth``: ``--depths`` layers, same steps;
- ``scales``: one model for {2, 3, 4} against single-scale models
  (``--single_scales``, default x2, x3 and x4), scored at every scale (the
  paper's Table 2).

Arms that share a config (the base arm is in three claims) run once. A run
whose ``result.json`` exists is not run again, so an interrupted study
resumes. A difference counts only when the gap between arm means exceeds
twice the larger of the two arms' seed ranges (max - min): the tables print
that test. Writes ``claims.json`` and ``claims.md`` (Markdown for BUILD.md)
under ``--output_dir``.

``--dry_run``: 3 x 4 networks, a few steps, the bundled sample images for
training and scoring, one seed, every claim: the code path in under a
minute on 2 CPUs (the test suite runs it through ``benchmarks/gpu_suite.sh``).
"""

import hashlib
import json
import math
import os
import sys
import time

from absl import app, flags, logging
from seed_stats import compare, fmt, stats, within

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "Where the runs and the tables go.")
flags.DEFINE_list("claims", ["residual", "clip", "depth", "scales"], "Claims to test.")
flags.DEFINE_integer("seeds", 3, "Runs per arm (seeds 0..N-1).")
flags.DEFINE_integer("depth", 10, "Depth of the base network (the paper: 20).")
flags.DEFINE_integer("filters", 16, "Width of every network (the paper: 64).")
flags.DEFINE_list("depths", ["5", "10", "20"], "Depths compared by the depth claim.")
flags.DEFINE_list("single_scales", ["2", "3", "4"], "Single-scale models of the scales claim.")
flags.DEFINE_integer("steps", 500, "Training steps of every run.")
flags.DEFINE_integer("epochs", 5, "Scoring points per run (steps / epochs per epoch).")
flags.DEFINE_integer("batch_size", 32, "Patches per step.")
flags.DEFINE_integer("patch_size", 41, "Patch side (the paper: 41).")
flags.DEFINE_string(
    "data",
    None,
    "Training images: folders (comma-separated) or a .npz "
    "of Y planes (default: ../shared/datasets/train/T91,BSD200).",
)
flags.DEFINE_string(
    "bench",
    None,
    "Benchmark Y planes from tools/wheelhouse.sh or "
    "pack_benchmark_y (default: Set5 packed from ../shared/datasets).",
)
flags.DEFINE_string("bench_set", "Set5", "Set scored.")
flags.DEFINE_integer("steps_per_call", 50, "K of the fast engine (JAX).")
flags.DEFINE_enum(
    "mixed_precision",
    None,
    ["float32", "mixed_bfloat16"],
    "Compute policy of every run (default: each preset's own).",
)
flags.DEFINE_boolean("dry_run", False, "Tiny networks, a few steps, the bundled samples.")

SCALES = (2, 3, 4)
SHARED = os.path.join(os.path.dirname(REPO), "shared", "datasets")
ADAM_ARM = "Adam (modern), equal steps"
WITHIN_DB = 0.1  # "as good as": the paper arm at most this far below Adam


def _arms(claim):
    """``[(label, preset, overrides relative to the preset)]`` of a claim."""
    from vdsr_tf import config as C

    base = {"model.depth": FLAGS.depth}
    if claim == "residual":
        return [
            ("residual (paper)", "adam", base),
            ("image (no skip)", "adam", {**base, "model.residual": False}),
        ]
    if claim == "clip":
        paper = C.get_preset("paper")
        theta, lr = paper.model.clip_theta, paper.optim.learning_rate
        return [
            (f"adaptive theta/lr clip, theta {theta:g}, lr {lr:g} (paper preset)", "paper", base),
            (f"no clip, lr {lr:g}", "paper", {**base, "model.clip_theta": None}),
            (
                f"fixed clip {theta / lr:g}, lr {lr:g}",
                "paper",
                {**base, "model.clip_theta": None, "optim.clipvalue": theta / lr},
            ),
            (
                f"no clip, lr {lr / 10:g}",
                "paper",
                {**base, "model.clip_theta": None, "optim.learning_rate": lr / 10},
            ),
            (ADAM_ARM, "adam", base),
        ]
    if claim == "depth":
        return [(f"depth {d}", "adam", {"model.depth": int(d)}) for d in FLAGS.depths]
    if claim == "scales":
        return [("x2, x3, x4 (one model)", "adam", base)] + [
            (f"x{s} only", "adam", {**base, "data.scales": (s,)}) for s in _single_scales()
        ]
    raise app.UsageError(f"Unknown claim {claim!r}; valid: residual, clip, depth, scales")


def _single_scales():
    scales = [int(s) for s in FLAGS.single_scales]
    if not scales or set(scales) - set(SCALES):
        raise app.UsageError(f"--single_scales: expected some of {SCALES}, got {scales}")
    return scales


def _config(preset, overrides, seed):
    from vdsr_tf import config as C

    common = {
        "model.filters": FLAGS.filters,
        "data.patch_size": FLAGS.patch_size,
        "data.batch_size": FLAGS.batch_size,
        "steps": FLAGS.steps,
        "steps_per_epoch": max(1, FLAGS.steps // FLAGS.epochs),
        "seed": seed,
    }
    if preset == "adam":
        # "modern" at the paper's patch size, without weight decay (an L2 term
        # of 1e-4 dwarfs a per-pixel-mean loss; the release preset drops it).
        cfg = C.override(C.get_preset("modern"), **{**common, "model.weight_decay": 0.0})
    else:
        cfg = C.override(C.get_preset("paper"), **common)
    if FLAGS.mixed_precision:
        cfg = C.override(cfg, mixed_precision=FLAGS.mixed_precision)
    return C.override(cfg, **overrides)


class _Scores:
    """Set5 Y PSNR at x2/x3/x4 of a model, from packed Y planes."""

    def __init__(self, bench, set_name):
        import numpy as np

        from vdsr_tf.evaluation.benchmark import packed_pairs

        with np.load(bench) as packed:
            self.pairs = {s: list(packed_pairs(packed, set_name, s)) for s in SCALES}

    def __call__(self, upscaler):
        from vdsr_tf.evaluation.benchmark import evaluate_pairs

        return {s: evaluate_pairs(upscaler, self.pairs[s], s)["psnr"] for s in SCALES}


def _score_callback(scores, curve):
    import keras

    from vdsr_tf.inference.upscaler import Upscaler

    class ScoreEachEpoch(keras.callbacks.Callback):
        upscaler = None

        def on_epoch_end(self, epoch, logs=None):
            # One compiled forward per run; it reads the current weights.
            if self.upscaler is None:
                self.upscaler = Upscaler(model=self.model, tile=None)
            psnr = scores(self.upscaler)
            curve.append(
                {
                    "epoch": epoch + 1,
                    "step": int(self.model.optimizer.iterations),
                    "clip_fraction": float((logs or {}).get("clip_fraction", 0.0)),
                    "loss": float((logs or {}).get("loss", float("nan"))),
                    **{f"x{s}": float(v) for s, v in psnr.items()},
                }
            )
            logging.info(
                "  epoch %d: %s", epoch + 1, " ".join(f"x{s} {v:.2f}" for s, v in psnr.items())
            )

    return ScoreEachEpoch()


def _run(cfg, sources, run_dir, scores):
    """Trains one run (or reads its result) and returns the result dict."""
    import keras

    from vdsr_tf import config as C
    from vdsr_tf.io.atomic import atomic_write_text
    from vdsr_tf.training.trainer import train

    path = os.path.join(run_dir, "result.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    curve = []
    engine = "fast" if keras.backend.backend() == "jax" else "fit"
    t0 = time.time()
    # A diverged run (loss NaN) stops there: its scores say so, and the rest would
    # cost as much as a run that trains.
    callbacks = [_score_callback(scores, curve), keras.callbacks.TerminateOnNaN()]
    train(
        cfg,
        sources,
        run_dir,
        verbose=0,
        extra_callbacks=callbacks,
        engine=engine,
        steps_per_call=min(FLAGS.steps_per_call, cfg.steps_per_epoch),
    )
    result = {
        "config": C.to_dict(cfg),
        "seconds": round(time.time() - t0, 1),
        "engine": engine,
        "curve": curve,
    }
    atomic_write_text(path, json.dumps(result, indent=1))
    return result


def _final(results, scale):
    """Stats of the last epoch's PSNR; a run whose loss is not finite diverged."""
    return stats(
        [
            r["curve"][-1][f"x{scale}"]
            if r["curve"] and math.isfinite(r["curve"][-1]["loss"])
            else float("nan")
            for r in results
        ]
    )


def _above_bicubic(results, bicubic):
    """Seeds whose last scores are above bicubic at every scale (NaN, diverged, is not)."""
    return sum(1 for r in results if all(_final([r], s)["mean"] > bicubic[s] for s in SCALES))


def _mean_over_scales(result, i):
    """A run's Set5 PSNR at its i-th score averaged over the scales; NaN past a
    divergence (a non-finite loss, or a run stopped before it)."""
    if i >= len(result["curve"]) or not math.isfinite(result["curve"][i]["loss"]):
        return float("nan")
    return sum(result["curve"][i][f"x{s}"] for s in SCALES) / len(SCALES)


def _table(claim, arms, runs, bicubic):
    labels = [label for label, *_ in arms]
    lines = [
        "| arm | "
        + " | ".join(f"Set5 x{s}" for s in SCALES)
        + " | seeds above bicubic at every scale | s/run |",
        "|---|" + "---|" * (len(SCALES) + 2),
    ]
    lines.append("| bicubic | " + " | ".join(f"{bicubic[s]:.2f}" for s in SCALES) + " | - | - |")
    for label in labels:
        rs = runs[label]
        lines.append(
            f"| {label} | "
            + " | ".join(fmt(_final(rs, s)) for s in SCALES)
            + f" | {_above_bicubic(rs, bicubic)}/{len(rs)}"
            + f" | {sum(r['seconds'] for r in rs) / len(rs):.0f} |"
        )
    tests = []
    first = labels[0]
    if claim in ("residual", "clip"):
        for label in labels[1:]:
            for s in SCALES:
                a, b = _final(runs[first], s), _final(runs[label], s)
                if label == ADAM_ARM:  # "as good as Adam"
                    gap, verdict = within(a, b, WITHIN_DB)
                    tests.append(
                        (f"{first} within {WITHIN_DB:g} dB of {label} or better", s, gap, verdict)
                    )
                else:
                    gap, verdict = compare(a, b)
                    tests.append((f"{first} > {label}", s, gap, verdict))
    elif claim == "depth":
        for lo, hi in zip(labels, labels[1:]):
            for s in SCALES:
                gap, verdict = compare(_final(runs[hi], s), _final(runs[lo], s))
                tests.append((f"{hi} > {lo}", s, gap, verdict))
    elif claim == "scales":
        for s in _single_scales():
            single = f"x{s} only"
            gap, verdict = compare(_final(runs[single], s), _final(runs[first], s))
            # "As good as": the single-scale model is not better by more than
            # twice the spread.
            tests.append((f"{single} better than one model at x{s}", s, gap, verdict))
            for other in SCALES:
                if other != s:
                    gap, verdict = compare(_final(runs[first], other), _final(runs[single], other))
                    tests.append((f"one model > {single} at x{other}", other, gap, verdict))
    lines += ["", "| test | scale | gap dB | gap > 2 x spread? |", "|---|---|---|---|"]
    lines += [f"| {t} | x{s} | {g:+.2f} | {v} |" for t, s, g, v in tests]
    # Convergence: the first arm against the one it should beat sooner (the
    # image-predicting network; SGD at a tenth of the learning rate).
    against = {"residual": 1, "clip": 3}.get(claim)
    if against is not None:
        lines += [
            "",
            "Convergence (Set5 PSNR averaged over x2/x3/x4, over seeds):",
            "",
            "| step | " + " | ".join(labels) + f" | first > {labels[against]} by > 2 x spread? |",
            "|---|" + "---|" * (len(labels) + 1),
        ]
        steps = [
            c["step"]
            for c in max((r for rs in runs.values() for r in rs), key=lambda r: len(r["curve"]))[
                "curve"
            ]
        ]
        for i, step in enumerate(steps):
            cells = [stats([_mean_over_scales(r, i) for r in runs[label]]) for label in labels]
            gap, verdict = compare(cells[0], cells[against])
            lines.append(
                f"| {step} | " + " | ".join(fmt(c) for c in cells) + f" | {gap:+.2f}: {verdict} |"
            )
    if claim == "clip":
        lines += ["", "| arm | clip_fraction, first epoch | last epoch |", "|---|---|---|"]
        for label in labels:
            rs = runs[label]
            first_cf = sum(r["curve"][0]["clip_fraction"] for r in rs) / len(rs)
            last_cf = sum(r["curve"][-1]["clip_fraction"] for r in rs) / len(rs)
            lines.append(f"| {label} | {first_cf:.4f} | {last_cf:.4f} |")
    return lines, tests


def _default_bench(out):
    from vdsr_tf.evaluation.benchmark import pack_benchmark_y
    from vdsr_tf.io.images import sample_images_dir

    path = os.path.join(out, "bench_y.npz")
    if not os.path.exists(path):
        if FLAGS.dry_run:
            pack_benchmark_y(os.path.dirname(sample_images_dir()), [FLAGS.bench_set], SCALES, path)
        elif os.path.isdir(os.path.join(SHARED, FLAGS.bench_set)):
            pack_benchmark_y(SHARED, [FLAGS.bench_set], SCALES, path)
        else:
            raise app.UsageError(f"--bench is required (no {SHARED}/{FLAGS.bench_set} here)")
    return path


def main(argv):
    del argv
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    import keras

    from vdsr_tf import config as C
    from vdsr_tf.inference.upscaler import Upscaler
    from vdsr_tf.io.atomic import atomic_write_text
    from vdsr_tf.io.images import sample_images_dir

    out = FLAGS.output_dir
    os.makedirs(out, exist_ok=True)
    if FLAGS.dry_run:
        for name, value in (
            ("depth", 3),
            ("filters", 4),
            ("steps", 4),
            ("epochs", 2),
            ("batch_size", 4),
            ("patch_size", 16),
            ("seeds", 1),
        ):
            setattr(FLAGS, name, value)
        FLAGS.depths = ["2", "3"]
        if not FLAGS.bench:
            FLAGS.bench_set = os.path.basename(sample_images_dir())
    sources = FLAGS.data
    if not sources:
        if FLAGS.dry_run:
            sources = os.path.join(sample_images_dir(), "HR")
        elif os.path.isdir(os.path.join(SHARED, "train")):
            sources = ",".join(os.path.join(SHARED, "train", d) for d in ("T91", "BSD200"))
        else:
            raise app.UsageError(f"--data is required (no {SHARED}/train here)")
    bench = FLAGS.bench or _default_bench(out)
    set_name = FLAGS.bench_set
    scores = _Scores(bench, set_name)
    bicubic = scores(Upscaler("bicubic"))
    report = [
        f"Backend {keras.backend.backend()}; networks {FLAGS.depth} x {FLAGS.filters} "
        f"(depth x width) unless named; {FLAGS.steps} steps of batch {FLAGS.batch_size}, "
        f"{FLAGS.patch_size} x {FLAGS.patch_size}; {FLAGS.seeds} seeds per arm; "
        f"{set_name} Y PSNR, mean ± half the seed range."
    ]
    summary = {
        "settings": {
            k: getattr(FLAGS, k)
            for k in (
                "depth",
                "filters",
                "depths",
                "steps",
                "epochs",
                "batch_size",
                "patch_size",
                "seeds",
            )
        },
        "backend": keras.backend.backend(),
        "bicubic": bicubic,
        "claims": {},
    }
    done = {}
    for claim in FLAGS.claims:
        arms = _arms(claim)
        runs = {}
        for label, preset, overrides in arms:
            runs[label] = []
            for seed in range(FLAGS.seeds):
                cfg = _config(preset, overrides, seed)
                key = json.dumps(C.to_dict(cfg), sort_keys=True)
                if key not in done:
                    # Named by the config alone, so that a rerun with other
                    # claims finds the runs they share.
                    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
                    run_dir = os.path.join(out, "runs", digest)
                    logging.info("%s / %s / seed %d -> %s", claim, label, seed, run_dir)
                    done[key] = _run(cfg, sources, run_dir, scores)
                runs[label].append(done[key])
        lines, tests = _table(claim, arms, runs, bicubic)
        report += ["", f"#### {claim}", ""] + lines
        summary["claims"][claim] = {
            "arms": {
                label: {f"x{s}": _final(runs[label], s) for s in SCALES} for label, *_ in arms
            },
            "tests": [{"test": t, "scale": s, "gap": g, "verdict": v} for t, s, g, v in tests],
        }
        atomic_write_text(os.path.join(out, "claims.md"), "\n".join(report) + "\n")
    atomic_write_text(os.path.join(out, "claims.json"), json.dumps(summary, indent=1))
    print("\n".join(report))


if __name__ == "__main__":
    app.run(main)
