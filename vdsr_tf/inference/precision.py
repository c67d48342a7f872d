"""Which engine and number format run the network: ``precision="auto"``.

A *path* is an engine and a precision, named ``"<engine>-<precision>"``:

* ``litert-fp32``, ``keras-fp32``: exact float32 (XNNPACK; TensorFlow's
  oneDNN or JAX).
* ``keras-bf16``: Keras with the convolutions under ``mixed_bfloat16`` (bf16
  products, float32 accumulation, weights and skip add): oneDNN's bf16
  kernels on a CPU with AVX512-BF16 or AMX-BF16, or a GPU. LiteRT has no
  bf16 path (XNNPACK reduces precision only to IEEE fp16).
* ``litert-int8``: the bundled ``mixed_int8`` model (int8 hidden layers).

The fastest exact path depends on the CPU (LiteRT on an AVX2 machine, oneDNN
on others), and int8 or bf16 are 2-7x faster where the CPU has the
instructions for them. So ``auto`` measures rather than guesses. Every path
whose quality cost is within ``QUALITY_BOUND_DB`` at every scale (the Set5
PSNR change against Keras fp32, measured when the weights are bundled and
recorded in the bundled preset's ``metadata.json``; fp32 paths cost nothing) runs once on a
``PROBE_SIDE`` plane, and the fastest wins. The timings are cached per
machine, keyed by CPU model, thread count, package and engine versions and
the weights' sha256, in ``cache_dir()``.

The cache fails safe: a missing, corrupt or stale file means measuring
again, an unwritable folder means no cache, and writes are atomic (two
processes measuring at once each write a whole file; the last one stays).

Imports numpy and absl only: the LiteRT-only install uses it too.
"""

import contextlib
import hashlib
import json
import math
import os
import time

from absl import logging

PRECISIONS = ("auto", "fp32", "bf16", "int8")


PATHS = {  # name -> (engine, precision), in the order of preference on a tie
    "litert-fp32": ("litert", "fp32"),
    "keras-fp32": ("keras", "fp32"),
    "keras-bf16": ("keras", "bf16"),
    "litert-int8": ("litert", "int8"),
}


QUALITY_BOUND_DB = 0.05  # the most Set5 PSNR auto may give up, at any scale


PROBE_SIDE = 128  # pixels per side of the plane each candidate is timed on


PROBE_REPEATS = 3  # timed calls per candidate (after a warm-up), best kept


BF16_FLAGS = ("avx512_bf16", "amx_bf16")


SCALES = ("x2", "x3", "x4")  # a path's cost must be known at each


_CACHE_FORMAT = 1


def check_precision(precision):
    """Returns ``precision`` if it is one of ``PRECISIONS``.

    Raises:
        ValueError: naming the valid ones otherwise.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    return precision


def path_name(engine, precision):
    """``"litert-int8"`` for ``("litert", "int8")``."""
    return f"{engine}-{precision}"


def quality_loss(name, costs):
    """The dB a path loses against fp32 at its worst scale.

    Args:
        name: a path name (``PATHS``).
        costs: ``{path name: {"x2": change, ...}}``, Set5 PSNR of the path
            minus Keras fp32's (negative is a loss).

    Returns:
        A float >= 0 (0 for fp32 paths, which are exact by definition), or
        None when the path's cost was not measured at every scale of
        ``SCALES`` (or is not a finite number).
    """
    if PATHS[name][1] == "fp32":
        return 0.0
    change = costs.get(name) if isinstance(costs, dict) else None
    try:
        values = [float(change[x]) for x in SCALES]
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    return max(0.0, -min(values))


def within_bound(names, costs, bound=QUALITY_BOUND_DB):
    """``(kept, refused)``: the paths whose quality loss is known and at most
    ``bound`` (in the order given), and ``{name: why}`` for the others."""
    kept, refused = [], {}
    for name in names:
        loss = quality_loss(name, costs)
        if loss is None:
            refused[name] = "quality cost not measured"
        elif loss > bound:
            refused[name] = f"loses {loss:.3f} dB > {bound} dB"
        else:
            kept.append(name)
    return kept, refused


def not_eligible(refused):
    """``"; not eligible: a (why), b (why)"`` for ``{name: why}``, or ``""``."""
    return (
        "; not eligible: " + ", ".join(f"{n} ({why})" for n, why in refused.items())
        if refused
        else ""
    )


def choose(timings, costs, bound=QUALITY_BOUND_DB):
    """The fastest path within the quality bound.

    Args:
        timings: ``{path name: seconds}`` measured on this machine.
        costs: as ``quality_loss``.
        bound: the largest loss (dB, any scale) a path may have.

    Returns:
        ``(name, reason)``: the winner and a sentence saying why.

    Raises:
        ValueError: if no timed path is within the bound.
    """
    kept, refused = within_bound(list(timings), costs, bound)
    if not kept:
        raise ValueError(f"no path within {bound} dB of fp32 among {', '.join(timings)}")
    best = min(kept, key=lambda n: (timings[n], list(PATHS).index(n)))
    others = ", ".join(
        f"{n} {timings[n] * 1e3:.0f} ms" for n in sorted(kept, key=timings.get) if n != best
    )
    loss = quality_loss(best, costs)
    reason = (
        f"the fastest on this machine within {bound} dB of fp32 on Set5: "
        f"{timings[best] * 1e3:.0f} ms on a {PROBE_SIDE}x{PROBE_SIDE} plane"
        + (f" (against {others})" if others else "")
        + ("; exact" if PATHS[best][1] == "fp32" else f"; loses {loss:.3f} dB at worst")
        + not_eligible(refused)
    )
    return best, reason


def cpu_info(cpuinfo="/proc/cpuinfo"):
    """``(model name, set of feature flags)`` of this CPU (x86 ``flags``, or
    Arm ``Features``); an empty set where ``/proc/cpuinfo`` cannot be read
    (not Linux)."""
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() in ("flags", "Features"):
                    flags = set(value.split())
                if flags and model:
                    break
    except OSError:
        pass
    return model, flags


def cpu_has_bf16(flags, unknown=True):
    """Whether a CPU with these flags has x86 bf16 dot products (AVX512-BF16
    or AMX-BF16); ``unknown`` when the flags are unknown (an empty set):
    explicit bf16 is allowed there, ``auto`` does not time it."""
    return unknown if not flags else any(f in flags for f in BF16_FLAGS)


def default_threads():
    """The cores this process may run on (its affinity mask; the CPU count
    where the platform has none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cache_dir(environ=None):
    """The folder of the timing cache: ``$VDSR_TF_CACHE``, else
    ``$XDG_CACHE_HOME/vdsr_tf``, else ``~/.cache/vdsr_tf``."""
    environ = os.environ if environ is None else environ
    if environ.get("VDSR_TF_CACHE"):
        return environ["VDSR_TF_CACHE"]
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "vdsr_tf")


def cache_key(candidates, threads, weights_sha256, versions, cpu=None):
    """What a cached timing depends on (a JSON-able dict).

    Args:
        candidates: the path names timed.
        threads: the thread count the engines run with.
        weights_sha256: the weights' sha256.
        versions: ``{package: version}`` of vdsr-tf and the engines.
        cpu: the CPU model name (default: this machine's).
    """
    return {
        "format": _CACHE_FORMAT,
        "cpu": cpu if cpu is not None else cpu_info()[0],
        "threads": int(threads),
        "weights_sha256": weights_sha256,
        "versions": dict(sorted(versions.items())),
        "candidates": sorted(candidates),
    }


def cache_file(key, folder=None):
    """The cache file of ``key``: one file per key, so machines sharing a
    home folder and different installs never overwrite each other."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return os.path.join(folder or cache_dir(), f"auto-{digest}.json")


def read_timings(key, folder=None):
    """The cached ``{path: seconds}`` for ``key``, or None (no file, or one
    that is unreadable, corrupt or written for another key)."""
    path = cache_file(key, folder)
    try:
        with open(path) as f:
            data = json.load(f)
        timings = data["timings"]
        if data["key"] != key or sorted(timings) != key["candidates"]:
            raise ValueError("written for another key")
        if not all(
            isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in timings.values()
        ):
            raise ValueError("bad timings")
        return {name: float(v) for name, v in timings.items()}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        logging.info("Ignoring the timing cache %s (%s); measuring again", path, e)
        return None


def write_timings(key, timings, folder=None):
    """Caches ``timings`` for ``key`` atomically.

    Returns:
        The file written, or None when the folder cannot be written (a
        read-only home): then there is no cache, which is not an error.
    """
    from vdsr_tf.io.atomic import atomic_write_text

    path = cache_file(key, folder)
    record = {"key": key, "timings": timings, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write_text(path, json.dumps(record, indent=1))
        return path
    except OSError as e:
        logging.info("Not caching the path timings in %s: %s", path, e)
        return None


@contextlib.contextmanager
def measuring_lock(key, folder=None):
    """Holds an exclusive lock (``flock`` on the key's ``.lock`` file) while
    one process measures, so processes that start together on one machine
    (Beam workers) measure one after the other, each on a quiet machine, and
    the later ones read the first one's result. No lock where the folder
    cannot be written or the platform has no ``fcntl``."""
    fd = None
    try:
        import fcntl

        path = cache_file(key, folder) + ".lock"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except (ImportError, OSError) as e:
        logging.info("Measuring without a lock: %s", e)
        if fd is not None:
            os.close(fd)
            fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def measure(forwards, side=PROBE_SIDE, repeats=PROBE_REPEATS, failed=None):
    """Times each candidate on one plane.

    Args:
        forwards: ``{path name: f}``, each ``f`` mapping float32
            (1, side, side, 1) to an array of that shape.
        side: the plane's side in pixels.
        repeats: timed calls per candidate, after one untimed warm-up call
            (which pays for tracing, allocation and packing the weights).
        failed: a dict that receives ``{path name: message}`` for each
            candidate that raised; it is left out of the result.

    Returns:
        ``{path name: seconds}``, the fastest call of each.
    """
    import numpy as np

    plane = np.random.default_rng(0).random((1, side, side, 1), dtype=np.float32)
    timings = {}
    for name, forward in forwards.items():
        try:
            forward(plane)
            best = math.inf
            for _ in range(repeats):
                start = time.perf_counter()
                forward(plane)
                best = min(best, time.perf_counter() - start)
        except Exception as e:  # noqa: BLE001 -- an engine that cannot run here is no candidate
            if failed is None:
                raise
            failed[name] = first_line(e)
            continue
        timings[name] = best
    return timings


def first_line(error):
    """An exception as one short line: its type and its message's first line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160]}" if text else type(error).__name__
