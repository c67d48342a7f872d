"""A shared, long-lived ``Upscaler``, and the SavedModel under concurrent requests.

    python benchmarks/concurrency.py threads [--threads=8] [--calls=100] [--paths=auto,keras-fp32]
    python benchmarks/concurrency.py rss [--calls=2000] [--path=auto] [--largest=1024] [--tiny]
    python benchmarks/concurrency.py serving [--requests=4] [--size=1920x1080]

* ``threads``: one ``Upscaler`` per path (the bundled weights), ``--calls``
  images of mixed sizes (16 to 64 pixels a side), modes (L, LA, RGB, RGBA),
  dtypes (uint8, uint16) and scales (2, 2.5, 3, 4). Each is upscaled once on
  one thread (the reference, timed), then ``--threads`` threads at once each
  upscale all of them in their own order. Every output must equal the
  reference bit for bit. Prints calls/s on 1 and on N threads.
* ``rss``: ``--calls`` calls through one ``Upscaler``, RGB images whose
  outputs are 16 to ``--largest`` pixels a side (log-uniform, each side
  drawn separately, so nearly every call has a new shape) at x2; the
  process's RSS after each call. Prints the RSS after the first 100 calls,
  at the end, and the growth between them. ``--tiny`` runs a 3 x 8 network
  (random weights) on the path's engine instead of the bundled 20 x 64 one:
  the shape-keyed state (TensorFlow's and oneDNN's caches, LiteRT's tensor
  resizing) is the engine's, and the small network makes 1024-pixel sides
  affordable on a CPU.
* ``serving``: exports the bundled weights as a SavedModel, then in fresh
  processes sends 1 and ``--requests`` concurrent ``upscale_image`` requests
  (a PNG of ``--size`` at x2, from threads, as TF Serving's request threads
  would). Every output must equal the single request's; prints each
  process's peak RSS and wall time.

Prints one JSON object (also written to ``--json``); exit status 1 if an
output differed or a call failed.
"""

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

PATH_ARGS = {
    "auto": {},
    "keras-fp32": {"backend": "keras", "precision": "fp32"},
    "keras-bf16": {"backend": "keras", "precision": "bf16"},
    "litert-fp32": {"backend": "litert", "precision": "fp32"},
    "litert-int8": {"backend": "litert", "precision": "int8"},
}


def rss_mb():
    """This process's resident set size now, in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mixed_images(n, seed=0, smallest=16, largest=64):
    """``n`` ``(image, scale)``: mixed sizes, modes, dtypes and scales."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(smallest, largest + 1, size=2))
        channels = (None, 2, 3, 4)[i % 4]
        dtype = np.uint16 if i % 5 == 4 else np.uint8
        peak = np.iinfo(dtype).max
        shape = (h, w) if channels is None else (h, w, channels)
        ramp = np.linspace(0.1, 0.9, w)[None, :]
        ramp = ramp if channels is None else ramp[:, :, None]
        noise = rng.normal(0, 0.1, shape)
        image = (np.clip(ramp + noise, 0, 1) * peak).round().astype(dtype)
        cases.append((image, (2, 2.5, 3, 4)[i % 4]))
    return cases


def make_upscaler(path, tiny=False):
    from vdsr_tf.inference.upscaler import Upscaler

    if not tiny:
        return Upscaler(**PATH_ARGS[path])
    import keras

    from vdsr_tf.models.vdsr import build_vdsr

    keras.utils.set_random_seed(0)
    args = dict(PATH_ARGS[path])
    if args.get("precision", "auto") == "auto":
        args["precision"] = "fp32"
    return Upscaler(model=build_vdsr(depth=3, filters=8), **args)


def threads_check(path, n_threads, calls, seed=0, largest=64):
    """The ``threads`` mode for one path; returns its record."""
    upscaler = make_upscaler(path)
    cases = mixed_images(calls, seed, largest=largest)
    upscaler.upscale(cases[0][0], scale=cases[0][1])  # warm-up: compile, allocate
    start = time.perf_counter()
    reference = [upscaler.upscale(image, scale=scale) for image, scale in cases]
    one = time.perf_counter() - start
    mismatches, errors = [], []
    barrier = threading.Barrier(n_threads)

    def worker(t):
        order = np.random.default_rng(seed + 1 + t).permutation(len(cases))
        barrier.wait()
        for i in order:
            image, scale = cases[i]
            try:
                out = upscaler.upscale(image, scale=scale)
            except Exception as e:  # noqa: BLE001 -- every failure is counted
                errors.append(f"thread {t}, image {i}: {type(e).__name__}: {e}")
                continue
            if out.dtype != reference[i].dtype or not np.array_equal(out, reference[i]):
                mismatches.append((t, int(i)))

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=3600)
    many = time.perf_counter() - start
    hung = sum(w.is_alive() for w in workers)
    return {
        "path": path,
        "runs": upscaler.describe(),
        "calls_1_thread": calls,
        "calls_n_threads": n_threads * calls,
        "threads": n_threads,
        "calls_per_s_1_thread": round(calls / one, 2),
        "calls_per_s_n_threads": round(n_threads * calls / many, 2),
        "speedup": round((n_threads * calls / many) / (calls / one), 2),
        "mismatches": len(mismatches),
        "errors": errors[:5],
        "error_count": len(errors),
        "hung_threads": hung,
    }


def rss_check(path, calls, seed=0, warmup=100, largest=1024, tiny=False):
    """The ``rss`` mode; returns its record (RSS in MB)."""
    upscaler = make_upscaler(path, tiny)
    rng = np.random.default_rng(seed)
    lo, hi = math.log(16), math.log(largest)
    samples, pixels = [], 0
    start = time.perf_counter()
    for _ in range(calls):
        oh, ow = (int(round(math.exp(v))) for v in rng.uniform(lo, hi, size=2))
        h, w = max(oh // 2, 8), max(ow // 2, 8)
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        out = upscaler.upscale(image, scale=2)
        pixels += out.shape[0] * out.shape[1]
        samples.append(rss_mb())
    after_warmup, end = samples[warmup - 1], samples[-1]
    tail = samples[warmup:]
    return {
        "path": path,
        "network": "3 x 8 (random)" if tiny else "bundled 20 x 64",
        "runs": upscaler.describe(),
        "calls": calls,
        "output_sides": [16, largest],
        "output_megapixels": round(pixels / 1e6, 1),
        "seconds": round(time.perf_counter() - start, 1),
        "rss_after_warmup_mb": round(after_warmup, 1),
        "rss_end_mb": round(end, 1),
        "rss_max_after_warmup_mb": round(max(tail), 1),
        "growth_mb": round(end - after_warmup, 1),
        "growth_max_mb": round(max(tail) - after_warmup, 1),
        "rss_every_100_mb": [round(v, 1) for v in samples[99::100]],
    }


_REQUESTS = """
import hashlib, io, json, resource, sys, threading, time
import numpy as np, tensorflow as tf
from PIL import Image
folder, n, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
loaded = tf.saved_model.load(folder)
image = np.random.default_rng(0).integers(0, 256, (h, w, 3)).astype(np.uint8)
buf = io.BytesIO(); Image.fromarray(image).save(buf, format="PNG")
loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
outs, errors = [None] * n, []
def request(i):
    try:
        png = loaded.signatures["upscale_image"](image_bytes=tf.constant([buf.getvalue()]),
                                                 scale=tf.constant([2.0]))["png_bytes"]
        outs[i] = png.numpy()[0]
    except Exception as e:
        errors.append(f"{type(e).__name__}: {str(e).splitlines()[0]}")
start = time.time()
threads = [threading.Thread(target=request, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join()
seconds = time.time() - start
size = Image.open(io.BytesIO(outs[0])).size if outs[0] else None
print(json.dumps({"requests": n, "seconds": round(seconds, 1), "errors": errors,
                  "output": size, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                  "rss_after_load_mb": loaded_rss,
                  "sha256": [hashlib.sha256(o).hexdigest() if o else None for o in outs]}))
"""


def serving_check(requests, width, height, folder=None):
    """The ``serving`` mode; returns its record."""
    from vdsr_tf.export.saved_model import export_saved_model
    from vdsr_tf.models.loading import load_pretrained

    folder = folder or export_saved_model(load_pretrained(), tempfile.mkdtemp(), overwrite=True)
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    runs = []
    for n in (1, requests):
        proc = subprocess.run(
            [sys.executable, "-c", _REQUESTS, folder, str(n), str(width), str(height)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1])
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    single, many = runs
    reference = single["sha256"][0]
    return {
        "input": f"{width}x{height}",
        "output": single["output"],
        "single": {k: single[k] for k in ("seconds", "peak_rss_mb", "rss_after_load_mb")},
        "concurrent": {k: many[k] for k in ("requests", "seconds", "peak_rss_mb")},
        "errors": single["errors"] + many["errors"],
        "all_equal_single": all(h == reference for h in many["sha256"]) and reference is not None,
        "mb_per_extra_request": round(
            (many["peak_rss_mb"] - single["peak_rss_mb"]) / max(requests - 1, 1), 1
        ),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["threads", "rss", "serving"])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--paths", default="auto,keras-fp32")
    parser.add_argument("--path", default="auto")
    parser.add_argument("--largest", type=int, default=1024)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "mode": args.mode,
    }
    if args.mode == "threads":
        result["results"] = [
            threads_check(p, args.threads, args.calls or 100) for p in args.paths.split(",")
        ]
        ok = all(
            r["mismatches"] == r["error_count"] == r["hung_threads"] == 0 for r in result["results"]
        )
    elif args.mode == "rss":
        result["results"] = rss_check(
            args.path, args.calls or 2000, largest=args.largest, tiny=args.tiny
        )
        ok = True
    else:
        width, height = (int(v) for v in args.size.lower().split("x"))
        result["results"] = serving_check(args.requests, width, height)
        ok = result["results"]["all_equal_single"] and not result["results"]["errors"]
    result["ok"] = ok
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
