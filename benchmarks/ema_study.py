"""Does an exponential moving average (EMA) of the weights gain at equal patches?

Issue 38 asks for this before the GPU release job adopts one. A reduced-scale
copy of the release chain, on the CPU with the fast engine (KERAS_BACKEND=jax):
the ``release`` preset (Adam, 2 % warm-up, a cosine to zero) at fp32, a smaller
network, ``--cycles`` warm restarts (peak 5e-4 from scratch, then 3e-4 from the
last cycle's final weights, as the chain does), ``--seeds`` seeds.

Every ``--every`` steps a callback folds the weights into one average per
``--decays`` value (a per-step decay d, applied as d ** every), started from
zero and divided by 1 - d ** n (no pull toward the initial weights). At each
cycle's end the final weights and each average are scored on the same
patches' worth of training: Y PSNR of ``--sets`` at x2/x3/x4 (the mean of
those cells, per seed). An average counts as a gain only as
``seed_stats.compare`` says: >= 3 seeds and a gap of the means over twice the
larger seed range.

    KERAS_BACKEND=jax python benchmarks/ema_study.py --output_dir=/tmp/ema

Runs are cached in OUTPUT_DIR (a rerun reads finished ones); the table goes to
OUTPUT_DIR/ema_study.md and .json. ``--dry_run``: a tiny network, a few
steps, the bundled samples (the test suite runs it).
"""

import json
import os
import sys
import time

from absl import flags, logging
from seed_stats import compare, stats

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from vdsr_tf import cli  # noqa: E402

SHARED = os.path.join(os.path.dirname(REPO), "shared", "datasets")
SCALES = (2, 3, 4)

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "Where the runs and the table go.")
flags.DEFINE_integer("depth", 8, "Network depth (the release model: 20).")
flags.DEFINE_integer("filters", 32, "Network width (the release model: 64).")
flags.DEFINE_integer("patch_size", 48, "Patch side (the release preset's).")
flags.DEFINE_integer("batch_size", 32, "Patches per step (the release job: 256).")
flags.DEFINE_integer("steps", 1500, "Steps per cycle.")
flags.DEFINE_integer("cycles", 2, "Cosine cycles, each a warm restart from the last.")
flags.DEFINE_integer("seeds", 3, "Seeds (0..N-1).")
flags.DEFINE_list("decays", ["0.99", "0.999"], "Per-step EMA decays compared.")
flags.DEFINE_integer("every", 10, "Steps between average updates (the engine's epoch).")
flags.DEFINE_integer("steps_per_call", 10, "K of the fast engine.")
flags.DEFINE_list("sets", ["Set5", "Set14"], "Benchmark sets scored.")
flags.DEFINE_list("data", None, "Training image folders (default: ../shared T91 and BSD200).")
flags.DEFINE_boolean("dry_run", False, "Tiny network, a few steps, the bundled samples.")


def weight_average(decays, every):
    """A Keras callback keeping debiased EMAs of the model's weights, updated
    at each epoch end (``every`` steps apart): ``.averages()`` gives
    ``{decay: weights}``."""
    import keras

    class WeightAverage(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.sums = {d: None for d in decays}
            self.updates = 0

        def on_epoch_end(self, epoch, logs=None):
            weights = self.model.get_weights()
            self.updates += 1
            for d in decays:
                f = d**every
                old = self.sums[d] or [0.0 * w for w in weights]
                self.sums[d] = [f * a + (1 - f) * w for a, w in zip(old, weights)]

        def averages(self):
            return {d: [a / (1 - (d**every) ** self.updates) for a in self.sums[d]] for d in decays}

    return WeightAverage()


class Scorer:
    """Y PSNR of the sets at x2/x3/x4 for a list of weights: one compiled model."""

    def __init__(self, bench, sets):
        import numpy as np

        from vdsr_tf.evaluation.benchmark import packed_pairs
        from vdsr_tf.inference.upscaler import Upscaler
        from vdsr_tf.models.vdsr import build_vdsr

        with np.load(bench) as packed:
            self.pairs = {
                (name, s): list(packed_pairs(packed, name, s)) for name in sets for s in SCALES
            }
        self.model = build_vdsr(depth=FLAGS.depth, filters=FLAGS.filters)
        self.upscaler = Upscaler(model=self.model, tile=None)
        self.bicubic = Upscaler("bicubic")

    def __call__(self, weights=None):
        from vdsr_tf.evaluation.benchmark import evaluate_pairs

        up = self.bicubic
        if weights is not None:
            self.model.set_weights(weights)
            up = self.upscaler
        return {
            f"{name}/x{s}": evaluate_pairs(up, pairs, s)["psnr"]
            for (name, s), pairs in self.pairs.items()
        }


def _config(seed, cycle):
    from vdsr_tf import config as C

    return C.override(
        C.get_preset("release"),
        **{
            "model.depth": FLAGS.depth,
            "model.filters": FLAGS.filters,
            "data.patch_size": FLAGS.patch_size,
            "data.batch_size": FLAGS.batch_size,
            "steps": FLAGS.steps,
            "steps_per_epoch": FLAGS.every,
            "seed": 1000 * cycle + seed,
            "optim.learning_rate": 5e-4 if cycle == 1 else 3e-4,
            "mixed_precision": "float32",
        },
    )


def _run(seed, cycle, sources, scorer, decays):
    """One cycle of one seed (or its cached result): scores of the final
    weights and of each average."""
    from vdsr_tf.io.atomic import atomic_write_text
    from vdsr_tf.training.trainer import train

    run_dir = os.path.join(FLAGS.output_dir, f"seed{seed}_cycle{cycle}")
    path = os.path.join(run_dir, "result.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    # A run without its result (stopped part way) starts afresh: a resumed one
    # would average only the steps after the resume.
    for name in ("checkpoint.npz", "config.json", "history.csv"):
        if os.path.exists(os.path.join(run_dir, name)):
            os.remove(os.path.join(run_dir, name))
    # The last cycle's final weights (its state file; the optimizer's state is not carried).
    prev = os.path.join(FLAGS.output_dir, f"seed{seed}_cycle{cycle - 1}", "checkpoint.npz")
    average = weight_average(decays, FLAGS.every)
    t0 = time.time()
    model, _ = train(
        _config(seed, cycle),
        sources,
        run_dir,
        verbose=0,
        extra_callbacks=[average],
        engine="fast",
        steps_per_call=min(FLAGS.steps_per_call, FLAGS.every),
        init_from=prev if cycle > 1 else None,
    )
    seconds = time.time() - t0
    result = {"seconds": round(seconds, 1), "final": scorer(model.get_weights())}
    for d, weights in average.averages().items():
        result[f"ema {d}"] = scorer(weights)
    atomic_write_text(path, json.dumps(result, indent=1))
    logging.info(
        "seed %d cycle %d (%.0f s): %s",
        seed,
        cycle,
        seconds,
        ", ".join(f"{arm} {_mean(v):.3f}" for arm, v in result.items() if arm != "seconds"),
    )
    return result


def _fmt(s):
    """Mean ± half the seed range, to 0.001 dB (the gaps are small)."""
    if s["diverged"]:
        return f"diverged ({s['diverged']}/{s['n']})"
    return f"{s['mean']:.3f} ± {s['range'] / 2:.3f}"


def _mean(cells):
    return sum(cells.values()) / len(cells)


def _bench(sets, dry):
    from vdsr_tf.evaluation.benchmark import pack_benchmark_y
    from vdsr_tf.io.images import sample_images_dir

    path = os.path.join(FLAGS.output_dir, "bench_y.npz")
    root = os.path.dirname(sample_images_dir()) if dry else SHARED
    missing = [s for s in sets if not os.path.isdir(os.path.join(root, s))]
    if missing:
        raise cli.CliError(f"no benchmark set {', '.join(missing)} under {root}")
    if not os.path.exists(path):
        pack_benchmark_y(root, sets, SCALES, path)
    return path


def _claim_output_dir(decays, sources):
    """Runs are cached by seed and cycle only, so an OUTPUT_DIR holds one
    setting: its settings.json is written by the first run and must match
    (more seeds or cycles may be added)."""
    from vdsr_tf.io.atomic import atomic_write_text

    names = ("depth", "filters", "patch_size", "batch_size", "steps", "every", "steps_per_call")
    settings = {name: getattr(FLAGS, name) for name in names}
    settings.update(decays=decays, sets=list(FLAGS.sets), data=sources)
    path = os.path.join(FLAGS.output_dir, "settings.json")
    if os.path.exists(path):
        with open(path) as f:
            held = json.load(f)
        changed = sorted(k for k in settings.keys() | held.keys() if settings.get(k) != held.get(k))
        if changed:
            raise cli.CliError(
                f"{FLAGS.output_dir} holds runs with other {', '.join(changed)}: "
                "give another --output_dir"
            )
        return
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    atomic_write_text(path, json.dumps(settings, indent=1))


@cli.entry_point("ema_study")
def main(argv):
    del argv
    if not FLAGS.output_dir:
        raise cli.CliError("--output_dir is required")
    from vdsr_tf.io.atomic import atomic_write_text
    from vdsr_tf.io.images import sample_images_dir

    dry = FLAGS.dry_run
    if dry:
        for name, value in (
            ("depth", 3),
            ("filters", 4),
            ("patch_size", 16),
            ("batch_size", 4),
            ("steps", 20),
            ("every", 5),
            ("steps_per_call", 5),
            ("seeds", 1),
        ):
            setattr(FLAGS, name, value)
        FLAGS.sets = [os.path.basename(sample_images_dir())]
    try:
        decays = [float(d) for d in FLAGS.decays]
    except ValueError as e:
        raise cli.CliError(f"--decays: {e}") from None
    if not decays or not all(0 < d < 1 for d in decays):
        raise cli.CliError(f"--decays must be in (0, 1): {FLAGS.decays}")
    if min(FLAGS.steps, FLAGS.every, FLAGS.cycles, FLAGS.seeds) < 1:
        raise cli.CliError("--steps, --every, --cycles and --seeds must be >= 1")
    if FLAGS.steps % FLAGS.every:
        raise cli.CliError(f"--every ({FLAGS.every}) must divide --steps ({FLAGS.steps})")
    import keras

    if keras.backend.backend() != "jax":
        raise cli.CliError("run with KERAS_BACKEND=jax (the fast engine)")
    sources = FLAGS.data
    if not sources:
        if dry:
            sources = [os.path.join(sample_images_dir(), "HR")]
        elif os.path.isdir(os.path.join(SHARED, "train")):
            sources = [os.path.join(SHARED, "train", d) for d in ("T91", "BSD200")]
        else:
            raise cli.CliError(f"--data is required (no {SHARED}/train here)")
    _claim_output_dir(decays, sources)
    scorer = Scorer(_bench(FLAGS.sets, dry), FLAGS.sets)
    bicubic = scorer()
    runs = {
        (seed, cycle): _run(seed, cycle, sources, scorer, decays)
        for seed in range(FLAGS.seeds)
        for cycle in range(1, FLAGS.cycles + 1)
    }
    arms = ["final"] + [f"ema {d}" for d in decays]
    cells = len(bicubic)
    lines = [
        f"Networks {FLAGS.depth} x {FLAGS.filters}, `release` preset at fp32, "
        f"{FLAGS.cycles} cosine cycles of {FLAGS.steps} steps of {FLAGS.batch_size} "
        f"{FLAGS.patch_size}² patches, averages updated every {FLAGS.every} steps; "
        f"{FLAGS.seeds} seeds. Mean Y PSNR of {cells} cells ({', '.join(FLAGS.sets)} at "
        f"x2/x3/x4), mean ± half the seed range; bicubic {_mean(bicubic):.3f}.",
        "",
        "| cycle | "
        + " | ".join(arms[1:])
        + " | final | best average − final | per seed | verdict |",
        "|---|" + "---|" * (len(arms) + 3),
    ]
    summary = {"flags": {}, "bicubic": bicubic, "cycles": []}
    for name in ("depth", "filters", "patch_size", "batch_size", "steps", "cycles", "seeds"):
        summary["flags"][name] = getattr(FLAGS, name)
    summary["flags"].update(decays=decays, every=FLAGS.every, sets=FLAGS.sets)
    for cycle in range(1, FLAGS.cycles + 1):
        arm_stats = {
            arm: stats([_mean(runs[(seed, cycle)][arm]) for seed in range(FLAGS.seeds)])
            for arm in arms
        }
        best = max(arms[1:], key=lambda a: arm_stats[a]["mean"])
        gap, verdict = compare(arm_stats[best], arm_stats["final"])
        # The same seed's average and final weights: the paired differences.
        paired = [
            _mean(runs[(seed, cycle)][best]) - _mean(runs[(seed, cycle)]["final"])
            for seed in range(FLAGS.seeds)
        ]
        lines.append(
            f"| {cycle} | "
            + " | ".join(_fmt(arm_stats[a]) for a in arms[1:])
            + f" | {_fmt(arm_stats['final'])} | {best}: {gap:+.3f} | "
            + " / ".join(f"{d:+.3f}" for d in paired)
            + f" | {verdict} |"
        )
        summary["cycles"].append(
            {
                "cycle": cycle,
                "stats": arm_stats,
                "best": best,
                "gap": gap,
                "paired": paired,
                "verdict": verdict,
            }
        )
    summary["runs"] = {f"seed{s}_cycle{c}": r for (s, c), r in runs.items()}
    text = "\n".join(lines) + "\n"
    atomic_write_text(os.path.join(FLAGS.output_dir, "ema_study.md"), text)
    atomic_write_text(
        os.path.join(FLAGS.output_dir, "ema_study.json"), json.dumps(summary, indent=1)
    )
    print(text)
    return 0


if __name__ == "__main__":
    cli.run(main, "ema_study", __name__, __doc__)
