"""Beam with a worker that dies: ``vdsr-upscale-beam`` with one worker SIGKILLed, then rerun.

    python tools/beam_kill_trial.py [--files=300] [--corrupt_every=50] [--kill_after=60]

Makes ``--files`` small PNGs, every ``--corrupt_every``-th one truncated
(2 % by default), and runs the installed pipeline as a user would, on the
DirectRunner in multi-process mode::

    vdsr-upscale-beam --input_pattern='IN/*.png' --output_dir=OUT --scale=2 \\
        --precision=fp32 --direct_running_mode=multi_processing --direct_num_workers=2

Once ``--kill_after`` outputs exist it SIGKILLs one SDK worker process (the
Python one, not the ``/bin/sh`` that launched it) and records what the run
does: its exit status and last line, or that it hung (then, after
``--hang_s``, the whole run is killed). Then it runs the same command again,
the recovery path, and once more. It checks what issue 34 asks:

* every good file has exactly one output, and every output decodes at twice
  the input's size (no half-written file, no second copy);
* every corrupt file is in ``OUT/vdsr_failed.tsv``, and nothing else is;
* no temporary file (``.*.tmp``, ``beam-temp-*``) is left after the rerun;
* the third run writes nothing.

Prints a JSON summary (``ok`` says whether all held); exit status 0 if so.
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

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_files(folder, n, corrupt_every, seed=0):
    """``n`` PNGs (24-40 pixels a side, RGB) in ``folder``; every
    ``corrupt_every``-th truncated. Returns ``(good names, corrupt names)``."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    good, corrupt = [], []
    for i in range(n):
        h, w = rng.integers(24, 41, size=2)
        ramp = np.linspace(0, 255, w)[None, :, None] * np.linspace(0.3, 1, h)[:, None, None]
        pixels = np.clip(ramp + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        name = f"img_{i:03d}.png"
        path = os.path.join(folder, name)
        Image.fromarray(pixels).save(path)
        if corrupt_every and i % corrupt_every == corrupt_every - 1:
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 3)
            corrupt.append(name)
        else:
            good.append(name)
    return good, corrupt


def beam_command(inputs, outputs, workers=2):
    return [
        sys.executable,
        "-m",
        "vdsr_tf.cli.upscale_beam",
        f"--input_pattern={os.path.join(inputs, '*.png')}",
        f"--output_dir={outputs}",
        "--scale=2",
        "--precision=fp32",
        "--direct_running_mode=multi_processing",
        f"--direct_num_workers={workers}",
    ]


def _children(pid):
    """Every descendant PID of ``pid`` (from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(
                        int(entry)
                    )
            except OSError:
                continue
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def sdk_workers(pid):
    """The Python SDK worker processes under ``pid`` (each is started through
    ``/bin/sh -c``, whose own process is left out)."""
    return [
        child
        for child in _children(pid)
        if any("sdk_worker_main" in a for a in _cmdline(child))
        and not os.path.basename(_cmdline(child)[0]).endswith("sh")
    ]


def _outputs(folder):
    return (
        sorted(n for n in os.listdir(folder) if n.endswith(".png")) if os.path.isdir(folder) else []
    )


def _temporaries(folder):
    if not os.path.isdir(folder):
        return []
    return sorted(
        os.path.relpath(os.path.join(root, n), folder)
        for root, dirs, names in os.walk(folder)
        for n in names + dirs
        if n.endswith(".tmp") or n.startswith("beam-temp-")
    )


def run(command, env, kill_after=None, outputs=None, hang_s=180, seed=0, timeout_s=1800):
    """Runs ``command``; with ``kill_after``, SIGKILLs one SDK worker once that
    many outputs exist. Returns a record of what happened."""
    start = time.monotonic()
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    record = {"killed_worker": None, "hung": False}
    killed_at = None
    while proc.poll() is None:
        now = time.monotonic()
        if kill_after is not None and killed_at is None and len(_outputs(outputs)) >= kill_after:
            workers = sdk_workers(proc.pid)
            if workers:
                victim = random.Random(seed).choice(sorted(workers))
                os.kill(victim, signal.SIGKILL)
                killed_at = now
                record["killed_worker"] = {"pid": victim, "outputs_then": len(_outputs(outputs))}
        if (killed_at is not None and now - killed_at > hang_s) or now - start > timeout_s:
            record["hung"] = True
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    _, err = proc.communicate()
    for pid in _children(proc.pid):  # a hung run's workers, if any outlived it
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    ours = [
        line
        for line in err.splitlines()
        if line.startswith("vdsr-upscale-beam:") or re.match(r"\d+ written, ", line)
    ]
    record.update(
        returncode=proc.returncode,
        seconds=round(time.monotonic() - start, 1),
        lines=ours,
        outputs_after=len(_outputs(outputs)),
        temporaries_after=_temporaries(outputs),
    )
    if killed_at is not None:
        record["seconds_after_kill"] = round(time.monotonic() - killed_at, 1)
    return record


def trial(workdir, files=300, corrupt_every=50, kill_after=60, workers=2, hang_s=180, log=print):
    """Runs the trial in ``workdir``; returns the summary dict."""
    inputs, outputs = os.path.join(workdir, "in"), os.path.join(workdir, "out")
    good, corrupt = make_files(inputs, files, corrupt_every)
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    command = beam_command(inputs, outputs, workers)
    runs = {}
    runs["killed"] = run(command, env, kill_after, outputs, hang_s)
    log(f"run with a killed worker: {runs['killed']}")
    runs["rerun"] = run(command, env, outputs=outputs)
    log(f"rerun: {runs['rerun']}")
    before = {n: os.stat(os.path.join(outputs, n)).st_mtime_ns for n in _outputs(outputs)}
    runs["again"] = run(command, env, outputs=outputs)
    log(f"third run: {runs['again']}")
    after = {n: os.stat(os.path.join(outputs, n)).st_mtime_ns for n in _outputs(outputs)}

    failures = []
    produced = _outputs(outputs)
    missing = sorted(set(good) - set(produced))
    extra = sorted(set(produced) - set(good))
    bad_size = []
    for name in produced:
        try:
            with (
                Image.open(os.path.join(inputs, name)) as src,
                Image.open(os.path.join(outputs, name)) as out,
            ):
                out.load()
                if out.size != (2 * src.width, 2 * src.height):
                    bad_size.append(name)
        except Exception:  # noqa: BLE001 -- an undecodable output is the failure looked for
            bad_size.append(name)
    dead_path = os.path.join(outputs, "vdsr_failed.tsv")
    dead = []
    if os.path.exists(dead_path):
        with open(dead_path) as f:
            dead = sorted(os.path.basename(line.split("\t")[0]) for line in f if line.strip())
    if missing:
        failures.append(f"{len(missing)} good files without output: {missing[:5]}")
    if extra:
        failures.append(f"outputs of no good file: {extra[:5]}")
    if bad_size:
        failures.append(f"outputs that do not decode at 2x: {bad_size[:5]}")
    if dead != sorted(corrupt):
        failures.append(f"dead letter {dead}, corrupt files {sorted(corrupt)}")
    if runs["rerun"]["temporaries_after"] or runs["again"]["temporaries_after"]:
        failures.append(f"temporary files left: {runs['again']['temporaries_after']}")
    rewritten = sorted(n for n in after if before.get(n) != after[n])
    if rewritten:
        failures.append(f"the third run wrote {len(rewritten)} files: {rewritten[:5]}")
    if runs["killed"]["killed_worker"] is None:
        failures.append("no worker was killed (the run ended first: lower --kill_after)")
    summary = {
        "files": files,
        "corrupt": len(corrupt),
        "good": len(good),
        "good_files_lost": len(missing),
        "outputs_invalid": len(bad_size),
        "dead_letter_lines": len(dead),
        "third_run_wrote": len(rewritten),
        "runs": runs,
        "failures": failures,
        "ok": not failures,
    }
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--corrupt_every", type=int, default=50)
    parser.add_argument("--kill_after", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hang_s", type=float, default=180)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="vdsr_beam_trial_")
    summary = trial(
        workdir,
        args.files,
        args.corrupt_every,
        args.kill_after,
        args.workers,
        args.hang_s,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
