"""The GPU release job: one more cosine cycle of the bundled model's training chain.

Run it through tools/train_release.sh (which installs the wheelhouse and sets
KERAS_BACKEND=jax). It

1. reads the chain's training state (``tools/release/state.npz``; none means
   a fresh start) and the training images (``--data``: the wheelhouse's
   ``train_y.npz``);
2. trains the 20 x 64 network with the fast engine (``vdsr_tf.training.jax_engine``),
   ``release`` preset, for one full cosine cycle fitted to the time budget
   (a warm restart from the state's weights: every lease ends with a finished
   model, whatever follows);
3. scores it on Set5, Set14 and B100 at x2/x3/x4 on Y planes
   (``--bench``: the wheelhouse's ``bench_y.npz``) with the project's numpy
   metrics, a quick check (the reference scores come from ``vdsr-eval`` on
   the RGB files, back on the CPU machine);
4. writes a flat folder: ``vdsr.weights.h5``, ``state.npz`` (weights-only
   state with the chain's counters), ``scores.json``, ``log.json``,
   ``history.csv``, ``config.json`` (and ``job.log`` from the shell script).

``--score_only``: step 3 alone, for ``--state``'s weights (a run whose
scoring failed, or a cycle scored again to compare like with like): writes
``scores.json`` and trains nothing.

``--dry_run``: a 3-layer, 8-filter network, 24 x 24 patches, a 20 s budget
(unless ``--budget_s`` says otherwise), the bundled sample images for training
and scoring: every stage, on CPU, in well under 3 minutes. The test suite runs
it as BUILD.md writes it.
"""

import datetime
import json
import os
import sys
import time

from absl import flags, logging

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from vdsr_tf import cli  # noqa: E402  (no TensorFlow, no Keras)

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "Flat output folder.")
flags.DEFINE_float(
    "budget_s",
    None,
    "Seconds for the whole job, counted from "
    "$VDSR_JOB_START (set by train_release.sh before the install); "
    "default 540, 20 for --dry_run.",
)
flags.DEFINE_string(
    "state",
    None,
    "Training state to continue from (default: tools/release/state.npz; 'none' for a fresh start).",
)
flags.DEFINE_string("data", None, "Training images: a .npz of Y planes or a folder.")
flags.DEFINE_string("bench", None, "Benchmark Y planes (.npz from tools/wheelhouse.sh).")
flags.DEFINE_float(
    "eval_reserve_s",
    None,
    "Seconds kept for scoring and writing "
    "(default 45: the H200 scored the nine cells in 21 s; 4 for --dry_run).",
)
flags.DEFINE_float(
    "peak_lr",
    None,
    "Peak learning rate of this cycle (default 5e-4 for the first cycle, 3e-4 for later ones).",
)
flags.DEFINE_float(
    "rate_guess",
    40000,
    "Patches/s assumed until measured (sets the "
    "warm-up length; the cycle's end is fitted to the measured rate).",
)
flags.DEFINE_integer(
    "steps_per_call",
    None,
    "Train steps per jitted call (default 200; 5 for --dry_run: on the CPU the "
    "loop is unrolled and its compile time grows with the count).",
)
flags.DEFINE_integer("pool_workers", None, "Processes that build the device pool.")
flags.DEFINE_boolean("dry_run", False, "Tiny network, short budget, bundled samples.")
flags.DEFINE_boolean(
    "score_only",
    False,
    "Only score --state's weights (the job's quick check) into OUTPUT_DIR/scores.json.",
)
flags.DEFINE_multi_string(
    "set",
    [],
    "Config overrides by dotted name, as vdsr-train's --set "
    "(e.g. --set=model.depth=4 for a rehearsal on CPU).",
)

DEFAULT_STATE = os.path.join(REPO, "tools", "release", "state.npz")
SETS = ("Set5", "Set14", "B100")
SCALES = (2, 3, 4)


def _release_config(cycle, steps, dry_run):
    from vdsr_tf import config as C

    updates = {"steps": max(steps, 1), "seed": cycle}
    peak = FLAGS.peak_lr if FLAGS.peak_lr is not None else (5e-4 if cycle == 1 else 3e-4)
    updates["optim.learning_rate"] = peak
    if dry_run:
        updates.update(
            {
                "model.depth": 3,
                "model.filters": 8,
                "data.patch_size": 24,
                "data.batch_size": 8,
                "steps_per_epoch": 10,
            }
        )
    for item in FLAGS.set:
        key, _, value = item.partition("=")
        updates[key.strip()] = value.strip()
    return C.override(C.get_preset("release"), **updates)


def _write_scores(model, bench, dry_run, out):
    """Scores ``model`` in float32 and writes ``out/scores.json``; a failure is
    logged and recorded there (a finished run keeps its weights, state and log).

    Returns:
        ``(results, seconds)``.
    """
    from vdsr_tf.io.atomic import atomic_write_text

    t_eval = time.time()
    try:
        scores = _scores(model, bench, dry_run)
    except Exception as e:
        logging.exception("Scoring failed")
        scores = {
            "error": {"psnr": float("nan"), "ssim": float("nan"), "n": 0, "message": str(e)[:500]}
        }
    results = {
        k: {"psnr": round(v["psnr"], 4), "ssim": round(v["ssim"], 5), "n": v["n"]}
        | ({"message": v["message"]} if "message" in v else {})
        for k, v in scores.items()
    }
    atomic_write_text(os.path.join(out, "scores.json"), json.dumps(results, indent=2))
    return results, time.time() - t_eval


def _score_only(state_path, bench, dry_run, out):
    from vdsr_tf.io import checkpoint
    from vdsr_tf.models.vdsr import build_vdsr

    try:
        meta, weights, _ = checkpoint.read_state(state_path)
        model = build_vdsr(
            depth=meta["config"]["model"]["depth"], filters=meta["config"]["model"]["filters"]
        )
        checkpoint.restore(model, weights)
    except (KeyError, ValueError) as e:
        raise cli.CliError(f"--state: {state_path} has no weights of a VDSR model: {e}") from None
    os.makedirs(out, exist_ok=True)
    results, seconds = _write_scores(model, bench, dry_run, out)
    print(
        json.dumps(
            {
                "state": state_path,
                "cycles": meta.get("cycles"),
                "eval_seconds": round(seconds, 1),
                "scores_psnr": {k: v["psnr"] for k, v in results.items()},
            }
        )
    )
    return 0 if "error" not in results else 1


def _scores(model, bench, dry_run):
    import numpy as np

    from vdsr_tf.evaluation.benchmark import evaluate_pairs, evaluate_set, packed_pairs
    from vdsr_tf.inference.upscaler import Upscaler
    from vdsr_tf.io.images import sample_images_dir

    up = Upscaler(model=model, tile=None)
    out = {}
    if dry_run and not bench:
        for s in SCALES:
            out[f"Samples/x{s}"] = evaluate_set(up, sample_images_dir(), s)
        return out
    with np.load(bench) as packed:
        for name in SETS:
            for s in SCALES:
                out[f"{name}/x{s}"] = evaluate_pairs(up, packed_pairs(packed, name, s), s)
    return out


@cli.entry_point("train_release.sh")
def main(argv):
    del argv
    start = float(os.environ.get("VDSR_JOB_START", time.time()))
    t_main = time.time()
    if not FLAGS.output_dir:
        raise cli.CliError("--output_dir is required")
    # The flags first, before the (slow) imports: a bad one costs nothing.
    out = FLAGS.output_dir
    dry = FLAGS.dry_run
    state_path = FLAGS.state or ("none" if dry else DEFAULT_STATE)
    bench = FLAGS.bench
    if not dry and not bench:
        raise cli.CliError("--bench is required (the wheelhouse's bench_y.npz)")
    if bench and not os.path.isfile(bench):  # found now, not after the training
        raise cli.CliError(f"--bench: no such file: {bench}")
    if FLAGS.score_only:
        if state_path == "none" or not os.path.isfile(state_path):
            raise cli.CliError(f"--score_only needs a --state file, not {state_path}")
    else:
        if state_path not in ("none", DEFAULT_STATE) and not os.path.exists(state_path):
            raise cli.CliError(f"--state: no such file: {state_path}")
        if not (FLAGS.data or dry):
            raise cli.CliError("--data is required (the wheelhouse's train_y.npz)")
    if FLAGS.peak_lr is not None and not FLAGS.peak_lr > 0:
        raise cli.CliError(f"--peak_lr must be > 0, not {FLAGS.peak_lr:g}")
    try:  # --set's names and values (vdsr_tf.config is a light import)
        _release_config(1, 1, dry)
    except (ValueError, KeyError, TypeError) as e:
        raise cli.CliError(f"--set: {e}") from None
    budget = FLAGS.budget_s if FLAGS.budget_s is not None else (20 if dry else 540)
    if budget <= 0:
        raise cli.CliError(f"--budget_s must be > 0, not {budget:g}")
    per_call = FLAGS.steps_per_call if FLAGS.steps_per_call is not None else (5 if dry else 200)
    if per_call < 1:
        raise cli.CliError(f"--steps_per_call must be >= 1, not {per_call}")

    import jax
    import keras
    import numpy as np

    from vdsr_tf import config as config_lib
    from vdsr_tf.io import checkpoint
    from vdsr_tf.io.atomic import atomic_write_text
    from vdsr_tf.io.images import sample_images_dir
    from vdsr_tf.models.vdsr import build_vdsr, flops_per_pixel
    from vdsr_tf.training import jax_engine
    from vdsr_tf.training.callbacks import TimeBudget
    from vdsr_tf.training.trainer import train

    if keras.backend.backend() != "jax":
        raise cli.CliError("run with KERAS_BACKEND=jax (train_release.sh sets it)")
    if FLAGS.score_only:
        return _score_only(state_path, bench, dry, out)
    os.makedirs(out, exist_ok=True)
    prior = {"cycles": 0, "patches_total": 0, "runs": []}
    if state_path != "none" and os.path.exists(state_path):
        prior, _, _ = checkpoint.read_state(state_path)
        prior.setdefault("runs", [])
        logging.info(
            "Continuing the chain of %s: %d cycles, %.1f M patches.",
            state_path,
            prior.get("cycles", 0),
            prior.get("patches_total", 0) / 1e6,
        )
    cycle = int(prior.get("cycles", 0)) + 1

    sources = FLAGS.data or os.path.join(sample_images_dir(), "HR")
    reserve = FLAGS.eval_reserve_s if FLAGS.eval_reserve_s is not None else (4 if dry else 45)
    deadline = time.monotonic() + budget - (time.time() - start) - reserve
    train_left = deadline - time.monotonic()
    rate = 200 if dry else FLAGS.rate_guess
    guess_cfg = _release_config(cycle, 1, dry)
    steps = int(rate * max(train_left - 60, 10) / guess_cfg.data.batch_size)
    cfg = _release_config(cycle, steps, dry)
    k = min(per_call, cfg.steps_per_epoch)
    run_dir = out
    for name in ("checkpoint.npz", "config.json", "history.csv"):
        if os.path.exists(os.path.join(run_dir, name)):
            os.remove(os.path.join(run_dir, name))  # a new cycle, never a resume
    init = state_path if state_path != "none" and os.path.exists(state_path) else None
    # The cycle is fitted to end at the deadline; the hard stop allows a little
    # overrun (out of the scoring reserve) so that the last epoch is not cut.
    callbacks = [
        jax_engine.FitScheduleToDeadline(deadline, multiple=k, floor=2 * cfg.steps_per_epoch),
        TimeBudget(deadline=deadline + reserve / 3),
    ]
    t_train = time.time()
    model, history = train(
        cfg,
        sources,
        run_dir,
        verbose=1,
        extra_callbacks=callbacks,
        engine="fast",
        steps_per_call=k,
        init_from=init,
        pool_workers=FLAGS.pool_workers,
    )
    train_wall = time.time() - t_train
    step = int(np.asarray(model.optimizer.iterations))
    patches = step * cfg.data.batch_size
    rates = history.history.get("patches_per_s", [])
    steady = float(np.median(rates[1:])) if len(rates) > 1 else (rates[0] if rates else 0.0)
    p = cfg.data.patch_size
    flop = 3 * flops_per_pixel(cfg.model.depth, cfg.model.filters) * p * p

    data_hash = checkpoint.read_state(os.path.join(run_dir, "checkpoint.npz"))[0]["data"]
    if prior.get("data") and prior["data"] != data_hash:
        logging.warning(
            "The chain's state was trained on other data (%s, now %s).",
            prior["data"][:12],
            data_hash[:12],
        )
    device = jax.devices()[0]
    total = int(prior.get("patches_total", 0)) + patches
    run = {
        "date": datetime.date.today().isoformat(),
        "device": getattr(device, "device_kind", str(device)),
        "cycle": cycle,
        "peak_lr": cfg.optim.learning_rate,
        "steps": step,
        "patches": patches,
        "train_seconds": round(history.train_seconds, 1),
    }
    # The chain's state is written before scoring: a failed score keeps it.
    meta = {
        "config": config_lib.to_dict(cfg),
        "data": data_hash,
        "cycles": cycle,
        "patches_total": total,
        "epoch": 0,
        "step": 0,
        "runs": prior.get("runs", []) + [run],
    }
    checkpoint.save_state(os.path.join(out, "state.npz"), model, meta, include_optimizer=False)
    os.remove(os.path.join(run_dir, "checkpoint.npz"))  # no optimizer state across restarts

    # Scored in float32 (training computed in bf16).
    scorer = build_vdsr(depth=cfg.model.depth, filters=cfg.model.filters)
    scorer.set_weights(model.get_weights())
    results, eval_s = _write_scores(scorer, bench, dry, out)

    log = {
        "device": run["device"],
        "backend": jax.default_backend(),
        "cycle": cycle,
        "tensorflow_loaded": sys.modules.get("tensorflow") is not None,
        "patch_size": p,
        "batch_size": cfg.data.batch_size,
        "steps_per_call": k,
        "steps": step,
        "patches_this_run": patches,
        "patches_total": total,
        "patches_per_s": round(steady, 1),
        "patches_per_s_41x41": round(steady * p * p / 41**2, 1),
        "tflops": round(steady * flop / 1e12, 2),
        "pool_seconds": round(history.pool_seconds, 2),
        "compile_seconds": round(history.compile_seconds, 2),
        "train_seconds": round(history.train_seconds, 2),
        "train_wall_seconds": round(train_wall, 1),
        "eval_seconds": round(eval_s, 1),
        "startup_seconds": round(t_main - start, 1),
        "wall_seconds": round(time.time() - start, 1),
        "budget_s": budget,
        "peak_lr": cfg.optim.learning_rate,
        "scores_psnr": {k2: v["psnr"] for k2, v in results.items()},
    }
    atomic_write_text(os.path.join(out, "log.json"), json.dumps(log, indent=2))
    print(json.dumps(log))
    return 0


if __name__ == "__main__":
    cli.run(main, "train_release.sh", __name__, __doc__)
