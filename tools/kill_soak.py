"""Kill-and-resume soak: ``vdsr-train`` survives ``kill -9`` and SIGTERM at any moment.

Starts ``vdsr-train`` (a tiny network on the bundled sample images), stops
it after a random time, checks the run folder, and starts the same command
again, ``--kills`` times; then lets the last run finish. ``--signal=KILL``
(the default) kills it outright; ``--signal=TERM`` sends what a preemptible
machine gets (SIGTERM, then about 30 s), and the run must write a
checkpoint at its current step and exit with status 143 within 30 s.

After each kill it checks that

* ``checkpoint.npz`` is absent (killed before the first epoch ended) or
  readable (``vdsr_tf.io.checkpoint.read_state``), and its step counter is at
  most the planned number of steps;

after each restart that

* the weights the resumed run restored (the sha256 that ``vdsr-train``
  logs, computed from the model's variables) equal the checkpoint's that
  were on disk when it started, bit for bit;
* no temporary file of a killed writer is left once the run has resumed;

after each SIGTERM in training that

* the run logged the step it stopped at, exited with 143 (0 if it had
  finished) within 30 s, and the checkpoint on disk is at that step (often
  inside an epoch);

and at the end that the final step count is the planned one, the final
weights equal the last checkpoint's, and ``history.csv`` has each epoch once.
With ``--engine=fast`` an uninterrupted run of the same command is made too,
and the final weights must equal its weights (the batches after a resume are
drawn from the step, so they are the same batches).

    python tools/kill_soak.py --kills=20 --seed=0 [--workdir=DIR] [--json=FILE]
    python tools/kill_soak.py --signal=TERM --kills=10 --engine=fast --backend=jax

Exit status 0 when every check held; the summary is printed (and written to
``--json``).
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from vdsr_tf.io.checkpoint import read_state, weights_digest  # noqa: E402
from vdsr_tf.io.images import sample_images_dir  # noqa: E402

STEPS, STEPS_PER_EPOCH = 150, 3
_LIMIT_S = 600
_RESUMED = re.compile(
    r"Resuming .* at epoch (\d+) \(step (\d+)\); restored weights sha256 "
    r"([0-9a-f]{64})"
)
_STOPPED = re.compile(r"Stopped by SIGTERM at step (\d+): checkpoint written")
_TERM_LIMIT_S = 30  # a preemptible machine's notice


def train_command(
    run_dir, steps=STEPS, steps_per_epoch=STEPS_PER_EPOCH, engine="fit", steps_per_call=1
):
    """The ``vdsr-train`` command of the soak: depth 3, 8 filters, small patches."""
    fast = ["--engine=fast", f"--steps_per_call={steps_per_call}", "--pool_workers=1"]
    return [
        sys.executable,
        "-m",
        "vdsr_tf.cli.train",
        f"--data={os.path.join(sample_images_dir(), 'HR')}",
        f"--output_dir={run_dir}",
        "--preset=paper",
        "--depth=3",
        "--filters=8",
        "--batch_size=4",
        "--patch_size=21",
        f"--steps={steps}",
        f"--steps_per_epoch={steps_per_epoch}",
        "--optimizer=adam",
        "--learning_rate=0.001",
        "--set=optim.schedule=constant",
        "--set=data.patches_per_image=4",
        "--set=data.shuffle_buffer=16",
    ] + (fast if engine == "fast" else [])


def _temporaries(run_dir):
    return sorted(n for n in os.listdir(run_dir) if ".tmp" in n) if os.path.isdir(run_dir) else []


def _checkpoint(run_dir):
    """``(step, digest)`` of the run's checkpoint, None if there is none.

    Raises:
        ValueError: if the checkpoint cannot be read (the failure the soak hunts).
    """
    path = os.path.join(run_dir, "checkpoint.npz")
    if not os.path.exists(path):
        return None
    meta, weights, _ = read_state(path)
    return meta["step"], weights_digest(weights)


_EPOCH = re.compile(r"Epoch (\d+)/\d+")  # fit: at an epoch's start
_FAST_EPOCH = re.compile(r"^vdsr-train: epoch (\d+) \(step \d+\):", re.M)  # fast: at its end


def _epochs_begun(text):
    """``(epochs begun in this attempt, the last one's number)`` from its log."""
    begun = [int(n) for n in _EPOCH.findall(text)]
    if not begun:  # the fast engine logs ends: epoch n ended, so n + 1 began
        begun = [int(n) + 1 for n in _FAST_EPOCH.findall(text)]
        begun = ([begun[0] - 1] + begun) if begun else []
    return len(begun), (begun[-1] if begun else 0)


def _wait_and_stop(proc, log_path, plan, epochs, sig=signal.SIGKILL):
    """Waits for ``proc``; with ``plan = (phase, seconds)`` sends it ``sig``
    that long after its start ("start-up") or after its second epoch began
    ("training": the first one compiles), or when its last epoch (of
    ``epochs``) begins if that comes first: a run resumed near the end (or on
    a fast machine) can finish before the planned moment, and then the
    signal would never land. After a SIGTERM it waits up to 30 s for the
    exit. Returns ``(when, seconds from the signal to the exit)``: ``when``
    is "training +1.20 s" or "start-up, at the last epoch" if it was
    signalled, False if it finished, None if it hung."""
    start, training_since = time.monotonic(), None
    while proc.poll() is None:
        now = time.monotonic()
        if now - start > _LIMIT_S:
            proc.kill()
            proc.wait()
            return None, None
        if plan is not None:
            with open(log_path, errors="replace") as f:
                begun, last = _epochs_begun(f.read())
            if training_since is None and plan[0] == "training" and begun >= 2:
                training_since = now  # one epoch (and the compile) done
            origin = start if plan[0] == "start-up" else training_since
            planned = origin is not None and now - origin >= plan[1]
            if planned or last == epochs:
                sent = time.monotonic()
                proc.send_signal(sig)
                try:
                    proc.wait(timeout=_TERM_LIMIT_S if sig == signal.SIGTERM else None)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    return None, None
                when = f"{plan[0]} +{plan[1]:.2f} s" if planned else f"{plan[0]}, at the last epoch"
                return when, time.monotonic() - sent
        time.sleep(0.02)
    return False, None


def soak(
    kills,
    seed=0,
    workdir=None,
    steps=STEPS,
    steps_per_epoch=STEPS_PER_EPOCH,
    window_s=2.5,
    backend="tensorflow",
    log=print,
    sig="KILL",
    engine="fit",
    steps_per_call=1,
):
    """Runs the soak; returns the summary dict (``ok`` says whether all held).

    Args:
        kills: how many times to stop a run.
        seed: seed of the kill times.
        workdir: where the run folder goes (a temporary folder by default).
        steps, steps_per_epoch: the training run's plan.
        window_s: a kill in training lands at a uniform moment of the first
            ``window_s`` seconds after the run's second epoch began.
        backend: ``KERAS_BACKEND`` of the runs; "jax" also makes TensorFlow
            unimportable (the numpy ``PatchSampler`` feeds ``fit``).
        sig: "KILL" (SIGKILL) or "TERM" (SIGTERM: the run must checkpoint
            its current step and exit 143 within 30 s).
        engine: ``vdsr-train --engine``: "fit", or "fast" (JAX backend),
            which is also run once uninterrupted for the final comparison.
        steps_per_call: the fast engine's K (its signal check is per call).
    """
    signum = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM}[sig]
    epochs = -(-steps // steps_per_epoch)
    command = lambda folder: train_command(  # noqa: E731
        folder, steps, steps_per_epoch, engine, steps_per_call
    )
    rng = random.Random(seed)
    workdir = workdir or tempfile.mkdtemp(prefix="vdsr_soak_")
    os.makedirs(workdir, exist_ok=True)
    run_dir = os.path.join(workdir, "run")
    path = [REPO, os.environ.get("PYTHONPATH", "")]
    if backend == "jax":  # the TF-free path: the numpy sampler, TensorFlow unimportable
        block = os.path.join(workdir, "block_tf")
        os.makedirs(block, exist_ok=True)
        with open(os.path.join(block, "sitecustomize.py"), "w") as f:
            f.write("import sys\nsys.modules['tensorflow'] = None\n")
        path.insert(0, block)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(path),
        KERAS_BACKEND=backend,
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONUNBUFFERED="1",
    )
    failures, records, done = [], [], False
    started = time.monotonic()
    attempt = 0
    while not done:
        attempt += 1
        before = _checkpoint(run_dir)
        kill_plan = None
        if sum(r["killed"] for r in records) < kills:
            # A quarter of the kills land in the start-up (import, data,
            # restore), the rest at a uniform moment of the training itself.
            early = rng.random() < 0.25
            kill_plan = (
                ("start-up", rng.uniform(0.2, 8.0))
                if early
                else ("training", rng.uniform(0.0, window_s))
            )
        log_path = os.path.join(workdir, f"attempt_{attempt:03d}.log")
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen(
                command(run_dir),
                cwd=workdir,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            killed, exit_s = _wait_and_stop(proc, log_path, kill_plan, epochs, signum)
        if killed is None:
            failures.append(
                f"attempt {attempt}: hung (no exit in {_LIMIT_S} s, or in "
                f"{_TERM_LIMIT_S} s after a SIGTERM)"
            )
            break
        text = open(log_path, errors="replace").read()
        record = {
            "attempt": attempt,
            "killed": bool(killed),
            "kill": killed or None,
            "step_before": before[0] if before else None,
            "returncode": proc.returncode,
        }
        match = _RESUMED.search(text)
        if before is not None and match:
            record["resumed_step"] = int(match.group(2))
            record["restored_equal"] = match.group(3) == before[1]
            if int(match.group(2)) != before[0] or match.group(3) != before[1]:
                failures.append(
                    f"attempt {attempt}: resumed at step {match.group(2)} with "
                    f"weights {match.group(3)[:12]}, checkpoint had step "
                    f"{before[0]}, weights {before[1][:12]}"
                )
        elif before is not None and not killed:
            failures.append(f"attempt {attempt}: finished without logging its resume")
        try:
            after = _checkpoint(run_dir)
        except ValueError as e:
            failures.append(f"attempt {attempt}: checkpoint unreadable: {e}")
            break
        record["step_after"] = after[0] if after else None
        if after is not None and after[0] > steps:
            failures.append(f"attempt {attempt}: step {after[0]} past the plan of {steps}")
        if killed and signum == signal.SIGTERM:
            failures += _check_term(attempt, record, text, proc.returncode, exit_s, before, after)
            record["mid_epoch"] = record.get("stopped_step", 0) % steps_per_epoch != 0
        if not killed:
            if proc.returncode != 0:
                failures.append(
                    f"attempt {attempt}: exit {proc.returncode}: {text.strip().splitlines()[-1:]}"
                )
                break
            done = True
        records.append(record)
        log(
            f"attempt {attempt}: "
            + (f"SIG{sig} in {record['kill']}" if killed else "finished")
            + (f", stopped at step {record['stopped_step']}" if "stopped_step" in record else "")
            + f"; checkpoint step {record['step_before']} -> {record['step_after']}"
            + (
                f"; resumed bit-identical: {record.get('restored_equal')}"
                if "restored_equal" in record
                else ""
            )
        )
    summary = {
        "kills": sum(r["killed"] for r in records),
        "attempts": len(records),
        "resumes_checked": sum("restored_equal" in r for r in records),
        "resumes_bit_identical": sum(bool(r.get("restored_equal")) for r in records),
        "seconds": round(time.monotonic() - started, 1),
        "seed": seed,
        "backend": backend,
        "engine": engine,
        "signal": f"SIG{sig}",
        "planned_steps": steps,
    }
    if signum == signal.SIGTERM:
        stopped = [r for r in records if "stopped_step" in r]
        summary["term_checkpoints"] = len(stopped)
        summary["term_checkpoints_mid_epoch"] = sum(r["mid_epoch"] for r in stopped)
        summary["term_max_exit_s"] = max((r["exit_s"] for r in stopped), default=None)
    if done:
        final = _checkpoint(run_dir)
        summary["final_step"] = final[0] if final else None
        if not final or final[0] != steps:
            failures.append(f"final step {final and final[0]}, planned {steps}")
        import numpy as np

        from vdsr_tf.models.vdsr import build_vdsr

        model = build_vdsr(depth=3, filters=8)
        model.load_weights(os.path.join(run_dir, "vdsr.weights.h5"))
        if final and weights_digest([np.asarray(w) for w in model.weights]) != final[1]:
            failures.append("final weights differ from the last checkpoint's")
        with open(os.path.join(run_dir, "history.csv")) as f:
            epochs = [int(line.split(",")[0]) for line in f.read().splitlines()[1:]]
        summary["history_epochs"] = len(epochs)
        if epochs != list(range(-(-steps // steps_per_epoch))):
            failures.append(f"history.csv epochs {epochs}")
        if engine == "fast":  # the same command, never interrupted
            reference = os.path.join(workdir, "uninterrupted")
            with open(os.path.join(workdir, "uninterrupted.log"), "w") as log_file:
                subprocess.run(
                    command(reference),
                    cwd=workdir,
                    env=env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    timeout=_LIMIT_S,
                    check=False,
                )
            other = build_vdsr(depth=3, filters=8)
            other.load_weights(os.path.join(reference, "vdsr.weights.h5"))
            diff = max(
                float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                for a, b in zip(model.weights, other.weights)
            )
            summary["final_max_diff_vs_uninterrupted"] = diff
            if diff > 1e-5:
                failures.append(f"final weights differ from an uninterrupted run's by {diff:g}")
        leftovers = _temporaries(run_dir)
        if leftovers:
            failures.append(f"temporary files left at the end: {leftovers}")
    summary["failures"] = failures
    summary["ok"] = done and not failures
    return summary


def _check_term(attempt, record, text, returncode, exit_s, before, after):
    """The checks of one SIGTERM; fills ``record``, returns the failures."""
    record["exit_s"] = round(exit_s, 2)
    stopped = _STOPPED.search(text)
    if stopped:
        record["stopped_step"] = step = int(stopped.group(1))
        wrong = []
        if returncode != 143:
            wrong.append(f"exit status {returncode}, not 143")
        if after is None or after[0] != step:
            wrong.append(f"checkpoint at step {after and after[0]}, stopped at {step}")
        if exit_s > _TERM_LIMIT_S:
            wrong.append(f"exit {exit_s:.1f} s after the signal")
        return [f"attempt {attempt}: {w}" for w in wrong]
    # No checkpoint logged: the signal came before training began (the default
    # action ends the process; nothing was trained) or after it ended.
    if returncode in (0, -signal.SIGTERM) and (
        after == before or "Training complete" in text or returncode == 0
    ):
        return []
    return [f"attempt {attempt}: exit {returncode} without a checkpoint at its step"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--steps_per_epoch", type=int, default=STEPS_PER_EPOCH)
    parser.add_argument("--window_s", type=float, default=2.5)
    parser.add_argument("--backend", default="tensorflow", choices=["tensorflow", "jax"])
    parser.add_argument("--signal", default="KILL", choices=["KILL", "TERM"])
    parser.add_argument("--engine", default="fit", choices=["fit", "fast"])
    parser.add_argument("--steps_per_call", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    summary = soak(
        args.kills,
        args.seed,
        args.workdir,
        steps=args.steps,
        steps_per_epoch=args.steps_per_epoch,
        window_s=args.window_s,
        backend=args.backend,
        sig=args.signal,
        engine=args.engine,
        steps_per_call=args.steps_per_call,
    )
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
