"""Memory of ``vdsr-app`` with several browser tabs at once, per --concurrency.

    python benchmarks/app_load.py [--side=384] [--runs=1:1,4:1,4:4] [--precision=fp32]

Each run (``clients:concurrency``) starts ``vdsr-app --concurrency=C`` in a
fresh process (bundled weights), waits for it to serve, then ``clients``
threads each send one RGB PNG of ``--side`` x ``--side`` at x2 through
Gradio's client at the same moment, as that many tabs would. When all are
done it reads the server's peak resident memory (VmHWM, the process's own:
/proc/PID/status) and its memory before the requests, and stops it. Prints
a Markdown table (BUILD.md, "The web page").
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_integer("side", 384, "Input side in pixels (the output is twice it).")
flags.DEFINE_list("runs", ["1:1", "4:1", "4:4"], "clients:concurrency pairs.")
flags.DEFINE_string("precision", "fp32", "The precision the requests ask for.")


def _memory(pid):
    """(VmRSS, VmHWM) of a process in MB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def _run(image, clients, concurrency, folder):
    from gradio_client import Client, handle_file

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = os.path.join(folder, f"app_{clients}_{concurrency}.log")
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vdsr_tf.cli.app",
            f"--port={port}",
            f"--concurrency={concurrency}",
            f"--precision={FLAGS.precision}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
    )
    try:
        end = time.monotonic() + 600
        while "serving http" not in open(log).read():
            if proc.poll() is not None or time.monotonic() > end:
                raise SystemExit(open(log).read())
            time.sleep(0.5)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=folder)
        idle, _ = _memory(proc.pid)
        start = time.monotonic()
        jobs = [
            client.submit(
                [handle_file(image)],
                "2",
                2.5,
                None,
                None,
                FLAGS.precision,
                False,
                "input",
                api_name="/upscale",
            )
            for _ in range(clients)
        ]
        done = [job.result(timeout=3600) for job in jobs]
        seconds = time.monotonic() - start
        assert all(len(d[2]) == 1 for d in done)
        _, peak = _memory(proc.pid)
        return idle, peak, seconds
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)


def main(argv):
    del argv
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per HTTP request
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        image = os.path.join(folder, "input.png")
        ramp = np.linspace(0, 255, FLAGS.side, dtype=np.float32)
        pixels = ramp[None, :, None] * 0.6 + rng.normal(0, 20, (FLAGS.side, FLAGS.side, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(image)
        rows = []
        for run in FLAGS.runs:
            clients, concurrency = (int(v) for v in run.split(":"))
            idle, peak, seconds = _run(image, clients, concurrency, folder)
            rows.append((clients, concurrency, idle, peak, seconds))
            print(f"{run}: idle {idle:.0f} MB, peak {peak:.0f} MB, {seconds:.1f} s", flush=True)
    side = FLAGS.side
    print(f"\n{side}x{side} RGB PNG -> {2 * side}x{2 * side}, precision {FLAGS.precision}\n")
    print("| tabs at once | --concurrency | RSS serving, idle | peak RSS | all done in |")
    print("|---|---|---|---|---|")
    for clients, concurrency, idle, peak, seconds in rows:
        print(f"| {clients} | {concurrency} | {idle:.0f} MB | {peak:.0f} MB | {seconds:.1f} s |")


if __name__ == "__main__":
    app.run(main)
