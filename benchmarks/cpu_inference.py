"""CPU inference, measured against the machine's limits, in one run.

    python benchmarks/cpu_inference.py [--quick] [--no_4k] [--json=OUT.json]

Everything runs side by side on this machine (the CPU model varies from one
machine to the next, so only numbers from one run compare), each case in a
fresh process, so its peak RSS is its own:

1. The machine: CPU model, vector extensions, cores, and its fp32 matrix
   product peak (numpy ``float32`` 4096^3 ``matmul``, best of 5, GFLOP/s).
2. The reference: the same 20 x 64 network in PyTorch (CPU, fp32, on every
   core of the affinity mask, ``inference_mode``), its bare forward pass on a
   512 x 512 plane.
3. Every path (the bundled weights): Keras fp32 on TensorFlow (oneDNN),
   Keras bf16 (``mixed_bfloat16``; where the CPU has AVX512-BF16 or AMX),
   LiteRT fp32 (XNNPACK), LiteRT int8 (``mixed_int8``) and ``auto`` (the
   default; its choice, and the seconds its first-run timing took with an
   empty cache): a bare pass on the 512 x 512 plane (ms, effective GFLOP/s at
   1.33 MFLOP per pixel, fraction of the peak), the all-in ``Upscaler`` on a
   256 x 256 RGB image at x2 (speed-up over the reference), 1920 x 1080 ->
   3840 x 2160, Set5 PSNR at x2/x3/x4 (when ``../shared/datasets/Set5``
   exists) and peak RSS.
4. Threads: LiteRT fp32 and TF fp32 on one thread and at their defaults
   (LiteRT's own is one thread; the ``Upscaler`` gives it the affinity
   mask's cores), the 512 x 512 pass.
5. Where the all-in time goes for the default path, file to file (PNG):
   decode, colour, bicubic, network (with the share spent on tile context),
   encode and write.

Prints markdown; --json also writes the numbers.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from absl import app, flags
from timing import median_seconds

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FLAGS = flags.FLAGS
flags.DEFINE_boolean("quick", False, "One repeat, no 4K, no PSNR (a smoke run).")
flags.DEFINE_boolean("no_4k", False, "Skip the 1920x1080 -> 3840x2160 upscale.")
flags.DEFINE_string("json", None, "Also write the results here.")
flags.DEFINE_string(
    "set5",
    os.path.join(REPO, "..", "shared", "datasets", "Set5"),
    "Set5 folder (HR + LR_bicubic) for PSNR; skipped if missing.",
)
flags.DEFINE_string("_child", None, "Internal: JSON spec of one measurement.")

FLOP_PER_PIXEL = 2 * (9 * 64 + 18 * 9 * 64 * 64 + 9 * 64)
PLANE = 512
PATHS = {  # name -> Upscaler keyword arguments
    "TF fp32 (Keras, oneDNN)": {"backend": "keras", "precision": "fp32"},
    "Keras bf16 (oneDNN, mixed_bfloat16)": {"precision": "bf16"},
    "LiteRT fp32 (XNNPACK)": {"backend": "litert", "precision": "fp32"},
    "LiteRT int8 (mixed_int8)": {"precision": "int8"},
    "auto (the default)": {},
}
THREAD_CASES = {  # name -> (engine, threads; None: the engine's own default)
    "LiteRT fp32, 1 thread": ("litert", 1),
    "LiteRT fp32, LiteRT's default": ("litert", None),
    "LiteRT fp32, the affinity mask's cores (the Upscaler's)": ("litert", "mask"),
    "TF fp32, 1 thread": ("keras", 1),
    "TF fp32, TensorFlow's default (the Upscaler's)": ("keras", None),
}
EXTENSIONS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
)


def timed_once(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine():
    """CPU model, vector extensions and the fp32 matmul peak."""
    import numpy as np

    from vdsr_tf.inference.precision import cpu_info

    model, flags_seen = cpu_info()
    # The best of several products: on a shared VM a single timing can
    # land on a busy moment, and the peak is what the machine can do.
    a = np.random.default_rng(0).random((4096, 4096), dtype=np.float32)
    a @ a
    best = min(timed_once(lambda: a @ a) for _ in range(5))
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "extensions": [e for e in EXTENSIONS if e in flags_seen],
        "peak_gflops": round(2 * 4096**3 / best / 1e9, 1),
    }


def reference(repeats):
    """The PyTorch forward pass on the 512 x 512 plane (seconds)."""
    import torch

    from vdsr_tf.inference.precision import default_threads

    torch.set_num_threads(default_threads())
    convs = [torch.nn.Conv2d(1, 64, 3, padding=1)]
    convs += [torch.nn.Conv2d(64, 64, 3, padding=1) for _ in range(18)]
    convs += [torch.nn.Conv2d(64, 1, 3, padding=1)]

    def forward(x):
        h = x
        for conv in convs[:-1]:
            h = torch.relu(conv(h))
        return x + convs[-1](h)

    x = torch.rand(1, 1, PLANE, PLANE)
    with torch.inference_mode():
        return {
            "seconds": median_seconds(lambda: forward(x), repeats),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }


def _image(h, w, seed=0):
    """A smooth RGB test image (uint8): cost does not depend on content."""
    import numpy as np

    rng = np.random.default_rng(seed)
    small = rng.random((h // 8 + 1, w // 8 + 1, 3))
    return (np.kron(small, np.ones((8, 8, 1)))[:h, :w] * 255).astype(np.uint8)


def path_case(kwargs, repeats, four_k, set5):
    """One path: bare pass, all-in 256 RGB x2, optional 4K and Set5 PSNR."""
    import numpy as np

    from vdsr_tf.inference.upscaler import Upscaler

    start = time.perf_counter()
    up = Upscaler(**kwargs)
    result = {
        "backend": up.backend,
        "precision": up.precision,
        "path": up.describe(),
        "setup_seconds": time.perf_counter() - start,
    }
    plane = np.random.default_rng(1).random((1, PLANE, PLANE, 1), dtype=np.float32)
    result["pass_seconds"] = median_seconds(lambda: up._forward(plane), repeats)
    image = _image(256, 256)
    result["allin_seconds"] = median_seconds(lambda: up.upscale_array(image, scale=2), repeats)
    if four_k:
        big = _image(1080, 1920)
        start = time.perf_counter()
        up.upscale_array(big, scale=2)
        result["4k_seconds"] = time.perf_counter() - start
    if set5:
        from vdsr_tf.evaluation.benchmark import evaluate_set

        result["set5"] = {f"x{s}": round(evaluate_set(up, set5, s)["psnr"], 4) for s in (2, 3, 4)}
    return result


def threads_case(engine, threads, repeats):
    """The 512 x 512 fp32 pass of one engine at a thread count (seconds)."""
    import numpy as np

    plane = np.random.default_rng(1).random((1, PLANE, PLANE, 1), dtype=np.float32)
    if engine == "litert":
        from ai_edge_litert.interpreter import Interpreter

        from vdsr_tf.inference.litert import LiteRTPredictor
        from vdsr_tf.io.bundled import bundled_tflite_path

        if threads is None:  # LiteRT's own default: the interpreter without num_threads
            interpreter = Interpreter(model_path=bundled_tflite_path())
            interpreter.resize_tensor_input(0, list(plane.shape))
            interpreter.allocate_tensors()

            def forward(x):
                interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
                interpreter.invoke()
        else:
            forward = LiteRTPredictor(
                bundled_tflite_path(), num_threads=None if threads == "mask" else threads
            )
    else:
        from vdsr_tf.inference.engines import keras_network, set_keras_threads

        set_keras_threads(threads)
        forward = keras_network()[1]
    return {"pass_seconds": median_seconds(lambda: forward(plane), repeats)}


def breakdown(repeats):
    """Where the default path's file-to-file time goes (seconds per part)."""
    import numpy as np
    from PIL import Image

    from vdsr_tf.inference.upscaler import Upscaler
    from vdsr_tf.io import images as imageio
    from vdsr_tf.ops import pipeline as processing

    parts = {}

    def clocked(module, name, part):
        inner = getattr(module, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                parts[part] = parts.get(part, 0.0) + time.perf_counter() - start

        setattr(module, name, wrapper)

    clocked(imageio, "open_frames", "decode")
    clocked(imageio, "save_frames", "encode and write")
    for name in ("ycbcr_from_float_rgb", "rgb_from_float_ycbcr", "quantise"):
        clocked(processing, name, "colour")
    clocked(processing, "enlarge_window", "bicubic")
    up = Upscaler()
    window_pixels = []
    forward = up._forward

    def network(x):
        window_pixels.append(x.shape[1] * x.shape[2])
        start = time.perf_counter()
        try:
            return forward(x)
        finally:
            parts["network"] = parts.get("network", 0.0) + time.perf_counter() - start

    up._forward = network
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.png"), os.path.join(tmp, "out.png")
        Image.fromarray(_image(256, 256)).save(src)
        up.upscale_file(src, dst, scale=2, overwrite=True)  # warm-up
        parts.clear()
        window_pixels.clear()
        start = time.perf_counter()
        for _ in range(repeats):
            up.upscale_file(src, dst, scale=2, overwrite=True)
        total = (time.perf_counter() - start) / repeats
    result = {k: v / repeats for k, v in parts.items()}
    output_pixels = 512 * 512
    share = 1 - output_pixels * repeats / max(1, sum(window_pixels))
    result["network: tile context share"] = result["network"] * share
    result["other (Python, tiling, copies)"] = total - sum(
        v for k, v in result.items() if not k.startswith("network:")
    )
    result["total"] = total
    return {
        "parts": result,
        "windows": len(window_pixels) // repeats,
        "backend": up.backend,
        "path": f"{up.backend}-{up.precision}",
        "np": np.__version__,
    }


def child(spec):
    repeats = spec["repeats"]
    if spec["kind"] == "machine":
        out = machine()
    elif spec["kind"] == "reference":
        out = reference(repeats)
    elif spec["kind"] == "breakdown":
        out = breakdown(repeats)
    elif spec["kind"] == "threads":
        out = threads_case(spec["engine"], spec["threads"], repeats)
    else:
        out = path_case(spec["kwargs"], repeats, spec["four_k"], spec["set5"])
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def run_child(spec, env=None):
    proc = subprocess.run(
        [sys.executable, __file__, f"--_child={json.dumps(spec)}"],
        capture_output=True,
        text=True,
        env=env,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    errors = [line for line in proc.stderr.splitlines() if "Error" in line.split(":")[0]]
    print(
        f"<!-- {spec['kind']} {spec.get('kwargs', '')} failed (exit {proc.returncode}): "
        f"{errors[-1] if errors else 'no Python error'} -->"
    )
    return None


def main(argv):
    del argv
    if FLAGS._child:
        child(json.loads(FLAGS._child))
        return
    repeats = 1 if FLAGS.quick else 3
    four_k = not (FLAGS.quick or FLAGS.no_4k)
    set5 = None if FLAGS.quick or not os.path.isdir(FLAGS.set5) else FLAGS.set5
    from vdsr_tf.inference.precision import cpu_has_bf16, cpu_info

    results = {
        "machine": run_child({"kind": "machine", "repeats": repeats}),
        "reference": run_child({"kind": "reference", "repeats": repeats}),
        "paths": {},
        "threads": {},
    }
    # auto times the paths in its first process with an empty cache (its
    # setup_seconds), and the breakdown's default Upscaler reads that cache.
    cache = tempfile.TemporaryDirectory(prefix="vdsr_auto_cache_")
    env = dict(os.environ, VDSR_TF_CACHE=cache.name)
    for name, kwargs in PATHS.items():
        if kwargs.get("precision") == "bf16" and not cpu_has_bf16(cpu_info()[1]):
            print(f"<!-- {name}: skipped, this CPU has no avx512_bf16 / amx_bf16 -->")
            continue
        results["paths"][name] = run_child(
            {"kind": "path", "kwargs": kwargs, "repeats": repeats, "four_k": four_k, "set5": set5},
            env,
        )
    if not FLAGS.quick:
        for name, (engine, threads) in THREAD_CASES.items():
            results["threads"][name] = run_child(
                {"kind": "threads", "engine": engine, "threads": threads, "repeats": repeats}, env
            )
    results["breakdown"] = run_child({"kind": "breakdown", "repeats": repeats}, env)
    cache.cleanup()
    report(results)
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(results, f, indent=2)


def report(results):
    m, ref = results["machine"], results["reference"]
    peak = m["peak_gflops"]
    gflops = lambda s: FLOP_PER_PIXEL * PLANE * PLANE / s / 1e9  # noqa: E731
    print(
        f"# {time.strftime('%Y-%m-%d')}: {m['cpu']}, {m['cores']} cores, "
        f"{' '.join(m['extensions'])}\n"
    )
    print(f"fp32 matrix-product peak (numpy 4096^3 matmul, best of 5): {peak:.0f} GFLOP/s\n")
    if ref:
        print(
            f"Reference: PyTorch {ref['torch']} fp32, {ref['threads']} threads, bare forward "
            f"on a {PLANE}x{PLANE} plane: {ref['seconds'] * 1e3:,.0f} ms = "
            f"{gflops(ref['seconds']):.0f} GFLOP/s = {gflops(ref['seconds']) / peak:.0%} "
            f"of peak\n"
        )
    print(
        f"| path | {PLANE}² pass ms | GFLOP/s | of peak | all-in 256² RGB x2 ms | "
        "vs reference | 1080p -> 4K s | Set5 x2 / x3 / x4 | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results["paths"].items():
        if r is None:
            continue
        s = r["pass_seconds"]
        speed = f"{ref['seconds'] / r['allin_seconds']:.2f}x" if ref else "-"
        k4 = f"{r['4k_seconds']:.1f}" if "4k_seconds" in r else "-"
        psnr = " / ".join(f"{v:.2f}" for v in r["set5"].values()) if "set5" in r else "-"
        label = f"{name}: {r['backend']}-{r['precision']}" if name.startswith("auto") else name
        print(
            f"| {label} | {s * 1e3:,.0f} | {gflops(s):.0f} | {gflops(s) / peak:.0%} | "
            f"{r['allin_seconds'] * 1e3:,.0f} | {speed} | {k4} | {psnr} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    auto = results["paths"].get("auto (the default)")
    if auto:
        print(
            f"\nauto chose {auto['backend']}-{auto['precision']} (its first-run timing took "
            f"{auto['setup_seconds']:.1f} s with an empty cache): {auto['path']}"
        )
    if results.get("threads"):
        print(f"\nThreads ({PLANE}² fp32 pass, bundled weights; {m['cores']} cores):\n")
        print("| engine, threads | ms |\n|---|---|")
        for name, r in results["threads"].items():
            if r is not None:
                print(f"| {name} | {r['pass_seconds'] * 1e3:,.0f} |")
    b = results["breakdown"]
    if b:
        total = b["parts"]["total"]
        print(
            f"\nAll-in, file to file (256x256 RGB PNG -> 512x512 PNG, default path "
            f"{b['path']}, {b['windows']} window(s)):\n"
        )
        print("| part | ms | share |\n|---|---|---|")
        order = [
            "decode",
            "colour",
            "bicubic",
            "network",
            "network: tile context share",
            "encode and write",
            "other (Python, tiling, copies)",
            "total",
        ]
        for part in order:
            if part in b["parts"]:
                v = b["parts"][part]
                print(f"| {part} | {v * 1e3:,.1f} | {v / total:.0%} |")


if __name__ == "__main__":
    app.run(main)
